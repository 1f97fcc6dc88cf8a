"""npu_dynamic_quant: the typed per-token program's output bits against the documented formula
(written here in numpy fp32, one IEEE operation per step of the public kernel's chain), the
torch_npu docs' own printed examples, and the refusals the docs imply."""

import numpy as np
import pytest

from npusim.numerics import BF16, pack_int4
from npusim.ops.group_quant_program import RowChunkTiling
from npusim.runner import simulate
from npusim.spec import spec

SOC = "Ascend910B2"


def _formula(x: np.ndarray, out: str, smooth: np.ndarray | None = None):
    """scale = 1 / (DTYPE_MAX / rowmax|x*smooth|), y = rint(x*smooth * (DTYPE_MAX / rowmax)),
    each step one fp32 IEEE operation; NaN (a zero row) -> 0."""
    xf = x.astype(np.float32)
    if smooth is not None:
        xf = xf * smooth.astype(np.float32)
    with np.errstate(all="ignore"):
        r = np.float32(127 if out == "int8" else 7) / np.abs(xf).max(axis=1)
        scale = np.float32(1) / r
        v = xf * r[:, None]
    y = np.rint(np.where(np.isnan(v), 0, v)).astype(np.int8)
    return (np.asarray(pack_int4(y.astype(np.int32))) if out == "int4" else y), scale


def _x(shape, dtype, seed=0, zero_row=None):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(BF16 if dtype == "bfloat16" else dtype)
    if zero_row is not None:
        x[zero_row] = 0
    return x


@pytest.mark.parametrize("shape,dtype,out,tiling", [
    ((37, 512), "float16", "int8", None),                          # 16 rows per pass
    ((9, 1000), "bfloat16", "int8", RowChunkTiling(2, 256, 3)),    # two sweeps over 4 chunks
    ((5, 96), "float16", "int4", RowChunkTiling(5, 64, 1, False)),  # 32-wide last chunk
    ((20, 256), "bfloat16", "int4", RowChunkTiling(3, 256, 4)),
])
def test_program_bits_equal_the_formula(shape, dtype, out, tiling):
    """Rule: y and scale are the per-step fp32 chain's bits (uint views); a zero row gives
    y = 0, scale = 0."""
    x = _x(shape, dtype, zero_row=1)
    res = simulate("dynamic_quant", SOC, tiling, x=x, dst_type=out)
    y, scale = res.outputs
    want_y, want_scale = _formula(x, out)
    assert scale.view(np.uint32).tolist() == want_scale.view(np.uint32).tolist()
    assert np.array_equal(np.asarray(y).view(np.uint8), want_y.view(np.uint8))
    assert scale[1] == 0 and not np.asarray(y)[1].any()


def test_smooth_scales_multiply_before_the_max():
    """Rule: smooth_scales (x's dtype, one per column) multiply x in fp32 before Abs / max."""
    x = _x((12, 320), "float16", seed=3)
    smooth = np.random.default_rng(4).uniform(0.1, 2, 320).astype(np.float16)
    y, scale = simulate("dynamic_quant", SOC, x=x, dst_type="int8", smooth_scales=smooth).outputs
    want_y, want_scale = _formula(x, "int8", smooth)
    assert np.array_equal(y.view(np.uint8), want_y.view(np.uint8))
    assert np.array_equal(scale.view(np.uint32), want_scale.view(np.uint32))


@pytest.mark.parametrize("h,ends,tiling", [
    (128, [0, 5, 5, 30, 64], None),                   # empty groups, groups across passes
    (128, [7, 64], RowChunkTiling(5, 128, 4, False)),  # groups across cores, single-buffered
    (1000, [3, 3, 64], RowChunkTiling(3, 256, 2)),     # two sweeps: smooth chunk by chunk
])
def test_moe_groups_pick_each_rows_smooth_row(h, ends, tiling):
    """Rule: with group_index (cumulative end rows) row r uses smooth row g where
    ends[g-1] <= r < ends[g]; empty groups use nothing; rows wider than one chunk too."""
    x = _x((64, h), "bfloat16", seed=5)
    smooth = np.random.default_rng(6).uniform(-2, 2, (len(ends), h)).astype(BF16)
    gi = np.array(ends, np.int32)
    y, scale = simulate("dynamic_quant", SOC, tiling, x=x, dst_type="int8",
                        smooth_scales=smooth, group_index=gi).outputs
    rows = np.searchsorted(gi, np.arange(64), side="right")
    want_y, want_scale = _formula(x, "int8", smooth[rows])
    assert np.array_equal(y.view(np.uint8), want_y.view(np.uint8))
    assert np.array_equal(scale.view(np.uint32), want_scale.view(np.uint32))


@pytest.mark.parametrize("h", [8192, 18944])
def test_default_tiling_fits_smooth_rows_in_ub(h):
    """Rule: the default tiling counts the smooth row's UB (H = 18944, qwen2-7b's
    intermediate size, takes two sweeps)."""
    res = simulate("dynamic_quant", SOC, x=spec((4, h), "float16"), dst_type="int8",
                   smooth_scales=spec((h,), "float16"))
    assert res.cycles > 0 and (h <= res.tiling.h_chunk) == (h == 8192)


def test_timing_run_and_functional_run_have_the_same_cycles():
    """Rule: the values come from the same program whose cycles a timing-only run reports."""
    x = _x((64, 512), "float16")
    func = simulate("dynamic_quant", SOC, x=x, dst_type="int8")
    timing = simulate("dynamic_quant", SOC, x=spec((64, 512), "float16"), dst_type="int8")
    assert timing.outputs is None and func.cycles == timing.cycles > 0


def test_refusals_name_the_argument():
    """Rule: unknown dst_type, smooth_scales on the E1-row kernel and a wrong smooth shape
    raise naming what is wrong."""
    x = _x((4, 128), "float16")
    with pytest.raises(ValueError, match="dst_type"):
        simulate("dynamic_quant", SOC, x=x, dst_type="int16")
    with pytest.raises(ValueError, match="smooth_scales"):
        simulate("dynamic_quant", SOC, x=spec((4, 128), "float16"),
                 smooth_scales=spec((128,), "float16"))
    with pytest.raises(ValueError, match="smooth_scales"):
        simulate("dynamic_quant", SOC, x=x, dst_type="int8",
                 smooth_scales=np.ones(64, np.float16))


torch = pytest.importorskip("torch")


def test_api_reproduces_the_docs_examples():
    """Rule: torch_npu's documented examples (x printed to 4 digits, fp16) give the printed y
    exactly and the printed scale to its 4 digits."""
    from npusim.torch_npu import npu_dynamic_quant

    x = torch.tensor([[0.7261, 0.3726, 0.9126], [0.9023, 0.9990, 0.1279],
                      [0.8628, 0.6240, 0.9028]], dtype=torch.float16)
    y, scale = npu_dynamic_quant(x)
    assert y.dtype == torch.int8 and scale.dtype == torch.float32
    assert y.tolist() == [[101, 52, 127], [115, 127, 16], [121, 88, 127]]
    assert torch.allclose(scale, torch.tensor([0.0072, 0.0079, 0.0071]), atol=5e-5, rtol=0)
    x = torch.tensor([[0.6680, 0.9492, 0.0845], [0.1924, 0.5278, 0.1484],
                      [0.6631, 0.9497, 0.0957]], dtype=torch.float16)
    smooth = torch.tensor([0.8042, 0.0884, 0.8901], dtype=torch.float16)
    y, scale = npu_dynamic_quant(x, smooth_scales=smooth)
    assert y.tolist() == [[127, 20, 18], [127, 38, 108], [127, 20, 20]]
    assert torch.allclose(scale, torch.tensor([0.0042, 0.0012, 0.0042]), atol=5e-5, rtol=0)


def test_api_shapes_dtypes_and_int4_packing():
    """Rule: y keeps x's leading dims (quint4x2: int32, last dim / 8), scale drops the last dim;
    values equal the program run on the flattened rows."""
    from npusim.torch_npu import npu_dynamic_quant

    x = torch.from_numpy(_x((2, 3, 64), "float16", seed=7))
    y, scale = npu_dynamic_quant(x, dst_type=torch.quint4x2)
    assert y.shape == (2, 3, 8) and y.dtype == torch.int32 and scale.shape == (2, 3)
    want_y, want_scale = _formula(x.numpy().reshape(6, 64), "int4")
    assert np.array_equal(y.numpy().reshape(6, 8).view(np.uint32), want_y.view(np.uint32))
    assert np.array_equal(scale.numpy().reshape(6).view(np.uint32), want_scale.view(np.uint32))


def test_api_refusals():
    """Rule: 310P is refused (A2 / A3 only), a group_index not ending at the row count or
    without smooth_scales is refused, other quant modes are not modelled, a 1-D input and
    float32 are refused."""
    from npusim.torch_npu import npu_dynamic_quant

    x = torch.ones(4, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="A2 / A3 only"):
        npu_dynamic_quant(x, soc="Ascend310P3")
    with pytest.raises(ValueError, match="group_index"):
        npu_dynamic_quant(x, smooth_scales=torch.ones(2, 64, dtype=torch.float16),
                          group_index=torch.tensor([2, 3], dtype=torch.int32))
    with pytest.raises(ValueError, match="group_index: needs smooth_scales"):
        npu_dynamic_quant(x, group_index=torch.tensor([4], dtype=torch.int32))
    with pytest.raises(NotImplementedError, match="quant_mode"):
        npu_dynamic_quant(x, quant_mode="perchannel")
    with pytest.raises(ValueError, match="more than 1 dim"):
        npu_dynamic_quant(torch.ones(64, dtype=torch.float16))
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        npu_dynamic_quant(x.float())
    with pytest.raises(TypeError, match="dst_type"):
        npu_dynamic_quant(x, dst_type=torch.int16)
