"""npu_quant_matmul: bit-exact outputs against an independent oracle, and every validation rule.

The oracle works on Python integers and fractions.Fraction: exact int dot products, fp32 / fp16 /
bf16 rounding (RNE, with and without saturation) written here from the IEEE definitions, the
19-bit truncation of a float32 scale and the 9-bit offset of the FixPipe parameter
(ops-semantics 0.2, 3.2, 6.2).
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from npusim.ops.quant_matmul import reference_quant_matmul, validate_quant_matmul
from npusim.spec import spec

BF16 = ml_dtypes.bfloat16
FORMATS = {"float32": (24, -126, 127), "float16": (11, -14, 15), "bfloat16": (8, -126, 127)}


# -- oracle ---------------------------------------------------------------------------------------


def rne(x: Fraction, fmt: str, saturate: bool = False) -> Fraction | float:
    """x rounded to the nearest value of ``fmt``, ties to even; overflow -> inf or max."""
    mant, emin, emax = FORMATS[fmt]
    if x == 0:
        return Fraction(0)
    sign = -1 if x < 0 else 1
    mag = abs(x)
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    while Fraction(2) ** e > mag:
        e -= 1
    while Fraction(2) ** (e + 1) <= mag:
        e += 1
    e = max(e, emin)
    quantum = Fraction(2) ** (e - mant + 1)
    q = mag / quantum
    whole = q.numerator // q.denominator
    rest = q - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2):
        whole += 1
    val = whole * quantum
    top = (2 - Fraction(2) ** (1 - mant)) * Fraction(2) ** emax
    if val > top:
        return sign * top if saturate else sign * float("inf")
    return sign * val


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(u: int) -> Fraction:
    return Fraction(struct.unpack("<f", struct.pack("<I", u & 0xFFFFFFFF))[0])


def param_fields(q: int) -> tuple[Fraction, int]:
    """(M1, offset9) of a FixPipe uint64 parameter: M1 = bits 31..13 as fp32, offset = bits
    37..45 as a signed 9-bit integer."""
    m1 = bits_f32(q & 0xFFFFE000)
    o = (q >> 37) & 0x1FF
    return m1, o - 512 if o >= 256 else o


def encode_param(scale: float, offset: float | None) -> int:
    """trans_quant_param round_mode 0, written from ops-semantics 3.2."""
    q = (f32_bits(scale) & 0xFFFFE000) | (1 << 46)
    if offset is not None:
        o = max(-256, min(255, round(Fraction(offset))))  # round(): half to even
        q |= (o & 0x1FF) << 37
    return q


def int_dot(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    m, k = a.shape
    n = b.shape[1]
    al, bl = a.tolist(), b.tolist()
    return [[sum(al[i][t] * bl[t][j] for t in range(k)) for j in range(n)] for i in range(m)]


def wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def oracle(case: dict) -> np.ndarray:
    """The expected output, element by element, from the formulas of ops-semantics 6.2."""
    a, b = case["a"], case["b"]  # logical int values, (batch.., m, k) / (batch.., k, n)
    out = case["out"]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    a = np.broadcast_to(a, (*batch, m, a.shape[-1]))
    b = np.broadcast_to(b, (*batch, b.shape[-2], n))
    scale, offset, ptk, bias = case["scale"], case["offset"], case["pertoken"], case["bias"]
    res = np.empty((*batch, m, n), dtype=object)
    for bi, idx in enumerate(np.ndindex(*batch)):
        acc = int_dot(a[idx], b[idx])
        for i in range(m):
            for j in range(n):
                v = acc[i][j]
                bj = None
                if bias is not None:
                    bj = bias.reshape(-1, n)[bi if bias.ndim == 3 else 0, j]
                if bias is not None and bias.dtype == np.int32:
                    v = wrap32(v + int(bj))
                res[(*idx, i, j)] = _finish(v, j, i, scale, offset, ptk, bj, bias, out)
    return res


def _finish(v, j, i, scale, offset, ptk, bj, bias, out):
    sj = scale.reshape(-1)[j if scale.size > 1 else 0]
    if out == "int32":
        return v
    vector = out == "bfloat16" or ptk is not None
    if not vector:  # FixPipe REQ8 / DEQF16 with the uint64 parameter
        if scale.dtype == np.int64:
            m1, off9 = param_fields(int(sj))
        else:  # float32 scale: torch_npu calls trans_quant_param(scale, offset)
            oj = None if offset is None else float(offset.reshape(-1)[j if offset.size > 1 else 0])
            m1, off9 = param_fields(encode_param(float(sj), oj))
        prod = rne(rne(Fraction(v), "float32") * m1, "float32")
        if out == "float16":  # DEQF16 overflow saturates: the declared model (README fidelity)
            return rne(prod, "float16", saturate=True)
        s9 = max(-256, min(255, round(prod)))
        return max(-128, min(127, s9 + off9))
    # IEEE zeros carry a sign the Fractions do not: ``neg`` is the sign of a zero ``f``
    f, neg = rne(Fraction(v), "float32"), False
    f, neg = _ieee_mul(f, neg, float(sj))
    if ptk is not None:
        f, neg = _ieee_mul(f, neg, float(ptk[i]))
    if bias is not None and bias.dtype != np.int32:
        b = float(bj)
        exact = f + Fraction(b)
        both_neg_zero = f == 0 and neg and b == 0 and math.copysign(1.0, b) < 0
        f, neg = rne(exact, "float32"), exact < 0 or (exact == 0 and both_neg_zero)
    r = rne(f, out, saturate=True)
    return -0.0 if r == 0 and (f < 0 or (f == 0 and neg)) else r


def _ieee_mul(f: Fraction, neg: bool, c: float) -> tuple[Fraction, bool]:
    """fp32 RNE product of ``f`` (a zero signed by ``neg``) and ``c``, with the product's sign
    for a zero result (IEEE: the sign of an exact or underflowed product is the sign XOR)."""
    exact = f * Fraction(c)
    f_neg = f < 0 or (f == 0 and neg)
    c_neg = math.copysign(1.0, c) < 0
    return rne(exact, "float32"), f_neg != c_neg


def assert_bits(got: np.ndarray, want: np.ndarray, out: str) -> None:
    dt = {"int8": np.int8, "int32": np.int32, "float16": np.float16, "bfloat16": BF16}[out]
    assert got.dtype == np.dtype(dt)
    assert got.shape == want.shape
    if out in ("int8", "int32"):
        assert got.tolist() == want.tolist()
        return
    exp = np.array([float(x) for x in want.reshape(-1)], dtype=np.float64).astype(dt)
    assert np.array_equal(got.reshape(-1).view(np.uint16), exp.view(np.uint16)), (got, want)


# -- generated cases ------------------------------------------------------------------------------

# (out, scale kinds, bias kinds, pertoken, offset allowed)
COMBOS = [
    ("int8", ("int64", "float32"), (None, "int32"), False, True),
    ("float16", ("int64", "float32"), (None, "int32"), False, False),
    ("bfloat16", ("float32", "bfloat16"), (None, "int32", "bfloat16", "float32"), None, False),
    ("float16", ("float32",), (None, "int32", "float32"), True, False),
    ("int32", ("float32", "bfloat16"), (None, "int32"), False, False),
]


def _scale_values(rng, count: int, k: int, out: str, fixpipe: bool) -> np.ndarray:
    """Scales that put |acc * scale| around the int8 / fp16 range, with random low mantissa bits.
    DEQF16 (FixPipe fp16) stays inside the fp16 range: its overflow behaviour is not published;
    the vector path may overflow (its Cast saturates, ops-semantics 0.2)."""
    mag = rng.uniform(0.3, 3.0, count) / (k * 40.0)
    if out == "float16" and fixpipe:
        mag = mag * rng.choice([1.0, 16.0], count)
    elif out in ("float16", "bfloat16", "int32"):
        mag = mag * rng.choice([1.0, 64.0, 2.0**12], count)
    sign = rng.choice([-1.0, 1.0], count)
    return (sign * mag).astype(np.float32)


def build_case(seed: int, combo: int, batched: bool) -> dict:
    out, scales, biases, pertoken, offset_ok = COMBOS[combo]
    rng = np.random.default_rng(seed)
    m, k, n = (int(x) for x in rng.integers(1, [6, 48, 7]))
    bshape = (2,) if batched else ()
    a = rng.integers(-128, 128, (*bshape, m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n) if batched and rng.random() < 0.5 else (*bshape, k, n))
    b = b.astype(np.int8)
    per_channel = bool(rng.random() < 0.6)
    count = n if per_channel else 1
    skind = scales[int(rng.integers(len(scales)))]
    sval = _scale_values(rng, count, k, out, fixpipe=pertoken is False)
    offset = None
    if offset_ok and rng.random() < 0.6:
        offset = (rng.integers(-600, 600, count) / 2.0).astype(np.float32)  # many .5 ties
    if skind == "int64":
        offs = [None] * count if offset is None else offset.tolist()
        params = [encode_param(float(s), o) for s, o in zip(sval.tolist(), offs, strict=True)]
        junk = rng.integers(0, 1 << 13, count)  # bits below M1: FixPipe ignores them
        scale = np.array([p | int(x) for p, x in zip(params, junk, strict=True)], dtype=np.int64)
        offset_arg = None
    elif skind == "bfloat16":
        scale = sval.astype(BF16)
        offset_arg = offset
    else:
        scale = sval
        offset_arg = offset
    bkind = biases[int(rng.integers(len(biases)))]
    bias = None
    if bkind == "int32":
        bias = rng.integers(-50000, 50000, n).astype(np.int32)
    elif bkind is not None:
        bias = (rng.standard_normal(n) * 30).astype(np.float32)
        bias = bias.astype(BF16) if bkind == "bfloat16" else bias
    if bias is not None and batched and rng.random() < 0.5:
        bias = np.stack([bias] * 2)[:, None, :].copy()
        bias[1] = bias[1] * 3 if bias.dtype == np.int32 else bias[1]
    ptk = None
    if pertoken is True or (pertoken is None and rng.random() < 0.5):
        ptk = rng.uniform(0.01, 2.0, m).astype(np.float32)
    trans_x1 = bool(rng.random() < 0.3)
    trans_x2 = bool(rng.random() < 0.5)
    x1 = np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2) if trans_x1 else a
    x2 = np.ascontiguousarray(b.swapaxes(-1, -2)).swapaxes(-1, -2) if trans_x2 else b
    return {"a": a, "b": b, "x1": x1, "x2": x2, "scale": scale,
            "offset": offset, "offset_arg": offset_arg,
            "pertoken": ptk, "bias": bias, "out": out}


def run(case: dict) -> np.ndarray:
    return reference_quant_matmul(case["x1"], case["x2"], case["scale"], offset=case["offset_arg"],
                                  pertoken_scale=case["pertoken"], bias=case["bias"],
                                  output_dtype=case["out"], soc="Ascend910B2")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), combo=st.integers(0, len(COMBOS) - 1),
       batched=st.booleans())
@example(seed=740062291, combo=3, batched=False)  # a zero acc times a negative scale: -0
def test_outputs_match_the_oracle(seed, combo, batched):
    """Every output dtype, with and without bias / offset / per-token scale, per-tensor and
    per-channel scales, ND and transposed layouts, batch broadcast: exactly the oracle's bits."""
    case = build_case(seed, combo, batched)
    assert_bits(run(case), oracle(case), case["out"])


@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_each_combination_once(combo):
    """A fixed example per supported combination (the hypothesis test's floor)."""
    for seed in range(4):
        case = build_case(seed * 7919 + combo, combo, batched=seed % 2 == 1)
        assert_bits(run(case), oracle(case), case["out"])


# -- pinned rules ---------------------------------------------------------------------------------


def _ones(k: int, value: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((1, k), value, np.int8), np.ones((k, 1), np.int8)


def test_requant_clamps_before_adding_the_offset():
    """REQ8: acc*scale = 300 with offset -200 gives clamp(300 -> 255) - 200 = 55, not 100."""
    x1, x2 = _ones(3, 100)
    y = reference_quant_matmul(x1, x2, np.array([1.0], np.float32),
                               offset=np.array([-200.0], np.float32), soc="Ascend910B2")
    assert y.tolist() == [[55]]


def test_requant_rounds_half_to_even():
    """REQ8 rounds the scaled value half to even: 2.5 -> 2, 3.5 -> 4; offset 2.5 -> 2."""
    x1 = np.array([[5], [7]], np.int8)
    x2 = np.ones((1, 1), np.int8)
    y = reference_quant_matmul(x1, x2, np.array([0.5], np.float32), soc="Ascend910B2")
    assert y.ravel().tolist() == [2, 4]
    y = reference_quant_matmul(x1, x2, np.array([0.5], np.float32),
                               offset=np.array([2.5], np.float32), soc="Ascend910B2")
    assert y.ravel().tolist() == [4, 6]


def test_float32_scale_is_truncated_for_fixpipe_outputs():
    """fp16 output with a float32 scale goes through trans_quant_param: 0x3F801FFF truncates to
    1.0, so acc = 2049 gives fp16(2049) = 2048 (the untruncated product would give 2052)."""
    scale = np.array([bits_f32(0x3F801FFF)], np.float32)
    x1, x2 = np.array([[127] * 16 + [17]], np.int8), np.ones((17, 1), np.int8)
    assert int_dot(x1, x2) == [[2049]]
    y = reference_quant_matmul(x1, x2, scale, output_dtype="float16", soc="Ascend910B2")
    assert y.view(np.uint16).tolist() == np.array([[2048.0]], np.float16).view(np.uint16).tolist()


def test_float32_scale_is_not_truncated_on_the_vector_path():
    """bf16 output (vector epilogue) uses the full fp32 scale: acc = 257 with scale 0x3F801FFF is
    257.25 -> bf16 258 (the truncated scale would give the tie 257 -> 256)."""
    scale = np.array([bits_f32(0x3F801FFF)], np.float32)
    x1, x2 = np.array([[127, 127, 3]], np.int8), np.ones((3, 1), np.int8)
    y = reference_quant_matmul(x1, x2, scale, output_dtype="bfloat16", soc="Ascend910B2")
    assert float(y[0, 0]) == 258.0


def test_float32_scale_route_equals_the_int64_parameter():
    """int8 output: passing float32 scale + offset equals passing the trans_quant_param result."""
    rng = np.random.default_rng(3)
    x1 = rng.integers(-128, 128, (4, 64)).astype(np.int8)
    x2 = rng.integers(-128, 128, (64, 8)).astype(np.int8)
    scale = rng.uniform(1e-4, 3e-3, 8).astype(np.float32)
    offset = np.round(rng.uniform(-20, 20, 8) * 2).astype(np.float32) / 2
    params = np.array([encode_param(float(s), float(o)) for s, o in zip(scale, offset,
                                                                       strict=True)], np.int64)
    a = reference_quant_matmul(x1, x2, scale, offset=offset, soc="Ascend910B2")
    b = reference_quant_matmul(x1, x2, params, soc="Ascend910B2")
    assert a.tolist() == b.tolist()


def test_offset_next_to_an_int64_scale_is_not_applied():
    """With an int64 scale the offset lives in the parameter bits; an offset tensor passed as
    well does not change the result (the kernel reads only the parameter)."""
    x1, x2 = _ones(2, 10)
    q = np.array([encode_param(1.0, None)], np.int64)
    y0 = reference_quant_matmul(x1, x2, q, soc="Ascend910B2")
    y1 = reference_quant_matmul(x1, x2, q, offset=np.array([7.0], np.float32), soc="Ascend910B2")
    assert y0.tolist() == y1.tolist() == [[20]]


def test_int32_bias_is_added_before_dequant():
    """int32 bias enters L0C before scaling: (acc + bias) * scale, fp16 out."""
    x1, x2 = _ones(1, 3)
    y = reference_quant_matmul(x1, x2, np.array([0.5], np.float32),
                               bias=np.array([4], np.int32), output_dtype="float16",
                               soc="Ascend910B2")
    assert float(y[0, 0]) == 3.5


def test_float_bias_is_added_after_scaling():
    """bf16 output: a float bias is added after acc*scale (and after the per-token scale)."""
    x1, x2 = _ones(1, 3)
    y = reference_quant_matmul(x1, x2, np.array([0.5], np.float32),
                               pertoken_scale=np.array([4.0], np.float32),
                               bias=np.array([1.0], np.float32), output_dtype="bfloat16",
                               soc="Ascend910B2")
    assert float(y[0, 0]) == 3 * 0.5 * 4 + 1


def test_int32_output_ignores_the_scale():
    """int32 output is acc + bias; the (float32) scale is not applied."""
    x1, x2 = _ones(4, -7)
    y = reference_quant_matmul(x1, x2, np.array([0.001], np.float32),
                               bias=np.array([5], np.int32), output_dtype="int32",
                               soc="Ascend910B2")
    assert y.dtype == np.int32 and y.tolist() == [[-23]]


def _pack(v: np.ndarray) -> np.ndarray:
    """int4 values -> int32 words, value j of 8 in bits 4j..4j+3 (ops-semantics 2.2)."""
    v = np.ascontiguousarray(v).astype(np.int64) & 0xF
    g = v.reshape(*v.shape[:-1], v.shape[-1] // 8, 8)
    words = sum(g[..., j] << (4 * j) for j in range(8))
    return np.ascontiguousarray(((words + 2**31) % 2**32 - 2**31).astype(np.int32))


@pytest.mark.parametrize("trans_x2", [False, True])
def test_int4_packed_inputs(trans_x2):
    """int32-packed int4 x1 (m, k/8) and x2 (k, n/8) or the transposed view of (n, k/8): the
    logical int4 matmul, fp16 out through DEQF16."""
    rng = np.random.default_rng(11)
    m, k, n = 3, 32, 16
    a = rng.integers(-8, 8, (m, k)).astype(np.int8)
    b = rng.integers(-8, 8, (k, n)).astype(np.int8)
    x1 = _pack(a)
    x2 = _pack(b.T).T if trans_x2 else _pack(b)
    scale = np.array([0.0625], np.float32)
    bias = rng.integers(-100, 100, n).astype(np.int32)
    y = reference_quant_matmul(x1, x2, scale, bias=bias, output_dtype="float16",
                               soc="Ascend910B2")
    case = {"a": a, "b": b, "scale": scale, "offset": None, "pertoken": None, "bias": bias,
            "out": "float16"}
    assert_bits(y, oracle(case), "float16")


def test_310p_validates_and_names_its_declared_dequant_model():
    """On 310P the A2 table's int8 rows validate; the reference gives the L0C -> UB DEQ8 copy's
    values (a declared model: tests/test_dropin_quant_matmul_310p.py) and a descriptor without
    that model is refused."""
    from npusim.ops.quant_matmul import coupled_deq_model

    x1, x2 = _ones(4, 1)
    q = np.array([encode_param(1.0, None)], np.int64)
    plan = validate_quant_matmul(x1, x2, q, soc="Ascend310P3")
    assert plan.coupled and plan.epilogue == "REQ8"
    y = reference_quant_matmul(x1, x2, q, soc="Ascend310P3")
    assert y.dtype == np.int8 and np.all(y == 4)
    assert coupled_deq_model("Ascend310P3") == "fixpipe_equivalent"
    with pytest.raises(NotImplementedError, match="l0c_to_ub_dequant"):
        coupled_deq_model("Ascend910B2")


def test_plan_reports_route_and_epilogue():
    """The plan names the scale route and output path of 6.1 / 6.2."""
    x1, x2 = _ones(4, 1)
    f = np.array([1.0], np.float32)
    assert validate_quant_matmul(x1, x2, f, output_dtype="float16").scale_route == \
        "trans_quant_param"
    p = validate_quant_matmul(x1, x2, f, output_dtype="bfloat16")
    assert (p.scale_route, p.epilogue) == ("as_given", "VECTOR")
    p = validate_quant_matmul(x1, x2, f, output_dtype="float16", pertoken_scale=f)
    assert (p.scale_route, p.epilogue) == ("as_given", "VECTOR")
    assert validate_quant_matmul(x1, x2, f, output_dtype="int32").epilogue == "INT32"


# -- validation -----------------------------------------------------------------------------------

I8 = np.zeros((4, 8), np.int8)
W8 = np.zeros((8, 6), np.int8)
S64 = np.zeros((6,), np.int64)
SF = np.ones((6,), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "exc", "arg"),
    [
        ({"x1": None}, TypeError, "x1"),
        ({"x1": [[1]]}, TypeError, "x1"),
        ({"x1": I8.astype(np.float16)}, TypeError, "x1"),
        ({"x2": W8.astype(np.int32)}, TypeError, "x2"),
        ({"x1": np.zeros(8, np.int8)}, ValueError, "x1"),
        ({"x1": np.zeros((1,) * 5 + (4, 8), np.int8)}, ValueError, "x1"),
        ({"x1": np.zeros((0, 8), np.int8)}, ValueError, "x1"),
        ({"x2": np.zeros((9, 6), np.int8)}, ValueError, "x2"),
        ({"x1": np.zeros((2, 4, 8), np.int8), "x2": np.zeros((3, 8, 6), np.int8)}, ValueError,
         "x1/x2"),
        ({"x1": spec((4, 65536), "int8"), "x2": spec((65536, 6), "int8")}, ValueError, "x1"),
        ({"x2": spec((8, 65536), "int8"), "scale": spec((1,), "int64")}, ValueError, "x2"),
        ({"scale": SF.astype(np.float16)}, TypeError, "scale"),
        ({"scale": np.zeros((4,), np.int64)}, ValueError, "scale"),
        ({"scale": np.zeros((1, 6), np.int64)}, ValueError, "scale"),
        ({"scale": SF, "offset": SF.astype(np.float16)}, TypeError, "offset"),
        ({"scale": SF, "offset": np.ones(4, np.float32)}, ValueError, "offset"),
        ({"scale": SF, "offset": SF, "output_dtype": "float16"}, ValueError, "offset"),
        ({"scale": SF, "pertoken_scale": np.ones(5, np.float32), "output_dtype": "bfloat16"},
         ValueError, "pertoken_scale"),
        ({"scale": SF, "pertoken_scale": np.ones(4, np.float16), "output_dtype": "bfloat16"},
         TypeError, "pertoken_scale"),
        ({"scale": SF, "pertoken_scale": np.ones(4, np.float32)}, ValueError, "pertoken_scale"),
        ({"bias": np.zeros(6, np.int8)}, TypeError, "bias"),
        ({"bias": np.zeros(5, np.int32)}, ValueError, "bias"),
        ({"bias": np.zeros((1, 6), np.int32)}, ValueError, "bias"),
        ({"bias": np.zeros((1, 1, 6), np.int32)}, ValueError, "bias"),
        ({"bias": np.zeros(6, np.float16), "scale": SF, "output_dtype": "bfloat16"}, ValueError,
         "bias"),
        ({"bias": np.zeros(6, BF16), "scale": SF, "output_dtype": "int32"}, ValueError, "bias"),
        ({"bias": np.zeros(6, np.float32), "output_dtype": "float16"}, ValueError, "bias"),
        ({"output_dtype": "float32"}, TypeError, "output_dtype"),
        ({"output_dtype": "bfloat16"}, ValueError, "scale"),
        ({"output_dtype": "int32"}, ValueError, "scale"),
        ({"scale": SF.astype(BF16), "output_dtype": "float16"}, ValueError, "scale"),
        ({"scale": SF.astype(BF16)}, ValueError, "scale"),
    ],
)
def test_validation_names_the_argument(kwargs, exc, arg):
    """Each constraint of 6.1 / 6.2 and the combination table raises naming its argument."""
    call = {"x1": I8, "x2": W8, "scale": S64}
    call.update(kwargs)
    x1, x2, scale = call.pop("x1"), call.pop("x2"), call.pop("scale")
    with pytest.raises(exc, match=rf"^{arg}:"):
        validate_quant_matmul(x1, x2, scale, soc="Ascend910B2", **call)


def test_batched_bias_must_match_the_output_batch():
    """A (batch, 1, n) bias needs a 3-D output whose batch it equals."""
    x1 = np.zeros((3, 4, 8), np.int8)
    validate_quant_matmul(x1, W8, S64, bias=np.zeros((3, 1, 6), np.int32))
    with pytest.raises(ValueError, match=r"^bias:.*\(3, 1, 6\)"):
        validate_quant_matmul(x1, W8, S64, bias=np.zeros((2, 1, 6), np.int32))


def test_int4_rules():
    """int4 (int32-packed): x2 must be 2-D, x1 not transposed, a 2-D scale is per-group A4W4
    and needs group_sizes, and the 310P has no int4."""
    x1 = np.zeros((4, 2), np.int32)
    x2 = np.zeros((16, 1), np.int32)
    assert validate_quant_matmul(x1, x2, np.ones(1, np.float32),
                                 output_dtype="float16").k == 16
    with pytest.raises(ValueError, match=r"^x2:"):
        validate_quant_matmul(x1, np.zeros((1, 16, 1), np.int32), S64[:1],
                              output_dtype="float16")
    with pytest.raises(ValueError, match=r"^x1:"):
        validate_quant_matmul(np.zeros((2, 4), np.int32).T, np.zeros((16, 1), np.int32), S64[:1],
                              output_dtype="float16")
    with pytest.raises(ValueError, match=r"^scale: a 2-D .* A4W4, which needs group_sizes"):
        validate_quant_matmul(x1, x2, np.ones((2, 8), np.float32), output_dtype="float16")
    with pytest.raises(TypeError, match=r"^x1:"):
        validate_quant_matmul(x1, x2, S64[:1], output_dtype="float16", soc="Ascend310P3")


def test_310p_table():
    """Atlas inference series: no per-token scale, no bf16 / int32 output."""
    with pytest.raises(ValueError, match=r"^pertoken_scale:"):
        validate_quant_matmul(I8, W8, SF, pertoken_scale=np.ones(4, np.float32),
                              output_dtype="float16", soc="Ascend310P3")
    with pytest.raises(ValueError, match=r"^output_dtype:"):
        validate_quant_matmul(I8, W8, SF, output_dtype="bfloat16", soc="Ascend310P3")


def test_torch_npu_api_on_numpy():
    """npusim.torch_npu.npu_quant_matmul: numpy in -> numpy out, output_dtype as a numpy dtype,
    same bits as the reference."""
    from npusim import torch_npu

    rng = np.random.default_rng(5)
    x1 = rng.integers(-128, 128, (3, 16)).astype(np.int8)
    x2 = rng.integers(-128, 128, (16, 4)).astype(np.int8)
    scale = np.full(4, 0.01, np.float32)
    got = torch_npu.npu_quant_matmul(x1, x2, scale, output_dtype=np.float16)
    want = reference_quant_matmul(x1, x2, scale, output_dtype="float16")
    assert isinstance(got, np.ndarray)
    assert got.view(np.uint16).tolist() == want.view(np.uint16).tolist()
    assert torch_npu.npu_quant_matmul(x1, x2, scale).dtype == np.int8
