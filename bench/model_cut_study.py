"""The model's confidence cut, fitted and judged on acceptance-benchmark results.

``python -m ghostcomplete.bench.model_cut_study RESULTS.json [--context C] [--fit | --cross]
[--gates 0,0.1,0.2]``

RESULTS.json is what ``ghostcomplete bench acceptance --backend onnx`` wrote with the
model's cut off (``"backend": {"onnx": {"cut": "none"}}``): every task carries the model's
whole answer token by token (``trace``: the text, where each token ends, its probability)
and the truth. From these, with no model run:

- **fit** (``--fit``; development projects only: a test-split file is refused): each cut
  point of each answer (backends/onnx/confidence_cut.cut_points) is one example, labelled by
  whether the truth starts with the answer up to there; a logistic regression over
  ``prefix_features`` gives weights as ``confidence_cut.FITS`` and ``SHAPE_FITS`` hold;
- **cross** (``--cross``, development files only): each seed's files left out in turn (runs
  of one seed hold the same tasks, with this model or another, so they leave together), the
  calibration refitted on the others and judged on them at the first gate, beside the
  current one on the same tasks (out of sample for the refit; the current one may have been
  fitted on any of them);
- **judge**: accepted characters per task, accept rate and accepted of shown for the answer
  as the server showed it (no cut), with the confidence cut at each gate, and with the best
  possible cut (the longest start of the answer, at a cut point, that the truth starts
  with); and the estimated chance against the share observed, in bins.

The server's filters run after the backend: an offline cut is taken as the shorter of the
cut text and the suggestion the server showed (filters only shorten), nothing where the
server showed nothing.

"The current" weights are those the backend uses for the model the first file names
(``weights_of_run``: its folder's config.json, while the folder is there).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.confidence_cut import (
    CALIBRATION,
    calibration_for,
    confident_cut,
    cut_points,
    prefix_features,
)
from ghostcomplete.backends.onnx.installed import installed_folder, read_json
from ghostcomplete.bench.metrics import score


@dataclass(frozen=True)
class Answer:
    """One task's model answer, token by token, and the truth."""

    task_id: str
    kind: str
    shown: str  # what the server showed (after its filters; the model's cut was off)
    target: str
    text: str
    ends: tuple[int, ...]
    chances: tuple[float, ...]


def weights_of_run(data: dict[str, Any]) -> tuple[float, ...]:
    """The cut weights the backend uses for the model a results file names (its settings'
    ``backend.onnx.path``, or ``.model`` among the installed models), read from that model's
    config.json while its folder is there; else the architecture default ``CALIBRATION``."""
    onnx = ((data.get("server_settings") or {}).get("backend") or {}).get("onnx") or {}
    try:
        if isinstance(onnx.get("path"), str):
            folder = Path(onnx["path"])
            folder = folder if folder.is_dir() else folder.parent
        elif isinstance(onnx.get("model"), str):
            folder = installed_folder(onnx["model"])
        else:
            return CALIBRATION
        return calibration_for(read_json(folder / "config.json")) or CALIBRATION
    except BackendError:
        return CALIBRATION


def load_answers(data: dict[str, Any], context: str | None = None) -> list[Answer]:
    """The tasks of one acceptance result (of one context setting, when given)."""
    answers = []
    for row in data["tasks"]:
        if context is not None and row["context"] != context:
            continue
        trace = row.get("trace") or {"text": "", "ends": [], "chances": []}
        answers.append(
            Answer(
                row["task_id"],
                row["kind"],
                row["suggestion"],
                row["target"],
                trace["text"],
                tuple(trace["ends"]),
                tuple(trace["chances"]),
            )
        )
    return answers


def examples(answers: Sequence[Answer]) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every cut point: does the truth start with the answer so far?"""
    rows: list[tuple[float, ...]] = []
    labels: list[float] = []
    for answer in answers:
        truth = answer.target.rstrip()
        logs = np.concatenate([[0.0], np.cumsum(np.log(np.maximum(answer.chances, 1e-12)))])
        for count, end in cut_points(answer.text, answer.ends):
            shown = answer.text[:end].rstrip()
            if not shown.strip():
                continue
            rows.append(prefix_features(float(logs[min(count, len(logs) - 1)])))
            labels.append(float(truth.startswith(shown)))
    width = len(prefix_features(0.0))
    return np.array(rows, dtype=np.float64).reshape(-1, width), np.array(labels)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[float, ...]:
    """Logistic regression weights by Newton's method with an L2 penalty ``l2``."""
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x.T * (p * (1 - p))) @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return tuple(round(float(v), 3) for v in w)


def cut_suggestion(answer: Answer, weights: Sequence[float], gate: float) -> tuple[str, float]:
    """What the server would show with the confidence cut at ``gate``, and its chance."""
    if not answer.shown.strip():
        return "", 0.0
    cut = confident_cut(answer.text, answer.ends, answer.chances, weights)
    if cut is None or cut.chance < gate:
        return "", cut.chance if cut else 0.0
    shorter = answer.shown if cut.text.startswith(answer.shown.rstrip()) else cut.text
    return shorter, cut.chance


def best_cut(answer: Answer) -> str:
    """The longest start of the shown answer, at a cut point, that the truth starts with."""
    truth = answer.target.rstrip()
    best = ""
    for _, end in cut_points(answer.text, answer.ends):
        shown = answer.text[:end].rstrip()
        if len(shown) > len(answer.shown.rstrip()):
            break
        if shown.strip() and truth.startswith(shown):
            best = shown
    return best


@dataclass(frozen=True)
class Outcome:
    tasks: int
    shown: int
    accepted: int
    accepted_chars: float

    def row(self, label: str) -> str:
        of_shown = f"{self.accepted / self.shown:.1%}" if self.shown else "—"
        return (
            f"| {label} | {self.tasks} | {self.shown / max(1, self.tasks):.1%} | "
            f"{self.accepted / max(1, self.tasks):.1%} | {of_shown} | "
            f"{self.accepted_chars / max(1, self.tasks):.2f} |"
        )


def outcome(suggestions: Sequence[str], answers: Sequence[Answer]) -> Outcome:
    scores = [score(s, a.target) for s, a in zip(suggestions, answers, strict=True)]
    return Outcome(
        len(scores),
        sum(s.shown for s in scores),
        sum(s.accepted for s in scores),
        float(sum(s.chars_saved for s in scores if s.accepted)),
    )


def judge(answers: Sequence[Answer], weights: Sequence[float], gates: Sequence[float]) -> str:
    lines = [
        "| suggestion | tasks | shown | accepted | accepted of shown | accepted chars / task |",
        "|---|---|---|---|---|---|",
        outcome([a.shown for a in answers], answers).row("as shown (cut: none)"),
    ]
    for gate in gates:
        cut = [cut_suggestion(a, weights, gate)[0] for a in answers]
        lines.append(outcome(cut, answers).row(f"confidence cut, gate {gate:g}"))
    lines.append(outcome([best_cut(a) for a in answers], answers).row("best possible cut"))
    return "\n".join(lines)


def calibration_table(answers: Sequence[Answer], weights: Sequence[float]) -> str:
    """The chance of the chosen cut against the share of those cuts the truth starts with."""
    bins: dict[int, list[float]] = {}
    for answer in answers:
        text, chance = cut_suggestion(answer, weights, 0.0)
        if text.strip():
            ok = answer.target.rstrip().startswith(text.rstrip())
            bins.setdefault(min(4, int(chance * 5)), []).append(float(ok))
    lines = ["| estimated chance | cuts | observed |", "|---|---|---|"]
    for at in sorted(bins):
        got = bins[at]
        lines.append(
            f"| {at / 5:.1f}–{(at + 1) / 5:.1f} | {len(got)} | {sum(got) / len(got):.1%} |"
        )
    return "\n".join(lines)


def cross_validate(
    folds: Sequence[tuple[str, Sequence[Answer]]],
    gate: float,
    current: Sequence[float] = CALIBRATION,
) -> str:
    """Leave one fold out: fit on the others, judge on it at ``gate``, against ``current`` on
    the same tasks; the folds' sums last. Out of sample for the refit only: ``current`` may
    have been fitted on any of them."""
    lines = [
        "| held out | weights | tasks | shown | accepted | accepted of shown "
        "| accepted chars / task |",
        "|---|---|---|---|---|---|---|",
    ]
    judged: list[Answer] = []
    suggested: dict[str, list[str]] = {"current": [], "refit": []}
    for index, (label, held) in enumerate(folds):
        rest = [a for other, (_, fold) in enumerate(folds) if other != index for a in fold]
        refit = fit_logistic(*examples(rest))
        judged += held
        for name, weights in (("current", current), ("refit", refit)):
            cut = [cut_suggestion(a, weights, gate)[0] for a in held]
            lines.append(outcome(cut, held).row(f"{label} | {name} {tuple(weights)}"))
            suggested[name] += cut
    for name, cut in suggested.items():
        lines.append(outcome(cut, judged).row(f"all | {name}"))
    return "\n".join(lines)


def seed_folds(
    runs: Sequence[tuple[object, Sequence[Answer]]],
) -> list[tuple[str, list[Answer]]]:
    """The runs grouped by seed, in the order each seed first appears; a run whose settings
    name no seed is a fold of its own."""
    folds: dict[str, list[Answer]] = {}
    for index, (seed, answers) in enumerate(runs):
        label = f"seed {seed}" if seed is not None else f"file {index + 1}"
        folds.setdefault(label, []).extend(answers)
    return list(folds.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.model_cut_study")
    parser.add_argument("results", type=Path, nargs="+", help="bench acceptance JSON files")
    parser.add_argument("--context", default=None, help="only this context setting's tasks")
    parser.add_argument("--fit", action="store_true", help="refit the calibration on these")
    parser.add_argument("--gates", default="0,0.1,0.2,0.3", help="minConfidence values judged")
    parser.add_argument(
        "--cross",
        action="store_true",
        help="leave each seed's results out in turn: refit on the others, judge on them at "
        "the first gate, against the current calibration",
    )
    args = parser.parse_args(argv)
    runs: list[tuple[object, list[Answer]]] = []
    current: tuple[float, ...] | None = None
    for path in args.results:
        data = json.loads(path.read_text(encoding="utf-8"))
        if current is None:
            current = weights_of_run(data)
        settings = data.get("settings") or {}
        split = settings.get("split")
        if (args.fit or args.cross) and split != "dev":
            parser.error(f"{path} is split {split!r}: fit on the development projects only")
        runs.append((settings.get("seed"), load_answers(data, args.context)))
    answers = [answer for _, run in runs for answer in run]
    gates = [float(g) for g in args.gates.split(",") if g.strip()]
    if args.cross:
        folds = seed_folds(runs)
        if len(folds) < 2 or not gates:
            parser.error("--cross needs results of two seeds or more and a gate")
        print(cross_validate(folds, gates[0], current or CALIBRATION))
        return 0
    weights: Sequence[float] = current or CALIBRATION
    if args.fit:
        x, y = examples(answers)
        weights = fit_logistic(x, y)
        print(f"fitted on {len(answers)} tasks, {len(y)} cut points: CALIBRATION = {weights}")
    print(judge(answers, weights, gates))
    print()
    print(calibration_table(answers, weights))
    return 0 if all(math.isfinite(w) for w in weights) else 1


if __name__ == "__main__":
    raise SystemExit(main())
