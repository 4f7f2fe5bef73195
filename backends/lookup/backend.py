"""The lookup engine: a backend with zero weights.

It finds the longest stretch of text ending at the cursor that also occurs somewhere in the
current file, the snippets or the recently used files, and proposes what followed that stretch
there. Code repeats itself (call sites, record fields, test cases, tables), and on repetitive
code this is what a human would type next. Of the places that match, the one whose surrounding
lines share most identifiers with the cursor's wins; the copy is then cut where it stops being
likely and shown only when its chance of being accepted is high enough
(``lookup_confidence``), with the weights fitted for the file's language family; a family
with no fit gets the plain lookup (longest match, nearest place, whole copy).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from ghostcomplete.backends.base import Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup.confidence import (
    ContinuationCounts,
    acceptance_chance,
    confident_cut,
    fit_for,
)
from ghostcomplete.backends.lookup.ngram import ngram_continuation, written_first
from ghostcomplete.context.languages import family_of
from ghostcomplete.context.syntax import Scope
from ghostcomplete.postprocess.filters import scope_text

_QUERY_CHARS = 2000
# Places compared per source, and how they are compared.
_OCCURRENCES_PER_SOURCE = 16
_SIMILARITY_WEIGHT = 100.0
_AROUND_LINES = 5
AROUND_CHARS = 3000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_REFERENCE_CHARS = 1_000_000
MAX_DOCUMENT_CHARS = 500_000  # each side of the cursor
# What the confidence cut counts in, of the document, each side of the cursor: the cut
# searches its text once per piece, so all of a huge file would make it slow, and the text
# far from the cursor rarely changes the counts.
_COUNTED_DOCUMENT_CHARS = 100_000


@dataclass(frozen=True)
class Occurrence:
    """One place in a source where the text before the cursor occurs."""

    length: int  # characters matched before the cursor
    source: int  # index of the source (0 = the text before the cursor)
    nth: int  # 0 = the last occurrence in that source, the nearest for the prefix
    text: str  # what followed it there, cut to the line or block
    # Share of the identifiers of the lines around it that are also around the cursor.
    similarity: float

    @property
    def score(self) -> float:
        """Matched characters, plus up to _SIMILARITY_WEIGHT for surroundings that look the
        same: of two places that match alike, the one in similar code goes on alike."""
        return self.length + _SIMILARITY_WEIGHT * self.similarity


def longest_match(query: str, source: str, min_length: int) -> tuple[int, int]:
    """(length, end) of the longest end of ``query`` found in ``source`` with at least one
    character after it; (0, -1) when even ``min_length`` characters are not found.

    A match of length L implies matches of every shorter length, so the search gallops up
    and then bisects: about 2·log2(L) substring searches, each in C.
    """
    limit = len(source) - 1
    if limit < min_length or len(query) < min_length:
        return 0, -1

    def end_of(length: int) -> int:
        at = source.rfind(query[-length:], 0, limit)
        return -1 if at < 0 else at + length

    best_end = end_of(min_length)
    if best_end < 0:
        return 0, -1
    good, bad = min_length, None
    probe = min_length * 2
    while probe <= len(query):
        end = end_of(probe)
        if end < 0:
            bad = probe
            break
        good, best_end = probe, end
        probe *= 2
    if bad is None:
        bad = len(query) + 1
        if good != len(query):
            end = end_of(len(query))
            if end >= 0:
                return len(query), end
    while bad - good > 1:
        middle = (good + bad) // 2
        end = end_of(middle)
        if end >= 0:
            good, best_end = middle, end
        else:
            bad = middle
    return good, best_end


def required_match(line_prefix: str) -> int:
    """How long a match must be to be trusted: the typed part of the line (up to 10 chars),
    or across the line break and into the previous line when the line is blank so far."""
    typed = line_prefix.lstrip()
    if typed:
        return max(4, min(len(typed), 10))
    return len(line_prefix) + 1 + 2


def continuation_for(text: str, scope: Scope, line_prefix: str, max_lines: int) -> str:
    """Cut what followed a match to the line (or block, of at most ``max_lines`` lines and
    without trailing blank ones) the cursor is on, as the server's filters cut suggestions."""
    kept = scope_text(text, scope, line_prefix)
    if scope is Scope.LINE:
        return kept
    lines = kept.split("\n")[: max(1, max_lines)]
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def reindented(text: str) -> str:
    """What followed a match that ended part way into a deeper place's indentation, moved
    left by the rest of it: the copy lines up with the cursor as a human would paste it."""
    first_end = text.find("\n")
    first = text if first_end < 0 else text[:first_end]
    extra = first[: len(first) - len(first.lstrip(" \t"))]
    if not extra or not first.strip():
        return text
    lines = text.split("\n")
    return "\n".join([lines[0][len(extra) :]] + [line.removeprefix(extra) for line in lines[1:]])


def surrounding_identifiers(before: str, after: str) -> frozenset[str]:
    """Identifiers of the lines around a place: up to _AROUND_LINES whole lines before the
    line it is on (``before`` ends on that line) and after the line it ends on (``after``
    starts on it)."""
    lines = before.split("\n")[-_AROUND_LINES - 1 : -1] + after.split("\n")[1 : _AROUND_LINES + 1]
    return frozenset(_IDENTIFIER.findall("\n".join(lines)))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two identifier sets (0 when both are empty)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def find_occurrences(
    query: str,
    sources: Sequence[str],
    around_cursor: frozenset[str],
    scope: Scope,
    max_lines: int,
    max_chars: int,
    deadline: float | None = None,
) -> list[Occurrence]:
    """Every place (up to _OCCURRENCES_PER_SOURCE per source, nearest the end first) of the
    longest end of ``query`` each source holds, with what followed it; best first."""
    line_prefix = query[query.rfind("\n") + 1 :]
    need = required_match(line_prefix)
    # A cursor after the indentation alone matches deeper places part way into theirs.
    indented_only = bool(line_prefix) and not line_prefix.strip()
    found: list[Occurrence] = []
    for index, source in enumerate(sources):
        if deadline is not None and time.monotonic() > deadline:
            break
        length, end = longest_match(query, source, need)
        if length == 0:
            continue
        needle, at, nth = query[-length:], end - length, 0
        while at >= 0 and nth < _OCCURRENCES_PER_SOURCE:
            after = at + length
            raw = source[after : after + max_chars * 2]
            if indented_only:
                raw = reindented(raw)
            text = continuation_for(raw, scope, line_prefix, max_lines)[:max_chars].rstrip("\r")
            if text.strip():
                around = surrounding_identifiers(
                    source[max(0, at - AROUND_CHARS) : after],
                    source[after + len(text) : after + len(text) + AROUND_CHARS],
                )
                found.append(
                    Occurrence(length, index, nth, text, similarity(around, around_cursor))
                )
            nth += 1
            at = source.rfind(needle, 0, after - 1)
    found.sort(key=lambda o: (-o.score, o.source, o.nth))
    return found


def nearest_first(place: Occurrence) -> tuple[int, int, int]:
    """The plain lookup's order: the longest match, then the current file's text before the
    cursor, after it, the other sources in turn, and in each the place nearest the end."""
    return (-place.length, place.source, place.nth)


def continuation_counts(sources: Sequence[str]) -> ContinuationCounts:
    """What the confidence cut counts in: ``sources`` as the lookup reads them (the text
    before the cursor, the text after it, then the rest), the document cut to
    _COUNTED_DOCUMENT_CHARS each side of the cursor."""
    counted = list(sources)
    if counted:
        counted[0] = counted[0][-_COUNTED_DOCUMENT_CHARS:]
    if len(counted) > 1:
        counted[1] = counted[1][:_COUNTED_DOCUMENT_CHARS]
    return ContinuationCounts(counted)


def lead_and_agreement(places: Sequence[Occurrence], index: int) -> tuple[float, int]:
    """How far ``places[index]`` (sorted best first) leads the best place that goes on
    differently (negative when behind it; 1000 when none does), and how many places go on
    alike, itself included."""
    text, score = places[index].text, places[index].score
    other = next((p.score for p in places if p.text != text), None)
    agreeing = sum(1 for p in places if p.text == text)
    return (1000.0 if other is None else score - other), agreeing


class LookupBackend:
    """Continue with what followed the text before the cursor at the best place it recurs."""

    name = "lookup"
    fim_family = None
    remote = False

    def __init__(self, settings: LookupSettings | None = None) -> None:
        self.settings = settings or LookupSettings()

    async def stream(
        self, prompt: CompletionPrompt, limits: GenerationLimits
    ) -> AsyncIterator[str]:
        """The best candidate in one piece: copying takes no time worth streaming over."""
        found = await self.generate(prompt, limits)
        if found:
            yield found[0].text

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        context = prompt.context
        whole = self.settings.copy_from == "files"
        # The whole document where the pipeline gives it (a local engine), else what fits
        # the token budget: an earlier call in a long file is as good to copy as a near one.
        # With copyFrom "prompt", only what a model would see.
        before = (whole and prompt.before_cursor[-MAX_DOCUMENT_CHARS:]) or context.prefix
        after = (whole and prompt.after_cursor[:MAX_DOCUMENT_CHARS]) or context.suffix
        query = before[-_QUERY_CHARS:]
        # Sources in order of preference when scores tie.
        # Signatures are summaries (bodies elided): context for a model, not text to copy.
        sources: list[tuple[str, str]] = [("prefix", before), ("suffix", after)]
        sources += [(f"snippet:{s.uri}", s.text) for s in context.snippets if s.kind != "signature"]
        budget = _MAX_REFERENCE_CHARS
        files = prompt.reference_texts if whole else ()
        for index, text in enumerate(files):
            if budget <= 0:
                break
            sources.append((f"file:{index}", text[:budget]))
            budget -= len(text)
        texts = [source for _, source in sources]
        around_cursor = surrounding_identifiers(before[-AROUND_CHARS:], after[:AROUND_CHARS])
        matches = find_occurrences(
            query,
            texts,
            around_cursor,
            limits.scope,
            limits.max_lines,
            limits.max_chars,
            limits.deadline,
        )
        # Where the file's family has no fitted weights, the choice, cut, gate and fallback
        # have nothing measured to stand on: copy as the plain lookup does.
        fit = fit_for(family_of(prompt.language_id))
        if self.settings.place == "nearest" or fit is None:
            matches.sort(key=nearest_first)
        await asyncio.sleep(0)  # a point where a superseded request can be cancelled
        fallback = self.settings.fallback == "ngram" and fit is not None
        if not matches:
            if not fallback:
                return []  # nothing to copy: no need to join the sources for counting
            return self._written(continuation_counts(texts), query, limits, None)
        counting = self.settings.cut == "confidence" and fit is not None
        counts = continuation_counts(texts) if counting else None
        seen: set[str] = set()
        found: list[Candidate] = []
        for index, match in enumerate(matches):
            text = match.text
            details = {"matched_chars": float(match.length), "similarity": match.similarity}
            if counts is not None and fit is not None:
                cut = confident_cut(
                    text,
                    query,
                    counts,
                    match.length,
                    deadline=limits.deadline,
                    place_weights=fit.place_calibration,
                )
                chance = 0.0
                if cut is not None:
                    lead, agreeing = lead_and_agreement(matches, index)
                    chance = acceptance_chance(
                        cut.confidence,
                        match.similarity,
                        lead,
                        agreeing,
                        len(cut.text),
                        fit.calibration,
                    )
                if cut is None or chance < self.settings.min_confidence:
                    if index == 0:
                        # The best copy is a weak guess: a lesser place is a weaker one,
                        # so show nothing rather than promote it, unless the n-gram
                        # fallback is sure of something.
                        return self._written(counts, query, limits, None) if fallback else []
                    continue
                text = cut.text
                details["cut_chance"], details["confidence"] = cut.confidence, chance
                if index == 0 and fallback:
                    # A weak copy: the n-gram's suggestion goes first when it is sure.
                    written = self._written(counts, query, limits, chance)
                    if written and written[0].text != text:
                        found += written
                        seen.add(written[0].text)
                        if len(found) >= limits.candidates:
                            break
            if text in seen:
                continue
            seen.add(text)
            origin = f"lookup:{sources[match.source][0].split(':')[0]}"
            found.append(Candidate(text, origin, details))
            if len(found) >= limits.candidates:
                break
            await asyncio.sleep(0)
        return found

    @staticmethod
    def _written(
        counts: ContinuationCounts,
        query: str,
        limits: GenerationLimits,
        copied_chance: float | None,
    ) -> list[Candidate]:
        """The n-gram fallback's suggestion where it goes before what the lookup would show
        (its ``copied_chance``; None when it shows nothing): ``written_first``."""
        cut = written_first(
            copied_chance, lambda: ngram_continuation(counts, query, deadline=limits.deadline)
        )
        return (
            [Candidate(cut.text, "lookup:ngram", {"ngram_chance": cut.confidence})] if cut else []
        )

    async def aclose(self) -> None:
        return None
