"""The nodes and initializers of one decoder graph (``onnx_decoder.write_decoder`` says what
the graph is and how to run it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ghostcomplete.backends.onnx.engine import LOGITS_KEPT
from ghostcomplete.model.onnx_weights import Blocks, Quantized, TensorFile

BITS = {"int4": 4, "int8": 8}
BLOCK = 32
# MatMulNBits may quantize its input to int8 per block: the fast path on CPUs.
ACCURACY_LEVEL = 4
MS = "com.microsoft"
# onnxruntime 1.31 reads IR 10 and opset 21.
IR_VERSION = 10
OPSET = 21


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


def rotary_tables(config: DecoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of every position's rotation angles, (max_positions, head_dim / 2)."""
    exponents = np.arange(0, config.head_dim, 2, dtype=np.float64) / config.head_dim
    inverse = 1.0 / (config.rope_theta**exponents)
    angles = np.outer(np.arange(config.max_positions, dtype=np.float64), inverse)
    return np.cos(angles), np.sin(angles)


class DecoderGraph:
    """The nodes and initializers of one decoder graph, in the chosen precision."""

    def __init__(
        self,
        config: DecoderConfig,
        precision: str,
        activations: str,
        tensors: TensorFile,
        found_blocks: Mapping[str, Blocks] | None = None,
    ) -> None:
        self.config = config
        self.precision = precision
        self.bits = BITS.get(precision, 0)
        self.tensors = tensors
        self.float = np.dtype(np.float16 if activations == "fp16" else np.float32)
        self.float_type = helper.np_dtype_to_tensor_dtype(self.float)
        # Linear layers quantized already (``calibration``), by the names ``linear`` gives.
        self.found_blocks = found_blocks or {}
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
            quantized = self.tensors.add_quantized(
                name,
                weight,
                self.bits,
                BLOCK,
                scale_type=self.float,
                found_blocks=self.found_blocks.get(name),
            )
            inputs = [x, quantized.packed, quantized.scales, quantized.zero_points]
            if bias is not None:
                inputs += ["", self.tensors.add(f"{name}.bias", bias.astype(self.float))]
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
                name, table, self.bits, BLOCK, gathered=True, scale_type=self.float
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
        stored = self.tensors.add_rows(f"{name}.weight", table, self.float)
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
