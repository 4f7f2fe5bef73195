"""A loopback stand-in for an OpenAI-compatible model server, with a configurable delay.

The latency benchmark points the server's http backend at it to measure what the pipeline
adds around a model of known speed. It answers ``POST /v1/completions`` and
``POST /v1/chat/completions`` (plain JSON, or server-sent events with ``"stream": true``)
and ``GET /v1/models``. Its "model" copies what followed the last earlier occurrence of the
prompt's final characters, so answers look like code; the delay is the point.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

_FIM_MARKERS = ("<fim_suffix>", "<|fim_suffix|>", "<SUF>")
_FIM_PREFIX = ("<fim_prefix>", "<|fim_prefix|>", "<PRE>")


def continue_text(prompt: str, max_chars: int = 200) -> str:
    """What followed the last earlier occurrence of the prompt's last 12 characters."""
    for marker in _FIM_MARKERS:
        if marker in prompt:
            prompt = prompt.split(marker, 1)[0]
            break
    for marker in _FIM_PREFIX:
        prompt = prompt.rsplit(marker, 1)[-1]
    tail = prompt[-12:]
    if len(tail) < 12:
        return ""
    at = prompt.rfind(tail, 0, len(prompt) - 1)
    if at < 0:
        return ""
    following = prompt[at + len(tail) : at + len(tail) + max_chars]
    return following.split("\n", 1)[0]


@dataclass
class ModelServer:
    delay_ms: int
    requests: int = 0
    server: asyncio.base_events.Server | None = field(default=None, repr=False)
    port: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> ModelServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for writer in list(self.writers):
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = json.loads(await reader.readexactly(length)) if length else {}
                await self._answer(method, path, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _answer(
        self, method: str, path: str, body: dict[str, Any], writer: asyncio.StreamWriter
    ) -> None:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            self._send_json(writer, {"object": "list", "data": [{"id": "bench-fake"}]})
            return
        if method != "POST" or not path.rstrip("/").endswith("completions"):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        self.requests += 1
        chat = path.rstrip("/").endswith("chat/completions")
        if chat:
            messages = body.get("messages") or [{}]
            prompt = str(messages[-1].get("content", ""))
        else:
            prompt = str(body.get("prompt", ""))
        await asyncio.sleep(self.delay_ms / 1000)
        text = continue_text(prompt, int(body.get("max_tokens") or 64) * 4)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        answer = {
            "id": f"bench-{self.requests}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": "bench-fake",
            "choices": [choice],
        }
        if body.get("stream"):
            if chat:
                choice["delta"] = choice.pop("message")
            payload = f"data: {json.dumps(answer)}\n\ndata: [DONE]\n\n".encode()
            head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        else:
            self._send_json(writer, answer)
        await writer.drain()

    @staticmethod
    def _send_json(writer: asyncio.StreamWriter, value: Any) -> None:
        payload = json.dumps(value).encode()
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
