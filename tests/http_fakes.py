"""A scriptable HTTP/1.1 model server on 127.0.0.1 for the http backend's tests.

Each test gives a handler ``async (request, reply) -> None``; the server records every request
(method, path, headers, JSON body) and, for streamed answers, whether the client closed the
connection before the stream was finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ghostcomplete.backends.base import CompletionPrompt
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim
from ghostcomplete.ranker.snippets import Snippet


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    # Streamed answers: how many events went out, and whether the client hung up first.
    events_sent: int = 0
    client_closed_early: bool = False
    finished: bool = False

    @property
    def body(self) -> Any:
        return json.loads(self.raw_body) if self.raw_body else None


class Reply:
    """How a handler answers one request."""

    def __init__(
        self, request: Recorded, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.request = request
        self.reader = reader
        self.writer = writer
        self.keep_open = True

    async def json(
        self, value: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        await self.raw(json.dumps(value).encode(), status, headers, "application/json")

    async def raw(
        self,
        payload: bytes,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain",
    ) -> None:
        head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
        head += [f"Content-Length: {len(payload)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await self.writer.drain()
        self.request.finished = True

    async def stream(
        self,
        events: list[str],
        delay_s: float = 0.0,
        framing: str = "sse",
        complete: bool = True,
        stall_s: float = 0.0,
    ) -> None:
        """Send ``events`` one by one (SSE ``data:`` events or NDJSON lines), ``delay_s``
        apart, noticing when the client hangs up. ``stall_s`` waits before ending the body;
        ``complete=False`` drops the connection instead of ending the body properly."""
        content_type = "text/event-stream" if framing == "sse" else "application/x-ndjson"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked"
        self.writer.write((head + "\r\n\r\n").encode())
        hung_up = asyncio.ensure_future(self.reader.read(1))
        try:
            for index, event in enumerate(events):
                if index and delay_s:
                    await asyncio.wait([hung_up], timeout=delay_s)
                if hung_up.done():
                    self.request.client_closed_early = True
                    self.keep_open = False
                    return
                line = f"data: {event}\n\n" if framing == "sse" else event + "\n"
                data = line.encode()
                self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                try:
                    await self.writer.drain()
                except ConnectionError:
                    self.request.client_closed_early = True
                    self.keep_open = False
                    return
                self.request.events_sent += 1
            if stall_s:
                await asyncio.wait([hung_up], timeout=stall_s)
                if hung_up.done():
                    self.request.client_closed_early = True
                    self.keep_open = False
                    return
            if not complete:
                self.keep_open = False
                return
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
            self.request.finished = True
        finally:
            hung_up.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await hung_up

    async def hang(self, seconds: float) -> bool:
        """Say nothing for ``seconds``; True if the client hung up meanwhile."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return False
        if not data:
            self.request.client_closed_early = True
            self.keep_open = False
            return True
        return False

    def drop(self) -> None:
        """Close the connection without a word."""
        self.keep_open = False


Handler = Callable[[Recorded, Reply], Awaitable[None]]


@dataclass
class FakeModelServer:
    handler: Handler
    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    scheme: str = "http"
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> FakeModelServer:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", port, ssl=tls)
        self.scheme = "https" if tls is not None else "http"
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> FakeModelServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_for(self, check: Callable[[], bool], timeout: float = 2.0) -> bool:
        """Poll ``check`` until it holds (the server side runs concurrently)."""
        end = asyncio.get_running_loop().time() + timeout
        while not check():
            if asyncio.get_running_loop().time() > end:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                request = Recorded(method, path, headers, body)
                self.requests.append(request)
                reply = Reply(request, reader, writer)
                await self.handler(request, reply)
                if not reply.keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a cancelled handler ends quietly: the fake is being shut down
        finally:
            self._tasks.discard(task)
            writer.close()


# --- prompts -------------------------------------------------------------------------------------

PREFIX = "import math\n\ndef area(r):\n    return "
SUFFIX = "\n\nprint(area(2))\n"
SNIPPET = Snippet(
    "file:///work/geometry.py", 3, "def circumference(r):\n    return 2 * math.pi * r", 0.5
)


def prompt_for(family: str | None, prefix: str = PREFIX, suffix: str = SUFFIX) -> CompletionPrompt:
    context = PackedContext(prefix, suffix, (SNIPPET,), 40)
    rendered = family or "starcoder"
    return CompletionPrompt(
        language_id="python",
        path="/work/area.py",
        context=context,
        text=render_fim(context, rendered, "python", "/work/area.py"),
        stop=TEMPLATES[rendered].stop,
    )


def sse(value: object) -> str:
    return json.dumps(value)
