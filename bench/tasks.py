"""Acceptance tasks: seeded cursor positions cut into real files.

Three kinds, each drawn uniformly (with a seeded generator) from every eligible position of
a repository, never hand-picked:

- ``line``: a cursor at a word boundary inside a code line; the target is the rest of it.
- ``api``: a cursor just before a use of a name the file imports from another file of the
  same repository; the target is the rest of that line.
- ``block``: a function whose body (1 to 20 lines) is removed; the cursor sits on the body's
  first line after its indentation; the target is the body.

The document the server sees is ``prefix + suffix`` (the target cut out); up to 20 other
files of the repository are open, nearest first (see ``imports.nearest_files``).
"""

from __future__ import annotations

import ast
import io
import random
import re
import tokenize
from dataclasses import dataclass

from ghostcomplete.bench.corpus import Repo, family, language_of
from ghostcomplete.bench.imports import JS_IMPORT, ImportGraph, import_graph, nearest_files

KINDS = ("line", "api", "block")
MAX_BLOCK_LINES = 20
_WORD = re.compile(r"[A-Za-z0-9_$]")
_COMMENT_STARTS = ("#", "//", "/*", "*", '"""', "'''")


@dataclass(frozen=True)
class Task:
    repo: str
    path: str
    kind: str
    language_id: str
    prefix: str
    target: str
    suffix: str
    neighbours: tuple[str, ...]

    @property
    def task_id(self) -> str:
        line = self.prefix.count("\n") + 1
        column = len(self.prefix) - self.prefix.rfind("\n")
        return f"{self.repo}:{self.path}:{line}:{column}:{self.kind}"


def _string_lines(text: str) -> set[int]:
    """0-based numbers of lines inside multi-line Python strings (docstrings)."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0] - 1, token.end[0]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return inside


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= 4 and not stripped.startswith(_COMMENT_STARTS)


def _boundary(line: str, column: int) -> bool:
    """Not between two word characters (the server skips mid-word cursors)."""
    if column == 0 or column >= len(line):
        return True
    return not (_WORD.match(line[column - 1]) and _WORD.match(line[column]))


def _cut(text: str, start: int, end: int) -> tuple[str, str, str]:
    return text[:start], text[start:end], text[end:]


def _line_positions(path: str, text: str) -> list[tuple[int, int]]:
    """(start offset, end offset) of rest-of-line targets in code lines."""
    skip = _string_lines(text) if family(path) == "python" else set()
    found: list[tuple[int, int]] = []
    offset = 0
    for number, line in enumerate(text.split("\n")):
        body = line.rstrip()
        if number not in skip and _is_code(body):
            indent = len(body) - len(body.lstrip())
            for column in range(indent, len(body)):
                if _boundary(body, column) and body[column:].strip() and offset > 40:
                    found.append((offset + column, offset + len(body)))
        offset += len(line) + 1
    return found


def _python_uses(text: str, names: dict[str, str]) -> list[int]:
    """Offsets where an imported name is used (not where it is imported)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    lines = text.split("\n")
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Load):
            line = lines[node.lineno - 1]
            column = len(line.encode("utf-8")[: node.col_offset].decode("utf-8", "replace"))
            found.append(starts[node.lineno - 1] + column)
    return sorted(found)


def _js_uses(text: str, names: dict[str, str]) -> list[int]:
    if not names:
        return []
    pattern = re.compile(r"(?<![\w$.])(" + "|".join(map(re.escape, names)) + r")(?![\w$])")
    skip = [(m.start(), m.end()) for m in JS_IMPORT.finditer(text)]
    found: list[int] = []
    offset = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if any(start <= offset < end for start, end in skip):
            offset += len(line) + 1
            continue
        if (
            _is_code(line)
            and not stripped.startswith(("import ", "export {", "export *"))
            and "require(" not in line
        ):
            for match in pattern.finditer(line):
                if line[: match.start()].count("'") % 2 == 0 and "//" not in line[: match.start()]:
                    found.append(offset + match.start())
        offset += len(line) + 1
    return found


def _api_positions(path: str, text: str, graph: ImportGraph) -> list[tuple[int, int]]:
    names = graph.names.get(path, {})
    uses = _python_uses(text, names) if family(path) == "python" else _js_uses(text, names)
    found = []
    for start in uses:
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        while end > start and text[end - 1] in " \t\r":
            end -= 1
        if start > 40:
            found.append((start, end))
    return found


def _python_blocks(text: str) -> list[tuple[int, int]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.body:
            continue
        first, last = node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno
        header_end = node.body[0].lineno - 1
        if first == node.lineno or last - first + 1 > MAX_BLOCK_LINES:
            continue
        if not lines[header_end - 1].rstrip().endswith(":"):
            continue  # a comment or blank line between header and body: keep it simple
        body_line = lines[first - 1]
        indent = len(body_line) - len(body_line.lstrip())
        start = starts[first - 1] + indent
        end = starts[last - 1] + len(lines[last - 1].rstrip())
        found.append((start, end))
    return found


_JS_HEADER = re.compile(r"(\bfunction\b.*\)|^\s*(async\s+)?[\w$]+\s*\(.*\)|=>)\s*(:\s*[^{]+)?\{$")
_JS_KEYWORDS = {"if", "for", "while", "switch", "catch", "with", "return", "else"}


def _js_blocks(text: str) -> list[tuple[int, int]]:
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    found = []
    for number, line in enumerate(lines):
        body = line.rstrip()
        head = body.strip().split("(")[0].split()
        if not _JS_HEADER.search(body) or (head and head[-1] in _JS_KEYWORDS):
            continue
        indent = len(body) - len(body.lstrip())
        for close in range(number + 1, min(len(lines), number + MAX_BLOCK_LINES + 2)):
            other = lines[close]
            if other.strip() and len(other) - len(other.lstrip()) <= indent:
                if other.strip().startswith("}") and close > number + 1:
                    first, last = number + 1, close - 1
                    while last > first and not lines[last].strip():
                        last -= 1
                    inner = lines[first]
                    start = starts[first] + len(inner) - len(inner.lstrip())
                    if lines[first].strip():
                        found.append((start, starts[last] + len(lines[last].rstrip())))
                break
    return found


def _positions(kind: str, path: str, text: str, graph: ImportGraph) -> list[tuple[int, int]]:
    if kind == "line":
        return _line_positions(path, text)
    if kind == "api":
        return _api_positions(path, text, graph)
    return _python_blocks(text) if family(path) == "python" else _js_blocks(text)


def make_tasks(repo: Repo, per_kind: int, seed: int, kinds: tuple[str, ...] = KINDS) -> list[Task]:
    """``per_kind`` tasks of each kind from ``repo``, the same for the same seed."""
    texts = {path: repo.text(path) for path in repo.files}
    graph = import_graph(repo, texts)
    tasks: list[Task] = []
    for kind in kinds:
        pool: list[tuple[str, int, int]] = []
        for path in repo.files:
            pool += [(path, s, e) for s, e in _positions(kind, path, texts[path], graph)]
        rng = random.Random(f"{seed}:{repo.label}:{kind}")
        chosen = rng.sample(pool, min(per_kind, len(pool)))
        for path, start, end in chosen:
            prefix, target, suffix = _cut(texts[path], start, end)
            neighbours = tuple(nearest_files(repo, graph, path))
            tasks.append(
                Task(repo.label, path, kind, language_of(path), prefix, target, suffix, neighbours)
            )
    return tasks
