"""Cutting a file into retrievable chunks: whole functions, classes and methods where
tree-sitter knows the language, short line windows for what lies between them.

A class or function too long to be one chunk is split: a class into its methods (plus a
header chunk with the class line and its fields), a long function into line windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter

from ghostcomplete.context.syntax import parser_for

MAX_UNIT_LINES = 60
WINDOW_LINES = 20
WINDOW_STRIDE = 10
HEADER_LINES = 12
_MAX_PARSE_CHARS = 2_000_000

# Definitions that make a chunk on their own, per language family of node types.
_UNIT_TYPES = frozenset(
    {
        # Python
        "function_definition",
        "class_definition",
        "decorated_definition",
        # JavaScript / TypeScript
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "method_definition",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "abstract_class_declaration",
        # Go
        "method_declaration",
        "type_declaration",
        # Rust
        "function_item",
        "impl_item",
        "struct_item",
        "enum_item",
        "trait_item",
        # Java
        "constructor_declaration",
        "record_declaration",
        # C / C++
        "struct_specifier",
        "class_specifier",
    }
)
# Wrappers whose single definition child is the real unit.
_WRAPPERS = frozenset({"export_statement", "decorated_definition", "template_declaration"})


@dataclass(frozen=True)
class Span:
    """Lines [start, end) of a file that form one chunk; ``kind`` is "unit" or "window"."""

    start: int
    end: int
    kind: str


def _windows(
    start: int, end: int, size: int = WINDOW_LINES, stride: int = WINDOW_STRIDE
) -> list[Span]:
    if end - start <= size:
        return [Span(start, end, "window")] if end > start else []
    spans = [
        Span(at, min(at + size, end), "window") for at in range(start, end - size + stride, stride)
    ]
    return [span for span in spans if span.end > span.start]


def _children_units(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    found: list[tree_sitter.Node] = []
    for child in node.named_children:
        if child.type in _UNIT_TYPES or child.type in _WRAPPERS:
            found.append(child)
        elif child.named_child_count and child.type not in ("string", "comment"):
            found.extend(_children_units(child))
    return found


def _unit_spans(node: tree_sitter.Node) -> list[Span]:
    start, end = node.start_point[0], node.end_point[0] + 1
    if end - start <= MAX_UNIT_LINES:
        return [Span(start, end, "unit")]
    inner = _children_units(node)
    if inner:
        first_inner = min(child.start_point[0] for child in inner)
        spans = [Span(start, min(first_inner, start + HEADER_LINES), "unit")]
        for child in inner:
            spans.extend(_unit_spans(child))
        return spans
    return _windows(start, end, size=40, stride=30)


def chunk_spans(text: str, language_id: str) -> list[Span]:
    """Spans covering the file: units where the grammar finds them, windows elsewhere."""
    line_count = text.count("\n") + 1
    parser = parser_for(language_id)
    if parser is None or len(text) > _MAX_PARSE_CHARS:
        return _windows(0, line_count)
    try:
        tree = parser.parse(text.encode("utf-8", errors="surrogatepass"))
    except (ValueError, RuntimeError):
        return _windows(0, line_count)
    spans: list[Span] = []
    covered_to = 0
    for unit in _children_units(tree.root_node):
        unit_start = unit.start_point[0]
        if unit_start < covered_to:
            continue  # nested inside a unit already taken
        spans.extend(_windows(covered_to, unit_start))
        unit_spans = _unit_spans(unit)
        spans.extend(unit_spans)
        covered_to = max(covered_to, unit.end_point[0] + 1)
    spans.extend(_windows(covered_to, line_count))
    return spans
