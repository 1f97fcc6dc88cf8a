"""Casts in every rounding mode the Ascend kernels use, computed exactly.

Every float16 / bfloat16 / float32 / int32 value is exact in float64, so values are rounded there by
scaling with powers of two (exact) and rounding the scaled significand. Saturation follows
ops-semantics 0.2: vector Cast saturates on overflow by default; NaN -> 0 for float -> int.
"""

from __future__ import annotations

import enum

import numpy as np

from npusim.numerics.dtypes import FORMATS, np_dtype

INT_RANGES = {
    "int4": (-8, 7),
    "int8": (-128, 127),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


class RoundMode(enum.StrEnum):
    """CAST_RINT (nearest, ties to even), CAST_ROUND (nearest, ties away from zero), CAST_TRUNC,
    CAST_FLOOR, CAST_CEIL, CAST_ODD (round to odd: truncate, then set the last bit if inexact)."""

    RINT = "rint"
    ROUND = "round"
    TRUNC = "trunc"
    FLOOR = "floor"
    CEIL = "ceil"
    ODD = "odd"


def _as_f64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.float64:
        return x
    if np.issubdtype(x.dtype, np.integer) and x.dtype.itemsize == 8:
        big = np.abs(x.astype(np.float64)) >= 2.0**53
        if np.any(big):
            raise NotImplementedError("int64 values beyond 2^53 are not supported by these casts")
    return x.astype(np.float64)


def round_to_integral(x: np.ndarray, mode: RoundMode | str) -> np.ndarray:
    """Round to an integral float64 in ``mode``, exactly (NaN and inf pass through).

    ODD for integers: truncate toward zero; if that was inexact and the result is even, step one
    away from zero (so inexact results are always odd)."""
    mode = RoundMode(mode)
    v = _as_f64(x)
    with np.errstate(invalid="ignore"):
        if mode is RoundMode.RINT:
            return np.rint(v)
        if mode is RoundMode.TRUNC:
            return np.trunc(v)
        if mode is RoundMode.FLOOR:
            return np.floor(v)
        if mode is RoundMode.CEIL:
            return np.ceil(v)
        t = np.trunc(v)
        frac = v - t  # exact
        if mode is RoundMode.ROUND:
            return np.where(np.abs(frac) >= 0.5, t + np.sign(v), t)  # keeps -0.0
        inexact = (frac != 0) & np.isfinite(v)
        even = np.fmod(t, 2.0) == 0
        return np.where(inexact & even, t + np.sign(v), t)


def float_to_int(x: np.ndarray, dtype: str, mode: RoundMode | str = RoundMode.RINT, *,
                 saturate: bool = True) -> np.ndarray:
    """Float (or integer) -> int4 / int8 / int16 / int32 / int64 in ``mode``.

    Saturates to the target range (int4 = [-8, 7], returned as int8); NaN -> 0, +-inf -> max/min.
    ``saturate=False`` raises ValueError on an out-of-range value instead.
    """
    if dtype not in INT_RANGES:
        raise ValueError(f"dtype {dtype!r}: must be one of {sorted(INT_RANGES)}")
    lo, hi = INT_RANGES[dtype]
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.integer):
        r = arr.astype(np.int64)
        nan = np.zeros(arr.shape, bool)
    else:
        r = round_to_integral(arr, mode)
        nan = np.isnan(r)
    if not saturate:
        bad = ~nan & ((r < lo) | (r > hi))
        if np.any(bad):
            idx = tuple(int(i[0]) for i in np.nonzero(bad))
            raise ValueError(f"value {arr[idx]!r} at index {idx} is outside the {dtype} range "
                             f"[{lo}, {hi}] (saturate=False)")
    if not np.issubdtype(arr.dtype, np.integer):
        r = np.where(nan, 0.0, np.clip(r, lo, hi))
    else:
        r = np.clip(r, lo, hi)
    out = np.int8 if dtype == "int4" else np_dtype(dtype)
    return r.astype(out)


def cast_float(x: np.ndarray, dtype: str, mode: RoundMode | str = RoundMode.RINT, *,
               saturate: bool = True) -> np.ndarray:
    """Any float or integer array -> float16 / bfloat16 / float32, rounded exactly in ``mode``.

    Subnormals of the target are produced (no flush). Overflow: ``saturate=True`` gives +-max
    finite (the vector Cast default); otherwise IEEE behaviour of the mode (RINT / ROUND -> inf;
    TRUNC / ODD -> max; FLOOR: +max / -inf; CEIL: +inf / -max). NaN stays NaN, inf stays inf.
    """
    mode = RoundMode(mode)
    name = np_dtype(dtype).name if dtype not in FORMATS else dtype
    if name not in ("float16", "bfloat16", "float32"):
        raise ValueError(f"dtype {dtype!r}: must be float16, bfloat16 or float32")
    fmt = FORMATS[name]
    v = _as_f64(x)
    finite = np.isfinite(v) & (v != 0)
    safe = np.where(finite, v, 1.0)
    _, e = np.frexp(safe)  # safe = m * 2^e, 0.5 <= |m| < 1 -> exponent of safe is e - 1
    q = np.maximum(e - 1, fmt.min_exponent) - fmt.mantissa_bits  # quantum exponent
    scaled = np.ldexp(safe, -q)  # exact
    if mode is RoundMode.ODD:
        t = np.trunc(scaled)
        inexact = t != scaled
        rounded = np.where(inexact & (np.fmod(t, 2.0) == 0), t + np.sign(scaled), t)
    else:
        rounded = round_to_integral(scaled, mode)
    res = np.ldexp(rounded, q)
    mx = fmt.max_finite
    over = np.abs(res) > mx
    if np.any(over & finite):
        pos = res > 0
        if saturate or mode in (RoundMode.TRUNC, RoundMode.ODD):
            ovf = np.where(pos, mx, -mx)
        elif mode in (RoundMode.RINT, RoundMode.ROUND):
            ovf = np.where(pos, np.inf, -np.inf)
        elif mode is RoundMode.FLOOR:
            ovf = np.where(pos, mx, -np.inf)
        else:
            ovf = np.where(pos, np.inf, -mx)
        res = np.where(over, ovf, res)
    res = np.where(finite, res, v)  # zeros keep their sign, NaN / inf pass through
    with np.errstate(invalid="ignore"):
        return res.astype(np_dtype(name))
