"""``bench acceptance`` over several projects: each project's tasks reach a server whose
workspace is that project, so a model's repository-level prompt names the project and its
files relative to it (as an editor opened on the project would have it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_projects import bench_acceptance, write_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The built-in model, told to use Qwen2.5-Coder's repository format (<|repo_name|>,
# <|file_sep|> path) so that the recorded prompt shows which repository and paths it names;
# no cut, so that every task that reaches the model records its prompt.
MODEL_SETTINGS = {
    "backend": {"onnx": {"threads": 1, "fimFamily": "qwen", "cut": "none"}},
    "completion": {"timeoutMs": 10000},
}


def path_of(row: dict[str, str]) -> str:
    return row["task_id"].split(":")[1]


def test_each_project_is_served_from_its_own_folder(tmp_path: Path) -> None:
    projects = [write_project(tmp_path, "alpha"), write_project(tmp_path, "beta")]
    done, data = bench_acceptance(
        projects,
        tmp_path / "out",
        *("--backend", "onnx", "--settings", json.dumps(MODEL_SETTINGS)),
    )
    assert done.returncode == 0 and data is not None, done.stderr
    rows = data["tasks"]
    # The task order of the run is kept: the first project's tasks, then the second's.
    assert [row["repo"] for row in rows] == sorted(row["repo"] for row in rows)
    prompted = {
        name: [row for row in rows if row["repo"] == name and row["prompt"]]
        for name in ("alpha", "beta")
    }
    assert prompted["alpha"] and prompted["beta"], rows
    for name, own in prompted.items():
        for row in own:
            prompt = row["prompt"]
            assert prompt.startswith(f"<|repo_name|>{name}\n"), prompt
            assert f"<|file_sep|>{path_of(row)}\n<|fim_prefix|>" in prompt, prompt
            assert str(tmp_path) not in prompt, prompt
    # The definitions cart.py imports from its own project's prices.py are snippets of its
    # prompt: imports resolve inside the project's workspace folder.
    carts = [r for own in prompted.values() for r in own if path_of(r).endswith("cart.py")]
    assert carts and all(f"<|file_sep|>{r['repo']}/prices.py\n" in r["prompt"] for r in carts)
    server = data["runs"][0]["server"]
    assert [s["project"] for s in server["projects"]] == ["alpha", "beta"]
    assert server["chosen"] == "onnx"
    assert server["cpu_s"] == pytest.approx(sum(s["cpu_s"] for s in server["projects"]), abs=0.02)
    assert server["peak_rss_mib"] == max(s["peak_rss_mib"] for s in server["projects"])
