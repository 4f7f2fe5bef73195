"""Reading streamed answers: server-sent events and newline-delimited JSON, and knowing when
the text we want is complete so that the stream can be closed early.

``wanted_end`` mirrors postprocess/filters.py ``cut_to_scope`` and ``respect_max_lines``: it never
cuts more than the filters would, so stopping early changes no suggestion, only its latency.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ghostcomplete.backends.base import GenerationLimits
from ghostcomplete.context.syntax import Scope


class MalformedAnswer(ValueError):
    """The server's answer does not have the shape its API promises."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def wanted_end(text: str, line_prefix: str, limits: GenerationLimits) -> int | None:
    """Where the wanted completion ends in ``text`` if it is already complete, else None.

    Line scope: at the end of the first line (of the next line, when the cursor ends a line
    that has text on it and the model starts with a line break). Block scope: before the first
    line indented less than the cursor's line, or after ``max_lines`` lines.
    """
    end: int | None = None
    if limits.scope is Scope.LINE:
        first = text.find("\n")
        if first == 0 and line_prefix.strip():
            second = text.find("\n", 1)
            end = second if second >= 0 else None
        elif first >= 0:
            end = first
    else:
        indent = _indent(line_prefix)
        lead = 1 if text.startswith("\n") else 0  # a leading line break is free
        lines = text.split("\n")
        offset = 0
        for number, line in enumerate(lines):
            if number > 0 and line.strip() and _indent(line) < indent:
                end = offset - 1
                break
            complete = number < len(lines) - 1
            if complete and number + 1 - lead >= max(1, limits.max_lines):
                end = offset + len(line)
                break
            offset += len(line) + 1
    if len(text) >= limits.max_chars:
        end = limits.max_chars if end is None else min(end, limits.max_chars)
    return end


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cuts = [at for at in (text.find(word) for word in stop if word) if at >= 0]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event (``data:`` lines joined; comments ignored)."""
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
        elif field not in ("event", "id", "retry") and line.lstrip().startswith("{"):
            # A server that forgot the framing (an error body in the stream, say).
            data.append(line)
    if data:
        yield "\n".join(data)


async def ndjson_events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Each non-empty line of a newline-delimited JSON stream."""
    async for raw in lines:
        line = raw.strip()
        if line:
            yield line


def parse_json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise MalformedAnswer(f"{what} is not JSON: {shown[:80]!r}") from error
