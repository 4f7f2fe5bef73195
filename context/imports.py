"""Import-aware context: the definitions of imported names used near the cursor.

For Python and JS/TS, the current file's imports are read, resolved to files inside the
workspace (they need not be open), and the definitions of the names used near the cursor are
offered as signatures: a function's header and the first line of its docstring, a class's
header, fields and method headers.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import tree_sitter

from ghostcomplete.context.syntax import parser_for

_MAX_FILE_BYTES = 1_000_000
_MAX_SIGNATURE_LINES = 30
_CACHE_FILES = 256

_PY_FROM = re.compile(
    r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^#\n]*))", re.MULTILINE
)
_PY_IMPORT = re.compile(
    r"^[ \t]*import[ \t]+"
    r"([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)",
    re.MULTILINE,
)
_JS_IMPORT = re.compile(
    r"""import\s+(?:type\s+)?([\w$*{}\s,]+?)\s+from\s+['"]([^'"]+)['"]""", re.MULTILINE
)
_JS_REQUIRE = re.compile(
    r"""(?:const|let|var)\s+([\w$]+|\{[^}]*\})\s*=\s*require\(\s*['"]([^'"]+)['"]\s*\)"""
)

# Lines that only import: a name there is not yet "used".
IMPORT_LINE = re.compile(r"\s*(?:from\s+\S+\s+)?import\b|.*\brequire\(")

_JS_EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts")
_JS_LANGUAGES = {"javascript", "javascriptreact", "typescript", "typescriptreact"}


@dataclass(frozen=True)
class ImportedName:
    """``local`` is bound in the importing file to ``name`` of ``module`` (None: the module)."""

    local: str
    module: str
    name: str | None
    level: int = 0  # Python's leading dots


def _line_matches(pattern: re.Pattern[str], text: str, starts: list[int]) -> list[re.Match[str]]:
    """What ``pattern.finditer(text)`` finds, for a pattern that can only match at the start
    of a line in ``starts``: tried there alone, which skips the regex engine's walk over every
    character of a long file."""
    found: list[re.Match[str]] = []
    after = 0
    for start in starts:
        if start < after:
            continue  # inside the previous match, which finditer would not look into
        match = pattern.match(text, start)
        if match is not None:
            found.append(match)
            after = max(match.end(), start + 1)
    return found


def _lines_with(text: str, word: str) -> list[int]:
    """The start of every line that contains ``word``, in order."""
    starts: list[int] = []
    at = text.find(word)
    while at >= 0:
        start = text.rfind("\n", 0, at) + 1
        if not starts or starts[-1] != start:
            starts.append(start)
        at = text.find(word, at + len(word))
    return starts


def python_imports(text: str) -> list[ImportedName]:
    found: list[ImportedName] = []
    # Both statements have "import" on their first line.
    starts = _lines_with(text, "import")
    for match in _line_matches(_PY_FROM, text, starts):
        dots, module = match.group(1), match.group(2)
        names = match.group(3) if match.group(3) is not None else match.group(4)
        for part in re.sub(r"#[^\n]*", "", names).replace("\n", " ").split(","):
            words = part.split()
            if not words or words[0] == "*":
                continue
            local = words[2] if len(words) == 3 and words[1] == "as" else words[0]
            found.append(ImportedName(local, module, words[0], len(dots)))
    for match in _line_matches(_PY_IMPORT, text, starts):
        for part in match.group(1).split(","):
            words = part.split()
            if not words:
                continue
            local = words[2] if len(words) == 3 else words[0].split(".")[0]
            module = words[0] if len(words) == 3 else words[0].split(".")[0]
            found.append(ImportedName(local, module, None))
    return found


def js_imports(text: str) -> list[ImportedName]:
    found: list[ImportedName] = []
    for pattern in (_JS_IMPORT, _JS_REQUIRE):
        for match in pattern.finditer(text):
            clause, module = match.group(1), match.group(2)
            if not module.startswith("."):
                continue  # packages from node_modules are not the workspace's code
            named = re.search(r"\{([^}]*)\}", clause)
            if named:
                for part in named.group(1).split(","):
                    words = part.replace("type ", "").split()
                    if words:
                        local = words[2] if len(words) == 3 and words[1] == "as" else words[0]
                        found.append(ImportedName(local, module, words[0]))
            rest = re.sub(r"\{[^}]*\}", "", clause).strip().strip(",").strip()
            if rest.startswith("*"):
                alias = rest.split()[-1]
                found.append(ImportedName(alias, module, None))
            elif rest and re.fullmatch(r"[\w$]+", rest):
                found.append(ImportedName(rest, module, "default"))
    return found


def imports_of(text: str, language_id: str) -> list[ImportedName]:
    if language_id == "python":
        return python_imports(text)
    if language_id in _JS_LANGUAGES:
        return js_imports(text)
    return []


# Whether a path is a file, remembered this long: resolving a file's imports asks the same
# questions at every keystroke, and a module created or deleted shows up within this time.
_IS_FILE_TTL_S = 2.0
_IS_FILE: OrderedDict[Path, tuple[float, bool]] = OrderedDict()


def _is_file(path: Path) -> bool:
    now = time.monotonic()
    known = _IS_FILE.get(path)
    if known is not None and now - known[0] < _IS_FILE_TTL_S:
        return known[1]
    answer = path.is_file()
    _IS_FILE[path] = (now, answer)
    _IS_FILE.move_to_end(path)
    if len(_IS_FILE) > 4096:
        _IS_FILE.popitem(last=False)
    return answer


def _inside(path: Path, folders: tuple[Path, ...]) -> bool:
    """Whether the real path of ``path`` lies in one of ``folders`` (real paths)."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(folder) for folder in folders)


def resolve_module(
    importer: Path, imported: ImportedName, language_id: str, roots: tuple[Path, ...]
) -> Path | None:
    """The workspace file that defines ``imported.module``, or None.

    Only files whose real path lies inside a workspace folder count (with no folder: inside
    the importer's own folder), so that neither ``from ...outside import x`` nor a link that
    points out of the workspace reads a file from elsewhere on the machine.
    """
    folders = tuple(Path(os.path.realpath(root)) for root in roots) or (
        Path(os.path.realpath(importer.parent)),
    )

    def found(candidate: Path) -> bool:
        return _is_file(candidate) and _inside(candidate, folders)

    if language_id == "python":
        parts = [p for p in imported.module.split(".") if p]
        if imported.level:
            base = importer.parent
            for _ in range(imported.level - 1):
                base = base.parent
            bases = [base]
        else:
            bases = [importer.parent, *roots, *(root / "src" for root in roots)]
        for base in bases:
            target = base.joinpath(*parts)
            for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                if parts and found(candidate):
                    return candidate
            if not parts and found(base / "__init__.py"):
                return base / "__init__.py"
        return None
    target = (importer.parent / imported.module).resolve()
    for candidate in [target] + [Path(str(target) + ext) for ext in _JS_EXTENSIONS]:
        if found(candidate):
            return candidate
    for ext in _JS_EXTENSIONS:
        index = target / f"index{ext}"
        if found(index):
            return index
    return None


class DefinitionFinder:
    """Signatures of top-level definitions in files on disk, cached by modification time."""

    def __init__(self) -> None:
        self._parsed: OrderedDict[Path, tuple[float, str, tree_sitter.Tree | None]] = OrderedDict()

    def _load(self, path: Path, language_id: str) -> tuple[str, tree_sitter.Tree | None] | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        if stat.st_size > _MAX_FILE_BYTES:
            return None
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stat.st_mtime:
            self._parsed.move_to_end(path)
            return cached[1], cached[2]
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        parser = parser_for(language_id)
        tree = parser.parse(text.encode("utf-8")) if parser is not None else None
        self._parsed[path] = (stat.st_mtime, text, tree)
        if len(self._parsed) > _CACHE_FILES:
            self._parsed.popitem(last=False)
        return text, tree

    def signature(self, path: Path, name: str, language_id: str) -> tuple[int, str] | None:
        """(line, signature text) of the top-level definition of ``name`` in ``path``."""
        loaded = self._load(path, language_id)
        if loaded is None:
            return None
        text, tree = loaded
        if tree is None:
            return None
        source = text.encode("utf-8")
        for node in _top_level_definitions(tree.root_node):
            if _name_of(node, source) == name or (name == "default" and _is_default_export(node)):
                return node.start_point[0], _summarize(node, source)
        return None


def _top_level_definitions(root: tree_sitter.Node) -> list[tree_sitter.Node]:
    found: list[tree_sitter.Node] = []
    for child in root.named_children:
        node = child
        if node.type in ("decorated_definition", "export_statement"):
            inner = node.child_by_field_name("definition") or node.child_by_field_name(
                "declaration"
            )
            if inner is not None:
                found.append(inner)
                continue
        if node.type in ("lexical_declaration", "variable_declaration", "expression_statement"):
            found.append(node)
            continue
        found.append(node)
    return found


def _name_of(node: tree_sitter.Node, source: bytes) -> str | None:
    name = node.child_by_field_name("name")
    if name is not None:
        return source[name.start_byte : name.end_byte].decode("utf-8", "replace")
    # const foo = ..., x = ... (Python assignment at module level)
    for child in node.named_children:
        if child.type in ("variable_declarator", "assignment"):
            target = child.child_by_field_name("name") or child.child_by_field_name("left")
            if target is not None:
                return source[target.start_byte : target.end_byte].decode("utf-8", "replace")
    return None


def _is_default_export(node: tree_sitter.Node) -> bool:
    parent = node.parent
    return (
        parent is not None
        and parent.type == "export_statement"
        and b"default" in (parent.text or b"")[:40]
    )


def _summarize(node: tree_sitter.Node, source: bytes) -> str:
    """A definition without its bodies: headers, docstring first lines, fields."""
    body = node.child_by_field_name("body")
    text = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
    if body is None:
        return "\n".join(text.split("\n")[:_MAX_SIGNATURE_LINES])
    header = source[node.start_byte : body.start_byte].decode("utf-8", "replace").rstrip()
    is_class = "class" in node.type or node.type in ("interface_declaration",)
    lines = [header]
    indent = " " * (body.start_point[1] if body.start_point[0] != node.start_point[0] else 4)
    members = body.named_children
    if (
        members
        and members[0].type == "expression_statement"
        and members[0].named_children
        and (members[0].named_children[0].type == "string")
    ):
        doc = source[members[0].start_byte : members[0].end_byte].decode("utf-8", "replace")
        first = doc.split("\n")[0]
        lines.append(indent + first + ("" if first.count('"""') == 2 else ' ..."""'))
        members = members[1:]
    if is_class:
        for member in members:
            inner = member
            if member.type == "decorated_definition":
                inner = member.child_by_field_name("definition") or member
            inner_body = inner.child_by_field_name("body")
            if inner_body is not None:
                member_header = source[inner.start_byte : inner_body.start_byte]
                lines.append(indent + member_header.decode("utf-8", "replace").strip() + " ...")
            else:
                member_text = source[member.start_byte : member.end_byte].decode("utf-8", "replace")
                lines.append(indent + member_text.split("\n")[0])
            if len(lines) >= _MAX_SIGNATURE_LINES:
                break
    else:
        lines.append(indent + "...")
    return "\n".join(lines)


def names_used_near(prefix: str, lines: int = 30) -> list[str]:
    """Identifiers (and dotted attribute pairs) in the last ``lines`` lines, nearest first."""
    tail = "\n".join(line for line in prefix.split("\n")[-lines:] if not IMPORT_LINE.match(line))
    seen: dict[str, None] = {}
    for match in reversed(list(re.finditer(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)?", tail))):
        seen.setdefault(match.group(0), None)
    return list(seen)
