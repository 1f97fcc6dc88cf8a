"""The 310P WeightNz numerics oracle (issue 16): fp16 dequant on the vector unit, fp16 matmul
into fp32 L0C with the bias as initial value, L0C -> UB as fp16 RNE (declared models named in
the run's notes)."""

from __future__ import annotations

import numpy as np
import pytest

import npusim
import npusim.torch_npu as tn
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args
from npusim.ops.weight_quant_batchmatmul.numerics_weight_nz import BIAS_MODEL, L0C_TO_UB_CAST


def _call(rng, m=8, k=96, n=48, offset=True, bias=True):
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.integers(-128, 128, (n, k), dtype=np.int8).T  # transposed view (the 310P layout)
    scale = rng.uniform(0.001, 0.02, n).astype(np.float16)
    kw = {"antiquant_offset": rng.uniform(-3, 3, n).astype(np.float16) if offset else None,
          "bias": rng.standard_normal(n).astype(np.float16) if bias else None}
    return x, w, scale, kw


def test_exact_on_small_integers():
    """With integer x, weight, offset, bias and a power-of-two scale every step is exact, so the
    output is the exact (w + off) * s matmul plus bias."""
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (4, 64)).astype(np.float16)
    w = rng.integers(-8, 8, (32, 64), dtype=np.int8).T
    off = rng.integers(-2, 3, 32).astype(np.float16)
    s = np.full(32, 0.25, np.float16)
    b = rng.integers(-5, 6, 32).astype(np.float16)
    y = tn.npu_weight_quant_batchmatmul(x, w, s, antiquant_offset=off, bias=b, soc="Ascend310P3")
    want = x.astype(np.float64) @ ((w.astype(np.float64) + off) * 0.25) + b
    assert y.dtype == np.float16 and np.array_equal(y.astype(np.float64), want)


@pytest.mark.parametrize(("offset", "bias"), [(False, False), (True, False), (True, True)])
def test_same_order_as_the_a2_custom_fp16_chain(offset, bias):
    """Declared: the 310P order equals Custom's fp16 chain (fp16 Add, Mul; bias as the initial
    accumulator; RNE out), so on the same cube model both give the same bits (uint16 views)."""
    rng = np.random.default_rng(1)
    x, w, scale, kw = _call(rng, offset=offset, bias=bias)
    a310 = normalize_args(x, w, scale, kw["antiquant_offset"], None, None, kw["bias"], 0, 0,
                          soc="Ascend310P3")
    a2 = normalize_args(x, w, scale, kw["antiquant_offset"], None, None, kw["bias"], 0, 0,
                        soc="Ascend910B2")
    y310 = compute(a310, "WeightNz", "Ascend310P3")
    y2 = compute(a2, "Custom", "Ascend910B2")
    assert np.array_equal(y310.view(np.uint16), y2.view(np.uint16))


def test_simulate_names_the_declared_models_and_matches_the_api():
    """simulate on 310P gives the API's bits and names the declared models in its notes."""
    rng = np.random.default_rng(2)
    x, w, scale, kw = _call(rng)
    res = npusim.simulate("weight_quant_batchmatmul", soc="Ascend310P3", x=x, weight=w,
                          antiquant_scale=scale, **kw)
    api = tn.npu_weight_quant_batchmatmul(x, w, scale, **kw, soc="Ascend310P3")
    assert res.kernel_name == "WeightNz"
    assert np.array_equal(res.outputs.view(np.uint16), api.view(np.uint16))
    text = " ".join(res.notes)
    assert BIAS_MODEL in text and L0C_TO_UB_CAST in text
