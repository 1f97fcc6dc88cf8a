"""int4 packing: 8 values per int32, value t of a group in bits [4t, 4t+3] (ops-semantics 2.2)."""

from __future__ import annotations

import numpy as np


def pack_int4(values: np.ndarray, *, mask_out_of_range: bool = False) -> np.ndarray:
    """Integer array (..., 8*j) -> int32 (..., j). Values outside [-8, 7] raise ValueError unless
    ``mask_out_of_range`` (emulates the host code's ``value & 0xF``)."""
    v = np.asarray(values)
    if not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"values: integer dtype required, got {v.dtype}")
    if v.ndim == 0 or v.shape[-1] % 8:
        raise ValueError(f"values: last dim {v.shape[-1] if v.ndim else 0} must be a multiple of 8")
    v64 = v.astype(np.int64)
    if not mask_out_of_range:
        bad = (v64 < -8) | (v64 > 7)
        if np.any(bad):
            idx = tuple(int(i[0]) for i in np.nonzero(bad))
            raise ValueError(f"values: {int(v64[idx])} at index {idx} is outside the int4 range "
                             "[-8, 7]")
    nib = (v64 & 0xF).astype(np.uint32).reshape(*v.shape[:-1], v.shape[-1] // 8, 8)
    shifts = (np.arange(8, dtype=np.uint32) * 4)
    packed = np.bitwise_or.reduce(nib << shifts, axis=-1)
    return packed.astype(np.uint32).view(np.int32)


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """int32 (..., j) -> int8 (..., 8*j), sign-extended."""
    p = np.asarray(packed)
    if p.dtype != np.int32:
        raise TypeError(f"packed: int32 required, got {p.dtype}")
    u = p.view(np.uint32)[..., None] >> (np.arange(8, dtype=np.uint32) * 4)
    nib = (u & 0xF).astype(np.int8)
    nib = np.where(nib >= 8, nib - 16, nib).astype(np.int8)
    return nib.reshape(*p.shape[:-1], p.shape[-1] * 8)
