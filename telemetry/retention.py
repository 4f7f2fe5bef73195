"""Still-in-code: is accepted text still where it went, minutes later?

After an accept, the tracker checks at 15 s, 30 s, 2 min, 5 min and 10 min. The text counts as
retained when some stretch of the document near the insertion point is within an edit
distance of half the accepted length. "Near" is the region the text went into, which follows
every later edit (each new version of the document is compared with the last one seen: common
prefix and suffix, so no positions, encodings or client cooperation are needed), widened by
half the accepted length (at least 16 characters) on each side.

Pure: no clock of its own (callers pass ``now``, monotonic seconds) and no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ghostcomplete.telemetry.events import RetentionChecked

CHECKS_S: tuple[int, ...] = (15, 30, 120, 300, 600)
MAX_DISTANCE_SHARE = 0.5
# How far around the tracked region to look, at least: the region follows every edit, so
# this stays small (a similar line a few lines away must not pass for the accepted text).
_SLACK_CHARS = 16
# The most text searched for one check (a region stretched by a large external change).
_MAX_WINDOW_CHARS = 20_000
_MAX_TRACKED = 200


def best_match_distance(pattern: str, text: str) -> int:
    """The smallest edit distance between ``pattern`` and any substring of ``text``
    (Sellers' algorithm; rows vectorised with numpy, so ~1 ms for 400 × 1,200 characters)."""
    if not pattern:
        return 0
    if pattern in text:
        return 0
    if not text:
        return len(pattern)
    window = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    columns = np.arange(len(window) + 1, dtype=np.int64)
    row = np.zeros(len(window) + 1, dtype=np.int64)  # a match may start anywhere
    for index, char in enumerate(pattern, start=1):
        mismatch = window != ord(char)
        candidate = np.empty_like(row)
        candidate[0] = index
        candidate[1:] = np.minimum(row[:-1] + mismatch, row[1:] + 1)
        # Insertions along the row: D[j] = min over k <= j of candidate[k] + (j - k).
        row = np.minimum.accumulate(candidate - columns) + columns
    return int(row.min())


def changed_span(old: str, new: str) -> tuple[int, int, int]:
    """(start, old_end, new_end): ``new`` is ``old`` with ``old[start:old_end]`` replaced by
    ``new[start:new_end]``; the smallest such span."""
    limit = min(len(old), len(new))
    low, high = 0, limit
    while low < high:  # longest common prefix, by halving (slices compare in C)
        middle = (low + high + 1) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle - 1
    prefix = low
    low, high = 0, limit - prefix
    while low < high:
        middle = (low + high + 1) // 2
        if old[len(old) - middle :] == new[len(new) - middle :]:
            low = middle
        else:
            high = middle - 1
    suffix = low
    return prefix, len(old) - suffix, len(new) - suffix


def shift_region(
    start: int, end: int, edit_start: int, edit_old_end: int, edit_new_end: int
) -> tuple[int, int]:
    """Where the region [start, end) is after an edit that replaced [edit_start, edit_old_end)
    with text ending at edit_new_end. Text typed right before or right after the region stays
    outside it; an edit that overlaps the region stretches or shrinks it."""
    delta = edit_new_end - edit_old_end
    if edit_old_end <= start:  # wholly before
        return start + delta, end + delta
    if edit_start >= end:  # wholly after
        return start, end
    new_start = min(start, edit_start)
    new_end = edit_new_end if edit_old_end >= end else end + delta
    return new_start, max(new_start, new_end)


@dataclass
class Tracked:
    item_id: str
    uri: str
    text: str
    start: int
    end: int
    accepted_at: float  # monotonic seconds
    due: list[int] = field(default_factory=lambda: list(CHECKS_S))


@dataclass
class RetentionTracker:
    """Accepted suggestions under watch, by document."""

    checks_s: Sequence[int] = CHECKS_S
    # Multiplies every check interval: 0.01 turns 10 minutes into 6 seconds (tests).
    time_scale: float = 1.0
    wall_clock: Callable[[], float] = field(default=lambda: 0.0)
    _tracked: dict[str, Tracked] = field(default_factory=dict)
    _texts: dict[str, str] = field(default_factory=dict)

    def track(
        self, item_id: str, uri: str, text: str, document: str, offset: int, now: float
    ) -> None:
        """Watch ``text``, inserted into ``document`` at ``offset`` (a character index)."""
        if not text.strip():
            return
        self._tracked[item_id] = Tracked(
            item_id, uri, text, offset, offset + len(text), now, list(self.checks_s)
        )
        self._texts[uri] = document
        while len(self._tracked) > _MAX_TRACKED:
            self._drop(next(iter(self._tracked)))

    def watches(self, uri: str) -> bool:
        return uri in self._texts

    def document_changed(self, uri: str, text: str) -> None:
        """The document's new full text: every region in it follows the edit."""
        old = self._texts.get(uri)
        if old is None or old is text:
            return
        start, old_end, new_end = changed_span(old, text)
        for tracked in self._tracked.values():
            if tracked.uri == uri:
                tracked.start, tracked.end = shift_region(
                    tracked.start, tracked.end, start, old_end, new_end
                )
        self._texts[uri] = text

    def next_due(self) -> float | None:
        """Monotonic time of the next check, if any."""
        times = [t.accepted_at + t.due[0] * self.time_scale for t in self._tracked.values()]
        return min(times) if times else None

    def check_due(
        self, now: float, read_document: Callable[[str], str | None]
    ) -> list[RetentionChecked]:
        """Run every check whose time has come. ``read_document(uri)`` gives the current text
        (an open document, or the file on disk), or None when there is none."""
        results: list[RetentionChecked] = []
        for tracked in list(self._tracked.values()):
            while tracked.due and now >= tracked.accepted_at + tracked.due[0] * self.time_scale:
                after = tracked.due.pop(0)
                results.append(self._check(tracked, after, read_document))
            if not tracked.due:
                self._drop(tracked.item_id)
        return results

    def _check(
        self, tracked: Tracked, after: int, read_document: Callable[[str], str | None]
    ) -> RetentionChecked:
        current = read_document(tracked.uri)
        length = len(tracked.text)
        if current is None:
            return RetentionChecked(
                tracked.item_id, after, self.wall_clock(), False, length, length, found=False
            )
        self.document_changed(tracked.uri, current)
        slack = max(_SLACK_CHARS, length // 2)  # as much as the distance may be
        low = max(0, tracked.start - slack)
        high = min(len(current), max(tracked.end, tracked.start + length) + slack)
        high = min(high, low + _MAX_WINDOW_CHARS)
        distance = best_match_distance(tracked.text, current[low:high])
        return RetentionChecked(
            tracked.item_id,
            after,
            self.wall_clock(),
            distance <= MAX_DISTANCE_SHARE * length,
            distance,
            length,
        )

    def _drop(self, item_id: str) -> None:
        tracked = self._tracked.pop(item_id, None)
        if tracked is not None and not any(t.uri == tracked.uri for t in self._tracked.values()):
            self._texts.pop(tracked.uri, None)

    def __len__(self) -> int:
        return len(self._tracked)
