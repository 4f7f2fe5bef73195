"""onnxruntime-genai's generator on an imported model: the decode loop that issue 19 weighs
ours against, on the same graph, the same prompts and the same machine.

``prepare`` (in the project's environment) writes a folder genai loads: the imported graph
with our last-positions input folded to 1 and the logits' sequence axis fixed at 1 (as its
builder's ``prune_lm_head`` writes them), hard links to the weights and tokenizer files, and a
``genai_config.json`` from ``config.json``. ``measure`` runs in an environment of its own,
because the ``onnxruntime-genai`` wheel requires the CPU ``onnxruntime`` package, which would
install over ``onnxruntime-gpu``; it needs only numpy and genai, so it is run as a file:

    python -m ghostcomplete.bench.genai_peer prepare IMPORTED_FOLDER GENAI_FOLDER
    python -m venv /tmp/genai && /tmp/genai/bin/pip install onnxruntime-genai==0.18.0 numpy
    /tmp/genai/bin/python bench/genai_peer.py measure GENAI_FOLDER [--threads 2] [--repetitions 3]

``measure`` prints one JSON object with ``bench.peers_engine``'s rows (llama-bench's shapes:
prompts of 512 and 2,000 random ids fed 128 at a time, then 16 greedy tokens after each),
the CPU time of a new token and the process's peak RSS, so the two engines read alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KEPT_INPUT = "ghostcomplete_logits_kept"  # backends/onnx/graph.py's LOGITS_KEPT
LINKED = (
    "model.onnx.data",
    "tokenizer.json",
    "tokenizer_config.json",
    "config.json",
    "generation_config.json",
)
PROMPTS = (512, 2000)
NEW_TOKENS = 16
CHUNK = 128


def genai_config(config: dict[str, Any], threads: int) -> dict[str, Any]:
    """genai's description of our decoder graph (its inputs and outputs by name)."""
    eos = config["eos_token_id"]
    bos = config.get("bos_token_id", eos)
    return {
        "model": {
            "bos_token_id": bos,
            "context_length": config["max_position_embeddings"],
            "decoder": {
                "session_options": {
                    "log_id": "onnxruntime-genai",
                    "provider_options": [],
                    "intra_op_num_threads": threads,
                },
                "filename": "model.onnx",
                "head_size": config["head_dim"],
                "hidden_size": config["hidden_size"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": config["num_attention_heads"],
                "num_hidden_layers": config["num_hidden_layers"],
                "num_key_value_heads": config["num_key_value_heads"],
            },
            "eos_token_id": eos,
            "pad_token_id": config.get("pad_token_id", eos),
            "type": config["model_type"],
            "vocab_size": config["vocab_size"],
        },
        "search": {
            "do_sample": False,
            "max_length": config["max_position_embeddings"],
            "num_beams": 1,
            "past_present_share_buffer": True,
            "top_k": 1,
        },
    }


def prepare(imported: Path, out: Path, threads: int = 2) -> Path:
    """Write genai's folder for ``imported`` (an imported model's folder) into ``out``."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(imported / "model.onnx"), load_external_data=False)
    graph = model.graph
    kept = [i for i in graph.input if i.name == KEPT_INPUT]
    if not kept:
        raise SystemExit(f"{imported}: not an imported graph (no {KEPT_INPUT} input)")
    graph.input.remove(kept[0])
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), KEPT_INPUT))
    logits = next(o for o in graph.output if o.name == "logits")
    axis = logits.type.tensor_type.shape.dim[1]
    axis.ClearField("dim_param")
    axis.dim_value = 1
    out.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        source, target = imported / name, out / name
        if not source.exists():
            continue
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)  # genai refuses external data behind a symbolic link
        except OSError:
            shutil.copy2(source, target)
    onnx.save(model, str(out / "model.onnx"))
    config = json.loads((imported / "config.json").read_text())
    if "eos_token_id" not in config:  # written by the importer; a bare graph keeps it aside
        generation = imported / "generation_config.json"
        found = json.loads(generation.read_text()) if generation.exists() else {}
        if "eos_token_id" not in found:
            raise SystemExit(f"{imported}: no eos_token_id in config.json or generation_config")
        config["eos_token_id"] = found["eos_token_id"]
    (out / "genai_config.json").write_text(json.dumps(genai_config(config, threads), indent=1))
    return out


def cpu_seconds() -> float:
    """This process's CPU time so far, all threads."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rate_row(test: str, depth: int, rates: list[float]) -> dict[str, Any]:
    """One row as ``llama-bench -o json`` reports it: the mean and standard deviation of its
    repetitions' rates. Shared with ``bench.peers_engine``; kept here, with stdlib imports
    only, because this file also runs outside the project's environment."""
    return {
        "test": test,
        "depth": depth,
        "tokens_per_s": round(statistics.mean(rates), 1),
        "stddev": round(statistics.stdev(rates), 1) if len(rates) > 1 else 0.0,
    }


def measure(folder: Path, threads: int, repetitions: int, seed: int = 0) -> dict[str, Any]:
    """genai's generator on ``folder``, shaped as ``bench.peers_engine`` measures ours."""
    import numpy as np
    import onnxruntime_genai as og  # the scratch environment's; see the module's docstring

    described = json.loads((folder / "genai_config.json").read_text())
    described["model"]["decoder"]["session_options"]["intra_op_num_threads"] = threads
    (folder / "genai_config.json").write_text(json.dumps(described, indent=1))
    config = og.Config(str(folder))
    config.clear_providers()
    began = time.perf_counter()
    model = og.Model(config)
    load_ms = round((time.perf_counter() - began) * 1000, 1)
    vocab = described["model"]["vocab_size"]
    rng = np.random.default_rng(seed)

    def generator(length: int) -> Any:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=length + 2 * NEW_TOKENS, do_sample=False)
        return og.Generator(model, params)

    def feed(found: Any, ids: Any) -> None:
        for start in range(0, len(ids), CHUNK):
            found.append_tokens(ids[start : start + CHUNK])

    rows: list[dict[str, Any]] = []
    for length in PROMPTS:
        ids = rng.integers(0, vocab, length).astype(np.int32)
        rates = []
        for run in range(repetitions + 1):  # the first run is untimed, as llama-bench's
            fresh = generator(length)
            began = time.perf_counter()
            feed(fresh, ids)
            if run:
                rates.append(length / (time.perf_counter() - began))
            del fresh
        rows.append(rate_row(f"pp{length}", 0, rates))
    cpu_ms: dict[str, float] = {}
    for depth in PROMPTS:
        ids = rng.integers(0, vocab, depth).astype(np.int32)
        found = generator(depth)
        feed(found, ids)
        rates, cpu = [], []
        for run in range(repetitions + 1):
            # Every run writes the same positions after ``depth``; the prompt's cache stays.
            found.rewind_to(depth)
            began, cpu_began = time.perf_counter(), cpu_seconds()
            for _ in range(NEW_TOKENS):
                found.generate_next_token()
            found.get_next_tokens()
            if run:
                rates.append(NEW_TOKENS / (time.perf_counter() - began))
                cpu.append((cpu_seconds() - cpu_began) / NEW_TOKENS * 1000)
        rows.append(rate_row(f"tg{NEW_TOKENS}", depth, rates))
        cpu_ms[f"tg{NEW_TOKENS}@{depth}"] = round(statistics.median(cpu), 2)
    return {
        "folder": str(folder),
        "engine": f"onnxruntime-genai {og.__version__}",
        "threads": threads,
        "load_ms": load_ms,
        "rows": rows,
        "cpu_ms_per_new_token": cpu_ms,
        "prefill_chunk": CHUNK,
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="genai_peer", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("prepare", help="write genai's folder for an imported model")
    made.add_argument("imported", type=Path)
    made.add_argument("out", type=Path)
    timed = commands.add_parser("measure", help="genai's generator on a prepared folder")
    timed.add_argument("folder", type=Path)
    timed.add_argument("--threads", type=int, default=2)
    timed.add_argument("--repetitions", type=int, default=3)
    timed.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(prepare(args.imported, args.out))
        return 0
    json.dump(measure(args.folder, args.threads, args.repetitions, args.seed), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
