"""The lookup engine: a backend with zero weights.

It finds the longest stretch of text ending at the cursor that also occurs somewhere in the
packed context or the recently used files, and proposes what followed that stretch there.
Code repeats itself (call sites, record fields, test cases, tables), and on repetitive code
this is what a human would type next.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ghostcomplete.backends.base import Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup_confidence import ContinuationCounts, confident_cut
from ghostcomplete.context.syntax import Scope

_QUERY_CHARS = 2000
_MAX_REFERENCE_CHARS = 1_000_000
MAX_DOCUMENT_CHARS = 500_000  # each side of the cursor


@dataclass(frozen=True)
class Match:
    length: int
    continuation: str
    origin: str
    rank: int  # lower = preferred source when lengths tie


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
    """Cut what followed a match to the line (or block) the cursor is on."""
    if scope is Scope.LINE:
        if text.startswith("\n") and line_prefix.strip():
            # The match ends the line: offer the next line instead.
            end = text.find("\n", 1)
            return text if end < 0 else text[:end]
        end = text.find("\n")
        return text if end < 0 else text[:end]
    indent = len(line_prefix) - len(line_prefix.lstrip())
    lines = text.split("\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if len(kept) >= max_lines:
            break
        stripped = line.lstrip()
        if stripped and len(line) - len(stripped) < indent:
            break
        kept.append(line)
    while len(kept) > 1 and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


class LookupBackend:
    """Continue with what followed the longest match of the text before the cursor."""

    name = "lookup"
    fim_family = None
    remote = False

    def __init__(self, settings: LookupSettings | None = None) -> None:
        self.settings = settings or LookupSettings()

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        context = prompt.context
        # The whole document where the pipeline gives it (a local engine), else what fits
        # the token budget: an earlier call in a long file is as good to copy as a near one.
        before = prompt.before_cursor[-MAX_DOCUMENT_CHARS:] or context.prefix
        after = prompt.after_cursor[:MAX_DOCUMENT_CHARS] or context.suffix
        query = before[-_QUERY_CHARS:]
        line_prefix = query[query.rfind("\n") + 1 :]
        need = required_match(line_prefix)
        # Sources in order of preference when match lengths tie.
        # Signatures are summaries (bodies elided): context for a model, not text to copy.
        sources: list[tuple[str, str]] = [("prefix", before), ("suffix", after)]
        sources += [(f"snippet:{s.uri}", s.text) for s in context.snippets if s.kind != "signature"]
        budget = _MAX_REFERENCE_CHARS
        files = prompt.reference_texts if self.settings.copy_from == "files" else ()
        for index, text in enumerate(files):
            if budget <= 0:
                break
            sources.append((f"file:{index}", text[:budget]))
            budget -= len(text)
        matches: list[Match] = []
        for rank, (origin, source) in enumerate(sources):
            if limits.deadline is not None and time.monotonic() > limits.deadline:
                break
            length, end = longest_match(query, source, need)
            if length == 0:
                continue
            raw = source[end : end + limits.max_chars * 2]
            text = continuation_for(raw, limits.scope, line_prefix, limits.max_lines)
            text = text[: limits.max_chars].rstrip("\r")
            if text.strip():
                matches.append(Match(length, text, origin, rank))
            await asyncio.sleep(0)  # a point where a superseded request can be cancelled
        matches.sort(key=lambda match: (-match.length, match.rank))
        counting = self.settings.cut == "confidence"
        counts = ContinuationCounts([source for _, source in sources]) if counting else None
        seen: set[str] = set()
        found: list[Candidate] = []
        for match in matches:
            text, details = match.continuation, {"matched_chars": float(match.length)}
            if counts is not None:
                cut = confident_cut(text, query, counts, deadline=limits.deadline)
                if cut is None or cut.confidence < self.settings.min_confidence:
                    if match is matches[0]:
                        # The best copy is a weak guess: a shorter match is a weaker one,
                        # so show nothing rather than promote it.
                        return []
                    continue
                text, details["confidence"] = cut.text, cut.confidence
            if text in seen:
                continue
            seen.add(text)
            origin = f"lookup:{match.origin.split(':')[0]}"
            found.append(Candidate(text, origin, details))
            if len(found) >= limits.candidates:
                break
            await asyncio.sleep(0)
        return found

    async def aclose(self) -> None:
        return None
