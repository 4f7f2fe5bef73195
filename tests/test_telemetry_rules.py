"""Lifecycle rules (shown / noise / rejected), the still-in-code tracker and the recorder,
with simulated time."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostcomplete.completion.offers import Offer, OfferLedger
from ghostcomplete.completion.pipeline import CompletionRequest, CompletionResult
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.telemetry.events import Outcome
from ghostcomplete.telemetry.lifecycle import OpenItem, SuggestionLifecycle
from ghostcomplete.telemetry.recorder import TelemetryRecorder, time_scale_from_environment
from ghostcomplete.telemetry.retention import (
    RetentionTracker,
    best_match_distance,
    changed_span,
    shift_region,
)

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def item(item_id: str, uri: str = "file:///a.py", index: int = 0, at: float = 0.0) -> OpenItem:
    return OpenItem(item_id, item_id.rsplit("-", 1)[0], uri, index, 10, at, 1.7e9 + at)


def kinds(events) -> list[tuple[str, str, int]]:
    return [(e.item_id, e.kind.value, e.value) for e in events]


# --- lifecycle ---------------------------------------------------------------------------
def test_explicit_show_then_accept():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    assert kinds(life.shown("c1-0", 0.1)) == [("c1-0", "shown", 0)]
    assert kinds(life.accepted("c1-0", 2.0)) == [("c1-0", "accepted", 10)]
    assert life.accepted("c1-0", 2.1) is None  # counted once


def test_accept_without_show_infers_it():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    life.offered(item("c1-1", index=1))
    assert kinds(life.accepted("c1-1", 1.0)) == [("c1-1", "shown", 1), ("c1-1", "accepted", 10)]
    assert len(life) == 0  # the sibling left quietly


def test_superseded_quickly_is_noise_slowly_is_rejected():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    life.shown("c1-0", 0.0)
    events = life.superseded("file:///a.py", 0.2)
    assert [(e.kind, e.detail, e.value) for e in events] == [(Outcome.NOISE, "superseded", 200)]
    life.offered(item("c2-0", at=1.0))
    life.shown("c2-0", 1.0)
    events = life.superseded("file:///a.py", 1.3, "dismissed")
    assert [(e.kind, e.detail) for e in events] == [(Outcome.REJECTED, "dismissed")]


def test_typed_through_is_neither_accepted_nor_rejected():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    life.shown("c1-0", 0.0)
    events = life.typed_through("file:///a.py", 1.5)
    assert kinds(events) == [("c1-0", "typed_through", 1500)]
    assert len(life) == 0


def test_timeout_rejects_after_ten_seconds():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    life.shown("c1-0", 0.0)
    assert life.expire(9.9) == []
    events = life.expire(10.0)
    assert [(e.kind, e.detail) for e in events] == [(Outcome.REJECTED, "timeout")]


def test_client_without_show_events_gets_first_item_inferred():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    life.offered(item("c1-1", index=1))
    events = life.superseded("file:///a.py", 3.0)
    assert kinds(events) == [("c1-0", "shown", 1), ("c1-0", "rejected", 3000)]


def test_client_with_show_events_unshown_items_are_not_rejected():
    life = SuggestionLifecycle()
    life.offered(item("c0-0"))
    life.shown("c0-0", 0.0)  # this client sends didShowCompletion
    life.offered(item("c1-0", at=1.0))
    assert [e.item_id for e in life.superseded("file:///a.py", 5.0)] == ["c0-0"]
    assert life.expire(100.0) == []


def test_partially_accepted_is_never_rejected():
    life = SuggestionLifecycle()
    life.offered(item("c1-0"))
    assert kinds(life.partially_accepted("c1-0", 4, 0.5)) == [
        ("c1-0", "shown", 1),
        ("c1-0", "partially_accepted", 4),
    ]
    assert life.partially_accepted("c1-0", 3, 0.6) == []  # not longer: nothing new
    assert life.superseded("file:///a.py", 5.0) == []


def test_time_scale_shrinks_every_interval():
    life = SuggestionLifecycle(time_scale=0.01)
    life.offered(item("c1-0"))
    life.shown("c1-0", 0.0)
    assert [e.kind for e in life.expire(0.1)] == [Outcome.REJECTED]


# --- retention ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "text", "distance"),
    [
        ("abc", "xxabcxx", 0),
        ("abc", "xxabxx", 1),
        ("abc", "", 3),
        ("", "abc", 0),
        ("kitten", "a sitting b", 2),
        ("return total", "    return sum_total\n", 4),
    ],
)
def test_best_match_distance(pattern: str, text: str, distance: int):
    assert best_match_distance(pattern, text) == distance


def _reference_distance(pattern: str, text: str) -> int:
    best = len(pattern)
    for start in range(len(text) + 1):
        for end in range(start, len(text) + 1):
            candidate = text[start:end]
            row = list(range(len(candidate) + 1))
            for i, a in enumerate(pattern, 1):
                previous, row[0] = row[0], i
                for j, b in enumerate(candidate, 1):
                    previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (a != b))
            best = min(best, row[-1])
    return best


@settings(max_examples=60, deadline=None)
@given(st.text("ab c", max_size=6), st.text("ab c", max_size=8))
def test_best_match_distance_matches_brute_force(pattern: str, text: str):
    assert best_match_distance(pattern, text) == _reference_distance(pattern, text)


@settings(max_examples=100, deadline=None)
@given(st.text("abc\n", max_size=20), st.text("abc\n", max_size=20))
def test_changed_span_rebuilds_the_new_text(old: str, new: str):
    start, old_end, new_end = changed_span(old, new)
    assert old[:start] + new[start:new_end] + old[old_end:] == new


def test_shift_region_follows_edits():
    assert shift_region(10, 20, 0, 0, 5) == (15, 25)  # typed before
    assert shift_region(10, 20, 10, 10, 13) == (13, 23)  # typed right before
    assert shift_region(10, 20, 20, 20, 30) == (10, 20)  # typed right after
    assert shift_region(10, 20, 12, 14, 20) == (10, 26)  # edited inside
    assert shift_region(10, 20, 5, 15, 6) == (5, 11)  # deleted across the start
    assert shift_region(10, 20, 0, 30, 0) == (0, 0)  # all gone


def test_tracker_follows_edits_and_checks_on_schedule():
    accepted = "self.suppliers[supplier.name] = supplier"
    document = "class A:\n    def f(self):\n        " + accepted + "\n"
    offset = document.index(accepted)
    tracker = RetentionTracker(wall_clock=lambda: 1.7e9)
    tracker.track("c1-0", "file:///a.py", accepted, document, offset, now=0.0)
    # Lines added above, a small edit inside: still there.
    edited = "import os\n\n" + document.replace("supplier.name", "supplier.key")
    tracker.document_changed("file:///a.py", edited)
    current = {"file:///a.py": edited}
    assert tracker.check_due(14.0, current.get) == []
    first = tracker.check_due(15.0, current.get)
    assert [(c.after_s, c.retained, c.distance) for c in first] == [(15, True, 4)]
    # Rewritten completely: gone.
    current["file:///a.py"] = "import os\n\nclass A:\n    def f(self):\n        pass\n"
    later = tracker.check_due(130.0, current.get)
    assert [(c.after_s, c.retained) for c in later] == [(30, False), (120, False)]
    rest = tracker.check_due(601.0, current.get)
    assert [c.after_s for c in rest] == [300, 600]
    assert len(tracker) == 0 and not tracker.watches("file:///a.py")


def test_tracker_reports_an_unreadable_document():
    tracker = RetentionTracker()
    tracker.track("c1-0", "file:///gone.py", "value = 1", "value = 1", 0, now=0.0)
    (check,) = tracker.check_due(15.0, lambda uri: None)
    assert not check.found and not check.retained


def test_whitespace_only_accepts_are_not_tracked():
    tracker = RetentionTracker()
    tracker.track("c1-0", "file:///a.py", "\n    ", "x\n    ", 1, now=0.0)
    assert len(tracker) == 0


# --- recorder ----------------------------------------------------------------------------
def test_time_scale_from_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GHOSTCOMPLETE_TELEMETRY_TIME_SCALE", "0.01")
    assert time_scale_from_environment() == 0.01
    monkeypatch.setenv("GHOSTCOMPLETE_TELEMETRY_TIME_SCALE", "fast")
    assert time_scale_from_environment() == 1.0


def _result(
    cid: str,
    texts: list[str],
    *,
    line: int = 1,
    character: int = 4,
    cache: str | None = None,
    skipped: str | None = None,
    timings_ms: dict[str, float] | None = None,
    snippets: tuple = (),
    prompt_tokens: int | None = None,
    offers: OfferLedger | None = None,
) -> CompletionResult:
    """A finished request as the session hands it over; its offers go into ``offers``."""
    document = DocumentSnapshot("file:///a.py", "python", "")
    request = CompletionRequest(document, line, character, completion_id=cid)
    result = CompletionResult(cid, texts, skipped, dict(timings_ms or {}), ["lookup"] * len(texts))
    result.request, result.cache, result.backend = request, cache, "lookup"
    result.snippets, result.prompt_tokens = snippets, prompt_tokens
    for item, text in zip(result.item_ids, texts, strict=True):
        if offers is not None:
            offers.record(item, Offer("file:///a.py", line, character, text))
    return result


def _offer(recorder: TelemetryRecorder, cid: str, text: str, line: int = 1, character: int = 4):
    result = _result(
        cid,
        [text],
        line=line,
        character=character,
        timings_ms={"total": 5.0},
        snippets=(("file:///b.py", 3, 0.5),),
        offers=recorder.offers,
    )
    return recorder.completed(result)


def test_recorder_accept_to_still_in_code(tmp_path: Path):
    clock = FakeClock()
    documents = {"file:///a.py": "def f():\n    \n"}
    recorder = TelemetryRecorder(
        read_document=documents.get, clock=clock, wall_clock=lambda: 1.7e9, time_scale=1.0
    )
    recorder.configure(True, tmp_path / "t.sqlite3", capture_content=False)
    assert recorder.store is not None
    recorder.request_started("file:///a.py")
    (item_id,) = _offer(recorder, "c1", "return 42")
    documents["file:///a.py"] = "def f():\n    return 42\n"  # the client inserts, then accepts
    clock.now += 1
    assert recorder.accepted(item_id) is True
    assert recorder.accepted(item_id) is False
    documents["file:///a.py"] = "# top\ndef f():\n    return 42  # answer\n"
    recorder.document_changed("file:///a.py", lambda: documents["file:///a.py"])
    clock.now += 15
    recorder.tick()
    counts = recorder.session_counts()
    assert counts["accepted"] == 1 and counts["shown"] == 1 and counts["retained"] == 1
    recorder.flush()
    summary = recorder.summary()
    assert summary["recorded"]["accepted"] == 1
    recorder.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "t.sqlite3") as db:
        snippets = db.execute("SELECT snippets_json FROM requests").fetchone()[0]
        text = db.execute("SELECT text FROM items").fetchone()[0]
        retained = db.execute("SELECT after_s, retained FROM retention").fetchall()
    assert "file:///b.py" not in snippets and text is None  # no content by default
    assert retained == [(15, 1)]


def test_recorder_typing_through_then_accept(tmp_path: Path):
    clock = FakeClock()
    recorder = TelemetryRecorder(clock=clock, time_scale=1.0)
    recorder.configure(False, tmp_path / "t.sqlite3", capture_content=False)
    recorder.request_started("file:///a.py")
    _offer(recorder, "c1", "return 42")
    clock.now += 2
    recorder.request_started("file:///a.py")  # typed "r": the rest is served from the cache
    recorder.completed(
        _result("c2", ["eturn 42"], character=5, cache="typing", offers=recorder.offers)
    )
    assert recorder.accepted("c2-0")
    counts = recorder.session_counts()
    assert (counts["typedThrough"], counts["rejected"], counts["accepted"]) == (1, 0, 1)
    assert counts["acceptanceRate"] == 1.0


def test_recorder_superseded_then_rejected(tmp_path: Path):
    clock = FakeClock()
    recorder = TelemetryRecorder(clock=clock, time_scale=1.0)
    recorder.configure(False, tmp_path / "t.sqlite3", capture_content=False)
    _offer(recorder, "c1", "return 42")
    clock.now += 2
    recorder.request_started("file:///a.py")
    clock.now += 0.1
    _offer(recorder, "c2", "yield 42")
    clock.now += 0.1  # the second answer is replaced within 250 ms: noise
    recorder.request_started("file:///a.py")
    recorder.document_closed("file:///a.py")
    counts = recorder.session_counts()
    assert (counts["rejected"], counts["noise"], counts["shown"]) == (1, 1, 2)


def test_recorder_off_writes_nothing(tmp_path: Path):
    recorder = TelemetryRecorder(time_scale=1.0)
    recorder.configure(False, tmp_path / "t.sqlite3", capture_content=False)
    (item_id,) = _offer(recorder, "c1", "return 42")
    assert recorder.accepted(item_id)
    recorder.close()
    assert not (tmp_path / "t.sqlite3").exists()
    assert recorder.session_counts()["telemetry"] == "off"


def test_recorder_captures_content_when_asked(tmp_path: Path):
    recorder = TelemetryRecorder(time_scale=1.0)
    recorder.configure(True, tmp_path / "t.sqlite3", capture_content=True)
    _offer(recorder, "c1", "return 42")
    recorder.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "t.sqlite3") as db:
        assert db.execute("SELECT text FROM items").fetchone()[0] == "return 42"
        assert "file:///b.py" in db.execute("SELECT snippets_json FROM requests").fetchone()[0]


def test_recorder_never_raises_into_the_server(caplog: pytest.LogCaptureFixture):
    recorder = TelemetryRecorder(time_scale=1.0)
    # not a snippet: a bug somewhere, not a failed completion
    result = recorder.completed(_result("c1", ["x"], snippets=(object(),)))
    assert result == [] and "completed failed" in caplog.text


def test_recorder_takes_snippet_objects(tmp_path: Path):
    from ghostcomplete.ranker.snippets import Snippet

    recorder = TelemetryRecorder(time_scale=1.0)
    recorder.configure(True, tmp_path / "t.sqlite3", capture_content=True)
    snippets = (Snippet("file:///b.py", 7, "text", 0.25),)
    result = _result("c1", [], skipped="nothing", prompt_tokens=321, snippets=snippets)
    recorder.completed(result)
    recorder.close()
    import json
    import sqlite3

    with sqlite3.connect(tmp_path / "t.sqlite3") as db:
        tokens, snippets = db.execute(
            "SELECT prompt_tokens, snippets_json FROM requests"
        ).fetchone()
    assert tokens == 321
    assert json.loads(snippets) == [{"source": "file:///b.py", "start_line": 7, "score": 0.25}]
