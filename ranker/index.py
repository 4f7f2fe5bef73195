"""The snippet index: chunks of the recently used files with their term statistics, and BM25.

Each file is chunked (ranker/chunks.py) and its chunks' identifier counts go into one
inverted index. A file is re-indexed only when its text changed since it was indexed, and only
when it is needed as context: a keystroke in the file being edited costs nothing here (that
file is never its own context), and switching to another file re-indexes the one left behind
once. Files leave the index when they leave the recent-files list.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.chunks import chunk_spans
from ghostcomplete.ranker.identifiers import identifiers

K1 = 1.2
B = 0.75
# Terms in more than this share of all chunks are skipped by queries.
_MAX_DOCUMENT_FREQUENCY = 0.5


@dataclass(frozen=True)
class Chunk:
    uri: str
    start_line: int
    end_line: int
    text: str
    kind: str
    length: int  # identifiers in the chunk (the BM25 document length)
    terms: frozenset[str]


@dataclass
class _FileEntry:
    version: int
    text_hash: int
    chunk_ids: list[int]


class SnippetIndex:
    def __init__(self, max_files: int = 64) -> None:
        self._chunks: dict[int, Chunk] = {}
        self._postings: dict[str, dict[int, int]] = {}
        self._files: OrderedDict[str, _FileEntry] = OrderedDict()
        self._max_files = max_files
        self._next_id = 0
        self._total_length = 0
        # Rebuilt after the index changed (the average length moves every norm): a row per
        # chunk, each row's file, and per query term its rows and saturated term frequencies.
        self._rows: _Rows | None = None
        # Told a file's new chunks each time it is (re)indexed, and [] when it leaves: the
        # dense index (ranker/dense.py) follows this one.
        self.listener: Callable[[str, list[Chunk]], None] | None = None

    # --- maintenance ---------------------------------------------------------------------
    def ensure(self, document: DocumentSnapshot) -> bool:
        """Index ``document`` unless its current text is indexed already; True if it was."""
        text_hash = hash(document.text)
        entry = self._files.get(document.uri)
        if entry is not None and entry.version == document.version and entry.text_hash == text_hash:
            self._files.move_to_end(document.uri)
            return False
        self._drop(document.uri)
        self._rows = None
        lines = document.text.split("\n")
        ids: list[int] = []
        for span in chunk_spans(document.text, document.language_id):
            text = "\n".join(lines[span.start : span.end])
            counts = Counter(identifiers(text))
            if not counts:
                continue
            chunk_id = self._next_id
            self._next_id += 1
            length = sum(counts.values())
            self._chunks[chunk_id] = Chunk(
                document.uri, span.start, span.end, text, span.kind, length, frozenset(counts)
            )
            self._total_length += length
            for term, count in counts.items():
                self._postings.setdefault(term, {})[chunk_id] = count
            ids.append(chunk_id)
        self._files[document.uri] = _FileEntry(document.version, text_hash, ids)
        if self.listener is not None:
            self.listener(document.uri, [self._chunks[i] for i in ids])
        while len(self._files) > self._max_files:
            self.remove(next(iter(self._files)))
        return True

    def remove(self, uri: str) -> None:
        if self._drop(uri) and self.listener is not None:
            self.listener(uri, [])

    def _drop(self, uri: str) -> bool:
        entry = self._files.pop(uri, None)
        if entry is None:
            return False
        self._rows = None
        for chunk_id in entry.chunk_ids:
            chunk = self._chunks.pop(chunk_id)
            self._total_length -= chunk.length
            for term in chunk.terms:
                posting = self._postings.get(term)
                if posting is not None:
                    posting.pop(chunk_id, None)
                    if not posting:
                        del self._postings[term]
        return True

    def chunks_of(self, uri: str) -> list[Chunk]:
        entry = self._files.get(uri)
        return [self._chunks[i] for i in entry.chunk_ids] if entry is not None else []

    @property
    def uris(self) -> list[str]:
        return list(self._files)

    @property
    def files(self) -> int:
        return len(self._files)

    @property
    def chunks(self) -> int:
        return len(self._chunks)

    # --- search ----------------------------------------------------------------------------
    def search(
        self, query: Counter[str], uris: Sequence[str], limit: int
    ) -> list[tuple[float, Chunk]]:
        """The best ``limit`` chunks of the files ``uris`` for ``query`` by BM25."""
        allowed = set(uris)
        count = len(self._chunks)
        if not count or not query or not allowed or limit <= 0:
            return []
        rows = self._current_rows()
        scores = np.zeros(len(rows.chunk_ids))
        for term, query_count in query.items():
            found = rows.term(term, self._postings.get(term), count)
            if found is None:
                continue
            at, saturated, idf = found
            scores[at] += idf * (1 + math.log(query_count)) * (K1 + 1) * saturated
        if not allowed.issuperset(self._files):
            files = [i for i, uri in enumerate(rows.uris) if uri in allowed]
            scores[~np.isin(rows.file_of, files)] = 0.0
        keep = min(limit * 4, int(np.count_nonzero(scores)))
        if keep == 0:
            return []
        # Highest score first; among equals the chunk indexed first, as a stable sort gives.
        best = (
            np.argpartition(-scores, keep - 1)[:keep]
            if keep < len(scores)
            else np.arange(len(scores))
        )
        best = best[np.lexsort((best, -scores[best]))]
        return [(float(scores[row]), self._chunks[rows.chunk_ids[row]]) for row in best]

    def _current_rows(self) -> _Rows:
        if self._rows is None:
            average = self._total_length / max(1, len(self._chunks))
            ids = sorted(self._chunks)
            uris = list(self._files)
            file_index = {uri: i for i, uri in enumerate(uris)}
            self._rows = _Rows(
                chunk_ids=ids,
                row_of={chunk_id: row for row, chunk_id in enumerate(ids)},
                norms=np.array([K1 * (1 - B + B * self._chunks[i].length / average) for i in ids]),
                uris=uris,
                file_of=np.array([file_index[self._chunks[i].uri] for i in ids], dtype=np.int64),
            )
        return self._rows


@dataclass
class _Rows:
    """The index laid out for numpy: BM25 over all chunks in a few array operations."""

    chunk_ids: list[int]
    row_of: dict[int, int]
    norms: np.ndarray  # K1·(1 − B + B·length/average) per row
    uris: list[str]
    file_of: np.ndarray  # index into ``uris`` per row
    terms: dict[str, tuple[np.ndarray, np.ndarray, float] | None] = field(default_factory=dict)

    def term(
        self, term: str, posting: dict[int, int] | None, count: int
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(rows, tf/(tf + norm), idf) of ``term``; None when it is absent or so common that
        it says nothing."""
        if term in self.terms:
            return self.terms[term]
        found = None
        if posting and len(posting) <= count * _MAX_DOCUMENT_FREQUENCY:
            at = np.fromiter((self.row_of[c] for c in posting), np.int64, len(posting))
            tf = np.fromiter(posting.values(), np.float64, len(posting))
            idf = math.log(1 + (count - len(posting) + 0.5) / (len(posting) + 0.5))
            found = (at, tf / (tf + self.norms[at]), idf)
        self.terms[term] = found
        return found
