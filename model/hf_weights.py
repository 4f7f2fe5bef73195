"""Read a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) into a
``DecoderSource``.

The safetensors files are read here rather than through the `safetensors` package: its numpy
side has no bfloat16, the type most checkpoints are published in, and the format is a JSON
header before raw little-endian arrays. Each file is mapped into memory; a tensor is
converted to float32 only when the writer asks for it.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.model.decoder_source import DecoderSource, SourceError
from ghostcomplete.model.onnx_decoder import ARCHITECTURES, DecoderConfig, expected_shapes

# Files copied as they are into the model folder, when present.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
)
_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
}
_BF16 = "BF16"
_MAX_HEADER = 100 << 20


def _tensor_index(path: Path) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """Name -> (dtype, shape, first byte, end byte) of each tensor in a safetensors file."""
    try:
        with path.open("rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise SourceError(f"{path} is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_HEADER:
                raise SourceError(f"{path} is not a safetensors file (header of {length} bytes)")
            header = json.loads(stream.read(length))
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError):
        raise SourceError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise SourceError(f"{path} is not a safetensors file")
    start = 8 + length
    size = path.stat().st_size
    found = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (start + int(n) for n in entry["data_offsets"])
            found[name] = (str(entry["dtype"]), tuple(int(n) for n in entry["shape"]), begin, end)
        except (KeyError, TypeError, ValueError):
            raise SourceError(f"{path}: tensor {name} has a malformed entry") from None
        if end > size:
            raise SourceError(f"{path} is truncated: tensor {name} runs past its end")
    return found


class SafetensorsWeights(Mapping[str, np.ndarray]):
    """Tensors by name across the folder's safetensors files, as float32 on each access."""

    def __init__(self, files: list[Path], keep: set[str]) -> None:
        self._where: dict[str, tuple[Path, str, tuple[int, ...], int, int]] = {}
        for path in files:
            for name, (dtype, shape, begin, end) in _tensor_index(path).items():
                if name in keep:
                    self._where[name] = (path, dtype, shape, begin, end)

    def __getitem__(self, name: str) -> np.ndarray:
        path, dtype, shape, begin, end = self._where[name]
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=begin, shape=(end - begin,))
        if dtype == _BF16:
            # bfloat16 is the top half of a float32.
            values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            values = raw.view(_DTYPES[dtype]).astype(np.float32)
        return values.reshape(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def dtype_of(self, name: str) -> str:
        return self._where[name][1]


def _config(data: dict[str, Any]) -> DecoderConfig:
    architecture = data.get("model_type")
    if architecture not in ARCHITECTURES:
        raise SourceError(
            f"model_type {architecture!r} is not supported (supported: {', '.join(ARCHITECTURES)})"
        )
    scaling = data.get("rope_scaling")
    if scaling and (scaling.get("rope_type") or scaling.get("type")) not in (None, "default"):
        raise SourceError("RoPE scaling (a long-context extension) is not supported yet")
    try:
        hidden = int(data["hidden_size"])
        heads = int(data["num_attention_heads"])
        return DecoderConfig(
            architecture=str(architecture),
            vocab_size=int(data["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(data["intermediate_size"]),
            num_layers=int(data["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(data.get("num_key_value_heads") or heads),
            head_dim=int(data.get("head_dim") or hidden // heads),
            rms_norm_eps=float(data.get("rms_norm_eps", 1e-6)),
            rope_theta=float(data.get("rope_theta", 10_000.0)),
            max_positions=int(data.get("max_position_embeddings", 4096)),
            tied_embeddings=bool(data.get("tie_word_embeddings", False)),
            # Qwen2's attention always has q/k/v biases; Llama's only when the config says.
            attention_bias=architecture == "qwen2" or bool(data.get("attention_bias", False)),
        )
    except KeyError as error:
        raise SourceError(f"config.json has no {error.args[0]}") from None
    except (TypeError, ValueError) as error:
        raise SourceError(f"config.json has a malformed entry: {error}") from None


def _copy_tokenizer(source: Path) -> Any:
    def write(folder: Path) -> None:
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, folder / name)

    return write


def read_hf_folder(folder: Path) -> DecoderSource:
    """The decoder in a Hugging Face folder; SourceError saying why when it cannot be read."""
    config_path = folder / "config.json"
    try:
        data = json.loads(config_path.read_text("utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{folder} has no config.json: not a Hugging Face model folder") from None
    except (OSError, ValueError) as error:
        raise SourceError(f"cannot read {config_path}: {error}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{config_path} is not a JSON object")
    config = _config(data)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise SourceError(f"{folder} has no *.safetensors weights")
    if not (folder / "tokenizer.json").is_file():
        raise SourceError(f"{folder} has no tokenizer.json")
    shapes = expected_shapes(config)
    weights = SafetensorsWeights(files, set(shapes))
    for name, shape in shapes.items():
        if name not in weights:
            raise SourceError(f"{folder} lacks the weight {name}")
        _, dtype, found, _, _ = weights._where[name]
        if found != shape:
            raise SourceError(f"{folder}: {name} has shape {found}, not {shape}")
        if dtype != _BF16 and dtype not in _DTYPES:
            raise SourceError(f"{folder}: {name} is of type {dtype}, which is not supported")
    extra = {
        key: data[key]
        for key in ("bos_token_id", "eos_token_id", "pad_token_id")
        if data.get(key) is not None
    }
    details = {"safetensors_types": sorted({weights.dtype_of(name) for name in weights})}
    return DecoderSource(config, weights, extra, _copy_tokenizer(folder), details, None)
