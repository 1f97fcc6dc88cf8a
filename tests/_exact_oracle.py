"""Exact rounding oracles on fractions.Fraction / Python ints, independent of npusim.numerics."""

from __future__ import annotations

import math
from fractions import Fraction

# (precision incl. implicit bit, min normal exponent, max finite)
FORMATS = {
    "float16": (11, -14, Fraction(65504)),
    "bfloat16": (8, -126, Fraction((2**8 - 1) * 2 ** (127 - 7))),
    "float32": (24, -126, Fraction((2**24 - 1) * 2 ** (127 - 23))),
}


def round_fraction(x: Fraction, mode: str) -> int:
    """Round a rational to an integer in mode rint / round / trunc / floor / ceil / odd."""
    fl = x.numerator // x.denominator
    frac = x - fl
    if mode == "floor":
        return fl
    if mode == "ceil":
        return fl + (1 if frac else 0)
    tr = fl if x >= 0 or not frac else fl + 1
    if mode == "trunc":
        return tr
    if mode == "odd":
        return tr if (tr % 2 or tr == x) else tr + (1 if x > 0 else -1)
    half = Fraction(1, 2)
    if frac > half:
        return fl + 1
    if frac < half:
        return fl
    if mode == "rint":
        return fl if fl % 2 == 0 else fl + 1
    return fl + 1 if x > 0 else fl  # round: ties away from zero


def round_to_format(x: Fraction, fmt: str, mode: str, saturate: bool = True):
    """Exact value of x rounded into a float format; returns a Fraction or +-math.inf."""
    p, emin, mx = FORMATS[fmt]
    if x == 0:
        return Fraction(0)
    e = math.floor(math.log2(abs(x)))
    if Fraction(2) ** e > abs(x):
        e -= 1
    elif Fraction(2) ** (e + 1) <= abs(x):
        e += 1
    q = max(e, emin) - (p - 1)
    r = round_fraction(x / Fraction(2) ** q, mode) * Fraction(2) ** q
    if abs(r) > mx:
        if saturate or mode in ("trunc", "odd"):
            return mx if r > 0 else -mx
        if mode in ("rint", "round"):
            return math.inf if r > 0 else -math.inf
        if mode == "floor":
            return mx if r > 0 else -math.inf
        return math.inf if r > 0 else -mx
    return r
