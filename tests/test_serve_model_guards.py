"""serve-model under clients that misbehave on the wire, spoken to with raw sockets on
loopback: a request head that never ends, an idle connection, more connections than it allows,
header lines over the limit, and no file descriptors left to accept with."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import sys
import time

import httpx
import pytest
from support import server_executable

from ghostcomplete.backends.lookup.backend import LookupBackend
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.service import ModelService

pytestmark = pytest.mark.timeout(30)


async def serving(**options: object) -> tuple[ModelService, int]:
    service = ModelService(LookupBackend(), ServeOptions(port=0, **options))  # type: ignore[arg-type]
    url = await service.start()
    return service, int(url.rsplit(":", 1)[1])


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def answer_or_close(reader: asyncio.StreamReader, seconds: float = 3.0) -> bytes:
    """Everything the server sends until it closes the connection (TimeoutError if not)."""
    return await asyncio.wait_for(reader.read(), seconds)


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def test_a_request_head_that_never_ends_is_cut_off():
    service, port = await serving(header_timeout_s=0.3)
    try:
        reader, writer = await connect(port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
        started = time.monotonic()
        answer = await answer_or_close(reader)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 2
        writer.close()
    finally:
        await service.close()


async def test_a_connection_that_sends_nothing_is_closed_without_a_key():
    service, port = await serving(header_timeout_s=0.3, api_key="team-secret")
    try:
        reader, writer = await connect(port)
        answer = await answer_or_close(reader)
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()
    finally:
        await service.close()


async def test_a_body_that_never_arrives_is_cut_off():
    service, port = await serving(header_timeout_s=0.3)
    try:
        reader, writer = await connect(port)
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt"'
        )
        answer = await answer_or_close(reader)
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()
    finally:
        await service.close()


async def test_an_idle_keep_alive_connection_is_closed():
    service, port = await serving(idle_timeout_s=0.3)
    try:
        reader, writer = await connect(port)
        writer.write(HEALTH)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        started = time.monotonic()
        assert await answer_or_close(reader) == b""  # closed, with nothing more said
        assert time.monotonic() - started < 2
        writer.close()
    finally:
        await service.close()


async def test_connections_over_the_cap_are_refused_at_once():
    service, port = await serving(max_connections=3)
    held = [await connect(port) for _ in range(3)]
    try:
        reader, writer = await connect(port)
        answer = await answer_or_close(reader)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer
        writer.close()
        # One of the held connections still works, and one freed makes room for another.
        held[0][1].write(HEALTH)
        assert (await held[0][0].readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        held.pop()[1].close()
        await asyncio.sleep(0.1)
        reader, writer = await connect(port)
        writer.write(HEALTH)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        writer.close()
    finally:
        for _, held_writer in held:
            held_writer.close()
        await service.close()


@pytest.mark.parametrize("size", [20_000, 60_000])
async def test_header_lines_over_the_limit_are_refused(size: int):
    service, port = await serving()
    try:
        reader, writer = await connect(port)
        line = b"X-Big: " + b"a" * size
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + line + b"\r\n\r\n")
        answer = await answer_or_close(reader)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        writer.close()
    finally:
        await service.close()


async def test_a_head_too_big_to_hold_is_refused_while_it_arrives():
    service, port = await serving()
    try:
        reader, writer = await connect(port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(20):  # 100 KB of headers, never finished
            writer.write(b"X-More: " + b"a" * 5_000 + b"\r\n")
        answer = await answer_or_close(reader)
        assert answer.startswith(b"HTTP/1.1 400 ")
        writer.close()
    finally:
        await service.close()


async def test_ordinary_headers_still_pass():
    service, port = await serving()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = await client.get("/health", headers={"X-Fine": "a" * 8_000})
        assert answer.status_code == 200
    finally:
        await service.close()


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
async def test_accept_failures_are_logged_at_a_bounded_rate():
    """With 64 file descriptors, 100 connections leave the server none to accept with."""

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    process = await asyncio.create_subprocess_exec(
        server_executable(),
        "serve-model",
        "--port",
        "0",
        "--max-connections",
        "1000",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=few_descriptors,
        env={**os.environ},
    )
    held: list[socket.socket] = []
    try:
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        port = int(line.split("listening on http://127.0.0.1:", 1)[1].split(" ", 1)[0])
        for _ in range(100):
            held.append(socket.create_connection(("127.0.0.1", port)))
        await asyncio.sleep(2.5)
        for sock in held:
            sock.close()
        held.clear()
        await asyncio.sleep(1.5)  # asyncio tries accepting again after a second
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/health")).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        errors = (await process.stderr.read()).decode()
    finally:
        for sock in held:
            sock.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in errors
    complaints = [line for line in errors.splitlines() if "accept" in line]
    assert 1 <= len(complaints) <= 2, errors[-2000:]
    assert "Too many open files" in complaints[0]


async def test_answers_are_not_held_back_for_the_clients_ack():
    """Each answer goes out in two writes (head, body): without TCP_NODELAY the second
    waits for the client's delayed ACK, about 40 ms a request on Linux."""
    service, port = await serving()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/health")
            took = []
            for _ in range(15):
                started = time.monotonic()
                await client.get("/health")
                took.append(time.monotonic() - started)
        assert sorted(took)[len(took) // 2] < 0.03  # the delayed ACK alone is 0.04
    finally:
        await service.close()
