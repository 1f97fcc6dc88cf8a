"""HF32: the reduced-precision fp32 the cube reads in HF32 mode (``allow_hf32``), declared.

Published (AscendC ``SetHF32`` / ``SetHF32Mode``): with the mode on, the fp32 data in L0A / L0B
are rounded to HF32 before the Mmad, to nearest with ties to even (transMode 0, the default) or
ties away from zero (transMode 1). Not published: HF32's mantissa width. The SoC descriptor
declares it (``numerics.hf32``); this module applies it: an fp32 value keeps its sign and
exponent and ``mantissa_bits`` of its 23 stored mantissa bits, rounded at that bit position in
the declared mode (a carry may raise the exponent, up to +-inf); subnormals are rounded at the
same position; inf / NaN pass unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ROUNDINGS = ("rne", "ties_away")


def hf32_mode(mantissa_bits: int, rounding: str) -> str:
    """The Mmad's ``hf32`` field for a declared model, e.g. ``m10_rne``."""
    check_hf32(mantissa_bits, rounding)
    return f"m{mantissa_bits}_{rounding}"


def parse_hf32_mode(mode: str) -> tuple[int, str]:
    """``m10_rne`` -> (10, "rne")."""
    bits, _, rounding = mode.partition("_")
    if not bits.startswith("m") or not bits[1:].isdigit():
        raise ValueError(f"hf32 mode {mode!r}: expected m<bits>_<rounding>")
    check_hf32(int(bits[1:]), rounding)
    return int(bits[1:]), rounding


def check_hf32(mantissa_bits: int, rounding: str) -> None:
    if not isinstance(mantissa_bits, int) or not 1 <= mantissa_bits <= 23:
        raise ValueError(f"hf32 mantissa_bits={mantissa_bits!r}: must be an int in 1..23")
    if rounding not in ROUNDINGS:
        raise ValueError(f"hf32 rounding={rounding!r}: must be one of {ROUNDINGS}")


def round_to_hf32(x: Any, mantissa_bits: int, rounding: str) -> np.ndarray:
    """fp32 ``x`` rounded to HF32 (``mantissa_bits`` stored mantissa bits), as fp32."""
    check_hf32(mantissa_bits, rounding)
    a = np.ascontiguousarray(x, dtype=np.float32)
    drop = 23 - mantissa_bits
    if drop == 0:
        return a.copy()
    u = a.view(np.uint32).astype(np.uint64)
    mag = u & 0x7FFFFFFF
    half = np.uint64(1 << (drop - 1))
    inc: np.ndarray | np.uint64  # per element (rne: the kept LSB breaks ties) or one constant
    if rounding == "rne":
        inc = half - np.uint64(1) + ((mag >> np.uint64(drop)) & np.uint64(1))
    else:
        inc = half
    mask = ~np.uint64((1 << drop) - 1) & np.uint64(0xFFFFFFFF)
    r = ((mag + inc) & mask)
    r = np.minimum(r, np.uint64(0x7F800000))  # a carry past the largest finite value is inf
    out = (u & 0x80000000) | r
    finite = mag < 0x7F800000
    out = np.where(finite, out, u).astype(np.uint32)
    return out.view(np.float32).reshape(a.shape)
