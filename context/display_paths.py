"""The path a prompt names a file by: relative to the workspace folder that holds it.

Models were trained on repository-relative paths (``src/app/models.py``), and a relative path
does not tell a remote API the user's home directory. Files outside every workspace folder keep
their absolute path; URIs of other schemes (``untitled:``) stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ghostcomplete.context.exclusion import path_of_uri


def _holding_root(uri: str, roots: Sequence[Path]) -> tuple[Path, PurePosixPath] | None:
    """The innermost workspace folder that holds the file, and the file's path within it."""
    path = path_of_uri(uri)
    if path is None:
        return None
    best: tuple[Path, PurePosixPath] | None = None
    for root in roots:
        if path.is_relative_to(root) and path != root:
            relative = PurePosixPath(path.relative_to(root).as_posix())
            # The innermost folder wins (nested workspace folders).
            if best is None or len(relative.parts) < len(best[1].parts):
                best = (root, relative)
    return best


def display_path(uri: str, roots: Sequence[Path] = ()) -> str:
    path = path_of_uri(uri)
    if path is None:
        return uri
    found = _holding_root(uri, roots)
    return str(found[1]) if found is not None else path.as_posix()


def repository_name(uri: str, roots: Sequence[Path] = ()) -> str:
    """The name a repository-level prompt gives the file's project: its workspace folder's
    (in a multi-root workspace, the folder that holds the file), else the first folder's."""
    found = _holding_root(uri, roots)
    if found is not None:
        return found[0].name
    return roots[0].name if roots else ""
