"""LSP positions (line, UTF-16 code unit) to and from string offsets.

Strict by design: a position past the end of a line or the document, or one that falls inside
a surrogate pair, has no offset. Ghost text drawn at a guessed position is worse than none.
"""

from __future__ import annotations


def offset_at(text: str, line: int, character: int) -> int | None:
    """The index in ``text`` of an LSP position, or None when the position is not in the text."""
    if line < 0 or character < 0:
        return None
    start = 0
    for _ in range(line):
        newline = text.find("\n", start)
        if newline < 0:
            return None
        start = newline + 1
    end = text.find("\n", start)
    if end < 0:
        end = len(text)
    if end > start and end < len(text) and text[end - 1] == "\r":
        end -= 1
    units = 0
    index = start
    while index < end:
        if units == character:
            return index
        units += 2 if ord(text[index]) > 0xFFFF else 1
        if units > character:
            return None  # inside a surrogate pair
        index += 1
    return end if units == character else None


def position_at(text: str, offset: int) -> tuple[int, int]:
    """The LSP (line, UTF-16 character) of a string offset."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text[line_start:offset])
    return line, units


def utf16_length(text: str) -> int:
    """How many UTF-16 code units ``text`` takes (what LSP clients count)."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def prefix_of_utf16_length(text: str, units: int) -> str:
    """The longest start of ``text`` that takes at most ``units`` UTF-16 code units."""
    taken = 0
    for index, ch in enumerate(text):
        taken += 2 if ord(ch) > 0xFFFF else 1
        if taken > units:
            return text[:index]
    return text
