"""quant_matmul with REQ8 (int8) / DEQF16 (fp16) output and a multi-core split-K tiling: the
AIVs reduce the int32 partials and run FixPipe's formula on the vector unit (declared model
``SPLIT_K_REQUANT_MODEL``). int32 partial sums are exact, so the bits equal the non-split
FixPipe reference (uint views) for every finite product; race-checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npusim
from npusim.ops.matmul_plans import SPLIT_K_REQUANT_MODEL
from npusim.ops.matmul_tiling import MatmulTiling
from npusim.ops.quant_matmul import reference_quant_matmul
from npusim.spec import TensorSpec
from npusim.torch_npu import npu_trans_quant_param

SOC = "Ascend910B2"


def _u(a: np.ndarray) -> np.ndarray:
    return a.view({1: np.uint8, 2: np.uint16}[a.dtype.itemsize])


def split_k_tiling(m: int, k: int, n: int, k_dim: int, base_k: int = 64) -> MatmulTiling:
    base_m, base_n = min(128, 16 * math.ceil(m / 16)), min(128, 16 * math.ceil(n / 16))
    sck = base_k * math.ceil(k / (k_dim * base_k))
    step = math.gcd(4, sck // base_k)
    return MatmulTiling(base_m=base_m, base_n=base_n, base_k=base_k,
                        single_core_m=base_m * math.ceil(m / base_m), single_core_n=base_n,
                        single_core_k=sck, m_dim=1, n_dim=math.ceil(n / base_n),
                        k_dim=math.ceil(k / sck), step_ka=step, step_kb=step)


@st.composite
def calls(draw):
    m = draw(st.integers(1, 80))
    k = 32 * draw(st.integers(4, 48))
    n = 16 * draw(st.integers(1, 24))
    k_dim = draw(st.integers(2, 4))
    out = draw(st.sampled_from(["int8", "float16"]))
    per_channel = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, (m, k)).astype(np.int8)
    x2 = rng.integers(-128, 128, (k, n)).astype(np.int8)
    sc = (10.0 ** rng.uniform(-5, -2.5, n if per_channel else 1)).astype(np.float32)
    off = None
    if out == "int8" and draw(st.booleans()):
        off = rng.integers(-60, 60, n if per_channel else 1).astype(np.float32)
    q = npu_trans_quant_param(sc, off) if off is not None else npu_trans_quant_param(sc)
    bias = rng.integers(-50000, 50000, n).astype(np.int32) if draw(st.booleans()) else None
    return dict(x1=x1, x2=x2, scale=np.asarray(q), bias=bias, output_dtype=out), k_dim


@settings(max_examples=25, deadline=None)
@given(calls())
def test_split_k_requant_bits_equal_the_fixpipe_reference(call):
    kw, k_dim = call
    m, k = kw["x1"].shape
    n = kw["x2"].shape[1]
    t = split_k_tiling(m, k, n, k_dim)
    res = npusim.simulate("quant_matmul", SOC, tiling=t, check_races=True, **kw)
    want = reference_quant_matmul(kw["x1"], kw["x2"], kw["scale"], bias=kw["bias"],
                                  output_dtype=kw["output_dtype"], soc=SOC)
    assert t.k_dim > 1 and "split-K" in res.kernel_name
    assert res.run.kernel.meta["declared_split_k_requant"] == SPLIT_K_REQUANT_MODEL
    got = np.asarray(res.outputs)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(_u(got), _u(want))


@pytest.mark.parametrize("out", ["int8", "float16"])
def test_saturation_and_timing_only(out):
    """Products far past the output range saturate as FixPipe's do (int8 -128 / 127, fp16
    +-65504); a timing-only run of the same tiling takes the same cycles."""
    rng = np.random.default_rng(3)
    m, k, n = 20, 512, 64
    x1 = rng.integers(-128, 128, (m, k)).astype(np.int8)
    x2 = rng.integers(-128, 128, (k, n)).astype(np.int8)
    q = np.asarray(npu_trans_quant_param(np.full(n, 3.0, np.float32)))
    t = split_k_tiling(m, k, n, 2)
    res = npusim.simulate("quant_matmul", SOC, tiling=t, x1=x1, x2=x2, scale=q,
                          output_dtype=out)
    want = reference_quant_matmul(x1, x2, q, output_dtype=out, soc=SOC)
    got = np.asarray(res.outputs)
    assert np.array_equal(_u(got), _u(want))
    big = 127 if out == "int8" else 65504
    assert (np.abs(got.astype(np.float64)) >= big).mean() > 0.5
    spec = npusim.simulate("quant_matmul", SOC, tiling=t, x1=TensorSpec((m, k), "int8"),
                           x2=TensorSpec((k, n), "int8"), scale=TensorSpec((n,), "int64"),
                           output_dtype=out)
    assert spec.outputs is None and spec.run.cycles == res.run.cycles


def test_nine_bit_clamp_comes_before_the_offset():
    """REQ8 clamps rint(v) to [-256, 255] before adding the offset (v = 300, offset -200 gives
    55, not 100): values of v beyond the 9-bit range with a large negative offset."""
    rng = np.random.default_rng(5)
    m, k, n = 16, 256, 32
    x1 = rng.integers(-128, 128, (m, k)).astype(np.int8)
    x2 = rng.integers(-128, 128, (k, n)).astype(np.int8)
    acc = x1.astype(np.int64) @ x2.astype(np.int64)
    sc = np.full(n, 600.0 / np.abs(acc).max(), np.float32)
    q = np.asarray(npu_trans_quant_param(sc, np.full(n, -200.0, np.float32)))
    res = npusim.simulate("quant_matmul", SOC, tiling=split_k_tiling(m, k, n, 2), x1=x1, x2=x2,
                          scale=q, output_dtype="int8")
    want = reference_quant_matmul(x1, x2, q, output_dtype="int8", soc=SOC)
    v = acc * sc.astype(np.float64)
    assert (v > 256).any() and (want[v > 256] == 55).all()
    assert np.array_equal(_u(np.asarray(res.outputs)), _u(want))
