"""Identifiers of source text, minus the keywords every language shares."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Keywords of the languages we complete; they say nothing about what a snippet is about.
KEYWORDS = frozenset(
    # One string, split: easier to read and extend than a list of 200 quoted words.
    """
    False None True and as assert async await break class continue def del elif else except
    finally for from global if import in is lambda nonlocal not or pass raise return try
    while with yield self cls match case abstract arguments boolean byte catch char const
    debugger default delete do double enum eval export extends final float function goto
    implements instanceof int interface let long native new null package private protected
    public short static super switch synchronized this throw throws transient typeof var
    void volatile undefined of type readonly chan defer fallthrough func go map range select
    struct string error nil crate dyn extern fn impl loop mod move mut pub ref static trait
    unsafe use where Self auto extern register signed sizeof typedef union unsigned include
    define ifdef endif namespace template typename virtual operator friend inline std
    """.split()  # noqa: SIM905
)


def identifiers(text: str) -> list[str]:
    """The identifiers in ``text`` in order, keywords removed."""
    return [word for word in _IDENTIFIER.findall(text) if word not in KEYWORDS]
