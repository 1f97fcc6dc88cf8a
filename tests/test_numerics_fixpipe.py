"""The FixPipe quant parameter (ops-semantics 0.2, 3.2, 8.2): 19-bit scale, uint64 layout, REQ8 /
QF322B8_PRE requantisation and DEQF16, against integer oracles and the worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _exact_oracle import float_to_int as oracle_float_to_int
from _exact_oracle import round_float, round_int
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics import (
    decode_quant_param,
    deqf16,
    encode_quant_param,
    fp19_bits,
    requant_int8,
)

PROPS = settings(max_examples=150, deadline=None)

WORKED = [  # ops-semantics 8.2: (scale, offset or None, round_mode, int64)
    (1.0, 1.0, 0, 70507248484352),
    (1.0, None, 0, 70369809530880),
    (0.1, None, 0, 70369781006336),
    (0.1, -2.5, 0, 140463647277056),
    (0.1, 2.5, 0, 70644658913280),
    (0.1, 300.0, 0, 105416714141696),
    (-0.5, -300.0, 0, 105556320714752),
    (1.00146484375, None, 0, 70369809539072),
    (1.00146484375, None, 1, 70369809547264),
]


def _f32(bits: list[int]) -> np.ndarray:
    return np.array(bits, np.uint32).view(np.float32)


@pytest.mark.parametrize("scale,offset,mode,want", WORKED)
def test_worked_quant_params(scale, offset, mode, want):
    """Every worked npu_trans_quant_param value of ops-semantics 8.2 (offset RINT then clamp)."""
    off = None if offset is None else np.array([offset], np.float32)
    assert encode_quant_param(np.array([scale], np.float32), off, mode).tolist() == [want]


def test_fp19_tie_example_0x3F803000():
    """0x3F803000 sits exactly half-way: truncation gives 0x3F802000, RNE rounds the odd kept
    mantissa up to 0x3F804000."""
    x = _f32([0x3F803000])
    assert fp19_bits(x, 0).tolist() == [0x3F802000]
    assert fp19_bits(x, 1).tolist() == [0x3F804000]


def test_fp19_rne_edge_cases():
    """RNE: an even tie stays, a carry runs into the exponent, past the max gives inf, a zero
    exponent gives a signed zero, exponent 255 is truncated (NaN payload bits 12..0 dropped)."""
    x = _f32([0x3F801000, 0x3F7FF000, 0x7F7FF000, 0x00001FFF, 0x80400000, 0x7FC01FFF,
              0xFF800000])
    assert fp19_bits(x, 1).tolist() == [0x3F800000, 0x3F800000, 0x7F800000, 0, 0x80000000,
                                        0x7FC00000, 0xFF800000]


@PROPS
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=16), st.integers(0, 1))
def test_fp19_rounding_property(patterns, mode):
    """fp19 truncation / RNE on raw fp32 bit patterns equals the integer formula of 3.2."""
    got = fp19_bits(_f32(patterns), mode).tolist()
    want = []
    for bits in patterns:
        exp = (bits >> 23) & 0xFF
        if mode == 0 or exp == 255:
            want.append(bits & 0xFFFFE000)
        elif exp == 0:
            want.append(bits & 0x80000000)
        else:
            keep, rest = bits >> 13, bits & 0x1FFF
            keep += 1 if rest > 0x1000 or (rest == 0x1000 and keep & 1) else 0
            want.append(keep << 13)
    assert got == want


@PROPS
@given(st.lists(st.tuples(st.floats(width=32), st.integers(-256, 255)), min_size=1, max_size=8),
       st.integers(0, 1))
def test_encode_decode_round_trip(pairs, mode):
    """Decoding gives M1 = fp19_bits(scale), the integer offset, sign = 1, shift = 0 and
    mode_control = 0; re-encoding the decoded fields gives the same parameters."""
    scale = np.array([s for s, _ in pairs], np.float32)
    offset = np.array([o for _, o in pairs], np.float32)
    q = encode_quant_param(scale, offset, mode)
    assert q.dtype == np.int64
    d = decode_quant_param(q)
    assert d.m1.view(np.uint32).tolist() == fp19_bits(scale, mode).tolist()
    assert d.offset.tolist() == [o for _, o in pairs]
    assert d.signed.all() and not d.mode_control.any() and not d.shift.any()
    assert encode_quant_param(d.m1, d.offset.astype(np.float32)).tolist() == q.tolist()
    assert decode_quant_param(q.view(np.uint64)).offset.tolist() == d.offset.tolist()


def test_offset_nan_inf_and_saturation():
    """Offset NaN -> 0, +inf -> 255, -inf -> -256 (int32 cast saturates, then the 9-bit clamp)."""
    q = encode_quant_param(np.ones(3, np.float32), np.array([np.nan, np.inf, -np.inf], np.float32))
    assert decode_quant_param(q).offset.tolist() == [0, 255, -256]


def test_decode_seed_examples():
    """The 16 printed npu_trans_quant_param outputs of ops-semantics 8.1(b) decode to the printed
    scales (shortest fp32 repr) and offsets."""
    q = np.array([70507248869376, 70509369614336, 70507209793536, 140463653937152,
                  140603250524160, 140603257561088, 140603230814208, 70369813069824,
                  70369794605056, 140463675252736, 70784266256384, 70507233009664,
                  140601114345472, 70371966238720, 140603258257408, 140603254505472], np.int64)
    d = decode_quant_param(q)
    assert [str(m) for m in d.m1] == [
        "1.0458984", "-0.1161499", "0.04336548", "0.17419434", "-0.4008789", "-0.7211914",
        "-0.07836914", "1.421875", "0.30517578", "0.96728516", "-0.54589844", "0.28881836",
        "0.97558594", "-2.1992188", "-0.7626953", "-0.5390625"]
    assert d.offset.tolist() == [1, 1, 1, -2, -1, -1, -1, 0, 0, -2, 3, 1, -1, 0, -1, -1]


def test_requant_clamps_before_offset():
    """8.2: acc*scale = 300 with offset -200 gives 55 (clamp to 255 first); 2.5 rounds to 2."""
    got = requant_int8(np.array([300, 5], np.int32), np.float32([1.0, 0.5]), np.array([-200, 0]))
    assert got.tolist() == [55, 2]


def test_requant_int32_to_fp32_rounds_half_even():
    """float32(acc) rounds RNE above 2^24: acc = -(2^25 - 65535) becomes -(2^25 - 65536), so
    acc * 2^-17 is the tie -255.5 -> -256, +200 -> -56 (the exact product would give -55)."""
    got = requant_int8(np.array([-(2**25 - 65535)], np.int32), np.float32(2.0**-17), np.array(200))
    assert got.tolist() == [-56]


def test_requant_per_channel_broadcast():
    """m1 and offset of shape (n,) apply along the last axis of acc (per channel)."""
    acc = np.array([[10, 10, 10], [-10, -10, -10]], np.int32)
    got = requant_int8(acc, np.float32([1.0, 0.5, 0.25]), np.array([0, 1, -1]))
    assert got.tolist() == [[10, 6, 1], [-10, -4, -3]]  # 2.5 -> 2 and -2.5 -> -2 (RNE)


def _fp19_value(bits: int) -> float:
    return float(_f32([bits & 0xFFFFE000])[0])


fp19_scales = st.integers(0, 2**32 - 1).map(_fp19_value).filter(math.isfinite)


def _oracle_product(acc: float, m1: float) -> float:
    """fp32 RNE of float32(acc) * m1, saturating a finite overflow (the product of two fp32 values
    is exact in a Python float)."""
    return round_float(acc * m1, "float32", "rint", saturate=True)


@PROPS
@given(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), fp19_scales, st.integers(-256, 255)),
                min_size=1, max_size=16))
def test_req8_property(rows):
    """REQ8: clip(clip(rint(fp32(fp32(acc) * m1)), -256, 255) + offset, -128, 127)."""
    acc = np.array([a for a, _, _ in rows], np.int32)
    m1 = np.array([m for _, m, _ in rows], np.float32)
    off = np.array([o for _, _, o in rows], np.int32)
    want = []
    for a, m, o in rows:
        v = _oracle_product(round_int(a, "float32", "rint"), m)
        s9 = max(-256, min(255, oracle_float_to_int(v, "int64", "rint")))
        want.append(max(-128, min(127, s9 + o)))
    assert requant_int8(acc, m1, off).astype(np.int64).tolist() == want


@PROPS
@given(st.lists(st.tuples(st.floats(width=32), fp19_scales, st.integers(-256, 255)),
                min_size=1, max_size=16))
def test_qf322b8_pre_property(rows):
    """QF322B8_PRE (float32 acc): the same formula; NaN products give s9 = 0, inf saturates."""
    acc = np.array([a for a, _, _ in rows], np.float32)
    m1 = np.array([m for _, m, _ in rows], np.float32)
    off = np.array([o for _, _, o in rows], np.int16)
    want = []
    for a, m, o in rows:
        s9 = max(-256, min(255, oracle_float_to_int(_oracle_product(a, m), "int64", "rint")))
        want.append(max(-128, min(127, s9 + o)))
    assert requant_int8(acc, m1, off).astype(np.int64).tolist() == want


@PROPS
@given(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), fp19_scales), min_size=1,
                max_size=16))
def test_deqf16_property(rows):
    """DEQF16: fp16(RNE, saturating to +-65504) of fp32(RNE) of float32(acc) * m1."""
    acc = np.array([a for a, _ in rows], np.int32)
    m1 = np.array([m for _, m in rows], np.float32)
    want = [round_float(_oracle_product(round_int(a, "float32", "rint"), m), "float16", "rint")
            for a, m in rows]
    got = deqf16(acc, m1)
    assert got.dtype == np.float16
    assert got.astype(np.float64).tolist() == want
    assert np.signbit(got).tolist() == [math.copysign(1, w) < 0 for w in want]


def test_deqf16_saturates_and_propagates():
    """A product past fp16 (even past fp32) saturates to +-65504; an inf M1 stays inf."""
    big = np.float32(2.0**120)
    got = deqf16(np.array([70000, -(2**31), 1], np.int32), np.array([1.0, big, np.inf], np.float32))
    assert got.tolist() == [65504.0, -65504.0, math.inf]


def test_bad_arguments():
    """round_mode must be 0 or 1; offset must match scale; values not exact in float32 and
    out-of-range s9 offsets are refused; q must be an int64 / uint64 parameter."""
    one = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="round_mode: 2"):
        encode_quant_param(one, None, 2)
    with pytest.raises(ValueError, match=r"offset: shape \(3,\) differs from scale shape \(2,\)"):
        encode_quant_param(one, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"scale: value 0\.1 \(flat index 0\) is not exact"):
        fp19_bits(np.array([0.1]), 0)
    with pytest.raises(TypeError, match="q: dtype float32"):
        decode_quant_param(one)
    with pytest.raises(ValueError, match=r"offset: .* \[-256, 255\]"):
        requant_int8(np.ones(2, np.int32), one, np.array([0, 300]))
    with pytest.raises(TypeError, match="acc: dtype complex128"):
        deqf16(np.ones(2, complex), one)
