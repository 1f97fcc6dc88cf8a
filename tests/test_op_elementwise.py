"""group_quant, int4pack, format_cast and layouts through the torch_npu-named API."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_programs import SEED_SCALE, SEED_X, SEED_Y

from npusim.layouts import FormattedArray, nd_to_nz, nz_c0, nz_index, nz_storage_shape, nz_to_nd
from npusim.ops.group_quant import HardwareTrapError
from npusim.torch_npu import (
    npu_convert_weight_to_int4pack,
    npu_format_cast,
    npu_group_quant,
)


def test_group_quant_seed_example():
    """Seed 004: all 24 int8 outputs."""
    y = npu_group_quant(
        SEED_X, SEED_SCALE, np.array([1, 4, 6, 6], np.int32), offset=np.array([-1.1658], np.float32)
    )
    assert y.tolist() == SEED_Y


def _oracle(x, scale, gi, off, lo, hi):
    """Pure Python: exact rational product rounded once to fp32 (products of <= 24-bit values are
    exact in float64), fp32 offset add, half-to-even rounding, saturation."""

    out = []
    for r in range(x.shape[0]):
        e = sum(1 for g in gi if g <= r)
        row = []
        for h in range(x.shape[1]):
            v = Fraction(float(np.float32(Fraction(float(x[r, h])) * Fraction(float(scale[e, h])))))
            if off is not None:
                v = Fraction(float(np.float32(float(v) + float(np.float32(off)))))
            q = round(v)  # Python round on Fraction: half to even
            row.append(min(hi, max(lo, q)))
        out.append(row)
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1, 6),
    h8=st.integers(1, 3),
    dt=st.sampled_from(["float16", "bfloat16", "float32"]),
    with_off=st.booleans(),
    int4=st.booleans(),
)
def test_group_quant_property(seed, rows, h8, dt, with_off, int4):
    """Random shapes / dtypes, exact ties (x*scale = k + 0.5) and saturation, vs a Python
    oracle; int4 output packs 8 per int32."""
    from npusim.numerics import np_dtype, unpack_int4

    rng = np.random.default_rng(seed)
    h = 8 * h8
    x = (rng.integers(-400, 400, (rows, h)) / 2).astype(np_dtype(dt))  # .5 ties for scale 1
    scale = rng.choice(np.array([1.0, 0.5, 3.0, -1.0], np.float32), (2, h)).astype(np_dtype(dt))
    gi = np.array([rng.integers(0, rows + 1), rows], np.int64)
    gi.sort()
    off = np.array([rng.choice([0.5, -1.5, 2.25])], np_dtype(dt)) if with_off else None
    y = npu_group_quant(x, scale, gi, offset=off, dst_dtype="quint4x2" if int4 else None)
    lo, hi = (-8, 7) if int4 else (-128, 127)
    want = _oracle(x, scale, gi, None if off is None else float(off[0]), lo, hi)
    got = unpack_int4(y).tolist() if int4 else y.tolist()
    assert got == want


@pytest.mark.parametrize(
    "gi,msg",
    [
        ([1, 7], "greater than the row count"),
        ([4, 2], "not non-decreasing"),
        ([1, 5], "ends at 5"),
        ([-1, 6], "negative"),
    ],
)
def test_group_index_rules(gi, msg):
    """Bad group_index raises (default) or emulates the device trap (flag)."""
    x = np.zeros((6, 8), np.float16)
    s = np.ones((2, 8), np.float16)
    with pytest.raises(ValueError, match=msg):
        npu_group_quant(x, s, np.array(gi, np.int32))
    with pytest.raises(HardwareTrapError, match="AI-core exception"):
        npu_group_quant(x, s, np.array(gi, np.int32), emulate_hardware_trap=True)


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        ({"x": np.zeros((2, 8), np.int8)}, TypeError, "x: dtype int8"),
        ({"x": np.zeros((2, 2, 8), np.float16)}, ValueError, "x: must be 2-D"),
        ({"scale": np.ones((1, 4), np.float16)}, ValueError, "scale: dim 1"),
        ({"offset": np.ones(2, np.float16)}, ValueError, "offset: must be a scalar"),
        ({"offset": np.ones(1, np.float32)}, TypeError, "offset: dtype float32 must equal"),
        ({"dst_dtype": "int16"}, ValueError, "dst_dtype"),
        (
            {
                "x": np.zeros((2, 12), np.float16),
                "scale": np.ones((1, 12), np.float16),
                "dst_dtype": "quint4x2",
            },
            ValueError,
            "divisible by 8",
        ),
    ],
)
def test_group_quant_errors(kwargs, exc, msg):
    """Each seed / ops-semantics 4.4 rule raises naming the argument."""
    args = {
        "x": np.zeros((2, 8), np.float16),
        "scale": np.ones((1, 8), np.float16),
        "group_index": np.array([2], np.int32),
    }
    args.update(kwargs)
    with pytest.raises(exc, match=msg):
        npu_group_quant(args.pop("x"), args.pop("scale"), args.pop("group_index"), **args)


def test_int4pack_nd_and_nz():
    """ND (k, n) -> (k, n/8); NZ input -> NZ storage (ceil(n/64), ceil(k/16), 16, 8)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-8, 8, (20, 128), dtype=np.int32)
    p = npu_convert_weight_to_int4pack(w)
    assert p.shape == (20, 16)
    nz = npu_format_cast(w, 29)
    pn = npu_convert_weight_to_int4pack(nz)
    assert pn.npu_format == 29 and pn.shape == (2, 2, 16, 8) and pn.origin_shape == (20, 16)
    assert np.array_equal(nz_to_nd(np.asarray(pn), (20, 16)), p)
    with pytest.raises(ValueError, match="outside the int4 range"):
        npu_convert_weight_to_int4pack(w + 9)
    masked = npu_convert_weight_to_int4pack(w + 16, emulate_hardware_masking=True)
    assert np.array_equal(masked, p)
    with pytest.raises(ValueError, match="Atlas A2 / A3 only"):
        npu_convert_weight_to_int4pack(w, soc="Ascend310P3")


@pytest.mark.parametrize(
    "dtype,c0", [(np.float16, 16), (np.int8, 32), (np.float32, 16), (np.int32, 16)]
)
def test_nz_round_trip_and_index(dtype, c0):
    """ND -> NZ -> ND is the identity; element (m, n) sits at the documented flat offset; padding
    is zero; batch dims are kept."""
    x = (np.arange(2 * 35 * 70) % 97 + 1).astype(dtype).reshape(2, 35, 70)
    assert nz_c0(dtype) == c0
    z = nd_to_nz(x)
    assert z.shape == nz_storage_shape(x.shape, c0) == (2, -(-70 // c0), 3, 16, c0)
    assert np.array_equal(nz_to_nd(z, x.shape), x)
    flat = z[1].reshape(-1)
    for m, n in ((0, 0), (17, 33), (34, 69), (15, c0)):
        assert flat[nz_index(m, n, 35, c0)] == x[1, m, n]
    assert int(np.count_nonzero(z)) == x.size


def test_nz_int4_and_int32_int4_c0():
    """int4 values use C0 = 64, int32 carrying int4 C0 = 8."""
    assert nz_c0("int4") == 64 and nz_c0("int32_int4") == 8
    v = np.arange(16 * 128, dtype=np.int8).reshape(16, 128) % 7
    z = nd_to_nz(v, 64)
    assert z.shape == (2, 1, 16, 64) and np.array_equal(nz_to_nd(z, v.shape), v)


def test_format_cast_round_trip_carries_format():
    """npu_format_cast(x, 29) carries origin shape; casting back gives x."""
    x = np.arange(40 * 24, dtype=np.float16).reshape(40, 24)
    z = npu_format_cast(x, 29)
    assert isinstance(z, FormattedArray) and z.npu_format == 29 and z.origin_shape == (40, 24)
    assert np.array_equal(npu_format_cast(z, 2), x)
    with pytest.raises(ValueError, match="acl_format"):
        npu_format_cast(x, 3)
