"""Mechanical checks of an edit's result, for ``ghostcomplete bench edit``.

A check looks at the file before and after the edit and the selection in each, and says what
is wrong or nothing. Every task runs ``in_selection`` first (nothing outside the selection
changed), then its own checks in order; the first that fails is the task's failure.

- ``parses``: the edited file parses (Python: ``ast``; JavaScript/TypeScript: tree-sitter,
  with no error node).
- ``renamed OLD NEW``: no identifier ``OLD`` is left in the selection, ``NEW`` is there, and
  the code is the original with ``OLD`` renamed in the selection (words in strings may follow).
- ``docstring``: a docstring (Python) or a ``/** ... */`` comment (JavaScript/TypeScript) was
  added and the code is otherwise unchanged.
- ``type_hints`` (Python): annotations added, typing imports allowed, nothing else changed.
- ``logging`` (Python): no ``print`` call left in the selection, a logging call there, and
  nothing else changed.
- ``f_strings`` (Python): no ``%`` or ``str.format`` on a literal left in the selection, an
  f-string added, and nothing else changed.
- ``no_var`` (JavaScript/TypeScript): no ``var`` left in the selection, each one now ``let``
  or ``const``, and nothing else changed.

Python's checks compare syntax trees (bench/edit_python.py); JavaScript's compare tree-sitter's
tokens, comments left out, so layout and comments may change and code may not.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from ghostcomplete.bench import edit_python as py
from ghostcomplete.bench.edit_python import Mismatch
from ghostcomplete.context.syntax import parser_for

PYTHON = ("python",)
SCRIPT = ("javascript", "javascriptreact", "typescript", "typescriptreact")
_IDENTIFIERS = {
    "identifier",
    "property_identifier",
    "shorthand_property_identifier",
    "shorthand_property_identifier_pattern",
    "type_identifier",
    "private_property_identifier",
    "statement_identifier",
}
_STRING_TEXT = {"string_fragment", "string_content"}


@dataclass(frozen=True)
class EditResult:
    """A file before and after an edit; ``start``/``end``: the selection in ``before``."""

    language: str  # LSP language id
    before: str
    after: str
    start: int
    end: int

    @property
    def new_end(self) -> int:
        """Where the selection ends in ``after``."""
        return self.end + len(self.after) - len(self.before)

    @property
    def selection(self) -> str:
        return self.before[self.start : self.end]

    @property
    def edited_selection(self) -> str:
        return self.after[self.start : self.new_end]

    def spans(self) -> tuple[tuple[py.Position, py.Position], ...]:
        """The selection as Python positions, in ``before`` then in ``after``."""
        return (
            (py.position(self.before, self.start), py.position(self.before, self.end)),
            (py.position(self.after, self.start), py.position(self.after, self.new_end)),
        )


@dataclass(frozen=True)
class Failure:
    check: str  # the check's name, e.g. "renamed"
    why: str


def in_selection(result: EditResult) -> None:
    start, end, new_end = result.start, result.end, result.new_end
    if (
        new_end < start
        or result.after[:start] != result.before[:start]
        or result.after[new_end:] != result.before[end:]
    ):
        raise Mismatch("text outside the selection changed")


def _tree_has_error(text: str, language: str) -> bool:
    parser = parser_for(language)
    if parser is None:
        raise Mismatch(f"no tree-sitter grammar for {language}")
    return bool(parser.parse(text.encode("utf-8")).root_node.has_error)


def parses(result: EditResult) -> None:
    if result.language in PYTHON:
        py.parse(result.after, "edited")
    elif _tree_has_error(result.after, result.language):
        raise Mismatch("the edited file has a syntax error (tree-sitter)")


def _leaves(text: str, language: str, start: int, end: int) -> list[tuple[str, str]]:
    """(type, text) of tree-sitter's leaves that start in ``text[start:end]``."""
    parser = parser_for(language)
    assert parser is not None
    data = text.encode("utf-8")
    low, high = len(text[:start].encode("utf-8")), len(text[:end].encode("utf-8"))
    found: list[tuple[str, str]] = []
    stack = [parser.parse(data).root_node]
    while stack:
        node = stack.pop()
        if node.end_byte <= low or node.start_byte >= high:
            continue
        if node.child_count == 0:
            if low <= node.start_byte < high:
                found.append((node.type, data[node.start_byte : node.end_byte].decode()))
            continue
        stack.extend(reversed(node.children))
    return found


def _script_tokens(result: EditResult) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    language = result.language
    return (
        _leaves(result.before, language, result.start, result.end),
        _leaves(result.after, language, result.start, result.new_end),
    )


def _code(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [token for token in tokens if token[0] != "comment"]


def _first_difference(before: list[str], after: list[str], what: str) -> None:
    if before == after:
        return
    at = next(
        (i for i, pair in enumerate(zip(before, after, strict=False)) if pair[0] != pair[1]), None
    )
    at = min(len(before), len(after)) if at is None else at
    old = " ".join(before[at : at + 4]) or "(end)"
    new = " ".join(after[at : at + 4]) or "(end)"
    raise Mismatch(f"{what}: {old!r} became {new!r}")


def renamed(result: EditResult, old: str, new: str) -> None:
    if result.language in PYTHON:
        py.renamed(result.before, result.after, result.spans(), old, new)
        return
    before, after = (_code(tokens) for tokens in _script_tokens(result))
    names = {text for kind, text in after if kind in _IDENTIFIERS}
    if old in names:
        raise Mismatch(f"{old!r} is still used in the selection")
    if new not in names:
        raise Mismatch(f"{new!r} does not appear in the selection")
    word = re.compile(rf"\b{re.escape(old)}\b")

    def normal(kind: str, text: str, rename: bool) -> str:
        if kind in _STRING_TEXT:
            return word.sub(new, text)
        return new if rename and kind in _IDENTIFIERS and text == old else text

    _first_difference(
        [normal(kind, text, True) for kind, text in before],
        [normal(kind, text, False) for kind, text in after],
        "more than the rename changed",
    )


def docstring(result: EditResult) -> None:
    if result.language in PYTHON:
        py.docstring(result.before, result.after)
        return
    before, after = _script_tokens(result)

    def documented(tokens: list[tuple[str, str]]) -> int:
        return sum(kind == "comment" and text.startswith("/**") for kind, text in tokens)

    if documented(after) <= documented(before):
        raise Mismatch("no /** ... */ comment was added in the selection")
    _first_difference(
        [text for _, text in _code(before)],
        [text for _, text in _code(after)],
        "more than comments changed",
    )


def no_var(result: EditResult) -> None:
    before, after = (_code(tokens) for tokens in _script_tokens(result))
    if not any(kind == "var" for kind, _ in before):
        raise Mismatch("the selection had no var to change")
    if any(kind == "var" for kind, _ in after):
        raise Mismatch("var is still used in the selection")
    declaration = {"var", "let", "const"}
    _first_difference(
        ["let|const" if kind in declaration else text for kind, text in before],
        ["let|const" if kind in declaration else text for kind, text in after],
        "more than the declarations changed",
    )


def type_hints(result: EditResult) -> None:
    py.type_hints(result.before, result.after)


def logging_calls(result: EditResult) -> None:
    py.logging_calls(result.before, result.after, result.spans()[1])


def f_strings(result: EditResult) -> None:
    py.f_strings(result.before, result.after, result.spans())


@dataclass(frozen=True)
class CheckKind:
    run: Callable[..., None]
    arguments: tuple[str, ...]  # what its arguments are, for messages
    languages: tuple[str, ...]


CHECKS: dict[str, CheckKind] = {
    "parses": CheckKind(parses, (), PYTHON + SCRIPT),
    "renamed": CheckKind(renamed, ("OLD", "NEW"), PYTHON + SCRIPT),
    "docstring": CheckKind(docstring, (), PYTHON + SCRIPT),
    "type_hints": CheckKind(type_hints, (), PYTHON),
    "logging": CheckKind(logging_calls, (), PYTHON),
    "f_strings": CheckKind(f_strings, (), PYTHON),
    "no_var": CheckKind(no_var, (), SCRIPT),
}


def parse_check(spec: str, language: str) -> tuple[str, list[str]]:
    """``"renamed old new"`` -> ("renamed", ["old", "new"]); ValueError when it is not a
    check this language has, or has the wrong number of arguments."""
    words = shlex.split(spec)
    if not words or words[0] not in CHECKS:
        raise ValueError(f"unknown check {spec!r}: one of {', '.join(CHECKS)}")
    name, arguments = words[0], words[1:]
    kind = CHECKS[name]
    if len(arguments) != len(kind.arguments):
        usage = " ".join([name, *kind.arguments])
        raise ValueError(f"check {spec!r}: write it as {usage!r}")
    if language not in kind.languages:
        raise ValueError(f"check {name!r} has no {language} version")
    return name, arguments


def first_failure(result: EditResult, specs: list[str]) -> Failure | None:
    """The first check that fails (``in_selection`` first), or None when all pass."""
    steps: list[tuple[str, Callable[..., None], list[str]]] = [("in_selection", in_selection, [])]
    for spec in specs:
        name, arguments = parse_check(spec, result.language)
        steps.append((name, CHECKS[name].run, arguments))
    for name, run, arguments in steps:
        try:
            run(result, *arguments)
        except Mismatch as mismatch:
            return Failure(name, str(mismatch))
    return None
