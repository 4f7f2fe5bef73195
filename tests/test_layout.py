"""The package layout: every subpackage ships, and only server/ speaks LSP."""

from __future__ import annotations

import ast
import tomllib

from support import REPO

PACKAGE_FOLDERS = ["server", "context", "ranker", "backends", "telemetry", "bench", "model"]


def test_every_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    for folder in PACKAGE_FOLDERS:
        assert mapping[f"ghostcomplete.{folder}"] == folder
        assert f"ghostcomplete.{folder}" in config["packages"]
        for sub in (REPO / folder).rglob("__init__.py"):
            relative = sub.parent.relative_to(REPO / folder)
            if relative.parts:
                name = ".".join(["ghostcomplete", folder, *relative.parts])
                assert name in config["packages"], f"{name} would vanish from the wheel"


def test_only_server_imports_pygls_or_lsprotocol() -> None:
    for folder in PACKAGE_FOLDERS:
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
