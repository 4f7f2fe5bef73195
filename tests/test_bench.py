"""The benchmark harness: quick runs against the real server, and its pure parts.

The quick runs check that the harness works (files written, numbers in range), not what the
numbers are: those live in bench/RESULTS.md with the commands that produced them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ghostcomplete.bench import corpus
from ghostcomplete.bench.latency import by_writer, keystrokes, written_by
from ghostcomplete.bench.metrics import (
    accepted,
    coverage,
    edit_similarity,
    identifier_f1,
    partially_accepted_chars,
    percentile,
    score,
)
from ghostcomplete.bench.tasks import KINDS, make_tasks

RATES = (
    "shown_rate",
    "exact_match",
    "edit_similarity",
    "identifier_f1",
    "accept_rate",
    "accepted_of_shown",
    "partial_accept_rate",
    "chars_saved_share",
    "coverage_in_file",
    "coverage_reachable",
)


def bench(*arguments: str, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ghostcomplete.server.cli", "bench", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_acceptance_writes_json_table_and_chart(tmp_path: Path) -> None:
    done = bench("acceptance", "--quick", "--out", str(tmp_path), "--cache", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "acceptance [" in done.stderr  # the progress bar
    data = json.loads((tmp_path / "acceptance.json").read_text())
    assert [run["context"] for run in data["runs"]] == ["none", "copilot", "default"]
    for run in data["runs"]:
        overall = run["overall"]
        assert overall["tasks"] > 0
        for key in RATES:
            assert 0.0 <= overall[key] <= 1.0, key
        assert overall["latency_p50_ms"] > 0
        assert set(run["by_kind"]) == set(KINDS)
        assert run["server"]["peak_rss_mib"] > 0
    assert any(run["overall"]["shown_rate"] > 0 for run in data["runs"])
    table = (tmp_path / "acceptance.md").read_text()
    assert "| context | backend | tasks |" in table
    assert data["command"] in table
    assert (tmp_path / "acceptance.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_latency_writes_percentiles_and_server_usage(tmp_path: Path) -> None:
    done = bench("latency", "--quick", "--out", str(tmp_path), "--cache", str(tmp_path))
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "latency.json").read_text())
    run = data["runs"][0]
    answer = run["summary"]["latency_ms"]["keystroke → answer"]
    assert answer["n"] > 0
    assert 0 < answer["p50"] <= answer["p95"] <= answer["p99"]
    counts = run["summary"]["counts"]
    assert counts["keystrokes (incl. accepts)"] > 0
    assert counts["server CPU s"] > 0 and counts["server peak RSS MiB"] > 0
    assert 0 <= counts["chars accepted % of chars entered"] <= 100
    assert "server total" in run["summary"]["latency_ms"]
    # Where the overhead p99 comes from: the worst requests, stage by stage, worst first.
    worst = run["most_overhead"]
    assert worst and all("total" in r and "overhead_ms" in r for r in worst)
    assert [r["overhead_ms"] for r in worst] == sorted(
        (r["overhead_ms"] for r in worst), reverse=True
    )
    overhead = run["summary"]["latency_ms"]["server overhead (total − backend − debounce)"]
    assert worst[0]["overhead_ms"] >= overhead["p99"] - 0.01
    # The split a typing target is stated in: the first request after opening each file
    # apart from the rest, and the answers that carried a one-line suggestion.
    answers = run["answers"]
    assert len(answers) == answer["n"]
    latency = run["summary"]["latency_ms"]
    first = latency["keystroke → answer, first request after opening a file"]
    later = latency["keystroke → answer, later requests"]
    assert first["n"] == sum(a["first"] for a in answers) <= len(run["files"])
    assert first["n"] + later["n"] == answer["n"]
    one_line = latency["keystroke → one-line suggestion, later requests"]
    assert one_line["n"] == sum(1 for a in answers if not a["first"] and a["suggestion lines"] == 1)
    assert {a["key"] for a in answers} <= {"char", "newline", "accept"}
    assert "answers at the deadline, by the key before them" in counts
    # The deadline and the backend as the server's status gave them (the lookup's default).
    assert counts["backend chosen"] == "lookup"
    assert counts["prompt tokens in force (last file)"] == 2048
    assert "answers later than the 600 ms deadline" in counts
    # The lookup wrote every suggestion it accepted (or the writer could not be told).
    assert set(re.findall(r"[a-z]+(?= \d)", counts["suggestions accepted, by writer"])) <= {
        "lookup",
        "unknown",
    }
    assert "| keystroke → answer |" in (tmp_path / "latency.md").read_text()
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


def shop_project(tmp_path: Path) -> Path:
    """A two-file project whose cart imports from its prices: every kind of task has a place."""
    project = tmp_path / "project"
    (project / "shop").mkdir(parents=True)
    (project / "shop" / "prices.py").write_text(
        "def net_price(gross, rate):\n    return round(gross / (1 + rate), 2)\n\n\n"
        "def gross_price(net, rate):\n    return round(net * (1 + rate), 2)\n"
    )
    (project / "shop" / "cart.py").write_text(
        "from shop.prices import gross_price, net_price\n\n\n"
        "def total(items, rate):\n    return sum(gross_price(item, rate) for item in items)\n\n\n"
        "def total_net(items, rate):\n    return sum(net_price(item, rate) for item in items)\n"
    )
    return project


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_repo_flag_benchmarks_any_directory(tmp_path: Path) -> None:
    project = shop_project(tmp_path)
    out = tmp_path / "out"
    done = bench("acceptance", "--repo", str(project), "--context", "none", "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "acceptance.json").read_text())
    assert data["corpus"][0]["source"] == "local"
    assert {row["kind"] for row in data["tasks"]} == set(KINDS)
    # What the server's backend resolved to, and who wrote each shown suggestion.
    assert data["runs"][0]["chosen"] == "lookup"
    shown = [row for row in data["tasks"] if row["suggestion"]]
    assert shown and all(row["origin"].startswith("lookup:") for row in shown)
    # The backend's word on each suggestion is kept: the lookup's calibrated chance.
    chances = [row["details"]["confidence"] for row in shown if "confidence" in row["details"]]
    assert chances and all(0 < chance < 1 for chance in chances), shown
    by_origin = data["runs"][0]["by_origin"]
    assert sum(summary["tasks"] for summary in by_origin.values()) == len(shown)
    assert "| none | lookup:" in (out / "acceptance.md").read_text()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_kind_flag_runs_only_that_kind(tmp_path: Path) -> None:
    project = shop_project(tmp_path)
    out = tmp_path / "out"
    done = bench(
        "acceptance",
        "--repo",
        str(project),
        "--kind",
        "api",
        "--context",
        "none",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "acceptance.json").read_text())
    assert data["settings"]["kinds"] == ["api"]
    assert data["tasks"] and {row["kind"] for row in data["tasks"]} == {"api"}


def test_one_kinds_draw_does_not_depend_on_the_others_or_on_the_count(tmp_path: Path) -> None:
    repo = corpus.stdlib_repo("json", tmp_path)
    every_kind = make_tasks(repo, 2, seed=3)
    api_only = make_tasks(repo, 2, 3, ("api",))
    assert api_only == [task for task in every_kind if task.kind == "api"]
    # A larger --tasks keeps the smaller run's tasks first: runs of different sizes pair up.
    assert make_tasks(repo, 6, 3, ("api",))[:2] == api_only


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    done = bench("latency", "--quick", "--http-delay-ms", "50", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "--http-delay-ms needs --backend http" in done.stderr
    done = bench("acceptance", "--repo", str(tmp_path / "missing"), "--out", str(tmp_path))
    assert done.returncode == 1
    assert "is not a directory" in done.stderr


def test_tasks_are_seeded_and_cut_from_the_real_file(tmp_path: Path) -> None:
    repo = corpus.stdlib_repo("json", tmp_path)
    first = make_tasks(repo, 5, seed=7)
    assert first == make_tasks(repo, 5, seed=7)
    assert first != make_tasks(repo, 5, seed=8)
    assert {task.kind for task in first} == set(KINDS)
    for task in first:
        assert task.prefix + task.target + task.suffix == repo.text(task.path)
        assert task.target.strip()
        assert task.path not in task.neighbours
        assert len(task.neighbours) <= 20
    api = [task for task in first if task.kind == "api"]
    assert all(re.match(r"[A-Za-z_]", task.target) for task in api)


def test_corpus_pins_every_project() -> None:
    manifest = corpus.load_manifest()
    permissive = {"MIT", "BSD-3-Clause", "Apache-2.0 OR BSD-2-Clause", "ISC", "Apache-2.0"}
    entries = manifest["pypi"] + manifest["npm"]
    assert len(manifest["pypi"]) >= 3 and len(manifest["npm"]) >= 1
    for entry in entries:
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), entry["name"]
        assert entry["license"] in permissive, entry["name"]
        assert entry["include"], entry["name"]
    assert set(manifest["stdlib"]["quick"]) <= set(manifest["stdlib"]["packages"])


def test_a_download_with_the_wrong_hash_is_refused(tmp_path: Path) -> None:
    entry = dict(corpus.load_manifest()["pypi"][0])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    name = f"{entry['name']}-{entry['version']}.tar.gz"
    (downloads / name).write_bytes(b"not the real archive")
    with pytest.raises(corpus.CorpusError, match="does not match the pinned"):
        corpus.pinned_repo("pypi", entry, tmp_path)


def test_acceptance_rules() -> None:
    assert accepted("foo(bar)", "foo(bar) + 1")
    assert not accepted("foo", "foo(bar)")  # under 4 characters
    assert not accepted("foo(baz)", "foo(bar)")
    assert partially_accepted_chars("foo(baz)", "foo(bar)") == len("foo(")
    assert partially_accepted_chars("self.value = 1", "self.value = 2") == len("self.value = ")
    result = score("foo(bar)", "foo(bar)")
    assert result.exact and result.accepted and result.chars_saved == 8
    assert not score("", "x").shown


def test_similarity_scores() -> None:
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abc", "abd") == pytest.approx(2 / 3)
    assert identifier_f1("make(a, b)", "make(a, c)") == pytest.approx(2 / 3)
    assert identifier_f1("if x:", "if y:") == 0.0
    assert coverage("parse(text, strict)", "def parse(text): ...") == pytest.approx(2 / 3)
    assert coverage("()", "anything") is None
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile([], 50) is None


def test_typing_brings_indentation_with_a_newline() -> None:
    assert keystrokes("a\n    b") == ["a", "\n    ", "b"]
    assert "".join(keystrokes("x = 1\n\n  y")) == "x = 1\n\n  y"


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_context_bench_times_the_server_stages() -> None:
    done = bench("context", "--samples", "5", "--mode", "ranked", "--mode", "none")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ranked")]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == "5"
    p50, p99 = (float(x) for x in cells[3].split(" / "))
    assert 0 < p50 <= p99
    assert float(cells[5]) > 0  # the server's peak RSS


def test_lookup_study_bounds_the_backends_choice_by_the_oracle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ghostcomplete.backends.lookup.confidence import CALIBRATION, PLACE_CALIBRATION
    from ghostcomplete.bench import lookup_study

    assert lookup_study.main(["--quick", "--tasks", "4", "--cache", str(tmp_path), "--fit"]) == 0
    report = capsys.readouterr().out
    table = report.split("## Choices", 1)[1].split("\n\n")[1].splitlines()
    column = [cell.strip() for cell in table[0].split("|")].index("all")
    rows = {cells[1].strip(): cells for cells in (line.split("|") for line in table[2:]) if cells}

    def accepted_share(rule: str) -> float:
        return float(rows[rule][column].split(" %")[0])

    # The oracle takes whole occurrences, so it bounds the uncut choices; the confidence cut
    # takes starts of them and may pass it.
    for uncut in (
        "plain lookup (longest, prefix first)",
        "surroundings (the backend's choice), whole",
    ):
        assert accepted_share("oracle (any occurrence)") >= accepted_share(uncut)
    assert "surroundings + cut + default minConfidence" in rows
    assert "| gate: show when matched ≥ |" in report
    gates = report.split("(`minConfidence`)", 1)[1].strip().split("\n\n")[0].splitlines()[2:]
    shown = [float(line.split("|")[2]) for line in gates]
    assert len(shown) == len(lookup_study._CONFIDENCE_GATES)
    assert shown == sorted(shown, reverse=True)  # a higher gate never shows more
    assert "## Calibration: estimated chance against accepted" in report
    weights = report.split("(FamilyFit.calibration): (", 1)[1].split(")")[0].split(",")
    assert len(weights) == len(CALIBRATION)
    places = report.split("(FamilyFit.place_calibration): (", 1)[1].split(")")[0]
    assert len(places.split(",")) == len(PLACE_CALIBRATION)


def test_lookup_speed_times_requests_on_a_huge_file(capsys: pytest.CaptureFixture[str]) -> None:
    from ghostcomplete.bench import lookup_speed

    assert lookup_speed.main(["--file-kb", "200", "--files", "2", "--requests", "3"]) == 0
    line = capsys.readouterr().out
    assert "lookup on a 200 KB file with 2 recent files, 3 requests: p50" in line


def _fake_repos(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_repos without downloads: each pinned or standard-library project as an empty
    stand-in carrying its name and side."""

    def pinned(kind: str, entry: dict, cache: Path) -> corpus.Repo:
        return corpus.Repo(entry["name"], entry["version"], "", kind, cache, (), entry["split"])

    def stdlib(package: str, cache: Path, split: str = "dev") -> corpus.Repo:
        return corpus.Repo(f"stdlib/{package}", "", "", "stdlib", cache, (), split)

    monkeypatch.setattr(corpus, "pinned_repo", pinned)
    monkeypatch.setattr(corpus, "stdlib_repo", stdlib)


@pytest.mark.timeout(10)
def test_the_corpus_has_enough_of_each_family_on_each_side() -> None:
    manifest = corpus.load_manifest()
    sides: dict[tuple[str, str], int] = {}
    for kind, family in (("pypi", "python"), ("npm", "javascript")):
        for entry in manifest[kind]:
            assert entry["split"] in ("dev", "test"), entry["name"]
            sides[entry["split"], family] = sides.get((entry["split"], family), 0) + 1
    assert manifest["stdlib"]["split"] == "dev"  # the lookup was first tuned on it
    assert sides["test", "python"] >= 4 and sides["test", "javascript"] >= 2
    assert sides["dev", "python"] >= 4 and sides["dev", "javascript"] >= 2


@pytest.mark.timeout(10)
def test_a_split_selects_one_side_of_the_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_repos(monkeypatch)
    everything = corpus.load_repos(quick=False, paths=[], cache=tmp_path)
    dev = corpus.load_repos(quick=False, paths=[], cache=tmp_path, split="dev")
    test = corpus.load_repos(quick=False, paths=[], cache=tmp_path, split="test")
    assert {r.split for r in dev} == {"dev"} and {r.split for r in test} == {"test"}
    assert {r.name for r in dev} | {r.name for r in test} == {r.name for r in everything}
    assert not {r.name for r in dev} & {r.name for r in test}
    assert "click" in {r.name for r in dev} and "stdlib/json" in {r.name for r in dev}
    assert "boltons" in {r.name for r in test} and "semver" in {r.name for r in test}
    # --only within a side; a project on the other side is not there.
    only = corpus.load_repos(quick=False, paths=[], cache=tmp_path, only=["boltons"], split="test")
    assert [r.name for r in only] == ["boltons"]
    with pytest.raises(corpus.CorpusError):
        corpus.load_repos(quick=False, paths=[], cache=tmp_path, only=["click"], split="test")
    with pytest.raises(corpus.CorpusError):
        corpus.load_repos(quick=False, paths=[], cache=tmp_path, split="train")


@pytest.mark.timeout(10)
def test_the_study_refuses_to_fit_on_the_test_side(tmp_path: Path) -> None:
    from ghostcomplete.bench import lookup_study

    with pytest.raises(SystemExit):
        lookup_study.main(["--split", "test", "--cache", str(tmp_path), "--fit"])


def test_an_accepted_suggestion_is_credited_to_whoever_wrote_it() -> None:
    uri = "file:///p/a.py"
    reports = [
        {"uri": uri, "items": ["return total + tax"], "origins": ["onnx"]},
        {"uri": uri, "items": ["tax"], "origins": ["onnx"], "cache": "typing"},
        {"uri": uri, "items": ["= 0"], "origins": [""]},  # a writer the server did not know
        {"uri": "file:///p/b.py", "items": ["total + tax"], "origins": ["lookup:prefix"]},
        {"uri": uri, "items": ["self.items", "total"], "origins": ["lookup:prefix", "onnx"]},
    ]
    # The rest of an item the user typed through, handed out by a cache: the same writer.
    assert written_by(reports, uri, "tax") == "onnx"
    assert written_by(reports, uri, "= 0") == ""
    assert written_by(reports, uri, "items") == "lookup"
    assert written_by(reports, uri, "total") == "onnx"  # the second item of the latest report
    assert written_by(reports, uri, "nothing like it") == ""
    assert by_writer(["lookup", "onnx", "lookup", ""]) == "lookup 2, onnx 1, unknown 1"
    assert by_writer([]) == "none"
