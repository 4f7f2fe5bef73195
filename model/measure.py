"""Speed (and optionally loss) of an ONNX model folder on this machine.

    python -m ghostcomplete.model.measure [--path FOLDER] [--file model.onnx] [--threads 2]
        [--loss FILE ... [--only-loss]] [--json OUT]
    python -m ghostcomplete.model.measure --path FOLDER --request 2000:16 [--repeat 5]
    ghostcomplete model measure NAME [--no-save]

Prints prefill latency by prompt length (the first token's latency), decode tokens/s with the
KV cache, the gain of prompt-lookup decoding on repetitive code, the gain of reusing the KV
cache when the prompt grows by a few characters (a keystroke), and the latency of completions
through the backend while typing into the sample project (``--no-reuse``, ``--no-lookup``
turn the two off, to compare). ``--loss`` adds the mean next-token loss
on the given files (to compare model.onnx with model_quantized.onnx).

``--request P:N`` times only the engine's core on one request shape: a prompt of P token ids
(random, so a folder without a tokenizer will do: ``model.random_export``), then N new tokens
by greedy decoding with the KV cache; the first run is a warm-up, the rest give p50 and p95
of the whole request and of its prefill (issue 5's GPU target is 2,000 + 16 at p50 ≤ 60 ms).

``NAME`` measures an installed model (``ghostcomplete model list``) and records the result in
its manifest (``--no-save`` only prints it): prompt and decode tokens/s, the keystroke
latency, the provider and threads, and the machine's fingerprint. That record is what a
default chosen per machine reads: measured once, kept with the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.backends.base import BackendError, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend, model_file
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.installed import (
    installed_folder,
    longest_prefill,
    machine_fingerprint,
    prompt_tokens_per_s,
    with_speed,
)
from ghostcomplete.backends.onnx.prompt_budget import prompt_tokens_for
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import (
    DEFAULT_PROMPT_TOKENS,
    Budget,
    PackedContext,
    budget_for,
    pack,
)
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim
from ghostcomplete.ranker.tokens import TokenCounter

REPO = Path(__file__).resolve().parent.parent
# The sample project is in a checkout, not in the wheel: there, this file is the code typed.
SAMPLE = REPO / "examples" / "sample_project" / "inventory.py"
if not SAMPLE.is_file():
    SAMPLE = Path(__file__).resolve()


def _ms(runs: list[float]) -> float:
    return round(statistics.median(runs) * 1000, 2)


def timed(action: Any, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return _ms(runs)


def source_tokens(backend: OnnxBackend, count: int) -> list[int]:
    text = SAMPLE.read_text() * 20
    return backend.tokenizer.encode(text)[:count]


def speed(backend: OnnxBackend, model: OnnxModel) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": model.provider}
    tokens = source_tokens(backend, model.max_positions)
    for length in (64, 128, 256, min(448, model.max_positions - 64)):
        ids = tokens[:length]
        out[f"prefill_{length}_ms"] = timed(lambda ids=ids: prefill(model, ids), 7)
    ids = tokens[:256]
    start, _ = prefill(model, ids)
    free = Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), 64)
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        decode(model, backend.tokenizer, start, free)
        runs.append(time.perf_counter() - began)
    out["decode_tokens_per_s"] = round(64 / statistics.median(runs), 1)
    out["decode_ms_per_token"] = round(statistics.median(runs) / 64 * 1000, 3)
    repetitive = tokens[: model.max_positions - 100]
    start, _ = prefill(model, repetitive)
    for draft in (0, 8):
        runs, accepted = [], 0
        for _ in range(5):
            began = time.perf_counter()
            done = decode(model, backend.tokenizer, start, free, None, draft)
            runs.append(time.perf_counter() - began)
            accepted = done.accepted
        out[f"repetitive_tokens_per_s_draft{draft}"] = round(64 / statistics.median(runs), 1)
        out[f"repetitive_accepted_draft{draft}"] = accepted
    # A keystroke: the same prompt with the prefix a few characters longer.
    text = SAMPLE.read_text()[:1200]
    first, second = backend.tokenizer.encode(text), backend.tokenizer.encode(text + "retu")
    ran = decode(model, backend.tokenizer, prefill(model, first)[0], free)
    assert ran.past is not None
    out["keystroke_prefill_fresh_ms"] = timed(lambda: prefill(model, second), 7)
    # A cache serves one later sequence (the engine keeps one buffer): each run reads the
    # first prompt again, untimed, and times only the keystroke's prefill on top of it.
    reused = []
    for _ in range(7):
        cached = (first, prefill(model, first)[0].past)
        began = time.perf_counter()
        prefill(model, second, cached)
        reused.append(time.perf_counter() - began)
    out["keystroke_prefill_reused_ms"] = _ms(reused)
    return out


def request_latency(
    model: OnnxModel, prompt_tokens: int, new_tokens: int, repeat: int
) -> dict[str, Any]:
    """p50 / p95 of a prompt of ``prompt_tokens`` random ids plus ``new_tokens`` greedy
    tokens (``prefill``, then one ``forward`` per token), after one warm-up run."""
    vocab = int(model.config.get("vocab_size") or 256)
    rng = np.random.default_rng(0)
    whole: list[float] = []
    prefills: list[float] = []
    for run in range(repeat + 1):
        ids = [int(i) for i in rng.integers(0, vocab, prompt_tokens)]
        began = time.perf_counter()
        start, _ = prefill(model, ids)
        prefilled = time.perf_counter()
        token, past = int(np.argmax(start.logits)), start.past
        for _ in range(new_tokens - 1):
            logits, past = model.forward([token], past)
            token = int(np.argmax(logits[-1]))
        if run:  # the first run at a new shape is slower (warm-up)
            whole.append(time.perf_counter() - began)
            prefills.append(prefilled - began)
    decoding = statistics.median(whole) - statistics.median(prefills)
    return {
        "request": f"{prompt_tokens}+{new_tokens}",
        "request_p50_ms": _ms(whole),
        "request_p95_ms": round(float(np.percentile(whole, 95)) * 1000, 2),
        "request_prefill_p50_ms": _ms(prefills),
        "request_decode_ms_per_token": round(decoding / max(1, new_tokens - 1) * 1000, 2),
        "request_runs": repeat,
    }


async def completions(
    backend: OnnxBackend, family: str, prompt_tokens: int = DEFAULT_PROMPT_TOKENS
) -> dict[str, Any]:
    """Typing: the last 12 characters of 20 lines of the sample file typed one at a time, a
    single-line completion asked at every keystroke, the prompt packed as the pipeline packs
    it for one (in ``prompt_tokens``; the rest of the file after the cursor is the suffix)."""
    text = SAMPLE.read_text()
    ends = [i for i, ch in enumerate(text) if ch == "\n" and len(text[:i].split("\n")[-1]) > 16]
    runs, lengths, prefills, reused = [], [], [], []
    counter = TokenCounter()
    default = Budget()
    budget = budget_for(Scope.LINE, prompt_tokens, default.suffix_share, default.snippet_share)
    empty = PackedContext("", "", (), 0)
    overhead = counter.count(render_fim(empty, family, "python", "inventory.py"))
    for end in ends[2:22]:
        for cut in range(end - 12, end):
            context = pack(text[:cut], text[cut:], (), counter, budget, overhead=overhead)
            prompt = CompletionPrompt(
                "python",
                "inventory.py",
                context,
                render_fim(context, family, "python", "inventory.py"),
                TEMPLATES[family].stop,
            )
            limits = GenerationLimits(scope=Scope.LINE, max_chars=200, candidates=1)
            began = time.perf_counter()
            found = await backend.generate(prompt, limits)
            runs.append(time.perf_counter() - began)
            if found:
                lengths.append(found[0].details["tokens"])
                prefills.append(found[0].details["prefill_ms"])
                reused.append(found[0].details["reused_tokens"] / found[0].details["prompt_tokens"])
    return {
        "keystroke_p50_ms": _ms(runs),
        "keystroke_p95_ms": round(float(np.percentile(runs, 95)) * 1000, 2),
        "keystroke_mean_tokens": round(statistics.mean(lengths), 1) if lengths else 0,
        "keystroke_prefill_p50_ms": round(statistics.median(prefills), 2) if prefills else 0,
        "keystroke_reused_share": round(statistics.mean(reused), 3) if reused else 0,
        "keystrokes": len(runs),
        "keystroke_prompt_budget": prompt_tokens,
    }


def loss(model: OnnxModel, backend: OnnxBackend, files: list[Path]) -> float:
    """Mean next-token cross-entropy over windows of the files (no cache)."""
    losses: list[float] = []
    window = min(512, model.max_positions)
    for path in files:
        ids = backend.tokenizer.encode(path.read_text(errors="replace"))
        for at in range(0, max(1, len(ids) - 1), window):
            chunk = ids[at : at + window + 1]
            if len(chunk) < 2:
                continue
            logits, _ = model.forward(chunk[:-1], model.empty_cache())
            logits = logits - logits.max(axis=1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            losses.extend(-logp[np.arange(len(chunk) - 1), chunk[1:]])
    return round(float(np.mean(losses)), 4)


def speed_record(result: dict[str, Any]) -> dict[str, Any]:
    """What a manifest keeps of a full measurement (``with_speed``)."""
    longest = longest_prefill(result)
    rate = prompt_tokens_per_s(result)
    assert longest is not None and rate is not None  # a full measurement times prefills
    return {
        "prompt_tokens_per_s": round(rate, 1),
        "prompt_tokens": longest[0],
        "decode_tokens_per_s": result["decode_tokens_per_s"],
        "keystroke_p50_ms": result["keystroke_p50_ms"],
        "keystroke_p95_ms": result["keystroke_p95_ms"],
        "keystroke_prompt_budget": result["keystroke_prompt_budget"],
        "provider": result["provider"],
        "threads": result["threads"],
        "machine": machine_fingerprint(),
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ghostcomplete model measure",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "model",
        nargs="?",
        metavar="NAME",
        help="an installed model; its speed is recorded in its manifest",
    )
    parser.add_argument("--no-save", action="store_true", help="with NAME: only print it")
    parser.add_argument("--path", default=None)
    parser.add_argument("--file", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loss", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--only-loss",
        action="store_true",
        help="with --loss: only the held-out loss (no speed runs; nothing is saved)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-reuse", action="store_true", help="reuseCache false")
    parser.add_argument("--no-lookup", action="store_true", help="promptLookup false")
    parser.add_argument(
        "--ignore-eos",
        action="store_true",
        help="generate to the end of the line even where the model would end early (a weak "
        "model often does): the latency a model that answers every time would have",
    )
    parser.add_argument(
        "--request",
        default=None,
        metavar="P:N",
        help="only time requests of P prompt tokens plus N new ones (random ids; no tokenizer)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of --request")
    parser.add_argument("--provider", default="auto", choices=("auto", "cuda", "cpu"))
    args = parser.parse_args(argv)
    if args.model and args.path:
        parser.error("give an installed model's NAME or --path, not both")
    if args.only_loss and (not args.loss or args.request):
        parser.error("--only-loss needs --loss FILES and no --request")
    folder = None
    if args.model:
        try:
            folder = installed_folder(args.model)
        except BackendError as error:
            print(f"ghostcomplete: model measure: {error}", file=sys.stderr)
            return 2
    settings = OnnxSettings(
        model=args.model,
        path=args.path,
        file=args.file,
        provider=args.provider,
        threads=args.threads,
        reuse_cache=not args.no_reuse,
        prompt_lookup=not args.no_lookup,
    )
    started = time.perf_counter()
    result: dict[str, Any] = {"model": str(model_file(settings)), "threads": args.threads}
    if args.request:
        prompt_tokens, new_tokens = (int(n) for n in args.request.split(":"))
        model = OnnxModel(model_file(settings), settings.provider, settings.threads)
        result["provider"] = model.provider
        result["load_ms"] = round((time.perf_counter() - started) * 1000, 1)
        result.update(request_latency(model, prompt_tokens, new_tokens, args.repeat))
    else:
        backend = OnnxBackend(settings)
        model = backend.model
        if args.ignore_eos:
            backend._eos = set()
        result["load_and_warmup_ms"] = round((time.perf_counter() - started) * 1000, 1)
        result["reuse_cache"] = settings.reuse_cache
        result["prompt_lookup"] = settings.prompt_lookup
        result["ignore_eos"] = args.ignore_eos
        if not args.only_loss:
            result.update(speed(backend, model))
            # Typing is timed with the prompt budget the server will give this model here.
            budget = prompt_tokens_for(prompt_tokens_per_s(result), model.device == "cuda")
            family = backend.fim_family or "starcoder"
            result.update(asyncio.run(completions(backend, family, budget)))
        if args.loss:
            result["loss"] = loss(model, backend, args.loss)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    # Only the full run is the product's speed (--request times random ids).
    if folder is not None and not args.no_save and not args.request and not args.only_loss:
        kept = with_speed(folder, speed_record(result))
        print(f"recorded in {folder}: {json.dumps(kept.speed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
