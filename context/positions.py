"""LSP positions (line, UTF-16 code unit) to and from string offsets.

Strict by design: a position past the end of a line or the document, or one that falls inside
a surrogate pair, has no offset. Ghost text drawn at a guessed position is worse than none.
"""

from __future__ import annotations

from collections.abc import Callable


def _units_utf16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _units_utf8(ch: str) -> int:
    code = ord(ch)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _units_utf32(ch: str) -> int:
    return 1


_UNITS = {"utf-16": _units_utf16, "utf-8": _units_utf8, "utf-32": _units_utf32}


def unit_width(encoding: str) -> Callable[[str], int]:
    """How many code units of ``encoding`` ("utf-16" default, "utf-8", "utf-32") a character
    takes: the unit LSP positions count in."""
    return _UNITS.get(encoding, _units_utf16)


def _line_end(text: str, start: int) -> tuple[int, int]:
    """(end of the line starting at ``start``, start of the next line or -1). LSP's line
    breaks are LF, CRLF and a lone CR."""
    newline = text.find("\n", start)
    carriage = text.find("\r", start, newline if newline >= 0 else len(text))
    if carriage >= 0:
        after = carriage + 2 if text.startswith("\r\n", carriage) else carriage + 1
        return carriage, after
    if newline >= 0:
        return newline, newline + 1
    return len(text), -1


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int | None:
    """The index in ``text`` of an LSP position counted in ``encoding`` code units ("utf-16",
    the LSP default, "utf-8" or "utf-32"), or None when the position is not in the text."""
    width = unit_width(encoding)
    if line < 0 or character < 0:
        return None
    start = 0
    if "\r" not in text:  # the common case: one find per line
        for _ in range(line):
            start = text.find("\n", start) + 1
            if start == 0:
                return None
        newline = text.find("\n", start)
        end = len(text) if newline < 0 else newline
        if text.isascii():  # one code unit a character in every encoding
            return start + character if character <= end - start else None
    else:
        for _ in range(line):
            _, start = _line_end(text, start)
            if start < 0:
                return None
        end, _ = _line_end(text, start)
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
    line, start = 0, 0
    while True:
        _, following = _line_end(text, start)
        if following < 0 or following > offset:
            break
        line, start = line + 1, following
    return line, utf16_length(text[start:offset])


def utf16_length(text: str) -> int:
    """How many UTF-16 code units ``text`` takes (what LSP clients count)."""
    return sum(map(_units_utf16, text))


def prefix_of_utf16_length(text: str, units: int) -> str:
    """The longest start of ``text`` that takes at most ``units`` UTF-16 code units."""
    taken = 0
    for index, ch in enumerate(text):
        taken += _units_utf16(ch)
        if taken > units:
            return text[:index]
    return text
