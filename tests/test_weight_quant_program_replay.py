"""Custom kernel, run functionally: the output is replayed from the program's instructions (vector
dequant into UB, GM workspace, Mmad in the declared cube model, FixPipe) and equals the numerics
model ``compute()`` bit for bit."""

import ml_dtypes
import numpy as np
import pytest

import npusim
from npusim.numerics import pack_int4
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args
from npusim.torch_npu import npu_trans_quant_param

B2 = "Ascend910B2"


def bits(a):
    a = np.asarray(a)
    return a.view(np.uint16) if a.dtype.itemsize == 2 else a.view(np.uint8)


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
    rng = np.random.default_rng(seed)
    xd = np.float16 if xdt == "float16" else ml_dtypes.bfloat16
    x = rng.standard_normal((m, k)).astype(np.float32).astype(xd)
    lo, hi = (-8, 8) if wdt == "int4" else (-128, 128)
    w = rng.integers(lo, hi, (k, n)).astype(np.int8)
    groups = -(-k // g) if g else 1
    sc = (rng.random((groups, n)) * 0.05 + 0.01).astype(xd)
    of = (rng.standard_normal((groups, n)) * 3).astype(xd) if off else None
    if not g:
        sc, of = sc[0], None if of is None else of[0]
    mat = np.ascontiguousarray(w.T if trans else w)
    mat = pack_int4(mat) if wdt == "int4" else mat
    weight = mat.T if trans else mat
    b = rng.standard_normal(n).astype(np.float16 if xdt == "float16" else np.float32)
    b = b if bias else None
    r = npusim.simulate("weight_quant_batchmatmul", B2, x=x, weight=weight, antiquant_scale=sc,
                        antiquant_offset=of, bias=b, antiquant_group_size=g)
    assert r.kernel_name == "Custom"
    assert "functional_replay" in r.run.kernel.meta
    assert any(i.fn is not None for c in r.run.kernel.cores if c.kind == "aiv" for i in c.instrs
               if i.kind == "vec")
    args = normalize_args(x, weight, sc, of, bias=b, antiquant_group_size=g)
    want = compute(args, "Custom", B2, r.tiling)
    assert np.array_equal(bits(r.outputs), bits(want))
    assert np.any(bits(r.outputs) != 0)


@pytest.mark.parametrize("per_channel", [True, False])
def test_custom_replay_int8_output(per_channel):
    """int8 output: the FixPipe requant with each tile's columns of the quant parameter."""
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
