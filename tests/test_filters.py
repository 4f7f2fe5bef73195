"""Golden cases for the post-processing filters, written with a cursor marker."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ghostcomplete.context.syntax import Scope
from ghostcomplete.postprocess.filters import PIPELINE, Surroundings, apply_filters, filtered

CASES = tomllib.loads((Path(__file__).parent / "golden" / "filters.toml").read_text())["case"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_golden(case: dict) -> None:
    before, after = case["text"].split("║")
    scope = Scope(case.get("scope", "line"))
    max_lines = case.get("max_lines", 20 if scope is Scope.BLOCK else 1)
    around = Surroundings.at(before, after, scope, max_lines)
    kept = apply_filters([case["candidate"]], around)
    assert kept == ([case["expect"]] if case["expect"] else [])


def test_every_filter_has_a_golden_case() -> None:
    names = " ".join(case["name"] for case in CASES)
    for step in PIPELINE:
        assert step.__name__ in names, f"{step.__name__} has no golden case"


def test_each_kept_text_names_the_candidate_it_came_from() -> None:
    around = Surroundings.at("x = ", "\n", Scope.LINE, 1)
    # The first is trimmed, the second emptied, the third a duplicate of the first once trimmed.
    kept = filtered(["load(path)   ", "   ", "load(path)", "save(path)"], around)
    assert kept == [("load(path)", 0), ("save(path)", 3)]
