"""Write a decoder-only transformer (qwen2, llama) as an ONNX graph the engine runs.

The graph itself is being written; this first commit fixes the interface the importer
calls: ``DecoderConfig``, the weight names and ``write_decoder``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = ("int4", "int8", "fp16", "fp32")
ARCHITECTURES = ("qwen2", "llama")


@dataclass(frozen=True)
class DecoderConfig:
    architecture: str  # "qwen2" | "llama"  (written as model_type in config.json)
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_positions: int
    tied_embeddings: bool  # True: no lm_head.weight; the output layer is embed_tokens
    attention_bias: bool  # qwen2: q/k/v projections have biases


def expected_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the graph needs, by its Hugging Face name, with its shape."""
    hidden, inner = config.hidden_size, config.intermediate_size
    q_out = config.num_heads * config.head_dim
    kv_out = config.num_kv_heads * config.head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (config.vocab_size, hidden),
        "model.norm.weight": (hidden,),
    }
    if not config.tied_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, hidden)
    for i in range(config.num_layers):
        layer = f"model.layers.{i}"
        shapes[f"{layer}.input_layernorm.weight"] = (hidden,)
        shapes[f"{layer}.post_attention_layernorm.weight"] = (hidden,)
        shapes[f"{layer}.self_attn.q_proj.weight"] = (q_out, hidden)
        shapes[f"{layer}.self_attn.k_proj.weight"] = (kv_out, hidden)
        shapes[f"{layer}.self_attn.v_proj.weight"] = (kv_out, hidden)
        shapes[f"{layer}.self_attn.o_proj.weight"] = (hidden, q_out)
        if config.attention_bias:
            shapes[f"{layer}.self_attn.q_proj.bias"] = (q_out,)
            shapes[f"{layer}.self_attn.k_proj.bias"] = (kv_out,)
            shapes[f"{layer}.self_attn.v_proj.bias"] = (kv_out,)
        shapes[f"{layer}.mlp.gate_proj.weight"] = (inner, hidden)
        shapes[f"{layer}.mlp.up_proj.weight"] = (inner, hidden)
        shapes[f"{layer}.mlp.down_proj.weight"] = (hidden, inner)
    return shapes


def check_weights(config: DecoderConfig, weights: Mapping[str, np.ndarray]) -> None:
    """A ValueError naming the first missing weight or the first of the wrong shape."""
    for name, shape in expected_shapes(config).items():
        if name not in weights:
            raise ValueError(f"weight {name} is missing (expected shape {shape})")
        found = tuple(np.shape(weights[name]))
        if found != shape:
            raise ValueError(f"weight {name} has shape {found}, expected {shape}")


def config_json(
    config: DecoderConfig, precision: str, extra_config: Mapping[str, Any]
) -> dict[str, Any]:
    """config.json in the Hugging Face layout, plus ``precision`` and ``extra_config``."""
    written: dict[str, Any] = {
        "model_type": config.architecture,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "max_position_embeddings": config.max_positions,
        "tie_word_embeddings": config.tied_embeddings,
        "attention_bias": config.attention_bias,
        "ghostcomplete_precision": precision,
    }
    written.update(extra_config)
    return written


def write_decoder(
    folder: Path,
    config: DecoderConfig,
    weights: Mapping[str, np.ndarray],
    precision: str,
    extra_config: Mapping[str, Any] = {},
) -> None:
    """Write ``model.onnx``, ``model.onnx.data`` and ``config.json`` into ``folder``."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {config.architecture!r} is not one of {ARCHITECTURES}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    check_weights(config, weights)
    folder.mkdir(parents=True, exist_ok=True)
    raise NotImplementedError("the graph writer is not written yet")
    (folder / "config.json").write_text(
        json.dumps(config_json(config, precision, extra_config), indent=1) + "\n"
    )
