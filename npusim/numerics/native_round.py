"""Rounding casts computed in float32 instead of float64, for the semantics' fast paths.

Every float16 / float32 value is exact in float32, and so is every integral value the modes below
produce from one (RINT / TRUNC / FLOOR / CEIL round in the value's own format; ROUND and ODD add
one to a truncated value below 2^23, whose fraction is exact in float32). So these functions give
the bits of :func:`~npusim.numerics.rounding.round_to_integral` (then cast back) and of
:func:`~npusim.numerics.rounding.float_to_int`'s saturating path, for finite inputs; a caller
hands non-finite inputs to those functions (NaN payloads are theirs to define).
tests/test_numerics_native_round.py compares them on every float16 and on random and
boundary float32 values.
"""

from __future__ import annotations

import numpy as np

from npusim.numerics.rounding import RoundMode

_F32 = np.dtype(np.float32)
#: saturation bounds of the integer targets whose bounds are exact in float32
SMALL_INT_RANGES = {"int8": (-128.0, 127.0, np.int8), "int16": (-32768.0, 32767.0, np.int16)}


def round_f32(v: np.ndarray, mode: RoundMode) -> np.ndarray:
    """float32 ``v`` rounded to integral float32 values in ``mode`` (a new array)."""
    out: np.ndarray
    if mode is RoundMode.RINT:
        out = np.rint(v)
    elif mode is RoundMode.TRUNC:
        out = np.trunc(v)
    elif mode is RoundMode.FLOOR:
        out = np.floor(v)
    elif mode is RoundMode.CEIL:
        out = np.ceil(v)
    else:
        t = np.trunc(v)
        frac = v - t  # exact: the low bits of v
        if mode is RoundMode.ROUND:
            out = np.where(np.abs(frac) >= 0.5, t + np.sign(v), t)
        else:
            out = np.where((frac != 0) & (np.fmod(t, 2.0) == 0), t + np.sign(v), t)
    return out


def round_same_float(v: np.ndarray, mode: RoundMode) -> np.ndarray | None:
    """float16 / float32 ``v`` -> integral values of its own dtype in ``mode``: the bits of
    ``round_to_integral(v, mode).astype(v.dtype)``; None when ``v`` holds a NaN or an inf."""
    w = v if v.dtype == _F32 else v.astype(_F32)
    if not np.isfinite(w).all():
        return None
    r = round_f32(w, mode)
    return r if v.dtype == _F32 else r.astype(v.dtype)


def float_to_small_int(v: np.ndarray, dtype: str, mode: RoundMode) -> np.ndarray:
    """float16 / float32 ``v`` -> int8 / int16, rounded in ``mode`` and saturated (NaN -> 0,
    +-inf -> max / min): the bits of ``float_to_int(v, dtype, mode, saturate=True)``."""
    lo, hi, out = SMALL_INT_RANGES[dtype]
    with np.errstate(invalid="ignore"):  # inf - trunc(inf) in ROUND / ODD
        r = round_f32(v if v.dtype == _F32 else v.astype(_F32), mode)
    np.clip(r, lo, hi, out=r)
    nan = np.isnan(r)
    if nan.any():
        r[nan] = 0.0
    return r.astype(out)
