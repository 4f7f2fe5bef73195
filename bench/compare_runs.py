"""Acceptance results side by side, per kind, with paired counts on the tasks they share.

``python -m ghostcomplete.bench.compare_runs NAME=FILE[+FILE...][@context:C][@cut:GATE] ...``

Each NAME is one row group: the tasks of one or more ``bench acceptance`` JSON files (e.g.
several seeds of one setting, joined with ``+``). ``@context:C`` keeps the tasks of one
``--context`` setting (``none``, ``copilot``, ``default``) of files that ran several.
``@cut:GATE`` replays the model's
confidence cut, at ``minConfidence`` GATE, on a run made with the cut off (its token traces;
bench/model_cut_study.py). For every pair of groups it counts the tasks they share where one
was an exact match and the other not, and where one had more accepted characters: the paired
counts that say whether two close rows differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostcomplete.backends.onnx.confidence_cut import CALIBRATION
from ghostcomplete.bench.acceptance import TaskResult, summarize
from ghostcomplete.bench.metrics import score
from ghostcomplete.bench.model_cut_study import Answer, cut_suggestion, weights_of_run
from ghostcomplete.bench.tasks import KINDS


def _task_results(data: dict[str, Any]) -> list[TaskResult]:
    return [TaskResult(**{"trace": None, "prompt": None, **row}) for row in data["tasks"]]


def load_results(path: Path) -> list[TaskResult]:
    return _task_results(json.loads(path.read_text(encoding="utf-8")))


def load_results_and_weights(path: Path) -> tuple[list[TaskResult], tuple[float, ...]]:
    """A results file's tasks, and the cut weights the backend uses for its model."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return _task_results(data), weights_of_run(data)


def answer_of(row: TaskResult) -> Answer:
    """A model run's task, token by token (its trace), as the cut study reads it."""
    trace = row.trace or {"text": "", "ends": [], "chances": []}
    return Answer(
        row.task_id,
        row.kind,
        row.suggestion,
        row.target,
        trace["text"],
        tuple(trace["ends"]),
        tuple(trace["chances"]),
    )


def with_cut(
    rows: list[TaskResult], gate: float, weights: Sequence[float] = CALIBRATION
) -> list[TaskResult]:
    """``rows`` as the confidence cut at ``gate``, calibrated by ``weights``, would have
    shown them."""
    out = []
    for row in rows:
        text, _ = cut_suggestion(answer_of(row), weights, gate)
        out.append(
            dataclasses.replace(row, suggestion=text, **dataclasses.asdict(score(text, row.target)))
        )
    return out


def group(spec: str) -> tuple[str, list[TaskResult]]:
    name, _, files = spec.partition("=")
    files, _, gate = files.partition("@cut:")
    files, _, context = files.partition("@context:")
    rows: list[TaskResult] = []
    for part in files.split("+"):
        found, weights = load_results_and_weights(Path(part))
        if context:
            found = [row for row in found if row.context == context]
        rows += with_cut(found, float(gate), weights) if gate else found
    return name, rows


def _cell(value: Any, style: str) -> str:
    return "—" if value is None else format(value, style)


def table(groups: list[tuple[str, list[TaskResult]]]) -> str:
    lines = [
        "| run | kind | tasks | shown | exact | edit similarity | accepted | accepted of shown "
        "| accepted ch / task | prompt coverage | p50 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in groups:
        for kind in ("all", *KINDS):
            chosen = [r for r in rows if kind in ("all", r.kind)]
            if not chosen:
                continue
            s = summarize(chosen)
            p50 = s["latency_p50_ms"]
            lines.append(
                f"| {name} | {kind} | {s['tasks']} | {_cell(s['shown_rate'], '.0%')} | "
                f"{_cell(s['exact_match'], '.1%')} | {_cell(s['edit_similarity'], '.1%')} | "
                f"{_cell(s['accept_rate'], '.1%')} | {_cell(s['accepted_of_shown'], '.0%')} | "
                f"{_cell(s['accepted_chars'], '.2f')} | {_cell(s['coverage_prompt'], '.0%')} | "
                f"{_cell(p50 / 1000 if p50 is not None else None, '.1f')} |"
            )
    return "\n".join(lines)


def paired(a: list[TaskResult], b: list[TaskResult], kind: str) -> tuple[int, int, int, int]:
    """Exact won / lost and accepted characters more / fewer of ``a`` against ``b``."""
    other = {r.task_id: r for r in b}
    won = lost = more = fewer = 0
    for row in a:
        twin = other.get(row.task_id)
        if twin is None or kind not in ("all", row.kind):
            continue
        won += row.exact and not twin.exact
        lost += twin.exact and not row.exact
        mine = row.chars_saved if row.accepted else 0
        theirs = twin.chars_saved if twin.accepted else 0
        more += mine > theirs
        fewer += mine < theirs
    return won, lost, more, fewer


def pairs(groups: list[tuple[str, list[TaskResult]]]) -> str:
    lines = [
        "| pair | kind | exact won / lost | accepted ch more / fewer |",
        "|---|---|---|---|",
    ]
    for i, (first, a) in enumerate(groups):
        for second, b in groups[i + 1 :]:
            for kind in ("all", *KINDS):
                won, lost, more, fewer = paired(a, b, kind)
                lines.append(
                    f"| {first} vs {second} | {kind} | {won} / {lost} | {more} / {fewer} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.compare_runs")
    parser.add_argument("groups", nargs="+", help="NAME=FILE[+FILE...][@context:C][@cut:GATE]")
    args = parser.parse_args(argv)
    groups = [group(spec) for spec in args.groups]
    print(table(groups))
    print()
    print(pairs(groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
