"""Scores of one suggestion against the true continuation, and their summaries.

All scores are model-free and deterministic. A suggestion is the first item the server
returned ("" when it returned none).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_ACCEPT_CHARS = 4
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_JS_WORDS = (
    "break case catch class const continue debugger default delete do else export extends "
    "false finally for function if import in instanceof let new null return super switch this "
    "throw true try typeof var void while with yield async await of static type interface "
    "undefined"
)
_JS_KEYWORDS = frozenset(_JS_WORDS.split())
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | _JS_KEYWORDS | {"self"}


def identifiers(text: str) -> list[str]:
    """Identifiers of ``text`` in order, keywords left out."""
    return [word for word in _IDENTIFIER.findall(text) if word not in _KEYWORDS]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute), O(len(a)·len(b))."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(suggestion: str, target: str) -> float:
    """1 - distance / longer length; 1.0 when both are empty."""
    longest = max(len(suggestion), len(target))
    if longest == 0:
        return 1.0
    return 1 - edit_distance(suggestion, target) / longest


def identifier_f1(suggestion: str, target: str) -> float:
    """F1 of the identifier multisets; 1.0 when neither has identifiers and both are equal."""
    got, want = identifiers(suggestion), identifiers(target)
    if not got or not want:
        return 1.0 if not got and not want and suggestion.strip() == target.strip() else 0.0
    remaining = list(want)
    common = 0
    for word in got:
        if word in remaining:
            remaining.remove(word)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def accepted(suggestion: str, target: str) -> bool:
    """A user takes the whole suggestion: it starts the true continuation, >= 4 chars."""
    return len(suggestion.strip()) >= MIN_ACCEPT_CHARS and target.startswith(suggestion)


def partially_accepted_chars(suggestion: str, target: str) -> int:
    """Characters a user takes word by word (Ctrl+Right in VS Code): the longest start of
    the suggestion, cut at a word end, that the true continuation also starts with."""
    common = 0
    for a, b in zip(suggestion, target, strict=False):
        if a != b:
            break
        common += 1
    if common == len(suggestion):
        return common
    # Back off to the end of the last whole word (or non-word run) both agree on.
    while common > 0 and suggestion[common - 1].isalnum() and suggestion[common].isalnum():
        common -= 1
    return common


def coverage(target: str, context: str) -> float | None:
    """Share of the target's distinct identifiers present anywhere in ``context``."""
    wanted = set(identifiers(target))
    if not wanted:
        return None
    present = set(identifiers(context))
    return len(wanted & present) / len(wanted)


@dataclass(frozen=True)
class Score:
    shown: bool
    exact: bool
    edit_similarity: float
    identifier_f1: float
    accepted: bool
    partial_chars: int
    chars_saved: int
    target_chars: int


def score(suggestion: str, target: str) -> Score:
    suggestion = suggestion.rstrip()
    target = target.rstrip()
    whole = accepted(suggestion, target)
    partial = partially_accepted_chars(suggestion, target) if suggestion else 0
    return Score(
        shown=bool(suggestion.strip()),
        exact=bool(suggestion) and suggestion == target,
        edit_similarity=edit_similarity(suggestion, target),
        identifier_f1=identifier_f1(suggestion, target),
        accepted=whole,
        partial_chars=partial,
        chars_saved=len(suggestion) if whole else partial,
        target_chars=len(target),
    )


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..100); None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 100))
    return ordered[int(rank) - 1]
