"""How much better could the lookup backend choose? A study on the acceptance tasks.

``python -m ghostcomplete.bench.lookup_study [--split dev|test|all] [--family F] [--seed N]
[--tasks N] [--only NAME] [--fit]``

Fits are made on the development projects only (``--split dev``, the default); the test
projects are for reporting.

For every acceptance task (the same seeded tasks as ``bench acceptance``) it lists the places
the backend compares (``backends.lookup.backend.find_occurrences``: in the prefix, the suffix — the
whole document, as the server gives a local backend — and the 20 nearest files, up to 16
places per source of the longest text that ends at the cursor there), with what followed
each, cut to the line or block as the server cuts it. Then, in-process and without the
server's filters:

- **choices** — accept rate and accepted characters per cursor of rules that pick one
  occurrence: the plain lookup (longest match, then prefix > suffix > files, nearest), a vote
  weighted by match length, an agreement cut for blocks (the lines on which the longest
  matches agree), the backend's own (match length plus the similarity of the surrounding
  lines), each whole or with the confidence cut, and the **oracle** (any occurrence the user
  would accept whole: the ceiling of choosing better);
- **confidence** — the accept rate of the longest match by matched length and what a gate
  on it would cost; what each ``minConfidence`` gate on the estimated chance of acceptance
  costs in shown suggestions and accepted characters, and that chance against the acceptance
  observed (``--fit`` refits its weights on the tasks run).

Rates are over all tasks. Accepted = the suggestion (≥ 4 characters) is a prefix of the true
continuation, as in the acceptance benchmark.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup.backend import (
    AROUND_CHARS,
    MAX_DOCUMENT_CHARS,
    Occurrence,
    continuation_counts,
    find_occurrences,
    lead_and_agreement,
    nearest_first,
    surrounding_identifiers,
)
from ghostcomplete.backends.lookup.confidence import (
    FITS,
    RECALIBRATED_BELOW,
    ContinuationCounts,
    Cut,
    FamilyFit,
    acceptance_features,
    chance_of,
    confident_cut,
    fit_for,
    near_words,
    piece_evidence,
    place_features,
)
from ghostcomplete.backends.lookup.ngram import ngram_continuation, written_first
from ghostcomplete.bench.corpus import SPLITS, default_cache, load_repos
from ghostcomplete.bench.metrics import accepted
from ghostcomplete.bench.tasks import Task, make_tasks
from ghostcomplete.context.languages import family_of
from ghostcomplete.context.syntax import Scope

# As the server gives a local backend: the whole document, each side capped.
_PREFIX_CHARS = MAX_DOCUMENT_CHARS
_SUFFIX_CHARS = MAX_DOCUMENT_CHARS
_QUERY_CHARS = 2000
_BLOCK_LINES = 20
_MAX_CHARS = 400
_GATES = (0, 16, 24, 32, 48, 64)
_CONFIDENCE_GATES = (0.0, 0.05, 0.1, 0.12, 0.15, 0.2, 0.3, 0.4, 0.6)


@dataclass(frozen=True)
class Row:
    task: Task
    found: list[Occurrence]
    sources: tuple[str, ...]  # prefix, suffix, files: what the confidence cut counts in
    # The weights the cut and gate are judged with: the family's fit, else Python's (a
    # candidate: the server gives a family with no fit the plain lookup).
    fit: FamilyFit = FITS["python"]
    fitted: bool = True  # the family has a fit in the backend (else its default is plain)

    def counts(self) -> ContinuationCounts:
        # Built when asked: the joined text is about a megabyte per task.
        return continuation_counts(self.sources)


Choice = Callable[[Row], str | None]


def occurrences(task: Task, files: Sequence[str]) -> list[Occurrence]:
    """The places the backend compares, best first (``find_occurrences``)."""
    prefix = task.prefix[-_PREFIX_CHARS:]
    suffix = task.suffix[:_SUFFIX_CHARS]
    block = task.kind == "block"
    scope, max_lines = (Scope.BLOCK, _BLOCK_LINES) if block else (Scope.LINE, 1)
    around = surrounding_identifiers(prefix[-AROUND_CHARS:], suffix[:AROUND_CHARS])
    sources = [prefix, suffix, *files]
    return find_occurrences(prefix[-_QUERY_CHARS:], sources, around, scope, max_lines, _MAX_CHARS)


def longest_choice(row: Row) -> str | None:
    """The backend before it compared surroundings: longest match, prefix first."""
    best = min(row.found, key=nearest_first)
    return best.text


def backend_choice(row: Row) -> str | None:
    """Match length plus the similarity of the surrounding lines (``Occurrence.score``)."""
    return row.found[0].text


def confidence_cut(row: Row, choose: Choice = backend_choice) -> Cut | None:
    """The backend's choice, cut where it stops being likely (the server's default)."""
    chosen = choose(row)
    if chosen is None:
        return None
    query = row.task.prefix[-_QUERY_CHARS:]
    matched = next(o.length for o in row.found if o.text == chosen)
    return confident_cut(
        chosen.rstrip(), query, row.counts(), matched, place_weights=row.fit.place_calibration
    )


def confidence_cut_choice(row: Row) -> str | None:
    cut = confidence_cut(row)
    return cut.text if cut else None


def longest_cut_choice(row: Row) -> str | None:
    cut = confidence_cut(row, longest_choice)
    return cut.text if cut else None


def calibrated_cut(row: Row) -> tuple[Cut, tuple[float, ...], float] | None:
    """The backend's cut, the features of its chance of being accepted, and that chance."""
    cut = confidence_cut(row)
    if cut is None:
        return None
    top = row.found[0]
    lead, agreeing = lead_and_agreement(row.found, 0)
    features = acceptance_features(cut.confidence, top.similarity, lead, agreeing, len(cut.text))
    return cut, features, chance_of(features, row.fit.calibration)


def default_choice(row: Row) -> str | None:
    """The cut, shown only when its chance of being accepted reaches the default
    ``backend.lookup.minConfidence``."""
    found = calibrated_cut(row)
    if found is None or found[2] < LookupSettings().min_confidence:
        return None
    return found[0].text


def fallback_choice(row: Row) -> str | None:
    """The server's default: the gated cut, or the n-gram's suggestion where that shows
    nothing or is weak and the n-gram is sure (``written_first``, as the backend decides);
    the plain lookup for a family with no fit."""
    if not row.fitted:
        return longest_choice(row) if row.found else None
    found = calibrated_cut(row) if row.found else None
    copied = found if found and found[2] >= LookupSettings().min_confidence else None
    written = written_first(
        copied[2] if copied else None,
        lambda: ngram_continuation(row.counts(), row.task.prefix[-_QUERY_CHARS:]),
    )
    shown = written or (copied[0] if copied else None)
    return shown.text if shown else None


def _logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, ...]:
    """Logistic regression weights by Newton's method with an L2 penalty ``l2``."""
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x.T * (p * (1 - p))) @ x + l2 * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return tuple(round(float(v), 3) for v in w)


def fit_calibration(rows: list[Row], l2: float = 1.0) -> tuple[float, ...]:
    """Logistic regression of "accepted whole" on the features of the backend's cut: the
    weights ``lookup_confidence.CALIBRATION`` holds."""
    examples = [
        (found[1], accepted(found[0].text, row.task.target.rstrip()))
        for row in rows
        if row.found and (found := calibrated_cut(row))
    ]
    x = np.array([features for features, _ in examples])
    y = np.array([float(ok) for _, ok in examples])
    return _logistic(x, y, l2)


def fit_place_calibration(rows: list[Row], l2: float = 1.0) -> tuple[float, ...]:
    """Logistic regression of "this piece is right" on ``place_features``, for the pieces
    of the backend's copy (``found[0]``) up to its first wrong one whose counted chance is
    recalibrated: the weights ``lookup_confidence.PLACE_CALIBRATION`` holds."""
    x: list[tuple[float, ...]] = []
    y: list[float] = []
    for row in rows:
        if not row.found:
            continue
        place, target, counts = row.found[0], row.task.target, row.counts()
        query = row.task.prefix[-_QUERY_CHARS:]
        for match, evidence in piece_evidence(place.text, query, counts, near_words(query)):
            typed = match.start()
            if not target.startswith(place.text[:typed]):
                break
            if 0.0 < evidence.chance < RECALIBRATED_BELOW:
                x.append(place_features(evidence, place.length + typed, typed))
                y.append(float(target.startswith(place.text[: match.end()])))
    return _logistic(np.array(x), np.array(y), l2)


def vote_choice(row: Row) -> str | None:
    longest = max(o.length for o in row.found)
    votes: defaultdict[str, float] = defaultdict(float)
    for o in row.found:
        votes[o.text] += (o.length / longest) ** 4
    return max(votes, key=lambda text: votes[text])


def agreement_choice(row: Row) -> str | None:
    chosen = longest_choice(row)
    if row.task.kind != "block" or chosen is None:
        return chosen
    longest = max(o.length for o in row.found)
    rows = [o.text.split("\n") for o in row.found if o.length == longest]
    agreed: list[str] = []
    for lines in zip(*rows, strict=False):
        if any(line != lines[0] for line in lines):
            break
        agreed.append(lines[0])
    return "\n".join(agreed) if "".join(agreed).strip() else chosen.split("\n")[0]


CHOICES: dict[str, Choice] = {
    "plain lookup (longest, prefix first)": longest_choice,
    "vote by match length": vote_choice,
    "agreement cut for blocks": agreement_choice,
    "longest + confidence cut": longest_cut_choice,
    "surroundings (the backend's choice), whole": backend_choice,
    "surroundings + confidence cut": confidence_cut_choice,
    "surroundings + cut + default minConfidence": default_choice,
    "… + n-gram fallback (the default)": fallback_choice,
}
# Choices that can speak where nothing matched.
_WITHOUT_PLACES = frozenset({fallback_choice})


def study(rows: list[Row]) -> str:
    kinds = [*sorted({row.task.kind for row in rows}), "all"]
    count = Counter(k for row in rows for k in (row.task.kind, "all"))
    header = "| rule | " + " | ".join(kinds) + " | shown % | accepted % of shown | × backend ch |"
    lines = ["## Choices", "", header, "|---|" + "---|" * (len(kinds) + 3)]
    baseline = 0.0
    for name, choose in CHOICES.items():
        hits: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        shown = 0
        for row in rows:
            speaks = row.found or choose in _WITHOUT_PLACES
            text = (choose(row) or "").rstrip() if speaks else ""
            if not text.strip():
                continue  # shown = anything at all, as in the acceptance benchmark
            shown += 1
            if accepted(text, row.task.target.rstrip()):
                for k in (row.task.kind, "all"):
                    hits[k] += 1
                    chars[k] += len(text)
        cells = [f"{100 * hits[k] / count[k]:.1f} % · {chars[k] / count[k]:.2f} ch" for k in kinds]
        baseline = baseline or chars["all"]
        cells += [
            f"{100 * shown / len(rows):.1f}",
            f"{100 * hits['all'] / max(shown, 1):.1f}",
            f"{chars['all'] / baseline:.2f}" if baseline else "–",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    oracle: Counter[str] = Counter()
    oracle_chars: Counter[str] = Counter()
    for row in rows:
        target = row.task.target.rstrip()
        winners = [len(o.text.rstrip()) for o in row.found if accepted(o.text.rstrip(), target)]
        if winners:
            for k in (row.task.kind, "all"):
                oracle[k] += 1
                oracle_chars[k] += max(winners)
    cells = [
        f"{100 * oracle[k] / count[k]:.1f} % · {oracle_chars[k] / count[k]:.2f} ch" for k in kinds
    ]
    cells += ["–", "–", f"{oracle_chars['all'] / baseline:.2f}" if baseline else "–"]
    lines.append("| oracle (any occurrence) | " + " | ".join(cells) + " |")
    lines += ["", "Cells: accepted % of tasks · accepted characters per task.", ""]
    lines += _confidence(rows)
    lines += _confidence_gates(rows)
    return "\n".join(lines) + "\n"


def _confidence_gates(rows: list[Row]) -> list[str]:
    """What ``backend.lookup.minConfidence`` costs and buys, and whether the chance it gates
    on is calibrated (estimated against observed acceptance)."""
    cuts = [calibrated_cut(row) if row.found else None for row in rows]
    lines = ["", "## Gates on the chance of being accepted (`minConfidence`)", ""]
    lines += ["| min confidence | shown % | accepted % of shown | accepted ch/task |"]
    lines.append("|---|---|---|---|")
    for gate in _CONFIDENCE_GATES:
        shown = ok = chars = 0
        for row, found in zip(rows, cuts, strict=True):
            if found is None or found[2] < gate:
                continue
            shown += 1
            if accepted(found[0].text, row.task.target.rstrip()):
                ok += 1
                chars += len(found[0].text)
        share = 100 * ok / shown if shown else 0.0
        lines.append(
            f"| {gate} | {100 * shown / len(rows):.1f} | {share:.1f} | {chars / len(rows):.2f} |"
        )
    lines += ["", "## Calibration: estimated chance against accepted", ""]
    lines += ["| estimated | shown | mean estimate | accepted % |", "|---|---|---|---|"]
    buckets: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for row, found in zip(rows, cuts, strict=True):
        if found is None:
            continue
        bucket = buckets[min(int(found[2] * 5), 4)]
        bucket[0] += 1
        bucket[1] += found[2]
        bucket[2] += accepted(found[0].text, row.task.target.rstrip())
    for index in sorted(buckets):
        count, estimate, taken = buckets[index]
        label = f"{index / 5:.1f}–{(index + 1) / 5:.1f}"
        cells = f"{count:.0f} | {estimate / count:.2f} | {100 * taken / count:.1f}"
        lines.append(f"| {label} | {cells} |")
    return lines


def _confidence(rows: list[Row]) -> list[str]:
    by_length: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    by_agreement: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    # A gate is (matched length, agreeing occurrences): show when the match is at least that
    # long, or when at least that many occurrences continue with the chosen text.
    gates: dict[tuple[int, int], list[int]] = {
        (gate, agree): [0, 0, 0] for agree in (0, 2, 3) for gate in _GATES
    }
    for row in rows:
        task, found = row.task, row.found
        if not found:
            continue
        best = min(found, key=lambda o: (-o.length, o.source, o.nth))
        agreeing = sum(1 for o in found if o.text == best.text)
        ok = accepted(best.text.rstrip(), task.target.rstrip())
        bucket = min(best.length // 16, 4) * 16
        by_length[bucket][0] += 1
        by_length[bucket][1] += ok
        by_agreement[min(agreeing, 4)][0] += 1
        by_agreement[min(agreeing, 4)][1] += ok
        for (gate, agree), tally in gates.items():
            if best.length >= gate or (agree and agreeing >= agree):
                tally[0] += 1
                tally[1] += ok
                tally[2] += len(best.text.rstrip()) if ok else 0
    lines = ["## Confidence of the backend's choice by matched length", ""]
    lines += ["| matched chars | shown | accepted % of shown |", "|---|---|---|"]
    for bucket in sorted(by_length):
        shown, ok = by_length[bucket]
        label = f"≥ {bucket}" if bucket == 64 else f"{bucket}–{bucket + 15}"
        lines.append(f"| {label} | {shown} | {100 * ok / shown:.1f} |")
    lines += ["", "## … and by agreement (occurrences that continue with the chosen text)", ""]
    lines += ["| agreeing occurrences | shown | accepted % of shown |", "|---|---|---|"]
    for count in sorted(by_agreement):
        shown, ok = by_agreement[count]
        label = f"≥ {count}" if count == 4 else str(count)
        lines.append(f"| {label} | {shown} | {100 * ok / shown:.1f} |")
    total = len(rows)
    header = (
        "| gate: show when matched ≥ | or agreeing ≥ | shown % | accepted % of shown "
        "| accepted ch/task |"
    )
    lines += ["", header]
    lines.append("|---|---|---|---|---|")
    for (gate, agree), (shown, ok, chars) in gates.items():
        share = 100 * ok / shown if shown else 0.0
        either = str(agree) if agree else "–"
        lines.append(
            f"| {gate} | {either} | {100 * shown / total:.1f} | {share:.1f} | {chars / total:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.lookup_study")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=30, help="tasks per kind per repository")
    parser.add_argument("--only", action="append", help="only this project of the corpus")
    parser.add_argument("--quick", action="store_true", help="the offline stdlib subset")
    parser.add_argument("--cache", type=Path, default=None, help="download cache")
    parser.add_argument(
        "--split", choices=SPLITS, default="dev", help="side of the corpus (fit on dev only)"
    )
    parser.add_argument("--language", help="only tasks in this language id (e.g. python)")
    parser.add_argument(
        "--family", help="only tasks of this language family (python, javascript: JS and TS)"
    )
    parser.add_argument(
        "--fit", action="store_true", help="print the calibration fitted on these tasks"
    )
    args = parser.parse_args(argv)
    if args.fit and args.split != "dev":
        parser.error("--fit: fits are made on the development projects only (--split dev)")
    cache = args.cache or default_cache()
    repos = load_repos(quick=args.quick, paths=[], cache=cache, only=args.only, split=args.split)
    rows: list[Row] = []
    for repo in repos:
        texts: dict[str, str] = {}  # one copy of each file, shared by the rows
        for task in make_tasks(repo, args.tasks, args.seed):
            if args.language and task.language_id != args.language:
                continue
            family = family_of(task.language_id)
            if args.family and family != args.family:
                continue
            files = [
                texts.setdefault(path, repo.text(path)) if path not in texts else texts[path]
                for path in task.neighbours[:20]
            ]
            found = occurrences(task, files)
            sources = (task.prefix[-_PREFIX_CHARS:], task.suffix[:_SUFFIX_CHARS], *files)
            fit = fit_for(family)
            rows.append(Row(task, found, sources, fit or FITS["python"], fit is not None))
    language = "".join(f", {x}" for x in (args.family, args.language) if x)
    title = f"# Lookup choice study — {args.split} split, seed {args.seed}{language}"
    print(f"{title}, {len(rows)} tasks\n")
    print(study(rows))
    if args.fit:
        fitted = fit_family(rows)
        print(f"Pieces fitted (FamilyFit.place_calibration): {fitted.place_calibration}\n")
        print(f"Calibration fitted (FamilyFit.calibration): {fitted.calibration}\n")
        print("## The same tasks judged with the weights fitted on them\n")
        print(study([replace(row, fit=fitted, fitted=True) for row in rows]))
    return 0


def fit_family(rows: list[Row]) -> FamilyFit:
    """A family's weights fitted on ``rows`` (its development tasks): the piece model first,
    then the chance of acceptance of the cuts that the new piece model makes."""
    places = fit_place_calibration(rows)
    recut = [replace(row, fit=FamilyFit(places, row.fit.calibration)) for row in rows]
    return FamilyFit(places, fit_calibration(recut))


if __name__ == "__main__":
    raise SystemExit(main())
