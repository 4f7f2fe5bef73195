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
from ghostcomplete.backends.hybrid.auto import Chosen, choose
from ghostcomplete.backends.lookup.backend import LookupBackend


def create_backend(settings: BackendSettings, timeout_ms: float = 1000.0) -> Backend:
    """The backend ``settings.kind`` names (for ``auto``, the one ``choose_backend`` picks
    under ``timeout_ms``, completion.timeoutMs).

    Raises BackendError when it cannot be built (a missing model file, say): the server then
    tells the user once and answers with nothing until the settings change. A hybrid whose
    model cannot be built is built without it (``HybridBackend.model_problem`` says why) and
    answers from the lookup.
    """
    return build_backend(choose_backend(settings, timeout_ms).settings)


def choose_backend(settings: BackendSettings, timeout_ms: float = 1000.0) -> Chosen:
    """What ``settings`` resolve to, and why, in words (``auto`` reads the installed models)."""
    return choose(settings, timeout_ms)


def build_backend(settings: BackendSettings) -> Backend:
    """The backend of a kind other than ``auto``."""
    if settings.kind == "lookup":
        return LookupBackend(settings.lookup)
    if settings.kind in ("http", "onnx"):
        return _model_backend(settings.kind, settings)
    if settings.kind == "hybrid":
        from ghostcomplete.backends.hybrid.backend import HybridBackend

        try:
            model: Backend | None = _model_backend(settings.hybrid.model, settings)
        except BackendError as error:
            return HybridBackend(LookupBackend(settings.lookup), None, settings.hybrid, str(error))
        return HybridBackend(LookupBackend(settings.lookup), model, settings.hybrid)
    raise BackendError(f"backend {settings.kind!r} is not available in this build")


def _model_backend(kind: str, settings: BackendSettings) -> Backend:
    if kind == "http":
        from ghostcomplete.backends.http.backend import HttpBackend

        return HttpBackend(settings.http)
    from ghostcomplete.backends.onnx.backend import OnnxBackend

    return OnnxBackend(settings.onnx)


__all__ = [
    "KINDS",
    "Backend",
    "BackendError",
    "BackendSettings",
    "Candidate",
    "Chosen",
    "CompletionPrompt",
    "GenerationLimits",
    "LookupBackend",
    "build_backend",
    "choose_backend",
    "create_backend",
]
