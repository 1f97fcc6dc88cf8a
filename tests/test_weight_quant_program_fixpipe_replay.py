"""The Fixpipe kernel (int64 antiquant scale), run functionally: the identity matmul with the
offset in the bias table, FixPipe VDEQF16 with the per-column parameters in FB, the fp16 matmul
with the bias as initial value and FixPipe F322F16 give the output, read from the simulated GM;
it equals the numerics model (the oracle) bit for bit."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args
from npusim.torch_npu import npu_trans_quant_param

B2 = "Ascend910B2"


def _run(seed, m, k, n, off, bias):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    q = npu_trans_quant_param((rng.random(n) * 0.02 + 0.001).astype(np.float32))
    kw = {"x": x, "weight": w.T, "antiquant_scale": q}
    if off:
        kw["antiquant_offset"] = rng.integers(-128, 128, n).astype(np.int32)
    if bias:
        kw["bias"] = rng.standard_normal(n).astype(np.float16)
    r = npusim.simulate("weight_quant_batchmatmul", B2, **kw)
    assert r.kernel_name == "Fixpipe" and "functional_replay" in r.run.kernel.meta
    fixes = [i for c in r.run.kernel.cores for i in c.instrs if i.kind == "fix"]
    assert fixes and all(i.fn is None for i in fixes), "FixPipe values from the table"
    args = normalize_args(x, w.T, q, kw.get("antiquant_offset"), bias=kw.get("bias"))
    want = compute(args, "Fixpipe", B2)
    assert np.array_equal(r.outputs.view(np.uint16), want.view(np.uint16))
    assert np.count_nonzero(r.outputs) > r.outputs.size // 2
    return r


def test_fixpipe_replay_partial_n_tile():
    """Tiles narrower than base_n (the identity read as a window, strided L1 rows)."""
    r = _run(1, 24, 384, 320, True, True)
    t = r.tiling
    assert t.single_core_n < t.base_n or t.single_core_n % t.base_n


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 96), k64=st.integers(1, 12), n64=st.integers(1, 8),
       off=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_fixpipe_replay_property(m, k64, n64, off, bias, seed):
    _run(seed, m, 64 * k64, 64 * n64, off, bias)
