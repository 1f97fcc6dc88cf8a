"""Every float16 bit pattern through each fp16 cast, against the pure-integer oracle (ops-semantics
0.2). The oracle results are computed once per module (cached) and compared bit for bit."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from _exact_oracle import MODES, decode, encode, max_finite, round_float_modes, round_quotient

from npusim.numerics import cast_float, float_to_int

ALL_BITS = np.arange(65536, dtype=np.uint32).astype(np.uint16)
ALL_FP16 = ALL_BITS.view(np.float16)
VALUES = [decode(b, "float16") for b in range(65536)]  # exact values, decoded without numpy
IS_NAN = np.array([math.isnan(v) for v in VALUES])
INT_TARGETS = {"int4": (-8, 7), "int8": (-128, 127), "int16": (-(2**15), 2**15 - 1),
               "int32": (-(2**31), 2**31 - 1)}


def _encode(x: float, fmt: str) -> int:
    """Memoised ``encode``; the key carries the sign because 0.0 == -0.0 as dict keys."""
    return _encode_signed(x, math.copysign(1.0, x), fmt)


@functools.cache
def _encode_signed(x: float, sign: float, fmt: str) -> int:
    return encode(math.copysign(x, sign), fmt)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view({2: np.uint16, 4: np.uint32}[a.itemsize]).astype(np.int64)


def _inputs(name: str) -> list[float]:
    return VALUES if name == "fp16" else _fp32_to_fp16_inputs().astype(np.float64).tolist()


@functools.cache
def _oracle_modes(name: str, fmt: str, saturate: bool) -> list[list[float]]:
    """Oracle results in every mode for the named input set (computed once per module). The
    saturating results are the IEEE ones with overflow to +-inf replaced by +-max finite."""
    if not saturate:
        return [round_float_modes(v, fmt, MODES, False) for v in _inputs(name)]
    mx = max_finite(fmt)
    return [[math.copysign(mx, r) if math.isinf(r) and math.isfinite(v) else r for r in rs]
            for v, rs in zip(_inputs(name), _oracle_modes(name, fmt, False), strict=True)]


def _expected_bits(name: str, fmt: str, mode: str, saturate: bool) -> np.ndarray:
    """Oracle bit patterns of the named input set rounded into ``fmt`` (-1 where NaN)."""
    i = MODES.index(mode)
    rounded = _oracle_modes(name, fmt, saturate)
    return np.array([-1 if math.isnan(r[i]) else _encode(r[i], fmt) for r in rounded], np.int64)


def _assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    nan = want == -1
    assert np.all(np.isnan(got[nan].astype(np.float32))), "NaN must stay NaN"
    bad = np.flatnonzero(_bits(got)[~nan] != want[~nan])
    assert bad.size == 0, f"{bad.size} mismatches, first at {np.flatnonzero(~nan)[bad[0]]}"


@pytest.mark.parametrize("mode", MODES)
def test_every_fp16_to_bf16(mode):
    """All 65536 fp16 patterns -> bf16 in each mode equal the exact oracle: fp16 has 3 more
    mantissa bits, so ties and sticky bits occur; fp16 subnormals become bf16 normals; inf stays
    inf and NaN stays NaN."""
    got = cast_float(ALL_FP16, "bfloat16", mode)
    _assert_bits(got, _expected_bits("fp16", "bfloat16", mode, True))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", ["float32", "float16"])
def test_every_fp16_widening_is_exact(mode, target):
    """fp16 -> fp32 (and fp16 -> fp16) is the identity on every value in every mode, signed zeros,
    subnormals, +-inf and NaN included."""
    got = cast_float(ALL_FP16, target, mode, saturate=False)
    want = np.array([-1 if math.isnan(v) else _encode(v, target) for v in VALUES], np.int64)
    _assert_bits(got, want)


@functools.cache
def _rounded_fp16(mode: str) -> list[float | int]:
    """Each fp16 value rounded to an integer (unsaturated); NaN and +-inf kept as floats."""
    out: list[float | int] = []
    for v in VALUES:
        if math.isnan(v) or math.isinf(v):
            out.append(v)
        else:
            n, d = v.as_integer_ratio()
            out.append(round_quotient(n, d, mode))
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", list(INT_TARGETS))
def test_every_fp16_to_int(mode, dtype):
    """All 65536 fp16 patterns -> int4 / int8 / int16 / int32 in each mode: exact rounding, then
    saturation to the target range; NaN -> 0, +inf -> max, -inf -> min; int4 comes back as int8."""
    lo, hi = INT_TARGETS[dtype]
    got = float_to_int(ALL_FP16, dtype, mode)
    assert got.dtype == (np.int8 if dtype == "int4" else np.dtype(dtype))
    want = [0 if isinstance(r, float) and math.isnan(r) else int(min(hi, max(lo, r)))
            for r in _rounded_fp16(mode)]
    assert got.astype(np.int64).tolist() == want


def _fp32_neighbours(a: np.ndarray) -> np.ndarray:
    f = a.astype(np.float32)
    up, down = np.float32(np.inf), np.float32(-np.inf)
    return np.concatenate([np.nextafter(f, up), np.nextafter(f, down)])


@functools.cache
def _fp32_to_fp16_inputs() -> np.ndarray:
    """Every finite fp16 value, the exact midpoints between neighbouring fp16 values (the ties),
    and the fp32 neighbours of both, on both signs; plus the overflow boundary of fp16."""
    finite = ALL_FP16[np.isfinite(ALL_FP16) & ~np.signbit(ALL_FP16)].astype(np.float32)
    grid = np.sort(finite.astype(np.float64))
    mids64 = np.concatenate([(grid[:-1] + grid[1:]) / 2, [65520.0]])  # 65520: tie past the max
    mids = mids64.astype(np.float32)
    assert np.array_equal(mids.astype(np.float64), mids64), "midpoints must be exact in fp32"
    edge = np.array([65536.0, 1e5, 2.0**-25, 2.0**-26, 3.4e38, np.inf, np.nan], np.float32)
    pos = np.concatenate([finite, mids, _fp32_neighbours(finite), _fp32_neighbours(mids), edge])
    return np.concatenate([pos, -pos]).astype(np.float32)


@pytest.mark.parametrize("saturate", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_fp32_to_fp16_values_ties_and_neighbours(mode, saturate):
    """fp32 -> fp16 in each mode, saturating or IEEE overflow, for every fp16 value, every exact
    tie between neighbouring fp16 values (subnormal ties and the 65520 tie past 65504 included)
    and the fp32 values just off them, on both signs."""
    x = _fp32_to_fp16_inputs()
    got = cast_float(x, "float16", mode, saturate=saturate)
    _assert_bits(got, _expected_bits("near_fp16", "float16", mode, saturate))


def test_fp16_overflow_boundary_examples():
    """Hand-checked rows of the rule: 65519.996 -> 65504 (below the tie); 65520 -> inf in RINT
    (tie, 65504 has an odd significand) unless saturating; CEIL 65504.5 -> inf; FLOOR -> 65504."""
    x = np.array([65519.996, 65520.0, 65504.5], np.float32)
    assert cast_float(x, "float16", "rint", saturate=False).tolist() == [65504.0, math.inf, 65504.0]
    assert cast_float(x, "float16", "rint").tolist() == [65504.0, 65504.0, 65504.0]
    assert cast_float(x, "float16", "ceil", saturate=False).tolist() == [math.inf] * 3
    assert cast_float(-x, "float16", "ceil", saturate=False).tolist() == [-65504.0] * 3
    assert cast_float(x, "float16", "floor", saturate=False).tolist() == [65504.0] * 3
    assert max_finite("float16") == 65504.0
