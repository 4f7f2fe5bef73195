"""The hybrid backend's choice between the lookup and the model, replayed on acceptance runs.

``python -m ghostcomplete.bench.hybrid_study --lookup L.json[+L2.json] --model M.json[+M2.json]
[--gate 0.05] [--lookup-first 0,0.1,...] [--check HYBRID.json[+...]]``

L is a ``bench acceptance --backend lookup`` run (each task keeps the lookup's calibrated
chance in ``details``); M a ``--backend onnx`` run of the same tasks with the model's cut off
(``"cut": "none"``: each task keeps the model's answer token by token). From these, with no
model run, each ``lookupFirst`` is replayed as backends/hybrid/backend.py decides: the
lookup's suggestion where it is sure, else the model's with its confidence cut at ``--gate``
(bench/model_cut_study.py), ordered by ``combined``; and ``order: "model"``, the model's
answer first wherever it has one (the row "model first"). The table gives accepted characters
per task, accepted of shown and paired counts against the lookup alone, per kind. Choose on
development projects; report on test projects.

``--check`` compares the replay, at each threshold, with hybrid runs through the server (the
tasks whose shown suggestion differs): the replay is only worth reading where it matches.
``--versus`` replays a second model run of the same tasks (another setting, say) beside
``--model`` and gives, per threshold, both arms' accepted characters per task and the tasks
where the second keeps more or fewer.
Deadlines are not replayed: these are quality runs (``completion.timeoutMs`` high).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ghostcomplete.backends.base import Candidate
from ghostcomplete.backends.hybrid.backend import combined, lookup_is_sure
from ghostcomplete.backends.onnx.confidence_cut import CALIBRATION
from ghostcomplete.bench.acceptance import TaskResult
from ghostcomplete.bench.compare_runs import answer_of, load_results, load_results_and_weights
from ghostcomplete.bench.metrics import score
from ghostcomplete.bench.model_cut_study import cut_suggestion
from ghostcomplete.bench.tasks import KINDS

DEFAULT_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class Pair:
    """One task as the lookup answered it and as the model did (its cut off)."""

    lookup: TaskResult
    model: TaskResult


@dataclass(frozen=True)
class Choice:
    task_id: str
    kind: str
    suggestion: str
    writer: str  # "lookup" or "model"; "" when nothing is shown
    target: str


def paired(lookup: Sequence[TaskResult], model: Sequence[TaskResult]) -> list[Pair]:
    """The tasks both runs hold (same task, same context), in the lookup run's order."""
    by_key = {(row.task_id, row.context): row for row in model}
    return [
        Pair(row, by_key[(row.task_id, row.context)])
        for row in lookup
        if (row.task_id, row.context) in by_key
    ]


def model_candidates(
    row: TaskResult, gate: float, weights: Sequence[float] = CALIBRATION
) -> list[Candidate]:
    """What the model backend would have answered with its confidence cut at ``gate``
    (calibrated by ``weights``)."""
    text, chance = cut_suggestion(answer_of(row), weights, gate)
    return [Candidate(text, "onnx", {"confidence": chance})] if text else []


def lookup_candidates(row: TaskResult) -> list[Candidate]:
    return [Candidate(row.suggestion, row.origin, dict(row.details))] if row.suggestion else []


def replay(
    pair: Pair,
    lookup_first: float,
    gate: float,
    weigh: str = "chance",
    weights: Sequence[float] = CALIBRATION,
    model_first: bool = False,
) -> Choice:
    """What the hybrid shows on one task; with ``model_first`` (``order: "model"``) the
    model's answer where it has one, whatever ``lookup_first`` is."""
    quick = lookup_candidates(pair.lookup)
    if not model_first and lookup_is_sure(quick, lookup_first):
        found = quick
    else:
        answer = model_candidates(pair.model, gate, weights)
        _, found = combined(quick, answer, 1, weigh, model_first)
    first = found[0] if found else None
    writer = "" if first is None else ("model" if first.origin.startswith("onnx") else "lookup")
    return Choice(
        pair.lookup.task_id,
        pair.lookup.kind,
        first.text if first else "",
        writer,
        pair.lookup.target,
    )


def _chars(choice: Choice) -> int:
    scored = score(choice.suggestion, choice.target)
    return len(choice.suggestion.rstrip()) if scored.accepted else 0


def _more_fewer(chars: Sequence[int], base: Sequence[int]) -> tuple[int, int]:
    """On how many tasks ``chars`` keeps more characters than ``base``, and on how many
    fewer (the two lists task by task)."""
    pairs = list(zip(chars, base, strict=True))
    return sum(1 for a, b in pairs if a > b), sum(1 for a, b in pairs if a < b)


def summary_row(name: str, choices: Sequence[Choice], alone: Sequence[Choice]) -> str:
    tasks = len(choices)
    shown = [c for c in choices if c.suggestion.strip()]
    chars = [_chars(c) for c in choices]
    accepted = [n for n in chars if n]  # an accepted suggestion saves at least 4 characters
    base = [_chars(c) for c in alone]
    more, fewer = _more_fewer(chars, base)
    per_task = sum(chars) / tasks if tasks else 0.0
    ratio = per_task / (sum(base) / tasks) if tasks and sum(base) else float("nan")
    of_shown = f"{len(accepted) / len(shown):.0%}" if shown else "—"
    model = sum(1 for c in shown if c.writer == "model")
    return (
        f"| {name} | {tasks} | {len(shown)} | {model} | {len(accepted)} | {of_shown} "
        f"| {per_task:.2f} | {ratio:.2f} | {more} / {fewer} |"
    )


HEADER = (
    "| lookupFirst | tasks | shown | by the model | accepted | accepted of shown "
    "| accepted ch / task | × lookup | paired chars vs lookup: more / fewer |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def study(
    pairs: Sequence[Pair],
    thresholds: Sequence[float],
    gate: float,
    weigh: str = "chance",
    weights: Sequence[float] = CALIBRATION,
) -> str:
    alone = [
        Choice(p.lookup.task_id, p.lookup.kind, p.lookup.suggestion, "lookup", p.lookup.target)
        for p in pairs
    ]
    lines = [HEADER, summary_row("lookup alone", alone, alone)]
    model_only = [
        Choice(
            p.model.task_id,
            p.model.kind,
            next(iter(c.text for c in model_candidates(p.model, gate, weights)), ""),
            "model",
            p.model.target,
        )
        for p in pairs
    ]
    lines.append(summary_row(f"model alone (cut, gate {gate})", model_only, alone))
    first = [replay(p, 1.0, gate, weigh, weights, model_first=True) for p in pairs]
    lines.append(summary_row("model first (order: model)", first, alone))
    replayed = {t: [replay(p, t, gate, weigh, weights) for p in pairs] for t in thresholds}
    for threshold, choices in replayed.items():
        lines.append(summary_row(f"{threshold:g}", choices, alone))
    for kind in KINDS:
        kind_alone = [c for c in alone if c.kind == kind]
        if not kind_alone:
            continue
        lines.append(f"| **{kind}** | | | | | | | | |")
        of_kind = [c for c in first if c.kind == kind]
        lines.append(summary_row(f"{kind} model first", of_kind, kind_alone))
        for threshold, choices in replayed.items():
            of_kind = [c for c in choices if c.kind == kind]
            lines.append(summary_row(f"{kind} {threshold:g}", of_kind, kind_alone))
    return "\n".join(lines)


def check(
    pairs: Sequence[Pair],
    hybrid: Sequence[TaskResult],
    thresholds: Sequence[float],
    gate: float,
    weigh: str = "chance",
    weights: Sequence[float] = CALIBRATION,
) -> str:
    """Per threshold, how many tasks the replay shows differently from the server's hybrid."""
    by_key = {(row.task_id, row.context): row for row in hybrid}
    shared = [p for p in pairs if (p.lookup.task_id, p.lookup.context) in by_key]

    def differing(threshold: float, model_first: bool = False) -> int:
        return sum(
            1
            for p in shared
            if replay(p, threshold, gate, weigh, weights, model_first).suggestion.rstrip()
            != by_key[(p.lookup.task_id, p.lookup.context)].suggestion.rstrip()
        )

    lines = [f"{len(shared)} tasks in the hybrid runs"]
    for threshold in thresholds:
        lines.append(f"lookupFirst {threshold:g}: {differing(threshold)} differ")
    lines.append(f"model first: {differing(1.0, model_first=True)} differ")
    return "\n".join(lines)


def versus(
    lookup: Sequence[TaskResult],
    first: Sequence[TaskResult],
    second: Sequence[TaskResult],
    thresholds: Sequence[float],
    gate: float,
    weigh: str = "chance",
    weights: Sequence[float] = CALIBRATION,
) -> str:
    """Per threshold, the hybrid replayed with each of two model runs of the same tasks: the
    accepted characters per task of each, and the tasks where the second keeps more / fewer."""
    in_both = {(row.task_id, row.context) for row in first} & {
        (row.task_id, row.context) for row in second
    }
    shared = [row for row in lookup if (row.task_id, row.context) in in_both]
    ours, theirs = paired(shared, first), paired(shared, second)
    lines = [f"{len(ours)} tasks in both model runs"]
    for threshold in thresholds:
        a = [_chars(replay(p, threshold, gate, weigh, weights)) for p in ours]
        b = [_chars(replay(q, threshold, gate, weigh, weights)) for q in theirs]
        count = max(1, len(ours))
        more, fewer = _more_fewer(b, a)
        lines.append(
            f"lookupFirst {threshold:g}: {sum(a) / count:.2f} against {sum(b) / count:.2f} "
            f"accepted ch / task; the second keeps more on {more}, fewer on {fewer}"
        )
    return "\n".join(lines)


def _runs(spec: str) -> list[TaskResult]:
    return [row for part in spec.split("+") for row in load_results(Path(part))]


def _model_runs(spec: str) -> tuple[list[TaskResult], tuple[float, ...]]:
    """The model runs' tasks, and the cut weights the backend uses for the model of the
    first of them."""
    first, *rest = spec.split("+")
    rows, weights = load_results_and_weights(Path(first))
    for part in rest:
        rows += load_results(Path(part))
    return rows, weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookup", required=True, help="lookup runs, FILE[+FILE...]")
    parser.add_argument("--model", required=True, help="model runs with cut none, FILE[+...]")
    parser.add_argument("--gate", type=float, default=0.05, help="the model's minConfidence")
    parser.add_argument(
        "--lookup-first",
        default=",".join(f"{t:g}" for t in DEFAULT_THRESHOLDS),
        help="thresholds to replay, comma-separated",
    )
    parser.add_argument(
        "--weigh",
        choices=("chance", "chars"),
        default="chance",
        help="the lookup goes first where its chance (or chance × length) is the higher",
    )
    parser.add_argument("--check", default=None, help="hybrid runs to compare, FILE[+FILE...]")
    parser.add_argument(
        "--versus", default=None, help="a second model run of the same tasks, FILE[+FILE...]"
    )
    parser.add_argument(
        "--calibration",
        default=None,
        help="the model's cut calibration, W0,W1 (model_cut_study --fit prints one; default: "
        "the one the backend uses for the model of the first --model run)",
    )
    args = parser.parse_args(argv)
    model_runs, weights = _model_runs(args.model)
    if args.calibration:
        try:
            weights = tuple(float(w) for w in args.calibration.split(","))
        except ValueError:
            parser.error(f"--calibration {args.calibration!r}: numbers, comma-separated")
        if len(weights) != len(CALIBRATION):
            parser.error(f"--calibration needs {len(CALIBRATION)} numbers")
    thresholds = [float(t) for t in args.lookup_first.split(",") if t]
    pairs = paired(_runs(args.lookup), model_runs)
    if not pairs:
        parser.error("the lookup and model runs share no task")
    print(study(pairs, thresholds, args.gate, args.weigh, weights))
    if args.check:
        print()
        print(check(pairs, _runs(args.check), thresholds, args.gate, args.weigh, weights))
    if args.versus:
        print()
        second = _runs(args.versus)
        print(
            versus(
                _runs(args.lookup), model_runs, second, thresholds, args.gate, args.weigh, weights
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
