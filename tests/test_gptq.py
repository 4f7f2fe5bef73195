"""GPTQ's block quantization and the calibration run that feeds it: the layout is
``quantize_blocks``', the layer outputs change less than with rounding, and the numpy forward
pass the calibration runs computes what the written graph computes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tiny_decoders import random_weights, tiny_config

from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.model.calibration import (
    calibrate,
    calibration_windows,
    reference_logits,
)
from ghostcomplete.model.gptq import (
    inverse_factor,
    output_error,
    quantize_with_factor,
    second_moments,
)
from ghostcomplete.model.onnx_decoder import write_decoder
from ghostcomplete.model.onnx_weights import dequantize_blocks, quantize_blocks

pytestmark = pytest.mark.timeout(60)


def _correlated_inputs(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """Inputs like a layer's: channels of very different sizes, mixed together."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.normal(size=columns))
    mixing = np.eye(columns) + 0.3 * rng.normal(size=(columns, columns)) / np.sqrt(columns)
    return (rng.normal(size=(rows, columns)) @ mixing * sizes).astype(np.float32)


@pytest.mark.parametrize("energy_order", [False, True])
def test_gptq_changes_the_outputs_less_than_rounding(energy_order):
    rng = np.random.default_rng(1)
    weight = (0.05 * rng.normal(size=(96, 200))).astype(np.float32)  # K not a multiple of 32
    hessian = second_moments(_correlated_inputs(2048, 200))
    factor = inverse_factor(hessian, 32, energy_order=energy_order)
    values, scales, zero_points = quantize_with_factor(weight, factor, 4, 32)
    rounded = quantize_blocks(weight, 4, 32)
    assert values.shape == rounded[0].shape and values.dtype == np.uint8
    assert scales.shape == rounded[1].shape and scales.dtype == np.float32
    assert zero_points.shape == rounded[2].shape and zero_points.dtype == np.uint8
    assert values.max() <= 15 and zero_points.max() <= 15
    found = output_error(weight, dequantize_blocks(values, scales, zero_points), hessian)
    baseline = output_error(weight, dequantize_blocks(*rounded), hessian)
    assert found < 0.95 * baseline


def test_with_independent_inputs_of_one_size_gptq_is_rounding():
    """H = I: no column's error can be made up by another, so GPTQ rounds as quantize_blocks."""
    weight = (0.05 * np.random.default_rng(2).normal(size=(40, 64))).astype(np.float32)
    factor = inverse_factor(np.eye(64), 32)
    found = quantize_with_factor(weight, factor, 4, 32)
    for got, expected in zip(found, quantize_blocks(weight, 4, 32), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_the_factor_is_the_upper_cholesky_factor_of_the_damped_inverse():
    inputs = _correlated_inputs(1500, 608, seed=3)  # past the size the inverse is halved at
    hessian = second_moments(inputs)
    factor = inverse_factor(hessian, 32, damping=0.01)
    upper = factor.upper.astype(np.float64)
    assert np.array_equal(upper, np.triu(upper))
    damped = hessian + np.eye(608) * 0.01 * np.mean(np.diagonal(hessian))
    expected = np.linalg.inv(damped)
    np.testing.assert_allclose(upper.T @ upper, expected, atol=1e-4 * np.abs(expected).max())


def test_inputs_that_are_always_zero_leave_their_weights_out():
    inputs = _correlated_inputs(512, 64, seed=4)
    inputs[:, 5] = 0.0
    weight = np.random.default_rng(5).normal(size=(8, 64)).astype(np.float32)
    factor = inverse_factor(second_moments(inputs), 32)
    assert factor.dead[5] and factor.dead.sum() == 1
    found = dequantize_blocks(*quantize_with_factor(weight, factor, 4, 32))
    assert np.isfinite(found).all()
    # A weight no input reaches is set to the grid's value nearest zero.
    assert np.abs(found[:, 5]).max() <= np.abs(found).max() / 10


@pytest.mark.parametrize(("architecture", "tied"), [("qwen2", False), ("llama", True)])
def test_the_calibration_forward_pass_computes_what_the_graph_computes(
    tmp_path: Path, architecture, tied
):
    config = tiny_config(architecture, tied=tied)
    weights = random_weights(config, seed=6)
    write_decoder(tmp_path, config, weights, "fp32")
    windows = np.random.default_rng(7).integers(0, config.vocab_size, size=(2, 40))
    expected = reference_logits(config, weights, windows)
    model = OnnxModel(tmp_path / "model.onnx", "cpu", 1, slice_logits=False)
    for window, logits in zip(windows, expected, strict=True):
        found, _ = model.forward([int(i) for i in window], model.empty_cache())
        np.testing.assert_allclose(found, logits, rtol=1e-4, atol=1e-4)


def _graph_logits(folder: Path, windows: np.ndarray) -> np.ndarray:
    model = OnnxModel(folder / "model.onnx", "cpu", 1, slice_logits=False)
    return np.stack(
        [model.forward([int(i) for i in window], model.empty_cache())[0] for window in windows]
    )


def test_a_calibrated_int4_graph_is_nearer_the_float_model_than_a_rounded_one(tmp_path: Path):
    config = replace(tiny_config("qwen2"), hidden_size=128, intermediate_size=256)
    weights = random_weights(config, seed=8)
    # Embeddings of a few shared directions and channels of different sizes: the inputs
    # of a trained model's layers are far from independent, which is what GPTQ uses.
    rng = np.random.default_rng(9)
    basis = rng.normal(size=(12, config.hidden_size)) * np.exp(rng.normal(size=config.hidden_size))
    embedding = rng.normal(size=(config.vocab_size, 12)) @ basis
    weights["model.embed_tokens.weight"] = (0.1 * embedding).astype(np.float32)
    windows = rng.integers(0, config.vocab_size, size=(8, 64))
    blocks = calibrate(config, weights, windows, 4, 32)
    assert set(blocks) == {
        f"model.layers.{i}.{name}"
        for i in range(config.num_layers)
        for name in (
            "self_attn.qkv_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
    } | {"lm_head"}
    write_decoder(tmp_path / "float", config, weights, "fp32")
    write_decoder(tmp_path / "rounded", config, weights, "int4")
    write_decoder(tmp_path / "calibrated", config, weights, "int4", found_blocks=blocks)
    held_out = rng.integers(0, config.vocab_size, size=(4, 64))
    truth = _graph_logits(tmp_path / "float", held_out)
    rounded = np.mean((_graph_logits(tmp_path / "rounded", held_out) - truth) ** 2)
    calibrated = np.mean((_graph_logits(tmp_path / "calibrated", held_out) - truth) ** 2)
    assert calibrated < 0.9 * rounded


def test_calibration_windows_come_from_the_standard_library_in_a_fixed_order(tmp_path: Path):
    class Characters:
        def encode(self, text: str) -> list[int]:
            return [ord(c) % 256 for c in text]

    (tmp_path / "argparse.py").write_text("a" * 1000)
    (tmp_path / "difflib.py").write_text("b" * 250)
    (tmp_path / "textwrap.py").write_bytes(b"\xff\xfe not text")
    found = calibration_windows(Characters(), count=2, tokens=100, library=tmp_path)
    # At most a quarter of the windows (at least one) from a file; unreadable files skipped.
    assert found.sources == ("argparse.py", "difflib.py")
    assert found.windows.shape == (2, 100)
    assert found.windows[0, 0] == ord("a") and found.windows[1, 0] == ord("b")
    with pytest.raises(ValueError, match="holds 4 of the 8"):
        calibration_windows(Characters(), count=8, tokens=100, library=tmp_path)


def test_fill_in_the_middle_windows_are_the_servers_prompts_with_their_answers(tmp_path: Path):
    from tiny_decoders import gguf_tokenizer_folder

    from ghostcomplete.backends.onnx.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(gguf_tokenizer_folder(tmp_path))
    lines = [f"def function_{i}(value):\n    return value + {i}\n" for i in range(60)]
    names = ("argparse.py", "difflib.py", "textwrap.py", "dataclasses.py")
    for name in names:
        (tmp_path / name).write_text("".join(lines))
    found = calibration_windows(tokenizer, count=4, tokens=400, library=tmp_path, family="qwen")
    assert found.windows.shape == (4, 400) and found.sources == names
    special = tokenizer.special
    marks = [special[m] for m in ("<|file_sep|>", "<|fim_prefix|>", "<|fim_suffix|>")]
    for window, name in zip(found.windows.tolist(), names, strict=True):
        # The prompt as the server renders it: the file's name, then prefix, suffix, middle.
        header = tokenizer.encode(f"{name}\n")
        assert window[0] == marks[0] and window[1 : 1 + len(header)] == header
        at = [window.index(mark) for mark in marks[1:]] + [window.index(special["<|fim_middle|>"])]
        assert at == sorted(at)
        # What follows the middle marker is three lines of the file: the answer.
        answer = b"".join(tokenizer.token_bytes(t) for t in window[at[-1] + 1 :]).decode()
        assert answer.count("\n") == 3 and answer in "".join(lines)
    assert found.family == "qwen"
    plain = calibration_windows(tokenizer, count=4, tokens=200, library=tmp_path)
    assert not set(plain.windows.ravel().tolist()) & set(special.values())
    assert plain.family is None
    # A family whose prompts hold no suffix, or one the server does not know: plain text.
    for family in ("plain", "unknown"):
        same = calibration_windows(tokenizer, count=4, tokens=200, library=tmp_path, family=family)
        assert same.family is None and np.array_equal(same.windows, plain.windows)
