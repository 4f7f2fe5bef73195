"""Which file of a repository imports which, and under what local names.

Python is read with ``ast``; JavaScript/TypeScript with patterns for ``import ... from`` and
``require(...)`` of relative paths (packages outside the repository are not followed).
"""

from __future__ import annotations

import ast
import posixpath
import re
from dataclasses import dataclass, field

from ghostcomplete.bench.corpus import Repo, family


@dataclass
class ImportGraph:
    """``imports[path]``: same-repo files ``path`` imports; ``names[path]``: local name ->
    the same-repo file it comes from."""

    imports: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, dict[str, str]] = field(default_factory=dict)

    def linked(self, a: str, b: str) -> bool:
        return b in self.imports.get(a, set()) or a in self.imports.get(b, set())


def _module_of(path: str) -> str:
    stem = path[: -len(".py")] if path.endswith(".py") else path
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


class _PythonModules:
    """Resolve dotted module names to files; tolerant of src/ layouts and stdlib roots."""

    def __init__(self, files: list[str]) -> None:
        self.by_module: dict[str, str] = {}
        for path in files:
            self.by_module[_module_of(path)] = path

    def resolve(self, dotted: str) -> str | None:
        if not dotted:
            return None
        found = self.by_module.get(dotted)
        if found:
            return found
        ending = "." + dotted
        matches = [path for module, path in self.by_module.items() if module.endswith(ending)]
        return min(matches, key=len) if matches else None


def _python_imports(path: str, text: str, modules: _PythonModules) -> tuple[set[str], dict]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set(), {}
    package = _module_of(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    files: set[str] = set()
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = modules.resolve(alias.name)
                if target and target != path:
                    files.add(target)
                    if alias.asname:
                        names[alias.asname] = target
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                keep = len(package) - (node.level - 1)
                if keep < 0:
                    continue
                base = ".".join([*package[:keep], *([base] if base else [])])
            for alias in node.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name
                target = modules.resolve(f"{base}.{alias.name}" if base else alias.name)
                target = target or modules.resolve(base)
                if target and target != path:
                    files.add(target)
                    names[local] = target
    return files, names


JS_IMPORT = re.compile(
    r"""import\s+(?:type\s+)?(?P<what>[\w*{}\s,$]+?)\s+from\s+['"](?P<spec>\.[^'"]*)['"]"""
    r"""|(?:const|let|var)\s+(?P<req>[\w${}\s,:]+?)\s*=\s*require\(\s*['"](?P<rspec>\.[^'"]*)['"]"""
)
_JS_EXTENSIONS = (".ts", ".tsx", ".js", ".mjs", ".cjs", ".jsx")


def _resolve_js(path: str, spec: str, known: set[str]) -> str | None:
    base = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
    stem = re.sub(r"\.(m?js|cjs|jsx)$", "", base)
    candidates = [base, *(stem + ext for ext in _JS_EXTENSIONS)]
    candidates += [f"{base}/index{ext}" for ext in _JS_EXTENSIONS]
    return next((c for c in candidates if c in known), None)


def _js_local_names(clause: str) -> list[str]:
    clause = clause.replace("type ", " ")
    names: list[str] = []
    inner = re.search(r"\{([^}]*)\}", clause)
    if inner:
        for part in inner.group(1).split(","):
            part = part.strip()
            if not part:
                continue
            local = re.split(r"\s+as\s+|\s*:\s*", part)[-1].strip()
            names.append(local)
        clause = clause[: inner.start()] + clause[inner.end() :]
    for part in clause.split(","):
        part = part.strip()
        if part.startswith("*"):
            part = part.split()[-1]
        if re.fullmatch(r"[A-Za-z_$][\w$]*", part):
            names.append(part)
    return names


def _js_imports(path: str, text: str, known: set[str]) -> tuple[set[str], dict]:
    files: set[str] = set()
    names: dict[str, str] = {}
    for match in JS_IMPORT.finditer(text):
        spec = match.group("spec") or match.group("rspec")
        clause = match.group("what") or match.group("req") or ""
        target = _resolve_js(path, spec, known)
        if target is None or target == path:
            continue
        files.add(target)
        for local in _js_local_names(clause):
            names[local] = target
    return files, names


def import_graph(repo: Repo, texts: dict[str, str]) -> ImportGraph:
    graph = ImportGraph()
    python = [p for p in repo.files if family(p) == "python"]
    modules = _PythonModules(python)
    known = set(repo.files)
    for path in repo.files:
        text = texts[path]
        if family(path) == "python":
            files, names = _python_imports(path, text, modules)
        elif family(path) == "javascript":
            files, names = _js_imports(path, text, known)
        else:
            continue
        graph.imports[path] = files
        graph.names[path] = names
    return graph


def nearest_files(repo: Repo, graph: ImportGraph, target: str, limit: int = 20) -> list[str]:
    """Other files of the target's language family, nearest first: files it imports or that
    import it, then the same folder, then by folder distance; ties by path."""
    here = posixpath.dirname(target).split("/")

    def distance(other: str) -> int:
        there = posixpath.dirname(other).split("/")
        common = 0
        for a, b in zip(here, there, strict=False):
            if a != b:
                break
            common += 1
        return (len(here) - common) + (len(there) - common)

    lang = family(target)
    others = [p for p in repo.files if p != target and family(p) == lang]
    others.sort(key=lambda p: (0 if graph.linked(target, p) else 1, distance(p), p))
    return others[:limit]
