"""Cube-unit matmul numerics: exact integer matmuls and the declared floating accumulation models.

The cube's internal fp32 summation order is not published (ops-semantics 7.1), so npusim implements
an explicit, named model chosen in the SoC descriptor (``numerics.cube_accumulation.model``):

``fractal_exact_fp32_sequential`` (default)
    For each k-fractal (k0 consecutive k indices, k0 = 32 B / itemsize = 16 for fp16/bf16), the k0
    products are summed *exactly* and the sum is rounded once to fp32 (RNE). Fractal sums are added
    into the fp32 L0C accumulator in increasing k order, each add rounded to fp32 (RNE). A bias, if
    any, is the accumulator's initial value.
``exact_round_once``
    The whole dot product (plus bias) is computed exactly and rounded once to fp32 (RNE).

Both are implemented exactly (not approximately): fractal sums are computed with float64 BLAS and
*certified* against a rigorous error bound; the rare entries the bound cannot certify are recomputed
with Python integers. Results are therefore independent of the BLAS library and thread count.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

CUBE_ACCUMULATION_MODELS = ("fractal_exact_fp32_sequential", "exact_round_once")

_F64_EPS = 2.0**-52


def cube_matmul_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul (int8/int4 x int8/int4 -> int32 as on the cube).

    Uses float32 BLAS while every partial sum stays below 2^24 (int8 x int8 blocks of K <= 1024),
    float64 BLAS below 2^53 (always true for |a|, |b| <= 128 and K <= 2^38), an int64 matmul
    otherwise - each exact. Wraps to int32 like
    the L0C register.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"cube_matmul_int: shapes {a.shape} x {b.shape} do not form a matmul")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise TypeError(f"cube_matmul_int: integer inputs required, got {a.dtype} and {b.dtype}")
    k = a.shape[1]
    amax = int(np.abs(a.astype(np.int64)).max(initial=0))
    bmax = int(np.abs(b.astype(np.int64)).max(initial=0))
    bound = amax * bmax * max(k, 1)
    if bound < 2**24:  # every partial sum is an integer exact in float32
        out = a.astype(np.float32) @ b.astype(np.float32)
        return out.astype(np.int64).astype(np.int32)
    if bound < 2**53:
        out64 = a.astype(np.float64) @ b.astype(np.float64)
        return out64.astype(np.int64).astype(np.int32)
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


def _round_fraction_to_f32(value: Fraction) -> np.float32:
    """Round an exact rational to the nearest float32, ties to even (incl. subnormals, overflow)."""
    if value == 0:
        return np.float32(0.0)
    sign = -1 if value < 0 else 1
    mag = abs(value)
    # Exponent e with 2^e <= mag < 2^(e+1).
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** e > mag:
        e -= 1
    e = max(e, -126)  # subnormal range keeps the quantum 2^-149
    quantum = Fraction(2) ** (e - 23)
    q, r = divmod(mag, quantum)
    q = int(q)
    if r * 2 > quantum or (r * 2 == quantum and q % 2 == 1):
        q += 1
    result = float(q * quantum)  # exact in float64
    if result > float(np.finfo(np.float32).max):
        return np.float32(sign * np.inf)
    return np.float32(sign * result)


def _exact_dot(a_row: np.ndarray, b_col: np.ndarray, init: float = 0.0) -> Fraction:
    total = Fraction(init)
    for x, y in zip(a_row.tolist(), b_col.tolist(), strict=True):
        total += Fraction(x) * Fraction(y)
    return total


def _certified_round(
    s: np.ndarray, bound: np.ndarray, fix: Any, shape: tuple[int, int]
) -> np.ndarray:
    """Round float64 approximations ``s`` (|s - exact| <= bound) to float32, exactly.

    Entries whose rounding the bound cannot certify are recomputed by ``fix(i, j) -> np.float32``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        r = s.astype(np.float32)
        # an exact float64 value (bound 0): the cast itself is correctly rounded; only the other
        # entries are tested, gathered
        test = np.nonzero(bound != 0.0)
        if test[0].size:
            st, bt, rt = s[test], bound[test], r[test]
            lo = np.nextafter(rt, np.float32(-np.inf)).astype(np.float64)
            hi = np.nextafter(rt, np.float32(np.inf)).astype(np.float64)
            r64 = rt.astype(np.float64)
            ok = (np.abs(st - (r64 + lo) / 2.0) > bt) & (np.abs(st - (r64 + hi) / 2.0) > bt)
            ok &= np.isfinite(r64)
            ok |= ~np.isfinite(st)  # inf / NaN inputs propagate as IEEE arithmetic does
            for i, j in zip(*(t[~ok] for t in test), strict=True):
                r[i, j] = fix(int(i), int(j))
    return r.reshape(shape)


_PRECISION = {"float16": (11, -24), "bfloat16": (8, -133), "float32": (24, -149)}


def _min_lsb(x64: np.ndarray, dtype: np.dtype, axis: int) -> np.ndarray | None:
    """Smallest unit in the last place over ``axis`` (nonzero entries), or None if unknown."""
    prec = _PRECISION.get(np.dtype(dtype).name)
    if prec is None:
        return None
    p, emin = prec
    _, e = np.frexp(np.where(x64 == 0, 1.0, x64))
    lsb = np.exp2(np.maximum(e - p, emin).astype(np.float64))
    lsb = np.where(x64 == 0, np.inf, lsb)
    smallest: np.ndarray = lsb.min(axis=axis)
    return smallest


def _fractal_sum_f32(a64: np.ndarray, b64: np.ndarray, dta: Any = None,
                     dtb: Any = None) -> np.ndarray:
    """Exact sum of products over one k-fractal, rounded once to fp32."""
    s = a64 @ b64
    k = a64.shape[1]
    # Each product is exact in float64 (<= 2x24 significant bits); the BLAS sum of k terms has an
    # error of at most (k-1) * eps * sum|a||b| in any order.
    absum = np.abs(a64) @ np.abs(b64)
    bound = (k * _F64_EPS) * absum
    if dta is not None:
        la, lb = _min_lsb(a64, dta, 1), _min_lsb(b64, dtb, 0)
        if la is not None and lb is not None:
            # Every product is a multiple of la*lb; below 2^53 of that quantum all partial sums
            # are exact in float64, whatever the order: the bound is then zero.
            with np.errstate(invalid="ignore", over="ignore"):
                exact = absum < np.outer(la, lb) * 2.0**53
            bound = np.where(exact, 0.0, bound)

    def fix(i: int, j: int) -> np.float32:
        return _round_fraction_to_f32(_exact_dot(a64[i], b64[:, j]))

    return _certified_round(s, bound, fix, s.shape)


def cube_matmul_float(
    a: np.ndarray,
    b: np.ndarray,
    *,
    model: str = "fractal_exact_fp32_sequential",
    bias: np.ndarray | None = None,
    k0: int = 16,
) -> np.ndarray:
    """fp16/bf16 (or fp32) matmul with fp32 accumulation in the declared cube model.

    ``a`` is (M, K), ``b`` is (K, N); ``bias`` (N,) or (M, N) float32 initialises the accumulator.
    Returns the float32 L0C contents (M, N).
    """
    if model not in CUBE_ACCUMULATION_MODELS:
        raise NotImplementedError(
            f"cube accumulation model {model!r} is not implemented; choose one of "
            f"{CUBE_ACCUMULATION_MODELS}"
        )
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"cube_matmul_float: shapes {a.shape} x {b.shape} do not form a matmul")
    m, k = a.shape
    n = b.shape[1]
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    acc = np.zeros((m, n), dtype=np.float32)
    if bias is not None:
        acc = acc + np.broadcast_to(np.asarray(bias, dtype=np.float32), (m, n))
    if model == "exact_round_once":
        s = acc.astype(np.float64) + a64 @ b64
        bound = ((k + 1) * _F64_EPS) * (np.abs(acc.astype(np.float64)) + np.abs(a64) @ np.abs(b64))

        def fix(i: int, j: int) -> np.float32:
            return _round_fraction_to_f32(_exact_dot(a64[i], b64[:, j], float(acc[i, j])))

        return _certified_round(s, bound, fix, (m, n))
    nf = -(-k // k0)
    chunk = max(1, _CHUNK_BYTES // (k0 * (m + n) * 8))
    limit = 2.0**53 / k0
    for f0 in range(0, nf, chunk):
        f1 = min(nf, f0 + chunk)
        lo, hi = f0 * k0, min(k, f1 * k0)
        ra, rb = _ulp_ratios(a64[:, lo:hi], b64[lo:hi], a.dtype, b.dtype, k0)
        for f in range(f0, f1):
            sl = slice(f * k0, (f + 1) * k0)
            with np.errstate(invalid="ignore", over="ignore"):
                rows_exact = ra[f - f0] * rb[f - f0].max(initial=0.0) < limit
            part = (a64[:, sl] @ b64[sl, :]).astype(np.float32)  # exact rows: correctly rounded
            if not rows_exact.all():
                bad = np.flatnonzero(~rows_exact)
                part[bad] = _fractal_sum_f32(a64[bad, sl], b64[sl, :], a.dtype, b.dtype)
            acc = (acc + part).astype(np.float32)
    return acc


_CHUNK_BYTES = 64 << 20  # operand bytes whose ulp ratios are computed at once


def _ulp_ratios(a64: np.ndarray, b64: np.ndarray, dta: Any, dtb: Any, k0: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per k-fractal f: ``ra[f, i] = amax_i / ulp_i`` over row i of A's fractal columns and
    ``rb[f, j] = bmax_j / ulp_j`` over column j of B's fractal rows (ulp: the smallest nonzero
    unit in the last place; 0 for an all-zero row, inf when unknown or not finite).

    Each product of row i and column j is a multiple of ulp_i * ulp_j and the sum of the
    |products| is at most k0 * amax_i * bmax_j, so ``ra[f, i] * rb[f, j] * k0 < 2^53`` proves
    every partial sum of that entry exact in float64 in any order (the argument of
    :func:`_fractal_sum_f32`'s per-entry rule, with a cheaper bound): its float32 cast is the
    correctly rounded exact sum."""
    m, k = a64.shape
    n = b64.shape[1]
    nf = -(-k // k0)
    known = (_PRECISION.get(np.dtype(dta).name) is not None
             and _PRECISION.get(np.dtype(dtb).name) is not None)
    if not known:
        return np.full((nf, m), np.inf), np.full((nf, n), np.inf)
    pad = nf * k0 - k

    def ratio(x64: np.ndarray, dtype: Any, axis: int) -> np.ndarray:
        p, emin = _PRECISION[np.dtype(dtype).name]
        with np.errstate(invalid="ignore", over="ignore"):
            mag = np.abs(x64)
            _, e = np.frexp(np.where(mag == 0, 1.0, mag))
            lsb = np.where(mag == 0, np.inf, np.exp2(np.maximum(e - p, emin).astype(np.float64)))
            big = mag.max(axis=axis)
            r = np.where(big == 0, 0.0, big / lsb.min(axis=axis))
        return np.where(np.isfinite(r), r, np.inf)

    ra = ratio(np.pad(a64, ((0, 0), (0, pad))).reshape(m, nf, k0), dta, 2).T  # (nf, m)
    rb = ratio(np.pad(b64, ((0, pad), (0, 0))).reshape(nf, k0, n), dtb, 1)  # (nf, n)
    return ra, rb
