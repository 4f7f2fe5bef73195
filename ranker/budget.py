"""Packing prefix, suffix and snippets into the model's token budget.

The suffix gets at most ``suffix_share`` of the budget (trimmed from its far end, whole lines),
snippets a reserved ``snippet_share`` (best first, whole snippets), and the prefix the rest
(trimmed line by line from its far end), so long files never starve the snippets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ghostcomplete.ranker.snippets import Snippet
from ghostcomplete.ranker.tokens import TokenCounter

# A token is rarely shorter than 2 characters of code; this bounds how much text gets counted.
_MAX_CHARS_PER_TOKEN = 8


@dataclass(frozen=True)
class Budget:
    max_tokens: int = 2048
    suffix_share: float = 0.2
    snippet_share: float = 0.3


@dataclass(frozen=True)
class PackedContext:
    """What the model will see, already within the budget."""

    prefix: str
    suffix: str
    snippets: tuple[Snippet, ...]
    tokens: int


def _keep_tail_lines(text: str, budget: int, counter: TokenCounter) -> tuple[str, int]:
    """The longest end of ``text`` made of whole lines (the first may be partial if it is the
    only one) whose token count fits ``budget``."""
    if budget <= 0 or not text:
        return "", 0
    text = text[-budget * _MAX_CHARS_PER_TOKEN :]
    lines = text.split("\n")
    counts = counter.count_lines([line + "\n" for line in lines])
    used = 0
    keep = 0
    for count in reversed(counts):
        if used + count > budget:
            break
        used += count
        keep += 1
    if keep == 0:
        return "", 0
    return "\n".join(lines[-keep:]), used


def _keep_head_lines(text: str, budget: int, counter: TokenCounter) -> tuple[str, int]:
    """The longest start of ``text`` made of whole lines whose token count fits ``budget``."""
    if budget <= 0 or not text:
        return "", 0
    text = text[: budget * _MAX_CHARS_PER_TOKEN]
    lines = text.split("\n")
    counts = counter.count_lines([line + "\n" for line in lines])
    used = 0
    keep = 0
    for count in counts:
        if used + count > budget:
            break
        used += count
        keep += 1
    return "\n".join(lines[:keep]), used


def pack(
    prefix: str,
    suffix: str,
    snippets: Sequence[Snippet],
    counter: TokenCounter,
    budget: Budget = Budget(),
) -> PackedContext:
    """Fit prefix, suffix and snippets into ``budget.max_tokens``."""
    suffix_text, suffix_tokens = _keep_head_lines(
        suffix, int(budget.max_tokens * budget.suffix_share), counter
    )
    snippet_budget = int(budget.max_tokens * budget.snippet_share)
    chosen: list[Snippet] = []
    snippet_tokens = 0
    for snippet in snippets:
        cost = counter.count(snippet.text) + 8  # + the "Compare this snippet" header
        if snippet_tokens + cost <= snippet_budget:
            chosen.append(snippet)
            snippet_tokens += cost
    prefix_budget = budget.max_tokens - suffix_tokens - snippet_tokens
    prefix_text, prefix_tokens = _keep_tail_lines(prefix, prefix_budget, counter)
    return PackedContext(
        prefix=prefix_text,
        suffix=suffix_text,
        snippets=tuple(chosen),
        tokens=prefix_tokens + suffix_tokens + snippet_tokens,
    )
