"""The ASGI application of ``serve-model`` (Starlette): routes, request limits, the API key,
and answers whole or streamed as server-sent events.

A client that hangs up, before or during its answer, cancels its generation: nobody would
read the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghostcomplete.backends.base import BackendError
from ghostcomplete.modelserver.api import (
    Ask,
    BadRequest,
    infill_ask,
    openai_answer,
    openai_ask,
    parse_body,
)
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.scheduler import Overloaded, Scheduler

log = logging.getLogger("ghostcomplete.serve_model")

T = TypeVar("T")

MAX_BODY_BYTES = 8_000_000
# One header line (name, colon, value) and the request target, at most; and header lines.
MAX_LINE_BYTES = 16_384
MAX_HEADER_LINES = 100


class HungUp(Exception):
    """The client closed the connection before its answer was ready."""


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "ghostcomplete"}}


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message), status, headers)


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
            return _error(414, f"the request target is over {MAX_LINE_BYTES} bytes", _CLOSE)
        if len(headers) > MAX_HEADER_LINES:
            return _error(431, f"more than {MAX_HEADER_LINES} header lines", _CLOSE)
        if any(len(name) + len(value) + 2 > MAX_LINE_BYTES for name, value in headers):
            return _error(431, f"a header line is over {MAX_LINE_BYTES} bytes", _CLOSE)
        if not self.expected or scope["path"].rstrip("/") == "/health":
            return None
        given = next((value for name, value in headers if name == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            return None
        return _error(401, "missing or wrong API key")


# The rest of a refused request may still be on its way: close rather than read it.
_CLOSE = {"Connection": "close"}
# The status logged for an answer whose client left before it (nginx's "client closed").
_HUNG_UP = 499


class _ReleasedStream(StreamingResponse):
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


class Endpoints:
    def __init__(self, scheduler: Scheduler, options: ServeOptions) -> None:
        self.scheduler = scheduler
        self.options = options

    def health(self) -> dict[str, Any]:
        scheduler = self.scheduler
        return {
            "status": "ok",
            "backend": scheduler.backend.name,
            "model": self.options.model_name,
            "running": scheduler.running,
            "queued": scheduler.waiting,
            "served": scheduler.served,
            "concurrency": self.options.concurrency,
        }

    async def get_health(self, request: Request) -> Response:
        return JSONResponse(self.health())

    async def get_models(self, request: Request) -> Response:
        entry = {"id": self.options.model_name, "object": "model", "owned_by": "ghostcomplete"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def post_completions(self, request: Request) -> Response:
        return await self._complete(request, "openai")

    async def post_infill(self, request: Request) -> Response:
        return await self._complete(request, "infill")

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest(400, "bad Content-Length")
            if int(declared) > MAX_BODY_BYTES:
                raise BadRequest(413, f"the body is over {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.options.header_timeout_s):
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

    async def _complete(self, request: Request, kind: str) -> Response:
        deadline = time.monotonic() + self.options.timeout_ms / 1000
        try:
            body = parse_body(await self._body(request))
            family = self.scheduler.backend.fim_family
            make = openai_ask if kind == "openai" else infill_ask
            ask = make(body, family, deadline)
        except BadRequest as error:
            closing = _CLOSE if error.status in (408, 413) else None
            return _error(error.status, str(error), closing)
        except HungUp:
            return Response(status_code=_HUNG_UP)  # nobody reads it
        try:
            await unless_hangup(self.scheduler.admit(), request)
        except Overloaded:
            return _error(503, "overloaded: try again", {"Retry-After": "1"})
        except HungUp:
            return Response(status_code=_HUNG_UP)
        if ask.stream:
            return await self._stream(kind, ask, request)
        try:
            texts, generate_ms = await unless_hangup(self.scheduler.generate(ask), request)
        except HungUp:
            log.info("client hung up: generation cancelled")
            return Response(status_code=_HUNG_UP)
        except BackendError as error:
            return _error(500, str(error))
        finally:
            self.scheduler.release()
        timing = {"Server-Timing": f"generate;dur={generate_ms:.3f}"}
        if kind == "openai":
            return JSONResponse(
                openai_answer(texts, ask.model or self.options.model_name), 200, timing
            )
        answer = {
            "content": texts[0] if texts else "",
            "stop": True,
            "model": self.options.model_name,
            "timings": {"predicted_ms": generate_ms},
        }
        return JSONResponse(answer, 200, timing)

    async def _stream(self, kind: str, ask: Ask, request: Request) -> Response:
        """Waits for the first piece (so that a failing engine still gets a 500), then
        streams; the slot held since admission goes back when the stream ends."""
        pieces = self.scheduler.pieces(ask)
        try:
            first = await unless_hangup(anext(pieces, None), request)
        except (HungUp, BackendError) as error:
            await pieces.aclose()
            self.scheduler.release()
            if isinstance(error, HungUp):
                log.info("client hung up: generation cancelled")
                return Response(status_code=_HUNG_UP)
            return _error(500, str(error))
        events = self._events(kind, ask, first, pieces)
        return _ReleasedStream(events, events.aclose, self.scheduler.release)

    async def _events(
        self, kind: str, ask: Ask, first: str | None, pieces: AsyncGenerator[str, None]
    ) -> AsyncGenerator[str, None]:
        model = ask.model or self.options.model_name
        base = openai_answer([""], model) if kind == "openai" else {}

        def event(piece: str) -> str:
            if kind == "openai":
                choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
                return _sse(json.dumps({**base, "choices": [choice]}))
            return _sse(json.dumps({"content": piece, "stop": False}))

        try:
            yield event(first or "")
            async for piece in pieces:
                yield event(piece)
        except BackendError as error:
            yield _sse(json.dumps(error_body(str(error))))
        finally:
            await pieces.aclose()
        if kind == "openai":
            final = {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
            yield _sse(json.dumps({**base, "choices": [final]}))
            yield _sse("[DONE]")
        else:
            yield _sse(json.dumps({"content": "", "stop": True}))


def _sse(data: str) -> str:
    return f"data: {data}\n\n"


def build_app(scheduler: Scheduler, options: ServeOptions) -> Starlette:
    endpoints = Endpoints(scheduler, options)

    async def refuse(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no such endpoint: {request.url.path}")
        allowed = (exc.headers or {}).get("Allow", "")
        return _error(exc.status_code, f"use {allowed}" if allowed else exc.detail, exc.headers)

    completions = endpoints.post_completions
    routes = [
        Route("/health", endpoints.get_health, methods=["GET"]),
        Route("/v1/models", endpoints.get_models, methods=["GET"]),
        Route("/models", endpoints.get_models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/completions", completions, methods=["POST"]),
        Route("/infill", endpoints.post_infill, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestGate, api_key=options.api_key)],
        exception_handlers={HTTPException: refuse},
    )
