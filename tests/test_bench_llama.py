"""``bench acceptance --llama-server MODEL``: one command starts llama-server on 127.0.0.1,
runs the acceptance bench with the http backend against it and stops it.

The wiring is tested with a stand-in for the binary (tests/fake_llama_server.py, taking the
same command line); the run against the real llama-server and GGUF is marked ``peers`` and
skips when ``make peers`` / ``make model-qwen`` have not been run.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from bench_projects import bench_acceptance, write_project
from fake_llama_server import ANSWER

from ghostcomplete.bench.peers_llamacpp import PeerMissing, gguf_of, peer_binary, peer_gguf
from ghostcomplete.model.gguf_parts import CATALOGUE

pytestmark = pytest.mark.timeout(120)

FAKE = Path(__file__).with_name("fake_llama_server.py")
# What an onnx run of the same model would be given: the started server replaces the backend.
ONNX_SETTINGS = {
    "backend": {"kind": "onnx", "onnx": {"threads": 1, "cut": "none"}},
    "completion": {"timeoutMs": 10000},
}


def fake_binary(folder: Path) -> Path:
    script = folder / "llama-server"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(0o755)
    return script


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.e2e
@pytest.mark.parametrize("api", ["openai", "llamacpp"])
def test_one_command_starts_the_server_runs_through_it_and_stops_it(
    tmp_path: Path, api: str
) -> None:
    project = write_project(tmp_path, "alpha")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    log = tmp_path / "llama.jsonl"
    done, data = bench_acceptance(
        [project],
        tmp_path / "out",
        *("--llama-server", str(gguf), "--llama-api", api, "--llama-threads", "1"),
        *("--settings", json.dumps(ONNX_SETTINGS)),
        GHOSTCOMPLETE_LLAMA_SERVER=str(fake_binary(tmp_path)),
        FAKE_LLAMA_LOG=str(log),
    )
    assert done.returncode == 0 and data is not None, done.stderr
    started, *requests = [json.loads(line) for line in log.read_text().splitlines()]
    argv = started["argv"]
    assert argv[argv.index("--model") + 1] == str(gguf)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--threads") + 1] == "1"
    assert not alive(started["pid"]), "llama-server was left running"
    # The http backend, pointed at the started server, whatever the settings' kind said.
    assert data["server_settings"]["backend"]["kind"] == "http"
    assert data["server_settings"]["completion"] == {"timeoutMs": 10000}
    assert data["runs"][0]["chosen"] == "http"
    assert data["llama_server"]["api"] == api and data["llama_server"]["gguf"] == "model.gguf"
    assert requests, "no request reached the started server"
    if api == "openai":
        # Our prompt, in Qwen2.5-Coder's repository format, as the onnx backend renders it.
        assert {r["path"] for r in requests} == {"/v1/completions"}
        for request in requests:
            assert request["body"]["prompt"].startswith("<|repo_name|>alpha\n<|file_sep|>")
            assert str(tmp_path) not in request["body"]["prompt"]
    else:
        assert {r["path"] for r in requests} == {"/infill"}
        extra = [chunk for r in requests for chunk in r["body"]["input_extra"]]
        assert extra and all(c["filename"].startswith("alpha/") for c in extra), extra
    shown = [row for row in data["tasks"] if row["suggestion"]]
    assert shown and all(row["suggestion"] == ANSWER for row in shown), data["tasks"]


def test_what_is_missing_is_one_line_that_says_how_to_get_it(tmp_path: Path) -> None:
    project = write_project(tmp_path, "alpha")
    done, data = bench_acceptance(
        [project],
        tmp_path / "out",
        *("--llama-server", "qwen2.5-coder-0.5b"),
        GHOSTCOMPLETE_LLAMA_SERVER=str(tmp_path / "no-such-binary"),
    )
    assert done.returncode == 1 and data is None
    assert "make peers" in done.stderr and "Traceback" not in done.stderr
    done, data = bench_acceptance(
        [project],
        tmp_path / "out",
        *("--llama-server", str(tmp_path / "missing.gguf")),
        GHOSTCOMPLETE_LLAMA_SERVER=str(fake_binary(tmp_path)),
    )
    assert done.returncode == 1 and "missing.gguf is missing" in done.stderr
    done, _ = bench_acceptance(
        [project], tmp_path / "out", "--backend", "onnx", "--llama-server", "qwen2.5-coder-0.5b"
    )
    assert done.returncode == 2 and "--llama-server runs the http backend" in done.stderr


def test_models_are_named_by_catalogue_name_or_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name = "qwen2.5-coder-1.5b"
    with pytest.raises(PeerMissing, match=re.escape(f"gguf_parts {name}")):
        gguf_of(name)
    placed = tmp_path / "ghostcomplete" / "models" / CATALOGUE[name].file_name
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"GGUF")
    assert gguf_of(name) == placed
    assert gguf_of(str(placed)) == placed
    with pytest.raises(PeerMissing, match=re.escape("qwen2.5-coder-0.5b")):
        gguf_of("no-such-model")


@pytest.mark.peers
@pytest.mark.timeout(600)
def test_acceptance_through_the_real_llama_server(tmp_path: Path) -> None:
    try:
        peer_binary("llama-server")
        gguf = peer_gguf()
    except PeerMissing as missing:
        pytest.skip(str(missing))
    project = write_project(tmp_path, "alpha")
    done, data = bench_acceptance(
        [project],
        tmp_path / "out",
        *("--llama-server", str(gguf), "--llama-threads", "2"),
        *("--settings", json.dumps({"completion": {"timeoutMs": 60000}})),
        timeout=580,
    )
    assert done.returncode == 0 and data is not None, done.stderr
    served = data["llama_server"]
    assert served["api"] == "openai" and served["peak_rss_mib"] > 0
    assert served["generations_started"] >= 1
    assert any(row["suggestion"] for row in data["tasks"]), data["tasks"]
