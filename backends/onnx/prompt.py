"""Fit a FIM prompt into a small model's context window.

The pipeline packs the context for a budget counted in cl100k tokens, which can be longer than
a small local model's window. Cutting the rendered prompt blindly would lose the FIM markers or
the text next to the cursor, so the parts are cut instead: the suffix to a fifth of the window,
then the snippets, then the prefix from its far end, whole lines at a time, so that the
prompt's start stays put while the user types on a line and the KV cache can be reused.
"""

from __future__ import annotations

from dataclasses import replace

from ghostcomplete.backends.base import CompletionPrompt
from ghostcomplete.backends.onnx.tokenizer import Tokenizer
from ghostcomplete.ranker.prompt import render_fim

SUFFIX_SHARE = 0.2


def _cut_after_newline(text: str, at: int) -> str:
    """``text`` from the line that starts after position ``at``."""
    at = min(max(at, 0), len(text))
    found = text.find("\n", at)
    return text[at:] if found < 0 else text[found + 1 :]


def _cut_before_newline(text: str, keep: int) -> str:
    """At most ``keep`` characters of ``text``, ending at a line end when there is one."""
    if len(text) <= keep:
        return text
    found = text.rfind("\n", 0, keep)
    return text[: found + 1] if found > 0 else text[:keep]


def fit_prompt(
    prompt: CompletionPrompt, family: str | None, tokenizer: Tokenizer, room: int
) -> list[int]:
    """Token ids of the prompt, at most ``room`` of them."""
    if family is None:  # a model with no FIM format continues the prefix
        ids = tokenizer.encode(prompt.context.prefix)
        return ids[-room:]
    ids = tokenizer.encode(prompt.text)
    if len(ids) <= room:
        return ids
    context, text = prompt.context, prompt.text
    for _ in range(8):
        chars_per_token = max(1.0, len(text) / max(1, len(ids)))
        suffix_cap = int(room * SUFFIX_SHARE * chars_per_token)
        if len(context.suffix) > suffix_cap:
            context = replace(context, suffix=_cut_before_newline(context.suffix, suffix_cap))
        elif context.snippets:
            context = replace(context, snippets=())
        else:
            over = int((len(ids) - room) * chars_per_token) + 1
            context = replace(context, prefix=_cut_after_newline(context.prefix, over - 1))
        text = render_fim(
            context, family, prompt.language_id, prompt.path, dict(prompt.paths), prompt.repo
        )
        ids = tokenizer.encode(text)
        if len(ids) <= room:
            return ids
    return ids[:1] + ids[len(ids) - room + 1 :]
