"""The package layout: every subpackage ships, only server/ speaks LSP, and imports follow the flow.

The folders are layers, from document facts up to the LSP surface. A module imports only from its
own folder or from folders listed before its own: nothing climbs back up the flow, and no two
modules import each other, even through others, even under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from support import REPO

# Lowest first. bench/ and model/ drive the engine from outside; server/ is the top (the CLI).
LAYERS = [
    "context",
    "ranker",
    "postprocess",
    "backends",
    "completion",
    "edit",
    "telemetry",
    "modelserver",
    "model",
    "bench",
    "server",
]
FORBIDDEN_NAMES = ("utils", "common", "helpers", "misc")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in LAYERS:
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(["ghostcomplete", *parts])] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, anywhere in it (functions, TYPE_CHECKING)."""
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                named.add(full if full in modules else node.module)
    return {name for name in named if name in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    assert sorted(mapping) == sorted(f"ghostcomplete.{folder}" for folder in LAYERS)
    for folder in LAYERS:
        assert mapping[f"ghostcomplete.{folder}"] == folder
        assert f"ghostcomplete.{folder}" in config["packages"]
        for sub in (REPO / folder).rglob("__init__.py"):
            relative = sub.parent.relative_to(REPO / folder)
            if relative.parts:
                name = ".".join(["ghostcomplete", folder, *relative.parts])
                assert name in config["packages"], f"{name} would vanish from the wheel"


def test_every_python_folder_is_a_package_with_a_docstring() -> None:
    for folder in LAYERS:
        for directory in [REPO / folder, *(REPO / folder).rglob("*/")]:
            if directory.name == "__pycache__" or not any(directory.glob("*.py")):
                continue
            init = directory / "__init__.py"
            assert init.exists(), f"{directory} has modules but no __init__.py"
            assert ast.get_docstring(ast.parse(init.read_text())), f"{init} says nothing"


def test_only_server_imports_pygls_or_lsprotocol() -> None:
    for folder in LAYERS:
        if folder == "server":
            continue
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    assert not name.startswith(("pygls", "lsprotocol")), f"{path} imports {name}"


def test_no_import_climbs_back_up_the_flow() -> None:
    climbs = []
    for module, imported in _graph().items():
        layer = LAYERS.index(module.split(".")[1])
        for target in imported:
            if LAYERS.index(target.split(".")[1]) > layer:
                climbs.append(f"{module} imports {target}")
    assert climbs == []


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_catch_all_module_names() -> None:
    for folder in LAYERS:
        for path in (REPO / folder).rglob("*.py"):
            stem = path.stem
            assert not any(name in stem for name in FORBIDDEN_NAMES), f"{path}: say what it does"
