"""The KV cache of one sequence, held by onnxruntime (``OrtValue``s on the session's device),
so that a token's forward pass never copies the cache through numpy.

Two layouts:
- growing (optimum exports): each pass returns new ``present`` tensors, one position longer
  than the ``past`` it was given; they are the next pass's ``past`` as they are;
- shared (``GroupQueryAttention`` graphs): one buffer per past input, allocated for many
  positions, bound as both the ``past`` input and the ``present`` output, so that a pass
  writes its new positions in place. Which positions are valid is the attention mask's
  length; going back to an earlier position costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort


class SharedBuffers:
    """The shared layout's buffers, and which positions each write touched: a cache made
    before a write that started below its length is only valid up to that start."""

    def __init__(self, values: list[ort.OrtValue], capacity: int) -> None:
        self.values = values
        self.capacity = capacity
        self.starts: list[int] = []

    def written(self, start: int) -> int:
        """Record a write from position ``start``; the serial of the cache it makes."""
        self.starts.append(start)
        return len(self.starts)

    def valid_length(self, serial: int, length: int) -> int:
        later = self.starts[serial:]
        return min(length, min(later)) if later else length


@dataclass
class KvCache:
    """The past keys and values of one sequence, in the model's input order.

    ``length`` positions are valid. The values may hold more: the rejected tail of a draft
    (growing layout: cut off when the cache is next fed) or the rest of a shared buffer."""

    values: list[Any]
    length: int
    shared: SharedBuffers | None = None
    serial: int = 0

    @property
    def usable(self) -> int:
        """How many leading positions still hold this sequence (fewer than ``length`` only
        where a later write into shared buffers went back below it)."""
        if self.shared is None:
            return self.length
        return self.shared.valid_length(self.serial, self.length)

    def truncated(self, length: int) -> KvCache:
        """The cache of the first ``length`` positions; nothing is copied."""
        if length >= self.length:
            return self
        return KvCache(self.values, length, self.shared, self.serial)

    def arrays(self) -> list[np.ndarray]:
        """The valid positions as numpy arrays (for tests and diagnostics; copies)."""
        return [np.asarray(v.numpy())[:, :, : self.length, :] for v in self.values]


class Cutter:
    """Cuts growing-layout values to their first positions on the session's device, all
    layers in one pass of a ``Slice`` graph, for a cache whose tail was a rejected draft."""

    def __init__(
        self, count: int, dtype: type[np.generic], device: str, providers: list[str]
    ) -> None:
        from onnx import TensorProto, helper

        element = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
        cut = ["zero", "end", "axis"]
        graph = helper.make_graph(
            [helper.make_node("Slice", [f"x{i}", *cut], [f"y{i}"]) for i in range(count)],
            "cut",
            [
                *(helper.make_tensor_value_info(f"x{i}", element, None) for i in range(count)),
                helper.make_tensor_value_info("end", TensorProto.INT64, [1]),
            ],
            [helper.make_tensor_value_info(f"y{i}", element, None) for i in range(count)],
            [
                helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
                helper.make_tensor("axis", TensorProto.INT64, [1], [2]),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=providers
        )
        self.count = count
        self.device = device

    def cut(self, values: list[Any], length: int) -> list[Any]:
        binding = self.session.io_binding()
        binding.bind_cpu_input("end", np.asarray([length], dtype=np.int64))
        for i, value in enumerate(values):
            binding.bind_ortvalue_input(f"x{i}", value)
            binding.bind_output(f"y{i}", self.device)
        self.session.run_with_iobinding(binding)
        return list(binding.get_outputs())
