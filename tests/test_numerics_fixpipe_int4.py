"""The fixpipe quant parameter and int4 packing (ops-semantics 0.2, 2.2, 3.2, 8.2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics import (
    decode_quant_param,
    encode_quant_param,
    fp19_bits,
    pack_int4,
    requant_int8,
    unpack_int4,
)

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


@pytest.mark.parametrize("scale,offset,mode,want", WORKED)
def test_worked_quant_params(scale, offset, mode, want):
    """Every worked trans_quant_param value of ops-semantics 8.2."""
    off = None if offset is None else np.array([offset], np.float32)
    assert encode_quant_param(np.array([scale], np.float32), off, mode).tolist() == [want]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 1))
def test_fp19_rounding_property(bits, mode):
    """fp19 truncation / RNE on raw fp32 bit patterns, computed with integer arithmetic."""
    u = np.array([bits], np.uint32)
    got = int(fp19_bits(u.view(np.float32), mode)[0])
    exp = (bits >> 23) & 0xFF
    if mode == 0:
        want = bits & 0xFFFFE000
    elif exp == 0:
        want = bits & 0x80000000
    elif exp == 255:
        want = bits & 0xFFFFE000
    else:
        keep, rest = bits >> 13, bits & 0x1FFF
        keep += 1 if rest > 0x1000 or (rest == 0x1000 and keep & 1) else 0
        want = (keep << 13) & 0xFFFFFFFF
    assert got == want


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.integers(-256, 255))
def test_encode_decode_round_trip(scale, offset):
    """Decoding gives the truncated scale and the integer offset; re-encoding is identical."""
    q = encode_quant_param(np.array([scale], np.float32), np.array([offset], np.float32))
    d = decode_quant_param(q)
    assert int(d.offset[0]) == offset and bool(d.signed[0])
    assert d.m1.view(np.uint32)[0] == np.array([scale], np.float32).view(np.uint32)[0] & 0xFFFFE000
    again = encode_quant_param(d.m1, d.offset.astype(np.float32))
    assert again.tolist() == q.tolist()


def test_requant_clamps_before_offset():
    """acc*scale = 300 with offset -200 gives 55 (clamp to 255 first); 2.5 rounds to 2."""
    assert requant_int8(np.array([300], np.int32), np.float32(1.0), np.array([-200])).tolist() == [
        55
    ]
    assert requant_int8(np.array([5], np.int32), np.float32(0.5), np.array([0])).tolist() == [2]


def test_int4_worked_values():
    """ops-semantics 8.2: [0..7] -> 0x76543210, [-8..-1] -> 0xFEDCBA98, -1 first -> 15."""
    rows = np.array(
        [list(range(8)), list(range(-8, 0)), [-1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, -8]]
    )
    assert pack_int4(rows).reshape(-1).tolist() == [1985229328, -19088744, 15, -2147483648]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-8, 7), min_size=8, max_size=64).filter(lambda v: len(v) % 8 == 0))
def test_int4_round_trip(values):
    """unpack(pack(v)) == v, and bits 4t..4t+3 hold value t (two's complement nibble)."""
    v = np.array(values, np.int64)
    p = pack_int4(v)
    assert unpack_int4(p).tolist() == values
    word = int(p[0]) & 0xFFFFFFFF
    assert [(word >> (4 * t)) & 0xF for t in range(8)] == [x & 0xF for x in values[:8]]


def test_int4_out_of_range():
    """Values outside [-8, 7] raise by default; the flag emulates the host's & 0xF masking."""
    with pytest.raises(ValueError, match=r"9 at index \(5,\) is outside the int4 range"):
        pack_int4(np.array([0, 0, 0, 0, 0, 9, 0, 0]))
    assert pack_int4(np.array([0, 0, 0, 0, 0, 9, 0, 0]), mask_out_of_range=True).tolist() == [
        9 << 20
    ]
