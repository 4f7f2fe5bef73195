"""What the user is told about lasting problems: the one mapping from errors to messages.

A problem has a topic (at most one message per topic is shown within the hour), a severity and
the short text a status bar shows. The server turns a Problem into a message and a status;
``ghostcomplete complete``, serve-model and edit requests use the same words.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ghostcomplete.backends import BackendError

# A lasting problem is told to the user at most this often (seconds).
MESSAGE_INTERVAL_S = 3600.0


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    topic: str
    severity: Severity
    # What a status bar shows.
    summary: str
    # What a message shows, when it says more than the summary.
    detail: str | None = None
    # False for problems that pass (one bad message): a message, and the status stays.
    lasting: bool = True

    @property
    def message(self) -> str:
        return f"ghostcomplete: {self.detail or self.summary}"


def backend_problem(error: BackendError) -> Problem:
    """The backend could not be built, failed, or keeps missing its deadline."""
    return Problem("backend", Severity.ERROR, str(error))


def degraded_backend_problem(message: str) -> Problem:
    """The hybrid's model could not be built: suggestions come from the lookup alone."""
    return Problem(
        "backend",
        Severity.WARNING,
        f"{message}; suggestions come from the lookup alone until it can be loaded",
    )


def settings_problem(errors: Sequence[str]) -> Problem:
    """Settings that were ignored; their defaults (or the lower layer's values) apply."""
    joined = "; ".join(errors)
    return Problem(
        "settings",
        Severity.WARNING,
        f"invalid settings: {joined}",
        f"ignored invalid settings (defaults used): {joined}",
    )


def dense_problem(message: str) -> Problem:
    """Dense retrieval is off; completions go on with BM25 only."""
    return Problem("dense", Severity.WARNING, message)


def untrusted_settings_problem(ignored: Sequence[str]) -> Problem:
    """Restricted settings a workspace set without saying it is trusted: the user's stay."""
    names = ", ".join(ignored)
    return Problem(
        "untrusted-settings",
        Severity.WARNING,
        f"ignored workspace settings {names} (the workspace is not trusted; set them in your "
        "user settings)",
        lasting=False,
    )


def internal_problem(error: Exception) -> Problem:
    """A bug of ours outside any request (a notification handler failed, say)."""
    return Problem(
        "internal", Severity.ERROR, f"internal error ({error}); see the log", lasting=False
    )


def edit_failure(error: BackendError) -> str:
    """Why an edit request applied nothing, when the backend failed."""
    return f"the edit failed: {error}"


class MessageThrottle:
    """At most one message per topic within the interval: a problem met on every keystroke
    is told once, and again an hour later if it lasts."""

    def __init__(
        self, interval_s: float = MESSAGE_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._told_at: dict[str, float] = {}

    def allows(self, topic: str) -> bool:
        """Whether a message on ``topic`` may be shown now (and, if so, that it was)."""
        now = self.clock()
        previous = self._told_at.get(topic)
        if previous is not None and now - previous < self.interval_s:
            return False
        self._told_at[topic] = now
        return True
