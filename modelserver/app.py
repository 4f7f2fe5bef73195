"""The ASGI application of ``serve-model`` (Starlette): routes, request limits, the API key,
and answers whole or streamed as server-sent events.

A client that hangs up, before or during its answer, cancels its generation: nobody would
read the rest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ghostcomplete.backends.base import BackendError
from ghostcomplete.modelserver.api import (
    Ask,
    BadRequest,
    infill_ask,
    openai_answer,
    openai_ask,
    parse_body,
)
from ghostcomplete.modelserver.chat import ChatEndpoint, can_chat
from ghostcomplete.modelserver.exchange import (
    CLOSE,
    HUNG_UP,
    HungUp,
    ReleasedStream,
    RequestGate,
    error_body,
    error_response,
    read_body,
    sse,
    unless_hangup,
)
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.scheduler import Overloaded, Scheduler

log = logging.getLogger("ghostcomplete.serve_model")


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
            "chat": can_chat(scheduler.backend),
            "chat_running": scheduler.chats_running,
        }

    async def get_health(self, request: Request) -> Response:
        return JSONResponse(self.health())

    async def get_models(self, request: Request) -> Response:
        # Which endpoints the model answers (Ollama's /api/show names them the same way).
        capabilities = ["completion", "infill"] + (
            ["chat"] if can_chat(self.scheduler.backend) else []
        )
        entry = {
            "id": self.options.model_name,
            "object": "model",
            "owned_by": "ghostcomplete",
            "capabilities": capabilities,
        }
        return JSONResponse({"object": "list", "data": [entry]})

    async def post_completions(self, request: Request) -> Response:
        return await self._complete(request, "openai")

    async def post_infill(self, request: Request) -> Response:
        return await self._complete(request, "infill")

    async def _complete(self, request: Request, kind: str) -> Response:
        deadline = time.monotonic() + self.options.timeout_ms / 1000
        try:
            body = parse_body(await read_body(request, self.options.header_timeout_s))
            family = self.scheduler.backend.fim_family
            make = openai_ask if kind == "openai" else infill_ask
            ask = make(body, family, deadline)
        except BadRequest as error:
            closing = CLOSE if error.status in (408, 413) else None
            return error_response(error.status, str(error), closing)
        except HungUp:
            return Response(status_code=HUNG_UP)  # nobody reads it
        try:
            await unless_hangup(self.scheduler.admit(), request)
        except Overloaded:
            return error_response(503, "overloaded: try again", {"Retry-After": "1"})
        except HungUp:
            return Response(status_code=HUNG_UP)
        if ask.stream:
            return await self._stream(kind, ask, request)
        try:
            texts, generate_ms = await unless_hangup(self.scheduler.generate(ask), request)
        except HungUp:
            log.info("client hung up: generation cancelled")
            return Response(status_code=HUNG_UP)
        except BackendError as error:
            return error_response(500, str(error))
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
                return Response(status_code=HUNG_UP)
            return error_response(500, str(error))
        events = self._events(kind, ask, first, pieces)
        return ReleasedStream(events, events.aclose, self.scheduler.release)

    async def _events(
        self, kind: str, ask: Ask, first: str | None, pieces: AsyncGenerator[str, None]
    ) -> AsyncGenerator[str, None]:
        model = ask.model or self.options.model_name
        base = openai_answer([""], model) if kind == "openai" else {}

        def event(piece: str) -> str:
            if kind == "openai":
                choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
                return sse(json.dumps({**base, "choices": [choice]}))
            return sse(json.dumps({"content": piece, "stop": False}))

        try:
            yield event(first or "")
            async for piece in pieces:
                yield event(piece)
        except BackendError as error:
            yield sse(json.dumps(error_body(str(error))))
        finally:
            await pieces.aclose()
        if kind == "openai":
            final = {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
            yield sse(json.dumps({**base, "choices": [final]}))
            yield sse("[DONE]")
        else:
            yield sse(json.dumps({"content": "", "stop": True}))


def build_app(scheduler: Scheduler, options: ServeOptions) -> Starlette:
    endpoints = Endpoints(scheduler, options)
    chat = ChatEndpoint(scheduler, options)

    async def refuse(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(404, f"no such endpoint: {request.url.path}")
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(
            exc.status_code, f"use {allowed}" if allowed else exc.detail, exc.headers
        )

    completions = endpoints.post_completions
    routes = [
        Route("/health", endpoints.get_health, methods=["GET"]),
        Route("/v1/models", endpoints.get_models, methods=["GET"]),
        Route("/models", endpoints.get_models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/completions", completions, methods=["POST"]),
        Route("/infill", endpoints.post_infill, methods=["POST"]),
        Route("/v1/chat/completions", chat.post, methods=["POST"]),
        Route("/chat/completions", chat.post, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestGate, api_key=options.api_key)],
        exception_handlers={HTTPException: refuse},
    )
