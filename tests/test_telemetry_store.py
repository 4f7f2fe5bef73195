"""The SQLite event store, with real database files: batching, several writer processes,
SIGKILL mid-stream, migrations, and databases that cannot be written."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ghostcomplete.telemetry import store as store_module
from ghostcomplete.telemetry.events import ItemEvent, Offered, Outcome, Requested
from ghostcomplete.telemetry.schema import SCHEMA_VERSION, migrate, schema_version
from ghostcomplete.telemetry.stats import collect
from ghostcomplete.telemetry.store import TelemetryStore, default_path, open_database

pytestmark = pytest.mark.timeout(60)


def requested(completion_id: str, at: float = 1_700_000_000.0) -> Requested:
    return Requested(completion_id, at, "python", "automatic", "lookup", timings_ms={"total": 3})


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_default_path_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(store_module.PATH_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "ghostcomplete" / "telemetry.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home/.local/share/ghostcomplete/telemetry.sqlite3"
    monkeypatch.setenv(store_module.PATH_VARIABLE, str(tmp_path / "x.sqlite3"))
    assert default_path() == tmp_path / "x.sqlite3"
    assert store_module.resolve_path(str(tmp_path / "y.db")) == tmp_path / "y.db"


def test_new_database_is_wal_and_current(tmp_path: Path):
    path = tmp_path / "deep" / "dir" / "t.sqlite3"
    store = TelemetryStore(path)
    store.record(requested("a"))
    assert store.flush()
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert schema_version(db) == SCHEMA_VERSION
    assert count(path, "requests") == 1


def test_record_never_waits_for_the_disk(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    store = TelemetryStore(path)
    # Another process-like holder of the write lock: the writer thread must wait, not us.
    blocker = sqlite3.connect(path, isolation_level=None)
    store.record(requested("warm"))
    assert store.flush()
    blocker.execute("BEGIN IMMEDIATE")
    started = time.perf_counter()
    for index in range(2000):
        store.record(requested(f"r{index}"))
    elapsed = time.perf_counter() - started
    blocker.execute("COMMIT")
    assert store.flush(10)
    store.close()
    assert elapsed < 0.5, f"recording 2000 events took {elapsed:.3f}s"
    assert count(path, "requests") == 2001


def test_batches_commit_together(tmp_path: Path):
    store = TelemetryStore(tmp_path / "t.sqlite3", flush_interval_s=0.5)
    for index in range(300):
        store.record(requested(f"r{index}"))
    assert store.flush()
    store.close()
    assert store.written == 300
    assert store.commits <= 3


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ghostcomplete.telemetry.events import ItemEvent, Outcome, Requested
    from ghostcomplete.telemetry.store import TelemetryStore

    path, name, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = TelemetryStore(path, flush_interval_s=0.01)
    for i in range(n):
        cid = f"{name}-{i}"
        store.record(Requested(cid, time.time(), "python", "automatic", "lookup"))
        store.record(ItemEvent(cid + "-0", Outcome.SHOWN, time.time()))
        if i % 50 == 0:
            time.sleep(0.005)
    store.close(30)
    print(store.written, store.dropped, store.problem)
    """
)


def test_concurrent_writer_processes(tmp_path: Path):
    path = tmp_path / "shared.sqlite3"
    # Start from the previous schema: the writers also race to migrate it.
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, target=SCHEMA_VERSION - 1)
    db.close()
    writers, per_writer = 4, 400
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"w{n}", str(per_writer)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    for process in processes:
        out, err = process.communicate(timeout=50)
        assert process.returncode == 0, err
        written, dropped, problem = out.split()
        assert (int(written), int(dropped), problem) == (2 * per_writer, 0, "None")
    assert count(path, "requests") == writers * per_writer
    assert count(path, "events") == writers * per_writer
    with sqlite3.connect(path) as db:
        assert schema_version(db) == SCHEMA_VERSION
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


_STREAMER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ghostcomplete.telemetry.events import Requested
    from ghostcomplete.telemetry.store import TelemetryStore

    store = TelemetryStore(Path(sys.argv[1]))
    i = 0
    while True:
        store.record(Requested(str(i), time.time(), "python", "automatic", "lookup"))
        print(i, time.time(), flush=True)
        i += 1
        time.sleep(0.001)
    """
)


def test_sigkill_mid_stream_loses_only_the_last_second(tmp_path: Path):
    path = tmp_path / "killed.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-c", _STREAMER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    recorded: list[tuple[int, float]] = []
    started = time.time()
    while time.time() - started < 2.5:
        index, at = process.stdout.readline().split()
        recorded.append((int(index), float(at)))
    killed_at = time.time()
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert len(recorded) > 300
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = sorted(int(row[0]) for row in db.execute("SELECT completion_id FROM requests"))
    # Commits are whole batches in order: what is there is a prefix, with no holes ...
    assert stored == list(range(len(stored)))
    # ... and it holds everything recorded more than a second before the kill.
    older = [index for index, at in recorded if at < killed_at - 1.0]
    assert older and len(stored) > max(older)


def test_migrates_a_previous_version_database(tmp_path: Path):
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, target=1)
    db.execute(
        "INSERT INTO requests (completion_id, at, language, trigger, backend, cache, skipped,"
        " items, total_ms, timings_json) VALUES ('old', 1.7e9, 'go', 'automatic', 'lookup',"
        " NULL, NULL, 1, 12.5, '{\"total\": 12.5}')"
    )
    db.execute(
        "INSERT INTO items (item_id, completion_id, idx, length, lines, digest, origin)"
        " VALUES ('old-0', 'old', 0, 10, 1, 'abc', 'lookup')"
    )
    db.execute("INSERT INTO events (item_id, kind, at, value) VALUES ('old-0', 'shown', 1.7e9, 0)")
    db.execute(
        "INSERT INTO events (item_id, kind, at, value) VALUES ('old-0', 'accepted', 1.7e9, 10)"
    )
    db.close()

    store = TelemetryStore(path)
    store.record(requested("new"))
    store.record(Offered("new-0", "new", 0, 5, 1, "def", text="x = 1"))
    assert store.flush()
    store.close()
    assert store.problem is None
    with sqlite3.connect(path) as db:
        assert schema_version(db) == SCHEMA_VERSION
        old = db.execute(
            "SELECT language, model, prompt_tokens, snippets_json FROM requests"
            " WHERE completion_id = 'old'"
        ).fetchone()
        assert old == ("go", None, None, "[]")
        assert db.execute("SELECT text FROM items WHERE item_id = 'new-0'").fetchone() == ("x = 1",)
    stats = collect(path)
    assert stats.total.requests == 2 and stats.total.accepted == 1
    assert stats.groups["language"]["go"].acceptance_rate == 1.0


def test_a_newer_schema_is_left_alone(tmp_path: Path):
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    problems: list[str] = []
    store = TelemetryStore(path, on_problem=problems.append)
    store.record(requested("a"))
    store.flush()
    store.close()
    assert len(problems) == 1 and "newer version" in problems[0]


def _failing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pragma: str):
    """A store whose connection is made unwritable by ``pragma`` (a real SQLite error)."""
    real_open = store_module.open_database

    def open_then_restrict(path: Path) -> sqlite3.Connection:
        db = real_open(path)
        if pragma == "max_page_count":
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")
        else:
            db.execute(pragma)
        return db

    monkeypatch.setattr(store_module, "open_database", open_then_restrict)
    problems: list[str] = []
    store = TelemetryStore(tmp_path / "t.sqlite3", on_problem=problems.append, retry_after_s=30)
    return store, problems


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("PRAGMA query_only = ON", "read-only"), ("max_page_count", "full")],
    ids=["read-only", "disk-full"],
)
def test_unwritable_database_gives_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pragma: str, expected: str
):
    store, problems = _failing_store(tmp_path, monkeypatch, pragma)
    for index in range(50):
        store.record(requested(f"r{index}" + "x" * 2000))
        if index % 10 == 0:
            store.flush()
    store.close()
    assert len(problems) == 1, problems
    assert expected in problems[0] and str(tmp_path) in problems[0]
    assert store.dropped > 0


def test_corrupt_database_is_reported_not_replaced(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    garbage = b"this is not a database at all" * 200
    path.write_bytes(garbage)
    problems: list[str] = []
    store = TelemetryStore(path, on_problem=problems.append)
    started = time.perf_counter()
    store.record(requested("a"))
    assert time.perf_counter() - started < 0.05
    store.flush()
    store.close()
    assert len(problems) == 1 and "damaged" in problems[0] and "move it away" in problems[0]
    assert path.read_bytes() == garbage  # the user's file is theirs to keep


def test_recovers_after_the_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "blocked"
    path.write_text("a file where the database folder should be")
    problems: list[str] = []
    store = TelemetryStore(path / "t.sqlite3", on_problem=problems.append, retry_after_s=0.2)
    store.record(requested("lost"))
    store.flush()
    assert problems and store.problem is not None
    path.unlink()
    time.sleep(0.3)
    store.record(requested("kept"))
    store.flush()
    store.close()
    assert store.problem is None
    assert count(path / "t.sqlite3", "requests") == 1


def test_record_from_many_threads(tmp_path: Path):
    store = TelemetryStore(tmp_path / "t.sqlite3")

    def burst(name: str) -> None:
        for index in range(250):
            store.record(ItemEvent(f"{name}-{index}", Outcome.SHOWN, 1.0))

    threads = [threading.Thread(target=burst, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert count(tmp_path / "t.sqlite3", "events") == 2000


def test_open_database_is_idempotent(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    for _ in range(3):
        open_database(path).close()
    with sqlite3.connect(path) as db:
        assert schema_version(db) == SCHEMA_VERSION
