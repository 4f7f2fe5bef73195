"""What the cursor sees: prefix, suffix, and whether a completion is worth asking for."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.positions import offset_at

_CLOSERS = set(")]}>\"'`;:,. \t")


class Skip(enum.Enum):
    """Why no completion is asked for. The value is what the log says."""

    POSITION_INVALID = "position is outside the document or inside a surrogate pair"
    BINARY = "document looks binary"
    TOO_LARGE = "document is larger than context.maxFileBytes"
    MID_WORD = "cursor is in the middle of a word"
    TEXT_AFTER_CURSOR = "text other than closing brackets follows the cursor"
    TOO_LITTLE_CONTEXT = "too little text before the cursor"


@dataclass(frozen=True)
class Cursor:
    """A document cut at the cursor."""

    document: DocumentSnapshot
    offset: int
    prefix: str
    suffix: str

    @property
    def line_prefix(self) -> str:
        """The text of the cursor's line before the cursor."""
        return self.prefix[self.prefix.rfind("\n") + 1 :]

    @property
    def line_suffix(self) -> str:
        """The text of the cursor's line after the cursor (without the line break)."""
        end = self.suffix.find("\n")
        line = self.suffix if end < 0 else self.suffix[:end]
        return line.removesuffix("\r")


def cut_at(
    document: DocumentSnapshot,
    line: int,
    character: int,
    *,
    max_bytes: int,
    encoding: str = "utf-16",
) -> Cursor | Skip:
    """Cut ``document`` at an LSP position, or say why there is nothing to complete there."""
    if document.larger_than(max_bytes):
        return Skip.TOO_LARGE
    if document.looks_binary:
        return Skip.BINARY
    offset = offset_at(document.text, line, character, encoding)
    if offset is None:
        return Skip.POSITION_INVALID
    return Cursor(document, offset, document.text[:offset], document.text[offset:])


def should_complete(cursor: Cursor, *, min_context_chars: int = 10) -> Skip | None:
    """None when a completion is worth asking for; otherwise the reason not to."""
    if len(cursor.prefix.strip()) < min_context_chars:
        return Skip.TOO_LITTLE_CONTEXT
    after = cursor.line_suffix
    if after and (after[0].isalnum() or after[0] == "_"):
        before = cursor.line_prefix
        if before and (before[-1].isalnum() or before[-1] == "_"):
            return Skip.MID_WORD
    if any(ch not in _CLOSERS for ch in after):
        return Skip.TEXT_AFTER_CURSOR
    return None
