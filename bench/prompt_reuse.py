"""How much of each prompt a model's KV cache already holds while the user types on one line.

``python -m ghostcomplete.bench.prompt_reuse [--split dev|test|all] [--files N] [--chars N]
[--seed N] [--family F] [--tokenizer FOLDER] [--window N] [--settings JSON] [--only NAME]``

The same stretches as the typing replay (``bench.latency.draw_stretches``: whole lines cut out
of real files, the nearest files of the repository open) are typed back key by key, in-process,
through the real pipeline (``Pipeline.cut`` and ``prepare``, the session's caches aside), and
each prompt is fitted into the model's window as the ONNX backend fits it
(``backends.onnx.prompt.fit_prompt``) and tokenized with the model's own tokenizer. For each
pair of consecutive prompts on one line (no newline typed in between), the **reuse share** is
the second prompt's tokens that the first one's cache covers: their common token prefix over
the second prompt's length. Where the two part, says what broke the cache:

- *header / snippets*: before the current file's text (path lines, other files' snippets);
- *earlier lines*: in the prefix, before the cursor's line (its start moved);
- *cursor line + suffix*: the typed line itself, so everything after it (the suffix, the FIM
  markers) is recomputed.

The typing replay (``bench latency --backend onnx``) reports the same share as the engine saw
it (``reused_tokens / prompt_tokens``), with debounce and cancellation deciding which prompts
ran; this study counts every keystroke and needs no model weights, only a tokenizer.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ghostcomplete.backends import Backend
from ghostcomplete.backends.onnx.backend import shipped_model_folder
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.prompt import fit_prompt
from ghostcomplete.backends.onnx.tokenizer import Tokenizer, load_tokenizer
from ghostcomplete.bench.corpus import SPLITS, Repo, default_cache, language_of, load_repos
from ghostcomplete.bench.latency import Stretch, draw_stretches, keystrokes
from ghostcomplete.bench.lsp_client import utf16_position
from ghostcomplete.bench.metrics import percentile
from ghostcomplete.completion.pipeline import CompletionRequest, CompletionResult, Pipeline
from ghostcomplete.completion.settings import resolve
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.prompt import TEMPLATES

CAUSES = ("header / snippets", "earlier lines", "cursor line + suffix")


class PromptOnly:
    """Stands in for a model backend: the pipeline reads its FIM family; nothing generates."""

    name = "prompt-only"
    remote = False

    def __init__(self, family: str | None) -> None:
        self.fim_family = family

    async def generate(self, *_: object) -> list[Any]:
        raise RuntimeError("the reuse study never calls a model")


@dataclass
class Pair:
    """Two consecutive prompts on one line."""

    share: float
    prompt_tokens: int
    lost_tokens: int
    cause: str


@dataclass
class Study:
    pairs: list[Pair] = field(default_factory=list)
    prompts: int = 0
    skipped: int = 0


def common_prefix(first: Sequence[int], second: Sequence[int]) -> int:
    length = min(len(first), len(second))
    for index in range(length):
        if first[index] != second[index]:
            return index
    return length


def _token_bytes(tokenizer: Tokenizer, ids: Sequence[int]) -> list[bytes]:
    names = {index: text.encode() for text, index in tokenizer.special.items()}
    return [names.get(token) or tokenizer.token_bytes(token) for token in ids]


def cause_of(
    ids: Sequence[int], common: int, prefix: str, family: str | None, tokenizer: Tokenizer
) -> str:
    """Where in the prompt ``ids`` the reuse stopped (one of ``CAUSES``)."""
    pieces = _token_bytes(tokenizer, ids)
    text = b"".join(pieces)
    parted = len(b"".join(pieces[:common]))
    template = TEMPLATES.get(family or "plain", TEMPLATES["plain"])
    if template.uses_suffix and not template.suffix_first:
        cursor = text.rfind(template.suffix.encode())
    else:
        cursor = len(text) - len(template.middle.encode())
    before = prefix.encode("utf-8", "surrogatepass")
    # The prompt's prefix is a tail of the text before the cursor: their common end.
    shared = 0
    while shared < min(cursor, len(before)) and text[cursor - 1 - shared] == before[-1 - shared]:
        shared += 1
    line_start = text.rfind(b"\n", cursor - shared, cursor) + 1 or cursor - shared
    if parted < cursor - shared:
        return CAUSES[0]
    if parted < line_start:
        return CAUSES[1]
    return CAUSES[2]


def type_stretch(
    stretch: Stretch,
    settings: dict[str, Any],
    family: str | None,
    tokenizer: Tokenizer,
    room: int,
    study: Study,
) -> None:
    resolved, errors = resolve(settings)
    if errors:
        raise ValueError("; ".join(str(e) for e in errors))
    backend = cast(Backend, PromptOnly(family))
    pipeline = Pipeline(backend, resolved, [stretch.repo.root])
    repo = stretch.repo
    neighbours = [
        DocumentSnapshot((repo.root / p).as_uri(), language_of(p), repo.text(p), 1)
        for p in stretch.neighbours
    ]
    for neighbour in neighbours:
        pipeline.index_for_context(neighbour)
    uri = (repo.root / stretch.path).as_uri()
    language = language_of(stretch.path)
    typed = ""
    previous: list[int] | None = None
    for version, key in enumerate(keystrokes(stretch.typed), start=2):
        typed += key
        text = stretch.before + typed + stretch.after
        offset = len(stretch.before) + len(typed)
        where = utf16_position(text, offset)
        document = DocumentSnapshot(uri, language, text, version)
        request = CompletionRequest(document, where["line"], where["character"], neighbours)
        result = CompletionResult(request.completion_id, [], request=request)
        if key.startswith("\n"):
            previous = None  # a new line: the pair would not be "on one line"
        cursor = pipeline.cut(request, result)
        if cursor is None:
            study.skipped += 1
            continue
        prepared = pipeline.prepare(request, cursor, float("inf"), {})
        ids = fit_prompt(prepared.prompt, family, tokenizer, room)
        study.prompts += 1
        if previous is not None and ids:
            common = common_prefix(previous, ids)
            cause = cause_of(ids, common, cursor.prefix, family, tokenizer)
            study.pairs.append(Pair(common / len(ids), len(ids), len(ids) - common, cause))
        previous = ids
    pipeline.forget(uri)


def summarize(study: Study) -> dict[str, Any]:
    shares = [100 * p.share for p in study.pairs]
    lost = sum(p.lost_tokens for p in study.pairs) or 1
    return {
        "pairs": len(shares),
        "prompts": study.prompts,
        "gated keystrokes": study.skipped,
        "mean %": round(statistics.fmean(shares), 1) if shares else None,
        "p10 %": round(percentile(shares, 10), 1) if shares else None,
        "p50 %": round(percentile(shares, 50), 1) if shares else None,
        "pairs ≥ 90 %": round(100 * sum(s >= 90 for s in shares) / max(1, len(shares)), 1),
        "prompt tokens p50": percentile([float(p.prompt_tokens) for p in study.pairs], 50),
        "recomputed tokens p50": percentile([float(p.lost_tokens) for p in study.pairs], 50),
        **{
            f"recomputed: {cause} %": round(
                100 * sum(p.lost_tokens for p in study.pairs if p.cause == cause) / lost, 1
            )
            for cause in CAUSES
        },
    }


def run(
    repos: list[Repo],
    *,
    files: int,
    chars: int,
    seed: int,
    settings: dict[str, Any],
    family: str | None,
    tokenizer: Tokenizer,
    window: int,
    max_new_tokens: int,
) -> dict[str, Any]:
    study = Study()
    room = max(8, window - max_new_tokens)
    stretches = draw_stretches(repos, files, chars, seed)
    for stretch in stretches:
        type_stretch(stretch, settings, family, tokenizer, room, study)
    return {
        "summary": summarize(study),
        "files": [f"{s.repo.label}:{s.path}" for s in stretches],
        "shares": [round(p.share, 4) for p in study.pairs],
    }


def markdown(summary: dict[str, Any], title: str) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in summary.items())
    return f"| {title} | |\n|---|---|\n{rows}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.prompt_reuse")
    parser.add_argument("--split", choices=SPLITS, default="dev")
    parser.add_argument("--only", action="append")
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--chars", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tokenizer", type=Path, default=None, help="a model folder (default: the built-in)"
    )
    parser.add_argument("--family", default=None, help="FIM family (default: the model's)")
    parser.add_argument("--window", type=int, default=None, help="the model's window in tokens")
    parser.add_argument("--settings", default="{}", help="server settings (JSON)")
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = args.tokenizer or shipped_model_folder()
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    family = args.family or config.get("fim_family")
    window = args.window or int(config.get("max_position_embeddings", 32768))
    repos = load_repos(quick=False, paths=[], cache=args.cache, only=args.only, split=args.split)
    result = run(
        repos,
        files=args.files,
        chars=args.chars,
        seed=args.seed,
        settings=json.loads(args.settings),
        family=family,
        tokenizer=load_tokenizer(folder),
        window=window,
        max_new_tokens=OnnxSettings().max_new_tokens,
    )
    print(markdown(result["summary"], f"{folder.name}, {family}, window {window}"))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
