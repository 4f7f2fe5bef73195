"""Language ids, the families that share context, and the ids of files found on disk."""

from __future__ import annotations

from pathlib import PurePath

# Files of one family may serve as context for each other (JS/TS/JSX/TSX count as one).
_FAMILIES: dict[str, str] = {
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "javascript",
    "typescriptreact": "javascript",
    "c": "c",
    "cpp": "c",
    "cuda": "c",
    "objective-c": "c",
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".rb": "ruby",
    ".lua": "lua",
    ".sh": "shellscript",
    ".kt": "kotlin",
    ".cs": "csharp",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
}


def family_of(language_id: str) -> str:
    """The family whose files share context with a file of ``language_id``."""
    return _FAMILIES.get(language_id, language_id)


def language_of_path(path: str) -> str:
    """The LSP language id of a file on disk, from its extension ("plaintext" if unknown)."""
    return _EXTENSIONS.get(PurePath(path).suffix.lower(), "plaintext")
