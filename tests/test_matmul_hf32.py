"""HF32 matmul (allow_hf32=True with fp32 inputs), a declared model: the SoC descriptor's
``numerics.hf32`` (mantissa bits, rounding; the AscendC docs publish the rounding - SetHF32
transMode 0 = to nearest, ties to even - but not the width) rounds the fp32 L0A / L0B operands
inside each Mmad, then the fp32 cube model applies. The replayed output equals the plain fp32
program on the pre-rounded operands bit for bit and equals the torch_npu API; runs name the
model in their notes and metadata and never claim device bit-exactness."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu as tn
from npusim.hw import load_soc
from npusim.numerics.hf32 import round_to_hf32
from npusim.spec import spec


def _u(a):
    return np.asarray(a).view(np.uint32)


def _oracle(v: float, bits: int, rounding: str) -> float:
    """Round-to-nearest at 2^(e - bits) by exact rationals (e: the value's binade, subnormals
    at fp32's smallest exponent), ties to even or away from zero; overflow -> inf."""
    if v == 0 or not np.isfinite(v):
        return v
    x = Fraction(v)
    e = max(abs(x).numerator.bit_length() - abs(x).denominator.bit_length(), -126)
    while Fraction(2) ** e > abs(x):
        e -= 1
    while Fraction(2) ** (e + 1) <= abs(x):
        e += 1
    e = max(e, -126)
    q = abs(x) / Fraction(2) ** (e - bits)
    lo = q.numerator // q.denominator
    frac = q - lo
    up = frac > Fraction(1, 2) or (frac == Fraction(1, 2) and (rounding == "ties_away" or lo % 2))
    r = (lo + up) * Fraction(2) ** (e - bits)
    if r >= Fraction(2) ** 128:
        return float(np.copysign(np.inf, v))
    return float(np.copysign(float(r), v))


@settings(max_examples=300, deadline=None)
@given(w=st.integers(0, 2**32 - 1), bits=st.sampled_from([1, 7, 10, 11, 22]),
       rounding=st.sampled_from(["rne", "ties_away"]))
def test_round_to_hf32_matches_exact_rounding(w, bits, rounding):
    """Every fp32 bit pattern (normals, subnormals, the top binade's carry into inf): the bit
    arithmetic equals exact rational rounding; inf / NaN pass unchanged."""
    x = np.array([w], np.uint32).view(np.float32)
    got = round_to_hf32(x, bits, rounding)
    if np.isnan(x[0]):
        assert np.isnan(got[0])
        return
    want = np.float32(_oracle(float(x[0]), bits, rounding))
    assert _u(got)[0] == np.array([want], np.float32).view(np.uint32)[0]


def test_round_to_hf32_ties():
    one = np.float32(1)
    v = np.array([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11)], np.float32)
    assert round_to_hf32(v, 10, "rne").tolist() == [one, 1 + 2**-9, -one]
    assert round_to_hf32(v, 10, "ties_away").tolist() == [1 + 2**-10, 1 + 2**-9, -(1 + 2**-10)]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 150), k=st.integers(1, 600), n=st.integers(1, 150), bias=st.booleans(),
       soc=st.sampled_from(["Ascend910B2", "Ascend910_9391"]), seed=st.integers(0, 2**16))
def test_hf32_program_equals_fp32_on_rounded_operands(m, k, n, bias, soc, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((m, k)) * 3).astype(np.float32)
    b = (rng.standard_normal((k, n)) * 3).astype(np.float32)
    kw = {"bias": rng.standard_normal(n).astype(np.float32)} if bias else {}
    r = npusim.simulate("matmul", soc, a=a, b=b, allow_hf32=True, **kw)
    hf = load_soc(soc).numerics.hf32
    bits, rounding = hf.mantissa_bits, hf.rounding
    ra, rb = round_to_hf32(a, bits, rounding), round_to_hf32(b, bits, rounding)
    plain = npusim.simulate("matmul", soc, a=ra, b=rb, **kw)
    assert np.array_equal(_u(r.outputs), _u(plain.outputs))
    assert np.array_equal(_u(r.outputs), _u(tn.matmul(a, b, allow_hf32=True, soc=soc, **kw)))
    assert r.cycles == plain.cycles  # declared: HF32 at the fp32 cube rate
    t = npusim.simulate("matmul", soc, a=spec((m, k), "float32"), b=spec((k, n), "float32"),
                        allow_hf32=True, **{x: spec((n,), "float32") for x in kw})
    assert t.cycles == r.cycles
    mm = [i for c in r.run.kernel.cores for i in c.instrs if i.kind == "mmad"]
    assert mm and {i.hf32 for i in mm} == {f"m{bits}_{rounding}"}


def test_hf32_run_names_its_declared_model():
    a = np.full((16, 64), 1 + 2**-12, np.float32)
    r = npusim.simulate("matmul", "Ascend910B2", a=a, b=a.T.copy(), allow_hf32=True)
    assert "numerics.hf32" in r.run.kernel.meta["hf32_model"]
    note = " ".join(r.notes)
    assert "declared model, numerics.hf32 = 10" in note and "not claimed bit-exact" in note
    assert np.all(r.outputs == 64)  # 1 + 2^-12 rounds to 1 under 10 mantissa bits (RNE)


def test_hf32_without_a_declared_format_names_the_field():
    from types import SimpleNamespace

    from npusim.ops.matmul import hf32_of

    with pytest.raises(NotImplementedError, match=r"numerics\.hf32"):
        hf32_of(SimpleNamespace(name="X", numerics=SimpleNamespace(hf32=None)))
    with pytest.raises(ValueError, match="Ascend310P3 has no float32 matmul"):
        npusim.simulate("matmul", "Ascend310P3", a=spec((16, 64), "float32"),
                        b=spec((64, 16), "float32"), allow_hf32=True)
