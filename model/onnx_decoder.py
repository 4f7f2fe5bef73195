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
``accuracy_level`` 4 lets the CPU compute in int8).

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
  P + N are valid. Dropping the last k tokens (rejected drafts) is just a shorter mask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ghostcomplete.backends.onnx.engine import LOGITS_KEPT
from ghostcomplete.model.onnx_weights import Quantized, TensorFile

PRECISIONS = ("int4", "int8", "fp16", "fp32")
ARCHITECTURES = ("qwen2", "llama")
BITS = {"int4": 4, "int8": 8}
BLOCK = 32
# MatMulNBits may quantize its input to int8 per block: the fast path on CPUs.
ACCURACY_LEVEL = 4
MS = "com.microsoft"
# onnxruntime 1.31 reads IR 10 and opset 21.
IR_VERSION = 10
OPSET = 21
MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"


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


def check_config(config: DecoderConfig, precision: str) -> None:
    """A ValueError for what the graph's ops cannot run."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {config.architecture!r} is not one of {ARCHITECTURES}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if config.num_kv_heads <= 0 or config.num_heads % config.num_kv_heads:
        raise ValueError(
            f"num_heads {config.num_heads} is not a multiple of num_kv_heads {config.num_kv_heads}"
        )
    # GroupQueryAttention's rotary embedding works on heads of whole 16-value groups.
    if config.head_dim <= 0 or config.head_dim % 16:
        raise ValueError(f"head_dim {config.head_dim} is not a positive multiple of 16")


def rotary_tables(config: DecoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of every position's rotation angles, (max_positions, head_dim / 2)."""
    exponents = np.arange(0, config.head_dim, 2, dtype=np.float64) / config.head_dim
    inverse = 1.0 / (config.rope_theta**exponents)
    angles = np.outer(np.arange(config.max_positions, dtype=np.float64), inverse)
    return np.cos(angles), np.sin(angles)


class _Graph:
    """The nodes and initializers of one decoder graph, in the chosen precision."""

    def __init__(self, config: DecoderConfig, precision: str, tensors: TensorFile) -> None:
        self.config = config
        self.precision = precision
        self.bits = BITS.get(precision, 0)
        self.tensors = tensors
        self.float = np.dtype(np.float16 if precision == "fp16" else np.float32)
        self.float_type = helper.np_dtype_to_tensor_dtype(self.float)
        self.nodes: list[onnx.NodeProto] = []
        self._embedding: Quantized | None = None

    def op(
        self,
        op_type: str,
        inputs: list[str],
        name: str,
        outputs: int | list[str] = 1,
        **attributes: Any,
    ) -> list[str]:
        """Add a node; its outputs are ``outputs`` when names are given, else named after
        the node."""
        domain = attributes.pop("domain", "")
        if isinstance(outputs, int):
            outputs = [f"{name}/out{i}" if outputs > 1 else f"{name}/out" for i in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, inputs, outputs, name=name, domain=domain, **attributes)
        )
        return outputs

    def const(self, name: str, values: list[int]) -> str:
        return self.tensors.add(name, np.asarray(values, dtype=np.int64))

    def linear(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray | None) -> str:
        """x @ weight.T (+ bias), weight (N, K) in the torch Linear layout."""
        if self.bits:
            quantized = self.tensors.add_quantized(name, weight, self.bits, BLOCK)
            inputs = [x, quantized.packed, quantized.scales, quantized.zero_points]
            if bias is not None:
                inputs += ["", self.tensors.add(f"{name}.bias", bias.astype(np.float32))]
            return self._nbits(inputs, name, weight.shape)
        matrix = self.tensors.add_transposed(f"{name}.weight", weight, self.float)
        out = self.op("MatMul", [x, matrix], name)[0]
        if bias is None:
            return out
        added = self.tensors.add(f"{name}.bias", bias.astype(self.float))
        return self.op("Add", [out, added], f"{name}/bias")[0]

    def _nbits(self, inputs: list[str], name: str, shape: tuple[int, ...]) -> str:
        return self.op(
            "MatMulNBits",
            inputs,
            name,
            domain=MS,
            K=shape[1],
            N=shape[0],
            bits=self.bits,
            block_size=BLOCK,
            accuracy_level=ACCURACY_LEVEL,
        )[0]

    def embedding(self, ids: str, table: np.ndarray) -> str:
        """The rows of ``table`` (vocab, hidden) for ``ids``: [batch, n, hidden]."""
        name = "model.embed_tokens"
        hidden = self.config.hidden_size
        if self.bits:
            self._embedding = self.tensors.add_quantized(
                name, table, self.bits, BLOCK, gathered=True
            )
            q = self._embedding
            rows = self.op(
                "GatherBlockQuantized",
                [q.packed, ids, q.gather_scales, q.gather_zero_points],
                "/model/embed_tokens",
                domain=MS,
                bits=self.bits,
                block_size=BLOCK,
                gather_axis=0,
                quantize_axis=2,
            )[0]
            shape = self.const("embedding_shape", [0, 0, -1])
            blocks = self.op("Reshape", [rows, shape], "/model/embed_tokens/blocks")[0]
            if q.columns % BLOCK == 0:
                return blocks
            ends = [self.const("embedding_start", [0]), self.const("embedding_end", [hidden])]
            axis = self.const("embedding_axis", [2])
            return self.op("Slice", [blocks, *ends, axis], "/model/embed_tokens/unpad")[0]
        if self.config.tied_embeddings:
            # One (hidden, vocab) table serves the output layer's MatMul and, gathered along
            # its columns, the embedding.
            matrix = self.tensors.add_transposed("lm_head.weight", table, self.float)
            columns = self.op("Gather", [matrix, ids], "/model/embed_tokens", axis=1)[0]
            return self.op("Transpose", [columns], "/model/embed_tokens/rows", perm=[1, 2, 0])[0]
        stored = self.tensors.add_chunks(
            f"{name}.weight", self.float, table.shape, [table.astype(self.float)]
        )
        return self.op("Gather", [stored, ids], "/model/embed_tokens", axis=0)[0]

    def head(self, x: str, weights: Mapping[str, np.ndarray]) -> str:
        """Logits (float32) of the hidden states ``x``."""
        name = "lm_head"
        if self.config.tied_embeddings and self.bits:
            q = self._embedding
            assert q is not None
            inputs = [x, q.packed, q.scales, q.zero_points]
            logits = self._nbits(inputs, "/lm_head", (q.rows, q.columns))
        elif self.config.tied_embeddings:
            logits = self.op("MatMul", [x, "lm_head.weight"], "/lm_head")[0]
        else:
            logits = self.linear(x, name, weights["lm_head.weight"], None)
        if self.float == np.float32:
            return logits
        return self.op("Cast", [logits], "/lm_head/float", to=TensorProto.FLOAT)[0]

    def norm(self, x: str, weight: np.ndarray, name: str) -> str:
        gamma = self.tensors.add(f"{name}.weight", weight.astype(self.float))
        eps = self.config.rms_norm_eps
        return self.op("SimplifiedLayerNormalization", [x, gamma], name, axis=-1, epsilon=eps)[0]

    def skip_norm(self, x: str, skip: str, weight: np.ndarray, name: str) -> tuple[str, str]:
        """RMSNorm(x + skip) and x + skip."""
        gamma = self.tensors.add(f"{name}.weight", weight.astype(self.float))
        normed, _, _, total = self.op(
            "SkipSimplifiedLayerNormalization",
            [x, skip, gamma],
            name,
            outputs=4,
            domain=MS,
            epsilon=self.config.rms_norm_eps,
        )
        return normed, total

    def attention(
        self, x: str, layer: int, weights: Mapping[str, np.ndarray], lengths: tuple[str, str]
    ) -> str:
        config = self.config
        prefix = f"model.layers.{layer}.self_attn"
        parts = ("q_proj", "k_proj", "v_proj")
        packed = np.concatenate([weights[f"{prefix}.{p}.weight"] for p in parts])
        bias = (
            np.concatenate([weights[f"{prefix}.{p}.bias"] for p in parts])
            if config.attention_bias
            else None
        )
        qkv = self.linear(x, f"{prefix}.qkv_proj", packed, bias)
        del packed
        past = [f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"]
        presents = [f"present.{layer}.key", f"present.{layer}.value"]
        seqlens, total = lengths
        out = self.op(
            "GroupQueryAttention",
            [qkv, "", "", *past, seqlens, total, "cos_cache", "sin_cache"],
            f"/model/layers.{layer}/attn",
            outputs=[f"/model/layers.{layer}/attn/out", *presents],
            domain=MS,
            num_heads=config.num_heads,
            kv_num_heads=config.num_kv_heads,
            do_rotary=1,
            rotary_interleaved=0,
        )
        return self.linear(out[0], f"{prefix}.o_proj", weights[f"{prefix}.o_proj.weight"], None)

    def mlp(self, x: str, layer: int, weights: Mapping[str, np.ndarray]) -> str:
        prefix = f"model.layers.{layer}.mlp"
        gate = self.linear(x, f"{prefix}.gate_proj", weights[f"{prefix}.gate_proj.weight"], None)
        up = self.linear(x, f"{prefix}.up_proj", weights[f"{prefix}.up_proj.weight"], None)
        sigmoid = self.op("Sigmoid", [gate], f"/{prefix}/sigmoid")[0]
        silu = self.op("Mul", [gate, sigmoid], f"/{prefix}/silu")[0]
        product = self.op("Mul", [silu, up], f"/{prefix}/product")[0]
        return self.linear(
            product, f"{prefix}.down_proj", weights[f"{prefix}.down_proj.weight"], None
        )

    def lengths(self) -> tuple[str, str]:
        """GroupQueryAttention's seqlens_k (int32 [batch], total - 1) and
        total_sequence_length (int32 [1]), from the attention mask."""
        axis = self.const("mask_axis", [1])
        summed = self.op("ReduceSum", ["attention_mask", axis], "/mask/sum", keepdims=0)[0]
        one = self.const("one", [1])
        last = self.op("Sub", [summed, one], "/mask/last")[0]
        seqlens = self.op("Cast", [last], "/mask/seqlens_k", to=TensorProto.INT32)[0]
        width = self.op("Shape", ["attention_mask"], "/mask/width", start=1, end=2)[0]
        total = self.op("Cast", [width], "/mask/total", to=TensorProto.INT32)[0]
        return seqlens, total

    def build(self, weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        config = self.config
        cos, sin = rotary_tables(config)
        self.tensors.add("cos_cache", cos.astype(self.float))
        self.tensors.add("sin_cache", sin.astype(self.float))
        del cos, sin
        lengths = self.lengths()
        hidden = self.embedding("input_ids", weights["model.embed_tokens.weight"])
        residual = hidden
        normed = self.norm(
            hidden,
            weights["model.layers.0.input_layernorm.weight"],
            "model.layers.0.input_layernorm",
        )
        for layer in range(config.num_layers):
            prefix = f"model.layers.{layer}"
            attended = self.attention(normed, layer, weights, lengths)
            normed, residual = self.skip_norm(
                attended,
                residual,
                weights[f"{prefix}.post_attention_layernorm.weight"],
                f"{prefix}.post_attention_layernorm",
            )
            mixed = self.mlp(normed, layer, weights)
            if layer + 1 < config.num_layers:
                following = f"model.layers.{layer + 1}.input_layernorm"
                normed, residual = self.skip_norm(
                    mixed, residual, weights[f"{following}.weight"], following
                )
        # Only the last `kept` positions reach the final norm and the output layer.
        kept = self.op("Neg", [LOGITS_KEPT], "/kept/start")[0]
        bounds = [kept, self.const("kept_end", [2**62]), self.const("kept_axis", [1])]
        mixed = self.op("Slice", [mixed, *bounds], "/kept/mixed")[0]
        residual = self.op("Slice", [residual, *bounds], "/kept/residual")[0]
        final, _ = self.skip_norm(mixed, residual, weights["model.norm.weight"], "model.norm")
        self.rename(self.head(final, weights), "logits")
        return self._model()

    def rename(self, output: str, name: str) -> None:
        """Give the node output ``output`` the name ``name`` (a graph output's)."""
        for node in self.nodes:
            for i, made in enumerate(node.output):
                if made == output:
                    node.output[i] = name

    def _model(self) -> onnx.ModelProto:
        config = self.config
        kv = [1, config.num_kv_heads, 0, config.head_dim]
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
        ]
        outputs = [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, ["batch", "kept", config.vocab_size]
            )
        ]
        for layer in range(config.num_layers):
            for kind in ("key", "value"):
                past_shape: list[int | str] = ["batch", kv[1], "past", kv[3]]
                present_shape: list[int | str] = ["batch", kv[1], "present", kv[3]]
                inputs.append(
                    helper.make_tensor_value_info(
                        f"past_key_values.{layer}.{kind}", self.float_type, past_shape
                    )
                )
                outputs.append(
                    helper.make_tensor_value_info(
                        f"present.{layer}.{kind}", self.float_type, present_shape
                    )
                )
        inputs.append(helper.make_tensor_value_info(LOGITS_KEPT, TensorProto.INT64, [1]))
        graph = helper.make_graph(
            self.nodes, "decoder", inputs, outputs, initializer=self.tensors.initializers
        )
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)]
        model = helper.make_model(
            graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="ghostcomplete"
        )
        return model


def write_decoder(
    folder: Path,
    config: DecoderConfig,
    weights: Mapping[str, np.ndarray],
    precision: str,
    extra_config: Mapping[str, Any] = {},
) -> None:
    """Write ``model.onnx``, ``model.onnx.data`` and ``config.json`` into ``folder``. The
    weights are read one at a time and written as they are converted: memory beyond
    ``weights`` stays around the size of the largest one."""
    check_config(config, precision)
    check_weights(config, weights)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = TensorFile(folder / DATA_FILE)
    try:
        model = _Graph(config, precision, tensors).build(weights)
    finally:
        tensors.close()
    onnx.save_model(model, str(folder / MODEL_FILE))
    (folder / "config.json").write_text(
        json.dumps(config_json(config, precision, extra_config), indent=1) + "\n"
    )
