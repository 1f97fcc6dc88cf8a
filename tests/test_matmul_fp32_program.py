"""fp32 matmul as a tiled program (issue 16): fp32 A / B fractals of 16 x 8 (k0 = 32 B / 4) in
L0A / L0B, Mmad at the descriptor's fp32 rate, fp32 L0C out through FixPipe (fp32, or F322F16
for an fp16 output is not legal: the output is fp32 or the input dtype). Values are replayed from
the program's instructions (the semantics table's Mmad, fractal depth from the operand dtype)
and equal the declared oracle (ops.matmul.reference_matmul: the SoC's cube accumulation model
with k0 = 8; the split-K model when the default tiling splits K) bit for bit; the timing-only
run has the functional run's cycles. HF32 (allow_hf32=True) is a declared model: see
tests/test_matmul_hf32.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu as tn
from npusim.ops.matmul import last_two_transposed, reference_matmul
from npusim.spec import spec

SOCS = ("Ascend910B2", "Ascend910_9391")


def _u32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _operands(m: int, k: int, n: int, trans_b: bool, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, (b.T if trans_b else b)


def _check(soc: str, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> npusim.SimResult:
    f = npusim.simulate("matmul", soc, a=a, b=b, bias=bias)
    t = npusim.simulate("matmul", soc, a=spec(a.shape, "float32"),
                        b=spec(b.shape, "float32",
                               transposed=last_two_transposed(b.shape, b.strides, b.itemsize)),
                        bias=None if bias is None else spec(bias.shape, "float32"))
    assert t.outputs is None and f.cycles == t.cycles > 0
    sck = f.tiling.single_core_k if f.tiling.k_dim > 1 else None
    ref = reference_matmul(a, b, bias=bias, soc=soc, single_core_k=sck)
    assert f.outputs.dtype == np.float32 and f.outputs.shape == ref.shape
    assert np.array_equal(_u32(f.outputs), _u32(ref))
    return f


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 80), k=st.integers(1, 300), n=st.integers(1, 96),
       trans_b=st.booleans(), with_bias=st.booleans(), soc=st.sampled_from(SOCS),
       seed=st.integers(0, 2**16))
def test_fp32_program_replays_the_oracle_bits(m, k, n, trans_b, with_bias, soc, seed):
    """Ragged M / K / N (partial fractals: K not a multiple of 8), transposed B, bias: the
    replayed fp32 output equals the oracle and the torch_npu-named API bit for bit."""
    a, b = _operands(m, k, n, trans_b, seed)
    bias = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32) \
        if with_bias else None
    f = _check(soc, a, b, bias)
    api = tn.matmul(a, b, bias=bias, soc=soc)
    if f.tiling.k_dim == 1:
        assert np.array_equal(_u32(f.outputs), _u32(api))


def test_fp32_split_k_program_replays_the_split_model():
    """A decode-shaped fp32 call (M = 16, K = 8192, N = 16) splits K over the cube cores with the
    AIV reduction: its bits are the declared split-K model's, not the unsplit sum's."""
    a, b = _operands(16, 8192, 16, False, 3)
    f = _check("Ascend910B2", a, b, None)
    assert f.tiling.k_dim > 1 and "split-K" in f.kernel_name
    whole = reference_matmul(a, b, soc="Ascend910B2")
    assert not np.array_equal(_u32(f.outputs), _u32(whole))  # the model is visible


def test_fp32_runs_at_the_fp32_cube_rate():
    """Same shape and tiling shape, fp32 vs fp16 inputs: the fp32 Mmads take the descriptor's
    fp32 cycles (1024 MACs per cycle vs 4096, 16 x 8 x 16 fractals): the cube (M) pipe is
    busier by more than 2x."""
    shape = {"a": (256, 1024), "b": (1024, 256)}
    busy = {}
    for dt in ("float16", "float32"):
        r = npusim.simulate("matmul", "Ascend910B2", a=spec(shape["a"], dt),
                            b=spec(shape["b"], dt), out_dtype="float32")
        busy[dt] = sum(v for (core, pipe), v in r.pipe_busy().items() if pipe == "M")
    assert busy["float32"] > 2 * busy["float16"], busy


def test_fp32_is_refused_where_the_cube_has_none():
    a, b = _operands(16, 64, 32, False, 0)
    with pytest.raises(ValueError, match="no float32 matmul"):
        npusim.simulate("matmul", "Ascend310P3", a=a, b=b)
