"""Exact rounding oracles in pure-Python integers, independent of npusim.numerics and numpy casts.

A finite float is the rational n / d with d a power of two (``float.as_integer_ratio``); rounding is
integer division with the remainder compared against half the divisor. Formats are described by
(precision including the implicit bit, smallest normal exponent, largest exponent).
"""

from __future__ import annotations

import math

MODES = ("rint", "round", "trunc", "floor", "ceil", "odd")

FORMATS = {  # precision p, emin, emax
    "float16": (11, -14, 15),
    "bfloat16": (8, -126, 127),
    "float32": (24, -126, 127),
}

INT_RANGES = {
    "int4": (-8, 7),
    "int8": (-128, 127),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def max_finite(fmt: str) -> float:
    p, _, emax = FORMATS[fmt]
    return math.ldexp(2**p - 1, emax - p + 1)


def _pick(fl: int, rem: int, d: int, positive: bool, mode: str) -> int:
    """Integer result of rounding fl + rem / d (0 <= rem < d) in ``mode``; ``positive`` is the
    sign of the rational being rounded."""
    if rem == 0 or mode == "floor":
        return fl
    if mode == "ceil":
        return fl + 1
    toward_zero, away = (fl, fl + 1) if positive else (fl + 1, fl)
    if mode == "trunc":
        return toward_zero
    if mode == "odd":
        return toward_zero if toward_zero % 2 else away
    if 2 * rem != d:
        return fl if 2 * rem < d else fl + 1
    if mode == "rint":
        return fl if fl % 2 == 0 else fl + 1
    return away  # round: ties away from zero


def round_quotient(n: int, d: int, mode: str) -> int:
    """The rational n / d (d > 0) rounded to an integer in ``mode``."""
    fl, rem = divmod(n, d)  # floor division: 0 <= rem < d
    return _pick(fl, rem, d, n > 0, mode)


def _round_rational(n: int, d: int, fmt: str, modes: tuple[str, ...],
                    saturate: bool) -> list[float]:
    """n / d (n != 0, d > 0) rounded into ``fmt`` in each of ``modes``: floats holding the exact
    results, or +-inf."""
    p, emin, emax = FORMATS[fmt]
    a = abs(n)
    e = a.bit_length() - d.bit_length()  # floor(log2(a / d)) is e or e - 1
    if (a << max(0, -e)) < (d << max(0, e)):
        e -= 1
    q = max(e, emin) - (p - 1)  # exponent of one unit in the last place
    num, den = (n, d << q) if q >= 0 else (n << -q, d)
    fl, rem = divmod(num, den)
    mx = max_finite(fmt)
    out = []
    base = emax - (p - 1)  # max finite = (2^p - 1) * 2^base
    for mode in modes:
        r = _pick(fl, rem, den, n > 0, mode)
        if abs(r) << max(0, q - base) <= (2**p - 1) << max(0, base - q):
            value = math.ldexp(r, q)
        else:
            # IEEE: a mode rounding toward zero on this side of the axis stops at max finite
            keeps_max = mode in ("trunc", "odd") or mode == ("floor" if n > 0 else "ceil")
            value = math.copysign(mx if saturate or keeps_max else math.inf, n)
        out.append(value)
    return out


def round_float_modes(x: float, fmt: str, modes: tuple[str, ...] = MODES,
                      saturate: bool = True) -> list[float]:
    """Python float (any float64) rounded into ``fmt`` in each mode; NaN / inf pass through,
    zeros keep their sign, a zero result has the sign of ``x``."""
    if math.isnan(x) or math.isinf(x) or x == 0:
        return [x] * len(modes)
    n, d = x.as_integer_ratio()
    return [r if r != 0 else math.copysign(0.0, x)
            for r in _round_rational(n, d, fmt, modes, saturate)]


def round_float(x: float, fmt: str, mode: str, saturate: bool = True) -> float:
    """``round_float_modes`` for one mode."""
    return round_float_modes(x, fmt, (mode,), saturate)[0]


def round_int(i: int, fmt: str, mode: str, saturate: bool = True) -> float:
    """Python int rounded into ``fmt`` (0 -> +0.0)."""
    return 0.0 if i == 0 else _round_rational(i, 1, fmt, (mode,), saturate)[0]


def float_to_int(x: float, dtype: str, mode: str) -> int:
    """Python float rounded to an integer in ``mode`` and saturated; NaN -> 0, +-inf -> max/min."""
    lo, hi = INT_RANGES[dtype]
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return hi if x > 0 else lo
    n, d = x.as_integer_ratio()
    return min(hi, max(lo, round_quotient(n, d, mode)))


def decode(bits: int, fmt: str) -> float:
    """The value of a bit pattern of ``fmt`` (NaN patterns give float('nan'))."""
    p, emin, _ = FORMATS[fmt]
    ebits = {"float16": 5, "bfloat16": 8, "float32": 8}[fmt]
    sign = -1.0 if bits >> (ebits + p - 1) & 1 else 1.0
    biased = (bits >> (p - 1)) & ((1 << ebits) - 1)
    frac = bits & ((1 << (p - 1)) - 1)
    if biased == (1 << ebits) - 1:
        return math.nan if frac else sign * math.inf
    if biased == 0:
        return sign * math.ldexp(frac, emin - (p - 1))
    return sign * math.ldexp(frac | (1 << (p - 1)), biased - (1 - emin) - (p - 1))


def encode(x: float, fmt: str) -> int:
    """Bit pattern of ``x`` in ``fmt``; ``x`` must be exactly representable (or +-inf / +-0)."""
    p, emin, emax = FORMATS[fmt]
    ebits = {"float16": 5, "bfloat16": 8, "float32": 8}[fmt]
    sign = (1 << (ebits + p - 1)) if math.copysign(1.0, x) < 0 else 0
    a = abs(x)
    if math.isinf(a):
        return sign | (((1 << ebits) - 1) << (p - 1))
    if a == 0:
        return sign
    n, d = a.as_integer_ratio()
    e = n.bit_length() - d.bit_length()
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1
    if e > emax:
        raise ValueError(f"{x} overflows {fmt}")
    q = max(e, emin) - (p - 1)
    sig, rem = divmod(n << -q, d) if q < 0 else divmod(n, d << q)
    if rem:
        raise ValueError(f"{x} is not exact in {fmt}")
    if e < emin:
        return sign | sig  # subnormal: biased exponent 0
    return sign | ((e - emin + 1) << (p - 1)) | (sig - (1 << (p - 1)))
