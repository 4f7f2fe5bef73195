"""What to suggest when nothing long enough matches: a cache n-gram model of the open code.

Where the text before the cursor occurs nowhere at the length the lookup requires, the
lookup has nothing to copy. Cache-based n-gram models of code (Hellendoorn & Devanbu, FSE
2017) still predict the next token from shorter contexts in the same project. This one
writes the rest of the line piece by piece (a word, a run of spaces or one other character,
as the confidence cut splits text): the piece that most often follows the longest of 24, 16,
12, 8, 6 or 4 characters before it that occurs at least twice in the text the lookup reads.
The chance of the text so far is the product of each chosen piece's share of its places. The
suggestion is cut where length × chance is largest, and shown only when that chance is at
least ``MIN_CHANCE``.

Measured on the acceptance benchmark's Python tasks where the lookup's default shows nothing
(bench/RESULTS.md, "n-gram fallback"): the gate 0.5 was chosen on seed 1.
"""

from __future__ import annotations

import time

from ghostcomplete.backends.lookup_confidence import ContinuationCounts, Cut

_ORDERS = (24, 16, 12, 8, 6, 4)
_MIN_PLACES = 2
_PLACES_READ = 300
_MAX_PIECES = 12
MIN_CHANCE = 0.5
_MIN_CHARS = 4


def ngram_continuation(
    counts: ContinuationCounts,
    before: str,
    min_chance: float = MIN_CHANCE,
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
                vote = tally.most_common(1)[0][1] / read, tally.most_common(1)[0][0]
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
