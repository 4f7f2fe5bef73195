"""Block quantization that corrects its own rounding error (GPTQ: Frantar et al., 2022).

Rounding each weight to the nearest value of its block's grid (``quantize_blocks``) ignores
what the layer's inputs look like. GPTQ quantizes the columns of a weight (N, K) one at a
time and, after each, moves the columns not yet quantized so that the layer's output on its
inputs changes as little as possible: the rounding error of column k, spread over the later
columns through the inverse of the inputs' second-moment matrix ``H = X^T X`` (K, K). The
grid is of ``quantize_blocks``' kind (asymmetric, one scale and zero point a block of
``block`` columns): chosen from the block's values as they stand when the block is reached,
left to right; fixed from the weight as it is when the columns go largest inputs first. The
output has ``quantize_blocks``' layout, so the graph stores it the same way.

Rows are independent given ``H``: weights that read the same input (q, k and v; gate and up)
share one ``InverseFactor``, and a large weight (the output layer) can be done a slice of rows
at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ghostcomplete.model.onnx_weights import block_grid

# Added to H's diagonal, as a share of its mean: keeps H invertible where the inputs do not
# span every direction (fewer calibration tokens than columns, channels that are always 0).
DAMPING = 0.01
# Columns updated together before the rest of the weight is brought up to date.
BATCH = 128


@dataclass(frozen=True)
class InverseFactor:
    """The upper Cholesky factor of ``(H + damping)^-1``, padded to whole blocks, and which
    input columns never saw a nonzero value (their weights cannot matter)."""

    upper: np.ndarray  # float32 (K_padded, K_padded), in the order of ``order``
    dead: np.ndarray  # bool (K,)
    # The order the columns are quantized in (K_padded,), or None: left to right.
    order: np.ndarray | None = None


def second_moments(inputs: np.ndarray) -> np.ndarray:
    """``X^T X`` (float64, (K, K)) of the rows of ``inputs`` (..., K)."""
    flat = np.asarray(inputs, dtype=np.float32).reshape(-1, inputs.shape[-1])
    return (flat.T @ flat).astype(np.float64)


def inverse_factor(
    hessian: np.ndarray, block: int, damping: float = DAMPING, energy_order: bool = False
) -> InverseFactor:
    """``energy_order``: quantize the columns whose inputs are largest first, while the
    most columns are left to take up their error (GPTQ's "act order")."""
    columns = hessian.shape[0]
    padded = -(-columns // block) * block
    h = np.eye(padded, dtype=np.float64)
    h[:columns, :columns] = hessian
    diagonal = np.diagonal(h)[:columns]
    dead = diagonal == 0
    index = np.flatnonzero(dead)
    h[index, index] = 1.0
    mean = float(np.mean(np.diagonal(h)))
    order = np.argsort(-np.diagonal(h), kind="stable") if energy_order else None
    if order is not None:
        h = h[order][:, order]
    # With J the reversal of the columns and J (H + damping) J = L L^T, the inverse is
    # U^T U with U = J L^-1 J upper triangular: one Cholesky and one inverse.
    reversed_h = h[::-1, ::-1]
    for attempt in range(6):
        damped = reversed_h + np.eye(padded) * (damping * 10**attempt * mean)
        try:
            lower = np.linalg.cholesky(damped)
        except np.linalg.LinAlgError:
            continue
        upper = _lower_inverse(lower)[::-1, ::-1]
        return InverseFactor(np.ascontiguousarray(upper, dtype=np.float32), dead, order)
    raise ValueError("the calibration inputs' second moments are not positive definite")


def _lower_inverse(lower: np.ndarray) -> np.ndarray:
    """The inverse of a lower triangular matrix, by halves: a third of a general inverse's
    work, and most of it in matrix products."""
    size = lower.shape[0]
    if size <= 256:
        return np.tril(np.linalg.inv(lower))
    half = size // 2
    first = _lower_inverse(lower[:half, :half])
    second = _lower_inverse(lower[half:, half:])
    inverse = np.zeros_like(lower)
    inverse[:half, :half] = first
    inverse[half:, half:] = second
    inverse[half:, :half] = -second @ (lower[half:, :half] @ first)
    return inverse


def quantize_with_factor(
    weight: np.ndarray, factor: InverseFactor, bits: int, block: int, batch: int = BATCH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``quantize_blocks``' values, scales and zero points of the float (N, K) ``weight``,
    each column's rounding error spread over the columns after it."""
    rows, columns = weight.shape
    padded = factor.upper.shape[0]
    if padded % block or padded < columns:
        raise ValueError(f"the factor's {padded} columns do not fit {columns} in blocks of {block}")
    batch = max(block, batch // block * block)
    top = float((1 << bits) - 1)
    work = np.zeros((rows, padded), np.float32)
    work[:, :columns] = weight
    work[:, :columns][:, factor.dead] = 0.0
    upper = factor.upper
    values = np.empty((rows, padded), np.uint8)
    if factor.order is None:
        scales = np.empty((rows, padded // block), np.float32)
        zero_points = np.empty((rows, padded // block), np.float32)
    else:
        # Out of order, a block's grid cannot wait for its first column: it is fixed from
        # the weight as it is, by quantize_blocks' rule (block_grid).
        scales, zero_points = block_grid(work.reshape(rows, padded // block, block), bits)
        work = work[:, factor.order]
    for start in range(0, padded, batch):
        end = min(start + batch, padded)
        part = work[:, start:end].copy()
        errors = np.empty_like(part)
        for i in range(end - start):
            position = start + i
            column = position if factor.order is None else int(factor.order[position])
            if factor.order is not None:
                scale = scales[:, column // block]
                zero = zero_points[:, column // block]
            elif column % block == 0:
                scale, zero = block_grid(part[:, i : i + block], bits)
                scales[:, column // block] = scale
                zero_points[:, column // block] = zero
            w = part[:, i]
            q = np.clip(np.round(w / scale + zero), 0, top)
            values[:, column] = q
            error = (w - (q - zero) * scale) / upper[position, position]
            part[:, i:] -= np.outer(error, upper[position, position:end])
            errors[:, i] = error
        work[:, end:] -= errors @ upper[start:end, end:]
    return (
        values.reshape(rows, padded // block, block),
        scales,
        zero_points.astype(np.uint8),
    )


def output_error(weight: np.ndarray, found: np.ndarray, hessian: np.ndarray) -> float:
    """``tr((W - Ŵ) H (W - Ŵ)^T)``: the squared change of the layer's outputs over the
    inputs ``H`` was made of, which GPTQ makes small."""
    difference = np.asarray(weight, np.float64) - found[:, : weight.shape[1]]
    return float(np.einsum("nk,kj,nj->", difference, hessian, difference))
