"""int4 packing: 8 values per int32, value t of a group in bits [4t, 4t+3] (ops-semantics 2.2, 4.3).

This is the packing of npu_convert_weight_to_int4pack and of npu_group_quant's quint4x2 output:
plain little-endian nibble order, no interleave.
"""

from __future__ import annotations

import numpy as np

_SHIFTS = np.arange(8, dtype=np.uint32) * np.uint32(4)


def pack_int4(values: np.ndarray, *, mask_out_of_range: bool = False) -> np.ndarray:
    """Integer array (..., 8*j) -> int32 (..., j).

    Values outside [-8, 7] raise ValueError naming the first one, unless ``mask_out_of_range``,
    which emulates the host code (``value & 0xF``: 9 packs as -7, 16 as 0)."""
    v = np.asarray(values)
    if v.dtype.kind not in "iu":
        raise TypeError(f"values: dtype {v.dtype} is not an integer type")
    if v.ndim == 0 or v.shape[-1] % 8:
        last = v.shape[-1] if v.ndim else "none (0-d array)"
        raise ValueError(f"values: last dimension {last} must be a multiple of 8")
    if not mask_out_of_range:
        bad = (v > 7) if v.dtype.kind == "u" else (v < -8) | (v > 7)
        if np.any(bad):
            idx = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), v.shape))
            raise ValueError(f"values: {int(v[idx])} at index {idx} is outside the int4 range "
                             "[-8, 7] (pass mask_out_of_range=True to keep the low 4 bits)")
    nibbles = (v & 0xF).astype(np.uint32).reshape(*v.shape[:-1], v.shape[-1] // 8, 8)
    packed = np.bitwise_or.reduce(nibbles << _SHIFTS, axis=-1)
    return np.ascontiguousarray(packed, dtype=np.uint32).view(np.int32)


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """int32 (..., j) -> int8 (..., 8*j): nibble t of each word, sign-extended, is value t."""
    p = np.asarray(packed)
    if p.dtype != np.int32:
        raise TypeError(f"packed: dtype {p.dtype} is not int32")
    if p.ndim == 0:
        raise ValueError("packed: a 0-d array has no last dimension to unpack; pass shape (..., j)")
    words = np.ascontiguousarray(p).view(np.uint32)[..., None]
    nibbles = ((words >> _SHIFTS) & 0xF).astype(np.int8)
    signed = np.where(nibbles >= 8, nibbles - 16, nibbles).astype(np.int8)
    return signed.reshape(*p.shape[:-1], p.shape[-1] * 8)
