"""What telemetry records: one plain dataclass per event, keyed by completion or item id.

A completion (``completion_id``) is one inlineCompletion request; each suggestion it returned is
an item (``item_id`` = ``<completion_id>-<index>``). Code text appears only in fields named
``text`` and is None unless content capture is on; otherwise lengths and hashes stand in.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field


def text_digest(text: str) -> str:
    """A short, stable fingerprint of ``text`` (SHA-256, 16 hex digits): equal texts match,
    the text cannot be read back."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class SnippetUse:
    """A snippet of another file that went into the prompt."""

    source: str  # the file's URI with content capture on, else its digest
    start_line: int
    score: float


@dataclass(frozen=True)
class Requested:
    """One inlineCompletion request and what the pipeline did with it."""

    completion_id: str
    at: float  # unix seconds
    language: str
    trigger: str  # "automatic" or "invoked"
    backend: str
    model: str | None = None
    prompt_tokens: int | None = None
    snippets: tuple[SnippetUse, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    cache: str | None = None  # "typing", "inflight", "prompt" or None (the backend was asked)
    skipped: str | None = None  # why nothing was asked for, if so
    items: int = 0


@dataclass(frozen=True)
class Offered:
    """One suggestion returned to the editor."""

    item_id: str
    completion_id: str
    index: int
    length: int  # UTF-16 units
    lines: int
    digest: str
    origin: str = ""
    text: str | None = None  # only with content capture


class Outcome(enum.StrEnum):
    """Kinds of item events, as stored in ``events.kind``."""

    SHOWN = "shown"
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    REJECTED = "rejected"
    NOISE = "noise"  # shown, then gone within 250 ms: the user cannot have read it
    # The user typed what it suggested; its rest is offered again as a new item.
    TYPED_THROUGH = "typed_through"


@dataclass(frozen=True)
class ItemEvent:
    """Something that happened to an offered item.

    ``value``: for accepted / partially accepted the accepted length (UTF-16 units); for
    shown 1 if inferred (the client sent no didShowCompletion), else 0; for rejected and noise
    the milliseconds it was visible. ``detail``: the reason of a rejection ("superseded",
    "dismissed", "timeout", "closed").
    """

    item_id: str
    kind: Outcome
    at: float
    value: int = 0
    detail: str | None = None


@dataclass(frozen=True)
class RetentionChecked:
    """Whether accepted text was still in the code ``after_s`` (nominal) seconds later."""

    item_id: str
    after_s: int
    at: float
    retained: bool
    distance: int  # edit distance of the best match near where the text went
    length: int  # characters of the accepted text
    found: bool = True  # False: the document could not be read (closed and gone)


TelemetryEvent = Requested | Offered | ItemEvent | RetentionChecked
