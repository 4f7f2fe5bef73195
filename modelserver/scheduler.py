"""Admission and generation: at most ``concurrency`` generations at once, at most ``queue``
more waiting, and the rest turned away; each generation whole or streamed, stopped as soon as
nobody wants the rest of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import cast

from ghostcomplete.backends.base import Backend, StreamingBackend
from ghostcomplete.modelserver.api import Ask, StopCutter, cut_at_stops, stream_pieces


class Overloaded(Exception):
    """Every slot is busy and the queue is full."""


class Scheduler:
    def __init__(self, backend: Backend, concurrency: int, queue: int) -> None:
        self.backend = backend
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self.running = 0
        self.waiting = 0
        self.served = 0

    async def admit(self) -> None:
        """Wait for a slot (``release`` it after); Overloaded when the queue is full too."""
        if self._slots.locked() and self.waiting >= self.queue:
            raise Overloaded
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._slots.release()

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
