"""The SplitK kernel (ops-nn's mix split-K template for white-listed bf16 x int8 -> bf16
per-group shapes), run functionally: the AIVs' typed dequant (offset via fp16, scale in fp32,
Cast RINT to bf16) into the workspace ring, the per-group bf16 Mmads in the declared cube
model, the FixPipe atomic adds into the zeroed fp32 workspace (declared core_index_ascending
order) and the final Cast RINT give the output read from the simulated GM; it equals the
numerics model (the oracle ``numerics_splitk.split_k``) bit for bit."""

import dataclasses

import ml_dtypes
import numpy as np
import pytest
from _wqbmm_replay import B2, args_of, bits, check_replay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.engine.sim import run_kernel
from npusim.ops.weight_quant_batchmatmul.numerics_splitk import split_k, split_k_unsupported
from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts
from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling, validate_tiling
from npusim.ops.weight_quant_common import WqbmmShape
from npusim.ops.weight_quant_program_mix_splitk import build_split_k, split_k_replay_data
from npusim.runner import resolve_soc


def splitk_call(seed: int, m: int, k: int, n: int, g: int, off_scale: float = 3.0) -> dict:
    """bf16 x, a (K, N) int8 ND weight, per-group bf16 scale and offset."""
    rng = np.random.default_rng(seed)
    bf = ml_dtypes.bfloat16
    ng = k // g
    return {"x": rng.standard_normal((m, k)).astype(np.float32).astype(bf),
            "weight": rng.integers(-128, 128, (k, n)).astype(np.int8),
            "antiquant_scale": (rng.random((ng, n)) * 0.05 + 0.01).astype(bf),
            "antiquant_offset": (rng.standard_normal((ng, n)) * off_scale).astype(bf),
            "antiquant_group_size": g}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 32),
    groups=st.integers(2, 12),
    g=st.sampled_from([32, 64]),
    n=st.sampled_from([640, 1664, 1792, 2048, 2944]),
    dim_k=st.integers(1, 4),
    off_scale=st.sampled_from([3.0, 3000.0]),
    seed=st.integers(0, 2**16),
)
def test_split_k_replay_property(m, groups, g, n, dim_k, off_scale, seed):
    """Random shapes the kernel computes (1 <= M <= 32, whole groups of 32 / 64, N a multiple
    of 128 whose last 1024-chunk spans both AIVs), K split over 1-4 AICs (several groups per
    K block, several column tiles per AIV): the program's bits equal the oracle's. Large
    offsets exercise the fp16 Add's rounding (and overflow to inf in fp16)."""
    k = g * groups
    kw = splitk_call(seed, m, k, n, g, off_scale)
    args = args_of(kw)
    assert split_k_unsupported(args) is None
    soc = resolve_soc(B2)
    kt = default_tiling(args, soc, "SplitK")
    vk = -(-groups // min(dim_k, groups)) * g
    kt = dataclasses.replace(kt, vec_single_k=vk, vec_single_k_group_num=vk // g,
                             cube_block_dim_k=-(-k // vk), vec_block_dim_k=-(-k // vk))
    validate_tiling(kt, args, soc, "SplitK")
    s = WqbmmShape(m, k, n, "bfloat16", "int8", g, True, False, "bfloat16")
    res = run_kernel(build_split_k(soc, s, kt, split_k_replay_data(args)), soc, functional=True)
    got = res.outputs["y"].reshape(m, n)
    want = split_k(args, soc_facts(soc))
    assert np.array_equal(bits(got), bits(want))
    assert np.count_nonzero(bits(want)) > want.size // 2
    timing = run_kernel(build_split_k(soc, s, kt), soc)
    assert timing.cycles == res.cycles


def test_split_k_white_listed_shape_through_the_api():
    """The smallest white-listed shape (M=24, K=1536, N=12288, g 64, offset) selects SplitK
    by default; its functional run replays the values (no value closure in any vector
    instruction) and equals the oracle bit for bit."""
    kw = splitk_call(5, 24, 1536, 12288, 64)
    r = check_replay(kw, "SplitK")
    assert "core_index_ascending" in r.run.kernel.meta["split_k_accumulation"]


@pytest.mark.parametrize(("g", "why"), [(128, "128 KiB L1 buffer"), (96, "128 KiB L1 buffer")])
def test_split_k_groups_the_kernel_cannot_hold(g, why):
    """A white-listed shape with a group the kernel's fixed L1 buffer cannot hold: CANN selects
    SplitK, the simulator refuses with NotImplementedError naming the buffer (API and
    simulate alike)."""
    import npusim
    from npusim.torch_npu import npu_weight_quant_batchmatmul

    kw = splitk_call(1, 24, 1536, 12288, 64)
    rng = np.random.default_rng(0)
    ng = -(-1536 // g)
    kw["antiquant_scale"] = (rng.random((ng, 12288)) * 0.05).astype(ml_dtypes.bfloat16)
    kw["antiquant_offset"] = kw["antiquant_scale"].copy()
    kw["antiquant_group_size"] = g
    with pytest.raises(NotImplementedError, match=why):
        npusim.simulate("weight_quant_batchmatmul", B2, **kw)
    with pytest.raises(NotImplementedError, match=why):
        npu_weight_quant_batchmatmul(**kw)


def test_split_k_numerics_without_offset_names_the_argument():
    """Selection never picks SplitK without an antiquant offset; the numerics model called
    directly without one says what is missing instead of failing on None."""
    kw = splitk_call(1, 4, 128, 1664, 64)
    del kw["antiquant_offset"]
    with pytest.raises(ValueError, match="antiquant_offset: the SplitK kernel needs"):
        split_k(args_of(kw), soc_facts(resolve_soc(B2)))
