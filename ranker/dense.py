"""Dense vectors of the snippet index's chunks, and brute-force cosine search over them.

The snippet index (ranker/index.py) tells this index which chunks a file has each time it
re-chunks the file, and that the file left. A chunk is embedded once: vectors are keyed by
the hash of the chunk's text, so a file re-chunked after an edit only sends its changed
chunks to the model. The work happens in one worker thread, never on the request path: a
search uses the vectors that are ready and BM25 covers the rest meanwhile. Vectors of files
that left the index are dropped from it; the last ``spare`` of them are kept aside, so that
a file closed and opened again (or shared text) costs nothing.

Searching is a matrix-vector product over the ready rows (unit vectors: dot = cosine), no
ANN index: 20 files of 2,000 lines are a few thousand rows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from ghostcomplete.ranker.index import Chunk

log = logging.getLogger("ghostcomplete.dense")

_SPARE = 16384  # about 24 MiB of float32 vectors of 384 dimensions
_QUERY_CACHE = 64
_WORKER_BATCH = 16


def chunk_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class DenseIndex:
    """Chunk vectors by text hash, filled by a worker thread; thread-safe."""

    def __init__(
        self,
        embed: Callable[[Sequence[str], bool], np.ndarray],
        spare: int = _SPARE,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self._embed = embed
        self._spare_limit = spare
        self._on_problem = on_problem
        self._lock = threading.Condition()
        self._files: dict[str, list[tuple[str, Chunk]]] = {}
        self._users: Counter[str] = Counter()
        self._vectors: dict[str, np.ndarray] = {}
        self._spare: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: OrderedDict[str, str] = OrderedDict()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._version = 0
        self._matrix: tuple[int, list[Chunk], np.ndarray] | None = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.problem: str | None = None
        self.embedded = 0  # chunk texts sent to the model
        self.embed_seconds = 0.0  # time the worker spent in the model

    # --- maintenance (called by the snippet index) ------------------------------------
    def update(self, uri: str, chunks: Sequence[Chunk]) -> None:
        """``uri`` now has ``chunks`` (none: it left the index)."""
        with self._lock:
            for key, _ in self._files.pop(uri, []):
                self._release(key)
            if chunks:
                entries = [(chunk_key(chunk.text), chunk) for chunk in chunks]
                self._files[uri] = entries
                for key, chunk in entries:
                    self._users[key] += 1
                    if key in self._vectors or key in self._pending:
                        continue
                    spare = self._spare.pop(key, None)
                    if spare is not None:
                        self._vectors[key] = spare
                    elif self.problem is None:
                        self._pending[key] = chunk.text
            self._version += 1
            if self._pending and not self._closed:
                self._start_worker()
                self._lock.notify_all()

    def _release(self, key: str) -> None:
        self._users[key] -= 1
        if self._users[key] > 0:
            return
        del self._users[key]
        self._pending.pop(key, None)
        vector = self._vectors.pop(key, None)
        if vector is not None and self._spare_limit:
            self._spare[key] = vector
            while len(self._spare) > self._spare_limit:
                self._spare.popitem(last=False)

    def _start_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="dense-index", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                batch = list(self._pending.items())[:_WORKER_BATCH]
                self._busy = True
            started = time.monotonic()
            try:
                vectors = self._embed([text for _, text in batch], False)
            except Exception as error:  # onnxruntime raises its own types
                self._fail(f"dense retrieval stopped: the embedding model failed ({error})")
                return
            with self._lock:
                self.embed_seconds += time.monotonic() - started
                self.embedded += len(batch)
                for (key, _), vector in zip(batch, vectors, strict=True):
                    if self._pending.pop(key, None) is not None:  # still wanted
                        self._vectors[key] = vector
                self._version += 1
                self._busy = False
                self._lock.notify_all()

    def _fail(self, message: str) -> None:
        log.warning("%s", message)
        with self._lock:
            self.problem = message
            self._pending.clear()
            self._busy = False
            self._lock.notify_all()
        if self._on_problem is not None:
            self._on_problem(message)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until every pending chunk is embedded (tests, the CLI); True if it was."""
        end = time.monotonic() + timeout
        with self._lock:
            while self._pending or self._busy:
                left = end - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._lock.wait(left)
        return True

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + (1 if self._busy else 0)

    @property
    def vectors(self) -> int:
        with self._lock:
            return len(self._vectors)

    # --- search -----------------------------------------------------------------------------
    def query_vector(self, text: str) -> np.ndarray | None:
        """The query's vector (the last few are cached: a repeated request costs nothing)."""
        if self.problem is not None or not text.strip():
            return None
        vector = self._queries.get(text)
        if vector is None:
            try:
                vector = self._embed([text], True)[0]
            except Exception as error:  # onnxruntime raises its own types
                self._fail(f"dense retrieval stopped: the embedding model failed ({error})")
                return None
            self._queries[text] = vector
            if len(self._queries) > _QUERY_CACHE:
                self._queries.popitem(last=False)
        return vector

    def search(
        self, query: np.ndarray, uris: Sequence[str], limit: int
    ) -> list[tuple[float, Chunk]]:
        """The ``limit`` chunks of ``uris`` nearest to ``query`` among those embedded."""
        chunks, matrix = self._ready()
        if not chunks or limit <= 0:
            return []
        allowed = set(uris)
        rows = np.fromiter((c.uri in allowed for c in chunks), dtype=bool, count=len(chunks))
        if not rows.any():
            return []
        indices = np.flatnonzero(rows)
        scores = matrix[indices] @ query
        top = min(limit, len(indices))
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(float(scores[i]), chunks[int(indices[i])]) for i in best]

    def _ready(self) -> tuple[list[Chunk], np.ndarray]:
        """The embedded chunks and their vectors as one matrix, rebuilt after changes."""
        with self._lock:
            cached = self._matrix
            if cached is not None and cached[0] == self._version:
                return cached[1], cached[2]
            chunks: list[Chunk] = []
            rows: list[np.ndarray] = []
            for entries in self._files.values():
                for key, chunk in entries:
                    vector = self._vectors.get(key)
                    if vector is not None:
                        chunks.append(chunk)
                        rows.append(vector)
            matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
            self._matrix = (self._version, chunks, matrix)
            return chunks, matrix
