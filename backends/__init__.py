"""Backends: one protocol, a closed set of implementations chosen by ``backend.kind``."""

from __future__ import annotations

from ghostcomplete.backends.base import (
    Backend,
    BackendError,
    Candidate,
    CompletionPrompt,
    GenerationLimits,
)
from ghostcomplete.backends.config import KINDS, BackendSettings
from ghostcomplete.backends.lookup.backend import LookupBackend


def create_backend(settings: BackendSettings) -> Backend:
    """The backend ``settings.kind`` names.

    Raises BackendError when it cannot be built (a missing model file, say): the server then
    tells the user once and answers with nothing until the settings change.
    """
    if settings.kind == "lookup":
        return LookupBackend(settings.lookup)
    if settings.kind == "http":
        from ghostcomplete.backends.http.backend import HttpBackend

        return HttpBackend(settings.http)
    if settings.kind == "onnx":
        from ghostcomplete.backends.onnx.backend import OnnxBackend

        return OnnxBackend(settings.onnx)
    raise BackendError(f"backend {settings.kind!r} is not available in this build")


__all__ = [
    "KINDS",
    "Backend",
    "BackendError",
    "BackendSettings",
    "Candidate",
    "CompletionPrompt",
    "GenerationLimits",
    "LookupBackend",
    "create_backend",
]
