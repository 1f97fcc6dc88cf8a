"""Custom kernel, run functionally: the output is replayed from the program's instructions (vector
dequant into UB, GM workspace, Mmad in the declared cube model, FixPipe) and equals the numerics
model ``compute()`` bit for bit."""

import numpy as np
import pytest
from _wqbmm_replay import B2, bits, check_replay, wqbmm_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.isa.semantics import supplied_semantics
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args
from npusim.torch_npu import npu_trans_quant_param


@pytest.mark.parametrize(
    ("seed", "m", "k", "n", "xdt", "wdt", "g", "off", "bias", "trans"),
    [
        (1, 65, 256, 128, "float16", "int8", 0, True, True, False),
        (2, 96, 320, 192, "bfloat16", "int8", 64, True, True, False),  # partial last group
        (3, 80, 256, 128, "float16", "int4", 128, True, False, False),
        (4, 128, 256, 64, "float16", "int8", 0, False, False, True),
        (5, 100, 256, 128, "bfloat16", "int4", 0, True, True, True),
    ],
)  # fmt: skip
def test_custom_replay_equals_numerics_model(seed, m, k, n, xdt, wdt, g, off, bias, trans):
    """fp16 / bf16, int8 / int4, per-channel / per-group, offset, bias, transposed weight."""
    kw = wqbmm_call(seed, m, k, n, xdt=xdt, wdt=wdt, group=g, offset=off, bias=bias,
                    trans=trans)
    check_replay(kw, "Custom")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(65, 160),
    k32=st.integers(1, 16),
    n16=st.integers(1, 16),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    wdt=st.sampled_from(["int8", "int4"]),
    g=st.sampled_from([0, 32, 64, 128]),
    off=st.booleans(),
    bias=st.booleans(),
    trans=st.booleans(),
    per_tensor=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_custom_replay_property(m, k32, n16, xdt, wdt, g, off, bias, trans, per_tensor, seed):
    """Random legal Custom calls (M > 64; K a multiple of 32, N of 16; per-tensor, per-channel
    or per-group with tiles that start inside a group; transposed weights dequantised in their
    stored layout): every vector instruction is typed and the replayed bits equal the oracle's."""
    k, n = 32 * k32, 16 * n16
    g = g if g < k and not per_tensor else 0
    kw = wqbmm_call(seed, m, k, n, xdt=xdt, wdt=wdt, group=g, offset=off, bias=bias,
                    trans=trans, per_tensor=per_tensor)
    r = check_replay(kw, "Custom")
    assert r.outputs.shape == (m, n)


@pytest.mark.parametrize("per_channel", [True, False])
def test_custom_replay_int8_output(per_channel):
    """int8 output: the FixPipe requant from the semantics table - one uint64 parameter
    (QF322B8_PRE) or each tile's columns staged GM -> L1 -> FB (VQF322B8_PRE)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((70, 128)).astype(np.float16)
    w = rng.integers(-128, 128, (128, 96)).astype(np.int8)
    sc = np.array([0.02], np.float16)
    if per_channel:
        qs = (rng.random(96) * 0.5 + 0.1).astype(np.float32)
        qo = (rng.standard_normal(96) * 4).astype(np.float32)
    else:
        qs, qo = np.array([0.3], np.float32), None
    r = npusim.simulate("weight_quant_batchmatmul", B2, x=x, weight=w, antiquant_scale=sc,
                        quant_scale=qs, quant_offset=qo)
    assert r.kernel_name == "Custom" and r.outputs.dtype == np.int8
    args = normalize_args(x, w, sc, None, npu_trans_quant_param(qs, qo))
    want = compute(args, "Custom", B2, r.tiling)
    assert np.array_equal(bits(r.outputs), bits(want))
    assert len(np.unique(r.outputs)) > 10
    kern = r.run.kernel
    assert supplied_semantics(kern) == {}, "no value closure left in the Custom program"
    fixes = {i.mode for c in kern.cores for i in c.instrs if i.kind == "fix"}
    assert fixes == {"VQF322B8_PRE" if per_channel else "QF322B8_PRE"}
    fb_loads = [i for c in kern.cores for i in c.instrs if i.name == "quant params L1->FB"]
    assert bool(fb_loads) == per_channel
