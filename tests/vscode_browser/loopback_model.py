"""An OpenAI-compatible model server on 127.0.0.1 for the browser tests' http backend:
tests/http_fakes.py's server on an event loop in a thread of its own, so that the tests can
script its answers and delays while they drive the editor."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from http_fakes import FakeModelServer, Recorded, Reply

# What a chat model answers to "add type hints": commentary and a fence around the code.
EDIT_ANSWER = (
    "Here it is:\n\n```python\ndef area(self, r: float) -> float:\n"
    "    return math.pi * r * r\n```\n"
)


@dataclass
class Script:
    """What the fake model does next."""

    completion: str = "customers[customer.name]"
    completion_delay_s: float = 0.0
    edit_delay_s: float = 0.0


class LoopbackModel:
    """/completions answers ``script.completion`` (ghost text); /chat/completions answers
    EDIT_ANSWER (Edit Selection…), each after the script's delay."""

    def __init__(self) -> None:
        self.script = Script()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake = FakeModelServer(self._handle)
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.fake.port}/v1"

    async def _handle(self, request: Recorded, reply: Reply) -> None:
        if request.path.endswith("/chat/completions"):
            if await reply.hang(self.script.edit_delay_s):
                return
            message = {"role": "assistant", "content": EDIT_ANSWER}
            await reply.json({"choices": [{"index": 0, "message": message}]})
            return
        if await reply.hang(self.script.completion_delay_s):
            return
        choice = {"index": 0, "text": self.script.completion, "finish_reason": "stop"}
        await reply.json({"choices": [choice]})

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
