"""One onnxruntime session over a decoder in the Hugging Face optimum layout.

``model.onnx`` takes ``input_ids``, ``attention_mask``, optionally ``position_ids`` and
``past_key_values.N.key/value`` (batch, kv heads, past length, head dim), and returns
``logits`` and ``present.N.key/value``. Everything here is synchronous: the backend runs it
in a worker thread.

The cache stays in onnxruntime's memory (``kvcache.py``): growing, as optimum exports it, or
in shared buffers written in place where the graph's attention is ``GroupQueryAttention``.
Where the graph allows, only the last positions' logits are computed (``graph.py``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.graph import (
    LOGITS_KEPT,
    has_group_query_attention,
    last_logits_graph,
)
from ghostcomplete.backends.onnx.installed import read_json
from ghostcomplete.backends.onnx.kvcache import DeviceOps, KvCache, SharedBuffers, host_buffers

log = logging.getLogger("ghostcomplete.onnx")

_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}
# Below this vocabulary the logits of every position cost little (the built-in model's is
# below it), and importing onnx to slice them costs more at load than the slice saves: such
# models load as exported.
SLICED_FROM_VOCAB = 16_384
# Shared KV buffers (GroupQueryAttention graphs) start with room for this many positions. A
# context that outgrows them gets what it needs plus GROW_ROOM, in steps of GROW_STEP: doubling
# would hold up to twice the cache the prompt budget allows (a 2,100-token prompt, 4,096
# positions), and the cache is the largest memory after the weights.
SHARED_START = 1024
GROW_ROOM = 128
GROW_STEP = 128
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


def session_options(threads: int, spinning: bool = False) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # Full graph fusions (attention, layer norm, GELU): the biggest single win on the CPU.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One request at a time: parallelism inside operators, none between them.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    # Idle threads spinning between operators wake faster, but they burn the cores the editor
    # and other work need, and on a busy machine the spinning itself steals the time the
    # working threads wait for: off unless asked for.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return options


class OnnxModel:
    """The session plus what the model's inputs and config say about it."""

    def __init__(
        self,
        model_file: Path,
        provider: str = "auto",
        threads: int = 0,
        slice_logits: bool | None = None,
        share_buffers: bool = True,
        spinning: bool = False,
    ) -> None:
        """``slice_logits``: run ``last_logits_graph`` where the graph allows (True), never
        (False), or when the vocabulary has at least SLICED_FROM_VOCAB tokens (None).
        ``share_buffers``: hold the cache in shared buffers where the graph's attention is
        ``GroupQueryAttention`` (and the check at load agrees), else grow it.
        ``spinning``: let onnxruntime's idle intra-op threads spin (``session_options``)."""
        folder = model_file.parent
        self.model_file = model_file
        self.config = read_json(folder / "config.json")
        self.generation_config = read_json(folder / "generation_config.json", required=False)
        providers, why = choose_providers(provider)
        started = time.monotonic()
        if slice_logits is None:
            vocab = self.config.get("vocab_size")
            slice_logits = isinstance(vocab, int) and vocab >= SLICED_FROM_VOCAB
        self.spinning = spinning
        sliced = self._sliced_session(model_file, threads, providers) if slice_logits else None
        self.session = sliced or self._exported_session(model_file, threads, providers)
        used = self.session.get_providers()[0]
        if providers[0] == "CUDAExecutionProvider" and used != providers[0]:
            why = "the CUDA provider failed to start (see onnxruntime's log)"
        log.info(
            "onnx: %s on %s (%s)%s; loaded in %.0f ms",
            model_file,
            used,
            why,
            ", logits of the last positions only" if sliced is not None else "",
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
        self.device = "cuda" if used == "CUDAExecutionProvider" else "cpu"
        self._ops: DeviceOps | None = None
        self._buffers: SharedBuffers | None = None
        self.shares_buffers = False
        outputs = {o.name: o for o in self.session.get_outputs()}
        missing = [n for n in ["logits", *self.present_names] if n not in outputs]
        if missing:
            raise BackendError(f"{model_file} lacks the outputs {', '.join(missing)}")
        logits = outputs["logits"]
        self.logits_dtype: type[np.generic] = _DTYPES.get(logits.type, np.float32)
        vocab = logits.shape[-1]
        if not isinstance(vocab, int):
            vocab = int(self.config.get("vocab_size") or 0)
        if vocab <= 0:
            raise BackendError(f"cannot tell the vocabulary size of {model_file}")
        self.vocab_size = vocab
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
        if sliced is not None and not self._slices_positions():
            log.info("onnx: %s: sliced logits do not match; loaded as exported", model_file)
            self.session = self._exported_session(model_file, threads, providers)
            self.input_names.discard(LOGITS_KEPT)
        if share_buffers and has_group_query_attention(model_file):
            self.shares_buffers = True
        if self.shares_buffers and not self._shared_matches_growing():
            log.info("onnx: %s: shared KV buffers do not match; the cache grows", model_file)
            self.shares_buffers, self._buffers = False, None

    def _shared_matches_growing(self) -> bool:
        """Whether the graph writes into shared buffers in place as it should: 3 tokens then
        2 more give the same logits with shared buffers as with a growing cache."""
        try:
            shared: list[np.ndarray] = []
            past = self.empty_cache()
            for ids in ([0, 1, 2], [3, 4]):
                logits, past = self.forward(ids, past)
                shared.append(logits)
            grown = self._empty_growing()
            for ids, logits in zip(([0, 1, 2], [3, 4]), shared, strict=True):
                expected, grown = self.forward(ids, grown)
                if not np.allclose(logits, expected, rtol=1e-3, atol=1e-4):
                    return False
        except Exception:  # onnxruntime raises its own exception types
            return False
        return True

    def _slices_positions(self) -> bool:
        """Whether the sliced graph keeps positions (not hidden units, say, where a graph
        flattened its hidden states first): the last logits of 3 tokens are the same kept
        alone and kept with the others."""
        try:
            alone, _ = self.forward([0, 1, 2], self.empty_cache(), last=1)
            every, _ = self.forward([0, 1, 2], self.empty_cache())
        except Exception:  # onnxruntime raises its own exception types
            return False
        return (
            alone.shape[0] == 1
            and every.shape[0] == 3
            and bool(np.allclose(alone[-1], every[-1], rtol=1e-3, atol=1e-4))
        )

    def _exported_session(
        self, model_file: Path, threads: int, providers: list[str]
    ) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(
                str(model_file),
                sess_options=session_options(threads, self.spinning),
                providers=providers,
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise BackendError(f"cannot load {model_file}: {error}") from error

    def _sliced_session(
        self, model_file: Path, threads: int, providers: list[str]
    ) -> ort.InferenceSession | None:
        """A session over ``last_logits_graph``, its weights read from the model's folder;
        None where there is no such graph or it does not load (the file is then loaded as
        it is)."""
        graph = last_logits_graph(model_file)
        if graph is None:
            return None
        options = session_options(threads, self.spinning)
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(model_file.parent)
        )
        try:
            return ort.InferenceSession(graph, sess_options=options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            log.info("onnx: %s loads without sliced logits: %s", model_file, error)
            return None

    def empty_cache(self) -> KvCache:
        """The cache of no tokens. With shared buffers, a sequence started from it writes
        over the one the buffers held (older caches then keep only what stays valid)."""
        if not self.shares_buffers:
            return self._empty_growing()
        if self._buffers is None:
            self._buffers = SharedBuffers(
                self._allocate(min(self.max_positions, SHARED_START)),
                min(self.max_positions, SHARED_START),
            )
        return KvCache([], 0, self._buffers, len(self._buffers.starts))

    def _empty_growing(self) -> KvCache:
        return KvCache(self._allocate(0), 0)

    def _allocate(self, positions: int) -> list[ort.OrtValue]:
        shape = [1, self.kv_heads, positions, self.head_dim]
        if positions and self.device == "cpu":
            return host_buffers(len(self.past_names), shape, self.past_dtype)
        zeros = np.zeros(shape, self.past_dtype)
        made = []
        for _ in self.past_names:
            value = ort.OrtValue.ortvalue_from_shape_and_type(shape, self.past_dtype, self.device)
            if positions:
                value.update_inplace(zeros)
            made.append(value)
        return made

    def forward(
        self, ids: list[int], past: KvCache, last: int | None = None
    ) -> tuple[np.ndarray, KvCache]:
        """Logits as float32 for ``ids`` following ``past`` — (len(ids), vocab), or at least
        those of the ``last`` positions (only those where the graph is sliced) — and the
        cache extended by them.

        The cache stays in onnxruntime's memory (I/O binding): ``past``'s values are bound
        as inputs; the ``present`` outputs are either left on the device and become the
        returned cache (growing), or are the same buffers, written in place (shared). Only
        the logits come back to numpy, written into an array made for them."""
        if past.usable < past.length:
            raise BackendError("the KV cache was overwritten by a later sequence")
        start = past.length
        total = start + len(ids)
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.asarray([ids], dtype=np.int64))
        rows = len(ids)
        if LOGITS_KEPT in self.input_names:
            rows = len(ids) if last is None else min(max(1, last), len(ids))
            binding.bind_cpu_input(LOGITS_KEPT, np.asarray([rows], dtype=np.int64))
        if "attention_mask" in self.input_names:
            binding.bind_cpu_input("attention_mask", np.ones((1, total), dtype=np.int64))
        if "position_ids" in self.input_names:
            positions = np.arange(start, total, dtype=np.int64)[None, :]
            binding.bind_cpu_input("position_ids", positions)
        if "use_cache_branch" in self.input_names:
            binding.bind_cpu_input("use_cache_branch", np.asarray([start > 0]))
        logits = np.empty((1, rows, self.vocab_size), dtype=self.logits_dtype)
        binding.bind_output(
            "logits", "cpu", 0, self.logits_dtype, list(logits.shape), logits.ctypes.data
        )
        buffers = past.shared
        if buffers is not None:
            if total > buffers.capacity:
                self._grow(buffers, total)
            for name, present, value in zip(
                self.past_names, self.present_names, buffers.values, strict=True
            ):
                binding.bind_ortvalue_input(name, value)
                binding.bind_ortvalue_output(present, value)
            self.session.run_with_iobinding(binding)
            made = KvCache([], total, buffers, buffers.written(start))
        else:
            values = past.values
            if values and values[0].shape()[2] != start:  # a rejected draft's tail
                values = self._device_ops().cut(values, start)
            for name, value in zip(self.past_names, values, strict=True):
                binding.bind_ortvalue_input(name, value)
            for name in self.present_names:
                binding.bind_output(name, self.device)
            self.session.run_with_iobinding(binding)
            made = KvCache(binding.get_outputs()[1:], total)
        return np.asarray(logits[0], dtype=np.float32), made

    def reserve(self, past: KvCache, positions: int) -> None:
        """Make room for ``positions`` in ``past``'s shared buffers at once (a prompt about
        to be fed in chunks), instead of growing chunk by chunk; nothing for a growing
        cache or a context past the model's length (``forward`` says so)."""
        buffers = past.shared
        if buffers is not None and buffers.capacity < positions <= self.max_positions:
            self._grow(buffers, positions)

    def _grow(self, buffers: SharedBuffers, needed: int) -> None:
        if needed > self.max_positions:
            raise BackendError(f"{needed} positions is past the model's {self.max_positions}")
        wanted = -(-(needed + GROW_ROOM) // GROW_STEP) * GROW_STEP
        capacity = min(self.max_positions, wanted)
        if self.device == "cpu":
            shape = [1, self.kv_heads, capacity, self.head_dim]
            grown = host_buffers(len(self.past_names), shape, self.past_dtype, buffers.values)
        else:
            grown = self._device_ops().grow(buffers.values, capacity - buffers.capacity)
        buffers.values, buffers.capacity = grown, capacity

    def _device_ops(self) -> DeviceOps:
        if self._ops is None:
            self._ops = DeviceOps(
                len(self.past_names), self.past_dtype, self.device, self.session.get_providers()
            )
        return self._ops

    def warm_up(self) -> float:
        """Run the shapes a completion runs (a prefill, then single tokens); milliseconds."""
        started = time.monotonic()
        logits, past = self.forward([0] * 16, self.empty_cache(), last=1)
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
