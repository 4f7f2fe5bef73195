"""Retrieval and packing.

The chunk index, BM25 and dense scores, snippets, the token budget, FIM templates, redaction.
"""
