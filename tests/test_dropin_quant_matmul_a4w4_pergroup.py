"""npu_quant_matmul per-group A4W4 (int4 x int4, per-token x1 scale, per-group scale and fp16
zero point of x2): the public kernel's fp32 chain, checked element by element against an
independent scalar computation, and the refusals of the aclnn checks."""

import numpy as np
import pytest

import npusim.torch_npu as tn
from npusim.numerics import pack_int4

F = np.float32


def _case(m, k, n, gk, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-8, 8, (m, k))
    w = rng.integers(-8, 8, (n, k))  # (n, k): the weight as stored before the transposed view
    scale = rng.uniform(1e-4, 1e-1, (k // gk, n)).astype(np.float32)
    offset = rng.integers(-7, 8, (k // gk, n)).astype(np.float16) + np.float16(0.25)
    ptk = rng.uniform(0.01, 2.0, (m, 1)).astype(np.float32)
    x1 = np.asarray(pack_int4(a.astype(np.int32)))
    x2 = np.asarray(pack_int4(w.astype(np.int32))).T  # (k // 8, n) transposed view
    return a, w, x1, x2, scale, offset, ptk


def _scalar_chain(a, w, scale, offset, ptk, gk, out):
    """One output at a time in Python ints and np.float32 scalars (the kernel's step order)."""
    m, k = a.shape
    n = w.shape[0]
    y = np.empty((m, n), np.float32)
    for i in range(m):
        for j in range(n):
            accu = F(0)
            for g in range(k // gk):
                cols = range(g * gk, (g + 1) * gk)
                acc = sum(int(a[i, t]) * int(w[j, t]) for t in cols)
                rowsum = sum(int(a[i, t]) for t in cols)
                v = F(acc) - F(offset[g, j]) * F(rowsum)
                accu = F(F(scale[g, j]) * F(v)) + accu
            y[i, j] = F(ptk[i, 0]) * accu
    from npusim.numerics import cast_float

    return cast_float(y, out, "rint", saturate=True)


@pytest.mark.parametrize("m,k,n,gk,out", [(2, 1024, 256, 256, "bfloat16"),
                                          (1, 2048, 256, 256, "float16")])
def test_values_follow_the_kernel_chain(m, k, n, gk, out):
    """Rule: per group, (float(acc) - offset * rowsum) * scale summed over groups in fp32, times
    pertoken, cast RINT - bit for bit (uint16 views)."""
    a, w, x1, x2, scale, offset, ptk = _case(m, k, n, gk, seed=m * 7 + n)
    y = tn.npu_quant_matmul(x1, x2, scale, offset=offset, pertoken_scale=ptk,
                            output_dtype=out, group_sizes=[1, 1, gk])
    want = _scalar_chain(a, w, scale, offset, ptk, gk, out)
    assert y.shape == (m, n) and str(y.dtype) == out
    assert np.array_equal(np.asarray(y).view(np.uint16), want.view(np.uint16))


def test_refusals_name_the_argument_and_rule():
    _, _, x1, x2, scale, offset, ptk = _case(2, 1024, 256, 256, seed=1)
    kw = dict(offset=offset, pertoken_scale=ptk, output_dtype="float16", group_sizes=[1, 1, 256])
    with pytest.raises(ValueError, match="bias: must be None"):
        tn.npu_quant_matmul(x1, x2, scale, bias=np.zeros(256, np.int32), **kw)
    with pytest.raises(ValueError, match="transposeX2"):
        tn.npu_quant_matmul(x1, np.ascontiguousarray(x2), scale, **kw)
    with pytest.raises(ValueError, match="pertoken_scale"):
        tn.npu_quant_matmul(x1, x2, scale, **{**kw, "pertoken_scale": ptk.reshape(-1)})
    with pytest.raises(ValueError, match="offset"):
        tn.npu_quant_matmul(x1, x2, scale, **{**kw, "offset": offset.astype(np.float32)})
    with pytest.raises(ValueError, match="output_dtype"):
        tn.npu_quant_matmul(x1, x2, scale, **{**kw, "output_dtype": "int8"})
    with pytest.raises(ValueError, match="group_k = 256 only"):  # ops-nn: group_k 256 only
        tn.npu_quant_matmul(x1, x2, scale[:1], **{**kw, "group_sizes": [1, 1, 96]})
    with pytest.raises(ValueError, match="Atlas inference"):
        tn.npu_quant_matmul(x1, x2, scale, soc="Ascend310P3", **kw)
