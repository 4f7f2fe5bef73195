"""How long the engine's forward passes take, learnt while it runs.

A deadline checked only between passes is overrun by the pass that starts just before it:
a 128-token prefill chunk of a 0.5B model takes half a second on two cores, a decode step
tens of milliseconds. Knowing what a pass costs lets a request stop before a pass that would
end past its deadline, and give up at once on a prompt it cannot read in time, so that its
answer (what it has, or nothing) comes while it still counts.
"""

from __future__ import annotations

from dataclasses import dataclass

# Weight of the newest observation: passes drift with the context's length and the load.
_NEWEST = 0.3
# Prefill chunks shorter than this cost about one decode step whatever their length, so they
# say little about the cost of a token.
_MIN_CHUNK_FOR_RATE = 32
# About how long one prefill pass may take: a newer keystroke, or a request waiting behind
# background warming, waits for the pass in progress to end.
CHUNK_S = 0.12


@dataclass
class Pace:
    """Running estimates of a decode step and of a prompt token in a prefill chunk, in
    seconds; zero until observed (nothing is predicted before the first pass)."""

    step_s: float = 0.0
    prefill_token_s: float = 0.0

    def observe_step(self, seconds: float) -> None:
        self.step_s = _blend(self.step_s, seconds)

    def observe_prefill(self, tokens: int, seconds: float) -> None:
        if tokens >= _MIN_CHUNK_FOR_RATE:
            self.prefill_token_s = _blend(self.prefill_token_s, seconds / tokens)

    def chunk(self, largest: int) -> int:
        """Prompt tokens for the next prefill pass: about ``CHUNK_S`` of work, at most
        ``largest`` (and all of ``largest`` until a token's cost is known)."""
        if self.prefill_token_s == 0.0:
            return largest
        fitting = max(_MIN_CHUNK_FOR_RATE, int(CHUNK_S / self.prefill_token_s))
        return max(1, min(largest, fitting))

    def step_ends_by(self, now: float, deadline: float | None) -> bool:
        """Whether a decode step begun ``now`` is expected to end by ``deadline``."""
        return deadline is None or now + self.step_s <= deadline

    def prompt_read_by(self, now: float, tokens_left: int, deadline: float | None) -> bool:
        """Whether ``tokens_left`` prompt tokens and one decode step begun ``now`` are
        expected to end by ``deadline``: if not, no answer can come in time."""
        if deadline is None:
            return True
        return now + tokens_left * self.prefill_token_s + self.step_s <= deadline


def _blend(old: float, new: float) -> float:
    return new if old == 0.0 else (1 - _NEWEST) * old + _NEWEST * new
