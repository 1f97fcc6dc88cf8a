"""Vector-unit arithmetic as the weight_quant_batchmatmul kernels use it: a declared model.

Element-wise fp32 / fp16 Add, Sub, Mul, Muls and Div are IEEE binary32 / binary16 operations
rounded to nearest-even (numpy's float32/float16 operations are correctly rounded per
operation; subnormals are kept). Where the Ascend documentation leaves the behaviour open, this
module declares a model and names it:

``AXPY_FUSED``
    ``Axpy(dst, src, s)`` = dst + src*s and ``MulAddDst(dst, a, b)`` = dst + a*b. Whether the
    hardware rounds the product before the add is not documented (ops-semantics 5.5c [INF]).
    Model: **not fused** - the product is rounded to the working precision (RNE), then the sum
    (RNE). Setting it to True selects a single rounding (computed exactly, see ``fused_mul_add``).
``BLOCK_REDUCE_ORDER``
    ``BlockReduceSum`` adds the 8 fp32 lanes of each 32-byte block; the order is not published
    (ops-semantics 7.5). Model: a pairwise tree ((e0+e1)+(e2+e3))+((e4+e5)+(e6+e7)), each add
    RNE. The level-2 ``ReduceSum`` (used by the Msd kernel when K < 64) is modelled as block sums
    followed by a pairwise tree over the block sums.
``VECTOR_DIV``
    ``Div`` and the scalar 1.0f/amax are IEEE-correct binary32 divisions (ops-semantics 7.4).

These only matter for MSD kernels; the sums (``rsum``) only when an antiquant offset is given.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

AXPY_FUSED = False
BLOCK_REDUCE_ORDER = "pairwise"
VECTOR_DIV = "ieee_rne"

F32 = np.float32
F16 = np.float16

#: a vector operand: an array, or a scalar (a Muls / Axpy factor) numpy broadcasts
Operand = np.ndarray | np.floating[Any]


def _twosum_round_to_odd(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """p + c (float64 inputs, p exact) rounded to 53 bits with round-to-odd."""
    s = p + c
    bp = s - p
    err = (p - (s - bp)) + (c - bp)
    bits = s.view(np.int64)
    inexact = (err != 0) & np.isfinite(s)
    even = (bits & 1) == 0
    fix = inexact & even
    if fix.any():
        toward = np.where(err > 0, np.inf, -np.inf)
        s = np.where(fix, np.nextafter(s, toward), s)
    return cast(np.ndarray, s)


def fused_mul_add(a: Operand, b: Operand, c: np.ndarray, dtype: type) -> np.ndarray:
    """a*b + c with one rounding to ``dtype`` (float32 or float16), computed exactly.

    The product of two float32 (or float16) values is exact in float64; the sum is rounded to
    53 bits with round-to-odd, after which one RNE rounding to a format with at most 24
    significant bits equals the correctly rounded result (53 >= 2*24 + 2).
    """
    p = np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)
    s = _twosum_round_to_odd(p, np.asarray(c, dtype=np.float64) + np.zeros_like(p))
    with np.errstate(over="ignore"):
        return s.astype(dtype)


def mul_add(dst: np.ndarray, a: Operand, b: Operand) -> np.ndarray:
    """``MulAddDst`` / ``Axpy``: dst + a*b in dst's precision under the AXPY_FUSED model."""
    dtype = dst.dtype.type
    if AXPY_FUSED:
        return fused_mul_add(a, b, dst, dtype)
    with np.errstate(over="ignore"):
        prod = (np.asarray(a, dtype=dtype) * np.asarray(b, dtype=dtype)).astype(dtype)
        return cast(np.ndarray, (dst + prod).astype(dtype))


def block_reduce_sum(v: np.ndarray) -> np.ndarray:
    """BlockReduceSum: (..., 8j) float32 -> (..., j), each 8-lane block by the pairwise tree."""
    if v.shape[-1] % 8:
        raise ValueError(f"block_reduce_sum: last dim {v.shape[-1]} is not a multiple of 8")
    b = v.reshape(*v.shape[:-1], v.shape[-1] // 8, 8).astype(F32)
    s01 = b[..., 0] + b[..., 1]
    s23 = b[..., 2] + b[..., 3]
    s45 = b[..., 4] + b[..., 5]
    s67 = b[..., 6] + b[..., 7]
    return ((s01 + s23) + (s45 + s67)).astype(F32)


def pairwise_sum(v: np.ndarray) -> np.ndarray:
    """Pairwise tree over the last axis (length a power of two or any; odd tail carried)."""
    v = v.astype(F32)
    while v.shape[-1] > 1:
        half = v.shape[-1] // 2
        head = v[..., : 2 * half : 2] + v[..., 1 : 2 * half : 2]
        v = np.concatenate([head, v[..., 2 * half :]], axis=-1) if v.shape[-1] % 2 else head
    return v[..., 0]


def reduce_repeat_to_scalar(t: np.ndarray) -> np.ndarray:
    """(..., 64) fp32 -> (...): two BlockReduceSum passes (64 -> 8 -> 1)."""
    return block_reduce_sum(block_reduce_sum(t))[..., 0]


def halving_chunk_sum(v: np.ndarray) -> np.ndarray:
    """(..., 64R) -> (..., 64): repeatedly add chunk i to chunk P+i (P = R//2), an odd last
    chunk carried over, until one 64-lane chunk remains (RowSumInplace / ComputeSumAOnce)."""
    chunks = v.reshape(*v.shape[:-1], v.shape[-1] // 64, 64).astype(F32)
    while chunks.shape[-2] > 1:
        r = chunks.shape[-2]
        p = r // 2
        head = (chunks[..., :p, :] + chunks[..., p : 2 * p, :]).astype(F32)
        chunks = np.concatenate([head, chunks[..., 2 * p :, :]], axis=-2) if r % 2 else head
    return chunks[..., 0, :]


def sequential_chunk_sum(v: np.ndarray) -> np.ndarray:
    """(..., K) -> (..., 64) for 64 <= K: RowSumFixTmpTensor's loop. The first two 64-lane
    chunks are added, then each further full chunk, then a partial tail chunk lane-wise."""
    k = v.shape[-1]
    v = v.astype(F32)
    t = v[..., :64].copy()
    if k >= 128:
        t = (v[..., :64] + v[..., 64:128]).astype(F32)
    elif k > 64:
        t[..., : k - 64] = v[..., : k - 64] + v[..., 64:k]
        return t
    full = k // 64
    for i in range(2, full):
        t = (t + v[..., 64 * i : 64 * (i + 1)]).astype(F32)
    tail = k - max(full, 2) * 64
    if tail > 0:
        t[..., :tail] = t[..., :tail] + v[..., 64 * full :]
    return t


def group_sum(xg: np.ndarray) -> np.ndarray:
    """Sum of each group (..., g) with g in {64, 128} (per-group MSD pre-processing): a 128
    group first adds its two halves lane-wise, then the 64 lanes are block-reduced twice."""
    g = xg.shape[-1]
    if g == 128:
        t = (xg[..., :64] + xg[..., 64:]).astype(F32)
    elif g == 64:
        t = xg.astype(F32)
    else:
        raise ValueError(f"group_sum: group size {g} is not 64 or 128")
    return reduce_repeat_to_scalar(t)
