"""Plain matmul: bit-exact to the declared cube accumulation model, and its validation rules.

The oracle is written here with fractions.Fraction from the model's definition (npusim.numerics
.cube docstring and the SoC descriptor field numerics.cube_accumulation): per k-fractal (32 B of
input: 16 fp16/bf16, 8 fp32) the products are summed exactly and rounded once to fp32; fractal
sums are added to the fp32 accumulator (initialised with the bias) in increasing k order, each add
rounded to fp32; the result is rounded (RNE) to the output dtype.
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.hw import load_soc
from npusim.ops.matmul import reference_matmul, validate_matmul

BF16 = ml_dtypes.bfloat16
DT = {"float16": np.float16, "bfloat16": BF16, "float32": np.float32}
FORMATS = {"float32": (24, -126, 127), "float16": (11, -14, 15), "bfloat16": (8, -126, 127)}
K0 = {"float16": 16, "bfloat16": 16, "float32": 8}


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


def oracle(a, b, bias, in_dtype, out_dtype, model="fractal_exact_fp32_sequential",
           saturate=False):
    """Expected (batch.., m, n) output values (Fractions / inf) of the declared model."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k = a.shape[-2:]
    n = b.shape[-1]
    a = np.broadcast_to(a, (*batch, m, k))
    b = np.broadcast_to(b, (*batch, k, n))
    k0 = K0[in_dtype]
    res = np.empty((*batch, m, n), dtype=object)
    for idx in np.ndindex(*batch):
        al = [[Fraction(float(x)) for x in row] for row in a[idx].tolist()]
        bl = [[Fraction(float(x)) for x in row] for row in b[idx].tolist()]
        for i in range(m):
            for j in range(n):
                acc = Fraction(0) if bias is None else Fraction(float(bias[j]))
                if model == "exact_round_once":
                    acc = rne(acc + sum(al[i][t] * bl[t][j] for t in range(k)), "float32")
                else:
                    for s in range(0, k, k0):
                        part = rne(sum(al[i][t] * bl[t][j] for t in range(s, min(k, s + k0))),
                                   "float32")
                        acc = rne(acc + part, "float32")
                res[(*idx, i, j)] = acc if out_dtype == "float32" else rne(acc, out_dtype,
                                                                           saturate)
    return res


def assert_bits(got, want, out_dtype):
    dt = DT[out_dtype]
    assert got.dtype == np.dtype(dt) and got.shape == want.shape
    exp = np.array([float(x) for x in want.reshape(-1)], np.float64).astype(dt)
    view = np.uint32 if out_dtype == "float32" else np.uint16
    assert np.array_equal(got.reshape(-1).view(view), exp.view(view)), (got, want)


def _values(rng, shape, dtype):
    """Inputs with mixed magnitudes and signs (so fractal rounding matters), exact in ``dtype``."""
    v = rng.standard_normal(shape) * np.exp2(rng.integers(-6, 7, shape))
    return v.astype(np.float32).astype(DT[dtype])


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), in_dtype=st.sampled_from(["float16", "bfloat16",
                                                                  "float32"]),
       out32=st.booleans(), bias_kind=st.sampled_from([None, "same", "float32"]),
       trans_b=st.booleans(), batched=st.booleans())
def test_matmul_matches_the_declared_model(seed, in_dtype, out32, bias_kind, trans_b, batched):
    """fp16 / bf16 / fp32 in, same or fp32 out, optional bias, ND or transposed B, batch
    broadcast: bit-exact to the fractal_exact_fp32_sequential model (910B2's declaration)."""
    rng = np.random.default_rng(seed)
    m, k, n = (int(x) for x in rng.integers(1, [5, 41, 5]))
    a = _values(rng, ((2,) if batched else ()) + (m, k), in_dtype)
    b = _values(rng, (k, n), in_dtype)
    x2 = np.ascontiguousarray(b.T).T if trans_b else b
    bias = None
    if bias_kind is not None:
        bias = _values(rng, (n,), in_dtype if bias_kind == "same" else "float32")
    out_dtype = "float32" if out32 else in_dtype
    got = reference_matmul(a, x2, out_dtype=out_dtype, bias=bias, soc="Ascend910B2")
    assert_bits(got, oracle(a, b, bias, in_dtype, out_dtype), out_dtype)


def _sequential_example():
    """k = 48 fp16: fractal 0 sums to 2^24, fractals 1 and 2 to 1 each."""
    a = np.zeros((1, 48), np.float16)
    b = np.zeros((48, 1), np.float16)
    a[0, :16] = 1024.0
    b[:16, 0] = 1024.0
    a[0, 16] = a[0, 32] = 1.0
    b[16, 0] = b[32, 0] = 1.0
    return a, b


def test_fractal_sums_are_added_sequentially_in_fp32():
    """Under the default model 2^24 + 1 + 1 accumulates as ((2^24 + 1) -> 2^24) + 1 -> 2^24."""
    a, b = _sequential_example()
    got = reference_matmul(a, b, out_dtype="float32", soc="Ascend910B2")
    assert got.tolist() == [[2.0**24]]


def test_the_soc_declared_model_is_used():
    """A descriptor declaring exact_round_once gives the exactly rounded 2^24 + 2."""
    a, b = _sequential_example()
    soc = load_soc("Ascend910B2", overrides=["numerics.cube_accumulation.model=exact_round_once"])
    got = reference_matmul(a, b, out_dtype="float32", soc=soc)
    assert got.tolist() == [[2.0**24 + 2]]
    assert_bits(got, oracle(a, b, None, "float16", "float32", "exact_round_once"), "float32")


def test_bias_initialises_the_accumulator():
    """The bias is the accumulator's start value: 2^24 bias + 1 + 1 in two fractals -> 2^24."""
    a = np.zeros((1, 32), np.float16)
    b = np.zeros((32, 1), np.float16)
    a[0, 0] = a[0, 16] = 1.0
    b[0, 0] = b[16, 0] = 1.0
    got = reference_matmul(a, b, out_dtype="float32", bias=np.array([2.0**24], np.float32),
                           soc="Ascend910B2")
    assert got.tolist() == [[2.0**24]]


def test_fp16_overflow_is_inf_through_fixpipe_and_saturates_on_310p():
    """The declared FixPipe F322F16 gives inf beyond the fp16 range on A2; the 310P's vector Cast
    saturates to 65504."""
    a = np.full((1, 2), 256.0, np.float16)
    b = np.full((2, 1), 256.0, np.float16)
    assert np.isinf(reference_matmul(a, b, soc="Ascend910B2")[0, 0])
    assert float(reference_matmul(a, b, soc="Ascend310P3")[0, 0]) == 65504.0


def test_310p_cube_has_no_bf16_or_fp32():
    """310P's cube has no bf16 / fp32 matmul: rejected naming ``a``."""
    for dt in ("bfloat16", "float32"):
        x = np.ones((2, 2), DT[dt])
        with pytest.raises(ValueError, match=r"^a: dtype"):
            validate_matmul(x, x, soc="Ascend310P3")


def test_hf32_rounds_fp32_operands_and_is_ignored_for_fp16():
    """allow_hf32 with fp32 inputs rounds them to the declared HF32 (1 + 2^-12 -> 1 under 10
    mantissa bits); with fp16 inputs it is ignored."""
    x = np.full((2, 2), 1 + 2**-12, np.float32)
    assert reference_matmul(x, x, allow_hf32=True, soc="Ascend910B2").tolist() == [[2.0] * 2] * 2
    assert reference_matmul(x, x, soc="Ascend910B2").tolist() != [[2.0] * 2] * 2
    h = np.ones((2, 2), np.float16)
    assert reference_matmul(h, h, allow_hf32=True).tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_layouts_are_recognised_from_strides():
    """A transposed view of a contiguous matrix is recognised as transposed (not copied)."""
    a = np.ones((4, 8), np.float16)
    bt = np.ones((6, 8), np.float16).T
    plan = validate_matmul(a, bt)
    assert plan.trans_b and not plan.trans_a and (plan.m, plan.k, plan.n) == (4, 8, 6)
    assert validate_matmul(np.ones((8, 4), np.float16).T, bt).trans_a


H = np.ones((4, 8), np.float16)
W = np.ones((8, 6), np.float16)


@pytest.mark.parametrize(
    ("kwargs", "exc", "arg"),
    [
        ({"a": None}, TypeError, "a"),
        ({"a": H.astype(np.float64)}, TypeError, "a"),
        ({"b": W.astype(np.float32)}, TypeError, "b"),
        ({"a": np.ones(8, np.float16)}, ValueError, "a"),
        ({"b": np.ones((7, 6), np.float16)}, ValueError, "b"),
        ({"a": np.ones((0, 8), np.float16)}, ValueError, "a"),
        ({"a": np.ones((2, 4, 8), np.float16), "b": np.ones((3, 8, 6), np.float16)}, ValueError,
         "a/b"),
        ({"out_dtype": "bfloat16"}, ValueError, "out_dtype"),
        ({"out_dtype": "int8"}, ValueError, "out_dtype"),
        ({"bias": np.ones(5, np.float16)}, ValueError, "bias"),
        ({"bias": np.ones(6, BF16)}, TypeError, "bias"),
        ({"allow_hf32": 1}, TypeError, "allow_hf32"),
    ],
)
def test_validation_names_the_argument(kwargs, exc, arg):
    """Each rule raises naming its argument."""
    call = {"a": H, "b": W}
    call.update(kwargs)
    a, b = call.pop("a"), call.pop("b")
    with pytest.raises(exc, match=rf"^{arg}:"):
        validate_matmul(a, b, soc="Ascend910B2", **call)


def test_torch_npu_api_on_numpy():
    """npusim.torch_npu.matmul: numpy in -> numpy out, same bits as the reference."""
    from npusim import torch_npu

    rng = np.random.default_rng(2)
    a = _values(rng, (3, 20), "bfloat16")
    b = _values(rng, (5, 20), "bfloat16").T
    got = torch_npu.matmul(a, b, out_dtype=np.float32)
    want = reference_matmul(a, b, out_dtype="float32")
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()


@pytest.mark.parametrize(("m", "k", "n"), [(64, 256, 128), (33, 130, 70), (200, 512, 384)])
def test_310p_bias_broadcast_into_l0c(m, k, n):
    """A coupled 310P core has no BiasTable: the program broadcasts the bias row UB -> L0C and
    the Mmads accumulate onto it; the output equals the bias-as-initial-accumulator reference
    bit for bit."""
    import npusim
    from npusim.ops.matmul import reference_matmul

    rng = np.random.default_rng(m + n)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    bias = (rng.standard_normal(n) * 10).astype(np.float16)
    r = npusim.simulate("matmul", "Ascend310P3", a=a, b=b, bias=bias)
    names = {i.name for c in r.run.kernel.cores for i in c.instrs}
    assert "bias UB->L0C broadcast" in names
    want = reference_matmul(a, b, bias=bias, soc=r.soc)
    assert np.array_equal(np.asarray(r.outputs).view(np.uint16), want.view(np.uint16))
    no_bias = reference_matmul(a, b, soc=r.soc)
    assert not np.array_equal(want.view(np.uint16), no_bias.view(np.uint16))
