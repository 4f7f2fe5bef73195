"""Syntax facts from tree-sitter: does the cursor open an empty block (complete a block) or not.

Grammars come from pinned wheels that carry their parsers compiled in, so nothing is fetched
at run time. Unknown languages and parse failures answer "no fact" rather than raising.
"""

from __future__ import annotations

import enum
import importlib
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import tree_sitter

# language id -> (module, function returning the grammar's language pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "javascriptreact": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "typescriptreact": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

# Nodes that hold a body of statements or members.
_BODY_TYPES = frozenset(
    {
        "block",
        "statement_block",
        "compound_statement",
        "class_body",
        "declaration_list",
        "field_declaration_list",
        "interface_body",
        "enum_body",
        "constructor_body",
        "function_body",
    }
)

_MAX_PARSE_CHARS = 2_000_000
_WINDOW_BEFORE = 300
# Brace languages have no cheap way to start inside a class (see _outermost_definition for
# Python's), and a line at column 0 may be inside a template string: they parse from the top
# of the file when the text before the cursor is no longer than this (a parse of that size
# is quick, and it happens only on blank lines).
_WHOLE_PARSE_CHARS = 150_000
_WINDOW_AFTER = 100


class Scope(enum.Enum):
    """How much the completion at the cursor should cover."""

    LINE = "line"
    BLOCK = "block"


def supported_languages() -> list[str]:
    return sorted(_GRAMMARS)


@cache
def parser_for(language_id: str) -> tree_sitter.Parser | None:
    """A parser for ``language_id``, or None when no grammar is installed for it."""
    spec = _GRAMMARS.get(language_id)
    if spec is None:
        return None
    module_name, function_name = spec
    try:
        module = importlib.import_module(module_name)
        language_pointer: Callable[[], Any] = getattr(module, function_name)
        return tree_sitter.Parser(tree_sitter.Language(language_pointer()))
    except (ImportError, AttributeError, ValueError):
        return None


def completion_scope(text: str, offset: int, language_id: str) -> Scope:
    """BLOCK when the cursor sits on a blank line inside an empty body; LINE otherwise."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    if line.strip():
        return Scope.LINE
    parser = parser_for(language_id)
    if parser is None:
        return Scope.LINE
    # Parse only the top-level statement around the cursor (a few hundred lines at most),
    # or for brace languages the file up to it when that is short enough.
    start, end = _top_level_window(text, line_start, line_end if line_end >= 0 else len(text))
    if language_id != "python" and line_start <= _WHOLE_PARSE_CHARS:
        start = 0
    header = ""
    if language_id == "python":
        # The window may start inside a long class (or a docstring's text at column 0):
        # begin at its least indented definition, under a header when that is indented, or
        # the parse sees an unexpected indent.
        start = _outermost_definition(text, start, line_start)
        header = "" if _starts_top_level(text, start) else _INDENTED_HEADER
    text, offset = header + text[start:end], offset - start + len(header)
    if len(text) > _MAX_PARSE_CHARS:
        return Scope.LINE
    source = text.encode("utf-8", errors="surrogatepass")
    cursor_byte = len(text[:offset].encode("utf-8", errors="surrogatepass"))
    try:
        tree = parser.parse(source)
    except (ValueError, RuntimeError):
        return Scope.LINE
    # The body the cursor is in: the smallest body-like node whose span covers the cursor, or
    # for indentation languages an empty body that ends just before the cursor's line.
    node = tree.root_node.descendant_for_byte_range(cursor_byte, cursor_byte)
    while node is not None:
        if node.type in _BODY_TYPES:
            if _is_empty_body(node):
                return Scope.BLOCK
            # In Python an empty body is a zero-width node at the end of its header, so the
            # body around a blank line under a new `def f():` is the enclosing class's or
            # function's, which is not empty; the header just above decides.
            opened = _header_above(tree, source, cursor_byte)
            indent = offset - (text.rfind("\n", 0, offset) + 1)
            if opened is not None and indent > opened.start_point.column:
                return Scope.BLOCK
            return Scope.LINE
        node = node.parent
    opened = _header_above(tree, source, cursor_byte)
    if opened is not None:
        return Scope.BLOCK
    return Scope.LINE


def _header_above(
    tree: tree_sitter.Tree, source: bytes, cursor_byte: int
) -> tree_sitter.Node | None:
    """The statement whose empty body the cursor would fill: the nearest statement with a
    body around the last text before the cursor, when that body is empty (else None)."""
    at = max(0, _previous_content_byte(source, cursor_byte))
    previous = tree.root_node.descendant_for_byte_range(at, at)
    while previous is not None:
        body = previous.child_by_field_name("body") or previous.child_by_field_name(
            "consequence"  # Python's `if` and `elif`
        )
        if body is not None:
            return previous if _is_empty_body(body) else None
        previous = previous.parent
    return None


def _starts_top_level(text: str, at: int) -> bool:
    first = text[at : at + 1]
    return bool(first) and (first.isalnum() or first in "_@#")


_INDENTED_HEADER = "if 1:\n"
_DEFINITION = re.compile(r"^([ \t]*)(?:(?:async[ \t]+)?def\b|class\b|@)", re.MULTILINE)


def _outermost_definition(text: str, start: int, line_start: int) -> int:
    """Offset of the first least indented line in ``text[start:line_start]`` that opens a
    Python definition (``def``, ``class``, a decorator); ``start`` when there is none."""
    best: tuple[int, int] | None = None
    for found in _DEFINITION.finditer(text, start, line_start):
        indent = len(found.group(1).expandtabs())
        if best is None or indent < best[0]:
            best = (indent, found.start())
    return start if best is None else best[1]


def _top_level_window(text: str, line_start: int, line_end: int) -> tuple[int, int]:
    """Offsets of the lines from the nearest top-level statement before the cursor's line
    (at most _WINDOW_BEFORE lines up) to just before the next one (at most _WINDOW_AFTER)."""
    start = line_start
    for _ in range(_WINDOW_BEFORE):
        if start == 0:
            break
        previous = text.rfind("\n", 0, start - 1) + 1
        start = previous
        if _starts_top_level(text, start):
            break
    end = line_end
    for _ in range(_WINDOW_AFTER):
        if end >= len(text):
            break
        following = end + 1
        if _starts_top_level(text, following):
            break
        next_end = text.find("\n", following)
        end = len(text) if next_end < 0 else next_end
    return start, end


def _previous_content_byte(source: bytes, cursor_byte: int) -> int:
    index = cursor_byte - 1
    while index > 0 and source[index : index + 1].isspace():
        index -= 1
    return index


def _is_empty_body(node: tree_sitter.Node) -> bool:
    return all(
        child.type in ("comment", "line_comment", "block_comment") for child in node.named_children
    )
