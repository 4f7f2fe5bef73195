"""Just enough HTTP/1.1 for ``serve-model``: read one request, write JSON or a chunked stream.

Keep-alive by default (HTTP/1.1), ``Content-Length`` request bodies only, bounded sizes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 16_384
MAX_BODY_BYTES = 8_000_000

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError as error:
            raise BadRequest(400, f"the body is not JSON: {error}") from None
        if not isinstance(value, dict):
            raise BadRequest(400, "the body must be a JSON object")
        return value


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(400, "header line too long") from None
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise BadRequest(400, "incomplete request") from None
        return b""


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None when the client closed it."""
    first = await _line(reader)
    while first in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        first = await _line(reader)
    if not first:
        return None
    parts = first.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "not an HTTP/1.x request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = await _line(reader)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise BadRequest(400, "too many header lines")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest(411, "send the body with a Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad Content-Length") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "incomplete body") from None
    return Request(method.upper(), target.split("?", 1)[0], headers, body)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_json(
    writer: asyncio.StreamWriter,
    status: int,
    value: Any,
    headers: dict[str, str] | None = None,
    keep_alive: bool = True,
) -> None:
    payload = json.dumps(value).encode()
    all_headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        "Connection": "keep-alive" if keep_alive else "close",
        **(headers or {}),
    }
    writer.write(_head(status, all_headers) + payload)
    await writer.drain()


class ChunkedStream:
    """A streamed 200 answer: server-sent events in chunked transfer encoding."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def start(self, headers: dict[str, str] | None = None) -> None:
        all_headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
            **(headers or {}),
        }
        self.writer.write(_head(200, all_headers))
        await self.writer.drain()

    async def event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        await self.writer.drain()

    async def end(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
