"""Admission and generation: at most ``concurrency`` generations at once, at most ``queue``
more waiting, and the rest turned away; each generation whole or streamed, stopped as soon as
nobody wants the rest of it.

Chat answers (seconds to minutes each on a CPU) have a lane of their own: at most
``chat_concurrency`` at once, waiting in the same bounded queue, so that they never hold the
slots completions need. (The onnx engine then runs those completions between two of a chat's
forward passes: backends/onnx/worker.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import cast

from ghostcomplete.backends.base import Backend, ChatBackend, ChatReply, StreamingBackend
from ghostcomplete.modelserver.api import Ask, StopCutter, cut_at_stops, stream_pieces
from ghostcomplete.modelserver.chat_api import ChatAsk


class Overloaded(Exception):
    """Every slot is busy and the queue is full."""


class Scheduler:
    def __init__(
        self, backend: Backend, concurrency: int, queue: int, chat_concurrency: int = 1
    ) -> None:
        self.backend = backend
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self._chat_slots = asyncio.Semaphore(chat_concurrency)
        self.running = 0
        self.chats_running = 0
        self.waiting = 0
        self.served = 0

    async def admit(self, chat: bool = False) -> None:
        """Wait for a slot of the lane (``release`` it after); Overloaded when the queue is
        full too."""
        slots = self._chat_slots if chat else self._slots
        if slots.locked() and self.waiting >= self.queue:
            raise Overloaded
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        if chat:
            self.chats_running += 1
        else:
            self.running += 1

    def release(self, chat: bool = False) -> None:
        if chat:
            self.chats_running -= 1
            self._chat_slots.release()
        else:
            self.running -= 1
            self._slots.release()

    async def reply(self, ask: ChatAsk) -> tuple[ChatReply, float]:
        """The model's answer to a conversation and the milliseconds it took. The caller
        holds a chat slot."""
        started = time.monotonic()
        backend = cast(ChatBackend, self.backend)
        answer = await backend.reply(ask.messages, ask.limits)
        self.served += 1
        return answer, (time.monotonic() - started) * 1000

    async def reply_pieces(self, ask: ChatAsk) -> AsyncGenerator[str | ChatReply, None]:
        """The answer's text as it settles, then the whole reply (for its finish reason and
        token counts). Closing this iterator early stops the generation."""
        settled: asyncio.Queue[str | None] = asyncio.Queue()
        backend = cast(ChatBackend, self.backend)
        task = asyncio.ensure_future(backend.reply(ask.messages, ask.limits, settled.put_nowait))
        task.add_done_callback(lambda _: settled.put_nowait(None))
        try:
            while (piece := await settled.get()) is not None:
                yield piece
            answer = await task
            self.served += 1
            yield answer
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def generate(self, ask: Ask) -> tuple[list[str], float]:
        """Every candidate, cut at the request's stop strings, and the milliseconds it took.
        The caller holds a slot."""
        started = time.monotonic()
        candidates = await self.backend.generate(ask.prompt, ask.limits)
        self.served += 1
        texts = [cut_at_stops(c.text, ask.stop) for c in candidates]
        return texts, (time.monotonic() - started) * 1000

    async def pieces(self, ask: Ask) -> AsyncGenerator[str, None]:
        """The best candidate as it is generated, in pieces that end at line breaks where
        the text has them, cut at the request's stop strings. Closing this iterator early (a
        client that hung up, or a stop string that arrived) stops the generation. The caller
        holds a slot."""
        cutter = StopCutter(ask.stop)
        stream = getattr(self.backend, "stream", None)
        if stream is None:  # an engine that only answers whole: stream its first candidate
            texts, _ = await self.generate(ask)
            for piece in stream_pieces(texts[0] if texts else ""):
                if piece:
                    yield piece
            return
        source = cast(StreamingBackend, self.backend).stream(ask.prompt, ask.limits)
        try:
            async for delta in source:
                for piece in stream_pieces(cutter.feed(delta)):
                    if piece:
                        yield piece
                if cutter.stopped:
                    break  # the rest is unwanted: closing the source stops the engine
            for piece in stream_pieces(cutter.finish()):
                if piece:
                    yield piece
            self.served += 1
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
