"""``bench acceptance`` over several projects: each project's tasks reach a server whose
workspace is that project, so a model's repository-level prompt names the project and its
files relative to it (as an editor opened on the project would have it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PRICES = (
    "def net_price(gross, rate):\n    return round(gross / (1 + rate), 2)\n\n\n"
    "def gross_price(net, rate):\n    return round(net * (1 + rate), 2)\n"
)
CART = (
    "from {package}.prices import gross_price, net_price\n\n\n"
    "def total(items, rate):\n    return sum(gross_price(item, rate) for item in items)\n\n\n"
    "def total_net(items, rate):\n    return sum(net_price(item, rate) for item in items)\n"
)
# The built-in model, told to use Qwen2.5-Coder's repository format (<|repo_name|>,
# <|file_sep|> path) so that the recorded prompt shows which repository and paths it names;
# no cut, so that every task that reaches the model records its prompt.
MODEL_SETTINGS = {
    "backend": {"onnx": {"threads": 1, "fimFamily": "qwen", "cut": "none"}},
    "completion": {"timeoutMs": 10000},
}


def project(root: Path, name: str) -> Path:
    folder = root / name
    (folder / name).mkdir(parents=True)
    (folder / name / "prices.py").write_text(PRICES)
    (folder / name / "cart.py").write_text(CART.format(package=name))
    return folder


def test_each_project_is_served_from_its_own_folder(tmp_path: Path) -> None:
    alpha, beta = project(tmp_path, "alpha"), project(tmp_path, "beta")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ghostcomplete.server.cli", "bench", "acceptance"]
    command += ["--repo", str(alpha), "--repo", str(beta), "--context", "default"]
    command += ["--tasks", "1", "--backend", "onnx", "--out", str(out)]
    command += ["--settings", json.dumps(MODEL_SETTINGS)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "acceptance.json").read_text())
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
            path = row["task_id"].split(":")[1]
            assert prompt.startswith(f"<|repo_name|>{name}\n"), prompt
            assert f"<|file_sep|>{path}\n<|fim_prefix|>" in prompt, prompt
            assert str(tmp_path) not in prompt, prompt
    # An imported definition of the project's own prices.py is a snippet of its cart.py:
    # imports resolve inside the project's workspace folder.
    carts = [
        r
        for own in prompted.values()
        for r in own
        if r["task_id"].split(":")[1].endswith("cart.py")
    ]
    assert carts and all(f"<|file_sep|>{r['repo']}/prices.py\n" in r["prompt"] for r in carts), (
        carts
    )
    server = data["runs"][0]["server"]
    assert [s["project"] for s in server["projects"]] == ["alpha", "beta"]
    assert server["chosen"] == "onnx"
    assert server["cpu_s"] == pytest.approx(sum(s["cpu_s"] for s in server["projects"]), abs=0.02)
    assert server["peak_rss_mib"] == max(s["peak_rss_mib"] for s in server["projects"])
