"""serve-model's chat lane: a client that hangs up stops its answer and frees the slot, a long
chat leaves completions their slots, and the onnx engine's one thread runs a completion between
two of a chat's forward passes (backends/onnx/worker.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_fakes import prompt_for

from ghostcomplete.backends.base import (
    Candidate,
    ChatLimits,
    ChatReply,
    CompletionPrompt,
    GenerationLimits,
)
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.worker import ModelWorker
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.service import ModelService

pytestmark = pytest.mark.timeout(60)

INSTRUCT = Path(__file__).parent / "fixtures" / "onnx" / "tiny-qwen2-instruct"
CASES = json.loads((INSTRUCT / "expected.json").read_text())["chat"]
TRAINED = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"


def instruct() -> OnnxBackend:
    return OnnxBackend(OnnxSettings(path=str(INSTRUCT), threads=1, warmup=False))


async def in_process(backend: Any, **options: Any) -> tuple[ModelService, str]:
    service = ModelService(backend, ServeOptions(port=0, **options))
    return service, await service.start()


class SlowChat:
    """An instruct engine that answers one line every ``pause`` seconds and records whether
    it was stopped before it finished; completions answer at once."""

    name = "slow-chat"
    fim_family = None
    remote = False
    follows_instructions = True

    def __init__(self, lines: int = 100, pause: float = 0.05) -> None:
        self.lines = lines
        self.pause = pause
        self.started = asyncio.Event()
        self.stopped_early = asyncio.Event()
        self.produced = 0

    async def reply(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        self.started.set()
        text = ""
        try:
            for index in range(self.lines):
                await asyncio.sleep(self.pause)
                self.produced += 1
                piece = f"line {index}\n"
                text += piece
                if on_text is not None:
                    on_text(piece)
        except asyncio.CancelledError:
            self.stopped_early.set()
            raise
        return ChatReply(text, "stop", 3, self.lines)

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        return [Candidate("x = 1")]

    async def aclose(self) -> None:
        pass


MESSAGES = [{"role": "user", "content": "write lines"}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_client_that_hangs_up_stops_the_answer_and_frees_the_slot(stream: bool):
    engine = SlowChat(lines=200, pause=0.02)
    service, url = await in_process(engine)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"messages": MESSAGES, "stream": stream}
            if stream:
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    assert response.status_code == 200
                    await anext(response.aiter_lines())
            else:
                pending = asyncio.ensure_future(client.post("/v1/chat/completions", json=body))
                await asyncio.wait_for(engine.started.wait(), 5)
                pending.cancel()
            await asyncio.wait_for(engine.stopped_early.wait(), 5)
            assert engine.produced < 100
            for _ in range(100):
                if (await client.get("/health")).json()["chat_running"] == 0:
                    break
                await asyncio.sleep(0.02)
            assert (await client.get("/health")).json()["chat_running"] == 0
    finally:
        await service.close()


async def test_a_long_chat_leaves_completions_their_slots():
    engine = SlowChat(lines=100, pause=0.05)  # 5 s
    service, url = await in_process(engine, concurrency=1, queue=0, chat_concurrency=1)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            chat = asyncio.ensure_future(
                client.post("/v1/chat/completions", json={"messages": MESSAGES})
            )
            await asyncio.wait_for(engine.started.wait(), 5)
            started = time.monotonic()
            for _ in range(5):
                answer = await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 4})
                assert answer.status_code == 200 and answer.json()["choices"][0]["text"] == "x = 1"
            assert time.monotonic() - started < 2
            # The chat lane is full and nothing may wait: a second chat is turned away.
            second = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
            assert second.status_code == 503 and second.headers["retry-after"] == "1"
            chat.cancel()
    finally:
        await service.close()


def test_short_jobs_run_between_the_steps_of_a_long_one():
    worker = ModelWorker("test-worker")
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def long_job() -> str:
        inside.set()
        for step in range(50):
            worker.between()
            order.append(f"long {step}")
            if step == 2:
                release.wait(5)  # the short job is submitted while the long one runs
        return "long done"

    try:
        long_future = worker.submit_long(long_job)
        assert inside.wait(5)

        def short_job() -> str:
            order.append("short")
            return "short done"

        short_future = worker.submit(short_job)
        release.set()
        assert short_future.result(5) == "short done"
        assert long_future.result(5) == "long done"
    finally:
        worker.shutdown()
    # It ran at the long job's next step, not after its 50 steps.
    assert order.index("short") == 3


async def test_the_onnx_engine_answers_a_completion_in_the_middle_of_a_chat():
    backend = instruct()
    order: list[str] = []
    entered, go = threading.Event(), threading.Event()
    between, generate = backend._worker.between, backend._generate

    def step() -> None:  # before each of the chat's forward passes, on the model's thread
        order.append("step")
        if not entered.is_set():
            entered.set()
            go.wait(5)  # the completion arrives while the chat is under way
        between()

    def completion(*args: Any) -> list[Candidate]:
        order.append("completion")
        return generate(*args)

    backend._worker.between = step
    backend._generate = completion
    try:
        chat = asyncio.ensure_future(backend.reply(CASES[0]["messages"], ChatLimits(64)))
        assert await asyncio.to_thread(entered.wait, 5)
        asked = asyncio.ensure_future(
            backend.generate(prompt_for("qwen"), GenerationLimits(max_chars=40))
        )
        await asyncio.sleep(0.05)  # submitted (it waits for the chat's next step)
        go.set()
        await asked
        answer = await chat
    finally:
        await backend.aclose()
    assert answer.text == TRAINED
    # It ran at the chat's next step, and the chat's steps went on after it.
    at = order.index("completion")
    assert order[:at] == ["step"] and order.count("step") > at + 10
