"""serve-model streams an answer while the engine generates it: the first event leaves before
the generation ends, a client that reads one event and leaves stops the engine, and a stop
string stops it too. The pieces streamed always add up to the whole answer."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostcomplete.backends.base import Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.context.syntax import Scope
from ghostcomplete.modelserver.api import StopCutter, cut_at_stops
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.service import ModelService
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(30)

TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"


class WatchedEngine:
    """Generates ``lines`` lines, one every ``pause`` seconds, and records how far it got
    and whether it was stopped."""

    name = "watched"
    fim_family = None
    remote = False

    def __init__(self, lines: int = 50, pause: float = 0.05) -> None:
        self.lines = lines
        self.pause = pause
        self.produced = 0
        self.stopped_early = asyncio.Event()
        self.finished = False

    async def stream(
        self, prompt: CompletionPrompt, limits: GenerationLimits
    ) -> AsyncIterator[str]:
        try:
            for index in range(self.lines):
                await asyncio.sleep(self.pause)
                self.produced += 1
                yield f"line {index}\n"
            self.finished = True
        finally:
            if not self.finished:
                self.stopped_early.set()

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        return [Candidate("".join([piece async for piece in self.stream(prompt, limits)]))]

    async def aclose(self) -> None:
        pass


def texts_of(lines: list[str]) -> list[str]:
    events = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: {")]
    return [event["choices"][0]["text"] for event in events]


async def test_the_first_event_leaves_while_the_engine_still_generates():
    engine = WatchedEngine(lines=20, pause=0.05)
    service = ModelService(engine, ServeOptions(port=0))
    url = await service.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"prompt": "x", "stream": True, "max_tokens": 4000}
            async with client.stream("POST", "/v1/completions", json=body) as response:
                lines = response.aiter_lines()
                first = await anext(lines)
                assert engine.produced < engine.lines  # not held back until the end
                rest = [line async for line in lines]
    finally:
        await service.close()
    texts = texts_of([first, *rest])
    assert "".join(texts) == "".join(f"line {i}\n" for i in range(20))
    assert [line for line in rest if line][-1] == "data: [DONE]"


@pytest.mark.parametrize("path", ["/v1/completions", "/infill"])
async def test_a_client_that_reads_one_event_and_leaves_stops_the_engine(path: str):
    engine = WatchedEngine(lines=200, pause=0.02)
    service = ModelService(engine, ServeOptions(port=0, concurrency=1, queue=0))
    url = await service.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"prompt": "x", "stream": True, "max_tokens": 4000}
            async with client.stream("POST", path, json=body) as response:
                assert response.status_code == 200
                await anext(response.aiter_lines())
            # The connection is closed: the engine stops within a few lines, not 200.
            await asyncio.wait_for(engine.stopped_early.wait(), 3)
            assert engine.produced < 100
            # ...and its slot is free again for the next request.
            health = (await client.get("/health")).json()
            assert health["running"] == 0
            answer = await client.post(path, json={"prompt": "x", "max_tokens": 4})
            assert answer.status_code == 200
    finally:
        await service.close()


async def test_a_stop_string_ends_the_stream_and_the_generation():
    engine = WatchedEngine(lines=200, pause=0.01)
    service = ModelService(engine, ServeOptions(port=0))
    url = await service.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"prompt": "x", "stream": True, "stop": ["line 3"]}
            async with client.stream("POST", "/v1/completions", json=body) as response:
                lines = [line async for line in response.aiter_lines()]
    finally:
        await service.close()
    assert "".join(texts_of(lines)) == "line 0\nline 1\nline 2\n"
    assert engine.stopped_early.is_set() and engine.produced < 10


# --- the pieces add up ---------------------------------------------------------------------------


@settings(deadline=None)  # a shared, loaded machine: no per-example time limit
@given(
    text=st.text(alphabet="ab\nc", max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=8),
    stop=st.lists(st.text(alphabet="ab\nc", min_size=0, max_size=3), max_size=3),
)
def test_stop_cutter_pieces_add_up_to_the_cut_text(text: str, cuts: list[int], stop: list[str]):
    cutter = StopCutter(tuple(stop))
    bounds = [0, *sorted(min(c, len(text)) for c in cuts), len(text)]
    sent = "".join(cutter.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    assert sent + cutter.finish() == cut_at_stops(text, tuple(stop))


@settings(deadline=None)
@given(
    text=st.text(alphabet="ab \n", max_size=40),
    scope=st.sampled_from([Scope.LINE, Scope.BLOCK]),
    line_prefix=st.sampled_from(["", "  x", "    "]),
    stop=st.lists(st.text(alphabet="ab\n", min_size=1, max_size=3), max_size=2),
)
def test_settled_text_is_never_cut_away_later(
    text: str, scope: Scope, line_prefix: str, stop: list[str]
):
    rule = StopRule(scope, line_prefix, 3, 30, tuple(stop))
    settled: list[str] = []
    final = text
    for end in range(1, len(text) + 1):  # a character at a time, as tokens would arrive
        cut = rule.cut(text[:end])
        if cut is not None:
            final = text[:end][:cut]
            break
        settled.append(text[: rule.settled(text[:end])])
    assert all(final.startswith(shown) for shown in settled)


def prompt_for(prefix: str) -> CompletionPrompt:
    context = PackedContext(prefix=prefix, suffix="", snippets=(), tokens=0)
    text = render_fim(context, "qwen", "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES["qwen"].stop)


@pytest.mark.parametrize("scope", [Scope.LINE, Scope.BLOCK])
async def test_onnx_stream_adds_up_to_what_generate_gives(scope: Scope):
    onnx_settings = OnnxSettings(path=str(TINY), threads=1, max_new_tokens=40, reuse_cache=False)
    limits = GenerationLimits(scope=scope, max_lines=6, max_chars=300)
    prompt = prompt_for("def add(a, b):\n    ")
    backend = OnnxBackend(onnx_settings)
    try:
        whole = await backend.generate(prompt, limits)
        pieces = [piece async for piece in backend.stream(prompt, limits)]
    finally:
        await backend.aclose()
    assert "".join(pieces) == (whole[0].text if whole else "")
