"""``ghostcomplete bench edit``: the checks on golden cases, the task file against its pinned
files, and a run through the real server with the tiny instruct model."""

from __future__ import annotations

import argparse
import socket
import tomllib
from pathlib import Path

import pytest
from support import REPO, server_executable

from ghostcomplete.bench import corpus
from ghostcomplete.bench.cli import settings_argument
from ghostcomplete.bench.edit_bench import (
    CannotEdit,
    apply_text_edits,
    interleaved,
    markdown,
    run,
)
from ghostcomplete.bench.edit_checks import EditResult, first_failure, parse_check
from ghostcomplete.bench.edit_tasks import (
    KINDS,
    EditTask,
    TaskFileError,
    corpus_splits,
    load_tasks,
    select,
)

GOLDEN = tomllib.loads((REPO / "tests" / "golden" / "edit_checks.toml").read_text())["case"]
INSTRUCT = REPO / "tests" / "fixtures" / "onnx" / "tiny-qwen2-instruct"


def _edited(case: dict) -> EditResult:
    text = case["text"]
    start = text.index("⟦")
    end = text.index("⟧") - 1
    before = text.replace("⟦", "").replace("⟧", "")
    after = case.get("after") or before[:start] + case["edited"] + before[end:]
    return EditResult(case.get("language", "python"), before, after, start, end)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", GOLDEN, ids=[case["name"] for case in GOLDEN])
def test_golden_checks(case: dict) -> None:
    failure = first_failure(_edited(case), case["checks"])
    if not case["fails"]:
        assert failure is None, failure
        return
    assert failure is not None and failure.check == case["fails"], failure
    assert case.get("why", "") in failure.why


@pytest.mark.timeout(10)
def test_golden_cases_cover_every_check_passing_and_failing() -> None:
    passed = {c.split()[0] for case in GOLDEN if not case["fails"] for c in case["checks"]}
    failed = {case["fails"] for case in GOLDEN if case["fails"]}
    for name in ("parses", "renamed", "docstring", "type_hints", "logging", "f_strings", "no_var"):
        assert any(check.startswith(name) for check in passed), name
        assert name in failed, name
    assert "in_selection" in failed


@pytest.mark.timeout(10)
def test_check_specs_are_validated() -> None:
    assert parse_check("renamed old new", "python") == ("renamed", ["old", "new"])
    with pytest.raises(ValueError, match="write it as 'renamed OLD NEW'"):
        parse_check("renamed old", "python")
    with pytest.raises(ValueError, match="unknown check"):
        parse_check("compiles", "python")
    with pytest.raises(ValueError, match="no javascript version"):
        parse_check("type_hints", "javascript")
    with pytest.raises(ValueError, match="no python version"):
        parse_check("no_var", "python")


@pytest.mark.timeout(10)
def test_the_task_file_has_enough_tasks_of_each_kind_on_both_sides() -> None:
    tasks = load_tasks()
    assert len(tasks) >= 30
    counts = {kind: sum(task.kind == kind for task in tasks) for kind in KINDS}
    assert min(counts["rename"], counts["type_hints"], counts["docstring"]) >= 5, counts
    splits = corpus_splits()
    for task in tasks:
        assert task.split == splits[task.project]
    for split in ("dev", "test"):
        side = [task for task in tasks if task.split == split]
        assert len({task.kind for task in side}) >= 4, split
        assert any(task.language != "python" for task in side), split
    python = sum(task.language == "python" for task in tasks)
    assert python > len(tasks) / 2


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"checks": ["renamed a"]}, "write it as"),
        ({"project": "left-pad"}, "not in the corpus"),
        ({"kind": "reformat"}, "kind 'reformat'"),
        ({"lines": [3, 4]}, "either definition or lines"),
        ({"colour": "red"}, "unknown fields"),
    ],
)
def test_malformed_tasks_are_refused(tmp_path: Path, entry: dict, message: str) -> None:
    task = {
        "id": "t",
        "project": "demo",
        "path": "a.py",
        "definition": "f",
        "kind": "rename",
        "instruction": "Rename a to b.",
        "checks": ["renamed a b"],
        **entry,
    }
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in task.items()]
    path = tmp_path / "tasks.toml"
    path.write_text("[[task]]\n" + "\n".join(lines) + "\n")
    with pytest.raises(TaskFileError, match=message):
        load_tasks(path, {"demo": "dev"})


def _task(definition: str | None = None, lines: tuple[int, int] | None = None) -> EditTask:
    path = "a.ts" if definition and definition.startswith("ts:") else "a.py"
    name = definition.removeprefix("ts:") if definition else None
    return EditTask("t", "demo", path, "rename", "x", (), name, lines, "dev")


@pytest.mark.timeout(10)
def test_selections_by_name_and_by_lines() -> None:
    text = (
        "import x\n\n@dec\ndef f():\n    def inner():\n        pass\n\n"
        "class C:\n    def f(self):\n        return 1\n"
    )
    start, end = select(_task("f"), text)
    assert text[start:end] == "@dec\ndef f():\n    def inner():\n        pass\n"
    start, end = select(_task("C.f"), text)
    assert text[start:end] == "    def f(self):\n        return 1\n"
    assert text[slice(*select(_task("f.inner"), text))] == "    def inner():\n        pass\n"
    assert text[slice(*select(_task(lines=(1, 2)), text))] == "import x\n\n"
    with pytest.raises(TaskFileError, match="is not defined"):
        select(_task("g"), text)
    with pytest.raises(TaskFileError, match="past the end"):
        select(_task(lines=(10, 12)), text)
    script = (
        "export const twice = (x: number) => x * 2\n"
        "class Box {\n  get(k: string) {\n    return k\n  }\n}\n"
        "export function twice2() {}\n"
    )
    assert script[slice(*select(_task("ts:twice"), script))].startswith("export const twice")
    assert script[slice(*select(_task("ts:Box.get"), script))] == (
        "  get(k: string) {\n    return k\n  }\n"
    )


def _corpus_repos(projects: set[str]) -> dict[str, corpus.Repo]:
    """The pinned projects, when they are already unpacked here (no download in a test)."""
    cache = corpus.default_cache()
    manifest = corpus.load_manifest()
    for kind in ("pypi", "npm"):
        for entry in manifest[kind]:
            folder = f"{entry['name'].lstrip('@').replace('/', '-')}-{entry['version']}"
            fetched = any((cache / "downloads").glob(f"{folder}.t*gz")) or any(
                (cache / "downloads").glob(f"{folder.replace('-', '_', 1)}.t*gz")
            )
            if entry["name"] in projects and not (fetched and (cache / "src" / folder).is_dir()):
                pytest.skip(f"the corpus is not unpacked in {cache} (run a bench once)")
    repos = corpus.load_repos(quick=False, paths=[], cache=cache, only=sorted(projects))
    return {repo.name: repo for repo in repos}


@pytest.mark.timeout(120)
def test_every_task_resolves_in_its_pinned_file_and_is_not_done_already() -> None:
    tasks = load_tasks()
    repos = _corpus_repos({task.project for task in tasks})
    for task in tasks:
        repo = repos[task.project]
        assert task.path in repo.files, task.task_id
        text = repo.text(task.path)
        start, end = select(task, text)
        assert 2 <= text.count("\n", start, end) <= 50, task.task_id
        # The file as it is passes `parses` and fails the task's own check: the task is to do.
        unchanged = EditResult(task.language, text, text, start, end)
        failure = first_failure(unchanged, list(task.checks))
        assert failure is not None and failure.check not in ("in_selection", "parses"), (
            task.task_id,
            failure,
        )


@pytest.mark.timeout(10)
def test_text_edits_are_applied_as_an_editor_applies_them() -> None:
    text = "héllo\nwörld 😀 end\n"
    edits = [
        {
            "range": {"start": {"line": 1, "character": 9}, "end": {"line": 1, "character": 12}},
            "newText": "END",
        },
        {
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
            "newText": "H",
        },
    ]
    assert apply_text_edits(text, edits) == "Héllo\nwörld 😀 END\n"
    with pytest.raises(ValueError, match="not in the document"):
        bad = {"start": {"line": 9, "character": 0}, "end": {"line": 9, "character": 0}}
        apply_text_edits(text, [{"range": bad, "newText": "x"}])


@pytest.mark.timeout(10)
def test_short_runs_take_every_kind_and_settings_come_inline_or_from_a_file(tmp_path: Path) -> None:
    tasks = load_tasks()
    first = interleaved(tasks, 6)
    assert {task.kind for task in first} == set(KINDS)
    assert interleaved(tasks, None) and len(interleaved(tasks, None)) == len(tasks)
    path = tmp_path / "settings.json"
    path.write_text('{"backend": {"kind": "http"}}')
    assert settings_argument(str(path)) == {"backend": {"kind": "http"}}
    assert settings_argument("@" + str(path)) == {"backend": {"kind": "http"}}
    assert settings_argument('{"edit": {}}') == {"edit": {}}
    other = tmp_path / "settings.conf"  # any file, not only *.json
    other.write_text('{"edit": {}}')
    assert settings_argument(str(other)) == {"edit": {}}


@pytest.mark.timeout(10)
def test_a_setting_the_server_would_reject_stops_the_bench_before_it_starts() -> None:
    # The server warns and goes on with the default, so the run would measure something else.
    with pytest.raises(argparse.ArgumentTypeError, match=r"completion\.timeoutMs must be"):
        settings_argument('{"completion": {"timeoutMs": 1200000}}')
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown setting backend\.onnx\.pth"):
        settings_argument('{"backend": {"onnx": {"pth": "x"}}}')
    with pytest.raises(argparse.ArgumentTypeError, match="not JSON"):
        settings_argument("{budget")


DEMO = {
    "add.py": "import math\n\n\ndef add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n",
    "scale.py": "def scale(value, factor):\n    result = value * factor\n    return result\n",
    "twice.js": "function twice (x) {\n  var y = x * 2\n  return y\n}\nmodule.exports = twice\n",
}
DEMO_TASKS = """
[[task]]
id = "add-hints"
project = "demo"
path = "add.py"
lines = [4, 5]
kind = "type_hints"
instruction = "add type hints"
checks = ["parses", "type_hints"]

[[task]]
id = "scale-rename"
project = "demo"
path = "scale.py"
definition = "scale"
kind = "rename"
instruction = "Rename result to product."
checks = ["parses", "renamed result product"]

[[task]]
id = "scale-docstring"
project = "demo"
path = "scale.py"
definition = "scale"
kind = "docstring"
instruction = "Add a docstring."
checks = ["parses", "docstring"]

[[task]]
id = "twice-no-var"
project = "demo"
path = "twice.js"
definition = "twice"
kind = "no_var"
instruction = "Use const instead of var."
checks = ["parses", "no_var"]
"""


def _demo(tmp_path: Path) -> tuple[list[EditTask], dict[str, Path]]:
    root = tmp_path / "demo"
    root.mkdir()
    for name, text in DEMO.items():
        (root / name).write_text(text)
    (tmp_path / "tasks.toml").write_text(DEMO_TASKS)
    return load_tasks(tmp_path / "tasks.toml", {"demo": "test"}), {"demo": root}


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_run_through_the_server_with_a_tiny_instruct_model(tmp_path: Path) -> None:
    """The tiny model answers every request with a typed ``add``: right for the first task,
    wrong for the others, and each wrong answer is caught by the check it breaks."""
    tasks, roots = _demo(tmp_path)
    settings = {
        "backend": {"kind": "onnx", "onnx": {"path": str(INSTRUCT), "threads": 1}},
        "edit": {"maxTokens": 48},
    }
    data = run(tasks, roots, settings, timeout_s=60)
    by_id = {result["task_id"]: result for result in data["results"]}
    assert by_id["add-hints"]["success"] is True, by_id["add-hints"]
    assert by_id["add-hints"]["edited"] == "def add(a: int, b: int) -> int:\n    return a + b\n"
    rename = by_id["scale-rename"]
    assert rename["applied"] and not rename["success"]
    assert rename["failed_check"] == "renamed" and "'product' does not appear" in rename["why"]
    docstring = by_id["scale-docstring"]
    assert docstring["failed_check"] == "docstring" and not docstring["success"]
    # Python in a JavaScript file: the file no longer parses.
    assert by_id["twice-no-var"]["failed_check"] == "parses"
    overall = data["overall"]
    assert overall["tasks"] == 4 and overall["success"] == 1
    assert overall["success_rate"] == 0.25 and overall["latency_p50_ms"] > 0
    assert data["by_kind"]["type_hints"]["success_rate"] == 1.0
    assert data["by_kind"]["rename"]["failed_checks"] == {"renamed": 1}
    table = markdown({**data, "command": "ghostcomplete bench edit", "split": "test"})
    assert "| all | 4 | 1 | 25.0 | 100.0 |" in table
    assert "| scale-rename | rename | renamed: 'product' does not appear" in table


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"kind": "lookup"}, r'the lookup backend .* backend\.kind = "http"'),
        ({"kind": "http", "http": {"url": "http://127.0.0.1:{port}/v1"}}, "cannot reach"),
    ],
    ids=["lookup", "nothing-listening"],
)
def test_settings_that_cannot_edit_stop_the_run(
    tmp_path: Path, backend: dict, expected: str
) -> None:
    tasks, roots = _demo(tmp_path)
    if "http" in backend:
        backend["http"]["url"] = backend["http"]["url"].format(port=_unused_port())
    with pytest.raises(CannotEdit, match=expected):
        run(tasks, roots, {"backend": backend}, timeout_s=10)


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_serve_model_without_an_instruct_model_stops_the_run(tmp_path: Path) -> None:
    import subprocess

    tasks, roots = _demo(tmp_path)
    server = subprocess.Popen(
        [server_executable(), "serve-model", "--port", "0", "--backend", "lookup"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        backend = {"kind": "http", "http": {"url": url + "/v1"}}
        with pytest.raises(CannotEdit, match="cannot answer chat completions"):
            run(tasks, roots, {"backend": backend}, timeout_s=10)
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_the_command_says_what_to_configure_instead_of_a_table_of_zeros() -> None:
    import subprocess
    import sys

    _corpus_repos({task.project for task in load_tasks()})
    command = [sys.executable, "-m", "ghostcomplete.server.cli", "bench", "edit"]
    done = subprocess.run(
        [*command, "--tasks", "2", "--backend", "lookup"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "the server cannot edit with these settings" in done.stderr
    assert "the lookup backend" in done.stderr and "|" not in done.stdout
