"""Tiling objects of npu_weight_quant_batchmatmul: CANN's host formulas for the numerically
relevant fields, default tilings validate, and validation rejects illegal tilings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from npusim.ops.weight_quant_batchmatmul import (
    CustomNzSplitKTiling,
    CustomTiling,
    FixpipeTiling,
    MsdGroupTiling,
    MsdSplitKTiling,
    MsdTiling,
    WqbmmArgs,
    capable_kernels,
    default_tiling,
    tiling_as_dict,
    validate_tiling,
)

_BASE = WqbmmArgs(
    x=np.zeros((1, 1), np.float16),
    weight=np.zeros((1, 1), np.int8),
    antiquant_scale=np.zeros((1, 1), np.float16),
    antiquant_offset=None,
    quant_param=None,
    bias=None,
    x_dtype="float16",
    weight_dtype="int8",
    weight_format="ND",
    scale_dtype="float16",
    out_dtype="float16",
    trans_a=False,
    trans_b=False,
    group_size=0,
    inner_precise=0,
    quant_type="per_channel",
    quant_scale_type=None,
    m=16,
    k=4096,
    n=4096,
)


def shape(**kw) -> WqbmmArgs:
    return dataclasses.replace(_BASE, **kw)


W4G = dict(weight_dtype="int4", quant_type="per_group")

CASES = [
    ("Custom", shape(m=256, k=1024, n=2048)),
    ("Custom", shape(m=1, k=64, n=64, x_dtype="bfloat16", scale_dtype="bfloat16")),
    ("Custom", shape(m=300, k=4096, n=4096, quant_type="per_group", group_size=96)),
    ("Msd", shape(m=64, k=13696, n=4096)),
    ("Msd", shape(m=1, k=32, n=32)),
    ("MsdSplitK", shape(m=64, k=65504, n=4096)),
    ("MsdSplitK", shape(m=8, k=4096, n=11008, weight_dtype="int4", trans_b=True)),
    ("MsdSplitK", shape(m=16, k=8192, n=4096, group_size=128, **W4G)),
    ("MsdSplitK", shape(m=8, k=65472, n=64, group_size=64, **W4G)),
    ("MsdGroup", shape(m=1, k=8192, n=12288, group_size=128, **W4G)),
    ("MsdGroup", shape(m=8, k=13952, n=40960, group_size=64, **W4G)),
    ("CustomNzSplitK", shape(m=256, k=65472, n=65472, weight_format="NZ", trans_b=True)),
    ("CustomNzSplitK", shape(m=65, k=64, n=64, weight_format="NZ", trans_b=True)),
    ("Fixpipe", shape(m=96, k=8192, n=8192, scale_dtype="int64", trans_b=True)),
    ("Fixpipe", shape(m=1, k=64, n=64, scale_dtype="int64", trans_b=True)),
]


@pytest.mark.parametrize("soc", ["Ascend910B2", "Ascend910B4", "Ascend910_9391"])
@pytest.mark.parametrize(("kernel", "args"), CASES)
def test_default_tiling_is_legal(kernel, args, soc):
    """The default tiling of every capable kernel passes validation on every A2/A3 part."""
    assert kernel in capable_kernels(args, soc)
    t = default_tiling(args, soc, kernel)
    validate_tiling(t, args, soc, kernel)
    assert tiling_as_dict(t)["type"] == type(t).__name__


def test_msd_group_cann_split():
    """MsdGroup: N in 2048 blocks, K over aic / n_blocks cores in group-aligned ranges."""
    t = default_tiling(shape(m=1, k=4096, n=4096, group_size=128, **W4G), "Ascend910B2", "MsdGroup")
    assert isinstance(t, MsdGroupTiling)
    assert (t.cube_block_dim_n, t.single_core_k, t.cube_block_dim_k) == (2, 384, 11)
    assert t.single_core_group == 3 and t.vec_block_dim_n == 4


def test_msd_split_k_cann_blocks():
    """MsdSplitK per-channel K block: first of 1..6 splits (4.. when K/N >= 30, weight not
    transposed) aligned to 64 / 512 (int8 T) / 1024 (int4 T) that is <= 12288; per-group
    group_pack 8 (g=128) or 16 (g=64) and K blocks of group_pack*g."""
    soc = "Ascend910B2"
    t = default_tiling(shape(m=4, k=14000 - 16, n=4096), soc, "MsdSplitK")
    assert isinstance(t, MsdSplitKTiling) and t.v1_base_k == 7040 and t.order == 2
    t = default_tiling(shape(m=4, k=16384, n=512), soc, "MsdSplitK")
    assert t.v1_base_k == 4096
    t = default_tiling(
        shape(m=4, k=4096, n=4096, weight_dtype="int4", trans_b=True), soc, "MsdSplitK"
    )
    assert t.v1_base_k == 4096 and t.order == 3
    t = default_tiling(shape(m=16, k=16384, n=4096, group_size=128, **W4G), soc, "MsdSplitK")
    assert (t.group_pack, t.v1_base_k) == (8, 8192)
    t = default_tiling(shape(m=8, k=4096, n=4096, group_size=64, **W4G), soc, "MsdSplitK")
    assert (t.group_pack, t.v1_base_k) == (16, 4096)


def test_custom_nz_split_k_cann_split():
    """CustomNzSplitK: K in 1024-aligned blocks over the AICs, the rest over N (64-aligned)."""
    a = shape(m=128, k=4096, n=4096, weight_format="NZ", trans_b=True)
    t = default_tiling(a, "Ascend910B2", "CustomNzSplitK")
    assert isinstance(t, CustomNzSplitKTiling)
    assert (t.cube_block_dim_k, t.single_core_k, t.cube_block_dim_n, t.cube_single_core_n) == (
        4,
        1024,
        6,
        704,
    )
    t = default_tiling(dataclasses.replace(a, k=512), "Ascend910B2", "CustomNzSplitK")
    assert t.cube_block_dim_k == 1


def test_fixpipe_cann_split():
    """Fixpipe: 32-aligned N ranges over the AICs (16-wide, base 32, when N is tiny)."""
    t = default_tiling(
        shape(m=96, k=128, n=128, scale_dtype="int64", trans_b=True), "Ascend910B2", "Fixpipe"
    )
    assert isinstance(t, FixpipeTiling)
    assert (t.single_core_n, t.base_n, t.n_block_num, t.m_block_num) == (16, 32, 8, 3)
    t = default_tiling(
        shape(m=1, k=8192, n=8192, scale_dtype="int64", trans_b=True), "Ascend910B2", "Fixpipe"
    )
    assert (t.single_core_n, t.base_n, t.base_k) == (352, 128, 512)


def test_validation_rejects_buffer_overflow():
    """A cube block beyond L0A / L0B / L0C / L1 is rejected with the buffer named."""
    a = shape(m=256, k=1024, n=2048)
    t = default_tiling(a, "Ascend910B2", "Custom")
    big = dataclasses.replace(
        t, cube=dataclasses.replace(t.cube, base_m=128, base_n=256, base_k=512)
    )
    with pytest.raises(ValueError, match="L0A") as e:
        validate_tiling(big, a, "Ascend910B2", "Custom")
    assert "L0B" in str(e.value) and "L1" in str(e.value)
    l0c = dataclasses.replace(
        t, cube=dataclasses.replace(t.cube, base_m=128, base_n=256, base_k=32, db_l0c=2)
    )
    with pytest.raises(ValueError, match="L0C"):
        validate_tiling(l0c, a, "Ascend910B2", "Custom")
    ub = dataclasses.replace(t, vec_single_k=4096, vec_single_n=256)
    with pytest.raises(ValueError, match="UB"):
        validate_tiling(ub, a, "Ascend910B2", "Custom")


def test_validation_rejects_structure():
    """Splits must cover the shape, fit the core counts, keep group alignment; tilings must
    match the kernel and hold positive ints."""
    soc = "Ascend910B2"
    a = shape(m=1, k=4096, n=4096, group_size=128, **W4G)
    t = default_tiling(a, soc, "MsdGroup")
    with pytest.raises(ValueError, match="cube cores"):
        validate_tiling(dataclasses.replace(t, cube_block_dim_k=30), a, soc)
    with pytest.raises(ValueError, match="multiple of the group"):
        validate_tiling(dataclasses.replace(t, single_core_k=320, single_core_group=2), a, soc)
    with pytest.raises(ValueError, match="< k"):
        validate_tiling(dataclasses.replace(t, cube_block_dim_k=2), a, soc)
    with pytest.raises(ValueError, match="positive int"):
        validate_tiling(dataclasses.replace(t, vec_single_core_n=0), a, soc)
    with pytest.raises(TypeError, match="MsdSplitKTiling"):
        validate_tiling(t, a, soc, "MsdSplitK")
    s = default_tiling(a, soc, "MsdSplitK")
    with pytest.raises(ValueError, match="group_pack"):
        validate_tiling(dataclasses.replace(s, group_pack=3), a, soc)
    m = default_tiling(shape(m=8, k=1024, n=1024), soc, "Msd")
    assert isinstance(m, MsdTiling)
    with pytest.raises(ValueError, match="v1_base_k"):
        validate_tiling(dataclasses.replace(m, v1_base_k=512), shape(m=8, k=1024, n=1024), soc)


def test_no_tiling_model_for_weight_nz():
    """WeightNz (310P) has no tiling model: NotImplementedError, not a made-up tiling."""
    with pytest.raises(NotImplementedError, match="WeightNz"):
        default_tiling(shape(trans_b=True), "Ascend310P3", "WeightNz")
    assert isinstance(default_tiling(shape(m=256), "Ascend910B2", "Custom"), CustomTiling)
