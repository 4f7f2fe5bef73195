"""Fit a FIM prompt into a small model's context window.

The pipeline packs the context for a budget counted in cl100k tokens, which can be longer than
a small local model's window. Cutting the rendered prompt blindly would lose the FIM markers or
the text next to the cursor, so the parts are cut instead, in this order until the prompt
fits: the suffix to the share of the window the pipeline gave it (whole lines), then the
snippets, then the prefix from its far end in steps of ``PREFIX_STEP`` whole lines (the layout
rule of ``ranker.budget``).

Each decision is made so that typing on one line does not flip it back and forth, since any
change before the cursor makes the model re-read the prompt from there: the text above the
cursor's line, the suffix and the snippets do not change while the user types on it, and the
cursor's line is counted as ``cursor_line_allowance`` (from its characters, in steps of
tokens), which grows only every so many characters typed.
"""

from __future__ import annotations

from dataclasses import replace

from ghostcomplete.backends.base import CompletionPrompt
from ghostcomplete.backends.onnx.tokenizer import Tokenizer
from ghostcomplete.ranker.budget import (
    PREFIX_STEP,
    PackedContext,
    aligned_start,
    cursor_line_allowance,
)
from ghostcomplete.ranker.prompt import render_fim


def _line_counts(text: str, tokenizer: Tokenizer) -> list[int]:
    """Tokens of each line of ``text`` with its line break (the last one without)."""
    lines = text.split("\n")
    return [len(tokenizer.encode(line + "\n")) for line in lines[:-1]] + [
        len(tokenizer.encode(lines[-1]))
    ]


def _head_lines(text: str, budget: int, tokenizer: Tokenizer) -> str:
    """The longest start of ``text`` made of whole lines within ``budget`` tokens."""
    lines = text.split("\n")
    used = 0
    for keep, count in enumerate(_line_counts(text, tokenizer)):
        used += count
        if used > budget:
            return "\n".join(lines[:keep]) + ("\n" if keep else "")
    return text


class _Parts:
    """The prompt's token count as parts that stay put while the user types on one line."""

    def __init__(self, prompt: CompletionPrompt, family: str | None, tokenizer: Tokenizer):
        self.prompt, self.family, self.tokenizer = prompt, family, tokenizer
        prefix = prompt.context.prefix
        self.above = _line_counts(prefix[: prefix.rfind("\n") + 1], tokenizer)[:-1]
        self.allowance = cursor_line_allowance(prefix[prefix.rfind("\n") + 1 :])

    def render(self, context: PackedContext) -> str:
        prompt = self.prompt
        if self.family is None:
            return context.prefix
        paths = dict(prompt.paths)
        return render_fim(context, self.family, prompt.language_id, prompt.path, paths, prompt.repo)

    def without_prefix(self, context: PackedContext) -> int:
        """Tokens of everything but the prefix: header, snippets, suffix, markers."""
        return len(self.tokenizer.encode(self.render(replace(context, prefix=""))))

    def estimate(self, context: PackedContext, first_line: int = 0) -> int:
        return self.without_prefix(context) + sum(self.above[first_line:]) + self.allowance


def fit_prompt(
    prompt: CompletionPrompt, family: str | None, tokenizer: Tokenizer, room: int
) -> list[int]:
    """Token ids of the prompt, at most ``room`` of them; ``family`` None: a model with no FIM
    format, which continues the prefix."""
    context = prompt.context
    if family is None:
        context = replace(context, suffix="", snippets=())
    parts = _Parts(prompt, family, tokenizer)
    if parts.estimate(context) > room:
        suffix = _head_lines(context.suffix, int(room * context.suffix_share), tokenizer)
        context = replace(context, suffix=suffix)
    if context.snippets and parts.estimate(context) > room:
        context = replace(context, snippets=())
    first = 0
    lines = len(parts.above) + 1
    if parts.estimate(context) > room:
        fixed = parts.without_prefix(context) + parts.allowance
        while first < lines - 1 and fixed + sum(parts.above[first:]) > room:
            first += 1
        first = aligned_start(first, PREFIX_STEP, lines)
    while True:
        kept = "\n".join(context.prefix.split("\n")[first:])
        ids = tokenizer.encode(parts.render(replace(context, prefix=kept)))
        if len(ids) <= room or first >= lines - 1:
            break
        first = aligned_start(first + 1, PREFIX_STEP, lines)  # joins counted short: a step more
    if len(ids) <= room:
        return ids
    return ids[-room:] if family is None else ids[:1] + ids[len(ids) - room + 1 :]
