"""``ghostcomplete bench ...``: argument parsing for the benchmarks."""

from __future__ import annotations

import argparse
from typing import Any


def add_bench_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="run the acceptance or latency benchmark")
    kinds = bench.add_subparsers(dest="bench_command", required=True, parser_class=type(bench))
    for name in ("acceptance", "latency"):
        kind = kinds.add_parser(name, help=f"the {name} benchmark")
        kind.add_argument("--quick", action="store_true", help="a small run (under 60 s)")


def run_bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.error("the benchmarks are not built yet (issue 3)")
