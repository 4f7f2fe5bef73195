"""bench/compare_runs.py: paired counts on shared tasks, and the confidence cut replayed on a
run's token traces."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ghostcomplete.bench.acceptance import TaskResult
from ghostcomplete.bench.compare_runs import group, paired
from ghostcomplete.bench.metrics import score

pytestmark = pytest.mark.timeout(30)


def result(task_id: str, suggestion: str, target: str, trace: dict | None = None) -> TaskResult:
    return TaskResult(
        **dataclasses.asdict(score(suggestion, target)),
        task_id=task_id, repo="r", kind="api", context="default", suggestion=suggestion,
        target=target, origin="onnx", skipped=None, latency_ms=1.0, timings_ms={},
        coverage_in_file=None, coverage_reachable=None, coverage_prompt=None, trace=trace,
        prompt=None,
    )  # fmt: skip


def test_paired_counts_only_tasks_both_ran() -> None:
    a = [result("1", "foo(x)", "foo(x)"), result("2", "bar", "baz(y)"), result("3", "q", "q")]
    b = [result("1", "foo(y)", "foo(x)"), result("2", "baz(", "baz(y)")]
    assert paired(a, b, "all") == (1, 0, 1, 1)
    assert paired(a, b, "line") == (0, 0, 0, 0)


def test_the_cut_is_replayed_on_the_trace(tmp_path: Path) -> None:
    text = "value = compute(a)\nprint(value)\n"
    ends = [5, 7, 15, 16, 17, 18, 19, 24, 25, 30, 31, 32]
    sure = [0.99] * 7 + [0.01] * 5
    row = result("1", text, "value = compute(a)\nreturn value", {
        "text": text, "ends": ends, "chances": sure,
    })  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"tasks": [dataclasses.asdict(row)]}))
    _, whole = group(f"none={path}")
    _, cut = group(f"cut={path}@cut:0.05")
    assert not whole[0].accepted
    assert cut[0].suggestion == "value = compute(a)" and cut[0].accepted


def test_one_context_of_a_run_that_ran_several(tmp_path: Path) -> None:
    rows = [
        dataclasses.replace(result("1", "foo(x)", "foo(x)"), context="none"),
        dataclasses.replace(result("1", "foo(y)", "foo(x)"), context="default"),
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"tasks": [dataclasses.asdict(row) for row in rows]}))
    _, both = group(f"all={path}")
    _, none = group(f"none={path}@context:none")
    _, ranked = group(f"ranked={path}@context:default@cut:0.05")
    assert len(both) == 2
    assert [row.suggestion for row in none] == ["foo(x)"]
    assert [row.context for row in ranked] == ["default"]
