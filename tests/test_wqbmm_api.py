"""The torch_npu-named API of npu_weight_quant_batchmatmul and LinearWeightQuant: kernel
reporting, overrides, deterministic mode, the module's transposed weight, and the errors for
behaviour that is not modelled."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from _wqbmm_oracle import NzArray, nz_storage, pack_int4, ref_custom, ref_msd

from npusim.ops.weight_quant_batchmatmul import MsdTiling
from npusim.torch_npu import explain_weight_quant_batchmatmul, npu_weight_quant_batchmatmul
from npusim.torch_npu.contrib.module import NumpyLinearWeightQuant as LinearWeightQuant

RNG = np.random.default_rng(7)


def _inputs(m=16, k=256, n=128, dtype=np.float16):
    x = RNG.standard_normal((m, k)).astype(dtype)
    w = RNG.integers(-128, 128, (k, n)).astype(np.int8)
    s = (RNG.random(n) * 0.05 + 0.01).astype(dtype)
    return x, w, s


def test_numpy_in_numpy_out_and_explain():
    """numpy inputs give a numpy (M, N) array in x's dtype; explain names the kernel, the
    capable kernels in priority order, the quant type, the tiling and the numerics model."""
    x, w, s = _inputs()
    y = npu_weight_quant_batchmatmul(x, w, s)
    assert isinstance(y, np.ndarray) and y.shape == (16, 128) and y.dtype == np.float16
    info = explain_weight_quant_batchmatmul(x, w, s)
    assert info["kernel"] == "Msd" and info["capable"] == ["Msd", "Custom"]
    assert info["quant_type"] == "per_channel" and info["tiling"]["type"] == "MsdTiling"
    assert "CAST_ROUND" in info["numerics_model"] and "SplitK" in info["not_capable"]


def test_kernel_override_changes_numerics():
    """Forcing Custom on an Msd shape runs the dequantise-then-matmul numerics instead."""
    x, w, s = _inputs()
    msd = npu_weight_quant_batchmatmul(x, w, s)
    cus = npu_weight_quant_batchmatmul(x, w, s, kernel="Custom")
    assert np.array_equal(msd.view(np.uint16), ref_msd(x, w, s[None], None, None).view(np.uint16))
    assert np.array_equal(
        cus.view(np.uint16), ref_custom(x, w, s[None], None, 0, None).view(np.uint16)
    )
    assert not np.array_equal(msd.view(np.uint16), cus.view(np.uint16))
    with pytest.raises(ValueError, match="capable kernels"):
        npu_weight_quant_batchmatmul(x, w, s, kernel="Fixpipe")


def test_deterministic_mode_changes_the_choice():
    """A16W4 per-group decode runs MsdGroup, or MsdSplitK in deterministic mode."""
    x = RNG.standard_normal((1, 256)).astype(np.float16)
    vals = RNG.integers(-8, 8, (256, 64)).astype(np.int8)
    w = NzArray(nz_storage(pack_int4(vals), 8), (256, 8))
    s = (RNG.random((2, 64)) * 0.05).astype(np.float16)
    assert (
        explain_weight_quant_batchmatmul(x, w, s, antiquant_group_size=128)["kernel"] == "MsdGroup"
    )
    info = explain_weight_quant_batchmatmul(x, w, s, antiquant_group_size=128, deterministic=True)
    assert info["kernel"] == "MsdSplitK" and "deterministic" in info["not_capable"]["MsdGroup"]


def test_user_tiling_of_wrong_type_is_rejected():
    """A tiling must belong to the selected kernel's family."""
    x, w, s = _inputs()
    with pytest.raises(TypeError, match="MsdTiling"):
        npu_weight_quant_batchmatmul(
            x, w, s, kernel="Custom", tiling=MsdTiling(1, 1, 128, 32, 16, 1, 256, 0, 1, None)
        )


def test_linear_weight_quant_passes_transposed_weight():
    """forward(x) == npu_weight_quant_batchmatmul(x, weight.T, scale, offset, ..., bias) with the
    (N, K) weight seen as transposed; ``kernel`` names the kernel that ran."""
    k, n = 128, 64
    mod = LinearWeightQuant(k, n, bias=True, dtype=np.float16, antiquant_offset=True)
    assert mod.weight.shape == (n, k) and mod.antiquant_scale.shape == (n,)
    mod.weight[:] = RNG.integers(-128, 128, (n, k))
    mod.antiquant_scale[:] = (RNG.random(n) * 0.05).astype(np.float16)
    mod.antiquant_offset[:] = RNG.standard_normal(n).astype(np.float16)
    mod.bias[:] = RNG.standard_normal(n).astype(np.float16)
    x = RNG.standard_normal((96, k)).astype(np.float16)
    y = mod(x)
    assert mod.kernel == "Custom"
    info = explain_weight_quant_batchmatmul(x, mod.weight.T, mod.antiquant_scale)
    assert info["trans_b"]
    want = ref_custom(
        x, mod.weight.T, mod.antiquant_scale[None], mod.antiquant_offset[None], 0, mod.bias
    )
    assert np.array_equal(y.view(np.uint16), want.view(np.uint16))


def test_linear_weight_quant_per_group_and_int8_output():
    """Per-group parameters are (N, ceil(K/g)) and passed transposed; quant_scale gives int8."""
    k, n, g = 160, 64, 64
    mod = LinearWeightQuant(k, n, bias=False, dtype=ml_dtypes.bfloat16, antiquant_group_size=g,
                            quant_scale=True, quant_offset=True)  # fmt: skip
    assert mod.antiquant_scale.shape == (n, 3) and mod.bias is None
    mod.weight[:] = RNG.integers(-128, 128, (n, k))
    mod.antiquant_scale[:] = (RNG.random((n, 3)) * 0.05).astype(ml_dtypes.bfloat16)
    mod.quant_scale[:] = 0.5
    mod.quant_offset[:] = 1.0
    x = RNG.standard_normal((16, k)).astype(ml_dtypes.bfloat16)
    y = mod(x)
    assert y.dtype == np.int8 and y.shape == (16, n) and mod.kernel == "Custom"


def test_linear_weight_quant_rejects_bad_construction():
    """in/out features must be positive ints and dtype float16 or bfloat16."""
    with pytest.raises(ValueError, match="in_features"):
        LinearWeightQuant(0, 4)
    with pytest.raises(TypeError, match="dtype"):
        LinearWeightQuant(4, 4, dtype=np.float32)


def test_not_modelled_behaviour_raises():
    """An all-zero row in an MSD kernel raises NotImplementedError naming what is missing,
    instead of returning made-up numbers; A2/A3 WeightNz (custom_weight_nz) gives Custom's
    chain (310P WeightNz has its declared oracle, tests/test_wqbmm_weight_nz_310p.py)."""
    from npusim.ops.weight_quant_batchmatmul import compute, normalize_args

    x, w, s = _inputs(m=4, k=64, n=64)
    wt = np.ascontiguousarray(w.T).T
    assert explain_weight_quant_batchmatmul(x, wt, s, soc="Ascend310P3")["kernel"] == "WeightNz"
    from npusim.ops.weight_quant_batchmatmul import transpose_nz
    from npusim.torch_npu import npu_format_cast

    wnz = transpose_nz(npu_format_cast(np.ascontiguousarray(w.T), 29))
    a = normalize_args(x, wnz, s, None, None, None, None, 0, 0, soc="Ascend910B2")
    y = compute(a, "WeightNz", "Ascend910B2")
    assert np.array_equal(y.view(np.uint16), compute(a, "Custom", "Ascend910B2").view(np.uint16))
    x[2] = 0
    with pytest.raises(NotImplementedError, match="max"):
        npu_weight_quant_batchmatmul(x, w, s)
    assert npu_weight_quant_batchmatmul(x, w, s, kernel="Custom").shape == (4, 64)


def test_weights_from_the_torch_npu_layout_ops():
    """An int4 weight packed to FRACTAL_NZ by npu_format_cast + npu_convert_weight_to_int4pack
    and an int64 scale from npu_trans_quant_param feed the operator like torch_npu's."""
    from _wqbmm_oracle import ref_fixpipe, ref_msd_group, trans_quant_param0

    from npusim.torch_npu import (
        npu_convert_weight_to_int4pack,
        npu_format_cast,
        npu_trans_quant_param,
    )

    vals = RNG.integers(-8, 8, (256, 128)).astype(np.int32)
    w_nz = npu_convert_weight_to_int4pack(npu_format_cast(vals, 29))
    x = RNG.standard_normal((1, 256)).astype(np.float16)
    s = (RNG.random((2, 128)) * 0.05 + 0.01).astype(np.float16)
    info = explain_weight_quant_batchmatmul(x, w_nz, s, antiquant_group_size=128)
    assert info["kernel"] == "MsdGroup" and info["weight_format"] == "NZ"
    y = npu_weight_quant_batchmatmul(x, w_nz, s, antiquant_group_size=128)
    k_core = info["tiling"]["single_core_k"]
    want = ref_msd_group(x, vals.astype(np.int8), "int4", s, None, None, 128, k_core, 0)
    assert np.array_equal(y.view(np.uint16), want.view(np.uint16))

    scale = (RNG.random(64) * 0.01 + 0.001).astype(np.float32)
    q = npu_trans_quant_param(scale)
    assert np.array_equal(q, trans_quant_param0(scale, None))
    w = RNG.integers(-128, 128, (64, 128)).astype(np.int8)  # (N, K), passed transposed
    x = RNG.standard_normal((8, 128)).astype(np.float16)
    y = npu_weight_quant_batchmatmul(x, w.T, q)
    assert np.array_equal(y.view(np.uint16), ref_fixpipe(x, w.T, q, None, None).view(np.uint16))
