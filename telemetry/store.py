"""The event store: SQLite in WAL mode, written by one background thread per process.

``record`` only puts the event on a queue, so a completion never waits for the disk. The
writer thread commits what has queued at least every ``flush_interval_s`` (0.2 s) in one
transaction: a kill -9 loses what was committed never, and what was still in memory only if
it was younger than that. Several processes may write one database: WAL lets readers and the
writer proceed together, ``BEGIN IMMEDIATE`` + a busy timeout serialise the writers.

A database that cannot be written (read-only, disk full, corrupt, newer schema) produces one
message through ``on_problem``; events are then dropped (and counted) and the store tries
again after ``retry_after_s``. One event that cannot be stored (text SQLite cannot encode,
such as a lone surrogate from a client) is dropped and counted alone; the rest of its batch
is written. Drops are saved with the next successful commit (table ``dropped``), so that
``ghostcomplete stats`` can say what is missing. Nothing here ever raises into the caller,
and nothing stops the writer thread but ``close``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ghostcomplete.telemetry.events import (
    ItemEvent,
    Offered,
    Requested,
    RetentionChecked,
    TelemetryEvent,
)
from ghostcomplete.telemetry.schema import SchemaTooNew, migrate, rollback_quietly

log = logging.getLogger("ghostcomplete.telemetry")

PATH_VARIABLE = "GHOSTCOMPLETE_TELEMETRY_PATH"
BUSY_TIMEOUT_MS = 5000
_MAX_BATCH = 1000
_LOCKED_RETRIES = 3
_NEARLY_FULL_BYTES = 1 << 20

# Why events were dropped, as stored in ``dropped.reason``.
UNSTORABLE = "unstorable"  # the event itself cannot be stored (say, text SQLite cannot encode)
UNWRITABLE = "unwritable"  # the database could not be written (read-only, full, damaged)
QUEUE_FULL = "queue_full"  # recorded faster than the disk took them
WRITER_FAILED = "writer_failed"  # an unexpected error in the writer; it carries on

# Errors that belong to one event, not to the database: the event is dropped, its batch kept.
_EVENT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # UnicodeEncodeError included
    TypeError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
)


def default_path() -> Path:
    """$GHOSTCOMPLETE_TELEMETRY_PATH, else $XDG_DATA_HOME/ghostcomplete/telemetry.sqlite3
    (~/.local/share when XDG_DATA_HOME is unset)."""
    explicit = os.environ.get(PATH_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "ghostcomplete" / "telemetry.sqlite3"


def resolve_path(configured: str | None) -> Path:
    """The database path: the ``telemetry.path`` setting if given, else ``default_path()``."""
    return Path(configured).expanduser() if configured else default_path()


def open_database(path: Path) -> sqlite3.Connection:
    """A connection for writing, WAL mode, migrated to the current schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.info("telemetry database %s is in %s mode, not WAL", path, mode)
        # In WAL mode NORMAL survives a process crash; only power loss can undo a commit.
        db.execute("PRAGMA synchronous = NORMAL")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def describe_problem(path: Path, error: BaseException) -> str:
    """One sentence a user can act on."""
    text = str(error).lower()
    where = f"the telemetry database {path}"
    if isinstance(error, SchemaTooNew):
        return f"ghostcomplete: {where} was written by a newer version ({error}); not recording"
    if "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
        return f"ghostcomplete: cannot write {where} (read-only); telemetry is paused"
    if "full" in text or getattr(error, "errno", None) == errno.ENOSPC or _disk_full(path, error):
        return f"ghostcomplete: the disk holding {where} is full; telemetry is paused"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"ghostcomplete: {where} is damaged ({error}); move it away to start a new one. "
            "Telemetry is paused"
        )
    if "unable to open" in text:
        return f"ghostcomplete: cannot open {where} ({error}); telemetry is paused"
    return f"ghostcomplete: telemetry could not be written to {path} ({error}); paused"


def _disk_full(path: Path, error: BaseException) -> bool:
    """An I/O error on a disk with no room left: a full disk fails growing the WAL index
    (SQLITE_IOERR_SHMSIZE) or a write, which SQLite reports as a plain "disk I/O error"."""
    if not str(getattr(error, "sqlite_errorname", "")).startswith("SQLITE_IOERR"):
        return False
    try:
        return shutil.disk_usage(path.parent).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _is_transient(error: BaseException) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class TelemetryStore:
    """Queue in front, SQLite behind. Thread-safe ``record``; ``close`` flushes."""

    def __init__(
        self,
        path: Path,
        on_problem: Callable[[str], None] | None = None,
        flush_interval_s: float = 0.2,
        retry_after_s: float = 60.0,
        max_queue: int = 100_000,
    ) -> None:
        self.path = path
        self.on_problem = on_problem
        self.flush_interval_s = flush_interval_s
        self.retry_after_s = retry_after_s
        self.written = 0
        self.commits = 0
        self.problem: str | None = None
        # Drops of this store's lifetime, and those not yet saved in the database.
        self._dropped_by_reason: Counter[str] = Counter()
        self._unsaved_drops: Counter[str] = Counter()
        self._drops_lock = threading.Lock()
        self._warned_unstorable = False
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._db: sqlite3.Connection | None = None
        self._paused_until = 0.0
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="ghostcomplete-telemetry-writer", daemon=True
        )
        self._thread.start()

    # --- called from any thread ---------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Events recorded in this store's lifetime that were not stored."""
        return sum(self.dropped_by_reason.values())

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        """``dropped`` per reason (UNSTORABLE, UNWRITABLE, ...): a copy."""
        with self._drops_lock:
            return dict(self._dropped_by_reason)

    def record(self, event: TelemetryEvent) -> None:
        """Queue ``event``; never blocks, never raises."""
        if self._closed:
            return
        if not self._thread.is_alive():
            self._drop(WRITER_FAILED, 1)
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._drop(QUEUE_FULL, 1)

    def _drop(self, reason: str, events: int) -> None:
        if events <= 0:
            return
        with self._drops_lock:
            self._dropped_by_reason[reason] += events
            self._unsaved_drops[reason] += events

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything recorded so far is committed (or dropped)."""
        if self._closed or not self._thread.is_alive():
            return False
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is queued and stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # --- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        running = True
        while running:
            first = self._queue.get()
            batch: list[TelemetryEvent] = []
            markers: list[_Flush] = []
            running = self._collect(first, batch, markers)
            deadline = time.monotonic() + self.flush_interval_s
            while running and not markers and len(batch) < _MAX_BATCH:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                running = self._collect(item, batch, markers)
            try:
                if batch or (self._unsaved_drops and markers):
                    self._write(batch)
            except Exception:  # a bug here must cost this batch, not every later event
                log.exception("telemetry writer failed; %d events dropped", len(batch))
                self._drop(WRITER_FAILED, len(batch))
                self._close_database()
            finally:
                for marker in markers:
                    marker.done.set()
        if self._unsaved_drops and time.monotonic() >= self._paused_until:
            with contextlib.suppress(Exception):  # stopping: the counts were logged already
                self._write([])
        self._close_database()

    def _close_database(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _collect(self, item: object, batch: list[TelemetryEvent], markers: list[_Flush]) -> bool:
        if item is _STOP:
            return False
        if isinstance(item, _Flush):
            markers.append(item)
        elif isinstance(item, Requested | Offered | ItemEvent | RetentionChecked):
            batch.append(item)
        return True

    def _write(self, batch: list[TelemetryEvent]) -> None:
        if time.monotonic() < self._paused_until:
            self._drop(UNWRITABLE, len(batch))
            return
        for attempt in range(_LOCKED_RETRIES + 1):
            with self._drops_lock:
                saving = Counter(self._unsaved_drops)
            try:
                if self._db is None:
                    self._db = open_database(self.path)
                unstorable = self._commit(self._db, batch, saving)
            except (sqlite3.Error, OSError, SchemaTooNew) as error:
                if _is_transient(error) and attempt < _LOCKED_RETRIES:
                    continue  # another writer held the lock past the busy timeout
                self._fail(error, len(batch))
                return
            with self._drops_lock:
                self._unsaved_drops -= saving
                if unstorable:
                    self._dropped_by_reason[UNSTORABLE] += unstorable
            self.written += len(batch) - unstorable
            self.commits += 1
            if self.problem is not None:
                log.info("telemetry database %s is writable again", self.path)
                self.problem = None
            return

    def _commit(
        self, db: sqlite3.Connection, batch: list[TelemetryEvent], saving: Counter[str]
    ) -> int:
        """Insert ``batch`` and the drop counts ``saving`` in one transaction; returns how
        many events of the batch could not be stored (they are counted in the same rows)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            unstorable = 0
            for event in batch:
                try:
                    _insert(db, event)
                except _EVENT_ERRORS as error:
                    unstorable += 1
                    self._log_unstorable(event, error)
            drops = saving + Counter({UNSTORABLE: unstorable})
            now = time.time()
            for reason, events in sorted(drops.items()):
                db.execute(
                    "INSERT INTO dropped (at, reason, events) VALUES (?, ?, ?)",
                    (now, reason, events),
                )
            db.execute("COMMIT")
        except BaseException:
            rollback_quietly(db)
            raise
        return unstorable

    def _log_unstorable(self, event: TelemetryEvent, error: BaseException) -> None:
        """Loud the first time, quiet after: one client bug can repeat on every keystroke."""
        first, self._warned_unstorable = not self._warned_unstorable, True
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "telemetry: dropped a %s event that cannot be stored (%s: %s)",
            type(event).__name__,
            type(error).__name__,
            error,
        )

    def _fail(self, error: BaseException, lost: int) -> None:
        self._drop(UNWRITABLE, lost)
        self._paused_until = time.monotonic() + self.retry_after_s
        self._close_database()
        message = describe_problem(self.path, error)
        log.warning("%s", message)
        self.problem = message
        if self.on_problem is not None:
            try:
                self.on_problem(message)
            except Exception:
                log.exception("telemetry problem callback failed")


def _insert(db: sqlite3.Connection, event: TelemetryEvent) -> None:
    if isinstance(event, ItemEvent):
        db.execute(
            "INSERT INTO events (item_id, kind, at, value, detail) VALUES (?, ?, ?, ?, ?)",
            (event.item_id, event.kind.value, event.at, event.value, event.detail),
        )
    elif isinstance(event, Requested):
        db.execute(
            "INSERT OR REPLACE INTO requests (completion_id, at, language, trigger, backend,"
            " cache, skipped, items, total_ms, timings_json, model, prompt_tokens, snippets_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.completion_id,
                event.at,
                event.language,
                event.trigger,
                event.backend,
                event.cache,
                event.skipped,
                event.items,
                event.timings_ms.get("total"),
                json.dumps(event.timings_ms, sort_keys=True),
                event.model,
                event.prompt_tokens,
                json.dumps([asdict(snippet) for snippet in event.snippets]),
            ),
        )
    elif isinstance(event, Offered):
        db.execute(
            "INSERT OR IGNORE INTO items (item_id, completion_id, idx, length, lines, digest,"
            " origin, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.item_id,
                event.completion_id,
                event.index,
                event.length,
                event.lines,
                event.digest,
                event.origin,
                event.text,
            ),
        )
    elif isinstance(event, RetentionChecked):
        db.execute(
            "INSERT OR REPLACE INTO retention (item_id, after_s, at, retained, distance, length,"
            " found) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.item_id,
                event.after_s,
                event.at,
                int(event.retained),
                event.distance,
                event.length,
                int(event.found),
            ),
        )
    else:  # a bug in the caller, not a disk problem: never let it poison the batch
        log.error("not a telemetry event: %r", event)
