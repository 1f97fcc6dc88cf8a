"""Tiled programs of the split-K, Fixpipe and 310P WeightNz kernels of npu_weight_quant_batchmatmul:
they run without races or deadlocks, cover the operands exactly once (MACs, weight bytes), name
their split-K accumulation model, and functional runs return the numerics model's bits."""

import dataclasses

import numpy as np
import pytest
from _wqbmm_replay import B2, args_of, bits, fixpipe_call, nz_call, oracle

import npusim
from npusim.engine.sim import run_kernel
from npusim.ops.weight_quant_batchmatmul import (
    compute,
    default_tiling,
    normalize_args,
)
from npusim.ops.weight_quant_common import WqbmmShape
from npusim.ops.weight_quant_program import build_wqbmm
from npusim.runner import resolve_soc
from npusim.spec import spec
from npusim.torch_npu import npu_weight_quant_batchmatmul


def macs(kernel, dtype=None) -> int:
    return sum(
        i.params["m"] * i.params["k"] * i.params["n"]
        for c in kernel.cores
        for i in c.instrs
        if i.kind == "mmad" and (dtype is None or i.params["dtype"] == dtype)
    )


def dma_bytes(kernel, tensor: str, into: str) -> int:
    """Bytes read from GM tensor ``tensor`` into local buffer ``into``."""
    return sum(
        i.reads[0].nbytes
        for c in kernel.cores
        for i in c.instrs
        if i.kind == "dma" and i.reads[0].tensor == tensor and i.writes[0].buffer == into
    )


@pytest.mark.parametrize(
    ("m", "k", "n", "xdt", "dim_k", "bias"),
    [(65, 512, 256, "float16", 2, True), (96, 256, 128, "bfloat16", 1, False),
     (80, 128, 192, "float16", 1, False)],
)  # fmt: skip
def test_custom_nz_split_k_program(m, k, n, xdt, dim_k, bias):
    """CustomNzSplitK: every K block x N range on its own AIC (MACs = m k n once), the weight
    read from GM exactly once, partial slots only when a post pass is needed, the accumulation
    model named; the functional output is the numerics model's."""
    kw = nz_call(7, m, k, n, xdt, bias=bias)
    args = args_of(kw)
    kt = default_tiling(args, B2, "CustomNzSplitK")
    kt = dataclasses.replace(
        kt, single_core_k=k // dim_k, single_k=min(512, k // dim_k), cube_block_dim_k=dim_k
    )
    r = npusim.simulate("weight_quant_batchmatmul", B2, tiling=kt, **kw)
    assert r.kernel_name == "CustomNzSplitK"
    kern = r.run.kernel
    assert macs(kern) == m * k * n
    assert dma_bytes(kern, "w", "UB") == k * n
    post = dim_k > 1 or xdt == "bfloat16" or bias
    assert ("part" in kern.gm) == post
    if post:
        assert kern.gm["part"].shape == (dim_k, m, n)
        assert "core_index_ascending" in kern.meta["split_k_accumulation"]
        assert dma_bytes(kern, "part", "UB") == dim_k * m * n * 4
    want = compute(args, "CustomNzSplitK", B2, kt)
    assert np.array_equal(bits(r.outputs), bits(want))


def test_split_k_program_structure():
    """SplitK (white-listed template): every AIC multiplies x by its K block group by group
    (M K N MACs in all), the weight is read once by the AIVs, every group product reaches the
    fp32 workspace by a FixPipe atomic add, and the program needs its own tiling object."""
    import ml_dtypes

    soc = resolve_soc(B2)
    m, k, n, g = 16, 512, 1664, 64
    x = np.zeros((m, k), ml_dtypes.bfloat16)
    sc = np.ones((k // g, n), ml_dtypes.bfloat16)
    args = normalize_args(x, np.zeros((k, n), np.int8), sc, sc, antiquant_group_size=g)
    from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling

    kt = default_tiling(args, soc, "SplitK")
    s = WqbmmShape(m, k, n, "bfloat16", "int8", g, True, False, "bfloat16")
    kern = build_wqbmm(soc, s, "SplitK", kt)
    res = run_kernel(kern, soc)
    assert res.cycles > 0 and macs(kern) == m * k * n
    assert dma_bytes(kern, "w", "UB") == k * n
    fix = [i for c in kern.cores for i in c.instrs if i.kind == "fix"]
    assert fix and all(i.atomic == "add" and i.writes[0].tensor == "acc" for i in fix)
    assert sum(i.elements for i in fix) == m * n * (k // g)
    with pytest.raises(TypeError, match="SplitKTiling"):
        build_wqbmm(soc, s, "SplitK", None)


@pytest.mark.parametrize(("m", "k", "n", "off", "bias"), [(32, 1024, 256, True, True),
                                                         (96, 256, 512, False, False)])
def test_fixpipe_program(m, k, n, off, bias):
    """Fixpipe: stage 1 multiplies every weight element by the identity once (int8 MACs = K x
    sum of tile widths squared), stage 2 is the fp16 matmul (m k n MACs); weight read once per
    M block; functional output = numerics model."""
    kw = fixpipe_call(3, m, k, n, off, bias)
    r = npusim.simulate("weight_quant_batchmatmul", B2, **kw)
    assert r.kernel_name == "Fixpipe"
    kern, kt = r.run.kernel, r.tiling
    assert macs(kern, "float16") == m * k * n
    widths = [
        min(kt.base_n, hi - n0)
        for lo, hi in ((a, min(n, a + kt.single_core_n)) for a in range(0, n, kt.single_core_n))
        for n0 in range(lo, hi, kt.base_n)
    ]
    m_blocks = -(-m // kt.base_m)
    assert macs(kern, "int8") == m_blocks * k * sum(wd * wd for wd in widths)
    assert dma_bytes(kern, "w", "L1") == m_blocks * k * n
    assert np.array_equal(bits(r.outputs), bits(oracle(kw, "Fixpipe")))


@pytest.mark.parametrize(
    ("m", "k", "n", "kw"),
    [(16, 2048, 512, {"antiquant_group_size": 128, "deterministic": True}),  # MsdGroup excluded
     (8, 14336, 512, {})],  # per-channel int8, K > 13696
)  # fmt: skip
def test_msd_split_k_program(m, k, n, kw):
    """MsdSplitK: integer digit matmuls cover digits x m x K x N once; the K-block
    accumulation model is named in the metadata."""
    if kw:
        args = {
            "x": spec((m, k), "float16"),
            "weight": spec((k, n // 8), "int32"),
            "antiquant_scale": spec((k // 128, n), "float16"),
        }
        digits, dt = 3, "int4"
    else:
        args = {
            "x": spec((m, k), "float16"),
            "weight": spec((k, n), "int8"),
            "antiquant_scale": spec((n,), "float16"),
        }
        digits, dt = 2, "int8"
    r = npusim.simulate("weight_quant_batchmatmul", B2, check_races=True, **args, **kw)
    assert r.kernel_name == "MsdSplitK" and r.outputs is None
    assert macs(r.run.kernel, dt) == digits * m * k * n
    assert "k_block_ascending" in r.run.kernel.meta["split_k_accumulation"]


def test_weight_nz_310p_program_timing_only_and_functional_replay():
    """310P WeightNz: a coupled-core program (no AIC/AIV, no cross-core flags) whose MACs are
    m k n and which reads the NZ weight once per M block; a functional run replays its
    instructions and gives the declared 310P oracle's bits (the API's)."""
    soc = "Ascend310P3"
    m, k, n = 200, 512, 384
    args = {
        "x": spec((m, k), "float16"),
        "weight": spec((k, n), "int8", transposed=True),
        "antiquant_scale": spec((n,), "float16"),
        "antiquant_offset": spec((n,), "float16"),
        "bias": spec((n,), "float16"),
    }
    r = npusim.simulate("weight_quant_batchmatmul", soc, check_races=True, **args)
    kern = r.run.kernel
    assert r.kernel_name == "WeightNz" and {c.kind for c in kern.cores} == {"aicore"}
    assert not any(i.kind.startswith("cross") for c in kern.cores for i in c.instrs)
    assert macs(kern) == m * k * n
    t = r.tiling
    m_blocks = sum(
        -(-(min(m, (mi + 1) * -(-m // t.m_block_num)) - mi * -(-m // t.m_block_num)) // t.m_l1)
        for mi in range(t.m_block_num)
    )
    assert dma_bytes(kern, "w", "UB") == m_blocks * k * n
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64)).astype(np.float16)
    w = rng.integers(-128, 128, (64, 32)).astype(np.int8)
    wt, one = np.ascontiguousarray(w.T).T, np.ones(32, np.float16)
    f = npusim.simulate("weight_quant_batchmatmul", soc, x=x, weight=wt, antiquant_scale=one)
    assert "functional_replay" in f.run.kernel.meta
    api = npu_weight_quant_batchmatmul(x, wt, one, soc=soc)
    assert np.array_equal(f.outputs.view(np.uint16), api.view(np.uint16))
