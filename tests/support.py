"""Shared test setup: which server executable the end-to-end tests start."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def server_can_import(module: str) -> bool:
    """Whether the server's own Python (the wheel's venv in `make wheel-e2e`, which has only
    the core dependencies) can import ``module``: optional extras decide some behaviour."""
    python = Path(server_executable()).parent / "python"
    if not python.exists():
        python = Path(sys.executable)
    found = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, timeout=60, check=False
    )
    return found.returncode == 0
