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
        return "\x00" in self.text[:65536]

    @property
    def size_bytes(self) -> int:
        """The UTF-8 size, estimated cheaply from the character count for ASCII-heavy text."""
        return len(self.text.encode("utf-8", errors="surrogatepass"))
