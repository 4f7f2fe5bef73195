"""Immutable document snapshots: what every pure stage of the pipeline reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocumentSnapshot:
    """The text of one document at one version, as the editor last told us."""

    uri: str
    language_id: str
    text: str
    version: int = 0

    @property
    def looks_binary(self) -> bool:
        """NUL characters never occur in source code; their presence means a binary file."""
        return self.text.find("\x00", 0, 65536) >= 0

    def larger_than(self, limit: int) -> bool:
        """Whether the UTF-8 encoding of the text exceeds ``limit`` bytes (encoded only when
        the character count leaves the answer open)."""
        if len(self.text) > limit:
            return True
        if len(self.text) * 4 <= limit:
            return False
        return len(self.text.encode("utf-8", errors="surrogatepass")) > limit
