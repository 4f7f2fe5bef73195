"""Random-weight decoders of real models' shapes for the GPU check, written on the machine
that runs them (model/onnx_decoder.py: no download, no torch).

The work per token does not depend on the weights' values, so random ones time the engine as
real ones would. Their scale is chosen so that activations stay in float16's range and the
logits are far apart (the greedy token is not a near tie that rounding could flip): the CPU
and CUDA providers' tokens can then be compared exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ghostcomplete.bench.synthetic_tokenizer import QWEN2_REGULAR, SPECIAL, write_tokenizer
from ghostcomplete.model.onnx_decoder import DecoderConfig, expected_shapes, write_decoder

# The published configurations' numbers (config.json of Qwen/Qwen2.5-Coder-0.5B and -1.5B).
SHAPES: dict[str, DecoderConfig] = {
    "qwen2.5-coder-0.5b": DecoderConfig(
        architecture="qwen2",
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4864,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        head_dim=64,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        max_positions=32_768,
        tied_embeddings=True,
        attention_bias=True,
    ),
    "qwen2.5-coder-1.5b": DecoderConfig(
        architecture="qwen2",
        vocab_size=151_936,
        hidden_size=1536,
        intermediate_size=8960,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        head_dim=128,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        max_positions=32_768,
        tied_embeddings=True,
        attention_bias=True,
    ),
    # Small enough to run in seconds anywhere: the correctness check and the CPU test.
    "tiny-qwen2": DecoderConfig(
        architecture="qwen2",
        vocab_size=1024,
        hidden_size=128,
        intermediate_size=256,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        rms_norm_eps=1e-6,
        rope_theta=1_000_000.0,
        max_positions=4096,
        tied_embeddings=True,
        attention_bias=True,
    ),
}
# Regular (non-special) tokens of each shape's tokenizer: Qwen2.5's count where the vocabulary
# has room, else what is left after the special tokens.
SPECIAL_ROOM = len(SPECIAL)


def regular_tokens(config: DecoderConfig) -> int:
    return min(QWEN2_REGULAR, config.vocab_size - SPECIAL_ROOM)


def random_weights(config: DecoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """float32 weights of every name ``expected_shapes`` lists: norms of ones, biases small,
    matrices normal with variance 1 / fan-in (the residual stream keeps a unit scale), the
    embedding unit normal (far-apart logits through the tied output layer)."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("norm.weight"):
            weights[name] = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            weights[name] = rng.standard_normal(shape, np.float32) * np.float32(0.02)
        elif "embed_tokens" in name or name == "lm_head.weight":
            weights[name] = rng.standard_normal(shape, np.float32)
        else:
            matrix = rng.standard_normal(shape, np.float32)
            matrix *= np.float32(1.0 / np.sqrt(shape[1]))
            weights[name] = matrix
    return weights


def build(
    folder: Path,
    config: DecoderConfig,
    weights: dict[str, np.ndarray],
    precision: str,
    texts: list[str] | None = None,
) -> Path:
    """Write the model (and, given ``texts``, a tokenizer learned from them) into ``folder``;
    the path of its ``model.onnx``."""
    extra = {"eos_token_id": regular_tokens(config), "ghostcomplete_random_weights": True}
    write_decoder(folder, config, weights, precision, extra)
    if texts is not None:
        write_tokenizer(folder, texts, regular_tokens(config))
    return folder / "model.onnx"
