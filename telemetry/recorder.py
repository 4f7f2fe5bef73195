"""The one object the server talks to: lifecycle rules + still-in-code checks + the store.

The server calls it from its handlers with plain values (no LSP types) and never waits on
it: events go to the store's queue. With telemetry off nothing is written anywhere; the
counters of this session (``session_counts``) are still kept in memory for the
``ghostcomplete.stats`` command.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ghostcomplete.completion.offers import Offer, OfferLedger
from ghostcomplete.context.exclusion import path_of_uri
from ghostcomplete.context.positions import offset_at, utf16_length
from ghostcomplete.telemetry.events import (
    ItemEvent,
    Offered,
    Outcome,
    Requested,
    RetentionChecked,
    SnippetUse,
    TelemetryEvent,
    text_digest,
)
from ghostcomplete.telemetry.lifecycle import OpenItem, SuggestionLifecycle
from ghostcomplete.telemetry.retention import RetentionTracker
from ghostcomplete.telemetry.stats import collect
from ghostcomplete.telemetry.store import TelemetryStore

if TYPE_CHECKING:
    from ghostcomplete.completion.pipeline import CompletionResult

log = logging.getLogger("ghostcomplete.telemetry")

# Testing knob: multiplies every telemetry interval (still-in-code checks, the 10 s reject
# timeout, the 250 ms noise limit). 0.01 runs the 10-minute check after 6 s.
TIME_SCALE_VARIABLE = "GHOSTCOMPLETE_TELEMETRY_TIME_SCALE"

P = ParamSpec("P")
R = TypeVar("R")


def _never_raises(default: R) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Telemetry must not break a completion: a bug here is logged, never raised."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except Exception:
                log.exception("telemetry: %s failed", function.__name__)
                return default

        return guarded

    return wrap


def _snippet_use(snippet: Any, capture_content: bool) -> SnippetUse:
    """A (uri, start_line, score) tuple or an object with those attributes."""
    if isinstance(snippet, tuple):
        source, start, score = snippet
    else:
        source, start, score = snippet.uri, snippet.start_line, snippet.score
    return SnippetUse(
        str(source) if capture_content else text_digest(str(source)), int(start), float(score)
    )


def time_scale_from_environment() -> float:
    raw = os.environ.get(TIME_SCALE_VARIABLE, "")
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        log.warning("%s=%r is not a number; using 1", TIME_SCALE_VARIABLE, raw)
        return 1.0
    return scale if scale > 0 else 1.0


class TelemetryRecorder:
    """``read_document(uri)``: the text of an open document, or None (the file on disk is
    read then). ``offers``: the ledger of the items given to the client (the completion
    session's), where an accepted item is found. ``on_problem(message)`` is called on the
    event loop that last called ``configure`` (the store reports from its writer thread)."""

    def __init__(
        self,
        read_document: Callable[[str], str | None] = lambda uri: None,
        offers: OfferLedger | None = None,
        on_problem: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        time_scale: float | None = None,
    ) -> None:
        self.read_document = read_document
        self.offers = offers if offers is not None else OfferLedger()
        self.on_problem = on_problem
        self.clock = clock
        self.wall_clock = wall_clock
        self.time_scale = time_scale_from_environment() if time_scale is None else time_scale
        self.lifecycle = SuggestionLifecycle(self.time_scale, wall_clock)
        self.retention = RetentionTracker(time_scale=self.time_scale, wall_clock=wall_clock)
        self.counts: Counter[str] = Counter()
        self.store: TelemetryStore | None = None
        self.enabled = False
        self.capture_content = False
        # When a newer request for a document started; what was shown there is resolved when
        # that request answers (typed through, or superseded).
        self._superseded_at: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        atexit.register(self.close)

    # --- configuration ------------------------------------------------------------------
    @_never_raises(None)
    def configure(self, enabled: bool, path: Path, capture_content: bool) -> None:
        """Open, reopen or close the store to match the settings (never blocks on disk)."""
        self.capture_content = capture_content
        self.enabled = enabled
        if self.store is not None and (not enabled or self.store.path != path):
            old, self.store = self.store, None
            old.close(timeout=0)  # the writer thread commits what it has and stops
        if enabled and self.store is None:
            self.store = TelemetryStore(path, on_problem=self._problem)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if enabled and self._loop is not None and self._ticker is None:
            self._ticker = self._loop.create_task(self._tick_forever())

    def _problem(self, message: str) -> None:
        """From the writer thread: hand the message to the event loop."""
        if self.on_problem is None:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            self.on_problem(message)
        else:
            loop.call_soon_threadsafe(self.on_problem, message)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_s)
            try:
                self.tick()
            except Exception:  # telemetry must never take the server down
                log.exception("telemetry tick failed")

    def close(self, timeout: float = 2.0) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self.store is not None:
            self.store.close(timeout)
            self.store = None

    @property
    def path(self) -> Path | None:
        return self.store.path if self.store is not None else None

    # --- events from the server ---------------------------------------------------------
    @_never_raises(None)
    def request_started(self, uri: str) -> None:
        """A new request for ``uri``: whatever was shown there is gone from the screen."""
        self._superseded_at.setdefault(uri, self.clock())

    @_never_raises(list[str]())
    def completed(self, result: CompletionResult) -> list[str]:
        """Record a finished request and its items; returns the ids of the items."""
        request = result.request
        document = request.document if request is not None else None
        uri = document.uri if document is not None else ""
        language = document.language_id if document is not None else ""
        texts, cache = result.texts, result.cache
        now, wall = self.clock(), self.wall_clock()
        self.counts["requested"] += 1
        gone_at = self._superseded_at.pop(uri, None)
        if gone_at is not None and cache == "typing":
            self._record_all(self.lifecycle.typed_through(uri, gone_at))
        elif gone_at is not None:
            self._record_all(self.lifecycle.superseded(uri, gone_at))
        uses = tuple(_snippet_use(snippet, self.capture_content) for snippet in result.snippets)
        events: list[TelemetryEvent] = [
            Requested(
                result.completion_id,
                wall,
                language,
                "automatic" if result.automatic else "invoked",
                result.backend,
                result.model,
                result.prompt_tokens,
                uses,
                dict(result.timings_ms),
                cache,
                result.skipped,
                len(texts),
            )
        ]
        item_ids = result.item_ids
        origins = result.origins
        for index, (item_id, text) in enumerate(zip(item_ids, texts, strict=True)):
            length = utf16_length(text)
            events.append(
                Offered(
                    item_id,
                    result.completion_id,
                    index,
                    length,
                    text.count("\n") + 1,
                    text_digest(text),
                    origins[index] if index < len(origins) else "",
                    text if self.capture_content else None,
                )
            )
            item = OpenItem(item_id, result.completion_id, uri, index, length, now, wall)
            events += self.lifecycle.offered(item)
            self.counts["offered"] += 1
        self._record_all(events)
        return item_ids

    @_never_raises(None)
    def shown(self, item_id: str) -> None:
        self._record_all(self.lifecycle.shown(item_id, self.clock()))

    @_never_raises(False)
    def accepted(self, item_id: str) -> bool:
        """The client inserted the item and ran its command. False when the item is unknown
        or was accepted already."""
        now = self.clock()
        events = self.lifecycle.accepted(item_id, now)
        if events is None:
            return False
        self._record_all(events)
        offer = self.offers.get(item_id)
        document = self.read_document(offer.uri) if offer is not None else None
        if offer is not None and document is not None and self.enabled:
            offset = _inserted_at(document, offer)
            self.retention.track(item_id, offer.uri, offer.text, document, offset, now)
        return True

    @_never_raises(False)
    def partially_accepted(self, item_id: str, length: int) -> bool:
        events = self.lifecycle.partially_accepted(item_id, length, self.clock())
        self._record_all(events)
        return bool(events)

    @_never_raises(None)
    def document_changed(self, uri: str, text: Callable[[], str]) -> None:
        """A document changed; ``text`` gives its new content (only asked for if watched)."""
        if self.retention.watches(uri):
            self.retention.document_changed(uri, text())

    @_never_raises(None)
    def document_closed(self, uri: str) -> None:
        self._superseded_at.pop(uri, None)
        self._record_all(self.lifecycle.superseded(uri, self.clock(), "dismissed"))

    @_never_raises(None)
    def tick(self) -> None:
        """Reject timed-out items and run the still-in-code checks that are due."""
        now = self.clock()
        self._record_all(self.lifecycle.expire(now))
        due = self.retention.next_due()
        if due is not None and now >= due:
            self._record_all(self.retention.check_due(now, self._current_text))

    def _current_text(self, uri: str) -> str | None:
        """The open document, else the file on disk (closed since the accept), else None."""
        text = self.read_document(uri)
        if text is not None:
            return text
        path = path_of_uri(uri)
        try:
            return path.read_text(encoding="utf-8", errors="replace") if path else None
        except OSError:
            return None

    @property
    def tick_interval_s(self) -> float:
        """How often ``tick`` should run: a second, scaled (at least every 10 ms)."""
        return max(0.01, self.time_scale)

    # --- reporting ----------------------------------------------------------------------
    def session_counts(self) -> dict[str, Any]:
        """This server's counts since it started (kept even with telemetry off)."""
        shown = self.counts["shown"] - self.counts["noise"] - self.counts["typed_through"]
        accepted = self.counts["accepted"]
        out: dict[str, Any] = {
            "requested": self.counts["requested"],
            "offered": self.counts["offered"],
            "shown": self.counts["shown"],
            "accepted": accepted,
            "partiallyAccepted": self.counts["partially_accepted"],
            "rejected": self.counts["rejected"],
            "noise": self.counts["noise"],
            "typedThrough": self.counts["typed_through"],
            "acceptanceRate": round(accepted / shown, 4) if shown > 0 else 0.0,
            "retentionChecks": self.counts["retention"],
            "retained": self.counts["retained"],
            "telemetry": "on" if self.enabled else "off",
        }
        if self.store is not None:
            out["database"] = str(self.store.path)
            out["written"] = self.store.written
            out["dropped"] = self.store.dropped
            out["droppedByReason"] = self.store.dropped_by_reason
            out["problem"] = self.store.problem
        return out

    def flush(self, timeout: float = 2.0) -> bool:
        return self.store.flush(timeout) if self.store is not None else False

    def summary(self) -> dict[str, Any]:
        """``session_counts`` plus, with telemetry on, the totals of the whole database
        under "recorded". Reads the disk: call it from a worker thread."""
        out = self.session_counts()
        store = self.store
        if store is not None and store.problem is None:
            store.flush(1.0)
            try:
                out["recorded"] = collect(store.path).total.to_json()
            except Exception as error:  # a report must not fail the command
                out["recorded"] = {"error": str(error)}
        return out

    # --- internals ----------------------------------------------------------------------
    def _record_all(self, events: Sequence[TelemetryEvent]) -> None:
        for event in events:
            if isinstance(event, ItemEvent):
                self.counts[event.kind.value] += 1
            elif isinstance(event, RetentionChecked):
                self.counts["retention"] += 1
                self.counts["retained"] += int(event.retained)
            if self.store is not None and self.enabled:
                self.store.record(event)


def _inserted_at(document: str, placed: Offer) -> int:
    """Where the accepted text went: at its LSP position if it is there, else the nearest
    occurrence, else that position anyway (the checks search around it)."""
    offset = offset_at(document, placed.line, placed.character, placed.encoding)
    if offset is None:
        offset = min(len(document), max(0, len(document) // 2))
    if document.startswith(placed.text, offset):
        return offset
    before = document.rfind(placed.text, 0, offset + len(placed.text))
    after = document.find(placed.text, offset)
    candidates = [c for c in (before, after) if c >= 0]
    return min(candidates, key=lambda c: abs(c - offset)) if candidates else offset


__all__ = ["Outcome", "TelemetryRecorder", "time_scale_from_environment"]
