"""npu_trans_quant_param (seed 003, ops-semantics 3): encoding, broadcasting, errors, seed outputs.

The property test's oracle works on Python ints and Fractions only: the scale's float32 bits are
decoded to an exact rational, rounded to an 11-bit significand by value, and re-encoded; the
offset is rounded half-to-even with Python's round on a Fraction.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics import decode_quant_param, requant_int8
from npusim.ops.trans_quant_param import (
    reference_trans_quant_param,
    trans_quant_param,
    validate_trans_quant_param,
)

SEED_OUT = [
    70507248869376, 70509369614336, 70507209793536, 140463653937152,
    140603250524160, 140603257561088, 140603230814208, 70369813069824,
    70369794605056, 140463675252736, 70784266256384, 70507233009664,
    140601114345472, 70371966238720, 140603258257408, 140603254505472,
]  # fmt: skip
SEED_DECODED = [
    (1.0458984, 1), (-0.1161499, 1), (0.04336548, 1), (0.17419434, -2), (-0.4008789, -1),
    (-0.7211914, -1), (-0.07836914, -1), (1.421875, 0), (0.30517578, 0), (0.96728516, -2),
    (-0.54589844, 3), (0.28881836, 1), (0.97558594, -1), (-2.1992188, 0), (-0.7626953, -1),
    (-0.5390625, -1),
]  # fmt: skip


def _f32(values) -> np.ndarray:
    return np.array(values, np.float32)


# ---- pure-Python oracle -------------------------------------------------------------------
def _f32_value(bits: int) -> Fraction:
    """Exact value of a finite float32 bit pattern."""
    sign = -1 if bits >> 31 else 1
    exp, man = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if exp == 0:
        return sign * Fraction(man, 1 << 23) * Fraction(1, 1 << 126)
    return sign * (1 + Fraction(man, 1 << 23)) * Fraction(2) ** (exp - 127)


def _scale_field(bits: int, round_mode: int) -> int:
    """Bits 31..0 of the output: the scale as (s, e8, m10) << 13."""
    if round_mode == 0:
        return bits & 0xFFFFE000
    sign = bits >> 31
    if (bits >> 23) & 0xFF == 0:  # zero / subnormal: flushed to a signed zero
        return sign << 31
    a = abs(_f32_value(bits))
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    r = round(a / Fraction(2) ** (e - 10)) * Fraction(2) ** (e - 10)  # 11 significant bits, RNE
    if r >= 2**128:
        return (sign << 31) | (0xFF << 23)  # overflow to inf
    e = r.numerator.bit_length() - r.denominator.bit_length()
    if Fraction(2) ** e > r:
        e -= 1
    man = int((r / Fraction(2) ** e - 1) * 1024)
    return (sign << 31) | ((e + 127) << 23) | (man << 13)


def _oracle(scale_bits: int, offset_bits: int | None, round_mode: int) -> int:
    out = _scale_field(scale_bits, round_mode) | (1 << 46)
    if offset_bits is not None:
        o = max(-256, min(255, round(_f32_value(offset_bits))))
        out |= (o & 0x1FF) << 37
    return out


def _bits_to_f32(bits: list[int]) -> np.ndarray:
    return np.array(bits, np.uint32).view(np.float32)


# finite float32 patterns, with exact RNE ties (low 13 bits 0x1000), near-ties, carries into the
# exponent, the largest finite values (round up to inf), subnormals and zeros
_tie_low = st.sampled_from([0x1000, 0x0FFF, 0x1001, 0x0000, 0x1FFF, 0x0001])
_finite = st.integers(0, 0xFF).filter(lambda e: e != 0xFF)
scale_bits = st.one_of(
    st.builds(lambda s, e, hi, lo: (s << 31) | (e << 23) | (hi << 13) | lo,
              st.integers(0, 1), _finite, st.integers(0, 0x3FF), _tie_low),
    st.builds(lambda s, lo: (s << 31) | (0xFE << 23) | (0x3FF << 13) | lo,
              st.integers(0, 1), _tie_low),
    st.builds(lambda s, m: (s << 31) | m, st.integers(0, 1), st.integers(0, 0x7FFFFF)),
    st.integers(0, 0xFFFFFFFF).filter(lambda b: (b >> 23) & 0xFF != 0xFF),
)
offset_values = st.one_of(
    st.sampled_from([0.5, -0.5, 1.5, -2.5, 2.5, 255.5, -256.5, 300.0, -300.0, 1e30, -1e30, 0.0]),
    st.floats(-600, 600, width=32),
)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    round_mode=st.sampled_from([0, 1]),
    offset_kind=st.sampled_from(["none", "same", "one", "scale_one"]),
    two_d=st.booleans(),
)
def test_property_against_integer_oracle(n, data, round_mode, offset_kind, two_d):
    """Every element equals the Fraction / integer oracle of ops-semantics 3.2 (both round
    modes, exact ties, exponent carries, overflow to inf, subnormal flush, offset RNE and clamp),
    and the output shape follows 3.1 (length-1 sides broadcast)."""
    s_len = 1 if offset_kind == "scale_one" else n
    sb = data.draw(st.lists(scale_bits, min_size=s_len, max_size=s_len))
    o_len = {"none": 0, "same": n, "one": 1, "scale_one": n}[offset_kind]
    ov = data.draw(st.lists(offset_values, min_size=o_len, max_size=o_len))
    scale = _bits_to_f32(sb)
    offset = None if offset_kind == "none" else _f32(ov)
    if two_d and offset_kind in ("none", "same"):
        scale = scale.reshape(1, -1)
        offset = None if offset is None else offset.reshape(1, -1)
    out = reference_trans_quant_param(scale, offset, round_mode)
    ob = None if offset is None else offset.reshape(-1).view(np.uint32).tolist()
    count = max(len(sb), len(ob or []))
    want = [
        _oracle(sb[i if len(sb) > 1 else 0], None if ob is None else ob[i if len(ob) > 1 else 0],
                round_mode)
        for i in range(count)
    ]
    assert out.dtype == np.int64
    assert out.reshape(-1).view(np.uint64).tolist() == want
    assert out.shape == (scale.shape if offset is None or scale.ndim == 2 else (count,))


# ---- worked values and seed outputs ------------------------------------------------------
@pytest.mark.parametrize(
    "scale,offset,round_mode,out",
    [
        (1.0, 1.0, 0, 70507248484352),
        (1.0, None, 0, 70369809530880),
        (0.1, None, 0, 70369781006336),
        (0.1, -2.5, 0, 140463647277056),
        (0.1, 2.5, 0, 70644658913280),
        (0.1, 300.0, 0, 105416714141696),
        (-0.5, -300.0, 0, 105556320714752),
        (1.00146484375, None, 0, 70369809539072),
        (1.00146484375, None, 1, 70369809547264),
    ],
)
def test_worked_values_of_8_2(scale, offset, round_mode, out):
    """Each row of the ops-semantics 8.2 trans_quant_param table, bit for bit."""
    off = None if offset is None else _f32([offset])
    got = trans_quant_param(_f32([scale]), off, round_mode)
    assert got.view(np.uint64).tolist() == [out]


def test_aclnn_sample_scale_offset_ones():
    """The aclnn sample: scale = offset = [1, 1, 1] -> 70507248484352 each."""
    got = trans_quant_param(_f32([1, 1, 1]), _f32([1, 1, 1]))
    assert got.view(np.uint64).tolist() == [70507248484352] * 3


def test_seed_outputs_decode_and_reencode():
    """The 16 hardware outputs of seed 003 have bit 46 set, bits 32..36 and >= 47 clear and the
    low 13 bits clear; they decode to the (scale, offset) pairs of ops-semantics 8.1(b), and
    re-encode (both round modes: the scales are already 19-bit) to the same integers."""
    q = np.array(SEED_OUT, np.int64)
    u = [int(v) for v in SEED_OUT]
    assert all(v >> 46 == 1 and (v >> 32) & 0x1F == 0 and v & 0x1FFF == 0 for v in u)
    d = decode_quant_param(q)
    for (scale, offset), m1, off in zip(SEED_DECODED, d.m1.tolist(), d.offset.tolist(),
                                        strict=True):
        assert abs(m1 - scale) <= 1e-6 * abs(scale) and off == offset
    for mode in (0, 1):
        again = trans_quant_param(d.m1, d.offset.astype(np.float32), mode)
        assert again.view(np.uint64).tolist() == SEED_OUT


def test_parameter_feeds_the_requant_clip_order():
    """8.2 clip order: a parameter with offset -200 applied to acc * scale = 300 gives
    clip(300, -256, 255) - 200 = 55 (not 100); acc * scale = 2.5 with offset 0 gives 2."""
    p = decode_quant_param(trans_quant_param(_f32([1.0, 0.5]), _f32([-200.0, 0.0])))
    got = requant_int8(np.array([300, 5], np.int32), p.m1, p.offset)
    assert got.tolist() == [55, 2]


# ---- shapes and broadcasting ---------------------------------------------------------------
@pytest.mark.parametrize(
    "scale_shape,offset_shape,out_shape",
    [
        ((4,), None, (4,)),
        ((1, 4), None, (1, 4)),
        ((1,), None, (1,)),
        ((1,), (3,), (3,)),
        ((3,), (1,), (3,)),
        ((3,), (3,), (3,)),
        ((1, 3), (1, 3), (1, 3)),
        ((3,), (1, 3), (3,)),  # op-plugin: scale.size(0) > offset.size(0) -> scale's shape
        ((1,), (1, 3), (1, 3)),  # otherwise offset's shape
    ],
)
def test_output_shapes(scale_shape, offset_shape, out_shape):
    """Output shape = scale's; with a 1-D scale and an offset, op-plugin's rule picks the
    shape of whichever has the larger dim 0 (offset's on a tie)."""
    scale = np.full(scale_shape, 0.25, np.float32)
    offset = None if offset_shape is None else np.full(offset_shape, 2.0, np.float32)
    out = trans_quant_param(scale, offset)
    assert out.shape == out_shape
    want = 0x3E800000 | (1 << 46) | ((2 << 37) if offset is not None else 0)
    assert set(out.reshape(-1).view(np.uint64).tolist()) == {want}


def test_broadcast_values_per_element():
    """A length-1 offset applies to every scale and a length-1 scale to every offset."""
    out = trans_quant_param(_f32([1.0, 0.1]), _f32([1.0]))
    assert out.tolist() == [70507248484352, 70507219959808]
    out = trans_quant_param(_f32([1.0]), _f32([1.0, 0.0]))
    assert out.tolist() == [70507248484352, 70369809530880]


def test_round_mode_none_means_zero():
    """round_mode is ``int?`` in torch_npu's yaml: None behaves as the default 0."""
    assert trans_quant_param(_f32([1.00146484375]), None, None).tolist() == [70369809539072]


def test_validate_returns_normalised_arguments():
    """validate_trans_quant_param returns the arrays, the round mode and the output shape."""
    s, o, mode, shape = validate_trans_quant_param(_f32([1, 2, 3]), _f32([0.5]), 1)
    assert s.shape == (3,) and o.shape == (1,) and mode == 1 and shape == (3,)


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        ({"scale": np.ones(3, np.float16)}, TypeError, "scale: dtype float16"),
        ({"scale": np.ones(3, np.float32), "offset": np.ones(3, np.float64)}, TypeError,
         "offset: dtype float64"),
        ({"scale": np.ones((2, 3), np.float32)}, ValueError, r"scale: shape \(2, 3\)"),
        ({"scale": np.ones((1, 1, 3), np.float32)}, ValueError, r"scale: shape \(1, 1, 3\)"),
        ({"scale": np.float32(1.0)}, ValueError, r"scale: shape \(\)"),
        ({"scale": np.ones(3, np.float32), "offset": np.ones((2, 3), np.float32)}, ValueError,
         r"offset: shape \(2, 3\)"),
        ({"scale": np.ones(0, np.float32)}, ValueError, "scale: shape .* is empty"),
        ({"scale": np.ones(3, np.float32), "offset": np.ones(0, np.float32)}, ValueError,
         "offset: shape .* is empty"),
        ({"scale": _f32([1.0, np.nan])}, ValueError, "scale: value nan at index"),
        ({"scale": _f32([np.inf])}, ValueError, "scale: value inf"),
        ({"scale": _f32([1.0]), "offset": _f32([-np.inf])}, ValueError, "offset: value -inf"),
        ({"scale": np.ones(3, np.float32), "offset": np.ones(2, np.float32)}, ValueError,
         "offset: scale and offset lengths 3 and 2"),
        ({"scale": np.ones((1, 3), np.float32), "offset": np.ones(3, np.float32)}, ValueError,
         "offset: shape .* must equal scale's"),
        ({"scale": np.ones(3, np.float32), "round_mode": 2}, ValueError, "round_mode: must be 0"),
        ({"scale": np.ones(3, np.float32), "round_mode": True}, ValueError, "round_mode: "),
        ({"scale": np.ones(3, np.float32), "round_mode": 0.0}, TypeError, "round_mode: must be"),
    ],
)
def test_errors_name_the_argument(kwargs, exc, msg):
    """Each rule of seed 003 / ops-semantics 3.1-3.2 raises naming the argument and the rule."""
    with pytest.raises(exc, match=msg):
        trans_quant_param(**kwargs)
