"""What to suggest when nothing long enough matches: a cache n-gram model of the open code.

Where the text before the cursor occurs nowhere at the length the lookup requires, the
lookup has nothing to copy. Cache-based n-gram models of code (Hellendoorn & Devanbu, FSE
2017) still predict the next token from shorter contexts in the same project. This one
writes the rest of the line piece by piece (a word, a run of spaces or one other character,
as the confidence cut splits text): the piece that most often follows the longest of 24, 16,
12, 8, 6 or 4 characters before it that occurs at least twice in the text the lookup reads.
The chance of the text so far is the product of each chosen piece's share of its places. The
suggestion is cut where length × chance is largest (among starts with a chance of at least
0.3), and ``written_wins`` decides whether it is shown: where the lookup shows nothing, when
its chance is at least 0.5; in place of a copy whose estimated chance of acceptance is below
0.3, when its own is at least 0.7.

The thresholds are chosen on the acceptance benchmark's development seed
(docs/benchmarks.md, the lookup study).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ghostcomplete.backends.lookup.confidence import ContinuationCounts, Cut

_ORDERS = (24, 16, 12, 8, 6, 4)
_MIN_PLACES = 2
_PLACES_READ = 300
_MAX_PIECES = 12
_SEARCH_CHANCE = 0.3
_MIN_CHARS = 4
# Shown where the lookup has nothing to show at this chance or more.
MIN_CHANCE = 0.5
# Shown instead of a copy whose chance of acceptance is below OVERRIDE_BELOW.
OVERRIDE_CHANCE = 0.7
OVERRIDE_BELOW = 0.3


def written_wins(written: Cut | None, copied_chance: float | None) -> bool:
    """Whether the n-gram's suggestion is shown: ``copied_chance`` is the lookup's estimated
    chance of acceptance of what it would show, None when it shows nothing."""
    if written is None:
        return False
    if copied_chance is None:
        return written.confidence >= MIN_CHANCE
    return written.confidence >= OVERRIDE_CHANCE and copied_chance < OVERRIDE_BELOW


def written_first(copied_chance: float | None, write: Callable[[], Cut | None]) -> Cut | None:
    """The n-gram's suggestion where it goes before the lookup's copy (``written_wins``),
    else None. ``copied_chance`` is the copy's estimated chance of acceptance, None when the
    lookup shows nothing; ``write`` (the n-gram's suggestion) is only called when it could
    win."""
    if copied_chance is not None and copied_chance >= OVERRIDE_BELOW:
        return None
    written = write()
    return written if written_wins(written, copied_chance) else None


def ngram_continuation(
    counts: ContinuationCounts,
    before: str,
    min_chance: float = _SEARCH_CHANCE,
    deadline: float | None = None,
) -> Cut | None:
    """The rest of the line after ``before`` (the text up to the cursor) most worth showing,
    written by majority vote of the places its last characters occur; None when no start of
    at least 4 non-blank characters has a chance of at least ``min_chance``."""
    before = before[-_ORDERS[0] :]
    written = ""
    chance = 1.0
    best: Cut | None = None
    for _ in range(_MAX_PIECES):
        if deadline is not None and time.monotonic() > deadline:
            break
        context = before + written
        vote = None
        for order in _ORDERS:
            if order > len(context):
                continue
            tally, read = counts.followers(context[-order:], _PLACES_READ)
            if read >= _MIN_PLACES:
                piece, count = tally.most_common(1)[0]
                vote = count / read, piece
                break
        if vote is None:
            break
        share, piece = vote
        if piece.startswith("\n"):
            break  # the rest of the line only
        written += piece
        chance *= share
        if chance < min_chance:
            break
        shown = written.rstrip()
        if len(shown.strip()) >= _MIN_CHARS and (
            best is None or len(shown) * chance > len(best.text) * best.confidence
        ):
            best = Cut(shown, chance)
    return best
