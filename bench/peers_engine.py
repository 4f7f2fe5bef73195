"""Our ONNX engine on the peers' model, measured the way ``llama-bench`` measures llama.cpp:
prompt processing of 512 and 2,000 random token ids, and 16 new tokens (greedy, one forward
pass each, the KV cache held by the engine) after a prompt of 512 and of 2,000.

Run as a child process by ``bench.peers`` so that its peak memory is the engine's alone:

    python -m ghostcomplete.bench.peers_engine FOLDER [--threads 2] [--repetitions 3]
        [--prompts 512,2000] [--new-tokens 16] [--chunk 128] [--spinning]

prints one JSON object: the rows (``test``, ``depth``, ``tokens_per_s``, ``stddev``, as
``llama-bench -o json`` gives them after ``bench.peers`` reads them), the CPU time of a new
token (all threads; unlike wall time it hardly moves when other work shares the cores), and
what the folder's manifest says about the model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.backends.onnx.backend import PREFILL_CHUNK
from ghostcomplete.backends.onnx.decode import prefill_chunks
from ghostcomplete.backends.onnx.engine import KvCache, OnnxModel
from ghostcomplete.bench.genai_peer import cpu_seconds, peak_rss_mib, rate_row

PROMPTS = (512, 2000)
NEW_TOKENS = 16
MANIFEST = "ghostcomplete-model.json"


def precision_of(folder: Path) -> str:
    """The precision an import wrote in the folder's manifest, else the folder's name."""
    try:
        found = json.loads((folder / MANIFEST).read_text()).get("precision")
    except (OSError, ValueError):
        found = None
    return str(found) if found else folder.name


def generate(model: OnnxModel, logits: np.ndarray, past: KvCache, count: int) -> KvCache:
    """``count`` greedy tokens after ``past``, one forward pass each."""
    token = int(np.argmax(logits))
    for _ in range(count):
        step, past = model.forward([token], past)
        token = int(np.argmax(step[-1]))
    return past


def measure(
    model: OnnxModel,
    repetitions: int,
    seed: int = 0,
    prompts: Sequence[int] = PROMPTS,
    new_tokens: int = NEW_TOKENS,
    chunk: int = PREFILL_CHUNK,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The rows of one model; each shape is run once untimed first (llama-bench warms up
    too). Prompts are fed ``chunk`` tokens at a time, as the backend feeds them (0: in one
    pass)."""
    rng = np.random.default_rng(seed)
    vocab = model.vocab_size
    rows: list[dict[str, Any]] = []
    cpu_ms: dict[str, float] = {}
    for length in prompts:
        ids = [int(i) for i in rng.integers(0, vocab, length)]
        rates = []
        for run in range(repetitions + 1):
            began = clock()
            prefill_chunks(model, ids, None, chunk)
            if run:
                rates.append(length / max(clock() - began, 1e-9))
        rows.append(rate_row(f"pp{length}", 0, rates))
    for depth in prompts:
        ids = [int(i) for i in rng.integers(0, vocab, depth)]
        start = prefill_chunks(model, ids, None, chunk).start
        assert start is not None  # nothing stops it
        rates, cpu = [], []
        for run in range(repetitions + 1):
            # Every run writes the same positions after ``depth``; the prompt's cache stays.
            began, cpu_began = clock(), cpu_seconds()
            generate(model, start.logits, start.past, new_tokens)
            if run:
                rates.append(new_tokens / max(clock() - began, 1e-9))
                cpu.append((cpu_seconds() - cpu_began) / new_tokens * 1000)
        rows.append(rate_row(f"tg{new_tokens}", depth, rates))
        cpu_ms[f"tg{new_tokens}@{depth}"] = round(statistics.median(cpu), 2)
    return {"rows": rows, "cpu_ms_per_new_token": cpu_ms, "prefill_chunk": chunk}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ghostcomplete.bench.peers_engine",
        description="Prompt and decode speed of an imported model in our engine, as llama-bench "
        "measures llama.cpp (one JSON object on stdout).",
    )
    parser.add_argument("folder", type=Path, help="an imported model's folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--prompts",
        default=",".join(str(n) for n in PROMPTS),
        help="prompt lengths, also the depths new tokens are generated at (llama-bench -p, -d)",
    )
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS, help="llama-bench -n")
    parser.add_argument(
        "--chunk", type=int, default=PREFILL_CHUNK, help="prompt tokens per pass (0: one pass)"
    )
    parser.add_argument(
        "--spinning", action="store_true", help="let onnxruntime's idle threads spin"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    model = OnnxModel(args.folder / "model.onnx", "cpu", args.threads, spinning=args.spinning)
    loaded_ms = round((time.perf_counter() - began) * 1000, 1)
    result = {
        "folder": str(args.folder),
        "precision": precision_of(args.folder),
        "threads": args.threads,
        "spinning": args.spinning,
        "provider": model.provider,
        "shared_buffers": model.shares_buffers,
        "load_ms": loaded_ms,
        **measure(
            model,
            args.repetitions,
            args.seed,
            [int(n) for n in args.prompts.split(",")],
            args.new_tokens,
            args.chunk,
        ),
        "peak_rss_mib": peak_rss_mib(),  # after measure(): the dict is built in this order
    }
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
