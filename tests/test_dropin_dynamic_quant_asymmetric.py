"""npu_dynamic_quant_asymmetric: the typed asymmetric program's y / scale / offset bits against
the public kernel's chain written here in numpy fp32 (one IEEE operation per step), and the
refusals the docs imply."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npusim.torch_npu as tn
from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.engine.sim import run_kernel
from npusim.isa.opcodes import VecOp
from npusim.numerics import BF16, unpack_int4
from npusim.ops.group_quant_program import RowChunkTiling
from npusim.runner import resolve_soc, simulate
from npusim.spec import spec

SOC = "Ascend910B2"


def _chain(x: np.ndarray, out: str, smooth: np.ndarray | None = None):
    """scale = max((max - min) / RANGE, 1e-12), offset = DTYPE_OFFSET - max / scale,
    y = rint(x * (1 / scale) + offset): fp32 steps, RNE each."""
    f = x.astype(np.float32)
    if smooth is not None:
        f = f * smooth.astype(np.float32)
    mx, mn = f.max(axis=1), f.min(axis=1)
    rng_, off0 = (np.float32(255), np.float32(127)) if out == "int8" else \
        (np.float32(15), np.float32(7))
    with np.errstate(all="ignore"):
        scale = np.maximum((mx - mn) / rng_, np.float32(1e-12))
        offset = off0 - mx / scale
        back = np.float32(1) / scale
        v = f * back[:, None] + offset[:, None]
    return np.rint(v).astype(np.int32), scale, offset


def _x(rows, h, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, h)) * rng.uniform(0.01, 50)).astype(
        BF16 if dtype == "bfloat16" else np.float16)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 40), st.sampled_from([16, 64, 200, 1000]),
       st.sampled_from(["float16", "bfloat16"]), st.sampled_from(["int8", "int4"]),
       st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_program_bits_equal_the_chain(rows, h, dtype, out, smooth, chunked, seed):
    """Rule: y, scale and offset are the chain's bits (uint views), for one or several H
    chunks (64 wide: chunk results merged by Max / Min), with or without smooth_scales, int8
    or int4 (packed 8 per int32)."""
    tiling = RowChunkTiling(min(3, rows), 64, 2) if chunked else None
    x = _x(rows, h, dtype, seed)
    sm = np.random.default_rng(seed + 1).uniform(0.2, 2, h).astype(x.dtype) if smooth else None
    y, scale, offset = simulate("dynamic_quant", SOC, tiling, x=x, dst_type=out,
                                smooth_scales=sm, asymmetric=True).outputs
    want_y, want_s, want_o = _chain(x, out, sm)
    got_y = unpack_int4(np.asarray(y)) if out == "int4" else np.asarray(y)
    assert np.array_equal(got_y.astype(np.int32), want_y)
    assert np.array_equal(scale.view(np.uint32), want_s.view(np.uint32))
    assert np.array_equal(offset.view(np.uint32), want_o.view(np.uint32))


def test_constant_row_uses_the_epsilon_scale():
    """Rule: max == min gives scale = 1e-12 (fp32) and offset = DTYPE_OFFSET - max / 1e-12."""
    x = np.zeros((2, 32), np.float16)
    x[1] = 0.5
    y, scale, offset = simulate("dynamic_quant", SOC, x=x, dst_type="int8",
                                asymmetric=True).outputs
    assert scale.tolist() == [np.float32(1e-12)] * 2
    assert offset[0] == 127 and offset[1] == np.float32(127) - np.float32(0.5) / np.float32(1e-12)
    assert y[0].tolist() == [127] * 32


def test_moe_groups_and_api_shapes():
    """The API: y int8 of x's shape, scale / offset fp32 of x's shape without its last dim;
    MoE group_index picks each row's smooth row; the values are the program's."""
    x = _x(12, 64, "float16", 3).reshape(2, 6, 64)
    smooth = np.random.default_rng(4).uniform(0.5, 1.5, (3, 64)).astype(np.float16)
    gi = np.array([4, 4, 12], np.int32)
    y, scale, offset = tn.npu_dynamic_quant_asymmetric(x, smooth_scales=smooth, group_index=gi)
    assert y.shape == (2, 6, 64) and y.dtype == np.int8 and scale.shape == offset.shape == (2, 6)
    rows = np.searchsorted(gi, np.arange(12), side="right")
    want_y, want_s, want_o = _chain(x.reshape(12, 64), "int8", smooth[rows])
    assert np.array_equal(y.reshape(12, 64).astype(np.int32), want_y)
    assert np.array_equal(scale.reshape(-1).view(np.uint32), want_s.view(np.uint32))
    assert np.array_equal(offset.reshape(-1).view(np.uint32), want_o.view(np.uint32))


def test_refusals_name_what_is_missing():
    x = np.ones((2, 16), np.float16)
    with pytest.raises(NotImplementedError, match="quant_mode='perchannel'"):
        tn.npu_dynamic_quant_asymmetric(x, quant_mode="perchannel")
    with pytest.raises(NotImplementedError, match="quant_mode='pertensor'"):
        tn.npu_dynamic_quant(x, quant_mode="pertensor")
    with pytest.raises(NotImplementedError, match="dst_type_max"):
        tn.npu_dynamic_quant_asymmetric(x, dst_type_max=100.0)
    with pytest.raises(ValueError, match="Atlas A2 / A3 only"):
        tn.npu_dynamic_quant_asymmetric(x, soc="Ascend310P3")
    with pytest.raises(ValueError, match="asymmetric"):
        simulate("dynamic_quant", SOC, x=spec((2, 16), "float16"), asymmetric=True)


def test_reduce_min_is_each_rows_minimum():
    """The ReduceMin instruction of the semantics table: each row of its source -> its
    minimum (exact), bit for bit numpy's min."""
    soc = resolve_soc(SOC)
    prog = CoreProgram(0, "aiv")
    b = ProgramBuilder(prog, soc.core("aiv"))
    src = b.alloc("UB", (4, 64), "float32", "src")
    dst = b.alloc("UB", (8,), "float32", "dst")
    data = np.random.default_rng(9).standard_normal((4, 64)).astype(np.float32)
    b.dma(Region("GM", 0, (4, 64), "float32", "x"), src)
    b.sync("MTE2", "V", 0)
    b.vop(VecOp.REDUCE_MIN, Region("UB", dst.offset, (4,), "float32"), (src,))
    b.sync("V", "MTE3", 0)
    b.dma(Region("UB", dst.offset, (4,), "float32"), Region("GM", 0, (4,), "float32", "y"))
    kern = Kernel("reduce_min", {"x": GMTensor("x", (4, 64), "float32", data, "input"),
                                 "y": GMTensor("y", (4,), "float32", None, "output")}, [prog], {})
    out = run_kernel(kern, soc, functional=True).outputs["y"]
    assert np.array_equal(out.view(np.uint32), data.min(axis=1).view(np.uint32))
