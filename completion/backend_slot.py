"""The configured backend: built from the settings, swapped in when they change, and built
again a while after it could not be (a model file that appears, a variable that gets set).
A hybrid whose model could not be built answers from the lookup meanwhile (``degraded``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ghostcomplete.backends import (
    Backend,
    BackendError,
    BackendSettings,
    build_backend,
    choose_backend,
)
from ghostcomplete.completion.pipeline import Pipeline

# A backend that could not be built is tried again this often (seconds), so that it comes back
# by itself when the fault goes.
RETRY_AFTER_S = 5.0


class BackendSlot:
    """Where the pipeline's backend comes from; ``broken`` says why there is none."""

    def __init__(self, pipeline: Pipeline, clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.clock = clock
        # Set when the configured backend could not be built; completions answer nothing.
        self.broken: str | None = None
        # Set when a hybrid's model could not be built: the lookup answers alone meanwhile.
        self.degraded: str | None = None
        # What the settings resolved to, in words ("lookup", "auto: hybrid, lookup + ...").
        self.chosen = ""
        self._settings: BackendSettings | None = None
        self._built_at = 0.0
        self._closing: set[asyncio.Future[None]] = set()

    def build(self, settings: BackendSettings, timeout_ms: float = 1000.0) -> BackendError | None:
        """Build the backend the settings name (``auto``: the one it picks under
        ``timeout_ms``, completion.timeoutMs) and put it in the pipeline; the one it replaces
        is closed in the background. The error when it cannot be built."""
        old: Backend = self.pipeline.backend
        self._settings = settings
        self._built_at = self.clock()
        try:
            chosen = choose_backend(settings, timeout_ms)
            self.chosen = chosen.summary
            self.pipeline.backend = build_backend(chosen.settings)
        except BackendError as error:
            self.broken = str(error)
            return error
        self.broken = None
        problem = getattr(self.pipeline.backend, "model_problem", None)
        self.degraded = problem if isinstance(problem, str) else None
        description = getattr(self.pipeline.backend, "description", None)
        if isinstance(description, str) and settings.kind != "auto":
            self.chosen = description
        elif isinstance(description, str) and self.degraded is not None:
            self.chosen = f"{self.chosen}; {description}"
        if old is not self.pipeline.backend:
            closing = asyncio.ensure_future(old.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return None

    def retry_due(self) -> bool:
        """Whether a broken or degraded backend has waited long enough to be built again."""
        waiting = self.broken is not None or self.degraded is not None
        return waiting and self.clock() - self._built_at >= RETRY_AFTER_S
