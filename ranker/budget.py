"""Packing prefix, suffix and snippets into the model's token budget.

The suffix gets at most ``suffix_share`` of the budget (trimmed from its far end, whole lines),
snippets a reserved ``snippet_share`` (best first, whole snippets), and the prefix the rest,
so long files never starve the snippets.

The layout is made for a model's KV cache, which is reused up to the first token that differs
from the last prompt: while the user types on one line only the prompt's end may change. So
the prefix is trimmed from its far end in steps of ``PREFIX_STEP`` lines, counted from the
start of the text (the document's start), and keeps its start until the budget forces the
next step; and a one-line completion, whose suffix a model re-reads at every keystroke (it
follows the cursor), gets at most ``LINE_SUFFIX_SHARE`` of the budget for it, and of that
the rest of the cursor's line and at most ``LINE_SUFFIX_TOKENS`` in all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.snippets import Snippet
from ghostcomplete.ranker.tokens import TokenCounter

# A token is rarely shorter than 2 characters of code; this bounds how much text gets counted.
_MAX_CHARS_PER_TOKEN = 8

# The prefix starts on a line whose number is a multiple of this: the start moves once per
# this many lines' worth of typing, and at most this many lines of budget go unused.
PREFIX_STEP = 4

# The suffix's share for a one-line completion: the text after the cursor is re-read at each
# keystroke, and the next few lines are what a one-line answer needs of it.
LINE_SUFFIX_SHARE = 0.05
# Within that share, a one-line completion's suffix stops at this many tokens, unless the rest
# of the cursor's line alone holds more (it is kept whole: the answer must end where it
# begins); the lines after it go only as far as one line's answer looks.
LINE_SUFFIX_TOKENS = 24


# The cursor's line is counted as an allowance in steps of this many tokens (see
# ``cursor_line_allowance``).
LINE_ALLOWANCE = 16


def cursor_line_allowance(line: str) -> int:
    """Tokens to keep for the line being typed, counted from its characters, which only grow
    as the user types (its tokens can merge and count one fewer, which would move a cut back
    and forth): a token of code is rarely shorter than 2 characters. Rounded up to
    ``LINE_ALLOWANCE``, so that it moves only every so many characters typed."""
    return -(-(len(line) // 2 + 2) // LINE_ALLOWANCE) * LINE_ALLOWANCE


def suffix_share_for(scope: Scope, share: float) -> float:
    """The suffix's share of the budget for a completion of ``scope``: at most ``share``."""
    return share if scope is Scope.BLOCK else min(share, LINE_SUFFIX_SHARE)


# The prompt budget where neither the settings nor a local model's speed set one (a model
# over http, the lookup).
DEFAULT_PROMPT_TOKENS = 2048


def budget_for(scope: Scope, max_tokens: int, suffix_share: float, snippet_share: float) -> Budget:
    """The budget of a completion of ``scope``: a one-line completion's suffix is kept short."""
    line = scope is not Scope.BLOCK
    return Budget(
        max_tokens,
        suffix_share_for(scope, suffix_share),
        snippet_share,
        LINE_SUFFIX_TOKENS if line else None,
    )


@dataclass(frozen=True)
class Budget:
    max_tokens: int = DEFAULT_PROMPT_TOKENS
    suffix_share: float = 0.2
    snippet_share: float = 0.3
    # With a value, the suffix holds at most this many tokens unless its first line (the rest
    # of the cursor's line) alone holds more; then that line only.
    suffix_tokens: int | None = None


@dataclass(frozen=True)
class PackedContext:
    """What the model will see, already within the budget."""

    prefix: str
    suffix: str
    snippets: tuple[Snippet, ...]
    tokens: int
    # The share of the budget the suffix was allowed; a model with a smaller window than the
    # budget gives the suffix the same share of its own (backends/onnx/prompt.py).
    suffix_share: float = 0.2


# Each part (prefix, suffix, a snippet) meets the template at its start and end.
_JOINS_PER_PART = 2


def aligned_start(first: int, step: int, lines: int) -> int:
    """The first line to keep of ``lines``, given that ``first`` is the earliest that fits:
    the next multiple of ``step``, or ``first`` itself when that would keep no line."""
    aligned = -(-first // step) * step
    return aligned if aligned < lines else first


def _keep_tail_lines(
    text: str, budget: int, counter: TokenCounter, step: int = 1
) -> tuple[str, int]:
    """The longest end of ``text`` made of whole lines (the first may be partial if it is the
    only one) whose token count fits ``budget``; with ``step`` > 1, starting on a line whose
    number in ``text`` is a multiple of ``step``, and counting the last line (the cursor's)
    as at least its ``cursor_line_allowance``."""
    if budget <= 0 or not text:
        return "", 0
    window = budget * _MAX_CHARS_PER_TOKEN
    # Lines before the counted window: their number keeps the steps where they are in text.
    skipped = text.count("\n", 0, len(text) - window) if len(text) > window else 0
    cut = len(text) > window and text[-window - 1] != "\n"
    text = text[-window:]
    lines = text.split("\n")
    counts = counter.count_lines([line + "\n" for line in lines])
    if step > 1:  # the line being typed: an allowance that does not move back and forth
        counts[-1] = max(counts[-1], cursor_line_allowance(lines[-1]))
    used = 0
    keep = 0
    for count in reversed(counts):
        if used + count > budget:
            break
        used += count
        keep += 1
    if keep == 0:
        return "", 0
    first = len(lines) - keep
    if cut and first == 0 and len(lines) > 1:  # the counted window began inside a line
        first = 1
    first = aligned_start(skipped + first, step, skipped + len(lines)) - skipped
    return "\n".join(lines[first:]), sum(counts[first:])


def _keep_head_lines(
    text: str, budget: int, counter: TokenCounter, past_first: int | None = None
) -> tuple[str, int]:
    """The longest start of ``text`` made of whole lines whose token count fits ``budget``;
    with ``past_first``, a line after the first only while the count also fits that."""
    if budget <= 0 or not text:
        return "", 0
    text = text[: budget * _MAX_CHARS_PER_TOKEN]
    lines = text.split("\n")
    counts = counter.count_lines([line + "\n" for line in lines])
    used = 0
    keep = 0
    for count in counts:
        limit = budget if keep == 0 or past_first is None else min(budget, past_first)
        if used + count > limit:
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
        suffix, int(available * budget.suffix_share), counter, budget.suffix_tokens
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
    prefix_text, prefix_tokens = _keep_tail_lines(prefix, prefix_budget, counter, PREFIX_STEP)
    return PackedContext(
        prefix=prefix_text,
        suffix=suffix_text,
        snippets=tuple(chosen),
        tokens=overhead + prefix_tokens + suffix_tokens + snippet_tokens,
        suffix_share=budget.suffix_share,
    )
