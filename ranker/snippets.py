"""Choosing snippets from other files: Copilot's published baseline.

Copilot slides a 60-line window one line at a time over each recent file, scores each window
by the Jaccard similarity of its identifier set with the identifiers of the 60 lines before
the cursor, keeps the best window per file and the best 4 overall.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.identifiers import identifiers


@dataclass(frozen=True)
class Snippet:
    """A piece of another file offered to the model as context."""

    uri: str
    start_line: int  # 0-based
    text: str
    score: float
    # "window"/"chunk": lines as they are in the file; "signature": a definition summarized
    # (bodies elided), which is context for a model but not text to copy.
    kind: str = "chunk"


@dataclass(frozen=True)
class WindowSettings:
    window_lines: int = 60
    max_snippets: int = 4
    min_score: float = 0.0


class LineIdentifierCache:
    """Per-line identifier sets of documents, recomputed only when a document's version moves."""

    def __init__(self, max_documents: int = 64) -> None:
        self._entries: dict[str, tuple[int, int, list[frozenset[str]]]] = {}
        self._max_documents = max_documents

    def lines_of(self, document: DocumentSnapshot) -> list[frozenset[str]]:
        key = (document.version, hash(document.text))
        cached = self._entries.get(document.uri)
        if cached is not None and cached[:2] == key:
            return cached[2]
        sets = [frozenset(identifiers(line)) for line in document.text.split("\n")]
        self._entries[document.uri] = (*key, sets)
        if len(self._entries) > self._max_documents:
            self._entries.pop(next(iter(self._entries)))
        return sets

    def forget(self, uri: str) -> None:
        self._entries.pop(uri, None)


def best_window(
    line_sets: Sequence[frozenset[str]], reference: frozenset[str], window: int
) -> tuple[float, int]:
    """The (Jaccard score, start line) of the best ``window``-line window; earliest wins ties."""
    if not line_sets or not reference:
        return 0.0, 0
    counts: Counter[str] = Counter()
    shared = 0  # distinct identifiers in the window that are also in the reference

    def add(line: frozenset[str]) -> None:
        nonlocal shared
        for word in line:
            counts[word] += 1
            if counts[word] == 1 and word in reference:
                shared += 1

    def remove(line: frozenset[str]) -> None:
        nonlocal shared
        for word in line:
            counts[word] -= 1
            if counts[word] == 0:
                del counts[word]
                if word in reference:
                    shared -= 1

    width = min(window, len(line_sets))
    for line in line_sets[:width]:
        add(line)
    best_score = shared / (len(counts) + len(reference) - shared) if counts else 0.0
    best_start = 0
    for start in range(1, len(line_sets) - width + 1):
        remove(line_sets[start - 1])
        add(line_sets[start + width - 1])
        union = len(counts) + len(reference) - shared
        score = shared / union if union else 0.0
        if score > best_score:
            best_score, best_start = score, start
    return best_score, best_start


def copilot_snippets(
    prefix: str,
    neighbours: Sequence[DocumentSnapshot],
    cache: LineIdentifierCache,
    settings: WindowSettings = WindowSettings(),
) -> list[Snippet]:
    """Copilot's baseline: best Jaccard window per file, best ``max_snippets`` overall."""
    before = prefix.split("\n")[-settings.window_lines :]
    reference = frozenset(identifiers("\n".join(before)))
    found: list[Snippet] = []
    for document in neighbours:
        line_sets = cache.lines_of(document)
        score, start = best_window(line_sets, reference, settings.window_lines)
        if score <= settings.min_score:
            continue
        lines = document.text.split("\n")[start : start + settings.window_lines]
        found.append(Snippet(document.uri, start, "\n".join(lines), score))
    found.sort(key=lambda snippet: snippet.score, reverse=True)
    return found[: settings.max_snippets]
