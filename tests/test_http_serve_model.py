"""``ghostcomplete serve-model`` as a real process on loopback, spoken to by our own http
backend in the OpenAI and llama.cpp dialects; and its queue, hang-up and overload handling
with a deliberately slow engine in-process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import httpx
import pytest
from http_fakes import prompt_for
from support import ServeModelProcess

from ghostcomplete.backends.base import BackendError, Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.context.syntax import Scope
from ghostcomplete.modelserver.api import split_fim
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.service import ModelService

pytestmark = pytest.mark.timeout(30)

# The lookup engine continues what it has seen before in the prompt.
REPEATING = (
    "def area(r):\n    return math.pi * r * r\n\ndef disc_area(radius):\n    return math.pi * r"
)


def limits(scope: Scope = Scope.LINE, seconds: float = 5.0) -> GenerationLimits:
    return GenerationLimits(
        scope, 400, 1 if scope is Scope.LINE else 10, 1, time.monotonic() + seconds
    )


async def ask(url: str, prompt: CompletionPrompt | None = None, **options: object) -> list[str]:
    backend = HttpBackend(HttpSettings(url=url, **options))  # type: ignore[arg-type]
    try:
        family = backend.fim_family
        candidates = await backend.generate(prompt or prompt_for(family, REPEATING, "\n"), limits())
    finally:
        await backend.aclose()
    return [c.text for c in candidates]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "options",
    [
        {"api": "openai", "stream": True},
        {"api": "openai", "stream": False},
        {"api": "openai", "fim_family": "qwen"},
        {"api": "llamacpp", "stream": True},
        {"api": "llamacpp", "stream": False},
    ],
    ids=["openai-stream", "openai-json", "openai-rendered-fim", "infill-stream", "infill-json"],
)
async def test_serve_model_answers_our_http_backend(options: dict[str, object]):
    async with ServeModelProcess("--backend", "lookup") as server:
        assert await ask(server.url, **options) == [" * r"]
        code, rest = await server.stop()
    assert code == 0 and "stopped" in rest


@pytest.mark.e2e
async def test_health_models_and_errors():
    async with ServeModelProcess() as server, httpx.AsyncClient(base_url=server.url) as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "ok" and health["backend"] == "lookup"
        models = (await client.get("/v1/models")).json()
        assert models["data"][0]["id"] == "ghostcomplete"
        assert (await client.post("/nope", json={})).status_code == 404
        assert (await client.get("/v1/completions")).status_code == 405
        bad = await client.post("/v1/completions", content=b"{oops")
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]
        wrong = await client.post("/v1/completions", json={"prompt": 5})
        assert wrong.status_code == 400
        code, _ = await server.stop(signal.SIGINT)
    assert code == 0


@pytest.mark.e2e
async def test_an_api_key_can_be_required():
    env = {"GC_SERVE_KEY": "team-secret-1234"}
    async with ServeModelProcess("--api-key-env", "GC_SERVE_KEY", env=env) as server:
        with pytest.raises(BackendError, match="HTTP 401"):
            await ask(server.url)
        os.environ["GC_TEST_SERVE_KEY"] = "team-secret-1234"
        try:
            assert await ask(server.url, api_key_env="GC_TEST_SERVE_KEY") == [" * r"]
        finally:
            del os.environ["GC_TEST_SERVE_KEY"]
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/health")).status_code == 200  # health needs no key


@pytest.mark.e2e
async def test_eight_concurrent_editors():
    async with ServeModelProcess("--concurrency", "4") as server:
        backends = [HttpBackend(HttpSettings(url=server.url)) for _ in range(8)]
        prompt = prompt_for(None, REPEATING, "\n")

        async def editor(backend: HttpBackend) -> list[str]:
            answers = []
            for _ in range(10):
                candidates = await backend.generate(prompt, limits())
                answers.append(candidates[0].text if candidates else "")
            return answers

        try:
            results = await asyncio.gather(*(editor(b) for b in backends))
        finally:
            await asyncio.gather(*(b.aclose() for b in backends))
    assert all(answer == " * r" for answers in results for answer in answers)


def test_split_fim_recognises_our_formats():
    assert split_fim("<|fim_prefix|>ab<|fim_suffix|>cd<|fim_middle|>") == ("qwen", "ab", "cd")
    assert split_fim("<fim_prefix>a<fim_suffix><fim_middle>") == ("starcoder", "a", "")
    assert split_fim("plain text") is None


# --- queueing, overload and hang-ups, in-process with a slow engine ------------------------------


class SlowEngine:
    name = "slow"
    fim_family = None
    remote = False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0
        self.cancelled = 0
        self.finished = 0

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        self.started += 1
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return [Candidate("x = 1")]

    async def aclose(self) -> None:
        pass


async def test_a_full_queue_turns_requests_away_with_retry_after():
    engine = SlowEngine(0.3)
    service = ModelService(engine, ServeOptions(port=0, concurrency=1, queue=1))
    url = await service.start()
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"prompt": "x = ", "max_tokens": 8}
            answers = await asyncio.gather(
                *(client.post("/v1/completions", json=body) for _ in range(3))
            )
    finally:
        await service.close()
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 503]
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert engine.finished == 2


async def test_our_backend_backs_off_from_an_overloaded_server():
    engine = SlowEngine(0.5)
    service = ModelService(engine, ServeOptions(port=0, concurrency=1, queue=0))
    url = await service.start()
    first = HttpBackend(HttpSettings(url=url, stream=False))
    second = HttpBackend(HttpSettings(url=url, stream=False))
    try:
        running = asyncio.ensure_future(first.generate(prompt_for(None), limits()))
        await asyncio.sleep(0.1)
        with pytest.raises(BackendError, match=r"is overloaded \(HTTP 503\); waiting 1 s"):
            await second.generate(prompt_for(None), limits())
        assert [c.text for c in await running] == ["x = 1"]
    finally:
        await first.aclose()
        await second.aclose()
        await service.close()


async def test_a_client_that_hangs_up_cancels_its_generation():
    engine = SlowEngine(5)
    service = ModelService(engine, ServeOptions(port=0))
    url = await service.start()
    backend = HttpBackend(HttpSettings(url=url))
    try:
        task = asyncio.ensure_future(backend.generate(prompt_for(None), limits()))
        for _ in range(100):
            if engine.started:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        for _ in range(100):
            if engine.cancelled:
                break
            await asyncio.sleep(0.01)
    finally:
        await backend.aclose()
        await service.close()
    assert engine.cancelled == 1 and engine.finished == 0


async def test_the_deadline_bounds_a_slow_engine_behind_serve_model():
    engine = SlowEngine(5)
    service = ModelService(engine, ServeOptions(port=0))
    url = await service.start()
    backend = HttpBackend(HttpSettings(url=url))
    try:
        started = time.monotonic()
        assert await backend.generate(prompt_for(None), limits(seconds=0.3)) == []
        assert time.monotonic() - started < 0.3
    finally:
        await backend.aclose()
        await service.close()


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_raw_sse_stream_shape():
    async with ServeModelProcess() as server, httpx.AsyncClient(base_url=server.url) as client:
        body = {"prompt": REPEATING, "stream": True, "max_tokens": 16}
        async with client.stream("POST", "/v1/completions", json=body) as response:
            assert response.headers["content-type"] == "text/event-stream"
            lines = [line async for line in response.aiter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][len("data: ") :])
    assert first["object"] == "text_completion" and first["choices"][0]["text"]
