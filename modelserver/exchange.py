"""One HTTP exchange of ``serve-model``: the gate every request passes (head limits, API key),
the body within its limits, error answers in OpenAI's shape, a client that hangs up, and a
streamed answer that gives back its slot however it ends."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghostcomplete.modelserver.api import BadRequest

T = TypeVar("T")

MAX_BODY_BYTES = 8_000_000
# One header line (name, colon, value) and the request target, at most; and header lines.
MAX_LINE_BYTES = 16_384
MAX_HEADER_LINES = 100


class HungUp(Exception):
    """The client closed the connection before its answer was ready."""


def error_body(message: str, code: str | None = None) -> dict[str, Any]:
    """An error in OpenAI's shape; ``code`` says which one, for clients that branch on it."""
    error: dict[str, Any] = {"message": message, "type": "ghostcomplete"}
    if code is not None:
        error["code"] = code
    return {"error": error}


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, code: str | None = None
) -> JSONResponse:
    return JSONResponse(error_body(message, code), status, headers)


class RequestGate:
    """Turns away, before any route runs, a request whose head is over the limits (431) or
    that lacks the API key (401; ``/health`` needs none)."""

    def __init__(self, app: ASGIApp, api_key: str = "") -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(scope["raw_path"]) + len(scope["query_string"]) > MAX_LINE_BYTES:
            return error_response(414, f"the request target is over {MAX_LINE_BYTES} bytes", CLOSE)
        if len(headers) > MAX_HEADER_LINES:
            return error_response(431, f"more than {MAX_HEADER_LINES} header lines", CLOSE)
        if any(len(name) + len(value) + 2 > MAX_LINE_BYTES for name, value in headers):
            return error_response(431, f"a header line is over {MAX_LINE_BYTES} bytes", CLOSE)
        if not self.expected or scope["path"].rstrip("/") == "/health":
            return None
        given = next((value for name, value in headers if name == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            return None
        return error_response(401, "missing or wrong API key")


# The rest of a refused request may still be on its way: close rather than read it.
CLOSE = {"Connection": "close"}
# The status logged for an answer whose client left before it (nginx's "client closed").
HUNG_UP = 499


class ReleasedStream(StreamingResponse):
    """A streamed answer that closes its events and gives back its slot however it ends,
    even when the client hangs up before the first event is sent."""

    def __init__(
        self,
        events: AsyncIterator[str],
        close: Callable[[], Awaitable[None]],
        release: Callable[[], None],
    ) -> None:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        super().__init__(events, headers=headers)
        self._close = close
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._close()
            finally:
                self._release()


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_hangup(work: Awaitable[T], request: Request) -> T:
    """``work``'s result, or HungUp (``work`` cancelled) if the client leaves first."""
    task = asyncio.ensure_future(work)
    hangup = asyncio.ensure_future(_until_disconnect(request.receive))
    try:
        await asyncio.wait({task, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise HungUp
    return task.result()


async def read_body(request: Request, timeout_s: float) -> bytes:
    """The request's body, within the size limit and ``timeout_s``; BadRequest or HungUp."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, "bad Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise BadRequest(413, f"the body is over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise BadRequest(413, f"the body is over {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(408, "the body did not arrive in time") from None
    except ClientDisconnect:
        raise HungUp from None
    return b"".join(chunks)


def sse(data: str) -> str:
    return f"data: {data}\n\n"
