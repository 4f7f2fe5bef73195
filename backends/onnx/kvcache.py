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
        values = self.shared.values if self.shared is not None else self.values
        return [np.asarray(v.numpy())[:, :, : self.length, :] for v in values]


def host_buffers(
    count: int, shape: list[int], dtype: type[np.generic], old: list[Any] | None = None
) -> list[ort.OrtValue]:
    """``count`` zeroed CPU buffers of ``shape`` in one allocation, each starting with the
    positions of its ``old`` buffer where given (a grow). One block of this size is its own
    mapping, so its memory goes back to the system when the buffers are dropped; buffers of
    a megabyte or so made one by one (onnxruntime's ``Pad``, ``ortvalue_from_shape_and_type``)
    stayed with the process after they were outgrown."""
    block = np.zeros((count, *shape), dtype=dtype)
    for i, value in enumerate(old or []):
        kept = np.asarray(value.numpy())
        block[i, :, :, : kept.shape[2]] = kept
    return [ort.OrtValue.ortvalue_from_numpy(block[i]) for i in range(count)]


class DeviceOps:
    """Cuts and grows cache values on the session's device, every layer in one pass of a
    small graph: ``cut`` keeps the first positions (a growing cache whose tail was a
    rejected draft), ``grow`` appends positions (shared buffers the context outgrew)."""

    def __init__(
        self, count: int, dtype: type[np.generic], device: str, providers: list[str]
    ) -> None:
        self.count = count
        self.dtype = dtype
        self.device = device
        self.providers = providers
        self._sessions: dict[str, ort.InferenceSession] = {}

    def _session(self, op: str) -> ort.InferenceSession:
        found = self._sessions.get(op)
        if found is not None:
            return found
        from onnx import TensorProto, helper

        element = TensorProto.FLOAT16 if self.dtype == np.float16 else TensorProto.FLOAT
        if op == "Slice":
            fixed = [
                helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
                helper.make_tensor("axis", TensorProto.INT64, [1], [2]),
            ]
            arguments, amount = ["zero", "amount", "axis"], [1]
        else:  # Pad: ``amount`` is Pad's 8 begin/end counts
            fixed, arguments, amount = [], ["amount"], [8]
        count = self.count
        graph = helper.make_graph(
            [helper.make_node(op, [f"x{i}", *arguments], [f"y{i}"]) for i in range(count)],
            op.lower(),
            [
                *(helper.make_tensor_value_info(f"x{i}", element, None) for i in range(count)),
                helper.make_tensor_value_info("amount", TensorProto.INT64, amount),
            ],
            [helper.make_tensor_value_info(f"y{i}", element, None) for i in range(count)],
            fixed,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        made = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=self.providers
        )
        self._sessions[op] = made
        return made

    def _run(self, op: str, values: list[Any], amount: list[int]) -> list[Any]:
        session = self._session(op)
        binding = session.io_binding()
        binding.bind_cpu_input("amount", np.asarray(amount, dtype=np.int64))
        for i, value in enumerate(values):
            binding.bind_ortvalue_input(f"x{i}", value)
            binding.bind_output(f"y{i}", self.device)
        session.run_with_iobinding(binding)
        return list(binding.get_outputs())

    def cut(self, values: list[Any], length: int) -> list[Any]:
        return self._run("Slice", values, [length])

    def grow(self, values: list[Any], more: int) -> list[Any]:
        return self._run("Pad", values, [0, 0, 0, 0, 0, 0, more, 0])
