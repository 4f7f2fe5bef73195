"""The http backend: a model server elsewhere (llama.cpp, Ollama, vLLM, TGI, a hosted API).

One ``httpx.AsyncClient`` per backend keeps connections alive between keystrokes. Answers are
streamed and the stream is closed as soon as the wanted line or block is complete (or when the
request is cancelled), which makes the server stop generating too. Every request fits inside
the completion's deadline; nothing is retried. Failures the user must act on become one
``BackendError`` whose message names the server but never the key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from ghostcomplete.backends.base import BackendError, Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.http.adapters import (
    ADAPTERS,
    CHAT_ENDPOINT,
    Chunk,
    RequestOptions,
    WireRequest,
    chat_request,
    endpoint_url,
    parse_chat,
    parse_chat_chunk,
)
from ghostcomplete.backends.http.client import build_client
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.http.failures import redacted_url, status_failure, transport_failure
from ghostcomplete.backends.http.stream import (
    MalformedAnswer,
    cut_at_stop,
    ndjson_events,
    parse_json,
    sse_events,
    wanted_end,
)

log = logging.getLogger("ghostcomplete.http")

# Answer this long before the deadline so that the caller still sees our answer (or error).
_MARGIN_S = 0.015
# Without a deadline (the CLI, edits), one request may take this long.
_DEFAULT_BUDGET_S = 30.0
# A timeout is a failure to report only when it happens this many times in a row.
_TIMEOUTS_BEFORE_ERROR = 2
_MAX_ERROR_BODY = 16_384
_CHARS_PER_TOKEN = 3
# After an early stop, how long the rest of a stream may take to arrive before we hang up.
_DRAIN_S = 0.03


# Given the text so far, where the wanted completion ends (None: not complete yet).
Finished = Callable[[str], int | None]


@dataclass
class _Progress:
    """What a streamed answer has delivered so far (read on timeout)."""

    text: str = ""
    first_byte_at: float | None = None
    # The server's own generation time, when it says (``Server-Timing: generate;dur=12.3``).
    server_ms: float | None = None
    stopped_early: bool = False
    chunks: int = 0
    # finish_reason of each choice of a whole (non-streamed) answer, where the API says it.
    finish_reasons: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    texts: list[str]
    details: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False


def _finish_reasons(answer: object) -> list[str]:
    """The ``finish_reason`` values of an OpenAI-style answer (empty for other shapes)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        return []
    return [
        str(choice.get("finish_reason"))
        for choice in answer["choices"]
        if isinstance(choice, dict) and choice.get("finish_reason")
    ]


def server_timing_ms(header: str | None) -> float | None:
    """The total of the ``dur`` values of a Server-Timing header (milliseconds)."""
    if not header:
        return None
    found = re.findall(r"dur=([0-9.]+)", header)
    try:
        return sum(float(value) for value in found) if found else None
    except ValueError:
        return None


class HttpBackend:
    """Completions from a model server over HTTP, in one of the APIs of http_adapters."""

    name = "http"
    remote = True

    def __init__(
        self,
        settings: HttpSettings,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.url:
            raise BackendError(
                "backend.http.url is not set: give the address of the model server "
                "(for example http://127.0.0.1:8080)"
            )
        if settings.api == "ollama" and not settings.model:
            raise BackendError("backend.http.model is not set: Ollama needs a model name")
        self.settings = settings
        self.adapter = ADAPTERS[settings.api]
        self.url = endpoint_url(settings.url, self.adapter.endpoints[0], self.adapter.endpoints)
        self.shown_url = redacted_url(self.url)
        # TGI only takes a whole prompt; llama.cpp's /infill and Codestral format their own.
        family = settings.fim_family
        if settings.api == "tgi" and family is None:
            family = "starcoder"
        if settings.api in ("llamacpp", "codestral"):
            family = None
        self.fim_family: str | None = family
        self.client, self.secrets = build_client(
            settings, os.environ if environ is None else environ, transport
        )
        self._blocked_until = 0.0
        self._blocked_message = ""
        self._timeouts_in_a_row = 0
        self._draining: set[asyncio.Future[None]] = set()

    # --- the Backend protocol --------------------------------------------------------------
    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        options = self._options(max(limits.max_chars // _CHARS_PER_TOKEN, 16))
        wire = self.adapter.request(prompt, options)
        line_prefix = prompt.context.prefix[prompt.context.prefix.rfind("\n") + 1 :]

        def finished(text: str) -> int | None:
            text, stopped = cut_at_stop(text, prompt.stop)
            end = wanted_end(text, line_prefix, limits)
            return len(text) if stopped and end is None else end

        outcome = await self._exchange(wire, limits.deadline, finished)
        return [
            Candidate(text, f"http:{self.adapter.name}", dict(outcome.details))
            for text in outcome.texts
            if text
        ]

    async def aclose(self) -> None:
        for task in list(self._draining):
            task.cancel()
        await asyncio.gather(*self._draining, return_exceptions=True)
        await self.client.aclose()

    # --- chat (edit requests) ----------------------------------------------------------------
    async def chat(
        self,
        messages: list[dict[str, str]],
        deadline: float | None = None,
        max_tokens: int = 1024,
    ) -> str:
        """The assistant's whole answer from the server's OpenAI-compatible chat endpoint
        (same base URL, key and TLS settings as completions).

        Never a part of one: an answer cut off by the token limit or by the deadline raises
        BackendError, since an edit made of half an answer would break the user's code. The
        caller's ``max_tokens`` wins over ``backend.http.maxTokens`` (a completion cap).
        """
        options = dataclasses.replace(
            self._options(max_tokens), max_tokens=max_tokens, stream=False
        )
        wire = chat_request(messages, options)
        progress_reasons: list[str] = []
        outcome = await self._exchange(
            wire, deadline, lambda text: None, chat=True, finish_reasons=progress_reasons
        )
        if outcome.timed_out:
            raise BackendError(
                f"the model server at {self.shown_url} did not finish the answer in time"
            )
        if "length" in progress_reasons:
            raise BackendError(
                f"the model's answer was cut off at {max_tokens} tokens; select less, or raise "
                "the token limit"
            )
        return outcome.texts[0] if outcome.texts else ""

    # --- one exchange --------------------------------------------------------------------------
    def _options(self, derived_tokens: int) -> RequestOptions:
        settings = self.settings
        return RequestOptions(
            model=settings.model,
            fim_family=self.fim_family,
            stream=settings.stream,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens or derived_tokens,
        )

    async def _exchange(
        self,
        wire: WireRequest,
        deadline: float | None,
        finished: Finished,
        chat: bool = False,
        finish_reasons: list[str] | None = None,
    ) -> _Outcome:
        started = time.monotonic()
        if self._blocked_until > started:
            raise BackendError(self._blocked_message)
        if deadline is None:
            deadline = started + _DEFAULT_BUDGET_S
        stop_at = deadline - _MARGIN_S
        budget = stop_at - started
        if budget <= 0.005:
            return _Outcome([], timed_out=True)
        if chat:
            url = endpoint_url(self.settings.url, CHAT_ENDPOINT, self.adapter.endpoints)
        else:
            url = endpoint_url(self.settings.url, wire.endpoint, self.adapter.endpoints)
        progress = _Progress()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + budget):
                request = self.client.build_request(
                    "POST", url, json=wire.body, timeout=httpx.Timeout(budget)
                )
                texts = await self._send(request, wire, progress, finished, chat)
        except (TimeoutError, httpx.TimeoutException):
            if chat:
                return _Outcome([], timed_out=True)
            return self._timed_out(progress, started, finished)
        except httpx.HTTPError as error:
            raise BackendError(transport_failure(error, self.shown_url, self.secrets)) from None
        except MalformedAnswer as error:
            raise BackendError(
                f"the model server at {self.shown_url} sent an answer that does not fit the "
                f"{'chat' if chat else self.adapter.name} API ({self.secrets.scrub(str(error))}); "
                "check backend.http.api and backend.http.url"
            ) from None
        self._timeouts_in_a_row = 0
        if finish_reasons is not None:
            finish_reasons.extend(progress.finish_reasons)
        elapsed = time.monotonic() - started
        details = {"http_ms": round(elapsed * 1000, 3)}
        if progress.server_ms is not None:
            details["server_ms"] = progress.server_ms
        if progress.first_byte_at is not None:
            details["first_chunk_ms"] = round((progress.first_byte_at - started) * 1000, 3)
        details["stopped_early"] = 1.0 if progress.stopped_early else 0.0
        log.info(
            "POST %s %.1fms chunks=%d%s",
            redacted_url(url),
            elapsed * 1000,
            progress.chunks,
            " (stopped early)" if progress.stopped_early else "",
        )
        return _Outcome(texts, details)

    async def _send(
        self,
        request: httpx.Request,
        wire: WireRequest,
        progress: _Progress,
        finished: Finished,
        chat: bool,
    ) -> list[str]:
        response = await self.client.send(request, stream=True)
        try:
            if response.status_code != 200:
                await self._raise_for_status(response, chat)
            progress.server_ms = server_timing_ms(response.headers.get("server-timing"))
            content_type = response.headers.get("content-type", "")
            # A server that cannot stream may answer a stream request with one JSON body.
            if not wire.stream or content_type.startswith("application/json"):
                body = await response.aread()
                progress.first_byte_at = time.monotonic()
                answer = parse_json(body, "the answer")
                texts = parse_chat(answer) if chat else self.adapter.parse(answer)
                progress.finish_reasons = _finish_reasons(answer)
                await response.aclose()
                return [self._cut(text, finished) for text in texts]
            text, rest = await self._read_stream(response, progress, finished, chat)
        except BaseException:
            # Closing an unfinished stream closes the connection: the server stops generating.
            await response.aclose()
            raise
        self._drain_then_close(response, rest)
        return [text]

    def _drain_then_close(self, response: httpx.Response, rest: AsyncIterator[str]) -> None:
        """Read what is left of a stream for a moment, so that a server that has already
        finished keeps its connection for the next keystroke; then close it, which stops a
        server that is still generating."""

        async def drain() -> None:
            try:
                async with asyncio.timeout(_DRAIN_S):
                    async for _ in rest:
                        pass
            except (TimeoutError, httpx.HTTPError):
                pass
            finally:
                await response.aclose()

        task = asyncio.ensure_future(drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    @staticmethod
    def _cut(text: str, finished: Finished) -> str:
        end = finished(text)
        return text if end is None else text[:end]

    async def _read_stream(
        self, response: httpx.Response, progress: _Progress, finished: Finished, chat: bool
    ) -> tuple[str, AsyncIterator[str]]:
        """The wanted text, and the rest of the stream (unread)."""
        framing = "sse" if chat else self.adapter.framing
        lines = response.aiter_lines()
        events = sse_events(lines) if framing == "sse" else ndjson_events(lines)
        parse_chunk = parse_chat_chunk if chat else self.adapter.parse_chunk
        async for data in events:
            if progress.first_byte_at is None:
                progress.first_byte_at = time.monotonic()
            progress.chunks += 1
            event = None if data.strip() == "[DONE]" else parse_json(data, "a stream event")
            chunk: Chunk = parse_chunk(data, event)
            progress.text += chunk.text
            end = finished(progress.text)
            if end is not None:
                progress.stopped_early = not chunk.done
                return progress.text[:end], lines
            if chunk.done:
                return progress.text, lines
        raise MalformedAnswer("the stream ended before its end marker (truncated)")

    def _timed_out(self, progress: _Progress, started: float, finished: Finished) -> _Outcome:
        """The deadline came first: keep the complete lines streamed so far, if any."""
        text = progress.text
        complete = text[: text.rfind("\n")] if "\n" in text.lstrip("\n") else ""
        waited_ms = round((time.monotonic() - started) * 1000)
        if complete.strip():
            log.info(
                "deadline after %dms: using %d streamed lines", waited_ms, complete.count("\n") + 1
            )
            self._timeouts_in_a_row = 0
            return _Outcome([self._cut(complete, finished)], {"http_ms": float(waited_ms)})
        self._timeouts_in_a_row += 1
        log.info("no answer from %s within %dms", self.shown_url, waited_ms)
        if self._timeouts_in_a_row >= _TIMEOUTS_BEFORE_ERROR:
            raise BackendError(
                f"the model server at {self.shown_url} is too slow: no answer within "
                f"{waited_ms} ms ({self._timeouts_in_a_row} times in a row); raise "
                "completion.timeoutMs or use a faster model"
            )
        return _Outcome([])

    async def _raise_for_status(self, response: httpx.Response, chat: bool) -> None:
        body = b""
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) >= _MAX_ERROR_BODY:
                break
        # Named by the address asked: a chat goes to another endpoint than completions.
        where = redacted_url(str(response.request.url)) if chat else self.shown_url
        failure = status_failure(response, body, where, self.settings, self.secrets, chat)
        if failure.backoff_s is not None:
            self._blocked_until = time.monotonic() + failure.backoff_s
            self._blocked_message = failure.message
        raise BackendError(failure.message)
