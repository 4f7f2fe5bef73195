"""Token healing off and on, on holes cut after a space or inside a word.

``python -m ghostcomplete.bench.healing_study --model FOLDER|NAME [--split dev|test|all]
[--per-kind 30] [--seed 7] [--threads N] [--json OUT]``

Holes are cut in the Python, JavaScript and TypeScript files (not tests) of one side of the
corpus (bench/corpus.toml), by default the development projects, where tuning choices such as
``backend.onnx.tokenHealing``'s default are made. Files are drawn round-robin over the
projects in a seeded order; a file gives at most one hole of each kind, on a seeded line after
its tenth, at the line's first fit: ``space`` right after ``= ``, ``new `` or ``return ``
between a non-blank character and an identifier (the prefix ends in a space); ``word`` two
characters into an identifier of six or more characters after a space or a dot.

The prefix is the 40 lines before the hole's line and that line up to the hole; the suffix,
the 10 lines after it; no snippets. The rest of the hole's line is the truth. Two OnnxBackends
differing only in ``token_healing`` answer one line each (``cut: "none"``, 24 new tokens at
most). Per hole and setting, the suggestion stripped of trailing blanks, as is the truth:

- **exact**: the suggestion is not empty and equals the truth (``bench.metrics.score``);
- **prefix chars**: the suggestion's length when the truth starts with the whole, non-empty
  suggestion, else 0 (no minimum length: finishing a word with two characters counts);
- **first char**: the suggestion begins with the truth's first character (it goes on from
  where the user stopped);
- **paired**: holes where on was exact and off not (and the reverse), and where on had more
  prefix chars than off (and the reverse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.bench.corpus import SPLITS, Repo, default_cache, family, language_of, load_repos
from ghostcomplete.bench.metrics import score
from ghostcomplete.bench.progress import Progress
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

KINDS = ("space", "word")
PREFIX_LINES = 40
SUFFIX_LINES = 10
MAX_NEW_TOKENS = 24
_FAMILIES = ("python", "javascript")  # corpus.family: JavaScript includes TypeScript
_FIRST_LINE = 11  # 0-based: holes only after the file's first ten lines


@dataclass(frozen=True)
class Hole:
    """One hole: where it is cut, the model's context around it, and the truth."""

    kind: str
    repo: str
    path: str
    language_id: str
    line: int  # 0-based
    column: int
    prefix: str
    suffix: str
    target: str


@dataclass(frozen=True)
class Answer:
    """One setting's answer to one hole, scored (the module's docstring defines the scores)."""

    suggestion: str
    exact: bool
    prefix_chars: int
    first_char: bool
    ms: float


_AFTER_SPACE = re.compile(r"\S (?:= |new |return )(?=[A-Za-z_])")
_IN_WORD = re.compile(r"[ .]([A-Za-z_][A-Za-z_0-9]{5,})")


def hole_column(kind: str, line: str) -> int | None:
    """Where a hole of ``kind`` is cut in ``line`` (its first fit), or None."""
    if kind == "space":
        found = _AFTER_SPACE.search(line)
        return found.end() if found else None
    found = _IN_WORD.search(line)
    return found.start(1) + 2 if found else None


def cut_hole(kind: str, repo: Repo, path: str, lines: list[str], rng: random.Random) -> Hole | None:
    spots = [
        (row, column)
        for row in range(_FIRST_LINE, len(lines))
        if (column := hole_column(kind, lines[row])) is not None
    ]
    if not spots:
        return None
    row, column = rng.choice(spots)
    line = lines[row]
    prefix = "\n".join([*lines[max(0, row - PREFIX_LINES) : row], line[:column]])
    suffix = "\n" + "\n".join(lines[row + 1 : row + 1 + SUFFIX_LINES])
    target = line[column:].rstrip()
    return Hole(kind, repo.label, path, language_of(path), row, column, prefix, suffix, target)


def _files(repos: Sequence[Repo], rng: random.Random) -> Iterator[tuple[Repo, str]]:
    """The eligible files, one project after another, each project's in a seeded order."""
    queues = []
    for repo in repos:
        paths = [p for p in repo.files if family(p) in _FAMILIES and "test" not in p.lower()]
        rng.shuffle(paths)
        queues.append((repo, paths))
    while any(paths for _, paths in queues):
        for repo, paths in queues:
            if paths:
                yield repo, paths.pop()


def draw_holes(repos: Sequence[Repo], per_kind: int, seed: int) -> list[Hole]:
    """Up to ``per_kind`` holes of each kind, the space holes first."""
    rng = random.Random(seed)
    holes: dict[str, list[Hole]] = {kind: [] for kind in KINDS}
    for repo, path in _files(repos, rng):
        lines = repo.text(path).split("\n")
        for kind in KINDS:
            if len(holes[kind]) < per_kind and (hole := cut_hole(kind, repo, path, lines, rng)):
                holes[kind].append(hole)
        if all(len(found) >= per_kind for found in holes.values()):
            break
    return [hole for kind in KINDS for hole in holes[kind]]


def prompt_for(hole: Hole, fim_family: str) -> CompletionPrompt:
    context = PackedContext(prefix=hole.prefix, suffix=hole.suffix, snippets=(), tokens=0)
    text = render_fim(context, fim_family, hole.language_id, hole.path)
    stop = TEMPLATES[fim_family].stop
    return CompletionPrompt(hole.language_id, hole.path, context, text, stop)


def judged(suggestion: str, target: str, ms: float) -> Answer:
    shown = suggestion.rstrip()
    prefix_chars = len(shown) if shown and target.startswith(shown) else 0
    first_char = bool(shown) and shown[0] == target[:1]
    return Answer(shown, score(shown, target).exact, prefix_chars, first_char, round(ms, 1))


async def answer_all(settings: OnnxSettings, holes: Sequence[Hole]) -> list[Answer]:
    backend = OnnxBackend(settings)
    fim_family = backend.fim_family or "plain"
    limits = GenerationLimits(scope=Scope.LINE, max_chars=400, max_lines=1, candidates=1)
    answers = []
    progress = Progress(len(holes), f"healing {'on' if settings.token_healing else 'off'}")
    try:
        await asyncio.to_thread(lambda: backend.model)  # loaded before the first clock starts
        for hole in holes:
            started = time.monotonic()
            found = await backend.generate(prompt_for(hole, fim_family), limits)
            elapsed = (time.monotonic() - started) * 1000
            answers.append(judged(found[0].text if found else "", hole.target, elapsed))
            progress.advance()
    finally:
        await backend.aclose()
    return answers


def summarize(
    holes: Sequence[Hole], off: Sequence[Answer], on: Sequence[Answer]
) -> list[dict[str, Any]]:
    """Per kind of hole: each setting's totals, and the paired counts."""
    rows = []
    for kind in KINDS:
        pairs = [(a, b) for h, a, b in zip(holes, off, on, strict=True) if h.kind == kind]
        row: dict[str, Any] = {"kind": kind, "holes": len(pairs)}
        for name, pick in (("off", 0), ("on", 1)):
            answers = [pair[pick] for pair in pairs]
            row[name] = {
                "exact": sum(a.exact for a in answers),
                "prefix chars": sum(a.prefix_chars for a in answers),
                "first char": sum(a.first_char for a in answers),
                "shown": sum(bool(a.suggestion) for a in answers),
                "mean ms": round(sum(a.ms for a in answers) / max(1, len(answers))),
            }
        for name, x, y in (("on better", 1, 0), ("off better", 0, 1)):
            row[name] = {
                "exact": sum(p[x].exact and not p[y].exact for p in pairs),
                "prefix chars": sum(p[x].prefix_chars > p[y].prefix_chars for p in pairs),
            }
        rows.append(row)
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    totals = ("exact", "prefix chars", "first char", "shown", "mean ms")
    paired = ("exact", "prefix chars")
    head = [f"{c} off / on" for c in totals] + [f"paired {c}: on / off better" for c in paired]
    lines = ["| hole | holes | " + " | ".join(head) + " |", "|---" * (2 + len(head)) + "|"]
    for r in rows:
        cells = [f"{r['off'][c]} / {r['on'][c]}" for c in totals]
        cells += [f"{r['on better'][c]} / {r['off better'][c]}" for c in paired]
        lines.append(f"| {r['kind']} | {r['holes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.healing_study")
    parser.add_argument("--model", required=True, help="a model folder or an installed name")
    parser.add_argument("--split", choices=SPLITS, default="dev")
    parser.add_argument("--per-kind", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="0: the backend's default")
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = Path(args.model).expanduser()
    where = {"path": str(folder)} if folder.is_dir() else {"model": args.model}
    base = OnnxSettings(**where, threads=args.threads, max_new_tokens=MAX_NEW_TOKENS, cut="none")
    repos = load_repos(quick=False, paths=[], cache=args.cache, split=args.split)
    holes = draw_holes(repos, args.per_kind, args.seed)
    off = asyncio.run(answer_all(replace(base, token_healing=False), holes))
    on = asyncio.run(answer_all(replace(base, token_healing=True), holes))
    rows = summarize(holes, off, on)
    print(f"{args.model}, split {args.split}, seed {args.seed}, {len(holes)} holes")
    print(markdown(rows))
    if args.json:
        settings = {k: getattr(args, k) for k in ("model", "split", "seed", "per_kind")}
        # Each hole where it is and its truth; its context is in the file.
        holes_out = [
            {k: v for k, v in asdict(h).items() if k not in ("prefix", "suffix")}
            | {"off": asdict(a), "on": asdict(b)}
            for h, a, b in zip(holes, off, on, strict=True)
        ]
        data = {"settings": settings, "summary": rows, "holes": holes_out}
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
