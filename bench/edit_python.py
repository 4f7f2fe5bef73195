"""Python's side of the edit checks (bench/edit_checks.py): each check brings both files to a
normal form with ``ast`` (what the instruction may change taken out) and compares the two.

Comparing syntax trees rather than text lets a model re-wrap lines or change quotes; it does not
let it change what the code does. Positions decide what lies in the selection: a node belongs
to it when its first character does.
"""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from collections.abc import Iterator

# (line, column in UTF-8 bytes), as ast numbers positions.
Position = tuple[int, int]
_TYPING_MODULES = {"typing", "typing_extensions", "collections.abc", "__future__"}
_LOG_LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class Mismatch(Exception):
    """The edited code is not what the check asks for; the message says how."""


def parse(text: str, which: str) -> ast.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in third-party code
            return ast.parse(text)
    except (SyntaxError, ValueError) as error:
        why = error.msg if isinstance(error, SyntaxError) else str(error)
        line = getattr(error, "lineno", None)
        raise Mismatch(f"the {which} file does not parse: {why} (line {line})") from None


def position(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, len(text[line_start:offset].encode("utf-8"))


def _at(node: ast.AST) -> Position | None:
    line = getattr(node, "lineno", None)
    return (line, getattr(node, "col_offset", 0)) if line is not None else None


def _inside(node: ast.AST, span: tuple[Position, Position]) -> bool:
    at = _at(node)
    return at is not None and span[0] <= at < span[1]


def nodes_in(tree: ast.AST, span: tuple[Position, Position]) -> Iterator[ast.AST]:
    return (node for node in ast.walk(tree) if _inside(node, span))


def _name_fields(node: ast.AST) -> list[str]:
    """The fields of ``node`` that hold a name the code defines or uses."""
    if isinstance(node, ast.Name):
        return ["id"]
    if isinstance(node, ast.arg):
        return ["arg"]
    if isinstance(node, ast.Attribute):
        return ["attr"]
    if isinstance(node, (*_DEFINITIONS, ast.ExceptHandler)):
        return ["name"]
    if isinstance(node, ast.keyword):
        return ["arg"]
    if isinstance(node, ast.alias):
        return ["name", "asname"]
    return []


def names_in(tree: ast.AST, span: tuple[Position, Position]) -> set[str]:
    found: set[str] = set()
    for node in nodes_in(tree, span):
        for field in _name_fields(node):
            value = getattr(node, field, None)
            if isinstance(value, str):
                found.add(value)
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            found.update(node.names)
    return found


def _same(before: ast.AST, after: ast.AST, what: str) -> None:
    """Mismatch unless the two normal forms are equal; the message shows the first difference."""
    if ast.dump(before) == ast.dump(after):
        return
    old, new = ast.unparse(before).splitlines(), ast.unparse(after).splitlines()
    changed = [
        f"{line[0]} {line[1:].strip()}"
        for line in difflib.unified_diff(old, new, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()
    ]
    shown = "; ".join(changed[:2])[:160]
    raise Mismatch(f"{what}: {shown}" if shown else what)


def renamed(
    before: str, after: str, spans: tuple[tuple[Position, Position], ...], old: str, new: str
) -> None:
    """``old`` renamed to ``new`` in the selection and nothing else changed (words in strings
    may follow the rename or not)."""
    span_before, span_after = spans
    original, edited = parse(before, "original"), parse(after, "edited")
    left = names_in(edited, span_after)
    if old in left:
        raise Mismatch(f"{old!r} is still used in the selection")
    if new not in left:
        raise Mismatch(f"{new!r} does not appear in the selection")
    for node in nodes_in(original, span_before):
        for field in _name_fields(node):
            if getattr(node, field, None) == old:
                setattr(node, field, new)
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [new if name == old else name for name in node.names]
    word = re.compile(rf"\b{re.escape(old)}\b")
    for tree in (original, edited):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                node.value = word.sub(new, node.value)
    _same(original, edited, "more than the rename changed")


def _all_arguments(arguments: ast.arguments) -> list[ast.arg]:
    found = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return found + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]


def _typing_import(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module in _TYPING_MODULES
    return isinstance(node, ast.Import) and all(a.name in _TYPING_MODULES for a in node.names)


class _WithoutAnnotations(ast.NodeTransformer):
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        for argument in _all_arguments(node.args):
            argument.annotation = None
        self.generic_visit(node)
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        for argument in _all_arguments(node.args):
            argument.annotation = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        return None if _typing_import(node) else node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        return None if _typing_import(node) else node


def _annotations(tree: ast.AST) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += node.returns is not None
            count += sum(a.annotation is not None for a in _all_arguments(node.args))
        elif isinstance(node, ast.AnnAssign):
            count += 1
    return count


def type_hints(before: str, after: str) -> None:
    """Annotations added (imports from typing allowed) and nothing else changed."""
    original, edited = parse(before, "original"), parse(after, "edited")
    added = _annotations(edited) - _annotations(original)
    if added <= 0:
        raise Mismatch("no annotation was added")
    strip = _WithoutAnnotations()
    _same(strip.visit(original), strip.visit(edited), "more than annotations changed")


def _docstring_holders(
    tree: ast.AST,
) -> Iterator[ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, *_DEFINITIONS)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                yield node


def docstring(before: str, after: str) -> None:
    """A docstring added and the code otherwise unchanged."""
    original, edited = parse(before, "original"), parse(after, "edited")
    counts = []
    for tree in (original, edited):
        holders = list(_docstring_holders(tree))
        counts.append(len(holders))
        for holder in holders:
            holder.body = holder.body[1:]
    if counts[1] <= counts[0]:
        raise Mismatch("no docstring was added")
    _same(original, edited, "more than docstrings changed")


def _is_print(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    )


def _is_log_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    if node.func.attr not in _LOG_LEVELS:
        return False
    owner = node.func.value
    name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
    return "log" in name.lower()


class _WithoutOutput(ast.NodeTransformer):
    """Every print or logging statement as one marker (a run of them as one); logging's
    imports and logger lookups gone."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            kept: list[ast.stmt] = []
            for statement in statements:
                if isinstance(statement, ast.Expr) and (
                    _is_print(statement.value) or _is_log_call(statement.value)
                ):
                    if (
                        kept
                        and isinstance(kept[-1], ast.Expr)
                        and getattr(kept[-1].value, "value", None) == "<output>"
                    ):
                        continue
                    statement = ast.Expr(ast.Constant("<output>"))
                kept.append(statement)
            setattr(node, field, kept)
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        return None if [a.name for a in node.names] == ["logging"] else node

    def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "attr", "") == "getLogger":
            return None
        return node


def logging_calls(before: str, after: str, span_after: tuple[Position, Position]) -> None:
    """``print`` calls turned into logging calls, and nothing else changed."""
    original, edited = parse(before, "original"), parse(after, "edited")
    inside = list(nodes_in(edited, span_after))
    if any(_is_print(node) for node in inside):
        raise Mismatch("print is still called in the selection")
    if not any(_is_log_call(node) for node in inside):
        raise Mismatch("no logging call in the selection")
    strip = _WithoutOutput()
    _same(strip.visit(original), strip.visit(edited), "more than the output calls changed")


def _is_old_format(node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    )


class _WithoutFormatting(ast.NodeTransformer):
    def visit(self, node: ast.AST) -> ast.AST:
        if _is_old_format(node) or isinstance(node, ast.JoinedStr):
            return ast.Constant("<formatted>")
        return super().visit(node)


def f_strings(before: str, after: str, spans: tuple[tuple[Position, Position], ...]) -> None:
    """``%`` and ``str.format`` formatting turned into f-strings, and nothing else changed."""
    original, edited = parse(before, "original"), parse(after, "edited")
    inside = list(nodes_in(edited, spans[1]))
    if any(_is_old_format(node) for node in inside):
        raise Mismatch("%-formatting or str.format is still used in the selection")
    was = sum(isinstance(n, ast.JoinedStr) for n in nodes_in(original, spans[0]))
    if sum(isinstance(n, ast.JoinedStr) for n in inside) <= was:
        raise Mismatch("no f-string was added in the selection")
    strip = _WithoutFormatting()
    _same(strip.visit(original), strip.visit(edited), "more than the string formatting changed")
