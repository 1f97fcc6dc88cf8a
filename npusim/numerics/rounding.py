"""Casts in every rounding mode the Ascend kernels use, computed exactly.

Every float16 / bfloat16 / float32 / int32 value is exact in float64, so values are rounded there by
scaling with powers of two (exact) and rounding the scaled significand. int64 / uint64 values beyond
2^53 are first rounded to odd at 53 bits with integer arithmetic; that keeps every later rounding to
<= 51 bits correct in every mode (the sticky bit survives). Saturation follows ops-semantics 0.2:
vector Cast saturates on overflow by default; NaN -> 0 and +-inf -> max / min for float -> int.
"""

from __future__ import annotations

import enum

import numpy as np

from npusim.numerics.dtypes import FORMATS, is_bf16, np_dtype

INT_RANGES = {
    "int4": (-8, 7),
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

_FLOAT_TARGETS = ("float16", "bfloat16", "float32")


class RoundMode(enum.StrEnum):
    """The Ascend C ``RoundMode`` values (ops-semantics 0.2).

    RINT: nearest, ties to even (CAST_RINT). ROUND: nearest, ties away from zero (CAST_ROUND).
    TRUNC / FLOOR / CEIL: toward zero / -inf / +inf. ODD: round to odd - truncate toward zero and
    set the last kept bit if anything was discarded. For float -> int, ODD is defined the same way
    on the integer grid: truncate toward zero, then step one away from zero if the value was
    inexact and the truncated integer is even (so 2.5 -> 3, 3.5 -> 3, 4.0 -> 4, -2.5 -> -3).
    """

    RINT = "rint"
    ROUND = "round"
    TRUNC = "trunc"
    FLOOR = "floor"
    CEIL = "ceil"
    ODD = "odd"


#: mode name -> member (a dict look-up: the enum's constructor costs more than many casts)
_MODES: dict[str, RoundMode] = {m.value: m for m in RoundMode}


def _check_mode(mode: RoundMode | str) -> RoundMode:
    got = _MODES.get(mode) if type(mode) is str or type(mode) is RoundMode else None
    if got is not None:
        return got
    try:
        return RoundMode(mode)
    except ValueError:
        raise ValueError(
            f"mode: {mode!r} is not a rounding mode; use one of {[m.value for m in RoundMode]}"
        ) from None


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    """Index (as a tuple) of the first True element of ``mask``; works for 0-d arrays."""
    return tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape))


def _is_int(dt: np.dtype) -> bool:
    return dt.kind in "iub"


def _checked_array(x: np.ndarray) -> np.ndarray:
    """``x`` as an array of a supported numeric dtype (bool, integer, float16/bf16/32/64)."""
    arr = np.asarray(x)
    if _is_int(arr.dtype) or is_bf16(arr.dtype) or (arr.dtype.kind == "f" and arr.itemsize <= 8):
        return arr
    raise TypeError(f"x: dtype {arr.dtype} is not supported; use a bool, integer, float16, "
                    "bfloat16, float32 or float64 array")


def _wide_int_to_f64(a: np.ndarray) -> np.ndarray:
    """int64 / uint64 -> float64, exact below 2^53 and rounded to odd at 53 bits above."""
    neg = a < 0
    # |a| as uint64 without overflowing at -2^63: -(a + 1) fits in int64, then add the 1 back.
    mag = np.where(neg, -(a + 1), a).astype(np.uint64) + neg.astype(np.uint64)
    big = mag >= np.uint64(1 << 53)
    out = mag.astype(np.float64)  # exact where not big
    if np.any(big):
        m = mag[big]
        _, e = np.frexp(m.astype(np.float64))
        bitlen = e.astype(np.uint64)  # may be one too large when the float conversion rounded up
        bitlen -= ((m >> (bitlen - np.uint64(1))) == 0).astype(np.uint64)
        shift = bitlen - np.uint64(53)
        kept = m >> shift
        sticky = (m & ((np.uint64(1) << shift) - np.uint64(1))) != 0
        kept |= sticky.astype(np.uint64)
        out[big] = np.ldexp(kept.astype(np.float64), shift.astype(np.int64))
    return np.where(neg, -out, out)


def _to_f64(arr: np.ndarray) -> np.ndarray:
    if _is_int(arr.dtype) and arr.dtype.itemsize == 8:
        return _wide_int_to_f64(arr)
    return arr.astype(np.float64)


def round_to_integral(x: np.ndarray, mode: RoundMode | str) -> np.ndarray:
    """Round to an integral float64 in ``mode``, exactly; NaN and +-inf pass through.

    ``x`` may be float16 / bfloat16 / float32 / float64 (or an integer array exact in float64).
    Zero results keep the sign of the input (-0.3 -> -0.0 in RINT / TRUNC / CEIL / ROUND)."""
    mode = _check_mode(mode)
    arr = _checked_array(x)
    if _is_int(arr.dtype) and arr.dtype.itemsize == 8:
        big = np.abs(_wide_int_to_f64(arr)) >= 2.0**53
        if np.any(big):
            idx = _first_index(big)
            raise ValueError(f"x: integer {int(arr[idx])} at index {idx} is not exact in the "
                             "float64 result (|x| must be below 2^53)")
    v = arr.astype(np.float64)
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
        frac = v - t  # exact: v and t share the exponent range and t has no fraction bits
        if mode is RoundMode.ROUND:
            return np.where(np.abs(frac) >= 0.5, t + np.sign(v), t)  # keeps -0.0
        inexact = (frac != 0) & np.isfinite(v)
        even = np.fmod(t, 2.0) == 0
        return np.where(inexact & even, t + np.sign(v), t)


def float_to_int(x: np.ndarray, dtype: str, mode: RoundMode | str = RoundMode.RINT, *,
                 saturate: bool = True) -> np.ndarray:
    """Float (or integer) -> int4 / int8 / uint8 / int16 / int32 / int64 in ``mode``.

    Saturates to the target range (int4 = [-8, 7], returned as int8); NaN -> 0, +-inf -> max/min.
    ``saturate=False`` raises ValueError on an out-of-range value (inf included; NaN still -> 0).
    Integer inputs are exact, so ``mode`` does not change them.
    """
    mode = _check_mode(mode)
    if dtype not in INT_RANGES:
        raise ValueError(f"dtype: {dtype!r} is not an integer target; use one of "
                         f"{sorted(INT_RANGES)}")
    lo, hi = INT_RANGES[dtype]
    arr = _checked_array(x)
    out_dtype = np.int8 if dtype == "int4" else np_dtype(dtype)
    if _is_int(arr.dtype):
        if arr.dtype == np.uint64:
            arr64 = np.minimum(arr, np.uint64(hi)).astype(np.int64)  # hi <= 2^63 - 1
        else:
            arr64 = arr.astype(np.int64)
        over, under = arr64 > hi, arr64 < lo
        nan = np.zeros(arr.shape, bool)
        ints = arr64
    elif saturate and dtype != "int64":  # the saturating path below in fewer passes: clip
        # the integral values (exact: every bound is exact in float64), NaN -> 0
        r = round_to_integral(arr, mode)
        np.clip(r, float(lo), float(hi), out=r)
        nan = np.isnan(r)
        if nan.any():
            r[nan] = 0.0
        return r.astype(out_dtype)
    else:
        r = round_to_integral(arr, mode)
        nan = np.isnan(r)
        # lo and hi + 1 are powers of two (or small), so both comparisons are exact in float64.
        over, under = r >= float(hi + 1), r < float(lo)
        ints = np.where(nan | over | under, 0.0, r).astype(np.int64)
    if not saturate and np.any(over | under):
        idx = _first_index(over | under)
        raise ValueError(f"x: value {arr[idx].item()!r} at index {idx} is outside the {dtype} "
                         f"range [{lo}, {hi}] (saturate=False)")
    ints = np.where(over, hi, np.where(under, lo, ints))
    return np.where(nan, 0, ints).astype(out_dtype)


def cast_float(x: np.ndarray, dtype: str, mode: RoundMode | str = RoundMode.RINT, *,
               saturate: bool = True) -> np.ndarray:
    """Any float or integer array -> float16 / bfloat16 / float32, rounded exactly in ``mode``.

    Subnormals of the target are produced (no flush); zeros keep their sign. Overflow:
    ``saturate=True`` gives +-max finite (the vector Cast default, "溢出默认按照饱和处理");
    otherwise the IEEE result of the mode (RINT / ROUND -> +-inf; TRUNC / ODD -> +-max;
    FLOOR: +max / -inf; CEIL: +inf / -max). NaN stays NaN and +-inf stays +-inf in both cases.
    """
    mode = _check_mode(mode)
    try:
        name = dtype if isinstance(dtype, str) and dtype in _FLOAT_TARGETS else np_dtype(dtype).name
    except (ValueError, TypeError):
        name = None
    if name not in _FLOAT_TARGETS:
        raise ValueError(f"dtype: {dtype!r} is not a float target; use float16, bfloat16 or "
                         "float32 (or fp16, bf16, fp32)")
    fmt = FORMATS[name]
    arr = _checked_array(x)
    if mode is RoundMode.RINT and name != "bfloat16" and (
            arr.dtype.kind == "f" or (_is_int(arr.dtype) and arr.dtype.itemsize <= 4)):
        return _cast_rint_native(arr, name, fmt.max_finite, saturate)
    if mode is RoundMode.RINT and name == "bfloat16" and arr.dtype in (np.float32, np.float16):
        return _f32_to_bf16_rint(arr.astype(np.float32), saturate)
    v = _to_f64(arr)
    finite = np.isfinite(v) & (v != 0)
    safe = np.where(finite, v, 1.0)
    _, e = np.frexp(safe)  # |safe| = m * 2^e with 0.5 <= m < 1, so its exponent is e - 1
    q = np.maximum(e - 1, fmt.min_exponent) - fmt.mantissa_bits  # exponent of the target's ulp
    rounded = round_to_integral(np.ldexp(safe, -q), mode)  # scaling by 2^-q is exact
    with np.errstate(over="ignore"):  # a float64 input near its max may round up to inf here
        res = np.ldexp(rounded, q)
    mx = fmt.max_finite
    over = finite & (np.abs(res) > mx)
    if np.any(over):
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
    with np.errstate(invalid="ignore", over="ignore"):
        return res.astype(np_dtype(name))  # every value is exact in the target: no rounding here


def _cast_rint_native(arr: np.ndarray, name: str, mx: float, saturate: bool) -> np.ndarray:
    """RINT to float32 / float16 with numpy's own conversion, which is IEEE round-to-nearest-
    even from float64 (one rounding, subnormals included); the source is exact in float64 (a
    float, or an integer of at most 32 bits). Overflow: +-inf, or +-max when ``saturate``.
    Equal to the general path bit for bit (tests/test_numerics_casts.py's exhaustive fp16 /
    fp32 and tie cases run through it)."""
    v = arr.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        res = v.astype(np_dtype(name))
    if saturate:
        over = np.isinf(res) & np.isfinite(v)
        if np.any(over):
            res = np.where(over, np.where(v > 0, mx, -mx), res).astype(res.dtype)
    return res


def _f32_to_bf16_rint(x: np.ndarray, saturate: bool) -> np.ndarray:
    """float32 -> bfloat16, round to nearest even on the bit pattern (bf16 keeps float32's
    exponent range, so one integer rounding of the top 16 bits is exact RNE for normals and
    subnormals alike, a carry running into the exponent); overflow gives +-inf, or +-max when
    ``saturate``; NaN stays NaN. Equal to the general path bit for bit."""
    u = np.ascontiguousarray(x).view(np.uint32)
    top = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    top = top.astype(np.uint16)
    bf = np_dtype("bfloat16")
    nan = np.isnan(x)
    if nan.any():  # the general path's NaN: float64 -> bfloat16 by ml_dtypes
        with np.errstate(invalid="ignore"):
            top[nan] = x[nan].astype(np.float64).astype(bf).view(np.uint16)
    if saturate:
        over = ((top & np.uint16(0x7FFF)) == np.uint16(0x7F80)) & np.isfinite(x)
        if over.any():
            top = np.where(over, (top & np.uint16(0x8000)) | np.uint16(0x7F7F), top)
    out: np.ndarray = top.astype(np.uint16).view(bf)
    return out

