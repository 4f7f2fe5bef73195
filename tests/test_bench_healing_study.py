"""The token-healing study (bench/healing_study.py) end to end: holes cut in a fake corpus on
one side of the split, answered by a tiny qwen2 decoder made at test time with healing off
and on, and the summary recounted from the holes it wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tiny_decoders import qwen2_config, write_qwen2_folder

from ghostcomplete.bench import corpus, healing_study

PY = """\
import os
import sys


class Product:
    \"\"\"A product.\"\"\"

    def __init__(self, name, value):
        self.name = name
        self.value = value

    def labelled(self, prefix):
        result = prefix + self.name
        return result.strip()

    def priced(self, supplier):
        total = self.value * supplier.discount
        return supplier.rounded(total)
"""
JS = """\
'use strict';

const path = require('path');

class Supplier {
  constructor(name) {
    this.name = name;
  }
}

function makeSupplier(name) {
  const supplier = new Supplier(name);
  return supplier.products();
}
"""


@pytest.fixture
def fake_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """load_repos without downloads: every project of the pinned corpus as a small folder of
    its side of the split (the development ones with code to cut holes in)."""
    for side in ("dev", "test"):
        root = tmp_path / "src" / side
        (root / "lib").mkdir(parents=True)
        (root / "lib" / "held_out.py").write_text(PY)  # a test-side file: never cut with dev
        if side == "dev":
            (root / "lib" / "product.py").write_text(PY)
            (root / "lib" / "supplier.js").write_text(JS)
            (root / "lib" / "test_product.py").write_text(PY)  # a test file: never cut
    dev_files = ("lib/product.py", "lib/supplier.js", "lib/test_product.py")

    def repo(name: str, version: str, kind: str, split: str) -> corpus.Repo:
        files = dev_files if split == "dev" else ("lib/held_out.py",)
        return corpus.Repo(name, version, "", kind, tmp_path / "src" / split, files, split)

    def pinned(kind: str, entry: dict[str, Any], cache: Path) -> corpus.Repo:
        return repo(entry["name"], entry["version"], kind, entry["split"])

    def stdlib(package: str, cache: Path, split: str = "dev") -> corpus.Repo:
        return repo(f"stdlib/{package}", "", "stdlib", split)

    monkeypatch.setattr(corpus, "pinned_repo", pinned)
    monkeypatch.setattr(corpus, "stdlib_repo", stdlib)
    return tmp_path


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = qwen2_config(vocab_size=512, max_positions=1024)
    return write_qwen2_folder(tmp_path_factory.mktemp("study"), config, "fp32", seed=11).parent


@pytest.mark.timeout(120)
def test_the_study_cuts_both_kinds_on_the_dev_side_and_its_counts_add_up(
    fake_corpus: Path, tiny_qwen2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = fake_corpus / "study.json"
    arguments = ["--model", str(tiny_qwen2), "--per-kind", "4", "--threads", "1"]
    assert healing_study.main([*arguments, "--json", str(out), "--seed", "3"]) == 0
    data = json.loads(out.read_text())
    holes = data["holes"]
    assert data["settings"]["split"] == "dev"
    assert [h["kind"] for h in holes] == ["space"] * 4 + ["word"] * 4
    for hole in holes:
        assert hole["path"] in ("lib/product.py", "lib/supplier.js"), hole
        text = (fake_corpus / "src" / "dev" / hole["path"]).read_text()
        line = text.split("\n")[hole["line"]]
        before, after = line[: hole["column"]], line[hole["column"] :]
        assert hole["line"] >= 11 and hole["target"] == after.rstrip()
        if hole["kind"] == "space":
            assert re.search(r"\S (= |new |return )$", before) and re.match(r"[A-Za-z_]", after)
        else:
            word = re.search(r"[ .]([A-Za-z_]\w*)$", before + re.match(r"\w*", after)[0])
            assert word and len(word[1]) >= 6 and len(before) - word.start(1) == 2, hole
        for setting in ("off", "on"):
            answer = hole[setting]
            suggestion, target = answer["suggestion"], hole["target"]
            assert answer["exact"] == (suggestion != "" and suggestion == target)
            starts = suggestion != "" and target.startswith(suggestion)
            assert answer["prefix_chars"] == (len(suggestion) if starts else 0)
            assert answer["first_char"] == (suggestion[:1] == target[:1] != "")
    # The two runs had different settings: a healed answer differs somewhere.
    assert any(h["off"]["suggestion"] != h["on"]["suggestion"] for h in holes)
    for row in data["summary"]:
        mine = [h for h in holes if h["kind"] == row["kind"]]
        assert row["holes"] == len(mine) == 4
        for setting in ("off", "on"):
            answers = [h[setting] for h in mine]
            assert row[setting]["exact"] == sum(a["exact"] for a in answers)
            assert row[setting]["prefix chars"] == sum(a["prefix_chars"] for a in answers)
            assert row[setting]["shown"] == sum(a["suggestion"] != "" for a in answers)
            assert row[setting]["first char"] == sum(a["first_char"] for a in answers)
        ties = sum(h["on"]["prefix_chars"] == h["off"]["prefix_chars"] for h in mine)
        on_better, off_better = row["on better"], row["off better"]
        assert on_better["prefix chars"] + off_better["prefix chars"] + ties == len(mine)
        exact_gain = on_better["exact"] - off_better["exact"]
        assert exact_gain == row["on"]["exact"] - row["off"]["exact"]
    printed = capsys.readouterr().out
    assert "| hole | holes | exact off / on |" in printed
    assert re.search(r"^\| space \| 4 \|", printed, re.M) and re.search(
        r"^\| word \| 4 \|", printed, re.M
    )


@pytest.mark.timeout(30)
def test_the_holes_of_one_seed_are_drawn_the_same_way(fake_corpus: Path) -> None:
    repos = corpus.load_repos(quick=False, paths=[], cache=fake_corpus, split="dev")
    first = healing_study.draw_holes(repos, 5, seed=1)
    assert first == healing_study.draw_holes(repos, 5, seed=1)
    assert {h.kind for h in first} == {"space", "word"}
    for hole in first:
        lines = (fake_corpus / "src" / "dev" / hole.path).read_text().split("\n")
        # The model's context: 40 lines and the line up to the hole; 10 lines after it.
        assert hole.prefix.endswith("\n" + lines[hole.line][: hole.column])
        assert hole.prefix.count("\n") == min(40, hole.line)
        assert hole.suffix.split("\n") == ["", *lines[hole.line + 1 : hole.line + 11]]
    test_side = corpus.load_repos(quick=False, paths=[], cache=fake_corpus, split="test")
    assert {h.path for h in healing_study.draw_holes(test_side, 5, seed=1)} == {"lib/held_out.py"}
