"""What became of each offered suggestion: shown, accepted, rejected or noise.

Rules (times multiplied by ``time_scale``):
- shown: the client's didShowCompletion. A client that never sends one (Neovim 0.12's
  built-in client) shows the first item of each answer; it is inferred shown at the moment
  it was offered, and recorded so (``value`` = 1) when its fate is known.
- accepted / partially accepted: the item's command / didPartiallyAcceptCompletion.
- superseded (a newer request for the same document) or dismissed (the document closed):
  a shown item gone within 250 ms is noise, the user cannot have read it; otherwise rejected.
- neither accepted nor superseded within 10 s of being shown: rejected ("timeout").
- typed through (the next answer for the document is the rest of this one, because the user
  typed its beginning): neither accepted nor rejected; the rest lives on as a new item.
- a partially accepted item is never rejected afterwards.

Pure: callers pass ``now`` (monotonic seconds); ``wall_clock`` stamps the events.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ghostcomplete.telemetry.events import ItemEvent, Outcome

NOISE_S = 0.25
REJECT_AFTER_S = 10.0
_MAX_OPEN = 2000
_MAX_REMEMBERED_ACCEPTS = 2000


@dataclass
class OpenItem:
    item_id: str
    completion_id: str
    uri: str
    index: int
    length: int
    offered_at: float  # monotonic
    offered_wall: float
    shown_at: float | None = None
    partially_accepted: int = 0


class SuggestionLifecycle:
    """Open (unresolved) items by id, and the events their fates produce."""

    def __init__(
        self, time_scale: float = 1.0, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.time_scale = time_scale
        self.wall_clock = wall_clock
        # Set by the first didShowCompletion: from then on only explicit shows count.
        self.client_sends_show = False
        self._open: OrderedDict[str, OpenItem] = OrderedDict()
        self._accepted: OrderedDict[str, None] = OrderedDict()

    def offered(self, item: OpenItem) -> list[ItemEvent]:
        self._open[item.item_id] = item
        events: list[ItemEvent] = []
        while len(self._open) > _MAX_OPEN:
            _, oldest = self._open.popitem(last=False)
            events += self._resolve(oldest, item.offered_at, "timeout")
        return events

    def get(self, item_id: str) -> OpenItem | None:
        return self._open.get(item_id)

    def superseded(self, uri: str, now: float, reason: str = "superseded") -> list[ItemEvent]:
        """Every open item of ``uri`` is gone from the screen (a newer request, a close)."""
        events: list[ItemEvent] = []
        for item in [i for i in self._open.values() if i.uri == uri]:
            del self._open[item.item_id]
            events += self._resolve(item, now, reason)
        return events

    def typed_through(self, uri: str, now: float) -> list[ItemEvent]:
        """The open items of ``uri`` carry on as the rest the user has not typed yet."""
        events: list[ItemEvent] = []
        for item in [i for i in self._open.values() if i.uri == uri]:
            del self._open[item.item_id]
            shown_at = self._shown_at(item)
            if shown_at is None or item.partially_accepted:
                continue
            events += self._infer_shown(item)
            visible_ms = round(max(0.0, now - shown_at) * 1000)
            events.append(
                ItemEvent(item.item_id, Outcome.TYPED_THROUGH, self.wall_clock(), visible_ms)
            )
        return events

    def shown(self, item_id: str, now: float) -> list[ItemEvent]:
        self.client_sends_show = True
        item = self._open.get(item_id)
        if item is None or item.shown_at is not None:
            return []
        item.shown_at = now
        return [ItemEvent(item_id, Outcome.SHOWN, self.wall_clock())]

    def accepted(self, item_id: str, now: float) -> list[ItemEvent] | None:
        """The events of accepting ``item_id``; None when it is unknown or already accepted."""
        if item_id in self._accepted:
            return None
        item = self._open.pop(item_id, None)
        if item is None:
            return None
        self._accepted[item_id] = None
        while len(self._accepted) > _MAX_REMEMBERED_ACCEPTS:
            self._accepted.popitem(last=False)
        events = self._infer_shown(item)
        events.append(ItemEvent(item_id, Outcome.ACCEPTED, self.wall_clock(), item.length))
        # The other candidates of the same answer were not chosen: they leave quietly.
        for sibling in [i for i in self._open.values() if i.completion_id == item.completion_id]:
            del self._open[sibling.item_id]
        return events

    def partially_accepted(self, item_id: str, length: int, now: float) -> list[ItemEvent]:
        item = self._open.get(item_id)
        if item is None or length <= item.partially_accepted:
            return []
        item.partially_accepted = length
        events = self._infer_shown(item)
        events.append(ItemEvent(item_id, Outcome.PARTIALLY_ACCEPTED, self.wall_clock(), length))
        return events

    def expire(self, now: float) -> list[ItemEvent]:
        """Reject items shown for REJECT_AFTER_S with no decision."""
        events: list[ItemEvent] = []
        limit = REJECT_AFTER_S * self.time_scale
        for item in list(self._open.values()):
            shown_at = self._shown_at(item)
            if shown_at is not None and now - shown_at >= limit:
                del self._open[item.item_id]
                events += self._resolve(item, now, "timeout")
            elif now - item.offered_at >= limit:  # offered, never shown: forget it
                del self._open[item.item_id]
        return events

    def __len__(self) -> int:
        return len(self._open)

    # --- internals ----------------------------------------------------------------------
    def _shown_at(self, item: OpenItem) -> float | None:
        if item.shown_at is not None:
            return item.shown_at
        if not self.client_sends_show and item.index == 0:
            return item.offered_at
        return None

    def _infer_shown(self, item: OpenItem) -> list[ItemEvent]:
        if item.shown_at is not None:
            return []
        item.shown_at = item.offered_at
        return [ItemEvent(item.item_id, Outcome.SHOWN, item.offered_wall, 1)]

    def _resolve(self, item: OpenItem, now: float, reason: str) -> list[ItemEvent]:
        if item.partially_accepted:
            return []
        shown_at = self._shown_at(item)
        if shown_at is None:
            return []  # never on screen
        events = self._infer_shown(item)
        visible_s = max(0.0, now - shown_at)
        kind = Outcome.NOISE if visible_s < NOISE_S * self.time_scale else Outcome.REJECTED
        events.append(
            ItemEvent(item.item_id, kind, self.wall_clock(), round(visible_s * 1000), reason)
        )
        return events
