"""Backends: one protocol, a closed set of implementations chosen by ``backend.kind``."""

from __future__ import annotations

from ghostcomplete.backends.base import (
    Backend,
    BackendError,
    Candidate,
    CompletionPrompt,
    GenerationLimits,
)
from ghostcomplete.backends.lookup import LookupBackend

KINDS = ("lookup",)


def create_backend(kind: str) -> Backend:
    """The backend for ``kind``; raises ValueError for a kind we do not have."""
    if kind == "lookup":
        return LookupBackend()
    raise ValueError(f"unknown backend kind {kind!r} (known: {', '.join(KINDS)})")


__all__ = [
    "KINDS",
    "Backend",
    "BackendError",
    "Candidate",
    "CompletionPrompt",
    "GenerationLimits",
    "LookupBackend",
    "create_backend",
]
