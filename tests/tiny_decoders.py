"""Tiny decoders of real architectures, written at test time as a GGUF (with gguf-py's own
writer, as llama.cpp's converter writes them) or as a Hugging Face folder: random weights, a
small byte-level BPE vocabulary with Qwen's special and FIM tokens."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ghostcomplete.backends.onnx.tokenizer import byte_to_unicode
from ghostcomplete.model.onnx_decoder import DecoderConfig, expected_shapes, write_decoder


def byte_chars() -> list[str]:
    table = byte_to_unicode()
    return [table[b] for b in range(256)]


# Pieces built by the merges, in merge order (each the join of two earlier pieces).
MERGED = [("d", "e"), ("de", "f"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("r", "e"), ("re", "t"),
          ("u", "r"), ("ret", "ur"), ("retur", "n"), ("Ġ", "x"), ("i", "n")]  # fmt: skip
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
USER_DEFINED = ["<tool_call>"]
UNUSED = ["[PAD0]", "[PAD1]"]
CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"


def vocabulary() -> tuple[list[str], list[int], list[str]]:
    """Tokens, their llama.cpp types (1 normal, 3 control, 4 user-defined, 5 unused) and the
    merges."""
    tokens = byte_chars() + [a + b for a, b in MERGED]
    types = [1] * len(tokens)
    tokens += SPECIAL + USER_DEFINED + UNUSED
    types += [3] * len(SPECIAL) + [4] * len(USER_DEFINED) + [5] * len(UNUSED)
    return tokens, types, [f"{a} {b}" for a, b in MERGED]


def tiny_config(architecture: str, tied: bool = False) -> DecoderConfig:
    tokens, _, _ = vocabulary()
    return DecoderConfig(
        architecture=architecture,
        vocab_size=len(tokens),
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        rms_norm_eps=1e-6,
        rope_theta=10_000.0,
        max_positions=256,
        tied_embeddings=tied,
        attention_bias=architecture == "qwen2",
    )


def random_weights(config: DecoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("norm.weight"):
            weights[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            weights[name] = (0.08 * rng.standard_normal(shape)).astype(np.float32)
    return weights


def llama_cpp_permute(rows: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's reorder of a llama q/k projection, written out row by row: within each
    head, row i of the first half then row i of the second half, alternating."""
    size = rows.shape[0] // heads
    out = np.empty_like(rows)
    for head in range(heads):
        for i in range(size // 2):
            out[head * size + 2 * i] = rows[head * size + i]
            out[head * size + 2 * i + 1] = rows[head * size + size // 2 + i]
    return out


GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    fixed = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    if hf in fixed:
        return fixed[hf]
    _, _, layer, rest = hf.split(".", 3)
    return f"blk.{layer}.{GGUF_NAMES[rest]}"


def write_gguf(
    path: Path,
    config: DecoderConfig,
    weights: dict[str, np.ndarray],
    quantized: str = "F32",
    pre: str = "qwen2",
    tokenizer_model: str = "gpt2",
    architecture: str | None = None,
) -> Path:
    """A GGUF as llama.cpp's converter writes one: llama q/k rows permuted; the 2-D weights
    in ``quantized`` (a gguf.GGMLQuantizationType name), norms and biases in F32."""
    import gguf

    arch = architecture or config.architecture
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(config.num_layers)
    writer.add_context_length(config.max_positions)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_theta)
    tokens, types, merges = vocabulary()
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    )
    qtype = gguf.GGMLQuantizationType[quantized]
    for name, values in weights.items():
        if config.architecture == "llama" and ".q_proj.weight" in name:
            values = llama_cpp_permute(values, config.num_heads)
        elif config.architecture == "llama" and ".k_proj.weight" in name:
            values = llama_cpp_permute(values, config.num_kv_heads)
        if values.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name(name), gguf.quants.quantize(values, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(gguf_name(name), values.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_tokenizer_folder(tmp_path: Path, pre: str = "qwen2") -> Path:
    """``tmp_path/model`` holding the tokenizer files that a tiny GGUF with the ``pre``
    pre-tokenizer gives on import (qwen2's: an NFC normalizer, as Qwen2.5-Coder's)."""
    from ghostcomplete.model.gguf_weights import read_gguf

    config = tiny_config("qwen2")
    path = write_gguf(tmp_path / "tiny.gguf", config, random_weights(config), pre=pre)
    folder = tmp_path / "model"
    folder.mkdir()
    read_gguf(path).write_tokenizer(folder)
    return folder


def stored_values(values: np.ndarray, quantized: str) -> np.ndarray:
    """What a weight reads back as after storing it in ``quantized`` (gguf-py's reference)."""
    import gguf

    qtype = gguf.GGMLQuantizationType[quantized]
    if values.ndim != 2 or qtype == gguf.GGMLQuantizationType.F32:
        return values
    return gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype).reshape(values.shape)


def write_hf_config(folder: Path, config: DecoderConfig) -> None:
    data = {
        "model_type": config.architecture,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "max_position_embeddings": config.max_positions,
        "tie_word_embeddings": config.tied_embeddings,
        "eos_token_id": 3,
        "bos_token_id": 1,
    }
    if config.architecture == "llama":
        data["attention_bias"] = config.attention_bias
    (folder / "config.json").write_text(json.dumps(data), "utf-8")


TINY_LLAMA_TOKENIZER = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama" / "tokenizer.json"


def qwen2_config(vocab_size: int, max_positions: int) -> DecoderConfig:
    """A tiny tied qwen2 with biases, for the tiny-llama fixture's tokenizer."""
    return replace(
        tiny_config("qwen2", tied=True), vocab_size=vocab_size, max_positions=max_positions
    )


def write_qwen2_folder(folder: Path, config: DecoderConfig, precision: str, seed: int) -> Path:
    """A random decoder whose greedy output is not one repeated token (larger weights), with
    the tiny-llama fixture's tokenizer beside it; the path of its model.onnx."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith("norm.weight"):
            weights[name] = np.ones(shape, np.float32)
        else:
            weights[name] = (rng.standard_normal(shape) * 0.2).astype(np.float32)
    write_decoder(folder, config, weights, precision)
    shutil.copy(TINY_LLAMA_TOKENIZER, folder / "tokenizer.json")
    return folder / "model.onnx"
