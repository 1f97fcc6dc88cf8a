"""Casts in every rounding mode against exact Fraction oracles (ops-semantics 0.2)."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from _exact_oracle import round_fraction, round_to_format
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics import RoundMode, cast_float, float_to_int, round_to_integral

MODES = ["rint", "round", "trunc", "floor", "ceil", "odd"]
ALL_FP16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
FINITE_FP16 = ALL_FP16[np.isfinite(ALL_FP16)]


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16 if a.itemsize == 2 else np.uint32)


def _expected(values, fmt: str, mode: str, saturate: bool, dtype) -> np.ndarray:
    out = []
    for v in values:
        r = round_to_format(Fraction(float(v)), fmt, mode, saturate)
        out.append(np.copysign(0.0, float(v)) if r == 0 else float(r))  # IEEE signed zero
    return np.array(out, dtype=np.float64).astype(dtype)


@pytest.mark.parametrize("mode", MODES)
def test_every_fp16_to_bf16(mode):
    """All 65536 fp16 patterns -> bf16 in each mode equal the exact oracle (NaN stays NaN)."""
    got = cast_float(ALL_FP16, "bfloat16", mode)
    assert np.all(np.isnan(got[np.isnan(ALL_FP16)].astype(np.float32)))
    fin = np.isfinite(ALL_FP16)
    want = _expected(ALL_FP16[fin], "bfloat16", mode, True, ml_dtypes.bfloat16)
    assert np.array_equal(_bits(got[fin]), _bits(want))
    assert np.array_equal(
        _bits(got[np.isinf(ALL_FP16)]),
        _bits(ALL_FP16[np.isinf(ALL_FP16)].astype(ml_dtypes.bfloat16)),
    )


def test_every_fp16_to_fp32_is_exact():
    """fp16 -> fp32 is the identity on the value, for all 65536 patterns."""
    got = cast_float(ALL_FP16, "float32", "rint")
    fin = np.isfinite(ALL_FP16)
    assert all(
        Fraction(float(a)) == Fraction(float(b))
        for a, b in zip(got[fin][::97], ALL_FP16[fin][::97], strict=True)
    )
    assert np.array_equal(got[fin].astype(np.float64), ALL_FP16[fin].astype(np.float64))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "dtype,lo,hi", [("int8", -128, 127), ("int4", -8, 7), ("int32", -(2**31), 2**31 - 1)]
)
def test_every_fp16_to_int(mode, dtype, lo, hi):
    """All finite fp16 -> int8 / int4 / int32 in each mode: exact rounding, then saturation."""
    got = float_to_int(FINITE_FP16, dtype, mode)
    want = [min(hi, max(lo, round_fraction(Fraction(float(v)), mode))) for v in FINITE_FP16]
    assert got.astype(np.int64).tolist() == want


def test_fp16_int_nan_inf():
    """NaN -> 0, +inf -> max, -inf -> min (saturating casts)."""
    x = np.array([np.nan, np.inf, -np.inf], np.float16)
    assert float_to_int(x, "int8").tolist() == [0, 127, -128]


@pytest.mark.parametrize("mode", MODES)
def test_fp32_ties_between_fp16_neighbours(mode):
    """Exact midpoints between neighbouring fp16 values (and values just off them) round to fp16
    as the oracle says, including subnormals and the overflow boundary."""
    a = FINITE_FP16[(FINITE_FP16 >= 0)].astype(np.float64)
    a = np.sort(a)
    mids = (a[:-1] + a[1:]) / 2
    sample = np.concatenate(
        [
            mids,
            np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
            [65520.0, 65519.0, -65520.0],
        ]
    )
    sample = np.concatenate([sample, -sample]).astype(np.float32)
    got = cast_float(sample, "float16", mode, saturate=False)
    want = _expected(sample, "float16", mode, False, np.float16)
    assert np.array_equal(_bits(got), _bits(want))


@settings(max_examples=300, deadline=None)
@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.sampled_from(MODES),
    st.sampled_from(["bfloat16", "float16"]),
    st.booleans(),
)
def test_fp32_to_narrow_property(x, mode, fmt, saturate):
    """fp32 -> bf16 / fp16 in any mode equals the exact oracle (saturating or IEEE overflow)."""
    arr = np.array([x], np.float32)
    dt = ml_dtypes.bfloat16 if fmt == "bfloat16" else np.float16
    got = cast_float(arr, fmt, mode, saturate=saturate)
    want = _expected(arr, fmt, mode, saturate, dt)
    assert _bits(got).tolist() == _bits(want).tolist()


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(MODES))
def test_int32_to_fp32_and_fp16_property(i, mode):
    """int32 -> fp32 / fp16 rounding (|i| > 2^24 is inexact in fp32) matches the oracle."""
    arr = np.array([i], np.int32)
    for fmt, dt in (("float32", np.float32), ("float16", np.float16)):
        got = cast_float(arr, fmt, mode, saturate=True)
        want = np.array([float(round_to_format(Fraction(i), fmt, mode, True))], dt)  # i=0: +0
        assert _bits(got).tolist() == _bits(want).tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.sampled_from(MODES),
)
def test_float64_to_fp32_and_int32(x, mode):
    """float64 -> fp32 and -> int32 (saturating) match the oracle."""
    arr = np.array([x], np.float64)
    got = cast_float(arr, "float32", mode)
    r = round_to_format(Fraction(x), "float32", mode, True)
    want = np.array([np.copysign(0.0, x) if r == 0 else float(r)], np.float32)
    assert _bits(got).tolist() == _bits(want).tolist()
    gi = float_to_int(arr, "int32", mode)
    wi = min(2**31 - 1, max(-(2**31), round_fraction(Fraction(x), mode)))
    assert int(gi[0]) == wi


def test_round_half_away_is_not_float_plus_half():
    """CAST_ROUND on 0.49999997f gives 0 (adding 0.5 in fp32 would give 1)."""
    assert round_to_integral(np.array([0.49999997], np.float32), RoundMode.ROUND)[0] == 0.0


def test_unsaturated_out_of_range_raises():
    """saturate=False names the value and the range."""
    with pytest.raises(ValueError, match=r"outside the int8 range \[-128, 127\]"):
        float_to_int(np.array([300.0]), "int8", saturate=False)
