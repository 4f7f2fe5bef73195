"""A model folder's tokenizer as the engine reads it, against the `tokenizers` package reading
the same ``tokenizer.json``: the same ids on every file of the corpus, and how long a prompt's
worth of text takes each of them.

    python -m ghostcomplete.bench.tokenizer_check MODEL_FOLDER [--split all | --repo DIR]

The engine reads byte-level BPE files with tiktoken (its normalizer, where there is one,
applied with ``unicodedata`` first: backends/onnx/tokenizer.py); a file whose ids differ
anywhere would give the model prompts it was not trained on. Prints a Markdown table; exits
1 when any file's ids differ.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ghostcomplete.backends.onnx.tokenizer import HfTokenizer, load_tokenizer
from ghostcomplete.bench.corpus import default_cache, load_repos

SPLITS = ("dev", "test", "all")


def compare(
    texts: Iterable[tuple[str, str]],
    engine: Callable[[str], list[int]],
    reference: Callable[[str], list[int]],
    chars: int,
) -> dict[str, Any]:
    """Ids of each (name, text) by both; the time of each on the text's first ``chars``."""
    files = 0
    differing: list[str] = []
    engine_ms: list[float] = []
    reference_ms: list[float] = []
    for name, text in texts:
        files += 1
        if engine(text) != reference(text):
            differing.append(name)
        head = text[:chars]
        if len(head) < chars:
            continue
        for encode, times in ((engine, engine_ms), (reference, reference_ms)):
            began = time.perf_counter()
            encode(head)
            times.append((time.perf_counter() - began) * 1000)
    return {
        "files": files,
        "differing": differing,
        "timed": len(engine_ms),
        "engine_p50_ms": round(statistics.median(engine_ms), 3) if engine_ms else None,
        "reference_p50_ms": round(statistics.median(reference_ms), 3) if reference_ms else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.tokenizer_check")
    parser.add_argument("folder", type=Path, help="a model folder with a tokenizer.json")
    parser.add_argument("--split", choices=SPLITS, default="all")
    parser.add_argument(
        "--repo", type=Path, action="append", default=[], help="a directory instead"
    )
    parser.add_argument("--chars", type=int, default=7000, help="text timed per file")
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args(argv)
    engine = load_tokenizer(args.folder)
    reference = HfTokenizer(args.folder / "tokenizer.json")
    repos = load_repos(quick=False, paths=args.repo, cache=args.cache, split=args.split)
    texts = ((f"{repo.label}/{path}", repo.text(path)) for repo in repos for path in repo.files)
    result = compare(texts, engine.encode, reference.encode, args.chars)
    print(f"{args.folder.name}: the engine reads it with {type(engine).__name__}\n")
    print("| files | ids differ | files timed | engine p50 ms | `tokenizers` p50 ms |")
    print("|---|---|---|---|---|")
    print(
        f"| {result['files']} | {len(result['differing'])} | {result['timed']} "
        f"| {result['engine_p50_ms']} | {result['reference_p50_ms']} |"
    )
    for name in result["differing"][:20]:
        print(f"- ids differ: {name}")
    return 1 if result["differing"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
