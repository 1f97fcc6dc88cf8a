"""int4 packing: 8 values per int32, value t of a group in bits [4t, 4t+3] (ops-semantics 2.2, 4.3).

This is the packing of npu_convert_weight_to_int4pack and of npu_group_quant's quint4x2 output:
plain little-endian nibble order, no interleave. Both directions work byte by byte (an int32
word is four little-endian bytes, each holding values 2b and 2b + 1 in its low and high nibble).
"""

from __future__ import annotations

import numpy as np

#: byte -> its two nibbles as sign-extended int8 values, low nibble first, the pair stored as
#: one little-endian 2-byte word (one gather per byte)
_NIBBLES = np.array([[((b & 0xF) ^ 8) - 8, ((b >> 4) ^ 8) - 8] for b in range(256)],
                    np.int8).view("<i2").reshape(256)
#: two bytes (a little-endian 16-bit index: first byte low) -> their four nibbles as int8
#: values, the four stored as one little-endian 4-byte word: one gather per two bytes
_NIBBLES2 = np.stack([_NIBBLES[np.arange(1 << 16) & 0xFF], _NIBBLES[np.arange(1 << 16) >> 8]],
                     axis=-1).view("<u4").reshape(1 << 16)
#: the little-endian 32-bit word of four bytes
_WORD = np.dtype("<u4")


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
    if not mask_out_of_range and v.size and (
            int(v.max()) > 7 or (v.dtype.kind == "i" and int(v.min()) < -8)):
        bad = (v > 7) if v.dtype.kind == "u" else (v < -8) | (v > 7)
        idx = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), v.shape))
        raise ValueError(f"values: {int(v[idx])} at index {idx} is outside the int4 range "
                         "[-8, 7] (pass mask_out_of_range=True to keep the low 4 bits)")
    nib = (v & 0xF).astype(np.uint8).reshape(-1, 2)
    packed = np.ascontiguousarray(nib[:, 0] | (nib[:, 1] << 4)).view(_WORD)
    return packed.astype(np.int32).reshape(*v.shape[:-1], v.shape[-1] // 8)


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """int32 (..., j) -> int8 (..., 8*j): nibble t of each word, sign-extended, is value t."""
    p = np.asarray(packed)
    if p.dtype != np.int32:
        raise TypeError(f"packed: dtype {p.dtype} is not int32")
    if p.ndim == 0:
        raise ValueError("packed: a 0-d array has no last dimension to unpack; pass shape (..., j)")
    le = np.ascontiguousarray(p).astype(_WORD, copy=False).view(np.uint8)
    return unpack_int4_bytes(le).reshape(*p.shape[:-1], p.shape[-1] * 8)


def unpack_int4_bytes(b: np.ndarray) -> np.ndarray:
    """uint8 (..., n) -> int8 (..., 2n): each byte's low nibble, then its high nibble,
    sign-extended (int4 stored two per byte)."""
    if b.dtype != np.uint8:
        raise TypeError(f"b: dtype {b.dtype} is not uint8")
    if b.ndim == 0:
        b = b.reshape(1)
    b = np.ascontiguousarray(b)
    if b.shape[-1] % 2 == 0 and b.size:  # two bytes per gather (rows of an even length)
        quads = np.take(_NIBBLES2, b.view("<u2"))
        return quads.view(np.int8).reshape(*b.shape[:-1], 2 * b.shape[-1])
    pairs = np.take(_NIBBLES, b)
    return pairs.view(np.int8).reshape(*b.shape[:-1], 2 * b.shape[-1])
