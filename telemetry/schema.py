"""The telemetry database schema, as an ordered list of migrations.

``PRAGMA user_version`` holds the schema version. A new database runs every migration from 0,
so the migration code is what creates the tables: there is no second copy of the schema to
drift. Migrations run inside ``BEGIN IMMEDIATE``, so two servers opening the same old database
at once migrate it once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def _create_v1(db: sqlite3.Connection) -> None:
    """Version 1: requests, offered items, item events."""
    db.execute(
        """CREATE TABLE requests (
            completion_id TEXT PRIMARY KEY,
            at REAL NOT NULL,
            language TEXT NOT NULL,
            trigger TEXT NOT NULL,
            backend TEXT NOT NULL,
            cache TEXT,
            skipped TEXT,
            items INTEGER NOT NULL,
            total_ms REAL,
            timings_json TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE items (
            item_id TEXT PRIMARY KEY,
            completion_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            length INTEGER NOT NULL,
            lines INTEGER NOT NULL,
            digest TEXT NOT NULL,
            origin TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            item_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            at REAL NOT NULL,
            value INTEGER NOT NULL,
            detail TEXT
        )"""
    )
    db.execute("CREATE INDEX events_by_item ON events (item_id, kind)")
    db.execute("CREATE INDEX requests_by_time ON requests (at)")


def _add_v2(db: sqlite3.Connection) -> None:
    """Version 2: model, prompt tokens and snippets per request; opt-in item text;
    still-in-code checks."""
    db.execute("ALTER TABLE requests ADD COLUMN model TEXT")
    db.execute("ALTER TABLE requests ADD COLUMN prompt_tokens INTEGER")
    db.execute("ALTER TABLE requests ADD COLUMN snippets_json TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE items ADD COLUMN text TEXT")
    db.execute(
        """CREATE TABLE retention (
            item_id TEXT NOT NULL,
            after_s INTEGER NOT NULL,
            at REAL NOT NULL,
            retained INTEGER NOT NULL,
            distance INTEGER NOT NULL,
            length INTEGER NOT NULL,
            found INTEGER NOT NULL,
            PRIMARY KEY (item_id, after_s)
        )"""
    )
    db.execute("CREATE INDEX items_by_completion ON items (completion_id)")


def _add_v3(db: sqlite3.Connection) -> None:
    """Version 3: events that were recorded but could not be stored, counted per reason, so
    that a report can say how much it is missing."""
    db.execute(
        """CREATE TABLE dropped (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            reason TEXT NOT NULL,
            events INTEGER NOT NULL
        )"""
    )


MIGRATIONS: tuple[Migration, ...] = (_create_v1, _add_v2, _add_v3)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer ghostcomplete."""


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring ``db`` (opened with ``isolation_level=None``) to version ``target``; returns the
    version it had before. Raises SchemaTooNew for a database newer than this code."""
    if schema_version(db) == target:
        return target  # the common case, without taking the write lock
    db.execute("BEGIN IMMEDIATE")
    try:
        before = schema_version(db)  # again, under the lock: another process may have won
        if before > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"schema version {before} is newer than this ghostcomplete's {SCHEMA_VERSION}"
            )
        for version in range(before, target):
            MIGRATIONS[version](db)
        db.execute(f"PRAGMA user_version = {int(max(before, target))}")
        db.execute("COMMIT")
    except BaseException:
        rollback_quietly(db)
        raise
    return before


def rollback_quietly(db: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already done so.

    On some errors (a full disk, an I/O error) SQLite rolls the transaction back itself; a
    second ROLLBACK would then fail and its "no transaction is active" would replace the
    error the caller needs to see. A rollback that fails is left unsaid for the same reason.
    """
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
