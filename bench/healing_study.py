"""Token healing off and on, on holes cut after a space or inside a word.

``python -m ghostcomplete.bench.healing_study --model FOLDER|NAME [--split dev|test|all]
[--per-kind 30] [--seed 7] [--threads N] [--json OUT]``

Holes are cut in the Python, JavaScript and TypeScript files of one side of the corpus
(bench/corpus.toml; development projects by default, where tuning choices such as
``backend.onnx.tokenHealing``'s default are made), test files left out. Files are drawn
round-robin over the projects, each project's files in a seeded order; each file gives at
most one hole of each kind, on a seeded one of its lines after the tenth where the kind fits,
at the first place of that line where it does:

- ``space``: right after ``= ``, ``new `` or ``return `` that follows a non-blank character
  and comes before an identifier (the prefix ends in a space);
- ``word``: two characters into an identifier of six or more characters that follows a space
  or a dot (the prefix ends in a half-typed word).

The model sees the 40 lines before the hole's line and the line up to the hole as the prefix,
and the 10 lines after it as the suffix (the rest of the hole's line is the truth, left out);
no snippets. Two OnnxBackend instances with the same settings but ``token_healing`` answer
one line each (``cut: "none"``, at most 24 new tokens). Per hole and setting, with the
suggestion and the truth both stripped of trailing blanks:

- **exact**: the suggestion is not empty and equals the truth (``bench.metrics.score``);
- **prefix chars**: the suggestion's length when the truth starts with the whole, non-empty
  suggestion, else 0 (no minimum length: finishing a word with two characters counts);
- **paired**: holes where healing on had an exact match and off not (and the reverse), and
  where on had more prefix chars than off (and the reverse).
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
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

KINDS = ("space", "word")
PREFIX_LINES = 40
SUFFIX_LINES = 10
MAX_NEW_TOKENS = 24
_FIRST_LINE = 11  # 0-based: holes only after the file's first ten lines
_AFTER_SPACE = re.compile(r"\S (?:= |new |return )(?=[A-Za-z_])")
_IN_WORD = re.compile(r"[ .]([A-Za-z_][A-Za-z_0-9]{5,})")


@dataclass(frozen=True)
class Hole:
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
    suggestion: str
    exact: bool
    prefix_chars: int
    ms: float


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
        paths = [
            p
            for p in repo.files
            if family(p) in ("python", "javascript") and "test" not in p.lower()
        ]
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
            hole = cut_hole(kind, repo, path, lines, rng) if len(holes[kind]) < per_kind else None
            if hole is not None:
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
    return Answer(shown, score(shown, target).exact, prefix_chars, round(ms, 1))


async def answer_all(settings: OnnxSettings, holes: Sequence[Hole]) -> list[Answer]:
    backend = OnnxBackend(settings)
    fim_family = backend.fim_family or "plain"
    limits = GenerationLimits(scope=Scope.LINE, max_chars=400, max_lines=1, candidates=1)
    answers = []
    try:
        await asyncio.to_thread(lambda: backend.model)  # loaded before the first clock starts
        for hole in holes:
            started = time.monotonic()
            found = await backend.generate(prompt_for(hole, fim_family), limits)
            elapsed = (time.monotonic() - started) * 1000
            answers.append(judged(found[0].text if found else "", hole.target, elapsed))
    finally:
        await backend.aclose()
    return answers


def summarize(
    holes: Sequence[Hole], off: Sequence[Answer], on: Sequence[Answer]
) -> list[dict[str, Any]]:
    rows = []
    for kind in KINDS:
        pairs = [(a, b) for h, a, b in zip(holes, off, on, strict=True) if h.kind == kind]
        row: dict[str, Any] = {"kind": kind, "holes": len(pairs)}
        for name, index in (("off", 0), ("on", 1)):
            answers = [pair[index] for pair in pairs]
            row[f"{name} shown"] = sum(bool(a.suggestion) for a in answers)
            row[f"{name} exact"] = sum(a.exact for a in answers)
            row[f"{name} prefix chars"] = sum(a.prefix_chars for a in answers)
            row[f"{name} mean ms"] = round(sum(a.ms for a in answers) / max(1, len(answers)))
        row["exact on / off better"] = [
            sum(b.exact and not a.exact for a, b in pairs),
            sum(a.exact and not b.exact for a, b in pairs),
        ]
        row["prefix chars on / off better"] = [
            sum(b.prefix_chars > a.prefix_chars for a, b in pairs),
            sum(a.prefix_chars > b.prefix_chars for a, b in pairs),
        ]
        rows.append(row)
    return rows


def located(hole: Hole) -> dict[str, Any]:
    """A hole as the JSON output keeps it: where it is and its truth, not its context."""
    return {k: v for k, v in asdict(hole).items() if k not in ("prefix", "suffix")}


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| hole | holes | exact off / on | prefix chars off / on | paired exact on / off better "
        "| paired chars on / off better | shown off / on | mean ms off / on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        exact, chars = r["exact on / off better"], r["prefix chars on / off better"]
        lines.append(
            f"| {r['kind']} | {r['holes']} | {r['off exact']} / {r['on exact']} | "
            f"{r['off prefix chars']} / {r['on prefix chars']} | {exact[0]} / {exact[1]} | "
            f"{chars[0]} / {chars[1]} | {r['off shown']} / {r['on shown']} | "
            f"{r['off mean ms']} / {r['on mean ms']} |"
        )
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
        settings = {"model": args.model, "split": args.split, "seed": args.seed}
        settings["per_kind"] = args.per_kind
        holes_out = [
            {**located(h), "off": asdict(a), "on": asdict(b)}
            for h, a, b in zip(holes, off, on, strict=True)
        ]
        data = {"settings": settings, "summary": rows, "holes": holes_out}
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
