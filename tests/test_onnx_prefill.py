"""Prefill in chunks that can be abandoned: a prompt too long for the deadline gives nothing,
never late; what was read stays in the cache, the worker goes on reading the prompt while it
is idle, and the next request that starts the same way reuses it. Timing checks are ratios of
one chunk's measured time, with wide margins."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx import backend as onnx_backend
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import prefill, prefill_chunks
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.kvcache import KvCache
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(60)

TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"
CHUNK = 16
# A big model's pass over one chunk, played by the tiny model with a pause (in proportion
# to the tokens of a pass, so that a prompt read in one pass takes as long as in chunks).
PAUSE = 0.03
LONG = "".join(f"value_{i} = compute({i})\n" for i in range(60))


def prompt_for(prefix: str) -> CompletionPrompt:
    context = PackedContext(prefix=prefix, suffix="", snippets=(), tokens=0)
    text = render_fim(context, "qwen", "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES["qwen"].stop)


def test_prefill_stops_between_chunks_and_keeps_what_it_read() -> None:
    model = OnnxModel(TINY / "model.onnx", "cpu", 1)
    ids = load_tokenizer(TINY).encode(LONG)[:100]
    asked: list[int] = []

    def stop_after_three() -> str | None:
        asked.append(1)
        return "deadline" if len(asked) > 3 else None

    done = prefill_chunks(model, ids, None, CHUNK, stop_after_three)
    assert done.start is None and done.reason == "deadline"
    assert done.covered == ids[: 3 * CHUNK] and done.past.length == 3 * CHUNK
    # Going on from there gives what one pass over the whole prompt gives.
    rest = prefill_chunks(model, ids, (done.covered, done.past), CHUNK)
    assert rest.start is not None and rest.reused == 3 * CHUNK
    whole, _ = prefill(model, ids)
    np.testing.assert_allclose(rest.start.logits, whole.logits, rtol=1e-4, atol=1e-4)
    cancelled = prefill_chunks(model, ids, None, CHUNK, lambda: "cancelled")
    assert cancelled.start is None and cancelled.covered == [] and cancelled.reason == "cancelled"


def slowed(backend: OnnxBackend) -> list[int]:
    """Make each forward pass take PAUSE longer per CHUNK tokens; the lengths of the passes
    are recorded."""
    model = backend.model
    forward = model.forward
    passes: list[int] = []

    def slow_forward(
        ids: list[int], past: KvCache, last: int | None = None
    ) -> tuple[np.ndarray, KvCache]:
        passes.append(len(ids))
        time.sleep(PAUSE * len(ids) / CHUNK)
        return forward(ids, past, last)

    model.forward = slow_forward  # type: ignore[method-assign]
    return passes


async def idle(backend: OnnxBackend) -> None:
    """Wait for the worker to finish what it has (background warming included)."""
    await asyncio.wrap_future(backend._worker.submit_background(lambda: None))


async def test_a_prompt_too_long_for_the_deadline_gives_nothing_and_warms_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(onnx_backend, "PREFILL_CHUNK", CHUNK)
    backend = OnnxBackend(OnnxSettings(path=str(TINY), threads=1, max_new_tokens=8))
    passes = slowed(backend)
    prompt = prompt_for(LONG)
    chunk_began = time.monotonic()
    backend.model.forward(list(range(CHUNK)), backend.model.empty_cache(), 1)
    chunk = time.monotonic() - chunk_began
    passes.clear()
    budget = 3 * chunk
    limits = GenerationLimits(scope=Scope.LINE, deadline=time.monotonic() + budget)
    began = time.monotonic()
    found = await backend.generate(prompt, limits)
    took = time.monotonic() - began
    assert found == []
    assert took < budget + 2.5 * chunk  # the deadline plus one chunk, with room to spare
    read_in_time = sum(passes)
    # The worker went on reading the prompt while idle, and the next request reuses it all.
    await idle(backend)
    cached = backend._cache
    assert cached is not None and len(cached[0]) > read_in_time
    again = await backend.generate(prompt, GenerationLimits(deadline=time.monotonic() + 30))
    assert again, "the warmed prompt answers"
    details = again[0].details
    assert details["reused_tokens"] == details["prompt_tokens"] - 1
    assert details["prompt_tokens"] > 4 * CHUNK
    await backend.aclose()


async def test_a_new_request_stops_warming_and_a_cancelled_prefill_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(onnx_backend, "PREFILL_CHUNK", CHUNK)
    backend = OnnxBackend(OnnxSettings(path=str(TINY), threads=1, max_new_tokens=4))
    passes = slowed(backend)
    limits = GenerationLimits(scope=Scope.LINE, deadline=time.monotonic() + 30)
    task = asyncio.create_task(backend.generate(prompt_for(LONG), limits))
    while not passes:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancelled request's prompt is warmed in the background until the next request,
    # which waits at most for the chunk being read.
    await asyncio.sleep(3 * PAUSE)
    short = prompt_for("x = 1\ny = ")
    alone = len(backend.tokenizer.encode(short.text)) / CHUNK + 4 / CHUNK  # in chunks
    began = time.monotonic()
    await backend.generate(short, limits)
    took = time.monotonic() - began
    assert took < (alone + 1) * PAUSE * 2  # its own reads and one chunk, with room to spare
    warmed = sum(passes)
    await idle(backend)
    assert sum(passes) == warmed  # nothing went on warming the old prompt afterwards
    await backend.aclose()
