"""The edit benchmark's tasks (``edit_tasks.toml``): what to select in which pinned file, what
to ask, and how to check the answer.

A task selects whole lines: a definition by its qualified name (``"Cache.pop"``; decorators
included; Python through ``ast``, JavaScript/TypeScript through tree-sitter) or a line range.
Its split is its project's, from corpus.toml.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tree_sitter

from ghostcomplete.bench.corpus import language_of, load_manifest
from ghostcomplete.bench.edit_checks import parse_check
from ghostcomplete.context.syntax import parser_for

TASKS_FILE = Path(__file__).with_name("edit_tasks.toml")
KINDS = ("rename", "type_hints", "docstring", "logging", "f_strings", "no_var")
_FIELDS = {"id", "project", "path", "kind", "instruction", "checks", "definition", "lines"}
# tree-sitter nodes that define a name, and the field that holds it.
_SCRIPT_DEFINITIONS = {
    "function_declaration",
    "generator_function_declaration",
    "class_declaration",
    "abstract_class_declaration",
    "method_definition",
}
_SCRIPT_FUNCTIONS = {"arrow_function", "function_expression", "function", "generator_function"}


class TaskFileError(Exception):
    """A task is malformed, or its selection cannot be found in its file."""


@dataclass(frozen=True)
class EditTask:
    task_id: str
    project: str  # a project's name in corpus.toml
    path: str  # relative to the project's unpacked folder
    kind: str
    instruction: str
    checks: tuple[str, ...]
    definition: str | None  # a qualified name, or None with ``lines``
    lines: tuple[int, int] | None  # first and last line, from 1
    split: str

    @property
    def language(self) -> str:
        return language_of(self.path)


def corpus_splits() -> dict[str, str]:
    """Each pinned project's split (dev or test), by name."""
    manifest = load_manifest()
    return {
        str(entry["name"]): str(entry["split"])
        for kind in ("pypi", "npm")
        for entry in manifest.get(kind, [])
    }


def _task(entry: dict[str, Any], splits: dict[str, str]) -> EditTask:
    name = str(entry.get("id", "?"))
    unknown = set(entry) - _FIELDS
    if unknown:
        raise TaskFileError(f"task {name}: unknown fields {sorted(unknown)}")
    missing = {"id", "project", "path", "kind", "instruction", "checks"} - set(entry)
    if missing:
        raise TaskFileError(f"task {name}: missing {sorted(missing)}")
    if ("definition" in entry) == ("lines" in entry):
        raise TaskFileError(f"task {name}: give either definition or lines")
    if entry["kind"] not in KINDS:
        raise TaskFileError(f"task {name}: kind {entry['kind']!r} is not one of {KINDS}")
    project = str(entry["project"])
    if project not in splits:
        raise TaskFileError(f"task {name}: project {project!r} is not in the corpus")
    path = str(entry["path"])
    language = language_of(path)
    checks = tuple(str(check) for check in entry["checks"])
    for check in checks:
        try:
            parse_check(check, language)
        except ValueError as error:
            raise TaskFileError(f"task {name}: {error}") from None
    lines = entry.get("lines")
    if lines is not None and not (
        isinstance(lines, list) and len(lines) == 2 and 1 <= lines[0] <= lines[1]
    ):
        raise TaskFileError(f"task {name}: lines must be [first, last], from 1")
    return EditTask(
        task_id=name,
        project=project,
        path=path,
        kind=str(entry["kind"]),
        instruction=str(entry["instruction"]),
        checks=checks,
        definition=str(entry["definition"]) if "definition" in entry else None,
        lines=(int(lines[0]), int(lines[1])) if lines is not None else None,
        split=splits[project],
    )


def load_tasks(path: Path = TASKS_FILE, splits: dict[str, str] | None = None) -> list[EditTask]:
    """The tasks of ``path``; ``splits``: project name -> split (default: corpus.toml's)."""
    try:
        with path.open("rb") as handle:
            entries = tomllib.load(handle).get("task", [])
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TaskFileError(f"{path}: {error}") from None
    known = corpus_splits() if splits is None else splits
    tasks = [_task(entry, known) for entry in entries]
    seen: set[str] = set()
    for task in tasks:
        if task.task_id in seen:
            raise TaskFileError(f"task id {task.task_id!r} is used twice")
        seen.add(task.task_id)
    return tasks


def _python_definitions(text: str) -> dict[str, list[tuple[int, int]]]:
    """Qualified name -> (first line, last line) of each def/class (decorators included)."""
    found: dict[str, list[tuple[int, int]]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.setdefault(name, []).append((first, child.end_lineno or child.lineno))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(text), "")
    return found


def _script_name(node: tree_sitter.Node) -> str | None:
    if node.type in _SCRIPT_DEFINITIONS:
        name = node.child_by_field_name("name")
        return name.text.decode() if name is not None and name.text is not None else None
    if node.type == "variable_declarator":
        value, name = node.child_by_field_name("value"), node.child_by_field_name("name")
        if value is not None and value.type in _SCRIPT_FUNCTIONS and name is not None:
            return name.text.decode() if name.text is not None else None
    return None


def _script_statement(node: tree_sitter.Node) -> tree_sitter.Node:
    """The statement that holds a definition (``export const f = () => ...`` for ``f``)."""
    if node.type == "variable_declarator" and node.parent is not None:
        node = node.parent
    if node.parent is not None and node.parent.type == "export_statement":
        node = node.parent
    return node


def _script_definitions(text: str, language: str) -> dict[str, list[tuple[int, int]]]:
    parser = parser_for(language)
    if parser is None:
        raise TaskFileError(f"no tree-sitter grammar for {language}")
    found: dict[str, list[tuple[int, int]]] = {}
    stack = [(parser.parse(text.encode("utf-8")).root_node, "")]
    while stack:
        node, prefix = stack.pop()
        name = _script_name(node)
        if name is not None:
            statement = _script_statement(node)
            span = (statement.start_point[0] + 1, statement.end_point[0] + 1)
            found.setdefault(prefix + name, []).append(span)
            prefix = prefix + name + "."
        stack.extend((child, prefix) for child in node.children)
    return found


def _line_offsets(text: str, first: int, last: int) -> tuple[int, int]:
    starts = [0]
    starts += [index + 1 for index, char in enumerate(text) if char == "\n"]
    if last > len(starts) or (last == len(starts) and starts[-1] == len(text)):
        raise TaskFileError(f"lines {first}-{last} are past the end of the file")
    end = starts[last] if last < len(starts) else len(text)
    return starts[first - 1], end


def select(task: EditTask, text: str) -> tuple[int, int]:
    """The selection's start and end offsets in ``text`` (whole lines)."""
    if task.lines is not None:
        return _line_offsets(text, *task.lines)
    assert task.definition is not None
    if task.language == "python":
        definitions = _python_definitions(text)
    else:
        definitions = _script_definitions(text, task.language)
    spans = definitions.get(task.definition, [])
    if len(spans) != 1:
        how = "is not defined" if not spans else f"is defined {len(spans)} times"
        raise TaskFileError(f"task {task.task_id}: {task.definition} {how} in {task.path}")
    return _line_offsets(text, *spans[0])
