"""``ghostcomplete stats [--json] [--html FILE] [--db PATH]``."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from ghostcomplete.telemetry.report import as_html, as_json, as_text
from ghostcomplete.telemetry.stats import collect
from ghostcomplete.telemetry.store import PATH_VARIABLE, default_path


def add_stats_parser(commands: Any) -> None:
    stats = commands.add_parser(
        "stats",
        help="acceptance, still-in-code and latency figures from the local telemetry",
        description="Figures from the telemetry database (nothing ever leaves this machine).",
    )
    stats.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    stats.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    stats.add_argument(
        "--db",
        metavar="PATH",
        help=f"the database (default: ${PATH_VARIABLE}, else {default_path()})",
    )


def run_stats(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    path = Path(args.db).expanduser() if args.db else default_path()
    try:
        stats = collect(path)
    except sqlite3.Error as error:
        print(f"ghostcomplete: cannot read {path}: {error}", file=sys.stderr)
        return 1
    if args.html:
        target = Path(args.html)
        try:
            target.write_text(as_html(stats), encoding="utf-8")
        except OSError as error:
            print(f"ghostcomplete: cannot write {target}: {error.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {target}", file=sys.stderr)
        if not args.json:
            return 0
    print(as_json(stats) if args.json else as_text(stats), end="" if not args.json else "\n")
    return 0
