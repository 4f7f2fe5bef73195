"""The peer benchmark's result (``bench.peers``) as markdown tables and a PNG chart: llama.cpp
and our engine side by side on the same model, prompts and threads, then the typing replays
through our server with each as its backend."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# The side-by-side columns: (llama-bench test, depth) in the order of the table and chart.
SPEED_COLUMNS = (("pp512", 0), ("pp2000", 0), ("tg16", 512), ("tg16", 2000))
SPEED_HEADS = (
    "prompt 512 tok/s",
    "prompt 2,000 tok/s",
    "16 new after 512 tok/s",
    "16 new after 2,000 tok/s",
)
# Issue 20's goal: our engine's keystroke p50 at most this share of llama.cpp's through our
# http backend.
GOAL_RATIO = 0.7


def engine_label(engine: dict[str, Any], named: bool = False) -> str:
    """``named``: say which model too (two engines of one precision, e.g. two model sizes)."""
    spin = ", spinning" if engine.get("spinning") else ""
    model = f" ({Path(engine['folder']).name})" if named and engine.get("folder") else ""
    return f"ours, {engine['precision']}{model}{spin}"


def speed_lines(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per engine: its label, the four rates (``None`` where not measured), the
    CPU time per new token after 512 and its peak RSS."""
    lines: list[dict[str, Any]] = []
    if bench := result.get("llama_bench"):
        lines.append(_speed_line("llama.cpp (llama-bench, GGUF Q4_K_M)", bench, None))
    engines = result.get("engines", [])
    kinds = [(engine["precision"], bool(engine.get("spinning"))) for engine in engines]
    alike = Counter(kinds)
    for engine, kind in zip(engines, kinds, strict=True):
        cpu = (engine.get("cpu_ms_per_new_token") or {}).get("tg16@512")
        named = alike[kind] > 1
        lines.append(_speed_line(engine_label(engine, named), engine, cpu))
    return lines


def _speed_line(label: str, measured: dict[str, Any], cpu: float | None) -> dict[str, Any]:
    found = {(r["test"], r["depth"]): r for r in measured["rows"]}
    return {
        "label": label,
        "rates": [
            (found[key]["tokens_per_s"], found[key]["stddev"]) if key in found else None
            for key in SPEED_COLUMNS
        ],
        "cpu_ms_per_token": cpu,
        "peak_rss_mib": measured.get("peak_rss_mib"),
    }


def _rate(cell: tuple[float, float] | None) -> str:
    return "–" if cell is None else f"{cell[0]} ± {cell[1]}"


def replay_label(replay: dict[str, Any]) -> str:
    if replay.get("backend") == "onnx":
        base = f"onnx → our engine, {replay['precision']}"
    else:
        base = f"http → llama-server, `api: {replay['api']}`"
    return base + (f" {replay['label']}" if replay.get("label") else "")


def _share(replay: dict[str, Any]) -> str:
    requests, shown = replay.get("requests"), replay.get("with_a_suggestion")
    if not requests or shown is None:
        return f"{shown}"
    return f"{shown} ({100 * shown / requests:.1f} %)"


def goal(result: dict[str, Any]) -> dict[str, Any] | None:
    """Issue 20's goal per engine replay: its keystroke p50 over the best llama-server one's
    with the same settings label."""
    replays = result.get("replays") or []
    peers: dict[str, dict[str, Any]] = {}
    for r in replays:
        if r.get("backend", "http") == "http" and r.get("keystroke_p50_ms") is not None:
            best = peers.get(r.get("label", ""))
            if best is None or r["keystroke_p50_ms"] < best["keystroke_p50_ms"]:
                peers[r.get("label", "")] = r
    verdicts = []
    for r in replays:
        peer = peers.get(r.get("label", ""))
        if r.get("backend") != "onnx" or not peer or r.get("keystroke_p50_ms") is None:
            continue
        ratio = round(r["keystroke_p50_ms"] / peer["keystroke_p50_ms"], 2)
        verdicts.append(
            {
                "replay": replay_label(r),
                "ratio": ratio,
                "met": ratio <= GOAL_RATIO,
                # Answers with no suggestion (a skipped request, a deadline passed) are
                # answers too: where neither side showed one, the p50s time nothing useful.
                "suggestions": [r.get("with_a_suggestion"), peer.get("with_a_suggestion")],
            }
        )
    return {"goal_ratio": GOAL_RATIO, "verdicts": verdicts} if verdicts else None


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Commit `{result['commit']}`, {result['date']}, {result['machine']}, "
        f"{result['threads']} threads, `{result['model']}`"
        + (f", load average {result['load_average']}" if result.get("load_average") else "")
        + ".",
        "",
    ]
    if speed := speed_lines(result):
        lines += [
            "| engine | " + " | ".join(SPEED_HEADS) + " | CPU ms / new token after 512 "
            "| peak RSS MiB |",
            "|---|" + "---|" * (len(SPEED_HEADS) + 2),
        ]
        lines += [
            f"| {s['label']} | "
            + " | ".join(_rate(c) for c in s["rates"])
            + f" | {s['cpu_ms_per_token'] if s['cpu_ms_per_token'] is not None else '–'}"
            f" | {s['peak_rss_mib']} |"
            for s in speed
        ]
        lines.append("")
    if bench := result.get("llama_bench"):
        lines += [
            f"llama-bench (llama.cpp `{bench['build']}`, peak RSS {bench['peak_rss_mib']} MiB):",
            "",
            "| test | depth | tokens/s | ± |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['test']} | {r['depth']} | {r['tokens_per_s']} | {r['stddev']} |"
            for r in bench["rows"]
        ]
        lines.append("")
    if replays := result.get("replays"):
        lines += [
            "| typing replay through our server | keystroke p50 ms | p95 ms | answered "
            "| with a suggestion (of requests) | backend p50 ms "
            "| generations started (prompt reused p50) "
            "| llama-server peak RSS MiB | our server peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in replays:
            peer = r.get("llama_server")
            reuse = f"{peer['generations_started']} ({peer['reused_share_p50']})" if peer else "–"
            lines.append(
                f"| {replay_label(r)} | {r['keystroke_p50_ms']} | {r['keystroke_p95_ms']} "
                f"| {r['answered']}{' / ' + str(r['requests']) if r.get('requests') else ''} "
                f"| {_share(r)} | {r['backend_p50_ms'] or '–'} | {reuse} "
                f"| {r.get('llama_server_peak_rss_mib') or '–'} "
                f"| {r['ghostcomplete_peak_rss_mib']} |"
            )
        lines.append("")
    if verdict := goal(result):
        for v in verdict["verdicts"]:
            lines.append(
                f"Goal (keystroke p50 ≤ {GOAL_RATIO}× llama.cpp through our http backend): "
                f"{v['replay']}: {v['ratio']}×, {'met' if v['met'] else 'missed'}"
                + (
                    " (neither showed a suggestion: both p50s are of empty answers)."
                    if v["suggestions"] == [0, 0]
                    else "."
                )
            )
    return "\n".join(lines).rstrip() + "\n"


def chart(result: dict[str, Any], path: Path) -> Path | None:
    """Bars: tokens/s of each engine per test, and keystroke p50/p95 per replay; None when
    the result has neither."""
    speed = speed_lines(result)
    replays = [r for r in result.get("replays") or [] if r.get("keystroke_p50_ms") is not None]
    if not speed and not replays:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(speed))
    for i, line in enumerate(speed):
        xs = [c + i * width for c in range(len(SPEED_COLUMNS))]
        left.bar(
            xs,
            [cell[0] if cell else 0 for cell in line["rates"]],
            width,
            yerr=[cell[1] if cell else 0 for cell in line["rates"]],
            label=line["label"],
        )
    left.set_xticks([c + 0.4 - width / 2 for c in range(len(SPEED_COLUMNS))])
    left.set_xticklabels([h.replace(" tok/s", "") for h in SPEED_HEADS], fontsize=8)
    left.set_ylabel("tokens/s")
    left.set_title(f"speed, {result['threads']} threads (higher is better)")
    if speed:
        left.legend(fontsize=7)
    labels = [replay_label(r).replace("`", "") for r in replays]
    ys = list(range(len(replays)))
    right.barh(
        [y + 0.2 for y in ys], [r["keystroke_p95_ms"] or 0 for r in replays], 0.4, label="p95"
    )
    right.barh([y - 0.2 for y in ys], [r["keystroke_p50_ms"] for r in replays], 0.4, label="p50")
    right.set_yticks(ys)
    right.set_yticklabels(labels, fontsize=7)
    right.set_xlabel("keystroke → answer, ms")
    right.set_title("typing replay through our server (lower is better)")
    if replays:
        right.legend(fontsize=7)
    figure.suptitle(f"{result['model']} on {result['machine']}, commit {result['commit']}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
