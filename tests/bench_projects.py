"""Tiny projects on disk for the benchmark tests: each a package of two files, one importing
the other, named after the project (so that a prompt shows which project it came from)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PRICES = (
    "def net_price(gross, rate):\n    return round(gross / (1 + rate), 2)\n\n\n"
    "def gross_price(net, rate):\n    return round(net * (1 + rate), 2)\n"
)
CART = (
    "from {package}.prices import gross_price, net_price\n\n\n"
    "def total(items, rate):\n    return sum(gross_price(item, rate) for item in items)\n\n\n"
    "def total_net(items, rate):\n    return sum(net_price(item, rate) for item in items)\n"
)


def write_project(root: Path, name: str) -> Path:
    """``root/name`` holding the package ``name`` (prices.py, and cart.py importing it)."""
    folder = root / name
    (folder / name).mkdir(parents=True)
    (folder / name / "prices.py").write_text(PRICES)
    (folder / name / "cart.py").write_text(CART.format(package=name))
    return folder


def bench_acceptance(
    projects: list[Path], out: Path, *arguments: str, timeout: float = 110, **environ: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """``ghostcomplete bench acceptance`` over ``projects`` (context default, one task per
    kind): the finished process and its acceptance.json (None when none was written)."""
    command = [sys.executable, "-m", "ghostcomplete.server.cli", "bench", "acceptance"]
    for folder in projects:
        command += ["--repo", str(folder)]
    command += ["--context", "default", "--tasks", "1", "--out", str(out), *arguments]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **environ},
    )
    written = out / "acceptance.json"
    return done, json.loads(written.read_text()) if written.is_file() else None
