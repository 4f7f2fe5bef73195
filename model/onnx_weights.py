"""Weights on their way into an ONNX graph: block quantization in the layouts of
onnxruntime's ``MatMulNBits`` and ``GatherBlockQuantized``, and one external-data file
written as the weights come, so that no second copy of the model is ever held in memory.

Block quantization (asymmetric, per block of ``block`` values along the input dimension K of
a weight of shape (N, K), the torch ``Linear`` layout): each block has a float scale and an
integer zero point; a value is ``(q - zero_point) * scale``. ``MatMulNBits`` takes
- ``B``: uint8 (N, k_blocks, block * bits / 8); at 4 bits two values a byte, the first in the
  low nibble;
- ``scales``: float (N, k_blocks);
- ``zero_points``: uint8 (N, ceil(k_blocks * bits / 8)), packed like ``B``.
``GatherBlockQuantized`` (``quantize_axis`` 2, ``gather_axis`` 0) reads the same ``B`` as a
(N, k_blocks, block) table of packed values, with scales and zero points of shape
(N, k_blocks, 1), one zero point a byte: so a tied embedding and output layer share ``B``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from onnx import TensorProto, helper, numpy_helper

# Tensors of at least ALIGNED_FROM bytes start at an offset aligned to ALIGN bytes, so that
# onnxruntime can map them from the file instead of copying them.
ALIGN = 65536
ALIGNED_FROM = 1024 * 1024
# Tensors smaller than this stay inside model.onnx.
INLINE_BYTES = 1024
FLOAT32 = np.dtype(np.float32)
# Values, scales and zero points of one block-quantized weight (``quantize_blocks``' output).
Blocks = tuple[np.ndarray, np.ndarray, np.ndarray]
# Rows quantized at a time: bounds the float temporaries of a large table (the embedding).
_CHUNK_VALUES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Quantized:
    """The names of one block-quantized weight's initializers and its shape."""

    packed: str
    scales: str
    zero_points: str
    rows: int
    columns: int
    bits: int
    block: int
    # GatherBlockQuantized's scales and zero points (an embedding's), else "".
    gather_scales: str = ""
    gather_zero_points: str = ""


def block_grid(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The scale and (float, integral) zero point of each block of ``values`` (float32, its
    last axis a block): the block's range, widened to hold 0, spread over ``bits`` bits."""
    top = float((1 << bits) - 1)
    low = np.minimum(values.min(axis=-1), 0.0)
    high = np.maximum(values.max(axis=-1), 0.0)
    scales = (high - low) / top
    # An all-zero block: any scale reads back as zeros.
    scales[scales == 0] = 1.0
    return scales, np.clip(np.round(-low / scales), 0, top)


def quantize_blocks(
    weight: np.ndarray, bits: int, block: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (uint8, (N, k_blocks, block), each in [0, 2**bits)), scales (float32,
    (N, k_blocks)) and zero points (uint8, (N, k_blocks)) of a float (N, K) weight; K is
    padded with zeros up to whole blocks."""
    rows, columns = weight.shape
    blocks = -(-columns // block)
    padded = np.zeros((rows, blocks * block), np.float32)
    padded[:, :columns] = weight
    values = padded.reshape(rows, blocks, block)
    top = float((1 << bits) - 1)
    scales, zero_points = block_grid(values, bits)
    values /= scales[:, :, None]
    values += zero_points[:, :, None]
    np.round(values, out=values)
    np.clip(values, 0, top, out=values)
    return values.astype(np.uint8), scales.astype(np.float32), zero_points.astype(np.uint8)


def pack_nibbles(values: np.ndarray) -> np.ndarray:
    """Two 4-bit values a byte along the last axis (padded to even), the first one low."""
    if values.shape[-1] % 2:
        pad = np.zeros((*values.shape[:-1], 1), np.uint8)
        values = np.concatenate([values, pad], axis=-1)
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


def dequantize_blocks(
    values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray
) -> np.ndarray:
    """The float (N, k_blocks * block) weight that ``quantize_blocks``'s output stands for."""
    found = (values.astype(np.float32) - zero_points[:, :, None]) * scales[:, :, None]
    return found.reshape(values.shape[0], -1)


def _row_chunks(weight: np.ndarray) -> Iterator[np.ndarray]:
    step = max(1, _CHUNK_VALUES // max(1, weight.shape[1]))
    for start in range(0, weight.shape[0], step):
        yield np.asarray(weight[start : start + step], dtype=np.float32)


class TensorFile:
    """Initializers whose bytes go to one external-data file beside the graph, written as
    they are added."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("wb")
        self._offset = 0
        self.initializers: list[TensorProto] = []

    def close(self) -> None:
        self._file.close()

    def add(self, name: str, array: np.ndarray) -> str:
        """``array`` as an initializer named ``name``; returns the name."""
        array = np.ascontiguousarray(array)
        if array.nbytes < INLINE_BYTES:
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        return self.add_chunks(name, array.dtype, array.shape, [array])

    def add_chunks(
        self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: Iterable[np.ndarray]
    ) -> str:
        """An initializer whose bytes are ``chunks`` in order (C order of ``shape``)."""
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if size >= ALIGNED_FROM:
            padding = -self._offset % ALIGN
            self._file.write(b"\0" * padding)
            self._offset += padding
        start = self._offset
        for chunk in chunks:
            data = np.ascontiguousarray(chunk, dtype=dtype)
            self._file.write(data.tobytes())
            self._offset += data.nbytes
        if self._offset - start != size:
            raise ValueError(f"{name}: wrote {self._offset - start} bytes, expected {size}")
        self.initializers.append(self._external(name, dtype, shape, start, size))
        return name

    def alias(self, name: str, of: str, shape: tuple[int, ...]) -> str:
        """A second initializer over the bytes of ``of`` with another shape of the same size."""
        source = next(t for t in self.initializers if t.name == of)
        if source.data_location != TensorProto.EXTERNAL:
            array = numpy_helper.to_array(source).reshape(shape)
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        entries = {e.key: e.value for e in source.external_data}
        dtype = helper.tensor_dtype_to_np_dtype(source.data_type)
        start, size = int(entries["offset"]), int(entries["length"])
        self.initializers.append(self._external(name, dtype, shape, start, size))
        return name

    def _external(
        self, name: str, dtype: np.dtype, shape: tuple[int, ...], start: int, size: int
    ) -> TensorProto:
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        tensor.dims.extend(shape)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.path.name), ("offset", start), ("length", size)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
        return tensor

    def add_rows(self, name: str, weight: np.ndarray, dtype: np.dtype) -> str:
        """``weight`` in ``dtype``, converted a slice of rows at a time."""
        step = max(1, _CHUNK_VALUES // max(1, int(np.prod(weight.shape[1:]))))
        chunks = (weight[start : start + step] for start in range(0, weight.shape[0], step))
        return self.add_chunks(name, dtype, tuple(weight.shape), chunks)

    def add_transposed(self, name: str, weight: np.ndarray, dtype: np.dtype) -> str:
        """``weight.T`` (the (K, N) layout MatMul takes) in ``dtype``, a slice at a time."""
        rows, columns = weight.shape
        step = max(1, _CHUNK_VALUES // max(1, rows))
        chunks = (
            np.asarray(weight[:, start : start + step].T, dtype=dtype)
            for start in range(0, columns, step)
        )
        return self.add_chunks(name, dtype, (columns, rows), chunks)

    def add_quantized(
        self,
        name: str,
        weight: np.ndarray,
        bits: int,
        block: int,
        gathered: bool = False,
        scale_type: np.dtype = FLOAT32,
        found_blocks: Blocks | None = None,
    ) -> Quantized:
        """``weight`` (N, K) block-quantized: its ``MatMulNBits`` initializers, and with
        ``gathered`` its ``GatherBlockQuantized`` scales and zero points too. The scales are
        of ``scale_type``, the type of the op's float input and output. ``found_blocks``:
        values, scales and zero points already chosen (``quantize_blocks``' layout, e.g.
        by GPTQ), stored as they are instead of rounding ``weight``."""
        rows, columns = weight.shape
        blocks = -(-columns // block)
        scales: list[np.ndarray] = []
        zero_points: list[np.ndarray] = []

        def chosen() -> Iterator[Blocks]:
            if found_blocks is not None:
                if found_blocks[0].shape != (rows, blocks, block):
                    raise ValueError(f"{name}: blocks of shape {found_blocks[0].shape}")
                yield found_blocks
                return
            for chunk in _row_chunks(weight):
                yield quantize_blocks(chunk, bits, block)

        def packed_chunks() -> Iterator[np.ndarray]:
            for values, chunk_scales, chunk_zero_points in chosen():
                scales.append(chunk_scales)
                zero_points.append(chunk_zero_points)
                yield pack_nibbles(values) if bits == 4 else values

        shape = (rows, blocks, block * bits // 8)
        packed = self.add_chunks(f"{name}.packed", np.dtype(np.uint8), shape, packed_chunks())
        all_zero_points = np.concatenate(zero_points)
        stored = pack_nibbles(all_zero_points) if bits == 4 else all_zero_points
        found = Quantized(
            packed,
            self.add(f"{name}.scales", np.concatenate(scales).astype(scale_type)),
            self.add(f"{name}.zero_points", stored),
            rows,
            columns,
            bits,
            block,
        )
        if not gathered:
            return found
        gather_shape = (rows, blocks, 1)
        gather_scales = self.alias(f"{name}.gather_scales", found.scales, gather_shape)
        if bits == 8:
            gather_zero_points = self.alias(
                f"{name}.gather_zero_points", found.zero_points, gather_shape
            )
        else:
            # MatMulNBits packs two 4-bit zero points a byte; the gather wants one a byte.
            gather_zero_points = self.add(
                f"{name}.gather_zero_points", all_zero_points.reshape(gather_shape)
            )
        return Quantized(
            packed,
            found.scales,
            found.zero_points,
            rows,
            columns,
            bits,
            block,
            gather_scales,
            gather_zero_points,
        )
