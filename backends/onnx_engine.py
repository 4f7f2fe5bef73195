"""One onnxruntime session over a decoder in the Hugging Face optimum layout.

``model.onnx`` takes ``input_ids``, ``attention_mask``, optionally ``position_ids`` and
``past_key_values.N.key/value`` (batch, kv heads, past length, head dim), and returns
``logits`` and ``present.N.key/value``. Everything here is synchronous: the backend runs it
in a worker thread.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ghostcomplete.backends.base import BackendError

log = logging.getLogger("ghostcomplete.onnx")

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
# model_type in config.json -> the FIM template family (ranker/prompt.py TEMPLATES).
FAMILIES = {
    "gpt_bigcode": "starcoder",
    "starcoder2": "starcoder",
    "qwen2": "qwen",
    "qwen3": "qwen",
    "gemma": "codegemma",
    "deepseek_v2": "deepseek",
}
# When model_type says nothing, the family whose FIM tokens the tokenizer has.
FIM_TOKENS = {
    "<fim_prefix>": "starcoder",
    "<|fim_prefix|>": "qwen",
    "<｜fim▁begin｜>": "deepseek",
    "<PRE>": "codellama",
}


@dataclass
class KvCache:
    """The past keys and values of one sequence, in the model's input order."""

    arrays: list[np.ndarray]

    @property
    def length(self) -> int:
        return int(self.arrays[0].shape[2]) if self.arrays else 0

    def truncated(self, length: int) -> KvCache:
        if length >= self.length:
            return self
        return KvCache([a[:, :, :length, :] for a in self.arrays])


def cuda_driver_reason() -> str | None:
    """None when a CUDA driver can be loaded, else why not."""
    names = ["nvcuda.dll"] if os.name == "nt" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            ctypes.CDLL(name)
            return None
        except OSError:
            continue
    return "no CUDA driver (libcuda) on this machine"


def choose_providers(preference: str) -> tuple[list[str], str]:
    """The providers to ask for, best first, and why."""
    available = ort.get_available_providers()
    if preference == "cpu":
        return ["CPUExecutionProvider"], "the settings ask for the CPU"
    if "CUDAExecutionProvider" not in available:
        return ["CPUExecutionProvider"], "this onnxruntime build has no CUDA provider"
    reason = cuda_driver_reason()
    if reason is not None:
        return ["CPUExecutionProvider"], reason
    return ["CUDAExecutionProvider", "CPUExecutionProvider"], "a CUDA device is present"


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # Full graph fusions (attention, layer norm, GELU): the biggest single win on the CPU.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One request at a time: parallelism inside operators, none between them.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    # Don't spin idle threads between tokens: the editor and the server share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxModel:
    """The session plus what the model's inputs and config say about it."""

    def __init__(self, model_file: Path, provider: str = "auto", threads: int = 0) -> None:
        folder = model_file.parent
        self.config = read_json(folder / "config.json")
        self.generation_config = read_json(folder / "generation_config.json", required=False)
        providers, why = choose_providers(provider)
        started = time.monotonic()
        try:
            self.session = ort.InferenceSession(
                str(model_file), sess_options=session_options(threads), providers=providers
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise BackendError(f"cannot load {model_file}: {error}") from error
        used = self.session.get_providers()[0]
        if providers[0] == "CUDAExecutionProvider" and used != providers[0]:
            why = "the CUDA provider failed to start (see onnxruntime's log)"
        log.info(
            "onnx: %s on %s (%s); loaded in %.0f ms",
            model_file,
            used,
            why,
            (time.monotonic() - started) * 1000,
        )
        self.provider = used
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_names = set(inputs)
        self.past_names = sorted(
            (n for n in inputs if n.startswith("past_key_values.")), key=_layer_order
        )
        self.present_names = [n.replace("past_key_values.", "present.") for n in self.past_names]
        if "input_ids" not in inputs or not self.past_names:
            raise BackendError(
                f"{model_file} is not a decoder with a KV cache "
                "(expected input_ids and past_key_values.N.key/value inputs)"
            )
        outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in ["logits", *self.present_names] if n not in outputs]
        if missing:
            raise BackendError(f"{model_file} lacks the outputs {', '.join(missing)}")
        first = inputs[self.past_names[0]]
        self.past_dtype = _DTYPES.get(first.type, np.float32)
        heads, head_dim = first.shape[1], first.shape[3]
        config = self.config
        if not isinstance(heads, int):
            heads = int(
                config.get("num_key_value_heads")
                or config.get("num_attention_heads")
                or config.get("n_head")
                or 0
            )
        if not isinstance(head_dim, int):
            hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
            total = int(config.get("num_attention_heads") or config.get("n_head") or 1)
            head_dim = int(config.get("head_dim") or hidden // total)
        if heads <= 0 or head_dim <= 0:
            raise BackendError(f"cannot tell the KV cache shape of {model_file}")
        self.kv_heads, self.head_dim = heads, head_dim
        self.max_positions = int(
            config.get("max_position_embeddings") or config.get("n_positions") or 1 << 30
        )

    def empty_cache(self) -> KvCache:
        shape = (1, self.kv_heads, 0, self.head_dim)
        return KvCache([np.zeros(shape, self.past_dtype) for _ in self.past_names])

    def forward(self, ids: list[int], past: KvCache) -> tuple[np.ndarray, KvCache]:
        """Logits (len(ids), vocab) as float32 for ``ids`` following ``past``, and the
        cache extended by them."""
        start = past.length
        total = start + len(ids)
        feed: dict[str, Any] = {"input_ids": np.asarray([ids], dtype=np.int64)}
        if "attention_mask" in self.input_names:
            feed["attention_mask"] = np.ones((1, total), dtype=np.int64)
        if "position_ids" in self.input_names:
            feed["position_ids"] = np.arange(start, total, dtype=np.int64)[None, :]
        if "use_cache_branch" in self.input_names:
            feed["use_cache_branch"] = np.asarray([start > 0])
        feed.update(zip(self.past_names, past.arrays, strict=True))
        outputs = self.session.run(["logits", *self.present_names], feed)
        logits = np.asarray(outputs[0][0], dtype=np.float32)
        return logits, KvCache(list(outputs[1:]))

    def warm_up(self) -> float:
        """Run the shapes a completion runs (a prefill, then single tokens); milliseconds."""
        started = time.monotonic()
        logits, past = self.forward([0] * 16, self.empty_cache())
        for _ in range(2):
            logits, past = self.forward([int(np.argmax(logits[-1]))], past)
        return (time.monotonic() - started) * 1000

    def eos_ids(self, special: dict[str, int]) -> set[int]:
        found: set[int] = set()
        for source in (self.generation_config, self.config):
            value = source.get("eos_token_id")
            if isinstance(value, int):
                found.add(value)
            elif isinstance(value, list):
                found.update(int(v) for v in value)
        for text in ("<|endoftext|>", "<file_sep>", "<|file_sep|>", "<EOT>", "<|im_end|>"):
            if text in special:
                found.add(special[text])
        return found


def fim_family_of(config: dict[str, Any], special: dict[str, int]) -> str | None:
    """The FIM template family: config.json's own "fim_family", else the family whose FIM
    tokens the tokenizer has, else by model_type; None for a model with no FIM format."""
    explicit = config.get("fim_family")
    if isinstance(explicit, str):
        return explicit
    for token, family in FIM_TOKENS.items():
        if token in special:
            return family
    return FAMILIES.get(str(config.get("model_type")))


def _layer_order(name: str) -> tuple[int, int]:
    _, layer, kind = name.split(".")
    return int(layer), 0 if kind == "key" else 1


def read_json(path: Path, required: bool = True) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise BackendError(f"{path} is missing")
        return {}
    try:
        found = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise BackendError(f"cannot read {path}: {error}") from error
    if not isinstance(found, dict):
        raise BackendError(f"{path} is not a JSON object")
    return found
