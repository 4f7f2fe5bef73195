"""Adaptive debounce: how long to wait before asking the backend.

After Tabby's: wait a little longer than the user's typical pause between keystrokes, so that
while they type steadily every request is superseded before it reaches the backend; wait less
when the cursor is at a line end or after punctuation (a natural place to pause) and when the
backend is so fast that a wasted call costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

_PAUSE_CHARS = set(".,;:()[]{}=<>+-*/%&|!?\"'` ")


@dataclass
class Ema:
    """An exponential moving average that starts at ``value``."""

    value: float
    weight: float = 0.2

    def add(self, sample: float) -> None:
        self.value += self.weight * (sample - self.value)


class AdaptiveDebounce:
    def __init__(self, max_ms: float = 1000.0, min_ms: float = 0.0) -> None:
        self.max_ms = max_ms
        self.min_ms = min_ms
        # When set, every request waits exactly this long (the "fixed" setting).
        self.fixed_ms: float | None = None
        self.keystroke_gap_ms = Ema(150.0)
        self.backend_ms = Ema(100.0)
        self._last_request_at: float | None = None

    def request_arrived(self, now: float) -> None:
        """Learn the typing rhythm from the gaps between automatic requests."""
        if self._last_request_at is not None:
            gap_ms = (now - self._last_request_at) * 1000
            if gap_ms < 2000:  # longer gaps are pauses, not typing
                self.keystroke_gap_ms.add(gap_ms)
        self._last_request_at = now

    def backend_answered(self, elapsed_ms: float) -> None:
        self.backend_ms.add(elapsed_ms)

    def delay_ms(self, line_prefix: str, line_suffix: str) -> float:
        """The wait for a request at a cursor with this text around it on its line."""
        if self.fixed_ms is not None:
            return self.fixed_ms
        wait = self.keystroke_gap_ms.value * 1.25
        # A backend that answers in a few ms is cheap to call; a slow one must not be wasted.
        wait *= min(1.0, 0.9 + self.backend_ms.value / 1000.0)
        at_line_end = not line_suffix.strip()
        after_pause_char = bool(line_prefix) and line_prefix[-1] in _PAUSE_CHARS
        if at_line_end and after_pause_char:
            wait *= 0.5
        return max(self.min_ms, min(self.max_ms, wait))
