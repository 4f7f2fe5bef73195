"""How far to trust a copied continuation: cut it where it stops being likely.

The lookup backend copies what followed the longest match of the text before the cursor.
The start of that copy is usually right and its end often wrong: the other occurrence goes
on with its own arguments, names and lines. A suggestion is only taken whole, so one wrong
word costs all of it.

This module estimates, piece by piece (a word, a run of spaces, a line break with its
indentation, or one other character), the chance that the user's code goes on with that
piece. The evidence is a count in the text the lookup reads (prefix, suffix, snippets, recent
files), as in cache-based n-gram models of code: of the places where the last *k* characters
before the piece occur, the share followed by the piece. *k* is the longest of 3, 6, 12, 24,
48 or 96 characters that occurs at least twice (so that the share means something), or occurs
once when nothing longer does.

A share is not yet a chance: measured on the acceptance benchmark, a word that only 0 to 20 %
of the places go on with is still right about 45 % of the time once the text before it was
right (punctuation about 75 %). So each kind of piece has a floor, and the chance is
``floor + (1 - floor) × share``.

Where the places disagree, the place the copy comes from is not one vote among them: it
matched the text before the cursor, and the copy up to the piece, for far longer than the
*k* characters counted. A docstring copied from a twin method goes on like its twin even
where ten other docstrings that begin alike do not. So a piece whose chance is below 0.97 is
recalibrated by a logistic model (``place_chance``) over that chance, how many times longer
the place matched than *k*, and how much of the copy was typed before it. The chance of the
text up to a piece is the product of its pieces' chances, and the suggestion is cut where
``length × chance`` (the characters a user is expected to take) is largest. Words that occur
in the last 300 characters before the cursor get a higher floor (they were right more often),
and a suggestion never ends inside brackets it opened or after an operator or a dot, which
would leave a statement half written.

The recalibration and the chance of acceptance are fitted per language family
(``FITS``) on the development projects of the benchmark corpus and judged on its test
projects (docs/benchmarks.md, "Development and test"). A family with no fit gets no cut and
no gate: the lookup backend falls back to the plain lookup for it (``fit_for``).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# A word, a run of spaces or tabs, a line break with the next line's indentation, or one
# other character: the places where a suggestion may be cut.
_PIECE = re.compile(r"\w+|[ \t]+|\n[ \t]*|.", re.DOTALL)
_ORDERS = (3, 6, 12, 24, 48, 96)
_MAX_ORDER = _ORDERS[-1]
# The chance of a piece that few of the places go on with, by kind of piece.
_FLOOR_WORD = 0.32
_FLOOR_NEAR_WORD = 0.45  # a word that occurs in the last _NEAR_CHARS before the cursor
_NEAR_CHARS = 300
_FLOOR_CLOSING = 0.68  # ) ] }
_FLOOR_LINE_BREAK = 0.48
_FLOOR_SPACE = 0.52
_FLOOR_OTHER = 0.6
# Below this chance nothing after the piece can win: stop estimating.
_HOPELESS = 1e-3
_SEPARATOR = "\x00"
_WORD = re.compile(r"\w+")
_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")
# A suggestion does not stop after an operator or a dot: it would leave a statement unfinished.
_DANGLING = tuple("=+-*/%<>&|^~.@!")
# Where the places disagree (a counted chance below this), the chance of a copied piece is
# recalibrated by how far the place copied from matched (``place_chance``): a logistic model
# over ``place_features`` of the pieces of the backend's copies up to their first wrong one,
# fitted on the development projects by `python -m ghostcomplete.bench.lookup_study --split
# dev --family python --fit` (Python's; each family's is in ``FITS``).
PLACE_CALIBRATION = (-1.101, 0.976, 1.299, 0.554, 2.066)
RECALIBRATED_BELOW = 0.97
# Contexts with more places than this are counted without overlaps (fast, nearly the same).
_EXACT_PLACES = 500


@dataclass(frozen=True)
class Cut:
    text: str
    # The estimated chance that the user's code goes on with the whole of ``text``.
    confidence: float


@dataclass(frozen=True)
class PieceEvidence:
    chance: float  # estimated chance that the piece comes next
    share: float  # of the places of the context, the share the piece follows
    order: int  # characters of context those places share (0: it occurs nowhere)


class ContinuationCounts:
    """Counts of text in the sources the lookup reads; the first source ends at the cursor."""

    def __init__(self, sources: Sequence[str]) -> None:
        # A NUL never occurs in a needle (binary files are never context), so no count
        # spans two sources.
        self._text = _SEPARATOR.join(sources)
        self._before_cursor = sources[0] if sources else ""
        # The cuts of one request's candidates start from the same text before the cursor,
        # and so ask about the same contexts: each is searched once.
        self._places_seen: dict[tuple[str, int], int] = {}
        self._shares_seen: dict[tuple[str, str], float] = {}

    def _place_ends(self, needle: str) -> Iterator[int]:
        """Where the places of ``needle`` end, in order, overlapping ones included. The text
        right before the cursor is not a place: nothing followed it yet."""
        text, cursor, length = self._text, len(self._before_cursor), len(needle)
        at = text.find(needle)
        while at >= 0:
            if at + length != cursor:
                yield at + length
            at = text.find(needle, at + 1)

    def _places(self, needle: str, enough: int) -> int:
        """Places where ``needle`` occurs, up to ``enough`` (the search stops there)."""
        seen = self._places_seen.get((needle, enough))
        if seen is not None:
            return seen
        found = 0
        for _ in self._place_ends(needle):
            found += 1
            if found >= enough:
                break
        self._places_seen[needle, enough] = found
        return found

    def _share(self, needle: str, piece: str) -> float:
        """The share of the places of ``needle`` that ``piece`` follows, overlapping places
        included (in repeated lines a context and its continuation often overlap the next
        place, which ``str.count`` would miss)."""
        seen = self._shares_seen.get((needle, piece))
        if seen is None:
            seen = self._shares_seen[needle, piece] = self._count_share(needle, piece)
        return seen

    def _count_share(self, needle: str, piece: str) -> float:
        text = self._text
        places = followed = 0
        for end in self._place_ends(needle):
            places += 1
            followed += text.startswith(piece, end)
            if places > _EXACT_PLACES:
                # A context this common (a run of spaces): counting without overlaps is
                # nearly the same, and runs in C.
                places = text.count(needle) - self._before_cursor.endswith(needle)
                followed = min(text.count(needle + piece), places)
                break
        return followed / places if places else 0.0

    def followers(self, needle: str, limit: int) -> tuple[Counter[str], int]:
        """The pieces that follow ``needle`` at up to ``limit`` of its places, and how many
        places were read."""
        text = self._text
        tally: Counter[str] = Counter()
        read = 0
        for end in self._place_ends(needle):
            if read >= limit:
                break
            piece = _PIECE.match(text, end)
            if piece is not None and _SEPARATOR not in piece.group():
                tally[piece.group()] += 1
                read += 1
        return tally, read

    def chance(self, context: str, piece: str, near: frozenset[str] = frozenset()) -> float:
        """Estimated chance that ``piece`` comes next after ``context``; ``near`` are the
        words just before the cursor, which a next word is more often one of."""
        return self.evidence(context, piece, near).chance

    def evidence(
        self, context: str, piece: str, near: frozenset[str] = frozenset()
    ) -> PieceEvidence:
        """``chance`` with what it rests on: the share of the places that ``piece`` follows
        and the length of the context those places were counted for."""
        chosen = ""
        for order in _ORDERS:
            if order > len(context):
                break
            needle = context[-order:]
            found = self._places(needle, 2)
            if found < 1:
                break
            if found >= 2 or not chosen:
                chosen = needle
            if found < 2:
                break
        if not chosen:
            return PieceEvidence(0.0, 0.0, 0)
        floor = _floor(piece, near)
        share = self._share(chosen, piece)
        return PieceEvidence(floor + (1 - floor) * share, share, len(chosen))


def _floor(piece: str, near: frozenset[str]) -> float:
    if piece[0].isalnum() or piece[0] == "_":
        return _FLOOR_NEAR_WORD if piece in near else _FLOOR_WORD
    if piece[0] in _CLOSING:
        return _FLOOR_CLOSING
    if piece[0] == "\n":
        return _FLOOR_LINE_BREAK
    if piece.isspace():
        return _FLOOR_SPACE
    return _FLOOR_OTHER


def near_words(before: str) -> frozenset[str]:
    """The words of the last _NEAR_CHARS before the cursor: a next word is more often one of
    them (their pieces get _FLOOR_NEAR_WORD)."""
    return frozenset(_WORD.findall(before[-_NEAR_CHARS:]))


def place_features(evidence: PieceEvidence, place_match: int, typed: int) -> tuple[float, ...]:
    """What ``PLACE_CALIBRATION`` weighs: (1, logit of the counted chance, how much longer
    the place copied from matched than the context counted (log ratio / 3), log(1 + characters
    of the copy already typed) / 5, that ratio times the share of places that go on
    otherwise)."""
    chance = min(max(evidence.chance, 1e-3), 1 - 1e-3)
    longer = math.log(max(place_match, 1) / max(evidence.order, 1)) / 3
    return (
        1.0,
        math.log(chance / (1 - chance)),
        longer,
        math.log1p(typed) / 5,
        longer * (1 - evidence.share),
    )


def place_chance(
    evidence: PieceEvidence,
    place_match: int,
    typed: int,
    weights: Sequence[float] = PLACE_CALIBRATION,
) -> float:
    """The chance that a copied piece is right, once the copy was right up to it: the
    counted chance, recalibrated where the places disagree (below RECALIBRATED_BELOW) by
    how far the place copied from (``place_match`` characters before the piece) matched
    beyond the context the places were counted for."""
    if not 0.0 < evidence.chance < RECALIBRATED_BELOW:
        return evidence.chance
    return chance_of(place_features(evidence, place_match, typed), weights)


def piece_evidence(
    text: str,
    before: str,
    counts: ContinuationCounts,
    near: frozenset[str],
    deadline: float | None = None,
) -> Iterator[tuple[re.Match[str], PieceEvidence]]:
    """Each piece of ``text`` (typed after ``before``) with the evidence that it comes next,
    the copy before it taken as typed; counted only when asked for, until ``deadline``."""
    before = before[-_MAX_ORDER:]
    for match in _PIECE.finditer(text):
        if deadline is not None and time.monotonic() > deadline:
            return
        yield match, counts.evidence(before + text[: match.start()], match.group(), near)


def confident_cut(
    text: str,
    before: str,
    counts: ContinuationCounts,
    matched: int = 0,
    min_chars: int = 4,
    deadline: float | None = None,
    balanced: bool = True,
    place_weights: Sequence[float] = PLACE_CALIBRATION,
) -> Cut | None:
    """The start of ``text`` (typed after ``before``) most worth showing, or None when no
    start of at least ``min_chars`` non-blank characters (or all of a shorter ``text``) has a
    chance above zero. ``matched`` is how many characters before the cursor also preceded
    ``text`` where it was copied from; 0 (not known) leaves each piece at its counted chance.
    ``place_weights`` are the language family's ``PLACE_CALIBRATION``.
    """
    min_chars = min(min_chars, len(text.strip()))
    best: Cut | None = None
    best_value = 0.0
    chance = 1.0
    opened = 0  # brackets the suggestion opened and has not closed yet
    for match, evidence in piece_evidence(text, before, counts, near_words(before), deadline):
        piece, before_piece, typed = match.group(), match.start(), match.end()
        if matched:
            chance *= place_chance(evidence, matched + before_piece, before_piece, place_weights)
        else:
            chance *= evidence.chance
        if chance < _HOPELESS or len(text) * chance <= best_value:
            break  # the chance only falls: no longer start can be worth more
        if piece in _OPENING:
            opened += 1
        elif piece in _CLOSING:
            opened = max(0, opened - 1)
        shown = text[:typed].rstrip()
        if balanced and typed < len(text) and (opened or shown.endswith(_DANGLING)):
            continue
        if not shown.strip() or len(shown.strip()) < min_chars:
            continue
        value = len(shown) * chance
        if value > best_value:
            best, best_value = Cut(shown, chance), value
    return best


# The chance that a suggestion is accepted whole, from what the lookup knows of it: a
# logistic model over (1, logit of the cut's chance, similarity of the place's surroundings,
# its lead over the best place that goes on differently / 50 matched characters, whether
# another place goes on alike, log(1 + length) / 5). Fitted on the development projects by
# `python -m ghostcomplete.bench.lookup_study --split dev --family python --fit` (Python's;
# each family's is in ``FITS``).
CALIBRATION = (-2.133, 0.282, 1.559, 0.436, 0.618, 0.728)
_LEAD_CAP = 50.0


def acceptance_features(
    cut_chance: float, similarity: float, lead: float, agreeing: int, length: int
) -> tuple[float, ...]:
    chance = min(max(cut_chance, 1e-3), 1 - 1e-3)
    return (
        1.0,
        math.log(chance / (1 - chance)),
        similarity,
        min(max(lead, 0.0), _LEAD_CAP) / _LEAD_CAP,
        1.0 if agreeing >= 2 else 0.0,
        math.log1p(length) / 5,
    )


def chance_of(features: Sequence[float], weights: Sequence[float] = CALIBRATION) -> float:
    """The logistic model's chance for ``acceptance_features``."""
    z = sum(w * x for w, x in zip(weights, features, strict=True))
    return 1 / (1 + math.exp(-z))


def acceptance_chance(
    cut_chance: float,
    similarity: float,
    lead: float,
    agreeing: int,
    length: int,
    weights: Sequence[float] = CALIBRATION,
) -> float:
    """Estimated chance that the user takes a suggestion whole: the cut's ``cut_chance``,
    the ``similarity`` of the copied place's surroundings, its ``lead`` in score over the best
    place that goes on differently, how many places go on alike (``agreeing``, itself
    included), and the suggestion's ``length``; ``weights`` are the language family's
    ``CALIBRATION``."""
    features = acceptance_features(cut_chance, similarity, lead, agreeing, length)
    return chance_of(features, weights)


@dataclass(frozen=True)
class FamilyFit:
    """The weights the cut and the gate rest on, fitted for one language family."""

    place_calibration: tuple[float, ...]  # as PLACE_CALIBRATION
    calibration: tuple[float, ...]  # as CALIBRATION


# Fitted per language family (context.languages.family_of) on the development projects only
# (`lookup_study --split dev --family F --fit`). A family is listed only where its fit, with
# the default gate, beat the plain lookup on its development projects: a fit that cannot
# beat copying whole is no fit. "javascript" covers JavaScript and TypeScript.
FITS: dict[str, FamilyFit] = {
    "python": FamilyFit(PLACE_CALIBRATION, CALIBRATION),
    "javascript": FamilyFit(
        (-0.704, 1.15, 1.039, 0.399, 1.634),
        (-1.187, 0.306, 0.059, 0.491, -0.203, 0.498),
    ),
}


def fit_for(family: str) -> FamilyFit | None:
    """The family's fitted weights, or None where there is no fit: the lookup then makes no
    cut and no gate and copies as the plain lookup does."""
    return FITS.get(family)
