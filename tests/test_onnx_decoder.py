"""model/onnx_decoder.py: tiny qwen2- and llama-shaped decoders with random weights, written
at each precision and run through the engine (OnnxModel, decode.py), against a numpy forward
pass written here from the architecture's definition."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.engine import LOGITS_KEPT, OnnxModel
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.context.syntax import Scope
from ghostcomplete.model.onnx_decoder import (
    DATA_FILE,
    IR_VERSION,
    MODEL_FILE,
    DecoderConfig,
    expected_shapes,
    write_decoder,
)
from ghostcomplete.model.onnx_weights import TensorFile, dequantize_blocks, quantize_blocks

pytestmark = pytest.mark.timeout(60)

CONFIGS = {
    # Tied output layer, q/k/v biases, rope_theta as Qwen2.5's.
    "qwen2": DecoderConfig(
        architecture="qwen2",
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        max_positions=64,
        tied_embeddings=True,
        attention_bias=True,
    ),
    # Untied, no biases, 4 query heads on 1 KV head, heads * head_dim != hidden, and an
    # input width (96) that is an odd number of quantization blocks.
    "llama": DecoderConfig(
        architecture="llama",
        vocab_size=300,
        hidden_size=96,
        intermediate_size=160,
        num_layers=3,
        num_heads=4,
        num_kv_heads=1,
        head_dim=32,
        rms_norm_eps=1e-5,
        rope_theta=10_000.0,
        max_positions=64,
        tied_embeddings=False,
        attention_bias=False,
    ),
}
PROMPT = [5, 17, 42, 3, 99, 250, 7, 11, 64]


def random_weights(config: DecoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("norm.weight"):
            weights[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif name.endswith("embed_tokens.weight"):
            weights[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            scale = 0.5 / np.sqrt(shape[-1]) if len(shape) == 2 else 0.1
            weights[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    return weights


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * weight


def rotate(x: np.ndarray, positions: np.ndarray, config: DecoderConfig) -> np.ndarray:
    """HF rotary embedding (rotate_half): x (n, heads, head_dim) at ``positions``."""
    half = config.head_dim // 2
    inverse = 1.0 / config.rope_theta ** (np.arange(0, config.head_dim, 2) / config.head_dim)
    angles = np.outer(positions, inverse)
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[:, None, :]
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def reference_logits(config: DecoderConfig, w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Every position's logits, float64, no cache."""
    w = {name: value.astype(np.float64) for name, value in w.items()}
    n, eps = len(ids), config.rms_norm_eps
    positions = np.arange(n)
    x = w["model.embed_tokens.weight"][ids]
    group = config.num_heads // config.num_kv_heads
    causal = np.triu(np.full((n, n), -np.inf), k=1)
    for i in range(config.num_layers):
        p = f"model.layers.{i}"
        h = rms_norm(x, w[f"{p}.input_layernorm.weight"], eps)
        projected = {}
        for part in ("q", "k", "v"):
            out = h @ w[f"{p}.self_attn.{part}_proj.weight"].T
            if config.attention_bias:
                out = out + w[f"{p}.self_attn.{part}_proj.bias"]
            projected[part] = out.reshape(n, -1, config.head_dim)
        q = rotate(projected["q"], positions, config)
        k = np.repeat(rotate(projected["k"], positions, config), group, axis=1)
        v = np.repeat(projected["v"], group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(config.head_dim) + causal
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = np.einsum("hqk,khd->qhd", scores, v).reshape(n, -1)
        x = x + attended @ w[f"{p}.self_attn.o_proj.weight"].T
        h = rms_norm(x, w[f"{p}.post_attention_layernorm.weight"], eps)
        gate = h @ w[f"{p}.mlp.gate_proj.weight"].T
        up = h @ w[f"{p}.mlp.up_proj.weight"].T
        silu = gate / (1 + np.exp(-gate))
        x = x + (silu * up) @ w[f"{p}.mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight" if config.tied_embeddings else "lm_head.weight"]
    return x @ head.T


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Every config at every precision, written once."""
    folders = {}
    for name, config in CONFIGS.items():
        weights = random_weights(config)
        for precision in ("fp32", "fp16", "int8", "int4"):
            folder = tmp_path_factory.mktemp(f"{name}-{precision}")
            write_decoder(folder, config, weights, precision, {"fim_family": "qwen"})
            folders[name, precision] = folder
    return folders


def load(folder: Path) -> OnnxModel:
    return OnnxModel(folder / MODEL_FILE, "cpu", 1)


def free(max_new: int) -> Limits:
    return Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), max_new)


class NumberTokenizer:
    """Each token id reads as its number and a space: enough for decode.py's text."""

    def __init__(self) -> None:
        self.special: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [int(part) for part in text.split()]

    def token_bytes(self, token: int) -> bytes:
        return f"{token} ".encode()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fp32_graph_matches_the_reference_with_and_without_the_cache(written, name) -> None:
    config = CONFIGS[name]
    weights = random_weights(config)
    model = load(written[name, "fp32"])
    assert model.kv_heads == config.num_kv_heads and model.head_dim == config.head_dim
    expected = reference_logits(config, weights, [*PROMPT, 8, 9, 10, 12])
    logits, past = model.forward(PROMPT, model.empty_cache())
    np.testing.assert_allclose(logits, expected[: len(PROMPT)], rtol=1e-4, atol=1e-4)
    assert past.length == len(PROMPT)
    # One token after the prompt, then several at once (the draft-verification shape).
    one, past = model.forward([8], past)
    np.testing.assert_allclose(one, expected[len(PROMPT) : len(PROMPT) + 1], atol=1e-4)
    more, past = model.forward([9, 10, 12], past)
    np.testing.assert_allclose(more, expected[len(PROMPT) + 1 :], rtol=1e-4, atol=1e-4)
    assert past.length == len(PROMPT) + 4
    # Only the last positions' logits when asked for them.
    last, _ = model.forward(PROMPT, model.empty_cache(), last=2)
    np.testing.assert_allclose(last, expected[len(PROMPT) - 2 : len(PROMPT)], atol=1e-4)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_greedy_decoding_with_the_cache_equals_decoding_without_it(written, name) -> None:
    model = load(written[name, "fp32"])
    tokenizer = NumberTokenizer()
    tokens = list(PROMPT)
    for _ in range(12):
        logits, _ = model.forward(tokens, model.empty_cache(), last=1)
        tokens.append(int(np.argmax(logits[-1])))
    start, _ = prefill(model, PROMPT)
    cached = decode(model, tokenizer, start, free(12))
    assert cached.tokens == tokens[len(PROMPT) :]
    # Drafts from earlier n-grams, verified several tokens a pass, cut back when rejected.
    echo = [*PROMPT, *cached.tokens, *PROMPT]
    start, _ = prefill(model, echo)
    plain = decode(model, tokenizer, start, free(12))
    drafted = decode(model, tokenizer, start, free(12), draft_tokens=4)
    assert drafted.tokens == plain.tokens and drafted.accepted > 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(
    ("precision", "tolerance", "size_range"),
    [("fp16", 0.01, (0.48, 0.6)), ("int8", 0.03, (0.27, 0.36)), ("int4", 0.25, (0.15, 0.22))],
)
def test_smaller_precisions_stay_close_to_fp32(
    written, name, precision, tolerance, size_range
) -> None:
    def size(folder: Path) -> int:
        return (folder / MODEL_FILE).stat().st_size + (folder / DATA_FILE).stat().st_size

    exact, smaller = load(written[name, "fp32"]), load(written[name, precision])
    ids = [*PROMPT, 1, 2]
    expected, past_expected = exact.forward(ids, exact.empty_cache())
    found, past = smaller.forward(ids, smaller.empty_cache())
    assert past.arrays[0].dtype == (np.float16 if precision == "fp16" else np.float32)
    spread = float(expected.std())
    assert float(np.abs(found - expected).max()) < tolerance * 4 * spread
    assert float(np.sqrt(np.mean((found - expected) ** 2))) < tolerance * spread
    assert np.mean(found.argmax(axis=1) == expected.argmax(axis=1)) >= 0.7
    next_expected, _ = exact.forward([3], past_expected)
    next_found, _ = smaller.forward([3], past)
    assert float(np.abs(next_found - next_expected).max()) < tolerance * 4 * spread
    parameters = sum(int(np.prod(shape)) for shape in expected_shapes(CONFIGS[name]).values())
    for each, bounds in (("fp32", (1.0, 1.1)), (precision, size_range)):
        ratio = size(written[name, each]) / (4 * parameters)
        assert bounds[0] < ratio < bounds[1], (each, ratio)


def bound_run(
    session: ort.InferenceSession,
    buffers: dict[str, ort.OrtValue],
    ids: list[int],
    total: int,
) -> np.ndarray:
    """One run with ``buffers`` bound as both past and present."""
    binding = session.io_binding()
    binding.bind_cpu_input("input_ids", np.asarray([ids], dtype=np.int64))
    binding.bind_cpu_input("attention_mask", np.ones((1, total), dtype=np.int64))
    binding.bind_cpu_input(LOGITS_KEPT, np.asarray([len(ids)], dtype=np.int64))
    binding.bind_output("logits", "cpu")
    for name, buffer in buffers.items():
        binding.bind_ortvalue_input(name, buffer)
        binding.bind_ortvalue_output(name.replace("past_key_values.", "present."), buffer)
    session.run_with_iobinding(binding)
    return np.asarray(binding.copy_outputs_to_cpu()[0][0])


@pytest.mark.parametrize("precision", ["fp32", "int4"])
def test_a_shared_max_length_buffer_gives_the_same_logits_as_a_growing_cache(
    written, precision
) -> None:
    config = CONFIGS["llama"]
    model = load(written["llama", precision])
    longest = 32
    buffers = {
        name: ort.OrtValue.ortvalue_from_numpy(
            np.zeros((1, config.num_kv_heads, longest, config.head_dim), np.float32)
        )
        for name in model.past_names
    }
    grown, past = model.forward(PROMPT, model.empty_cache())
    shared = bound_run(model.session, buffers, PROMPT, len(PROMPT))
    np.testing.assert_allclose(shared, grown, rtol=1e-5, atol=1e-5)
    for step, ids in enumerate(([8], [9, 10])):
        grown, past = model.forward(ids, past)
        shared = bound_run(model.session, buffers, ids, past.length)
        np.testing.assert_allclose(shared, grown, rtol=1e-5, atol=1e-5, err_msg=str(step))
    # The present outputs are the buffers themselves: the first rows hold the cache.
    key = buffers[model.past_names[0]].numpy()
    assert key.shape[2] == longest
    np.testing.assert_allclose(key[:, :, : past.length], past.arrays[0], atol=1e-6)
    # Rewinding two tokens is a shorter mask: the rows past it are overwritten.
    rewound, _ = model.forward([11, 13], past.truncated(past.length - 2))
    shared = bound_run(model.session, buffers, [11, 13], past.length)
    np.testing.assert_allclose(shared, rewound, rtol=1e-5, atol=1e-5)


def test_config_json_describes_the_model(written) -> None:
    config = CONFIGS["llama"]
    written_config = json.loads((written["llama", "int4"] / "config.json").read_text())
    assert written_config["model_type"] == "llama"
    assert written_config["num_key_value_heads"] == config.num_kv_heads
    assert written_config["head_dim"] == config.head_dim
    assert written_config["tie_word_embeddings"] is False
    assert written_config["max_position_embeddings"] == config.max_positions
    assert written_config["ghostcomplete_precision"] == "int4"
    assert written_config["fim_family"] == "qwen"


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_weights_match_the_ops_layouts(tmp_path, bits) -> None:
    """MatMulNBits (input kept in float) and GatherBlockQuantized read back exactly the
    weight that quantize_blocks stands for; 80 columns are 3 blocks, the last padded."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((24, 80)).astype(np.float32)
    tensors = TensorFile(tmp_path / "w.data")
    q = tensors.add_quantized("w", weight, bits, 32, gathered=True)
    tensors.close()
    values, scales, zero_points = quantize_blocks(weight, bits, 32)
    dequantized = dequantize_blocks(values, scales, zero_points)[:, :80]
    assert np.abs(dequantized - weight).max() < (0.2 if bits == 4 else 0.02)
    nodes = [
        helper.make_node(
            "MatMulNBits",
            ["x", q.packed, q.scales, q.zero_points],
            ["y"],
            domain="com.microsoft",
            K=80,
            N=24,
            bits=bits,
            block_size=32,
            accuracy_level=0,
        ),
        helper.make_node(
            "GatherBlockQuantized",
            [q.packed, "ids", q.gather_scales, q.gather_zero_points],
            ["rows"],
            domain="com.microsoft",
            bits=bits,
            block_size=32,
            gather_axis=0,
            quantize_axis=2,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "layouts",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 80]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, [3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("rows", TensorProto.FLOAT, None),
        ],
        tensors.initializers,
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((2, 80)).astype(np.float32)
    ids = np.asarray([0, 23, 7])
    y, rows = session.run(None, {"x": x, "ids": ids})
    np.testing.assert_allclose(y, x @ dequantized.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rows.reshape(3, -1)[:, :80], dequantized[ids], atol=1e-6)


def test_a_missing_or_misshapen_weight_is_named(tmp_path) -> None:
    config = CONFIGS["qwen2"]
    weights = random_weights(config)
    missing = dict(weights)
    del missing["model.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(ValueError, match=r"model\.layers\.1\.self_attn\.k_proj\.bias"):
        write_decoder(tmp_path / "a", config, missing, "int4")
    misshapen = dict(weights)
    misshapen["model.layers.0.mlp.down_proj.weight"] = weights[
        "model.layers.0.mlp.down_proj.weight"
    ].T
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.down_proj\.weight.*\(64, 128\)"):
        write_decoder(tmp_path / "b", config, misshapen, "fp32")
    with pytest.raises(ValueError, match="precision 'int3'"):
        write_decoder(tmp_path / "c", config, weights, "int3")
    with pytest.raises(ValueError, match="head_dim 24"):
        write_decoder(tmp_path / "d", replace(config, head_dim=24), weights, "fp32")
    with pytest.raises(ValueError, match="architecture 'gpt2'"):
        write_decoder(tmp_path / "e", replace(config, architecture="gpt2"), weights, "fp32")
    assert not (tmp_path / "a" / MODEL_FILE).exists()
