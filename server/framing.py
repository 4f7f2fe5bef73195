"""Splitting the client's byte stream into JSON-RPC message bodies, forgiving bad framing.

pygls reads a header line, then exactly ``Content-Length`` bytes, and accepts only the header
``Content-Length: N\\r\\n`` spelled just so. One message framed wrongly (a length counted in
characters for a non-ASCII body, ``content-length`` in lower case, LF-only lines, a length too
short or too long) left it reading the rest of the stream out of step: alive and deaf for
good. Here header names match in any case, lines may end in LF alone, and a body that is not
JSON is mended or dropped by finding the next ``Content-Length`` header, which can never occur
inside valid JSON (it needs a raw line break right after the digits, and JSON strings cannot
hold one). Each framing problem is logged once, as one line.

No I/O: ``feed`` bytes in, take bodies out with ``next_body``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_HEADER = re.compile(rb"content-length[ \t]*:[ \t]*(\d{1,15})[ \t]*\r?\n", re.IGNORECASE)
_OTHER_HEADER = re.compile(rb"[A-Za-z][A-Za-z0-9-]*[ \t]*:[^\r\n]*\r?")
# A header block that has not ended after this many bytes is not one.
_MAX_HEADER_BYTES = 8192
# Bytes kept while looking for a header in junk (a header split between two reads).
_HEADER_TAIL = 64
# A body whose length was counted in characters (or UTF-16 units) has at most 4 bytes each.
_MEND_FACTOR = 4
_MEND_SLACK = 4096


def _is_json(data: bytes | bytearray) -> bool:
    try:
        json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return False
    return True


def _harmless(skipped: bytes | bytearray) -> bool:
    """Blank lines and headers other than Content-Length (Content-Type) are not junk."""
    return all(
        not line.strip() or _OTHER_HEADER.fullmatch(line) for line in bytes(skipped).split(b"\n")
    )


class Deframer:
    """Message bodies out of a byte stream; ``on_problem`` hears of each framing error."""

    def __init__(self, on_problem: Callable[[str], None]) -> None:
        self._buffer = bytearray()
        self._length: int | None = None  # of the body whose headers were read
        self._mending = False  # the body at hand was not JSON: looking for its real end
        self._scanned = 0  # bytes of a pending body already searched for a header
        self._on_problem = on_problem
        self.ended = False

    def feed(self, data: bytes) -> None:
        """More bytes from the client; ``b""`` when the stream ended."""
        if data:
            self._buffer += data
        else:
            self.ended = True

    def next_body(self) -> bytes | None:
        """The next message body, or None until more bytes are fed."""
        while True:
            if self._length is None:
                if not self._read_headers():
                    return None
                continue
            body = self._mend() if self._mending else self._read_body(self._length)
            if body is not None:
                return body
            if self._length is not None:
                return None  # waiting for more of this body

    # --- headers ------------------------------------------------------------------------------
    def _read_headers(self) -> bool:
        """Consume one header block (setting ``_length``); False when more bytes are needed."""
        found = _HEADER.search(self._buffer)
        if found is None:
            if len(self._buffer) > _HEADER_TAIL:
                self._skip(len(self._buffer) - _HEADER_TAIL, "bytes that are not a message")
            if self.ended:
                self._skip(len(self._buffer), "bytes that are not a message")
            return False
        if found.start():
            self._skip(found.start(), "bytes that are not a message")
            return True
        position = found.end()
        while True:
            line_end = self._buffer.find(b"\n", position)
            if line_end < 0:
                if len(self._buffer) > _MAX_HEADER_BYTES or self.ended:
                    self._skip(position, "a header block that does not end")
                    return True
                return False
            line = self._buffer[position:line_end]
            if not line.strip():
                break
            if _OTHER_HEADER.fullmatch(line) is None or line_end > _MAX_HEADER_BYTES:
                self._skip(position, "a header block with a line that is not a header")
                return True
            position = line_end + 1
        length = int(found.group(1))
        del self._buffer[: line_end + 1]
        if length:
            self._length, self._scanned, self._mending = length, 0, False
        return True

    def _skip(self, count: int, what: str) -> None:
        skipped = self._buffer[:count]
        del self._buffer[:count]
        if not _harmless(skipped):
            self._problem(f"skipped {count} {what}: {bytes(skipped[:60])!r}")

    # --- bodies -------------------------------------------------------------------------------
    def _read_body(self, length: int) -> bytes | None:
        # A header inside the expected body: the length was too long (or the body is junk). Only
        # bytes with a line break can hold one, so a body without any costs a memchr.
        start = max(0, self._scanned - _HEADER_TAIL)
        window = self._buffer[start:length]
        if b"\n" in window:
            found = _HEADER.search(self._buffer, start, length)
            if found is not None:
                return self._end_at(found.start(), length)
        self._scanned = min(len(self._buffer), length)
        if len(self._buffer) < length:
            if self.ended:
                self._drop(len(self._buffer), "the stream ended inside a message")
            return None
        body = bytes(self._buffer[:length])
        if _is_json(body):
            del self._buffer[:length]
            self._length = None
            return body
        self._mending = True
        return self._mend()

    def _mend(self) -> bytes | None:
        """The body at hand is not JSON: its real end is the next header, or, with no header
        yet, the point where the bytes so far form JSON."""
        assert self._length is not None
        length = self._length
        found = _HEADER.search(self._buffer, 1)
        if found is not None:
            return self._end_at(found.start(), length)
        if self._buffer.rstrip().endswith((b"}", b"]")) and _is_json(self._buffer):
            return self._end_at(len(self._buffer), length)
        if len(self._buffer) > _MEND_FACTOR * length + _MEND_SLACK or self.ended:
            self._drop(len(self._buffer), f"Content-Length {length} does not frame a message")
        return None

    def _end_at(self, end: int, length: int) -> bytes | None:
        """The body is the first ``end`` bytes, whatever the header said: a message if they are
        JSON, dropped if not."""
        candidate = bytes(self._buffer[:end])
        if _is_json(candidate):
            del self._buffer[:end]
            self._length, self._mending = None, False
            self._problem(
                f"Content-Length {length} for a message of {len(candidate.rstrip())} bytes: "
                "read it to the next header"
            )
            return candidate
        self._drop(end, f"not JSON (Content-Length {length})")
        return None

    def _drop(self, count: int, why: str) -> None:
        dropped = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._length, self._mending = None, False
        self._problem(f"dropped {count} bytes, {why}: {dropped[:60]!r}")

    def _problem(self, message: str) -> None:
        self._on_problem("framing error: " + message)
