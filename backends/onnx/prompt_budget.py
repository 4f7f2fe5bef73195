"""How many prompt tokens a model on this machine is given when ``budget.maxTokens`` is 0 (its
default): as many as it reads in about ``READ_S`` seconds here.

While the user types, the hybrid asks the model between keystrokes, under a deadline of a
few hundred milliseconds. A longer prompt makes each of those requests slower: what a
keystroke changes near the cursor (the snippets chosen for the line, the end of the prefix)
is more tokens to read again, every new token attends to all of them, and a request whose
prompt cannot be read before the deadline is given up at once (pace.py). On a 2-core CPU the
0.5B model answered in time on far fewer keystrokes with 2,048 prompt tokens than with 512,
and more of its suggestions were accepted with 512 (bench/RESULTS.md, *A local model's prompt
budget*). A fast machine reads 2,048 tokens in the time a small one reads 512, so the budget
follows the prompt speed measured on this machine (``ghostcomplete model measure``, kept in
the model's manifest), in steps of ``STEPS``. Where no speed was measured here, a model on a
GPU gets the largest step and one on the CPU the smallest: the CPU this project is built for
first is the small one.
"""

from __future__ import annotations

# From the largest: the budget is the first step the model reads within READ_S.
STEPS = (2048, 1024, 512)
READ_S = 2.0


def prompt_tokens_for(prompt_tokens_per_s: float | None, on_gpu: bool) -> int:
    """The prompt budget of a model that reads ``prompt_tokens_per_s`` on this machine (None:
    not measured here) on a GPU or not."""
    if prompt_tokens_per_s is None or prompt_tokens_per_s <= 0:
        return STEPS[0] if on_gpu else STEPS[-1]
    for tokens in STEPS:
        if tokens / prompt_tokens_per_s <= READ_S:
            return tokens
    return STEPS[-1]
