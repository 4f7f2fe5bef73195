"""Result files of a benchmark run: JSON (everything), markdown tables, a PNG chart."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

from ghostcomplete.bench.lsp_client import server_command

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def machine() -> dict[str, Any]:
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "gpu": "present" if shutil.which("nvidia-smi") else "none",
        "python": platform.python_version(),
    }


def _git(*arguments: str) -> str:
    try:
        done = subprocess.run(
            ["git", *arguments],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def git_commit() -> str | None:
    """The source commit when running from a checkout ("+dirty" with local changes)."""
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    return commit + ("+dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def header(argv: list[str]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "ghostcomplete " + shlex.join(argv),
        "commit": git_commit(),
        "server_command": shlex.join(server_command()),
        "machine": machine(),
    }


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value * 100:.1f}" if percent else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return str(value)


def _table(heads: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_ACCEPT_COLUMNS = [
    ("tasks", "tasks", False),
    ("shown %", "shown_rate", True),
    ("exact %", "exact_match", True),
    ("edit sim %", "edit_similarity", True),
    ("ident F1 %", "identifier_f1", True),
    ("accept %", "accept_rate", True),
    ("accept % of shown", "accepted_of_shown", True),
    ("accepted ch", "accepted_chars", False),
    ("partial %", "partial_accept_rate", True),
    ("chars saved %", "chars_saved_share", True),
    ("cov in-file %", "coverage_in_file", True),
    ("cov reachable %", "coverage_reachable", True),
    ("cov prompt %", "coverage_prompt", True),
    ("p50 ms", "latency_p50_ms", False),
    ("p95 ms", "latency_p95_ms", False),
]


def _summary_row(first: list[str], summary: dict[str, Any]) -> list[str]:
    return first + [_cell(summary.get(key), pct) for _, key, pct in _ACCEPT_COLUMNS]


def acceptance_markdown(data: dict[str, Any]) -> str:
    heads = [name for name, _, _ in _ACCEPT_COLUMNS]
    overall = [
        _summary_row([r["context"], r.get("chosen") or r["backend"]], r["overall"])
        for r in data["runs"]
    ]
    by_origin = [
        _summary_row([r["context"], origin], summary)
        for r in data["runs"]
        for origin, summary in r.get("by_origin", {}).items()
    ]
    by_kind = [
        _summary_row([r["context"], kind], summary)
        for r in data["runs"]
        for kind, summary in r["by_kind"].items()
    ]
    repos = sorted({name for r in data["runs"] for name in r["by_repo"]})
    contexts = [r["context"] for r in data["runs"]]
    by_repo = [
        [name]
        + [
            _cell(r["by_repo"].get(name, {}).get(key), True)
            for r in data["runs"]
            for key in ("accept_rate", "exact_match")
        ]
        for name in repos
    ]
    repo_heads = ["repository"] + [f"{c} {m}" for c in contexts for m in ("accept %", "exact %")]
    skipped = [
        [r["context"], reason, str(count)]
        for r in data["runs"]
        for reason, count in r["overall"].get("skipped", {}).items()
    ]
    servers = [
        [r["context"], _cell(r["server"].get("cpu_s")), _cell(r["server"].get("peak_rss_mib"))]
        for r in data["runs"]
    ]
    return "\n\n".join(
        [
            "# Acceptance benchmark",
            f"`{data['command']}` — {data['date']}, commit {data.get('commit') or '?'}, "
            f"{_machine_line(data['machine'])}",
            "## Overall\n\n" + _table(["context", "backend", *heads], overall),
            "## By task kind\n\n" + _table(["context", "kind", *heads], by_kind),
            "## By who wrote the suggestion (shown ones only)\n\n"
            + (_table(["context", "origin", *heads], by_origin) if by_origin else "none"),
            "## By repository\n\n" + _table(repo_heads, by_repo),
            "## Server processes (one per project)\n\n"
            + _table(["context", "CPU s (all)", "peak RSS MiB (largest)"], servers),
            "## Why the server answered nothing (top reasons)\n\n"
            + (_table(["context", "skipped because", "tasks"], skipped) if skipped else "none"),
        ]
    )


def _machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info.get('cores')} cores, {info.get('memory_gib')} GiB, GPU: {info.get('gpu')}, "
        f"Python {info.get('python')}, {info.get('platform')}"
    )


def latency_markdown(data: dict[str, Any]) -> str:
    parts = [
        "# Latency benchmark",
        f"`{data['command']}` — {data['date']}, commit {data.get('commit') or '?'}, "
        f"{_machine_line(data['machine'])}",
    ]
    for run in data["runs"]:
        summary = run["summary"]
        rows = [
            [name, *(_cell(values.get(key)) for key in ("p50", "p95", "p99")), str(values["n"])]
            for name, values in summary["latency_ms"].items()
        ]
        counts = [[key, _cell(value)] for key, value in summary["counts"].items()]
        parts.append(
            f"## Backend: {run['backend']}\n\n"
            + _table(["latency (ms)", "p50", "p95", "p99", "n"], rows)
            + "\n\n"
            + _table(["measure", "value"], counts)
        )
    return "\n\n".join(parts)


def acceptance_chart(data: dict[str, Any], path: Path) -> None:
    runs = data["runs"]
    kinds = ["all", *sorted({k for r in runs for k in r["by_kind"]})]
    metrics = [("accept_rate", "accepted %"), ("exact_match", "exact match %")]
    metrics += [("chars_saved_share", "chars saved %")]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    width = 0.8 / max(1, len(runs))
    for axis, (key, title) in zip(axes, metrics, strict=True):
        for index, run in enumerate(runs):
            values = [
                100 * ((run["overall"] if k == "all" else run["by_kind"].get(k, {})).get(key) or 0)
                for k in kinds
            ]
            positions = [i + index * width for i in range(len(kinds))]
            axis.bar(positions, values, width, label=run["context"])
        axis.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(kinds))], kinds)
        axis.set_title(title)
    axes[0].legend(title="context")
    figure.suptitle(f"Acceptance, backend {runs[0]['backend']}" if runs else "Acceptance")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency_chart(data: dict[str, Any], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for run in data["runs"]:
        values = sorted(run["samples_ms"])
        if values:
            share = [100 * (i + 1) / len(values) for i in range(len(values))]
            axis.plot(values, share, label=f"backend {run['backend']}")
    axis.set_xscale("log")
    axis.set_xlabel("keystroke → answer (ms, log scale)")
    axis.set_ylabel("% of answered requests")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(kind: str, data: dict[str, Any], out: Path) -> list[Path]:
    """``{kind}.json``, ``{kind}.md`` and ``{kind}.png`` in ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{kind}.json", out / f"{kind}.md", out / f"{kind}.png"]
    paths[0].write_text(json.dumps(data, indent=1) + "\n")
    if kind == "acceptance":
        paths[1].write_text(acceptance_markdown(data) + "\n")
        acceptance_chart(data, paths[2])
    else:
        paths[1].write_text(latency_markdown(data) + "\n")
        latency_chart(data, paths[2])
    return paths


def print_paths(paths: list[Path]) -> None:
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
