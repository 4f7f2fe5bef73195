"""``POST /v1/chat/completions``: a conversation answered by the backend's instruct model
(edit requests from our http backend, or any OpenAI client), whole or streamed.

Chats have their own lane in the scheduler and their own deadline (``--chat-timeout-ms``):
an answer takes seconds where a completion takes milliseconds. A backend without an instruct
model (the lookup, a completion-only model) answers 400 and says so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ghostcomplete.backends.base import BackendError, ChatReply, UnfitRequest
from ghostcomplete.modelserver.api import BadRequest, parse_body
from ghostcomplete.modelserver.chat_api import ChatAsk, ChatChunks, chat_answer, chat_ask
from ghostcomplete.modelserver.exchange import (
    CLOSE,
    HUNG_UP,
    HungUp,
    ReleasedStream,
    error_body,
    error_response,
    read_body,
    sse,
    unless_hangup,
)
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.scheduler import Overloaded, Scheduler

log = logging.getLogger("ghostcomplete.serve_model")


def can_chat(backend: object) -> bool:
    """Whether the backend has an instruct model to answer conversations."""
    return callable(getattr(backend, "reply", None)) and bool(
        getattr(backend, "follows_instructions", False)
    )


class ChatEndpoint:
    def __init__(self, scheduler: Scheduler, options: ServeOptions) -> None:
        self.scheduler = scheduler
        self.options = options

    def _late(self) -> str:
        return (
            f"the answer did not finish within {self.options.chat_timeout_ms} ms "
            "(serve-model --chat-timeout-ms)"
        )

    def _cannot_chat(self) -> JSONResponse:
        backend = self.scheduler.backend
        why = getattr(backend, "model_problem", None) or (
            f"the {backend.name} backend has no model that follows instructions"
        )
        return error_response(
            400,
            f"this server cannot answer chat completions: {why}. Serve an instruct model "
            "(serve-model --backend onnx with backend.onnx.path or .model naming a model whose "
            "folder has a chat template); /v1/completions still works",
            code="model_not_chat",
        )

    async def post(self, request: Request) -> Response:
        deadline = time.monotonic() + self.options.chat_timeout_ms / 1000
        try:
            body = parse_body(await read_body(request, self.options.header_timeout_s))
            ask = chat_ask(body, deadline)
        except BadRequest as error:
            closing = CLOSE if error.status in (408, 413) else None
            return error_response(error.status, str(error), closing)
        except HungUp:
            return Response(status_code=HUNG_UP)
        if not can_chat(self.scheduler.backend):
            return self._cannot_chat()
        try:
            await unless_hangup(self.scheduler.admit(chat=True), request)
        except Overloaded:
            return error_response(503, "overloaded: try again", {"Retry-After": "1"})
        except HungUp:
            return Response(status_code=HUNG_UP)
        if ask.stream:
            return await self._stream(ask, request)
        try:
            answer, generate_ms = await unless_hangup(self.scheduler.reply(ask), request)
        except HungUp:
            log.info("client hung up: chat answer cancelled")
            return Response(status_code=HUNG_UP)
        except UnfitRequest as error:
            return error_response(400, str(error))
        except BackendError as error:
            return error_response(500, str(error))
        finally:
            self.scheduler.release(chat=True)
        if answer.finish_reason == "deadline":
            return error_response(504, self._late(), code="timeout")
        timing = {"Server-Timing": f"generate;dur={generate_ms:.3f}"}
        model = ask.model or self.options.model_name
        return JSONResponse(chat_answer(answer, model), 200, timing)

    async def _stream(self, ask: ChatAsk, request: Request) -> Response:
        """Waits for the first piece (so that a request the model refuses still gets its
        status), then streams; the chat slot goes back when the stream ends."""
        pieces = self.scheduler.reply_pieces(ask)
        try:
            first = await unless_hangup(anext(pieces), request)
        except (HungUp, BackendError) as error:
            await pieces.aclose()
            self.scheduler.release(chat=True)
            if isinstance(error, HungUp):
                log.info("client hung up: chat answer cancelled")
                return Response(status_code=HUNG_UP)
            return error_response(400 if isinstance(error, UnfitRequest) else 500, str(error))
        if isinstance(first, ChatReply) and first.finish_reason == "deadline" and not first.text:
            await pieces.aclose()
            self.scheduler.release(chat=True)
            return error_response(504, self._late(), code="timeout")
        events = self._events(ask, first, pieces)
        return ReleasedStream(events, events.aclose, lambda: self.scheduler.release(chat=True))

    async def _events(
        self, ask: ChatAsk, first: str | ChatReply, pieces: AsyncGenerator[str | ChatReply, None]
    ) -> AsyncGenerator[str, None]:
        chunks = ChatChunks(ask.model or self.options.model_name)

        def event(value: dict[str, Any]) -> str:
            return sse(json.dumps(value))

        yield event(chunks.delta({"role": "assistant", "content": ""}))
        answer: ChatReply | None = None
        try:
            item: str | ChatReply | None = first
            while item is not None:
                if isinstance(item, ChatReply):
                    answer = item
                    break
                yield event(chunks.delta({"content": item}))
                item = await anext(pieces, None)
        except BackendError as error:
            yield event(error_body(str(error)))
        finally:
            await pieces.aclose()
        if answer is not None and answer.finish_reason == "deadline":
            yield event(error_body(self._late(), "timeout"))
        elif answer is not None:
            yield event(chunks.delta({}, answer.finish_reason))
            if ask.include_usage:
                yield event(chunks.usage(answer))
        yield sse("[DONE]")
