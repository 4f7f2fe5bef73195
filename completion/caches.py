"""Answers from memory: typing through a shown suggestion, and prompts seen before.

Both are pure data structures; the session decides when to consult them. A cached answer is
only ever returned when the text around the cursor proves it still fits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ghostcomplete.backends import Candidate

# How much of the text around the cursor must be unchanged for a cached suggestion to apply.
_TAIL_CHARS = 512
_SUFFIX_CHARS = 256


@dataclass(frozen=True)
class Anchor:
    """Where a suggestion was made: the document cut at the cursor, in short."""

    prefix_length: int
    prefix_tail: str
    suffix_head: str

    @classmethod
    def of(cls, prefix: str, suffix: str) -> Anchor:
        return cls(len(prefix), prefix[-_TAIL_CHARS:], suffix[:_SUFFIX_CHARS])

    def typed_since(self, prefix: str, suffix: str) -> str | None:
        """What was typed at this anchor to reach ``prefix``/``suffix``; None if the text
        around the cursor changed in any other way."""
        if len(prefix) < self.prefix_length:
            return None
        start = self.prefix_length - len(self.prefix_tail)
        if prefix[start : self.prefix_length] != self.prefix_tail:
            return None
        if suffix[:_SUFFIX_CHARS] != self.suffix_head:
            return None
        return prefix[self.prefix_length :]


@dataclass(frozen=True)
class Suggestion:
    anchor: Anchor
    texts: tuple[str, ...]
    # Who wrote each text (a candidate's origin: "lookup:prefix", "onnx", ...), "" unknown.
    origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rest:
    """What is left of suggestions after the user typed their start, and who wrote each."""

    texts: list[str]
    origins: list[str]


def rest_after_typing(texts: Sequence[str], typed: str, origins: Sequence[str] = ()) -> Rest:
    """The remainders of the suggestions that ``typed`` is a start of (non-empty ones)."""
    writers = [*origins[: len(texts)], *[""] * (len(texts) - len(origins))]
    kept = [
        (text[len(typed) :], origin)
        for text, origin in zip(texts, writers, strict=True)
        if text.startswith(typed) and len(text) > len(typed)
    ]
    return Rest([text for text, _ in kept], [origin for _, origin in kept])


class TypingThroughCache:
    """The last few suggestions per document. Typing the start of one is answered with the
    rest of it; nothing is returned unless the text before and after the cursor proves it."""

    def __init__(self, per_document: int = 4) -> None:
        self._by_uri: dict[str, list[Suggestion]] = {}
        self._per_document = per_document

    def remember_at(
        self, uri: str, anchor: Anchor, texts: list[str], origins: Sequence[str] = ()
    ) -> None:
        if not texts:
            return
        entries = self._by_uri.setdefault(uri, [])
        entries.insert(0, Suggestion(anchor, tuple(texts), tuple(origins)))
        del entries[self._per_document :]

    def answer(self, uri: str, prefix: str, suffix: str) -> Rest | None:
        for entry in self._by_uri.get(uri, []):
            typed = entry.anchor.typed_since(prefix, suffix)
            if typed is None:
                continue
            rest = rest_after_typing(entry.texts, typed, entry.origins)
            if rest.texts:
                return rest
        return None

    def forget(self, uri: str) -> None:
        self._by_uri.pop(uri, None)

    def clear(self) -> None:
        self._by_uri.clear()


class PromptCache:
    """A bounded LRU of backend answers keyed on the rendered prompt and the limits."""

    def __init__(self, capacity: int = 256) -> None:
        self._entries: OrderedDict[Hashable, list[Candidate]] = OrderedDict()
        self._capacity = capacity

    def get(self, key: Hashable) -> list[Candidate] | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, candidates: list[Candidate]) -> None:
        self._entries[key] = candidates
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
