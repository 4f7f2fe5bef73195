"""The snippets of the cursor's line, kept while the user types on it.

A model's KV cache is reused up to the first token that differs from the last prompt, and the
snippets come before the current file's text in every FIM layout. If each keystroke re-ranked
them, a snippet gained or lost would make the model re-read nearly the whole prompt. So the
snippets chosen for a line are kept as long as the cursor stays on that line with the same text
above it, the same text after it and the same other files: only the typed line differs, and
the choice is made again on the next line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.snippets import Snippet


@dataclass(frozen=True)
class LineKey:
    """What must not change for the snippets of the last request to be kept."""

    uri: str
    # The document's text before the cursor's line, and everything after the cursor.
    above: str
    after: str
    # The other files offered, with their versions.
    sources: tuple[tuple[str, int], ...]

    @classmethod
    def of(
        cls, uri: str, prefix: str, suffix: str, neighbours: Sequence[DocumentSnapshot]
    ) -> LineKey:
        above = prefix[: prefix.rfind("\n") + 1]
        return cls(uri, above, suffix, tuple((n.uri, n.version) for n in neighbours))


class SnippetsPerLine:
    """One remembered choice: the last line's (one cursor is typed at a time)."""

    def __init__(self) -> None:
        self._key: LineKey | None = None
        self._snippets: tuple[Snippet, ...] = ()

    def get(self, key: LineKey) -> list[Snippet] | None:
        """The snippets chosen for ``key``'s line, or None when the line is not the last."""
        return list(self._snippets) if key == self._key else None

    def put(self, key: LineKey, snippets: Sequence[Snippet]) -> None:
        self._key, self._snippets = key, tuple(snippets)

    def forget(self, uri: str) -> None:
        if self._key is not None and self._key.uri == uri:
            self.clear()

    def clear(self) -> None:
        self._key, self._snippets = None, ()
