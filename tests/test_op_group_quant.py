"""npu_group_quant (seed 004, ops-semantics 4): the seed example, a pure-Python property oracle,
every validation rule, and the hardware-trap emulation.

The oracle decodes inputs from their bit patterns to Fractions and applies the golden
y = clip(RNE(fp32(fp32(x * scale) + offset)), lo, hi) with fp32 rounding done on rationals
(NaN -> 0, +-inf saturate), independent of npusim.numerics.
"""

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.ops.group_quant import (
    HardwareTrapError,
    dst_dtype_kind,
    reference_group_quant,
    validate_group_quant,
)

BF16 = np.dtype(ml_dtypes.bfloat16)
SEED_X = [
    [1.0029, -1.2373, 1.0107, -0.2681],
    [0.5791, 0.1101, 1.0059, -0.9658],
    [-1.7637, 1.7588, -1.3193, 0.3989],
    [1.3262, 0.4854, 1.9551, 0.9697],
    [-0.8770, -1.8828, 2.1777, -0.0050],
    [0.4722, 0.5605, 0.8267, -0.9810],
]
SEED_SCALE = [
    [-0.2710, -0.9381, 0.2850, -1.1230],
    [0.5217, -0.7233, -0.1730, -0.1245],
    [-1.5433, -0.9129, -2.2095, 1.7371],
    [-0.8253, 0.3973, 0.1430, 0.3885],
]
SEED_Y = [
    [-1, 0, -1, -1],
    [-1, -1, -1, -1],
    [-2, -2, -1, -1],
    [0, -2, -2, -1],
    [0, 1, -6, -1],
    [-2, -2, -3, -3],
]


def test_seed_example_all_24_outputs():
    """Seed 004: x fp16 (printed values), scale float32 of the printed 4-decimal values,
    group_index [1, 4, 6, 6] (empty last group), offset -1.1658, qint8 -> all 24 outputs."""
    y = reference_group_quant(
        np.array(SEED_X, np.float16), np.array(SEED_SCALE, np.float32),
        np.array([1, 4, 6, 6], np.int32), np.array([-1.1658], np.float32), "torch.qint8")
    assert y.dtype == np.int8 and y.shape == (6, 4)
    assert y.tolist() == SEED_Y


def test_aclnn_sample_of_8_2():
    """ops-semantics 8.2 aclnn sample: x = [[0,1],[2,3],[4,5],[6,7]], scale rows [1, 2],
    group_index [1, 2, 4], offset 2 -> [[2,4],[4,8],[6,12],[8,16]]."""
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    scale = np.array([[1, 2]] * 3, np.float32)
    y = reference_group_quant(x, scale, np.array([1, 2, 4], np.int64), np.array([2], np.float32))
    assert y.tolist() == [[2, 4], [4, 8], [6, 12], [8, 16]]


def test_int4_packing_order():
    """quint4x2: output int32 (S, H/8); y[8j+t] sits in bits [4t, 4t+3] (values -8..7)."""
    x = np.array([[-8, -7, -1, 0, 1, 2, 6, 7, 100, -100, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5]],
                 np.float32)
    y = reference_group_quant(x, np.ones((1, 16), np.float32), np.array([1], np.int32),
                              dst_dtype="quint4x2")
    assert y.dtype == np.int32 and y.shape == (1, 2)
    nibbles = [[-8, -7, -1, 0, 1, 2, 6, 7], [7, -8, 0, 2, 2, 0, -2, -2]]
    for word, vals in zip(y[0].view(np.uint32).tolist(), nibbles, strict=True):
        assert word == sum((v & 0xF) << (4 * t) for t, v in enumerate(vals))


def test_multiply_is_fp32_not_fp16():
    """The product is rounded to fp32, not to x's fp16: 1.0009765625 * 2.4978 = 2.50024 -> 3
    (an fp16 product would be 2.5 -> 2); 0.5 * 5 = 2.5 is an exact tie -> 2 (half to even)."""
    x = np.array([[1.0009765625, 0.5]], np.float16)
    y = reference_group_quant(x, np.array([[2.4978, 5.0]], np.float32), np.array([1], np.int32))
    assert y.tolist() == [[3, 2]]


def test_nan_and_inf_inputs():
    """NaN -> 0 through the int32 cast; +-inf and huge values saturate; inf * 0 is NaN -> 0."""
    x = np.array([[np.nan, np.inf, -np.inf, 1e30, -1e30, np.inf, 3.0, -3.0]], np.float32)
    s = np.array([[1, 1, 1, 1, 1, 0, 1e38, 1e38]], np.float32)
    y = reference_group_quant(x, s, np.array([1], np.int64))
    assert y.tolist() == [[0, 127, -128, 127, -128, 0, 127, -128]]


def test_empty_x_gives_empty_output():
    """S = 0: the device returns immediately; the output is empty with the right shape."""
    x = np.zeros((0, 16), np.float16)
    s = np.ones((2, 16), np.float16)
    assert reference_group_quant(x, s, np.array([0, 0], np.int32)).shape == (0, 16)
    assert reference_group_quant(x, s, np.array([0, 0], np.int32), dst_dtype="quint4x2").shape \
        == (0, 2)


# ---- property test against a pure-Python oracle -------------------------------------------
_FORMATS = {"float16": (5, 10, np.uint16), "bfloat16": (8, 7, np.uint16),
            "float32": (8, 23, np.uint32)}


def _decode(bits: int, dtype: str):
    """Exact value of a bit pattern: a Fraction, +-math.inf or math.nan."""
    ebits, mbits, _ = _FORMATS[dtype]
    sign = -1 if bits >> (ebits + mbits) else 1
    exp, man = (bits >> mbits) & ((1 << ebits) - 1), bits & ((1 << mbits) - 1)
    bias = (1 << (ebits - 1)) - 1
    if exp == (1 << ebits) - 1:
        return math.nan if man else sign * math.inf
    if exp == 0:
        return sign * Fraction(man, 1 << mbits) * Fraction(2) ** (1 - bias)
    return sign * (1 + Fraction(man, 1 << mbits)) * Fraction(2) ** (exp - bias)


def _round_f32(q: Fraction):
    """q rounded to float32 (nearest, ties to even, subnormals kept, overflow -> inf)."""
    if q == 0:
        return Fraction(0)
    sign, a = (-1 if q < 0 else 1), abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    quantum = Fraction(2) ** (max(e, -126) - 23)
    v = round(a / quantum) * quantum
    return sign * math.inf if v >= 2**128 else sign * v


def _is_special(v) -> bool:
    return isinstance(v, float)


def _mul(a, b):
    if _is_special(a) or _is_special(b):
        if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
            return math.nan
        if a == 0 or b == 0:
            return math.nan  # inf * 0
        return math.copysign(math.inf, (1 if a > 0 else -1) * (1 if b > 0 else -1))
    return _round_f32(a * b)


def _add(a, b):
    if _is_special(a) or _is_special(b):
        total = float(a) + float(b)  # inf / nan arithmetic of the specials only
        return total
    return _round_f32(a + b)


def _quantise(v, lo: int, hi: int) -> int:
    if isinstance(v, float):
        return 0 if math.isnan(v) else (hi if v > 0 else lo)
    return max(lo, min(hi, round(v)))  # round(Fraction) is half-to-even


def _oracle(xb, sb, gi, ob, xdt, sdt, lo, hi):
    rows = []
    for r, row in enumerate(xb):
        e = sum(1 for end in gi if end <= r)
        vals = []
        for h, bits in enumerate(row):
            v = _mul(_decode(bits, xdt), _decode(sb[e][h], sdt))
            if ob is not None:
                v = _add(v, _decode(ob, sdt))
            vals.append(_quantise(v, lo, hi))
        rows.append(vals)
    return rows


def _value_bits(dtype: str):
    """Bit patterns: half-integers and small integers (exact ties after scaling by powers of
    two), large magnitudes (saturation), random finite patterns, and rare inf / NaN."""
    ebits, mbits, _ = _FORMATS[dtype]
    width = 1 + ebits + mbits
    np_dt = BF16 if dtype == "bfloat16" else np.dtype(dtype)

    def encode(value: float) -> int:
        return int(np.array([value], np_dt).view(_FORMATS[dtype][2])[0])

    simple = st.integers(-512, 512).map(lambda k: encode(k / 2))
    big = st.sampled_from([300.0, -300.0, 40000.0, -40000.0, 1e4, -129.0, 128.0]).map(encode)
    finite = st.integers(0, (1 << width) - 1).filter(
        lambda b: (b >> mbits) & ((1 << ebits) - 1) != (1 << ebits) - 1)
    special = st.sampled_from([((1 << ebits) - 1) << mbits, (1 << (width - 1)) |
                               (((1 << ebits) - 1) << mbits), (((1 << ebits) - 1) << mbits) | 1])
    return st.one_of(simple, simple, big, finite, special)


def _scale_bits(dtype: str):
    np_dt = BF16 if dtype == "bfloat16" else np.dtype(dtype)
    pow2 = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, -0.5, -1.0, 3.0, 1.5, 0.0]).map(
        lambda v: int(np.array([v], np_dt).view(_FORMATS[dtype][2])[0]))
    return st.one_of(pow2, pow2, _value_bits(dtype))


def _array(bits, dtype: str, shape) -> np.ndarray:
    np_dt = BF16 if dtype == "bfloat16" else np.dtype(dtype)
    return np.array(bits, _FORMATS[dtype][2]).reshape(shape).view(np_dt)


def _unpack(words: np.ndarray) -> list[list[int]]:
    """int32 words -> signed nibbles, value t of each word from bits [4t, 4t+3]."""
    out = []
    for row in words.view(np.uint32).tolist():
        vals = []
        for w in row:
            for t in range(8):
                nib = (w >> (4 * t)) & 0xF
                vals.append(nib - 16 if nib >= 8 else nib)
        out.append(vals)
    return out


_DTYPES = st.sampled_from(["float16", "bfloat16", "float32"])


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(0, 5),
    h8=st.integers(1, 2),
    xdt=_DTYPES,
    sdt=_DTYPES,
    groups=st.integers(1, 4),
    with_offset=st.booleans(),
    int4=st.booleans(),
    gi_dtype=st.sampled_from([np.int32, np.int64]),
)
def test_property_against_fraction_oracle(data, rows, h8, xdt, sdt, groups, with_offset, int4,
                                          gi_dtype):
    """Random shapes, empty groups, fp16 / bf16 / fp32 x and scale, exact ties, saturation,
    inf / NaN: every output equals the pure-Python oracle (int8, or quint4x2 unpacked by hand)."""
    h = 8 * h8
    xb = data.draw(st.lists(st.lists(_value_bits(xdt), min_size=h, max_size=h),
                            min_size=rows, max_size=rows))
    sb = data.draw(st.lists(st.lists(_scale_bits(sdt), min_size=h, max_size=h),
                            min_size=groups, max_size=groups))
    cuts = sorted(data.draw(st.lists(st.integers(0, rows), min_size=groups - 1,
                                     max_size=groups - 1)))
    gi = [*cuts, rows]
    ob = data.draw(_value_bits(sdt)) if with_offset else None
    x = _array(xb, xdt, (rows, h))
    scale = _array(sb, sdt, (groups, h))
    offset = None if ob is None else _array([ob], sdt, (1,))
    y = reference_group_quant(x, scale, np.array(gi, gi_dtype), offset,
                              "quint4x2" if int4 else "int8")
    lo, hi = (-8, 7) if int4 else (-128, 127)
    want = _oracle(xb, sb, gi, ob, xdt, sdt, lo, hi)
    if int4:
        assert y.dtype == np.int32 and y.shape == (rows, h // 8)
        assert _unpack(y) == want
    else:
        assert y.dtype == np.int8 and y.shape == (rows, h)
        assert y.tolist() == want


# ---- dst_dtype and validation --------------------------------------------------------------
@pytest.mark.parametrize(
    "dst,kind",
    [(None, "int8"), ("int8", "int8"), ("qint8", "int8"), ("torch.qint8", "int8"),
     ("torch.int8", "int8"), (np.int8, "int8"), (np.dtype(np.int8), "int8"),
     ("quint4x2", "int4"), ("torch.quint4x2", "int4"), ("int4", "int4")],
)
def test_dst_dtype_spellings(dst, kind):
    """None / int8 / qint8 -> int8; quint4x2 -> int4 packed, as strings or numpy dtypes."""
    assert dst_dtype_kind(dst) == kind


def _args(**over):
    args = {
        "x": np.zeros((6, 8), np.float16),
        "scale": np.ones((2, 8), np.float16),
        "group_index": np.array([2, 6], np.int32),
        "offset": None,
        "dst_dtype": None,
    }
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over,exc,msg",
    [
        ({"x": np.zeros((6, 8), np.int8)}, TypeError, "x: dtype int8"),
        ({"x": np.zeros((6, 8), np.float64)}, TypeError, "x: dtype float64"),
        ({"scale": np.ones((2, 8), np.int32)}, TypeError, "scale: dtype int32"),
        ({"group_index": np.array([2, 6], np.int16)}, TypeError, "group_index: dtype int16"),
        ({"group_index": np.array([2.0, 6.0])}, TypeError, "group_index: dtype float64"),
        ({"offset": np.ones(1, np.float32)}, TypeError, "offset: dtype float32 must equal"),
        ({"offset": np.ones(1, np.int8)}, TypeError, "offset: dtype int8"),
        ({"offset": np.ones(2, np.float16)}, ValueError, "offset: must be a scalar"),
        ({"offset": np.ones((1, 1), np.float16)}, ValueError, "offset: must be a scalar"),
        ({"x": np.zeros((2, 3, 8), np.float16)}, ValueError, "x: must be 2-D"),
        ({"scale": np.ones(8, np.float16)}, ValueError, "scale: must be 2-D"),
        ({"group_index": np.array([[2, 6]], np.int32)}, ValueError, "group_index: must be 1-D"),
        ({"scale": np.ones((2, 4), np.float16)}, ValueError, r"scale: dim 1 \(4\)"),
        ({"group_index": np.array([6], np.int32)}, ValueError, "group_index: length 1"),
        ({"scale": np.ones((0, 8), np.float16), "group_index": np.array([], np.int32)},
         ValueError, "scale: .* dim 0 = 0"),
        ({"x": np.zeros((6, 12), np.float16), "scale": np.ones((2, 12), np.float16),
          "dst_dtype": "quint4x2"}, ValueError, "x: last dim 12 must be divisible by 8"),
        ({"dst_dtype": "int16"}, ValueError, "dst_dtype: 'int16'"),
        ({"dst_dtype": np.int32}, ValueError, "dst_dtype: "),
    ],
)
def test_errors_name_the_argument(over, exc, msg):
    """Each rule of seed 004 / ops-semantics 4.1 and 4.4 raises naming the argument."""
    with pytest.raises(exc, match=msg):
        validate_group_quant(**_args(**over))


def test_emulate_flag_must_be_bool():
    """emulate_hardware_trap is a switch, not a truthy value."""
    with pytest.raises(TypeError, match="emulate_hardware_trap: must be a bool"):
        validate_group_quant(**_args(), emulate_hardware_trap="yes")


@pytest.mark.parametrize(
    "gi,msg",
    [
        ([-1, 6], "negative value -1"),
        ([1, 7], "greater than the row count 6"),
        ([4, 2], "not non-decreasing"),
        ([1, 5], "ends at 5, not at the row count 6"),
    ],
)
def test_bad_group_index_raises_or_traps(gi, msg):
    """A bad group_index raises ValueError naming the rule by default; with
    emulate_hardware_trap=True it raises HardwareTrapError (the device's AI-core exception)."""
    args = _args(group_index=np.array(gi, np.int64))
    with pytest.raises(ValueError, match=f"group_index: .*{msg}"):
        reference_group_quant(**args)
    with pytest.raises(HardwareTrapError, match=f"AI-core exception.*{msg}"):
        reference_group_quant(**args, emulate_hardware_trap=True)
    assert issubclass(HardwareTrapError, RuntimeError)


def test_empty_x_never_traps_on_the_device():
    """With S = 0 aclnn returns before the kernel: the trap emulation gives an empty result,
    while the default mode still reports the broken documented constraint."""
    args = _args(x=np.zeros((0, 8), np.float16), group_index=np.array([0, 3], np.int32))
    assert reference_group_quant(**args, emulate_hardware_trap=True).shape == (0, 8)
    with pytest.raises(ValueError, match=r"group_index: .*greater than the row count 0"):
        reference_group_quant(**args)


def test_e_zero_is_a_host_error_even_when_emulating():
    """scale dim 0 = 0 is rejected by aclnn on the host, so it is a ValueError in both modes."""
    args = _args(scale=np.ones((0, 8), np.float16), group_index=np.array([], np.int32))
    with pytest.raises(ValueError, match="E >= 1"):
        validate_group_quant(**args, emulate_hardware_trap=True)


def test_default_tiling_fits_ub_for_wide_rows():
    """H = 18944 (qwen2-7b's intermediate size): one 8192-wide row already overflows UB, so the
    default narrows the H chunk; the run simulates instead of failing."""
    from npusim.hw import load_soc
    from npusim.ops.group_quant_program import _ub_bytes, default_group_quant_tiling

    soc = load_soc("Ascend910B2")
    t = default_group_quant_tiling(soc, 16, 18944)
    assert t.h_chunk < 8192 and t.h_chunk % 64 == 0
    assert _ub_bytes(t) <= soc.core("aiv").buffers["UB"].capacity_bytes
