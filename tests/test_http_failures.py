"""The http backend against a misbehaving loopback server: down, slow, 500, 429, 401, garbage,
truncated streams, dropped connections, cancellation. Each failure is one clear BackendError
(never naming the key), each request ends inside its deadline, and success clears it all."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from http_fakes import FakeModelServer, Handler, Recorded, Reply, prompt_for, sse

from ghostcomplete.backends import BackendSettings, create_backend
from ghostcomplete.backends.base import BackendError, GenerationLimits
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.http.failures import redacted_url, retry_after_seconds
from ghostcomplete.context.syntax import Scope

pytestmark = pytest.mark.timeout(15)

KEY = "sk-very-secret-key-0123456789"
GOOD = {"choices": [{"index": 0, "text": "math.pi * r ** 2"}]}


def limits(seconds: float = 2.0) -> GenerationLimits:
    return GenerationLimits(Scope.LINE, 400, 1, 1, time.monotonic() + seconds)


def backend_for(url: str, **options: object) -> HttpBackend:
    settings = HttpSettings(url=url, api_key_env="GC_TEST_KEY", **options)  # type: ignore[arg-type]
    return HttpBackend(settings, environ={"GC_TEST_KEY": KEY})


async def failure(backend: HttpBackend, seconds: float = 2.0) -> str:
    with pytest.raises(BackendError) as caught:
        await backend.generate(prompt_for(None), limits(seconds))
    message = str(caught.value)
    assert KEY not in message
    return message


async def failure_from(answer: Handler, **options: object) -> tuple[str, FakeModelServer]:
    """The message of the BackendError that one completion from a loopback server answering
    with ``answer`` raises, and the server (with what it received)."""
    async with FakeModelServer(answer) as server:
        backend = backend_for(server.base, **options)
        try:
            return await failure(backend), server
        finally:
            await backend.aclose()


# How late past a deadline the event loop may wake a task on a loaded machine.
SCHEDULING_SLACK_S = 0.1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_server_that_is_down_fails_fast_and_clearly():
    backend = backend_for(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    try:
        message = await failure(backend)
    finally:
        await backend.aclose()
    assert time.monotonic() - started < 1.0
    assert message.startswith("cannot reach the model server at http://127.0.0.1:")


async def test_a_slow_server_is_left_at_the_deadline_then_reported():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.hang(5)

    async with FakeModelServer(answer) as server:
        backend = backend_for(server.base, stream=False)
        try:
            started = time.monotonic()
            deadline = started + 0.3
            quiet = await backend.generate(prompt_for(None), limits(0.3))
            assert quiet == []  # one slow answer is not worth a message
            # Left at the deadline: the event loop wakes the backend there, give or take the
            # scheduling of a busy machine (not the server's 5 s).
            assert time.monotonic() < deadline + SCHEDULING_SLACK_S
            started = time.monotonic()
            message = await failure(backend, 0.3)
            assert time.monotonic() - started < 0.3 + SCHEDULING_SLACK_S
        finally:
            await backend.aclose()
        assert await server.wait_for(lambda: all(r.client_closed_early for r in server.requests))
    assert "too slow" in message and "2 times in a row" in message


async def test_a_stream_that_stalls_keeps_its_complete_lines_at_the_deadline():
    chunks = [sse({"choices": [{"index": 0, "text": t}]}) for t in ["a = 1\n", "b = 2\n", "c ="]]

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream(chunks, stall_s=5)

    async with FakeModelServer(answer) as server:
        backend = backend_for(server.base)
        block = GenerationLimits(Scope.BLOCK, 400, 20, 1, time.monotonic() + 0.3)
        try:
            candidates = await backend.generate(prompt_for(None, "x = 0\n", ""), block)
        finally:
            await backend.aclose()
    assert [c.text for c in candidates] == ["a = 1\nb = 2"]


async def test_server_error_is_reported_with_its_reason():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"error": {"message": "CUDA out of memory"}}, status=500)

    message, server = await failure_from(answer)
    assert message == (
        f"the model server at {server.base}/v1/completions failed (HTTP 500): CUDA out of memory"
    )


async def test_rate_limit_backs_off_for_retry_after_without_asking_again():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"error": "slow down"}, status=429, headers={"Retry-After": "30"})

    async with FakeModelServer(answer) as server:
        backend = backend_for(server.base)
        try:
            first = await failure(backend)
            second = await failure(backend)
        finally:
            await backend.aclose()
    assert "rate-limited us (HTTP 429); waiting 30 s" in first
    assert second == first
    assert len(server.requests) == 1  # the second completion did not hammer the server


async def test_completions_resume_after_the_backoff():
    async def answer(request: Recorded, reply: Reply) -> None:
        if len(server.requests) == 1:
            await reply.json({}, status=429, headers={"Retry-After": "0.2"})
        else:
            await reply.json(GOOD)

    async with FakeModelServer(answer) as server:
        backend = backend_for(server.base, stream=False)
        try:
            await failure(backend)
            await failure(backend)
            await asyncio.sleep(0.25)
            candidates = await backend.generate(prompt_for(None), limits())
        finally:
            await backend.aclose()
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    assert len(server.requests) == 2


async def test_unauthorized_names_the_variable_never_the_key(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)

    async def answer(request: Recorded, reply: Reply) -> None:
        echoed = request.headers["authorization"]  # some servers quote what they got
        await reply.json({"error": {"message": f"Incorrect API key: {echoed}"}}, status=401)

    message, server = await failure_from(answer)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "HTTP 401, unauthorized" in message and "$GC_TEST_KEY" in message
    assert "Incorrect API key: ***" in message
    assert KEY not in caplog.text


async def test_a_missing_key_variable_is_reported_when_the_backend_is_built():
    settings = BackendSettings(kind="http", http=HttpSettings(url="http://x", api_key_env="NOPE_"))
    with pytest.raises(BackendError, match="environment variable NOPE_"):
        create_backend(settings)
    with pytest.raises(BackendError, match=r"backend\.http\.url is not set"):
        create_backend(BackendSettings(kind="http"))


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"<html>502 Bad Gateway</html>", "text/html"),
        (b'{"choices": "lots"}', "application/json"),
        (b'{"answer": 42', "application/json"),
        (b"[1, 2]", "application/json"),
    ],
)
async def test_garbage_is_reported(payload: bytes, content_type: str):
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.raw(payload, content_type=content_type)

    message, _ = await failure_from(answer, stream=False)
    assert "does not fit the openai API" in message


async def test_invalid_json_in_a_stream_is_reported():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream(['{"choices": [{"text": "ok"}]}', "{not json"])

    message, _ = await failure_from(answer)
    assert "a stream event is not JSON" in message


async def test_a_stream_cut_off_mid_body_is_a_dropped_connection():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([sse({"choices": [{"index": 0, "text": "math"}]})], complete=False)

    message, _ = await failure_from(answer)
    assert "dropped the connection" in message


async def test_a_stream_without_its_end_marker_is_truncated():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([sse({"choices": [{"index": 0, "text": "math"}]})])

    message, _ = await failure_from(answer)
    assert "truncated" in message


async def test_a_connection_dropped_without_an_answer():
    async def answer(request: Recorded, reply: Reply) -> None:
        reply.drop()

    message, _ = await failure_from(answer)
    assert "dropped the connection" in message


async def test_an_error_event_inside_a_stream_is_reported():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([sse({"error": {"message": "context length exceeded"}})])

    message, _ = await failure_from(answer)
    assert "context length exceeded" in message


@pytest.mark.parametrize("stream", [True, False])
async def test_cancelling_a_completion_closes_the_connection(stream: bool):
    chunks = [sse({"choices": [{"index": 0, "text": "x"}]})] * 100

    async def answer(request: Recorded, reply: Reply) -> None:
        if stream:
            await reply.stream(chunks, delay_s=0.05)
        else:
            await reply.hang(5)

    async with FakeModelServer(answer) as server:
        backend = backend_for(server.base, stream=stream)
        try:
            task = asyncio.ensure_future(backend.generate(prompt_for(None), limits(5)))
            assert await server.wait_for(lambda: bool(server.requests))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await server.wait_for(lambda: server.requests[0].client_closed_early)
        finally:
            await backend.aclose()
    assert not server.requests[0].finished


async def test_recovery_after_the_server_comes_back():
    port = free_port()
    backend = backend_for(f"http://127.0.0.1:{port}", stream=False)

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json(GOOD)

    try:
        assert "cannot reach" in await failure(backend)
        server = await FakeModelServer(answer).start(port)
        try:
            candidates = await backend.generate(prompt_for(None), limits())
        finally:
            await server.close()
    finally:
        await backend.aclose()
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]


def test_redacted_url_drops_credentials_and_query():
    assert redacted_url("https://user:pw@host:8443/v1/x?key=abc") == "https://host:8443/v1/x"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("12", 12.0), (None, 10.0), ("nonsense", 10.0), ("100000", 600.0), ("-5", 0.0)],
)
def test_retry_after(header: str | None, expected: float):
    assert retry_after_seconds(header, 10.0) == expected


def test_retry_after_as_a_date():
    header = "Wed, 21 Oct 2015 07:28:00 GMT"
    now = 1445412480.0 - 20  # 20 s before that date
    assert retry_after_seconds(header, 10.0, now=now) == pytest.approx(20.0)
