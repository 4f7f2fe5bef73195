"""LSP positions (line, UTF-16 code unit) to and from string offsets.

Strict by design: a position past the end of a line or the document, or one that falls inside
a surrogate pair, has no offset. Ghost text drawn at a guessed position is worse than none.
"""

from __future__ import annotations


def _units_utf16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _units_utf8(ch: str) -> int:
    code = ord(ch)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _units_utf32(ch: str) -> int:
    return 1


_UNITS = {"utf-16": _units_utf16, "utf-8": _units_utf8, "utf-32": _units_utf32}


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int | None:
    """The index in ``text`` of an LSP position counted in ``encoding`` code units ("utf-16",
    the LSP default, "utf-8" or "utf-32"), or None when the position is not in the text."""
    width = _UNITS.get(encoding, _units_utf16)
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
        units += width(text[index])
        if units > character:
            return None  # inside a surrogate pair or a multi-byte character
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
