"""Write a decoder-only transformer (qwen2, llama) as an ONNX graph the engine runs.

``write_decoder(folder, config, weights, precision)`` takes float32 weights by their Hugging
Face names (``expected_shapes``) and writes ``model.onnx``, its weights in
``model.onnx.data`` and ``config.json``. The graph is built from onnxruntime's contrib ops
(domain ``com.microsoft``, CPU and CUDA): ``SimplifiedLayerNormalization`` and
``SkipSimplifiedLayerNormalization`` (RMSNorm, the residual sum fused into it),
``GroupQueryAttention`` (rotary embedding inside it, HF ``rotate_half`` convention, from cos/sin
tables held as initializers), ``MatMulNBits`` (int4 and int8 weights) and
``GatherBlockQuantized`` (the quantized embedding; a tied output layer shares its bytes).

Precisions: ``fp32``; ``fp16`` (weights, activations and KV cache in float16: for CUDA, slow
on the CPU); ``int4`` and ``int8`` (every linear layer, the embedding and the output layer
block-quantized, asymmetric, blocks of 32 along the input; activations and KV cache float32;
``accuracy_level`` 4 lets the CPU compute in int8). ``activations="fp16"`` makes an int4 or
int8 graph compute in float16 with a float16 KV cache: that is the one for CUDA, whose
GroupQueryAttention runs in float16 (or bfloat16) only; a float32 graph under the CUDA
provider runs its attention on the CPU.

The graph's interface (batch 1 is what the engine runs; N new tokens, P cached positions):

inputs
- ``input_ids`` int64 [batch, N]
- ``attention_mask`` int64 [batch, P + N], all ones: its length is the total sequence length,
  its sum minus one GroupQueryAttention's ``seqlens_k`` (no left padding; there are no
  ``position_ids``: positions follow from the mask, P + i for the i-th new token)
- ``past_key_values.{i}.key`` / ``.value`` float [batch, kv_heads, P, head_dim] (float16 at
  fp16), layer i; P may be 0
- ``ghostcomplete_logits_kept`` int64 [1]: how many of the last positions get logits (1..N)

outputs
- ``logits`` float32 [batch, kept, vocab]
- ``present.{i}.key`` / ``.value`` [batch, kv_heads, P + N, head_dim]

Two ways to hold the cache, both exact:
- growing: feed the previous ``present`` as ``past`` (P grows by N a call);
- shared: allocate ``past`` once at [batch, kv_heads, M, head_dim] (M ≤ max_position_embeddings)
  and bind the same buffer (OrtValue, I/O binding) as ``past_key_values.{i}.*`` and
  ``present.{i}.*``. ``attention_mask`` is still [batch, P + N] with P the valid length; the
  op writes the N new rows at P..P+N-1 in place, ``present`` has M rows, of which the first
  P + N are valid. Dropping the last k tokens (rejected drafts) is just a shorter mask. Bind
  ``logits`` alone as a fresh output and read it with ``get_outputs()[0]``:
  ``copy_outputs_to_cpu`` would copy every cache buffer as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

# DecoderConfig lives beside the graph that reads it; this module is where callers take it.
from ghostcomplete.model.decoder_graph import DecoderConfig, DecoderGraph
from ghostcomplete.model.onnx_weights import Blocks, TensorFile
from ghostcomplete.model.precisions import PRECISIONS

__all__ = ["DecoderConfig", "check_weights", "config_json", "expected_shapes", "write_decoder"]

ARCHITECTURES = ("qwen2", "llama")
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"


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
    config: DecoderConfig, precision: str, activations: str, extra_config: Mapping[str, Any]
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
        "ghostcomplete_activations": activations,
    }
    written.update(extra_config)
    return written


def check_config(config: DecoderConfig, precision: str, activations: str) -> None:
    """A ValueError for what the graph's ops cannot run."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {config.architecture!r} is not one of {ARCHITECTURES}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if activations not in ("fp16", "fp32") or (
        precision in ("fp16", "fp32") and activations != precision
    ):
        raise ValueError(f"activations {activations!r} do not go with precision {precision!r}")
    if config.num_kv_heads <= 0 or config.num_heads % config.num_kv_heads:
        raise ValueError(
            f"num_heads {config.num_heads} is not a multiple of num_kv_heads {config.num_kv_heads}"
        )
    # GroupQueryAttention's rotary embedding works on heads of whole 16-value groups.
    if config.head_dim <= 0 or config.head_dim % 16:
        raise ValueError(f"head_dim {config.head_dim} is not a positive multiple of 16")


def write_decoder(
    folder: Path,
    config: DecoderConfig,
    weights: Mapping[str, np.ndarray],
    precision: str,
    extra_config: Mapping[str, Any] = {},
    *,
    activations: str | None = None,
    found_blocks: Mapping[str, Blocks] | None = None,
) -> None:
    """Write ``model.onnx``, ``model.onnx.data`` and ``config.json`` into ``folder``. The
    weights are read one at a time and written as they are converted: memory beyond
    ``weights`` stays around the size of the largest one. ``activations``: "fp16" or "fp32"
    (the default, except at fp16), the type the graph computes in and caches.
    ``found_blocks``: linear layers already quantized (``calibration.calibrate``), stored as
    they are; the others are rounded to their blocks' nearest values."""
    if activations is None:
        activations = "fp16" if precision == "fp16" else "fp32"
    check_config(config, precision, activations)
    check_weights(config, weights)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = TensorFile(folder / DATA_FILE)
    try:
        graph = DecoderGraph(config, precision, activations, tensors, found_blocks)
        model = graph.build(weights)
    finally:
        tensors.close()
    onnx.save_model(model, str(folder / MODEL_FILE))
    (folder / "config.json").write_text(
        json.dumps(config_json(config, precision, activations, extra_config), indent=1) + "\n"
    )
