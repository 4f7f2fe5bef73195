"""Packing prefix, suffix and snippets into the model's token budget.

The suffix gets at most ``suffix_share`` of the budget (trimmed from its far end, whole lines),
snippets a reserved ``snippet_share`` (best first, whole snippets), and the prefix the rest
(trimmed line by line from its far end), so long files never starve the snippets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


# Each part (prefix, suffix, a snippet) meets the template at its start and end.
_JOINS_PER_PART = 2


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
    *,
    overhead: int = 0,
    snippet_cost: Callable[[Snippet], int] | None = None,
) -> PackedContext:
    """Fit prefix, suffix and snippets into ``budget.max_tokens``.

    ``overhead`` is what the template adds around them (FIM markers, the path line) and
    ``snippet_cost`` the tokens of a snippet as rendered (with its header); both are taken
    off the budget so that the rendered prompt fits, not only its parts.
    """
    # Text joined to text can tokenize into one more token than its parts counted apart
    # (a marker's "<|" merging with the character before it): a token per join is kept back.
    available = max(0, budget.max_tokens - overhead - _JOINS_PER_PART * 2)
    suffix_text, suffix_tokens = _keep_head_lines(
        suffix, int(available * budget.suffix_share), counter
    )
    snippet_budget = int(available * budget.snippet_share)
    chosen: list[Snippet] = []
    snippet_tokens = 0
    for snippet in snippets:
        cost = snippet_cost(snippet) if snippet_cost else counter.count(snippet.text) + 8
        cost += _JOINS_PER_PART
        if snippet_tokens + cost <= snippet_budget:
            chosen.append(snippet)
            snippet_tokens += cost
    prefix_budget = available - suffix_tokens - snippet_tokens
    prefix_text, prefix_tokens = _keep_tail_lines(prefix, prefix_budget, counter)
    return PackedContext(
        prefix=prefix_text,
        suffix=suffix_text,
        snippets=tuple(chosen),
        tokens=overhead + prefix_tokens + suffix_tokens + snippet_tokens,
    )
