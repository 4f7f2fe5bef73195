"""The most recently opened, focused or edited files: where cross-file context comes from."""

from __future__ import annotations

from collections import OrderedDict

from ghostcomplete.context.languages import family_of

_MAX_TRACKED = 500


class RecentFiles:
    """A most-recently-used list of document URIs with their language families.

    Only ``file:`` URIs take part (local files only). The list is bounded so that a long
    session does not grow it without end; callers drop closed documents with ``forget``.
    """

    def __init__(self) -> None:
        self._families: OrderedDict[str, str] = OrderedDict()

    def touch(self, uri: str, language_id: str) -> None:
        """Mark ``uri`` as the most recently used file."""
        if not uri.startswith("file:"):
            return
        self._families.pop(uri, None)
        self._families[uri] = family_of(language_id)
        while len(self._families) > _MAX_TRACKED:
            self._families.popitem(last=False)

    def forget(self, uri: str) -> None:
        self._families.pop(uri, None)

    def recent(self, language_id: str, *, exclude: str, limit: int) -> list[str]:
        """Up to ``limit`` URIs of the same family as ``language_id``, most recent first."""
        family = family_of(language_id)
        found: list[str] = []
        for uri in reversed(self._families):
            if len(found) >= limit:
                break
            if uri != exclude and self._families[uri] == family:
                found.append(uri)
        return found

    def __len__(self) -> int:
        return len(self._families)
