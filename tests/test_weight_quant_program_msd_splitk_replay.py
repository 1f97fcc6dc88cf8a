"""The MsdSplitK kernel, run functionally: its output is read from the simulated GM after every
typed instruction ran (block digit split, exact integer cube, per-block recombination), and
equals the numerics model (the oracle) bit for bit - per-channel int8 / int4 K blocks,
per-group int4 with both inner_precise modes, offset, bias, fp16 / bf16 x."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.numerics import pack_int4
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args

B2 = "Ascend910B2"


def bits(a):
    return np.asarray(a).view(np.uint16)


def _call(seed, m, k, n, xdt, wdt, g, off, bias, trans, ip=0):
    rng = np.random.default_rng(seed)
    xd = np.float16 if xdt == "float16" else ml_dtypes.bfloat16
    x = rng.standard_normal((m, k)).astype(np.float32).astype(xd)
    lo, hi = (-8, 8) if wdt == "int4" else (-128, 128)
    w = rng.integers(lo, hi, (k, n)).astype(np.int8)
    groups = k // g if g else 1
    sc = (rng.random((groups, n)) * 0.05 + 0.01).astype(xd)
    of = (rng.standard_normal((groups, n)) * 3).astype(xd) if off else None
    if not g:
        sc, of = sc[0], None if of is None else of[0]
    mat = np.ascontiguousarray(w.T if trans else w)
    mat = pack_int4(mat) if wdt == "int4" else mat
    weight = mat.T if trans else mat
    b = rng.standard_normal(n).astype(np.float16 if xdt == "float16" else np.float32)
    return dict(x=x, weight=weight, antiquant_scale=sc, antiquant_offset=of,
                bias=b if bias else None, antiquant_group_size=g, inner_precise=ip)


def _check(kw):
    r = npusim.simulate("weight_quant_batchmatmul", B2, kernel="MsdSplitK", **kw)
    assert r.kernel_name == "MsdSplitK"
    assert "functional_replay" in r.run.kernel.meta
    vec = [i for c in r.run.kernel.cores for i in c.instrs if i.kind == "vec"]
    assert vec and all(i.fn is None for i in vec), "every vector instruction is typed"
    args = normalize_args(kw["x"], kw["weight"], kw["antiquant_scale"], kw["antiquant_offset"],
                          bias=kw["bias"], antiquant_group_size=kw["antiquant_group_size"],
                          inner_precise=kw["inner_precise"])
    want = compute(args, "MsdSplitK", B2, r.tiling)
    assert np.array_equal(bits(r.outputs), bits(want))
    assert np.count_nonzero(bits(r.outputs)) > r.outputs.size // 2


@pytest.mark.parametrize(
    ("m", "k", "n", "xdt", "wdt", "g", "off", "bias", "trans", "ip"),
    [
        (4, 512, 128, "float16", "int4", 0, True, True, True, 0),  # per-channel int4
        (3, 14336, 64, "bfloat16", "int8", 0, True, True, False, 0),  # int8, K > 13696: blocks
        (3, 1024, 256, "bfloat16", "int4", 128, True, True, False, 0),
        (3, 1024, 256, "float16", "int4", 64, True, False, False, 1),  # fp16 recombination
        (8, 8192, 128, "bfloat16", "int4", 128, False, True, False, 1),  # several passes, packs
    ],
)  # fmt: skip
def test_msd_split_k_replay_equals_oracle(m, k, n, xdt, wdt, g, off, bias, trans, ip):
    _check(_call(m + k + n, m, k, n, xdt, wdt, g, off, bias, trans, ip))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    per_group=st.booleans(),
    m=st.integers(1, 16),
    k_units=st.integers(1, 6),
    n64=st.integers(1, 3),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    ip=st.sampled_from([0, 1]),
    g=st.sampled_from([64, 128]),
    seed=st.integers(0, 2**16),
)
def test_msd_split_k_replay_property(per_group, m, k_units, n64, xdt, off, bias, ip, g, seed):
    """Random legal MsdSplitK calls (per-group int4 !transB, M <= g / 8; per-channel int4
    transB with N >= 2M): the replayed bits equal the oracle's."""
    if per_group:
        m = min(m, g // 8)
        kw = _call(seed, m, g * (k_units + 1), 64 * n64, xdt, "int4", g, off, bias, False, ip)
    else:
        kw = _call(seed, m, 128 * k_units, max(64 * n64, 2 * m), xdt, "int4", 0, off, bias,
                   True)
    _check(kw)
