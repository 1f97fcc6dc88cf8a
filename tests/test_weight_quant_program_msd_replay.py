"""The Msd kernel, run functionally: its output is read from the simulated GM after every typed
instruction ran through the semantics table (digit split, exact int8 cube, recombination), and
equals the numerics model (the oracle) bit for bit."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args

B2 = "Ascend910B2"


def bits(a):
    a = np.asarray(a)
    return a.view(np.uint16)


def _call(seed, m, k, n, xdt, off, bias, trans, scale_x=1.0):
    rng = np.random.default_rng(seed)
    xd = np.float16 if xdt == "float16" else ml_dtypes.bfloat16
    x = np.clip(rng.standard_normal((m, k)) * scale_x, -60000, 60000)
    x = x.astype(np.float32).astype(xd)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    sc = (rng.random(n) * 0.05 + 0.01).astype(xd)
    of = (rng.standard_normal(n) * 3).astype(xd) if off else None
    b = rng.standard_normal(n).astype(np.float16 if xdt == "float16" else np.float32)
    weight = np.ascontiguousarray(w.T).T if trans else w
    kw = dict(x=x, weight=weight, antiquant_scale=sc, antiquant_offset=of,
              bias=b if bias else None)
    return kw


def _check(kw):
    r = npusim.simulate("weight_quant_batchmatmul", B2, **kw)
    assert r.kernel_name == "Msd"
    assert "functional_replay" in r.run.kernel.meta
    vec = [i for c in r.run.kernel.cores for i in c.instrs if i.kind == "vec"]
    assert vec and all(i.fn is None for i in vec), "every vector instruction is typed"
    args = normalize_args(kw["x"], kw["weight"], kw["antiquant_scale"], kw["antiquant_offset"],
                          bias=kw["bias"])
    want = compute(args, "Msd", B2, r.tiling)
    assert np.array_equal(bits(r.outputs), bits(want))
    assert np.count_nonzero(bits(r.outputs)) > r.outputs.size // 2
    return r


@pytest.mark.parametrize(
    ("m", "k", "n", "xdt", "off", "bias", "trans"),
    [
        (1, 256, 128, "float16", False, False, False),
        (3, 96, 64, "bfloat16", True, True, False),  # K < 128: Div by amax; sequential row sum
        (5, 32, 64, "float16", True, False, True),  # K < 64: ReduceSum
        (8, 4096, 128, "float16", True, False, False),  # K >= 4096: halving row sum
        (16, 6400, 96, "bfloat16", True, True, False),  # a tail chunk in the row sum
        (64, 160, 320, "float16", True, True, True),
    ],
)  # fmt: skip
def test_msd_replay_equals_oracle(m, k, n, xdt, off, bias, trans):
    _check(_call(m * 7 + k, m, k, n, xdt, off, bias, trans))


def test_msd_high_precision_variant_replays():
    """The white-listed HIGH_PRECISION shape takes its row sum from the reconstructed digits."""
    r = _check(_call(36, 36, 8192, 1280, "float16", True, False, True))
    assert r.run.kernel.meta["msd_variant"] == "HIGH_PRECISION"


def test_msd_replay_large_and_tiny_values():
    """x spanning the fp16 range (amax near 65504, and tiny rows) replays exactly."""
    kw = _call(11, 6, 192, 64, "float16", True, True, False, scale_x=20000.0)
    kw["x"][1] = (kw["x"][1].astype(np.float32) * 1e-7).astype(np.float16)
    kw["x"][1, 0] = np.float16(6e-5)
    _check(kw)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 64),
    k32=st.integers(1, 24),
    n32=st.integers(1, 8),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    trans=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_msd_replay_property(m, k32, n32, xdt, off, bias, trans, seed):
    """Random legal Msd shapes (M <= 64, K and N multiples of 32), both x dtypes, offset,
    bias and transposed weight: the replayed bits equal the oracle's."""
    _check(_call(seed, m, 32 * k32, 32 * n32, xdt, off, bias, trans))
