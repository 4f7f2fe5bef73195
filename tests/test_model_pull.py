"""``ghostcomplete model pull`` against a loopback fake hub serving a tiny Qwen2 made here.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported, so every
pull runs in a fresh process (the CLI, or ``python -c`` for the download step alone) with the
environment pointing at the fake hub and into tmp_path. Nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hub_fake import FakeHub, FakeRepo, tiny_qwen2_folder
from support import server_executable

pytestmark = pytest.mark.timeout(90)

pytest.importorskip("huggingface_hub")
pytest.importorskip("safetensors")

REPO_ID = "Qwen/Qwen2.5-Coder-0.5B"  # the catalogue's qwen2.5-coder-0.5b, served by the fake
ENTRY = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_qwen2_folder(tmp_path_factory.mktemp("tiny") / "Qwen2.5-Coder-0.5B")


def environment(tmp_path: Path, endpoint: str, offline: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GHOSTCOMPLETE_MODELS": str(tmp_path / "models"),
    }
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def pull(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [server_executable(), "model", "pull", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )


# The download step alone: fetch the catalogue entry and print what it checked. A small
# chunk size makes a resumed transfer visible on a small file (the client resumes from the
# last whole chunk it wrote).
FETCH = """
import json, sys
import huggingface_hub.constants as constants
constants.DOWNLOAD_CHUNK_SIZE = int(sys.argv[1])
from ghostcomplete.model.catalogue import find
from ghostcomplete.model.hub import PullError, fetch
entry = find(sys.argv[2])
try:
    got = fetch(entry.repo, entry.revision, entry.patterns, say=lambda line: None)
except PullError as error:
    print(json.dumps({"error": str(error)}))
else:
    print(json.dumps({"folder": str(got.folder), "commit": got.commit, "files": got.files}))
"""


def fetch(env: dict[str, str], chunk: int = 10 * 1024 * 1024) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", FETCH, str(chunk), ENTRY],
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("ghostcomplete:")]
    assert len(ours) == 1, result.stderr
    return ours[0]


def installed(tmp_path: Path) -> list[str]:
    models = tmp_path / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_fetch_downloads_every_file_and_checks_each_hash(tmp_path: Path, tiny: Path) -> None:
    repo = FakeRepo.from_folder(tiny)
    with FakeHub({REPO_ID: repo}) as hub:
        got = fetch(environment(tmp_path, hub.url))
    assert got["commit"] == repo.commit
    assert set(got["files"]) == {p.name for p in tiny.iterdir()}
    for name, record in got["files"].items():
        assert record["sha256"] == sha256(tiny / name)
        assert record["size"] == (tiny / name).stat().st_size
        assert Path(got["folder"], name).read_bytes() == (tiny / name).read_bytes()
    # The weights are checked against the LFS sha256, the small files against git blob ids.
    assert got["files"]["model.safetensors"]["checked"] == "sha256"
    assert got["files"]["config.json"]["checked"] == "git blob id"
    assert Path(got["folder"]).is_relative_to(tmp_path / "hf")


def test_a_corrupted_file_is_refused_evicted_and_nothing_is_installed(
    tmp_path: Path, tiny: Path
) -> None:
    repo = FakeRepo.from_folder(tiny, corrupt={"model.safetensors"})
    with FakeHub({REPO_ID: repo}) as hub:
        env = environment(tmp_path, hub.url)
        result = pull(env, ENTRY)
        assert result.returncode == 1
        line = one_error_line(result)
        assert "model.safetensors" in line and "does not match" in line
        assert installed(tmp_path) == []
        # The bad bytes left the cache: once the hub serves the right ones, they are fetched
        # again (not trusted from the cache) and pass.
        repo.corrupt.clear()
        got = fetch(env)
        assert got["files"]["model.safetensors"]["sha256"] == sha256(tiny / "model.safetensors")
        assert len(hub.transfers("model.safetensors")) == 2


def test_a_transfer_cut_half_way_resumes_with_a_range_request(tmp_path: Path, tiny: Path) -> None:
    repo = FakeRepo.from_folder(tiny, cut_once={"model.safetensors"})
    with FakeHub({REPO_ID: repo}) as hub:
        got = fetch(environment(tmp_path, hub.url), chunk=4096)
        first, second = hub.transfers("model.safetensors")
    assert first.range is None
    assert second.range is not None and second.range.startswith("bytes=")
    resumed_at = int(second.range.removeprefix("bytes=").rstrip("-"))
    size = (tiny / "model.safetensors").stat().st_size
    assert 0 < resumed_at <= size // 2
    assert got["files"]["model.safetensors"]["sha256"] == sha256(tiny / "model.safetensors")


def test_offline_with_a_warm_cache_needs_no_hub(tmp_path: Path, tiny: Path) -> None:
    with FakeHub({REPO_ID: FakeRepo.from_folder(tiny)}) as hub:
        online = fetch(environment(tmp_path, hub.url))
    # The hub is gone; offline mode reads the cache and checks each file against the name the
    # cache keeps its blob under.
    offline = fetch(environment(tmp_path, "http://127.0.0.1:9", offline=True))
    assert offline["commit"] == online["commit"]
    assert {n: r["sha256"] for n, r in offline["files"].items()} == {
        n: r["sha256"] for n, r in online["files"].items()
    }
    assert offline["files"]["model.safetensors"]["checked"] == "sha256"


def test_offline_with_a_cold_cache_says_so(tmp_path: Path) -> None:
    result = pull(environment(tmp_path, "http://127.0.0.1:9", offline=True), ENTRY)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "not in the cache" in line and "HF_HUB_OFFLINE" in line
    assert installed(tmp_path) == []


def test_offline_with_a_tampered_cache_refuses(tmp_path: Path, tiny: Path) -> None:
    with FakeHub({REPO_ID: FakeRepo.from_folder(tiny)}) as hub:
        online = fetch(environment(tmp_path, hub.url))
    blob = Path(online["folder"], "model.safetensors").resolve()
    blob.write_bytes(b"\0" * blob.stat().st_size)
    got = fetch(environment(tmp_path, "http://127.0.0.1:9", offline=True))
    assert "model.safetensors" in got["error"] and "does not match" in got["error"]


def test_an_unknown_name_lists_the_catalogue(tmp_path: Path) -> None:
    result = pull(environment(tmp_path, "http://127.0.0.1:9"), "gpt-5")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "'gpt-5'" in line and ENTRY in line and "starcoder2-3b" in line


def test_an_unsupported_architecture_is_refused_before_downloading(
    tmp_path: Path, tiny: Path
) -> None:
    with FakeHub({"bigcode/starcoder2-3b": FakeRepo.from_folder(tiny)}) as hub:
        result = pull(environment(tmp_path, hub.url), "starcoder2-3b")
        assert hub.requests == []
    assert result.returncode == 1
    line = one_error_line(result)
    assert "starcoder2" in line and "nothing was downloaded" in line
    assert not (tmp_path / "hf" / "hub").exists()


def test_calibrating_a_float_precision_is_refused_before_downloading(
    tmp_path: Path, tiny: Path
) -> None:
    with FakeHub({REPO_ID: FakeRepo.from_folder(tiny)}) as hub:
        result = pull(environment(tmp_path, hub.url), ENTRY, "--precision", "fp16", "--calibrate")
        assert hub.requests == []
    assert result.returncode == 1
    line = one_error_line(result)
    assert "--calibrate is for int4 and int8, not fp16" in line and "nothing was downloaded" in line
    assert installed(tmp_path) == []


def test_pull_calibrates_the_precisions_the_importer_quantizes() -> None:
    from ghostcomplete.model.decoder_graph import BITS
    from ghostcomplete.model.precisions import CALIBRATED_PRECISIONS

    assert set(CALIBRATED_PRECISIONS) == set(BITS)


@pytest.mark.parametrize(
    ("refuse", "words"),
    [("gated", ["gated", "HF_TOKEN"]), ("missing", ["not found", REPO_ID])],
)
def test_a_refused_repository_is_one_line(
    tmp_path: Path, tiny: Path, refuse: str, words: list[str]
) -> None:
    with FakeHub({REPO_ID: FakeRepo.from_folder(tiny, refuse=refuse)}) as hub:
        result = pull(environment(tmp_path, hub.url), ENTRY)
    assert result.returncode == 1
    line = one_error_line(result)
    assert all(word in line for word in words), line
    assert installed(tmp_path) == []


def test_an_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = pull(environment(tmp_path, f"http://127.0.0.1:{port}"), ENTRY)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "cannot download" in line and "HF_HUB_OFFLINE" in line
    assert installed(tmp_path) == []


def test_an_installed_name_is_not_replaced_without_force(tmp_path: Path, tiny: Path) -> None:
    from ghostcomplete.backends.onnx.installed import InstalledModel, write_manifest

    folder = tmp_path / "models" / ENTRY
    folder.mkdir(parents=True)
    write_manifest(folder, InstalledModel(ENTRY, "earlier", "qwen2", "int8"))
    with FakeHub({REPO_ID: FakeRepo.from_folder(tiny)}) as hub:
        result = pull(environment(tmp_path, hub.url), ENTRY)
        assert hub.requests == []
    assert result.returncode == 1
    assert "--force" in one_error_line(result)


# --- the whole pull: download, check, convert, install -------------------------------------
def manifest(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "models" / name / "ghostcomplete-model.json").read_text())


async def test_a_pull_installs_a_model_that_loads_and_completes(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
    from ghostcomplete.backends.onnx.backend import OnnxBackend
    from ghostcomplete.backends.onnx.config import OnnxSettings
    from ghostcomplete.context.syntax import Scope
    from ghostcomplete.ranker.budget import PackedContext
    from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

    repo = FakeRepo.from_folder(tiny)
    with FakeHub({REPO_ID: repo}) as hub:
        result = pull(environment(tmp_path, hub.url), ENTRY)
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path) == [ENTRY]
    record = manifest(tmp_path, ENTRY)
    assert "calibration" not in record["extra"]
    assert record["source"] == f"{REPO_ID}@{repo.commit}"
    assert (record["license"], record["fim_family"], record["precision"]) == (
        "Apache-2.0",
        "qwen",
        "int4",
    )
    hub_record = record["extra"]["hub"]
    assert (hub_record["repo"], hub_record["revision"], hub_record["commit"]) == (
        REPO_ID,
        "main",
        repo.commit,
    )
    assert hub_record["files"]["model.safetensors"]["sha256"] == sha256(tiny / "model.safetensors")
    assert record["extra"]["catalogue"] == ENTRY
    assert (tmp_path / "models" / ENTRY / "LICENSE").read_bytes() == (tiny / "LICENSE").read_bytes()

    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(tmp_path / "models"))
    # The prompt as rendered: healed, this model's random weights write only blanks after
    # the backed-off indentation (token healing has its own tests).
    settings = OnnxSettings(
        model=ENTRY, threads=1, max_new_tokens=8, cut="none", token_healing=False
    )
    backend = OnnxBackend(settings)
    assert backend.fim_family == "qwen"
    context = PackedContext(prefix="def add(a, b):\n    ", suffix="", snippets=(), tokens=0)
    prompt_text = render_fim(context, "qwen", "python", "demo.py")
    prompt = CompletionPrompt("python", "demo.py", context, prompt_text, TEMPLATES["qwen"].stop)
    found = await backend.generate(prompt, GenerationLimits(scope=Scope.BLOCK, candidates=1))
    await backend.aclose()
    assert found and found[0].details["tokens"] >= 1 and found[0].text


def test_a_pull_whose_transfer_is_cut_still_installs(tmp_path: Path, tiny: Path) -> None:
    repo = FakeRepo.from_folder(tiny, cut_once={"model.safetensors"})
    with FakeHub({REPO_ID: repo}) as hub:
        result = pull(environment(tmp_path, hub.url), ENTRY, "--calibrate")
        assert len(hub.transfers("model.safetensors")) == 2
    assert result.returncode == 0, result.stderr
    extra = manifest(tmp_path, ENTRY)["extra"]
    assert extra["hub"]["files"]["model.safetensors"]["sha256"] == sha256(
        tiny / "model.safetensors"
    )
    assert extra["calibration"]["method"] == "gptq"


@pytest.mark.slow
def test_offline_pulls_reinstall_from_the_cache_under_a_name_and_by_force(
    tmp_path: Path, tiny: Path
) -> None:
    with FakeHub({REPO_ID: FakeRepo.from_folder(tiny)}) as hub:
        assert pull(environment(tmp_path, hub.url), ENTRY).returncode == 0
        # Pulled again online, the cached files are not fetched again.
        assert pull(environment(tmp_path, hub.url), ENTRY, "--force").returncode == 0
        assert len(hub.transfers("model.safetensors")) == 1
    first = manifest(tmp_path, ENTRY)
    offline = environment(tmp_path, "http://127.0.0.1:9", offline=True)
    beside = pull(offline, ENTRY, "--name", "small", "--precision", "int8")
    assert beside.returncode == 0, beside.stderr
    assert installed(tmp_path) == sorted([ENTRY, "small"])
    assert manifest(tmp_path, "small")["precision"] == "int8"
    assert manifest(tmp_path, "small")["extra"]["hub"]["files"] == first["extra"]["hub"]["files"]
    again = pull(offline, ENTRY, "--force", "--precision", "fp32")
    assert again.returncode == 0, again.stderr
    assert manifest(tmp_path, ENTRY)["precision"] == "fp32"
    assert installed(tmp_path) == sorted([ENTRY, "small"])  # nothing left over
