"""Document facts.

Positions, the cursor gate, tree-sitter facts, recent files, imports, exclusion.
"""
