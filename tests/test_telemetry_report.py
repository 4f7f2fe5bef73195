"""``ghostcomplete stats``: every figure traced to known events in a real database."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from ghostcomplete.server.cli import main
from ghostcomplete.telemetry.events import (
    ItemEvent,
    Offered,
    Outcome,
    Requested,
    RetentionChecked,
)
from ghostcomplete.telemetry.report import as_html, as_json, as_text
from ghostcomplete.telemetry.stats import DEFINITIONS, collect
from ghostcomplete.telemetry.store import TelemetryStore

pytestmark = pytest.mark.timeout(60)

DAY1 = 1_767_268_800.0  # 2026-01-01 12:00 UTC
DAY2 = DAY1 + 86_400


def _events() -> list:
    """Python/lookup: 4 shown (1 noise), 2 accepted, 1 partial, 1 rejected.
    Go/http: 1 shown, 1 rejected. One request skipped."""
    events: list = []

    def completion(cid, at, language, backend, total, outcomes, length=10):
        events.append(
            Requested(
                cid,
                at,
                language,
                "automatic",
                backend,
                timings_ms={"total": total},
                items=len(outcomes),
            )
        )
        for index, outcome in enumerate(outcomes):
            item_id = f"{cid}-{index}"
            events.append(Offered(item_id, cid, index, length, 1, "d"))
            if outcome is None:
                continue
            events.append(ItemEvent(item_id, Outcome.SHOWN, at))
            value = {"accepted": length, "partial": 4}.get(outcome, 300)
            kind = {"accepted": Outcome.ACCEPTED, "partial": Outcome.PARTIALLY_ACCEPTED}.get(
                outcome, Outcome.NOISE if outcome == "noise" else Outcome.REJECTED
            )
            events.append(ItemEvent(item_id, kind, at + 1, value))

    completion("a", DAY1, "python", "lookup", 10.0, ["accepted", None])
    completion("b", DAY1 + 60, "python", "lookup", 20.0, ["noise"])
    completion("c", DAY2, "python", "lookup", 30.0, ["partial"])
    completion("d", DAY2 + 5, "python", "lookup", 40.0, ["accepted"], length=20)
    completion("e", DAY2 + 9, "go", "http", 200.0, ["rejected"])
    events.append(Requested("f", DAY2, "go", "automatic", "http", skipped="too little context"))
    for after, retained in ((15, True), (30, True), (120, False)):
        events.append(RetentionChecked("a-0", after, DAY1 + after, retained, 0, 10))
    events.append(RetentionChecked("d-0", 15, DAY2 + 20, True, 2, 20))
    events.append(RetentionChecked("d-0", 30, DAY2 + 35, False, 20, 20, found=False))
    return events


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "t.sqlite3"
    store = TelemetryStore(path)
    for event in _events():
        store.record(event)
    store.close()
    return path


def test_figures_match_the_events(database: Path):
    stats = collect(database)
    total = stats.total
    assert (total.requests, total.offered, total.shown, total.noise) == (6, 6, 5, 1)
    assert (total.accepted, total.partially_accepted, total.rejected) == (2, 1, 1)
    assert total.acceptance_rate == 0.5  # 2 of (5 - 1)
    assert total.accepted_chars == 10 + 20 + 4
    language = stats.groups["language"]
    assert language["python"].acceptance_rate == round(2 / 3, 4)
    assert language["go"].acceptance_rate == 0.0 and language["go"].requests == 2
    assert set(stats.groups["backend"]) == {"lookup", "http"}
    assert len(stats.groups["day"]) == 2
    retention = {r.after_s: (r.checked, r.retained) for r in stats.retention}
    assert retention[15] == (2, 2) and retention[30] == (1, 1) and retention[120] == (1, 0)
    assert retention[600] == (0, 0)
    latency = stats.latency["total"]
    assert latency.count == 5 and latency.p50 == 30.0
    assert stats.latency_by_backend["http"].p50 == 200.0


def test_every_figure_is_defined(database: Path):
    report = json.loads(as_json(collect(database)))
    assert set(report["total"]) <= set(DEFINITIONS)
    assert report["definitions"] == DEFINITIONS
    assert report["byLanguage"]["python"]["accepted"] == 2
    assert report["retention"][0] == {"afterS": 15, "checked": 2, "retained": 2, "rate": 1.0}


def test_text_report(database: Path):
    text = as_text(collect(database))
    assert "50.0 %" in text and "by language" in text and "python" in text
    assert "Still in code" in text and "Latency" in text


def test_html_report_is_self_contained(database: Path):
    page = as_html(collect(database))
    assert page.startswith("<!doctype html>") and "http://" not in page and "https://" not in page
    images = page.split("src='data:image/png;base64,")[1:]
    assert len(images) == 3  # acceptance over time, latency, still in code
    for image in images:
        assert base64.b64decode(image.split("'")[0]).startswith(b"\x89PNG")
    for title in ("Acceptance over time", "Latency", "Still in code"):
        assert title in page


def test_cli_stats(database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["stats", "--db", str(database), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["accepted"] == 2
    assert main(["stats", "--db", str(database)]) == 0
    assert "acceptance" in capsys.readouterr().out.lower()
    page = tmp_path / "report.html"
    assert main(["stats", "--db", str(database), "--html", str(page)]) == 0
    assert page.read_text().count("data:image/png;base64,") == 3


def test_cli_stats_defaults_to_the_environment_path(
    database: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("GHOSTCOMPLETE_TELEMETRY_PATH", str(database))
    assert main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["database"] == str(database)


def test_cli_stats_on_an_empty_or_damaged_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["stats", "--db", str(tmp_path / "none.sqlite3")]) == 0
    assert "no telemetry recorded yet" in capsys.readouterr().out
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"garbage" * 1000)
    assert main(["stats", "--db", str(damaged)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_empty_database_reports_zeros(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    TelemetryStore(path).close()
    store = TelemetryStore(path)
    store.record(Requested("x", DAY1, "python", "automatic", "lookup"))
    store.close()
    stats = collect(path)
    assert stats.total.requests == 1 and stats.total.acceptance_rate == 0.0
    assert "Acceptance" in as_html(stats)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM items").fetchone() == (0,)


@pytest.fixture
def typed_through(tmp_path: Path) -> Path:
    """Three answers from the backend (100, 200, 300 ms), one that waited on a running
    generation (250 ms), and six served from a cache while typing through them (0-1 ms)."""
    path = tmp_path / "t.sqlite3"
    store = TelemetryStore(path)
    answers = [(None, 100.0), (None, 200.0), (None, 300.0), ("inflight", 250.0)]
    answers += [("typing", 0.0)] * 5 + [("prompt", 1.0)]
    for index, (cache, total) in enumerate(answers):
        cid = f"c{index}"
        store.record(
            Requested(
                cid, DAY1 + index, "python", "automatic", "http", cache=cache, items=1,
                timings_ms={"total": total},
            )
        )  # fmt: skip
        store.record(Offered(f"{cid}-0", cid, 0, 5, 1, "d"))
    store.close()
    return path


def test_latency_of_backend_answers_apart_from_cache_hits(
    typed_through: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    stats = collect(typed_through)
    assert stats.latency["total"].p50 == 0.5  # all ten answers: mostly cache hits
    waited, cached = stats.latency_by_source["backend"], stats.latency_by_source["cache"]
    assert (waited.count, waited.p50) == (4, 225.0)
    assert (cached.count, cached.p50) == (6, 0.0)

    assert main(["stats", "--db", str(typed_through), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latencyMsBySource"]["backend"] == {
        "count": 4, "p50": 225.0, "p90": 285.0, "p99": 298.5,
    }  # fmt: skip
    assert report["latencyMsBySource"]["cache"]["count"] == 6
    assert "latencyMsBySource" in report["definitions"]

    headline = "225 ms median wait for the backend (4 answers, p90 285 ms); "
    headline += "6 of 10 answers served from a cache (median 0 ms)"
    text = as_text(stats)
    assert headline in text
    assert "waited for the backend" in text and "served from a cache" in text

    page = as_html(stats)
    assert "<span class='big'>225 ms</span> median wait for the backend" in page
    assert "median latency" not in page and headline in page
    assert "<img alt='Latency'" in page


def test_no_backend_answers_yet(tmp_path: Path):
    path = tmp_path / "t.sqlite3"
    store = TelemetryStore(path)
    store.record(
        Requested(
            "c", DAY1, "python", "automatic", "http", cache="typing", items=1,
            timings_ms={"total": 0.0},
        )
    )  # fmt: skip
    store.close()
    text = as_text(collect(path))
    assert "no answers from the backend yet; 1 of 1 answers served from a cache" in text
