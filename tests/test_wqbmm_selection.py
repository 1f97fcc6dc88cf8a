"""Kernel selection of npu_weight_quant_batchmatmul: one test per row of the CANN priority
table (ops-semantics 5.3) plus deterministic mode and the research override.

Selection reads only shape/dtype facts, so most cases build a ``WqbmmArgs`` with the facts set
directly (dummy arrays) instead of allocating full-size tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from npusim.ops.weight_quant_batchmatmul import (
    WqbmmArgs,
    capable_kernels,
    kernel_reasons,
    select_kernel,
)
from npusim.ops.weight_quant_batchmatmul.selection import msd_group_l1_fits
from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts

SOC = "Ascend910B2"  # 24 AIC, L1 512 KiB

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


def shape(*presets: dict, **kw) -> WqbmmArgs:
    """The base facts updated by presets then keywords (later ones win)."""
    merged: dict = {}
    for p in presets:
        merged.update(p)
    merged.update(kw)
    return dataclasses.replace(_BASE, **merged)


def pick(a: WqbmmArgs, deterministic: bool = False) -> str:
    return select_kernel(a, SOC, deterministic=deterministic)


W4G128 = dict(weight_dtype="int4", quant_type="per_group", group_size=128)


_BF16_G64 = dict(x_dtype="bfloat16", scale_dtype="bfloat16", out_dtype="bfloat16",
                 quant_type="per_group", group_size=64, antiquant_offset=np.zeros((1, 1)))


@pytest.mark.parametrize(("k", "n"), [(12288, 1792), (12288, 7808), (3904, 12288),
                                      (1536, 12288)])
@pytest.mark.parametrize("soc", ["Ascend910B2", "Ascend910B4", "Ascend910_9391"])
def test_row0_splitk_for_its_white_listed_shapes(k, n, soc):
    """SplitK (bf16 x int8 -> bf16 per-group ND with an antiquant offset) runs for ops-nn's four
    white-listed (M=24, K, N, no bias, no transposes) shapes on every A2/A3 part (the list's
    AIC-count field is 1 on both sides of the lookup)."""
    assert select_kernel(shape(_BF16_G64, m=24, k=k, n=n), soc) == "SplitK"


def test_row0_splitk_refused_off_its_white_list():
    """Off the list (another M, a bias, a transposed weight, no offset, fp16, deterministic
    mode) SplitK is not capable and the next template runs."""
    wl = shape(_BF16_G64, m=24, k=1536, n=12288)
    for a, why in [(dataclasses.replace(wl, m=32), "white-list"),
                   (dataclasses.replace(wl, bias=np.zeros(1)), "white-list"),
                   (dataclasses.replace(wl, trans_b=True), "white-list"),
                   (dataclasses.replace(wl, antiquant_offset=None), "antiquant offset"),
                   (dataclasses.replace(wl, x_dtype="float16", out_dtype="float16"), "bf16")]:
        assert why in kernel_reasons(a, SOC)["SplitK"]
        assert pick(a) != "SplitK"
    assert "deterministic" in kernel_reasons(wl, SOC, deterministic=True)["SplitK"]


def test_row1_msd_group_for_a16w4_per_group_decode():
    """MsdGroup: int4 per-group g 64/128, M <= g/8, K <= 13952, N <= aic*2048, K%g, N%64."""
    assert pick(shape(W4G128)) == "MsdGroup"
    assert pick(shape(W4G128, group_size=64, m=8)) == "MsdGroup"
    assert pick(shape(W4G128, k=13952 + 128)) == "MsdSplitK"  # K too large
    assert pick(shape(W4G128, m=17)) == "Custom"  # M > g/8 also fails Msd
    assert pick(shape(W4G128, n=4096 + 32)) == "Custom"  # N % 64
    int8_g64 = shape(quant_type="per_group", group_size=64, m=8)
    assert "white-list" in kernel_reasons(int8_g64, SOC)["MsdGroup"]


def test_row1_msd_group_l1_check():
    """MsdGroup needs the core's digits plus two 2048-wide int4 groups in L1."""
    f = soc_facts(SOC)
    assert msd_group_l1_fits(shape(W4G128, k=13952, n=4096), f)
    big = shape(W4G128, k=13952, n=24 * 2048)  # one AIC per N block: whole K per core
    assert not msd_group_l1_fits(big, f)
    assert pick(big) == "MsdSplitK"


def test_row2_msd_per_channel_int8():
    """Msd (multi-core) for per-channel int8 M <= 64, K%32, N%32; MsdSplitK when K > 13696
    or N > 32000; otherwise Custom."""
    assert pick(shape(m=64)) == "Msd"
    assert pick(shape(m=1, k=32, n=32)) == "Msd"
    assert pick(shape(m=65)) == "Custom"
    assert pick(shape(k=13696 + 32)) == "MsdSplitK"
    assert pick(shape(n=32000 + 32)) == "MsdSplitK"
    assert pick(shape(k=4096 + 16)) == "Custom"
    assert pick(shape(m=1, quant_type="per_tensor")) == "Custom"
    assert pick(shape(out_dtype="int8", quant_scale_type="per_channel")) == "Custom"
    assert pick(shape(trans_a=True)) == "Custom"


def test_row2_msd_split_k_int4():
    """Per-channel int4 runs MsdSplitK only with a transposed ND weight and N >= 2M;
    per-group int4 with MsdGroup excluded runs MsdSplitK."""
    w4 = dict(weight_dtype="int4")
    assert pick(shape(w4, trans_b=True)) == "MsdSplitK"
    assert pick(shape(w4, trans_b=False)) == "Custom"
    assert pick(shape(w4, trans_b=True, m=64, n=96)) == "Custom"
    assert pick(shape(w4, trans_b=True, weight_format="NZ")) == "Custom"
    assert pick(shape(W4G128), deterministic=True) == "MsdSplitK"
    assert pick(shape(W4G128, trans_b=True)) == "Custom"


def test_row3_custom_nz_split_k():
    """CustomNzSplitK: per-channel NZ transposed weight, 65 <= M <= 256, K,N % 64."""
    nz = dict(weight_format="NZ", trans_b=True, k=1024, n=1024)
    assert pick(shape(nz, m=128)) == "CustomNzSplitK"
    assert pick(shape(nz, m=64)) == "Msd"  # Msd has priority for M <= 64
    assert pick(shape(nz, m=257)) == "Custom"
    assert pick(shape(nz, m=128, k=1024 + 32)) == "Custom"
    assert pick(shape(nz, m=128, trans_b=False)) == "Custom"
    assert (
        pick(shape(nz, m=128, x_dtype="bfloat16", scale_dtype="bfloat16", out_dtype="bfloat16"))
        == "CustomNzSplitK"
    )


def test_row4_custom_nz_per_group_rules():
    """Custom with an NZ per-group weight needs g in {64, 128}, K%g and no transposition;
    otherwise only WeightNz (priority 6, transposed NZ) remains."""
    g = dict(weight_format="NZ", quant_type="per_group", group_size=64, m=128)
    assert pick(shape(g)) == "Custom"
    assert "transposed" in kernel_reasons(shape(g, trans_b=True), SOC)["Custom"]
    assert pick(shape(g, trans_b=True)) == "WeightNz"
    with pytest.raises(ValueError, match="no weight_quant_batchmatmul kernel"):
        pick(shape(**{**g, "group_size": 96}))


def test_row5_fixpipe_for_int64_scale():
    """Fixpipe: int64 scale, fp16 out, int8 transposed weight, K,N % 64, M <= 96, per-channel;
    nothing else is capable of an int64 scale."""
    i64 = dict(scale_dtype="int64", trans_b=True)
    assert pick(shape(i64, m=96)) == "Fixpipe"
    assert capable_kernels(shape(i64, m=96), SOC) == ["Fixpipe"]
    for bad in (dict(m=97), dict(trans_b=False), dict(k=4096 + 32), dict(quant_type="per_tensor")):
        with pytest.raises(ValueError, match="Fixpipe"):
            pick(shape(**{**i64, **bad}))


def test_row6_weight_nz_on_310p():
    """On 310P only WeightNz is registered."""
    a = shape(trans_b=True)
    assert select_kernel(a, "Ascend310P3") == "WeightNz"
    assert capable_kernels(a, "Ascend310P3") == ["WeightNz"]
    assert "only WeightNz" in kernel_reasons(a, "Ascend310P3")["Custom"]


def test_deterministic_mode_excludes_atomic_templates():
    """Deterministic mode drops SplitK, MsdGroup and CustomNzSplitK (and nothing else)."""
    nz = shape(weight_format="NZ", trans_b=True, k=1024, n=1024, m=128)
    assert pick(nz, deterministic=True) == "Custom"
    assert pick(shape(W4G128), deterministic=True) == "MsdSplitK"
    assert pick(shape(m=16), deterministic=True) == "Msd"


def test_override_only_capable_kernels():
    """kernel= forces a capable kernel; an incapable one raises, listing the capable ones."""
    a = shape(m=16)
    assert select_kernel(a, SOC, kernel="Custom") == "Custom"
    with pytest.raises(ValueError, match="capable kernels: Msd, Custom"):
        select_kernel(a, SOC, kernel="Fixpipe")
    with pytest.raises(ValueError, match="unknown"):
        select_kernel(a, SOC, kernel="Nope")


def test_msd_group_limit_depends_on_core_count():
    """N <= aic * 2048: 20-AIC 910B4 rejects N = 41984 that 24-AIC 910B2 accepts."""
    a = shape(W4G128, n=41984, k=1024)
    assert select_kernel(a, "Ascend910B2") == "MsdGroup"
    assert select_kernel(a, "Ascend910B4") == "MsdSplitK"
