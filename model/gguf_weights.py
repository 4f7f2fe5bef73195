"""Read a GGUF file (llama.cpp's format) into a ``DecoderSource``.

The tensors are named the llama.cpp way (``blk.N.attn_q.weight``) and stored in llama.cpp's
types (F32, F16, BF16, Q8_0, Q4_K, ...); they are mapped to Hugging Face names and
dequantized to float32 with ``gguf.quants`` one at a time, when the writer asks for them.
The shape of the model comes from the ``{architecture}.*`` metadata.

llama.cpp's converter reorders the rows of ``attn_q``/``attn_k`` of ``llama`` models, because
its llama kernels rotate adjacent pairs of a head while Hugging Face's rotate the two halves
(``rotate_half``); the reorder is undone here so the weights are Hugging Face's again. Its
``qwen2`` models rotate halves in llama.cpp too, and are stored as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import quants

from ghostcomplete.model.decoder_source import DecoderSource, SourceError
from ghostcomplete.model.gguf_tokenizer import gguf_tokenizer
from ghostcomplete.model.onnx_decoder import ARCHITECTURES, DecoderConfig, expected_shapes

_MAGIC = b"GGUF"
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_LAYER = re.compile(r"blk\.(\d+)\.(.+)")


def hf_name(gguf_name: str) -> str | None:
    """The Hugging Face name of a GGUF tensor, or None for one a decoder here does not have."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    found = _LAYER.fullmatch(gguf_name)
    if found and found.group(2) in _LAYER_NAMES:
        return f"model.layers.{found.group(1)}.{_LAYER_NAMES[found.group(2)]}"
    return None


def unpermute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k reorder: within each head it interleaved the two halves of the
    rows (row i of the first half, row i of the second, ...); put the halves back."""
    half = rows.shape[0] // heads // 2
    return rows.reshape(heads, half, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def permute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's reorder (the inverse of ``unpermute_rows``)."""
    half = rows.shape[0] // heads // 2
    return rows.reshape(heads, 2, half, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _open(path: Path) -> Any:
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from None
    if magic != _MAGIC:
        raise SourceError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    try:
        reader = gguf.GGUFReader(path)
    # The reader fails on damaged files with whatever numpy or struct raise where it stops
    # (ValueError, IndexError, KeyError, ...): any of them means the same thing here.
    except Exception as error:
        raise SourceError(f"{path} is not a readable GGUF file (truncated?): {error}") from None
    size = path.stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size:
            raise SourceError(f"{path} is truncated: tensor {tensor.name} runs past its end")
    return reader


def _value(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


class GgufWeights(Mapping[str, np.ndarray]):
    """The GGUF's tensors by Hugging Face name, dequantized to float32 on each access."""

    def __init__(self, reader: Any, config: DecoderConfig, permuted: bool) -> None:
        self._reader = reader
        self._config = config
        self._permuted = permuted
        self._tensors = {}
        for tensor in reader.tensors:
            name = hf_name(tensor.name)
            if name is not None:
                self._tensors[name] = tensor

    def __getitem__(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        values = quants.dequantize(tensor.data, tensor.tensor_type)
        # GGUF lists dimensions innermost first; numpy's order is Hugging Face's.
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        values = np.asarray(values, dtype=np.float32).reshape(shape)
        if self._permuted and ".self_attn.q_proj." in name:
            values = unpermute_rows(values, self._config.num_heads)
        elif self._permuted and ".self_attn.k_proj." in name:
            values = unpermute_rows(values, self._config.num_kv_heads)
        return np.array(values, dtype=np.float32, copy=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def type_of(self, name: str) -> str:
        return str(self._tensors[name].tensor_type.name)


def _int(reader: Any, key: str, default: int | None = None) -> int:
    value = _value(reader, key, default)
    if isinstance(value, list):
        if not value or any(v != value[0] for v in value):
            raise SourceError(f"{key} differs between layers, which is not supported")
        value = value[0]
    if value is None:
        raise SourceError(f"the GGUF has no {key}")
    return int(value)


def _float32(value: Any) -> float:
    """A float32 of the metadata as the decimal it was written from (1e-06, not
    9.99999997e-07): the shortest text that reads back as the same float32."""
    return float(str(np.float32(value)))


def _config(reader: Any, tensors: dict[str, Any], architecture: str) -> DecoderConfig:
    prefix = architecture + "."
    hidden = _int(reader, prefix + "embedding_length")
    heads = _int(reader, prefix + "attention.head_count")
    head_dim = _int(reader, prefix + "attention.key_length", hidden // heads)
    rotated = _int(reader, prefix + "rope.dimension_count", head_dim)
    if rotated != head_dim:
        raise SourceError(f"rotary embeddings on {rotated} of {head_dim} dimensions per head")
    scaling = _value(reader, prefix + "rope.scaling.type", "none")
    if scaling not in ("none", None) or "rope_freqs.weight" in tensors:
        raise SourceError("RoPE scaling (a long-context extension) is not supported yet")
    embedding = tensors.get("token_embd.weight")
    if embedding is None:
        raise SourceError("the GGUF has no token_embd.weight")
    return DecoderConfig(
        architecture=architecture,
        vocab_size=int(embedding.shape[-1]),
        hidden_size=hidden,
        intermediate_size=_int(reader, prefix + "feed_forward_length"),
        num_layers=_int(reader, prefix + "block_count"),
        num_heads=heads,
        num_kv_heads=_int(reader, prefix + "attention.head_count_kv", heads),
        head_dim=head_dim,
        rms_norm_eps=_float32(_value(reader, prefix + "attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=_float32(_value(reader, prefix + "rope.freq_base", 10_000.0)),
        max_positions=_int(reader, prefix + "context_length", 4096),
        tied_embeddings="output.weight" not in tensors,
        attention_bias="blk.0.attn_q.bias" in tensors,
    )


def read_gguf(path: Path) -> DecoderSource:
    """The decoder in the GGUF file ``path``; SourceError saying why when it cannot be read."""
    reader = _open(path)
    architecture = str(_value(reader, "general.architecture", ""))
    if architecture not in ARCHITECTURES:
        raise SourceError(
            f"{path.name}: architecture {architecture or '(none)'!r} is not supported "
            f"(supported: {', '.join(ARCHITECTURES)})"
        )
    tensors = {t.name: t for t in reader.tensors}
    config = _config(reader, tensors, architecture)
    unknown = sorted(name for name in tensors if hf_name(name) is None)
    if unknown:
        raise SourceError(
            f"{path.name} has tensors a {architecture} decoder does not: {', '.join(unknown[:5])}"
        )
    weights = GgufWeights(reader, config, permuted=architecture == "llama")
    shapes = expected_shapes(config)
    missing = [name for name in shapes if name not in weights]
    if missing:
        raise SourceError(f"{path.name} lacks {len(missing)} tensors, e.g. {missing[0]}")
    for name, tensor in weights._tensors.items():
        got = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        if got != shapes.get(name, got):
            raise SourceError(f"{path.name}: {name} has shape {got}, not {shapes[name]}")
        kind = tensor.tensor_type
        if kind.name not in ("F32", "F16") and kind not in quants._type_traits:
            raise SourceError(f"{path.name}: tensor type {kind.name} cannot be dequantized")
    tokenizer = gguf_tokenizer(reader, config.max_positions)
    license_name = _value(reader, "general.license")
    details = {
        "gguf_name": _value(reader, "general.name"),
        "gguf_file_type": _value(reader, "general.file_type"),
        "gguf_tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
    }
    return DecoderSource(
        config,
        weights,
        tokenizer.config_entries,
        tokenizer.write,
        {k: v for k, v in details.items() if v is not None},
        str(license_name) if license_name else None,
    )
