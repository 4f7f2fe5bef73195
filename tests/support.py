"""Shared test setup: which server executable the end-to-end tests start."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def server_executable() -> str:
    """GHOSTCOMPLETE_SERVER (the installed wheel in `make wheel-e2e`), else this venv's."""
    explicit = os.environ.get("GHOSTCOMPLETE_SERVER")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "ghostcomplete"
    if beside.exists():
        return str(beside)
    found = shutil.which("ghostcomplete")
    if found is None:
        raise RuntimeError("no ghostcomplete executable: run `make test` or pip install -e .")
    return found
