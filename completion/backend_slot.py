"""The configured backend: built from the settings, swapped in when they change, and built
again a while after it could not be (a model file that appears, a variable that gets set)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ghostcomplete.backends import Backend, BackendError, BackendSettings, create_backend
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
        self._settings: BackendSettings | None = None
        self._built_at = 0.0
        self._closing: set[asyncio.Future[None]] = set()

    def build(self, settings: BackendSettings) -> BackendError | None:
        """Build the backend the settings name and put it in the pipeline; the one it
        replaces is closed in the background. The error when it cannot be built."""
        old: Backend = self.pipeline.backend
        self._settings = settings
        self._built_at = self.clock()
        try:
            self.pipeline.backend = create_backend(settings)
        except BackendError as error:
            self.broken = str(error)
            return error
        self.broken = None
        if old is not self.pipeline.backend:
            closing = asyncio.ensure_future(old.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return None

    def retry_due(self) -> bool:
        """Whether a broken backend has waited long enough to be built again."""
        return self.broken is not None and self.clock() - self._built_at >= RETRY_AFTER_S
