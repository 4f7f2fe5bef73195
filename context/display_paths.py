"""The path a prompt names a file by: relative to the workspace folder that holds it.

Models were trained on repository-relative paths (``src/app/models.py``), and a relative path
does not tell a remote API the user's home directory. Files outside every workspace folder keep
their absolute path; URIs of other schemes (``untitled:``) stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ghostcomplete.context.exclusion import path_of_uri


def display_path(uri: str, roots: Sequence[Path] = ()) -> str:
    path = path_of_uri(uri)
    if path is None:
        return uri
    best: PurePosixPath | None = None
    for root in roots:
        if path.is_relative_to(root) and path != root:
            relative = PurePosixPath(path.relative_to(root).as_posix())
            # The innermost folder wins (nested workspace folders).
            if best is None or len(relative.parts) < len(best.parts):
                best = relative
    return str(best) if best is not None else path.as_posix()
