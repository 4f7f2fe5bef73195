"""Installed models by name: the models directory, manifests, and ``backend.onnx.model``."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import copy_of_builtin_model

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.backend import model_file
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.installed import (
    MANIFEST,
    InstalledModel,
    check_name,
    installed_folder,
    installed_models,
    models_dir,
    read_manifest,
    with_speed,
    write_manifest,
)

pytestmark = pytest.mark.timeout(30)


def install_builtin_as(root: Path, name: str) -> Path:
    folder = root / name
    copy_of_builtin_model(folder)
    write_manifest(folder, InstalledModel(name, "test", "gpt2", "fp32", size_bytes=1))
    return folder


def test_models_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GHOSTCOMPLETE_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert models_dir() == tmp_path / "ghostcomplete" / "models"
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(tmp_path / "m"))
    assert models_dir() == tmp_path / "m"


def test_a_named_model_loads_from_the_models_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(tmp_path))
    folder = install_builtin_as(tmp_path, "tiny")
    assert model_file(OnnxSettings(model="tiny")) == folder / "model.onnx"
    # The name wins over a path.
    assert model_file(OnnxSettings(model="tiny", path="/nowhere")).parent == folder


def test_an_unknown_name_says_what_is_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(tmp_path))
    install_builtin_as(tmp_path, "tiny")
    with pytest.raises(BackendError, match=r"no model named 'big'.*installed: tiny"):
        model_file(OnnxSettings(model="big"))
    with pytest.raises(BackendError, match="cannot name a model"):
        installed_folder("../etc")


def test_an_unfinished_import_is_neither_listed_nor_loaded(tmp_path):
    install_builtin_as(tmp_path, "done")
    (tmp_path / "half").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST).write_text("{not json")
    assert [m.name for _, m in installed_models(tmp_path)] == ["done"]
    with pytest.raises(BackendError):
        installed_folder("half", tmp_path)


def test_speed_is_recorded_in_the_manifest(tmp_path):
    folder = install_builtin_as(tmp_path, "tiny")
    with_speed(folder, {"decode_tps": 61.5})
    assert read_manifest(folder).speed == {"decode_tps": 61.5}
    assert read_manifest(folder).precision == "fp32"


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a\\b", "x" * 101, "end."])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError):
        check_name(name)
