"""Figures from the telemetry database. Every number here is one SQL aggregate over stored
events, and ``DEFINITIONS`` says which: a figure in a report can always be traced back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.telemetry.retention import CHECKS_S
from ghostcomplete.telemetry.schema import SCHEMA_VERSION, schema_version
from ghostcomplete.telemetry.store import BUSY_TIMEOUT_MS, open_database

log = logging.getLogger("ghostcomplete.telemetry")

DEFINITIONS = {
    "requests": "rows of `requests` (one per inlineCompletion request answered)",
    "offered": "rows of `items` (suggestions returned to the editor)",
    "shown": "items with a `shown` event (value 1 = inferred: the client sends no didShow)",
    "noise": "items with a `noise` event (shown, gone within 250 ms)",
    "typedThrough": "items with a `typed_through` event (the user typed their beginning; "
    "the rest was offered again as a new item)",
    "accepted": "items with an `accepted` event",
    "partiallyAccepted": "items with a `partially_accepted` event and no `accepted` event",
    "rejected": "items with a `rejected` event (superseded, dismissed or 10 s timeout)",
    "acceptanceRate": "accepted / (shown - noise - typedThrough)",
    "acceptedChars": "sum of `accepted`.value, plus the largest `partially_accepted`.value of "
    "items never fully accepted (UTF-16 units)",
    "retention": "per check (seconds after accept): rows of `retention` with found = 1, and "
    "how many have retained = 1 (edit distance <= 50 % of the accepted length)",
    "latencyMs": "percentiles of `requests`.total_ms over requests that returned items",
    "latencyMsBySource": "the same, split by where the answer came from: backend = "
    "`requests`.cache is NULL or 'inflight' (the backend generated it, or the request waited "
    "on a generation already running); cache = 'typing' or 'prompt' (served from a cache "
    "while typing through a suggestion, or for a prompt asked before)",
    "dropped": "sum of `dropped`.events: events recorded but never stored (unstorable: the "
    "event itself could not be stored; unwritable: the database could not be written; "
    "queue_full; writer_failed), saved by the next write that succeeded",
}

_DAY = "date(r.at, 'unixepoch', 'localtime')"
_HOUR = "strftime('%Y-%m-%d %H:00', r.at, 'unixepoch', 'localtime')"
GROUPS = {"language": "r.language", "backend": "r.backend", "day": _DAY}

# Where an answer came from, by `requests`.cache: what the user waited for is the backend.
BACKEND, CACHE = "backend", "cache"
_CACHE_HITS = ("typing", "prompt")


def answer_source(cache: str | None) -> str:
    return CACHE if cache in _CACHE_HITS else BACKEND


_FATES = """
WITH fate AS (
  SELECT i.item_id, i.completion_id,
         MAX(e.kind = 'shown') AS shown,
         MAX(e.kind = 'noise') AS noise,
         MAX(e.kind = 'typed_through') AS typed_through,
         MAX(e.kind = 'rejected') AS rejected,
         MAX(CASE WHEN e.kind = 'accepted' THEN e.value END) AS accepted_len,
         MAX(CASE WHEN e.kind = 'partially_accepted' THEN e.value END) AS partial_len
  FROM items i LEFT JOIN events e ON e.item_id = i.item_id
  GROUP BY i.item_id
)
SELECT {key} AS key,
       COUNT(f.item_id),
       COALESCE(SUM(f.shown), 0),
       COALESCE(SUM(f.noise), 0),
       COALESCE(SUM(f.typed_through), 0),
       COALESCE(SUM(f.accepted_len IS NOT NULL), 0),
       COALESCE(SUM(f.accepted_len IS NULL AND f.partial_len IS NOT NULL), 0),
       COALESCE(SUM(f.rejected), 0),
       COALESCE(SUM(COALESCE(f.accepted_len, f.partial_len, 0)), 0)
FROM fate f JOIN requests r ON r.completion_id = f.completion_id
GROUP BY key ORDER BY key
"""


@dataclass
class Acceptance:
    requests: int = 0
    offered: int = 0
    shown: int = 0
    noise: int = 0
    accepted: int = 0
    partially_accepted: int = 0
    rejected: int = 0
    accepted_chars: int = 0
    typed_through: int = 0

    @property
    def acceptance_rate(self) -> float:
        seen = self.shown - self.noise - self.typed_through
        return round(self.accepted / seen, 4) if seen > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "offered": self.offered,
            "shown": self.shown,
            "noise": self.noise,
            "typedThrough": self.typed_through,
            "accepted": self.accepted,
            "partiallyAccepted": self.partially_accepted,
            "rejected": self.rejected,
            "acceptanceRate": self.acceptance_rate,
            "acceptedChars": self.accepted_chars,
        }


@dataclass
class Retention:
    after_s: int
    checked: int
    retained: int

    @property
    def rate(self) -> float:
        return round(self.retained / self.checked, 4) if self.checked else 0.0


@dataclass
class Latency:
    count: int
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: list[float]) -> Latency:
        if not values:
            return cls(0, 0.0, 0.0, 0.0)
        p50, p90, p99 = (round(float(v), 1) for v in np.percentile(values, [50, 90, 99]))
        return cls(len(values), p50, p90, p99)


@dataclass
class Stats:
    database: str
    generated_at: float
    total: Acceptance = field(default_factory=Acceptance)
    groups: dict[str, dict[str, Acceptance]] = field(default_factory=dict)
    retention: list[Retention] = field(default_factory=list)
    latency: dict[str, Latency] = field(default_factory=dict)  # "total" and each stage
    latency_by_backend: dict[str, Latency] = field(default_factory=dict)
    latency_by_source: dict[str, Latency] = field(default_factory=dict)  # BACKEND and CACHE
    by_hour: dict[str, Acceptance] = field(default_factory=dict)
    # total_ms of each request that returned items, by source: for the histogram
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "generatedAt": self.generated_at,
            "schemaVersion": SCHEMA_VERSION,
            "note": self.note,
            "total": self.total.to_json(),
            **{
                f"by{name.title()}": {key: value.to_json() for key, value in rows.items()}
                for name, rows in self.groups.items()
            },
            "retention": [
                {"afterS": r.after_s, "checked": r.checked, "retained": r.retained, "rate": r.rate}
                for r in self.retention
            ],
            "latencyMs": {stage: asdict(value) for stage, value in self.latency.items()},
            "latencyMsBySource": {
                source: asdict(value) for source, value in self.latency_by_source.items()
            },
            "latencyMsByBackend": {
                backend: asdict(value) for backend, value in self.latency_by_backend.items()
            },
            "dropped": self.dropped,
            "droppedByReason": dict(self.dropped_by_reason),
            "definitions": DEFINITIONS,
        }


def _connect_read_only(path: Path, mode: str) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?{mode}"
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        schema_version(db)  # SQLite opens lazily: fail here, not in the middle of a report
    except BaseException:
        db.close()
        raise
    return db


def open_for_reading(path: Path) -> sqlite3.Connection:
    """A read-only connection; an older database is migrated first where it can be written.

    A reader of a WAL database needs its shared-memory file (``-shm``), which it must create
    if no writer left one; on a read-only file system that fails with "unable to open
    database file", so the file is then read as immutable (without what a running writer
    still holds in its ``-wal``). A database that cannot be migrated is read as it is.
    """
    try:
        db = _connect_read_only(path, "mode=ro")
    except sqlite3.OperationalError as error:
        log.info("reading %s as immutable (%s)", path, error)
        db = _connect_read_only(path, "immutable=1")
    if schema_version(db) >= SCHEMA_VERSION:
        return db
    try:
        migrated = open_database(path)
    except (sqlite3.Error, OSError) as error:
        log.info("reading %s without migrating it (%s)", path, error)
        return db
    db.close()
    return migrated


def collect(path: Path) -> Stats:
    """Every figure of the report, from the database at ``path``."""
    stats = Stats(str(path), time.time())
    if not path.exists():
        stats.note = "no telemetry recorded yet (the database does not exist)"
        return stats
    db = open_for_reading(path)
    try:
        if not _has_table(db, "requests"):  # created, never written (say, on a full disk)
            stats.note = "no telemetry recorded yet (the database has no tables)"
            return stats
        _collect_into(db, stats)
    finally:
        db.close()
    return stats


def _acceptance_by(db: sqlite3.Connection, key: str) -> dict[str, Acceptance]:
    rows: dict[str, Acceptance] = {}
    for key_value, *numbers in db.execute(_FATES.format(key=key)):
        offered, shown, noise, typed, accepted, partial, rejected, chars = numbers
        rows[str(key_value)] = Acceptance(
            0, offered, shown, noise, accepted, partial, rejected, chars, typed
        )
    for key_value, count in db.execute(
        f"SELECT {key} AS key, COUNT(*) FROM requests r GROUP BY key"
    ):
        rows.setdefault(str(key_value), Acceptance()).requests = count
    return dict(sorted(rows.items()))


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _collect_into(db: sqlite3.Connection, stats: Stats) -> None:
    stats.total = _acceptance_by(db, "'all'").get("all", Acceptance())
    stats.groups = {name: _acceptance_by(db, key) for name, key in GROUPS.items()}
    stats.by_hour = _acceptance_by(db, _HOUR)
    checked = (
        {
            after: (count, retained)
            for after, count, retained in db.execute(
                "SELECT after_s, COUNT(*), SUM(retained) FROM retention WHERE found = 1"
                " GROUP BY after_s"
            )
        }
        if _has_table(db, "retention")
        else {}
    )
    stats.retention = [
        Retention(after, *checked.get(after, (0, 0))) for after in sorted({*CHECKS_S, *checked})
    ]
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    by_backend: dict[str, list[float]] = {}
    by_source: dict[str, list[float]] = {BACKEND: [], CACHE: []}
    for backend, cache, total, timings in db.execute(
        "SELECT backend, cache, total_ms, timings_json FROM requests WHERE items > 0"
    ):
        if total is not None:
            totals.append(float(total))
            by_backend.setdefault(backend, []).append(float(total))
            by_source[answer_source(cache)].append(float(total))
        for stage, ms in json.loads(timings).items():
            if stage != "total" and isinstance(ms, int | float):
                stages.setdefault(stage, []).append(float(ms))
    stats.latencies_ms = by_source
    stats.latency = {"total": Latency.of(totals)}
    stats.latency.update({stage: Latency.of(values) for stage, values in sorted(stages.items())})
    stats.latency_by_backend = {name: Latency.of(v) for name, v in sorted(by_backend.items())}
    stats.latency_by_source = {source: Latency.of(v) for source, v in by_source.items()}
    if _has_table(db, "dropped"):
        stats.dropped_by_reason = {
            str(reason): int(events)
            for reason, events in db.execute(
                "SELECT reason, SUM(events) FROM dropped GROUP BY reason ORDER BY reason"
            )
        }
