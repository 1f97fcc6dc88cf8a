"""Hypothesis properties of the casts other than the exhaustive fp16 ones (ops-semantics 0.2),
against the pure-integer oracle: exact ties, subnormals, overflow / saturation, NaN and inf."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from _exact_oracle import (
    FORMATS,
    INT_RANGES,
    MODES,
    decode,
    encode,
    round_float,
    round_int,
)
from _exact_oracle import (
    float_to_int as oracle_float_to_int,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics import RoundMode, cast_float, float_to_int, round_to_integral

NP_FLOAT = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}
modes = st.sampled_from(MODES)
PROPS = settings(max_examples=150, deadline=None)


def _bits(a: np.ndarray) -> list[int]:
    return a.view({2: np.uint16, 4: np.uint32}[a.itemsize]).astype(np.int64).tolist()


def _want_bits(results: list[float], fmt: str) -> list[int]:
    return [-1 if math.isnan(r) else encode(r, fmt) for r in results]


def _check(got: np.ndarray, results: list[float], fmt: str) -> None:
    """Bit-exact comparison with the oracle results; NaN results only need to be NaN."""
    want = _want_bits(results, fmt)
    have = _bits(got)
    for i, (h, w) in enumerate(zip(have, want, strict=True)):
        if w == -1:
            assert math.isnan(decode(h, fmt)), f"element {i}: NaN expected"
        else:
            assert h == w, f"element {i}: got {h:#x}, want {w:#x}"


@st.composite
def near_ties(draw, fmt: str, src_precision: int, src_exp_min: int):
    """Exact midpoints between neighbouring ``fmt`` values (normal, subnormal and the tie past the
    largest finite value), as float64 Python floats, or a value a few source ulps off one.
    The source format has ``src_precision`` bits and its smallest ulp is 2^``src_exp_min``."""
    p, emin, emax = FORMATS[fmt]
    e = draw(st.integers(emin - p, emax))
    q = max(e, emin) - (p - 1)
    t = draw(st.integers(0, 2**p - 1))
    mid = math.ldexp(2 * t + 1, q - 1)
    if draw(st.booleans()):  # nudge by a few ulps of the source format
        ulp = math.ldexp(1.0, max(math.frexp(mid)[1] - src_precision, src_exp_min))
        mid += draw(st.integers(-2, 2)) * ulp
    return -mid if draw(st.booleans()) else mid


fp32_values = st.floats(width=32, allow_nan=True, allow_infinity=True)


@PROPS
@given(st.lists(fp32_values | near_ties("bfloat16", 24, -149) | near_ties("float16", 24, -149),
                min_size=1, max_size=16),
       modes, st.sampled_from(["bfloat16", "float16"]), st.booleans())
def test_fp32_to_bf16_and_fp16(xs, mode, fmt, saturate):
    """fp32 -> bf16 / fp16 in any mode equals the oracle: ties, subnormals, overflow (saturating
    or IEEE), NaN stays NaN and +-inf stays +-inf."""
    x = np.array(xs, np.float32)
    got = cast_float(x, fmt, mode, saturate=saturate)
    assert got.dtype == NP_FLOAT[fmt]
    _check(got, [round_float(v, fmt, mode, saturate) for v in x.astype(np.float64).tolist()], fmt)


float64_values = st.floats(allow_nan=True, allow_infinity=True)


@PROPS
@given(st.lists(float64_values | near_ties("float32", 53, -1074) | near_ties("bfloat16", 53, -1074),
                min_size=1, max_size=16),
       modes, st.sampled_from(["float32", "bfloat16", "float16"]), st.booleans())
def test_float64_to_narrow(xs, mode, fmt, saturate):
    """float64 -> fp32 / bf16 / fp16 in any mode equals the oracle over the whole float64 range,
    float64 subnormals and values far beyond the target range included."""
    got = cast_float(np.array(xs, np.float64), fmt, mode, saturate=saturate)
    _check(got, [round_float(v, fmt, mode, saturate) for v in xs], fmt)


@PROPS
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=32), modes, st.booleans())
def test_bf16_to_fp16(patterns, mode, saturate):
    """bf16 -> fp16 (wider exponent, narrower range): overflow past 65504, fp16 subnormals and
    flush-free underflow follow the oracle; bf16 -> fp32 is exact."""
    x = np.array(patterns, np.uint16).view(ml_dtypes.bfloat16)
    values = [decode(b, "bfloat16") for b in patterns]
    _check(cast_float(x, "float16", mode, saturate=saturate),
           [round_float(v, "float16", mode, saturate) for v in values], "float16")
    _check(cast_float(x, "float32", mode), values, "float32")


int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)


@st.composite
def int_ties(draw, bits: int):
    """Integers that are exact ties (or one off) between neighbouring fp32 / bf16 / fp16 values:
    (2t + 1) * 2^(s - 1) with t < 2^p, within a ``bits``-bit signed range."""
    p = draw(st.sampled_from([24, 11, 8]))
    s = draw(st.integers(1, bits - 1 - p))
    t = draw(st.integers(2 ** (p - 1), 2**p - 1))
    v = (2 * t + 1) * 2 ** (s - 1) + draw(st.integers(-1, 1))
    v = -v if draw(st.booleans()) else v
    return max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, v))


@PROPS
@given(st.lists(int32s | int_ties(32), min_size=1, max_size=16), modes)
def test_int32_to_floats(values, mode):
    """int32 -> fp32 / bf16 / fp16 (|i| > 2^24 is inexact in fp32; fp16 overflows past 65504)."""
    arr = np.array(values, np.int32)
    for fmt in ("float32", "bfloat16", "float16"):
        for saturate in (True, False):
            _check(cast_float(arr, fmt, mode, saturate=saturate),
                   [round_int(i, fmt, mode, saturate) for i in values], fmt)


@PROPS
@given(st.lists(int64s | int_ties(64), min_size=1, max_size=16), modes)
def test_int64_to_floats_beyond_2_53(values, mode):
    """int64 -> fp32 / bf16 / fp16 rounds correctly in every mode, also beyond 2^53 where float64
    cannot hold the value (no double rounding)."""
    arr = np.array(values, np.int64)
    for fmt in ("float32", "bfloat16", "float16"):
        _check(cast_float(arr, fmt, mode), [round_int(i, fmt, mode) for i in values], fmt)


@PROPS
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=16), modes)
def test_uint64_to_fp32(values, mode):
    """uint64 -> fp32 rounds correctly up to 2^64 - 1."""
    got = cast_float(np.array(values, np.uint64), "float32", mode)
    _check(got, [round_int(i, "float32", mode) for i in values], "float32")


def test_int64_tie_examples():
    """No double rounding through float64: 2^60 + 2^52 + 1 lies just above a bf16 tie and rounds
    up (float64 would first make it the tie 2^60 + 2^52, which RINT sends down to 2^60);
    the exact tie goes to the even 2^60; -2^63 is exact."""
    x = np.array([2**60 + 2**52 + 1, 2**60 + 2**52, -(2**63)], np.int64)
    got = cast_float(x, "bfloat16", "rint").astype(np.float64).tolist()
    assert got == [2.0**60 + 2.0**53, 2.0**60, -(2.0**63)]


@st.composite
def half_integers(draw, limit: int):
    """n + 1/2 ties and their float32 neighbours."""
    v = draw(st.integers(-limit, limit)) + 0.5
    return float(np.nextafter(np.float32(v), np.float32(draw(st.sampled_from([v, -1e9, 1e9])))))


@PROPS
@given(st.lists(fp32_values | half_integers(2**22), min_size=1, max_size=16), modes,
       st.sampled_from(["int8", "int16", "int32", "int64", "int4"]))
def test_fp32_to_int(xs, mode, dtype):
    """fp32 -> int in any mode: exact rounding then saturation; NaN -> 0; +-inf -> max / min."""
    x = np.array(xs, np.float32)
    want = [oracle_float_to_int(v, dtype, mode) for v in x.astype(np.float64).tolist()]
    assert float_to_int(x, dtype, mode).astype(np.int64).tolist() == want


@PROPS
@given(st.lists(float64_values | st.sampled_from([2.0**63, -(2.0**63), 2.0**31, -(2.0**31) - 1,
                                                  2.0**31 - 0.5, 2.0**63 - 1024]),
                min_size=1, max_size=16), modes, st.sampled_from(["int32", "int64"]))
def test_float64_to_int32_int64(xs, mode, dtype):
    """float64 -> int32 / int64 saturates at exactly the range ends (2^63 itself is out of range
    for int64 and must give the max, not wrap)."""
    want = [oracle_float_to_int(v, dtype, mode) for v in xs]
    assert float_to_int(np.array(xs, np.float64), dtype, mode).astype(np.int64).tolist() == want


@PROPS
@given(st.lists(float64_values, min_size=1, max_size=16), modes)
def test_round_to_integral(xs, mode):
    """round_to_integral equals exact integer rounding; NaN / inf pass through; a zero result
    keeps the sign of the input."""
    got = round_to_integral(np.array(xs, np.float64), mode).tolist()
    for x, g in zip(xs, got, strict=True):
        if math.isnan(x):
            assert math.isnan(g)
        elif math.isinf(x):
            assert g == x
        else:
            want = oracle_float_to_int(x, "int64", mode) if abs(x) < 2**62 else x  # big: integral
            assert g == want and (g != 0 or math.copysign(1, g) == math.copysign(1, x))


@PROPS
@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=16), modes,
       st.sampled_from(["int8", "int4", "int16"]))
def test_int_to_int_saturates(values, mode, dtype):
    """Integer inputs are exact; only saturation applies (the mode does not matter)."""
    lo, hi = INT_RANGES[dtype]
    got = float_to_int(np.array(values, np.int32), dtype, mode).astype(np.int64).tolist()
    assert got == [min(hi, max(lo, v)) for v in values]


def test_round_odd_to_integer_examples():
    """ODD to an integer: truncate toward zero, then step away from zero if inexact and even."""
    x = np.array([2.5, 3.5, 4.0, -2.5, -0.2, 0.0, 2.0000001], np.float64)
    assert float_to_int(x, "int32", "odd").tolist() == [3, 3, 4, -3, -1, 0, 3]


def test_cast_round_is_half_away_from_zero():
    """CAST_ROUND: 2.5 -> 3, -2.5 -> -3, and 0.49999997f -> 0 (adding 0.5 in fp32 would give 1)."""
    x = np.array([2.5, -2.5, 0.49999997], np.float32)
    assert round_to_integral(x, RoundMode.ROUND).tolist() == [3.0, -3.0, 0.0]


def test_saturate_false_raises_with_value_and_range():
    """saturate=False: out-of-range and inf raise ValueError naming x, the value and the range;
    NaN still gives 0."""
    with pytest.raises(ValueError, match=r"x: value 300\.0 at index \(1,\) is outside the int8 "
                                         r"range \[-128, 127\]"):
        float_to_int(np.array([1.0, 300.0]), "int8", saturate=False)
    with pytest.raises(ValueError, match="outside the int4 range"):
        float_to_int(np.array(np.inf), "int4", saturate=False)
    assert float_to_int(np.array([np.nan]), "int8", saturate=False).tolist() == [0]


def test_uint8_target_saturates_to_0_255():
    """uint8 (npu_quantize's torch.quint8 output Cast): RINT, clamped to [0, 255], NaN -> 0."""
    got = float_to_int(np.array([-1.5, 0.5, 1.5, 254.5, 300.0, np.inf, np.nan], np.float16),
                       "uint8")
    assert got.dtype == np.uint8 and got.tolist() == [0, 0, 2, 254, 255, 255, 0]


def test_bad_arguments():
    """Unknown modes and targets raise ValueError naming the argument; unsupported input dtypes
    raise TypeError; integers beyond 2^53 cannot become exact float64 integral values."""
    with pytest.raises(ValueError, match="mode: 'half_up'"):
        cast_float(np.zeros(2, np.float32), "float16", "half_up")
    with pytest.raises(ValueError, match="dtype: 'int8' is not a float target"):
        cast_float(np.zeros(2, np.float32), "int8")
    with pytest.raises(ValueError, match="dtype: 'uint16' is not an integer target"):
        float_to_int(np.zeros(2, np.float32), "uint16")
    with pytest.raises(TypeError, match="x: dtype complex128"):
        cast_float(np.zeros(2, complex), "float32")
    with pytest.raises(ValueError, match="x: integer 9007199254740993 at index"):
        round_to_integral(np.array([2**53 + 1], np.int64), "rint")
