"""The GPU check's server path: the real server (``ghostcomplete serve`` over stdio, driven by
bench/lsp_client.py as the other benchmarks drive it) with the ONNX backend on a model folder
and 20 recent files open, timed at the editor's end of the pipe.

The real server rather than the ``Pipeline`` in-process: what a user waits for includes the
protocol, the session (cancellation, deadline), context gathering over the 20 files and the
worker thread the model runs in, and only the server has all of them. The workspace is the
context benchmark's (bench/context_speed.py): standard-library modules cut to 2,000 lines,
20 open as recent files and one typed into.

Each completion is asked after a space is typed at the end of a random line, so every prompt
is new (no cache answers it) and is a full prefill: the KV cache's reuse across keystrokes is
off, as is prompt-lookup drafting, so that the figure is "a prompt of about P tokens plus N
new ones" like the engine's. The token budget (counted in ``cl100k_base`` by the ranker) is
scaled by the model tokenizer's tokens per ``cl100k_base`` token on the same files, so that
the model's prompt has about P tokens; the prompts' real lengths are reported.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.bench.context_speed import workspace_files
from ghostcomplete.bench.lsp_client import LspClient
from ghostcomplete.bench.metrics import percentile
from ghostcomplete.ranker.tokens import TokenCounter

RECENT = 20
# The first completions wait for the model to load onto the device and warm up.
FIRST_ANSWER_S = 600.0
WARM_UP = 2


def calibrated_budget(folder: Path, texts: list[str], prompt_tokens: int) -> int:
    """The ranker's budget (``cl100k_base`` tokens) that makes about ``prompt_tokens`` tokens
    of the model in ``folder``."""
    sample = "".join(texts)[:400_000]
    model = len(load_tokenizer(folder).encode(sample))
    ranker = TokenCounter().count(sample)
    return max(64, round(prompt_tokens * ranker / max(1, model)))


def server_options(
    folder: Path, provider: str, budget: int, new_tokens: int, threads: int
) -> dict[str, Any]:
    onnx = {
        "path": str(folder),
        "provider": provider,
        "threads": threads,
        "maxNewTokens": new_tokens,
        "reuseCache": False,
        "promptLookup": False,
    }
    return {
        "backend": {"kind": "onnx", "onnx": onnx},
        "budget": {"maxTokens": budget},
        "context": {"recentFiles": RECENT, "snippets": "ranked"},
        "completion": {
            "debounce": "fixed",
            "debounceMs": 0,
            "prefetch": "off",
            "candidates": 1,
            "timeoutMs": 60_000,
            "maxChars": 4000,
        },
        "debug": {"reportTimings": True},
    }


async def _measure(
    folder: Path,
    options: dict[str, Any],
    files: list[tuple[str, str]],
    requests: int,
    seed: int,
) -> dict[str, Any]:
    tokenizer = load_tokenizer(folder)
    latencies: list[float] = []
    backend_ms: list[float] = []
    total_ms: list[float] = []
    prompt_lengths: list[int] = []
    answered = skipped = 0
    with tempfile.TemporaryDirectory(prefix="ghostcomplete-device-") as temporary:
        root = Path(temporary)
        client = await LspClient.start(root, options)
        try:
            *recent, (target_name, target_text) = files
            for name, text in recent:
                await client.open(root / name, text)
            uri = await client.open(root / target_name, target_text)
            lines = target_text.split("\n")
            rng = random.Random(seed)
            version, asked, called, timed = 1, 0, 0, 0
            while timed < requests and asked < 4 * (requests + WARM_UP):
                line = rng.randrange(len(lines))
                if not lines[line].strip():
                    continue
                version += 1
                end = len(lines[line].encode("utf-16-le")) // 2
                await client.insert(uri, version, {"line": line, "character": end}, " ")
                lines[line] += " "
                at = {"line": line, "character": end + 1}
                answer = await client.request(
                    "textDocument/inlineCompletion",
                    client.completion_params(uri, at),
                    timeout=FIRST_ANSWER_S,
                )
                asked += 1
                report = client.report_for(answer, uri) or {}
                if answer.error or not report.get("backendCalled"):
                    skipped += 1
                    continue
                called += 1
                if called <= WARM_UP:
                    continue
                timed += 1
                latencies.append(answer.latency_ms)
                timings = report.get("timingsMs") or {}
                backend_ms.append(float(timings.get("backend", 0.0)))
                total_ms.append(float(timings.get("total", 0.0)))
                prompt_lengths.append(len(tokenizer.encode(str(report.get("prompt") or ""))))
                answered += bool(report.get("items"))
            usage = client.usage()
        finally:
            await client.shutdown()
    return {
        "requests": len(latencies),
        "not_sent_to_the_model": skipped,
        "with_a_suggestion": answered,
        "prompt_tokens_p50": round(statistics.median(prompt_lengths)) if prompt_lengths else None,
        "client_p50_ms": _rounded(percentile(latencies, 50)),
        "client_p95_ms": _rounded(percentile(latencies, 95)),
        "server_backend_p50_ms": _rounded(percentile(backend_ms, 50)),
        "server_total_p50_ms": _rounded(percentile(total_ms, 50)),
        "server_peak_rss_mib": usage.peak_rss_mib if usage else None,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run(
    folder: Path,
    provider: str,
    prompt_tokens: int,
    new_tokens: int,
    requests: int,
    lines: int,
    threads: int = 0,
    seed: int = 1,
) -> dict[str, Any]:
    """Completions through the real server with ``RECENT`` files of ``lines`` lines open."""
    files = workspace_files(RECENT + 1, lines)
    if len(files) < RECENT + 1:
        raise RuntimeError(f"only {len(files)} standard-library modules have {lines} lines")
    budget = calibrated_budget(folder, [text for _, text in files], prompt_tokens)
    options = server_options(folder, provider, budget, new_tokens, threads)
    result = asyncio.run(_measure(folder, options, files, requests, seed))
    return {"recent_files": RECENT, "lines_each": lines, "budget_cl100k": budget, **result}
