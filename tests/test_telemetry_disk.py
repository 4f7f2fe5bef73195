"""Telemetry on disks that refuse writes: a full file system must be reported as full (not
as SQLite's "cannot rollback"), and ``ghostcomplete stats`` must read a database on a
read-only file system or in a read-only file.

The tests run as root, for whom chmod makes nothing read-only. So the real file systems come
from a user namespace: ``unshare --user --map-root-user --mount`` lets any user mount a small
tmpfs (a disk that fills up) or remount a bind mount read-only, which even root cannot write
through. The mounts live and die with that one child process. Where the kernel refuses user
namespaces those tests are skipped (saying so); the rest use SQLite's own limits."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import server_executable

from ghostcomplete.telemetry import stats as stats_module
from ghostcomplete.telemetry import store as store_module
from ghostcomplete.telemetry.events import Requested
from ghostcomplete.telemetry.schema import SCHEMA_VERSION, migrate, rollback_quietly
from ghostcomplete.telemetry.schema import schema_version as version_of
from ghostcomplete.telemetry.stats import collect
from ghostcomplete.telemetry.store import TelemetryStore, describe_problem, open_database

pytestmark = pytest.mark.timeout(60)


def _can_mount_in_a_user_namespace() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    tried = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return tried.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _can_mount_in_a_user_namespace(),
    reason="needs user namespaces (unshare -rm) to mount a full or read-only file system",
)


def in_namespace(script: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root of a new user + mount namespace."""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-euc", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def requested(completion_id: str) -> Requested:
    return Requested(
        completion_id, 1_700_000_000.0, "python", "automatic", "lookup", items=1,
        timings_ms={"total": 4.0},
    )  # fmt: skip


# --- a full disk --------------------------------------------------------------------------
_FILL_AND_OPEN = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from ghostcomplete.telemetry.stats import collect
    from ghostcomplete.telemetry.store import describe_problem, open_database

    folder = Path(sys.argv[1])
    results = []
    # Every amount of room left, page by page: the error depends on which write hits the end.
    for free in range(0, 64 * 1024, 4096):
        for name in os.listdir(folder):
            os.remove(folder / name)
        fd = os.open(folder / "fill", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        os.close(fd)
        os.truncate(folder / "fill", os.path.getsize(folder / "fill") - free)
        database = folder / "t.sqlite3"
        try:
            open_database(database).close()
            results.append({"free": free, "error": None})
            continue
        except Exception as error:
            entry = {"free": free, "error": str(error),
                     "message": describe_problem(database, error)}
        if database.exists():
            entry["stats"] = collect(database).note
        results.append(entry)
    print(json.dumps(results))
    """
)


@needs_mounts
def test_full_disk_reports_the_real_error(tmp_path: Path):
    script = tmp_path / "fill.py"
    script.write_text(_FILL_AND_OPEN)
    mount = tmp_path / "disk"
    mount.mkdir()
    ran = in_namespace(
        f"mount -t tmpfs -o size=256k tmpfs {mount}\n{sys.executable} {script} {mount}"
    )
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)
    failed = [entry for entry in results if entry["error"] is not None]
    assert failed, results  # the disk was full for at least the first few
    for entry in failed:
        assert "cannot rollback" not in entry["error"], entry
        assert "is full" in entry["message"], entry
        # Created but never written: the report says so instead of failing.
        assert entry.get("stats") in (
            None,
            "no telemetry recorded yet (the database has no tables)",
        )


def test_sqlite_rolling_back_by_itself_is_not_masked(tmp_path: Path):
    # SQLite ends the transaction itself on a full disk or an I/O error. RAISE(ROLLBACK) in a
    # trigger does the same thing for real, on any machine.
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON t BEGIN SELECT RAISE(ROLLBACK, 'no'); END")
    db.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError, match="no"):
        try:
            db.execute("INSERT INTO t VALUES (1)")
        except sqlite3.Error:
            assert not db.in_transaction
            rollback_quietly(db)  # would raise "cannot rollback" in the handler
            raise
    db.close()


def test_a_size_limit_during_migration_leaves_schema_zero_and_says_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A real SQLite limit (max_page_count) set on the store's connection before it migrates.
    real_migrate = store_module.migrate

    def migrate_with_no_room(db: sqlite3.Connection) -> int:
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        return real_migrate(db)

    monkeypatch.setattr(store_module, "migrate", migrate_with_no_room)
    path = tmp_path / "t.sqlite3"
    problems: list[str] = []
    store = TelemetryStore(path, on_problem=problems.append)
    store.record(requested("a"))
    assert store.flush()
    store.close()
    assert len(problems) == 1 and "is full" in problems[0], problems
    assert store.dropped == 1
    with sqlite3.connect(path) as db:
        assert version_of(db) == 0


def test_full_message_for_an_io_error_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A full tmpfs makes SQLite fail growing its -shm file, reported as "disk I/O error"
    # (checked for real in test_full_disk_reports_the_real_error). Here only the free space
    # is faked, to check the wording on machines without user namespaces.
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"  # type: ignore[attr-defined]
    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(total=1, used=1, free=0))
    assert "is full" in describe_problem(tmp_path / "t.sqlite3", error)


# --- a read-only file system or file ------------------------------------------------------
def _database(folder: Path, schema: int = SCHEMA_VERSION, writer_open: bool = False):
    """A database with two requests; with ``writer_open`` the second is only in the -wal,
    as a running server leaves it. Returns the open writer connection, if any."""
    folder.mkdir(exist_ok=True)
    path = folder / "t.sqlite3"
    if schema == SCHEMA_VERSION:
        db = open_database(path)
    else:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        migrate(db, target=schema)
    for name in ("a", "b"):
        db.execute(
            "INSERT INTO requests (completion_id, at, language, trigger, backend, items,"
            " total_ms, timings_json) VALUES (?, 1, 'python', 'automatic', 'lookup', 1, 5, '{}')",
            (name,),
        )
        if name == "a" and writer_open:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if writer_open:
        return db
    db.close()
    assert sorted(p.name for p in folder.iterdir()) == ["t.sqlite3"]
    return None


def _stats_read_only(target: Path, database: Path) -> subprocess.CompletedProcess[str]:
    """``ghostcomplete stats --json`` with ``target`` (folder or file) mounted read-only."""
    return in_namespace(
        f"mount --bind {target} {target}\n"
        f"mount -o remount,bind,ro {target}\n"
        f"if [ -w {target} ] && touch -c {target} 2>/dev/null; then exit 3; fi\n"
        f"{server_executable()} stats --json --db {database}"
    )


@needs_mounts
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("schema", "writer_open"),
    [(SCHEMA_VERSION, False), (SCHEMA_VERSION, True), (2, False)],
    ids=["closed", "writer-running", "older-schema"],
)
def test_stats_on_a_read_only_file_system(tmp_path: Path, schema: int, writer_open: bool):
    folder = tmp_path / "data"
    writer = _database(folder, schema, writer_open)
    try:
        ran = _stats_read_only(folder, folder / "t.sqlite3")
    finally:
        if writer is not None:
            writer.close()
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["total"]["requests"] == 2
    assert report["dropped"] == 0


@needs_mounts
@pytest.mark.e2e
def test_stats_on_a_read_only_file(tmp_path: Path):
    folder = tmp_path / "data"
    _database(folder)
    ran = _stats_read_only(folder / "t.sqlite3", folder / "t.sqlite3")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["total"]["requests"] == 2


def test_stats_reads_an_older_database_it_cannot_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # SQLite's own read-only switch (query_only) refuses the migration as a read-only disk
    # would; it runs on any machine.
    folder = tmp_path / "data"
    _database(folder, schema=2)

    def open_query_only(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA query_only = ON")
        migrate(db)
        return db

    monkeypatch.setattr(stats_module, "open_database", open_query_only)
    stats = collect(folder / "t.sqlite3")
    assert stats.total.requests == 2 and stats.dropped == 0
    with sqlite3.connect(folder / "t.sqlite3") as db:
        assert version_of(db) == 2
