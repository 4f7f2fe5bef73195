"""A one-line progress bar on stderr (redrawn in place on a terminal, sparse otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._last_line = -1.0

    def advance(self, steps: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + steps)
        now = time.monotonic()
        finished = self.done >= self.total
        if not self.tty and not finished and now - self._last_line < 5:
            return
        self._last_line = now
        share = self.done / self.total
        width = 30
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        elapsed = now - self.started
        eta = elapsed / share - elapsed if share > 0 else 0.0
        line = (
            f"{self.label} [{bar}] {self.done}/{self.total} "
            f"{elapsed:5.0f}s elapsed, ~{eta:4.0f}s left {note[:40]}"
        )
        end = "" if self.tty and not finished else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
