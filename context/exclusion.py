"""Content exclusion: files whose text must never be read into a prompt.

A file is excluded when its path matches one of the exclusion patterns (gitignore syntax,
matched against the path relative to its workspace folder, or against every tail of the path
for files outside any folder), or when a ``.gitignore`` between it and its repository root
ignores it. Excluded files are neither completed in nor used as context.

Links are followed: a file is excluded when its own path or its real path (every symbolic
link resolved) is excluded, so that ``settings.py -> .env`` is as private as ``.env``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import pathspec

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".env*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "secrets/",
    ".git/",
)

_CACHE_SIZE = 4096


def valid_patterns(patterns: Sequence[str]) -> bool:
    """Whether every pattern compiles: pathspec rejects some (a lone backslash) and builds
    regular expressions that ``re`` rejects from others (the range ``[z-a]``)."""
    try:
        pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, TypeError, re.error):  # GitIgnorePatternError is a ValueError
        return False
    return True


def path_of_uri(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


class ContentExclusion:
    """Decides, with caching, whether a document may be read into a prompt."""

    def __init__(
        self,
        patterns: Sequence[str] = DEFAULT_EXCLUDE,
        respect_gitignore: bool = True,
        roots: Sequence[Path] = (),
    ) -> None:
        self._spec = pathspec.GitIgnoreSpec.from_lines(patterns)
        self._respect_gitignore = respect_gitignore
        # Each folder as given and as its real path: a path is matched against the folder it
        # is written under, and a real path against the real folder.
        given = {Path(os.path.abspath(root)) for root in roots}
        given |= {Path(os.path.realpath(root)) for root in roots}
        self._roots = tuple(sorted(given, key=lambda p: -len(p.parts)))
        # Keyed by the URI and its real path: a link that now points elsewhere is decided anew.
        self._verdicts: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._gitignores: dict[Path, tuple[float, pathspec.GitIgnoreSpec | None]] = {}

    def reason(self, uri: str) -> str | None:
        """Why ``uri`` is excluded, or None when it may be read."""
        path = path_of_uri(uri)
        if path is None:
            return None  # untitled buffers and the like: nothing on disk to protect
        real = Path(os.path.realpath(path))
        key = (uri, str(real))
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        verdict: str | None = None
        cause = self._decide(path)
        if cause is not None:
            verdict = f"{path.name} {cause}"
        elif real != path and (cause := self._decide(real)) is not None:
            verdict = f"{path.name} links to {real.name}, which {cause}"
        self._verdicts[key] = verdict
        if len(self._verdicts) > _CACHE_SIZE:
            self._verdicts.popitem(last=False)
        return verdict

    def _decide(self, path: Path) -> str | None:
        """Why ``path`` itself (links not followed) is excluded, as a predicate."""
        for candidate in self._relative_forms(path):
            if self._spec.match_file(candidate):
                return "matches an exclusion pattern"
        if self._respect_gitignore and self._ignored_by_git(path):
            return "is ignored by .gitignore"
        return None

    def _relative_forms(self, path: Path) -> list[str]:
        for root in self._roots:
            if path.is_relative_to(root):
                return [path.relative_to(root).as_posix()]
        parts = PurePosixPath(path.as_posix()).parts[1:]
        return ["/".join(parts[index:]) for index in range(len(parts))]

    def _ignored_by_git(self, path: Path) -> bool:
        # Walk up to the repository root (a folder holding .git); deeper rules win.
        folders: list[Path] = []
        folder = path.parent
        while True:
            folders.append(folder)
            if (folder / ".git").exists() or folder.parent == folder:
                break
            folder = folder.parent
        if not (folders[-1] / ".git").exists():
            return False  # not inside a repository: no .gitignore applies
        ignored: bool | None = None
        for folder in reversed(folders):
            spec = self._gitignore_in(folder)
            if spec is None:
                continue
            relative = path.relative_to(folder).as_posix()
            verdict = spec.check_file(relative).include
            if verdict is not None:
                ignored = verdict
        return bool(ignored)

    def _gitignore_in(self, folder: Path) -> pathspec.GitIgnoreSpec | None:
        file = folder / ".gitignore"
        try:
            stamp = os.stat(file).st_mtime
        except OSError:
            return None
        cached = self._gitignores.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
            spec: pathspec.GitIgnoreSpec | None = pathspec.GitIgnoreSpec.from_lines(lines)
        except (OSError, ValueError):
            spec = None
        self._gitignores[folder] = (stamp, spec)
        return spec
