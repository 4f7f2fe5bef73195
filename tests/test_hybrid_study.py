"""bench/hybrid_study.py: the hybrid's choice replayed on a lookup run and a model run of the
same tasks, with the backend's own decision functions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ghostcomplete.bench.acceptance import TaskResult
from ghostcomplete.bench.hybrid_study import Pair, main, paired, replay
from ghostcomplete.bench.metrics import score

pytestmark = pytest.mark.timeout(30)

TEXT = "value = compute(a)\nprint(value)\n"
ENDS = [5, 7, 15, 16, 17, 18, 19, 24, 25, 30, 31, 32]
TRACE = {"text": TEXT, "ends": ENDS, "chances": [0.99] * 7 + [0.01] * 5}
TARGET = "value = compute(a)\nreturn value"


def result(task_id: str, suggestion: str, origin: str, **extra: object) -> TaskResult:
    return TaskResult(
        **dataclasses.asdict(score(suggestion, TARGET)),
        task_id=task_id, repo="r", kind="line", context="default", suggestion=suggestion,
        target=TARGET, origin=origin, skipped=None, latency_ms=1.0, timings_ms={},
        coverage_in_file=None, coverage_reachable=None, coverage_prompt=None,
        **{"trace": None, "prompt": None, **extra},
    )  # fmt: skip


def lookup(task_id: str, suggestion: str, chance: float | None) -> TaskResult:
    details = {} if chance is None else {"confidence": chance}
    return result(task_id, suggestion, "lookup:prefix", details=details)


def model(task_id: str) -> TaskResult:
    return result(task_id, TEXT, "onnx", trace=TRACE)


def test_sure_lookup_answers_alone_and_an_unsure_one_asks_the_model() -> None:
    # The model's confident start, "value = compute(a)", has an estimated chance of about 0.48.
    sure = Pair(lookup("1", "value", 0.6), model("1"))
    assert replay(sure, 0.5, 0.05).writer == "lookup"  # the model is not asked
    likelier = replay(sure, 0.9, 0.05)  # asked, but the lookup's chance is the higher
    assert (likelier.suggestion, likelier.writer) == ("value", "lookup")
    # Weighed by the characters each is expected to save, the model's longer start goes first.
    longer = replay(sure, 0.9, 0.05, weigh="chars")
    assert (longer.suggestion, longer.writer) == ("value = compute(a)", "model")
    unsure = Pair(lookup("1", "value", 0.4), model("1"))
    asked = replay(unsure, 0.5, 0.05)
    assert (asked.suggestion, asked.writer) == ("value = compute(a)", "model")
    # Another calibration (--calibration) changes the model's chance, so the choice: one that
    # rates every start at about 0.1 leaves the lookup's 0.4 the likelier.
    doubtful = replay(unsure, 0.5, 0.05, weights=(-2.2, 0.0))
    assert (doubtful.suggestion, doubtful.writer) == ("value", "lookup")


def test_with_the_model_first_a_sure_lookup_is_shown_only_where_the_model_has_nothing() -> None:
    sure = Pair(lookup("1", "value", 0.9), model("1"))
    assert replay(sure, 0.5, 0.05).writer == "lookup"
    first = replay(sure, 0.5, 0.05, model_first=True)
    assert (first.suggestion, first.writer) == ("value = compute(a)", "model")
    silent = Pair(lookup("2", "value", 0.9), result("2", "", "onnx"))
    assert replay(silent, 0.5, 0.05, model_first=True).writer == "lookup"


def test_no_calibrated_chance_asks_the_model_and_no_model_answer_falls_back() -> None:
    unsure = Pair(lookup("1", "value", None), model("1"))
    assert replay(unsure, 0.3, 0.05).suggestion == "value = compute(a)"
    silent = Pair(lookup("2", "value", 0.1), result("2", "", "onnx"))
    choice = replay(silent, 0.3, 0.05)
    assert (choice.suggestion, choice.writer) == ("value", "lookup")
    # A gate above every chance leaves only the lookup.
    assert replay(unsure, 0.3, 0.999).writer == "lookup"


def test_pairs_and_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lookups = [lookup("1", "value", 0.6), lookup("2", "val", 0.1), lookup("3", "x", 0.2)]
    models = [model("1"), model("2")]
    assert [p.lookup.task_id for p in paired(lookups, models)] == ["1", "2"]
    files = {}
    for name, rows in (("l", lookups), ("m", models)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps({"tasks": [dataclasses.asdict(r) for r in rows]}))
    assert main(["--lookup", str(files["l"]), "--model", str(files["m"]),
                 "--lookup-first", "0.3,1", "--check", str(files["m"])]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| lookup alone | 2 | 2 | 0 |" in out
    # The model first: its confident start on both tasks.
    assert "| model first (order: model) | 2 | 2 | 2 |" in out
    assert "model first: 2 differ" in out  # the cut start against the uncut runs
    # At 1 the model is asked on both tasks and its confident start wins task 2.
    assert "| 1 | 2 | 2 |" in out
    assert "2 tasks in the hybrid runs" in out
    with pytest.raises(SystemExit):
        main(["--lookup", str(files["l"]), "--model", str(files["m"]), "--calibration", "1"])
    assert main(["--lookup", str(files["l"]), "--model", str(files["m"]),
                 "--lookup-first", "1", "--calibration=-2.2,0"]) == 0  # fmt: skip
    # Every model start rated about 0.1: the lookup's 0.6 and 0.1 answer both tasks.
    assert "| 1 | 2 | 2 | 0 |" in capsys.readouterr().out


def test_versus_pairs_two_model_runs_task_by_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Task 2 is drawn twice (two seeds); task 3 only the first model run holds.
    lookups = [lookup("1", "val", 0.1), lookup("2", "val", 0.1), lookup("2", "val", 0.1),
               lookup("3", "val", 0.1)]  # fmt: skip
    silent = result("1", "", "onnx")
    first = [model("1"), model("2"), model("3")]
    second = [silent, model("2")]
    files = {}
    for name, rows in (("l", lookups), ("a", first), ("b", second)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps({"tasks": [dataclasses.asdict(r) for r in rows]}))
    assert main(["--lookup", str(files["l"]), "--model", str(files["a"]), "--versus",
                 str(files["b"]), "--lookup-first", "0.4"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3 tasks in both model runs" in out
    # Where the model answers, its confident start "value = compute(a)" goes first and is
    # accepted (18 characters); where the second run's model said nothing the lookup's "val"
    # is shown and, at 3 characters, saves nothing.
    assert "lookupFirst 0.4: 18.00 against 12.00 accepted ch / task" in out
    assert "the second keeps more on 0, fewer on 1" in out
