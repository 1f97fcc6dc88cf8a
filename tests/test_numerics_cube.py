"""Cube matmul numerics: exact integer matmul and the declared fp32 accumulation models."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics.cube import cube_matmul_float, cube_matmul_int


def _f32_from_fraction(value: Fraction) -> np.float32:
    """Independent oracle: nearest float32 (ties to even) by search over float32 neighbours."""
    guess = np.float32(float(value))  # may be off by one ulp through double rounding
    cands = [
        np.nextafter(guess, np.float32(-np.inf)),
        guess,
        np.nextafter(guess, np.float32(np.inf)),
    ]
    best = min(
        cands, key=lambda c: (abs(Fraction(float(c)) - value), int(np.array(c).view(np.uint32)) & 1)
    )
    return np.float32(best)


def _oracle_fractal(a: np.ndarray, b: np.ndarray, bias: np.ndarray, k0: int) -> np.ndarray:
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.float32)
    for i in range(m):
        for j in range(n):
            acc = np.float32(bias[j])
            for s in range(0, k, k0):
                part = sum(
                    (
                        Fraction(float(a[i, t])) * Fraction(float(b[t, j]))
                        for t in range(s, min(k, s + k0))
                    ),
                    Fraction(0),
                )
                acc = np.float32(acc + _f32_from_fraction(part))
            out[i, j] = acc
    return out


def test_int_matmul_is_exact_int32():
    """int8 x int8 -> int32 equals the Python-integer dot product."""
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (5, 700), dtype=np.int8)
    b = rng.integers(-128, 128, (700, 3), dtype=np.int8)
    got = cube_matmul_int(a, b)
    want = [
        [sum(int(a[i, t]) * int(b[t, j]) for t in range(700)) for j in range(3)] for i in range(5)
    ]
    assert got.dtype == np.int32
    assert got.tolist() == want


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([1, 255, 1023, 1024, 1025, 5000]),
       dtype=st.sampled_from(["int8", "uint8", "int32"]), extreme=st.booleans())
def test_int_matmul_exact_on_every_blas_path(seed, k, dtype, extreme):
    """Whichever path the magnitude bound picks (float32 BLAS, float64 BLAS, int64), the result
    is the int64 product wrapped to int32 - including K around the 2^24 float32 limit of int8
    and all-extreme values (-128 x -128)."""
    rng = np.random.default_rng(seed)
    lo, hi = {"int8": (-128, 128), "uint8": (0, 256), "int32": (-5000, 5000)}[dtype]
    a = rng.integers(lo, hi, (3, k)).astype(dtype)
    b = rng.integers(lo, hi, (k, 2)).astype(dtype)
    if extreme:
        a[:] = lo if dtype != "uint8" else 255
        b[:] = lo if dtype != "uint8" else 255
    want = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    got = cube_matmul_int(a, b)
    assert got.dtype == np.int32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 3),
    k=st.integers(1, 40),
    n=st.integers(1, 3),
    dtype=st.sampled_from(["float16", "bfloat16"]),
    spread=st.integers(0, 26),
)
def test_fractal_model_matches_fraction_oracle(seed, m, k, n, dtype, spread):
    """fractal_exact_fp32_sequential: each 16-wide k chunk summed exactly, one fp32 rounding, then
    sequential fp32 adds - bit for bit, including wide exponent spreads that defeat float64 sums."""
    rng = np.random.default_rng(seed)
    dt = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    # exponents spread over up to 2^26 (fp16 stays finite: |x| < 2^13 * 8)
    scale = np.exp2(rng.integers(-spread // 2, spread // 2 + 1, (m, k)).astype(np.float64))
    a = (rng.standard_normal((m, k)) * scale).astype(np.float32).astype(dt)
    b = rng.standard_normal((k, n)).astype(np.float32).astype(dt)
    bias = rng.standard_normal(n).astype(np.float32)
    got = cube_matmul_float(a, b, bias=bias)
    want = _oracle_fractal(a, b, bias, 16)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_round_once_model_cancellation():
    """exact_round_once: catastrophic cancellation is resolved exactly (1 + 2^-30 - 1 = 2^-30)."""
    a = np.array([[1.0, 2.0**-15, -1.0]], dtype=np.float16)
    b = np.array([[1.0], [2.0**-15], [1.0]], dtype=np.float16)
    got = cube_matmul_float(a, b, model="exact_round_once")
    assert got[0, 0] == np.float32(2.0**-30)


def test_unknown_model_is_not_implemented():
    """An undeclared accumulation model is refused, never approximated."""
    with pytest.raises(NotImplementedError, match="accumulation model"):
        cube_matmul_float(np.zeros((1, 1), np.float16), np.zeros((1, 1), np.float16), model="tree")


def test_ulp_ratio_certificate_both_ways():
    """The per-row certificate (row's max / ulp x the largest column max / ulp x k0 < 2^53)
    holds for ordinary fp16 data - those rows skip the per-entry rounding check - and fails
    for a row whose exponent spread defeats float64 against those columns, which takes the
    certified per-entry path; the oracle test above covers both."""
    from npusim.numerics.cube import _ulp_ratios

    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 32)).astype(np.float16).astype(np.float64)
    b = rng.standard_normal((32, 5)).astype(np.float16).astype(np.float64)

    def rows_exact():
        ra, rb = _ulp_ratios(a, b, np.float16, np.float16, 16)
        return (ra * rb.max(axis=1, keepdims=True) * 16 < 2.0**53).tolist()

    assert rows_exact() == [[True] * 4, [True] * 4]
    a[1, 20] = 2.0**-24  # fp16's smallest subnormal beside 2^15 in row 1, fractal 1
    a[1, 21] = 2.0**15
    assert rows_exact() == [[True] * 4, [True, False, True, True]]
