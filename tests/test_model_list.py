"""``ghostcomplete model list`` and ``model measure NAME``: what is installed, and the speed
measured on this machine kept in each model's manifest."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from support import copy_of_builtin_model, server_executable

from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    machine_fingerprint,
    read_manifest,
    with_speed,
    write_manifest,
)
from ghostcomplete.backends.onnx.prompt_budget import prompt_tokens_for
from ghostcomplete.model import listing, measure
from ghostcomplete.model.catalogue import CATALOGUE

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(root))
    return root


def install_builtin_as(root: Path, name: str, **fields: object) -> Path:
    folder = root / name
    copy_of_builtin_model(folder)
    model = InstalledModel(name, "test", "llama", "fp32", "starcoder", "MIT", 12_800_000)
    write_manifest(folder, replace(model, **fields))
    return folder


def test_list_shows_size_precision_family_licence_and_speed(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_builtin_as(models, "plain")
    install_builtin_as(
        models, "calibrated", precision="int4", extra={"calibration": {"method": "gptq"}}
    )
    with_speed(
        install_builtin_as(models, "timed", precision="int8"),
        {"decode_tokens_per_s": 61.5, "keystroke_p50_ms": 240.0},
    )
    elsewhere = {**machine_fingerprint(), "cores": 4096}
    with_speed(
        install_builtin_as(models, "copied"),
        {"decode_tokens_per_s": 900.0, "keystroke_p50_ms": 9.0, "machine": elsewhere},
    )
    assert listing.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"models directory: {models}"
    assert lines[1].split()[:3] == ["NAME", "SIZE", "PRECISION"]
    plain = next(line for line in lines if line.startswith("plain "))
    timed = next(line for line in lines if line.startswith("timed "))
    assert "13 MB" in plain and "fp32" in plain and "starcoder" in plain and "MIT" in plain
    assert plain.endswith("not measured")
    calibrated = next(line for line in lines if line.startswith("calibrated "))
    assert " int4 gptq " in calibrated
    assert "int8" in timed and "61.5 tokens/s decode, 240 ms a keystroke (p50)" in timed
    copied = next(line for line in lines if line.startswith("copied "))
    assert copied.endswith("measured on another machine")
    # Nothing from the catalogue without --all.
    assert not any(entry.name in "\n".join(lines) for entry in CATALOGUE)


def test_list_all_marks_the_catalogue_entries_not_installed(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Installed under another name, but pulled from the first entry: that one is installed.
    install_builtin_as(models, "mine", extra={"catalogue": CATALOGUE[0].name})
    assert listing.main(["--all"]) == 0
    out = capsys.readouterr().out
    assert CATALOGUE[0].name not in out
    for entry in CATALOGUE[1:]:
        line = next(line for line in out.splitlines() if line.startswith(entry.name + " "))
        assert entry.license in line and "download" in line
        assert line.endswith("not installed" if entry.supported else "cannot convert yet")


def test_list_json_through_the_command(models: Path) -> None:
    with_speed(install_builtin_as(models, "timed"), {"decode_tokens_per_s": 9.0})
    done = subprocess.run(
        [server_executable(), "model", "list", "--all", "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = {row["name"]: row for row in json.loads(done.stdout)}
    assert found["timed"]["installed"] is True and found["timed"]["speed"] == {
        "decode_tokens_per_s": 9.0
    }
    assert found["timed"]["folder"] == str(models / "timed")
    assert {e.name for e in CATALOGUE} <= set(found)
    starcoder = found["starcoder2-3b"]
    assert starcoder["installed"] is False and starcoder["supported"] is False
    assert starcoder["repo"] == "bigcode/starcoder2-3b"


def test_an_empty_models_directory_says_how_to_get_one(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert listing.main([]) == 0
    assert "no model is installed" in capsys.readouterr().out


@pytest.mark.slow
def test_measure_by_name_keeps_the_speed_with_the_model(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = install_builtin_as(models, "tiny")
    assert measure.main(["tiny", "--threads", "1", "--no-save"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert read_manifest(folder).speed is None
    assert printed["decode_tokens_per_s"] > 0

    assert measure.main(["tiny", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    speed = read_manifest(folder).speed
    assert speed is not None
    assert speed["decode_tokens_per_s"] == printed["decode_tokens_per_s"] > 0
    assert speed["keystroke_p50_ms"] == printed["keystroke_p50_ms"] > 0
    assert speed["prompt_tokens"] == max(
        int(k.split("_")[1]) for k in printed if k.startswith("prefill_") and k.endswith("_ms")
    )
    assert speed["prompt_tokens_per_s"] > 0
    assert (speed["provider"], speed["threads"]) == ("CPUExecutionProvider", 1)
    assert speed["machine"] == machine_fingerprint()
    assert speed["machine"]["cores"] == os.cpu_count()
    # Typing was timed with the prompt budget the server gives this model here.
    assert speed["keystroke_prompt_budget"] == prompt_tokens_for(
        speed["prompt_tokens_per_s"], on_gpu=False
    )
    # The rest of the manifest is untouched.
    assert read_manifest(folder).precision == "fp32"


def test_measure_request_mode_by_name_is_not_recorded(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = install_builtin_as(models, "tiny")
    assert measure.main(["tiny", "--request", "40:4", "--repeat", "2", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["request"] == "40+4"
    assert read_manifest(folder).speed is None


def test_measure_an_unknown_name_says_what_is_installed(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_builtin_as(models, "tiny")
    assert measure.main(["huge"]) == 2
    assert "installed: tiny" in capsys.readouterr().err
