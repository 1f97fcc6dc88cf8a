"""The instruction set: typed instructions, the semantics table and the cost table."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu
from npusim.engine.errors import ProgramError
from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.isa import Cast, DataCopy, ScalarStep, VecOp, Vector
from npusim.isa.semantics import supplied_semantics
from npusim.numerics import BF16
from npusim.ops.group_quant_program import build_group_quant, default_group_quant_tiling

SOC = load_soc("Ascend910B2")


def _one_aiv_kernel(build, gm):
    prog = CoreProgram(0, "aiv")
    build(ProgramBuilder(prog, SOC.core("aiv")))
    return Kernel("t", gm, [prog])


def test_opcodes_carry_their_descriptor_cost_class():
    """Div costs as a division and Axpy as a ternary op, whatever name a program gives them."""
    assert VecOp.DIV.cost_class == "divide"
    assert VecOp.AXPY.cost_class == "ternary"
    assert VecOp.CAST.cost_class == "convert"
    ub = Region("UB", 0, (64,), "float32")
    v = Vector(pipe="V", name="x", reads=(ub, ub), writes=(ub,), op=VecOp.DIV, elements=64,
               dtype="float32")
    assert v.op_class == "divide" and v.kind == "vec"


def test_instructions_are_frozen():
    """An emitted instruction cannot be edited after the fact."""
    r = Region("UB", 0, (8,), "float32")
    d = DataCopy(pipe="MTE2", name="c", reads=(r,), writes=(r,))
    with pytest.raises(AttributeError):
        d.transform = "nd2nz"  # type: ignore[misc]


def test_vector_semantics_refuse_an_implicit_cast():
    """A Mul that declares fp32 but reads an fp16 operand is a program error, not a silent cast."""
    x = np.arange(64, dtype=np.float32)
    gm = {"x": GMTensor("x", (64,), "float32", x), "y": GMTensor("y", (64,), "float32", None,
                                                                  "output")}

    def build(b):
        f = b.alloc("UB", (64,), "float32")
        h = b.alloc("UB", (64,), "float16")
        b.dma(Region("GM", 0, (64,), "float32", "x"), f)
        b.sync("MTE2", "V", 0)
        b.vop(VecOp.MUL, f, (f, h), dtype="float32")

    with pytest.raises(ProgramError, match="no implicit casts"):
        run_kernel(_one_aiv_kernel(build, gm), SOC, functional=True)


def test_typed_chain_values_come_from_the_table():
    """Cast fp16->fp32, Muls, Adds, Cast RINT to int8: the table's values equal the numerics
    formula bit for bit, and a timing-only run of the same program has the same cycles."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(256) * 30).astype(np.float16)
    gm = {"x": GMTensor("x", (256,), "float16", x),
          "y": GMTensor("y", (256,), "int8", None, "output")}

    def build(b):
        h = b.alloc("UB", (256,), "float16")
        f = b.alloc("UB", (256,), "float32")
        q = b.alloc("UB", (256,), "int8")
        b.dma(Region("GM", 0, (256,), "float16", "x"), h)
        b.sync("MTE2", "V", 0)
        b.cast(f, h)
        b.vop(VecOp.MULS, f, (f,), scalar=0.37)
        b.vop(VecOp.ADDS, f, (f,), scalar=-1.5)
        b.cast(q, f, round_mode="rint")
        b.sync("V", "MTE3", 0)
        b.dma(q, Region("GM", 0, (256,), "int8", "y"))

    res = run_kernel(_one_aiv_kernel(build, gm), SOC, functional=True)
    v = (x.astype(np.float32) * np.float32(0.37)).astype(np.float32) + np.float32(-1.5)
    want = np.clip(np.rint(v), -128, 127).astype(np.int8)
    assert res.outputs["y"].view(np.uint8).tolist() == want.view(np.uint8).tolist()
    gm["x"].data = None
    assert run_kernel(_one_aiv_kernel(build, gm), SOC).cycles == res.cycles


def test_cast_instruction_records_rounding_and_saturation():
    """A Cast names its rounding mode; an unknown mode is refused when the program is built."""
    prog = CoreProgram(0, "aiv")
    b = ProgramBuilder(prog, SOC.core("aiv"))
    f = b.alloc("UB", (64,), "float32")
    q = b.alloc("UB", (64,), "int32")
    ins = b.cast(q, f, round_mode="floor")
    assert isinstance(ins, Cast) and ins.round_mode == "floor" and ins.saturate
    with pytest.raises(ValueError):
        b.cast(q, f, round_mode="nearest")


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), scale_dtype=st.sampled_from(["float16", "bfloat16", "float32"]),
       out=st.sampled_from(["int8", "int4"]), with_offset=st.booleans())
def test_group_quant_program_replays_every_value_from_the_table(seed, scale_dtype, out,
                                                                with_offset):
    """group_quant's outputs come from its instructions alone (no program-supplied semantics)
    and equal the torch_npu-named API bit for bit, for every scale dtype, offset and output."""
    rng = np.random.default_rng(seed)
    rows, h = int(rng.integers(1, 20)), 64
    gi = np.sort(rng.integers(0, rows + 1, 3))
    gi[-1] = rows
    x = (rng.standard_normal((rows, h)) * 4).astype(np.float16)
    sdt = BF16 if scale_dtype == "bfloat16" else np.dtype(scale_dtype)
    scale = rng.uniform(-3, 3, (3, h)).astype(np.float32).astype(sdt)
    offset = np.array([0.75], np.float32).astype(sdt) if with_offset else None
    kw = {"offset": offset, "dst_dtype": "quint4x2" if out == "int4" else None}
    r = npusim.simulate("group_quant", "Ascend910B2", x=x, scale=scale, group_index=gi, **kw)
    want = npusim.torch_npu.npu_group_quant(x, scale, gi, **kw)
    assert r.outputs.view(np.uint8).tolist() == np.asarray(want).view(np.uint8).tolist()
    kern = build_group_quant(SOC, (rows, h), "float16", scale_dtype, gi,
                             default_group_quant_tiling(SOC, rows, h), out=out)
    assert supplied_semantics(kern) == {}


def test_vector_add_scalar_loop_replays_from_the_table():
    """H1's scalar loop (GetValue / add / SetValue per element) is a typed Scalar whose body is
    one Add step: its
    values come from the table, equal the fp16 RNE reference bit for bit (incl. overflow to inf,
    NaN, signed zeros, subnormals), and the functional run takes the timing-only cycles."""
    from npusim.ops.vector_add import H_SERIES, reference_add
    from npusim.spec import spec

    rng = np.random.default_rng(3)
    n = 4096
    x = (rng.standard_normal(n) * 2000).astype(np.float16)
    y = (rng.standard_normal(n) * 2000).astype(np.float16)
    x[:6] = [np.inf, -np.inf, np.nan, -0.0, 6e-8, 65504]
    y[:6] = [1, np.inf, 1, -0.0, 6e-8, 65504]
    res = npusim.simulate("vector_add", SOC, H_SERIES["H1"], x=x, y=y)
    with np.errstate(over="ignore", invalid="ignore"):
        want = reference_add(x, y)
    assert res.outputs.view(np.uint16).tolist() == want.view(np.uint16).tolist()
    assert supplied_semantics(res.run.kernel) == {}
    timing = npusim.simulate("vector_add", SOC, H_SERIES["H1"], x=spec((n,), "float16"),
                             y=spec((n,), "float16"))
    assert timing.cycles == res.cycles


def test_scalar_loop_refuses_a_step_it_does_not_have():
    prog = CoreProgram(0, "aiv")
    b = ProgramBuilder(prog, SOC.core("aiv"))
    a = b.alloc("UB", (16,), "float16", "a")
    out = b.alloc("UB", (16,), "float16", "o")
    b.scalar("loop", 16, body=(ScalarStep(VecOp.ABS, out, (a,)),))
    kern = Kernel("t", {}, [prog])
    with pytest.raises(ProgramError, match="has no step Abs"):
        run_kernel(kern, SOC, functional=True)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), out=st.sampled_from(["int8", "float16"]),
       per_channel=st.booleans(), with_offset=st.booleans(), with_bias=st.booleans())
def test_quant_matmul_fixpipe_requant_replays_from_the_table(seed, out, per_channel,
                                                             with_offset, with_bias):
    """W8A8's FixPipe REQ8 / DEQF16 (one uint64 parameter) and VREQ8 / VDEQF16 (per-column
    parameters staged GM -> L1 -> FB) take their values from the table: no program closure, bits
    equal the reference."""
    from npusim.ops.quant_matmul import reference_quant_matmul

    rng = np.random.default_rng(seed)
    m, k, n = int(rng.integers(1, 40)), 32 * int(rng.integers(1, 9)), int(rng.integers(2, 80))
    x1 = rng.integers(-128, 128, (m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    scale = rng.uniform(1e-4, 4e-3, n if per_channel else 1).astype(np.float32)
    offset = (rng.uniform(-8, 8, scale.shape).astype(np.float32)
              if with_offset and out == "int8" else None)
    bias = rng.integers(-3000, 3000, n).astype(np.int32) if with_bias else None
    kw = {"scale": scale, "offset": offset, "bias": bias, "output_dtype": out}
    res = npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, **kw)
    want = reference_quant_matmul(x1, x2, **kw, soc=SOC)
    assert supplied_semantics(res.run.kernel) == {}
    modes = {i.mode for c in res.run.kernel.cores for i in c.instrs if type(i).__name__ ==
             "FixPipe"}
    base = "REQ8" if out == "int8" else "DEQF16"
    assert modes == {("V" if per_channel else "") + base}
    assert np.asarray(res.outputs).view(np.uint8).tolist() == want.view(np.uint8).tolist()


@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from(["int8", "float16", "float32"]),
    r=st.integers(1, 40),
    c=st.integers(1, 90),
    data=st.data(),
)
def test_data_copy_nz_window_delivers_the_tiles_logical_order(dtype, r, c, data):
    """DataCopy ``nz``: a GM window of C0-column strips of an (R, C) matrix's FRACTAL_NZ storage
    (one run of rows x C0 per strip, R padded to 16 rows apart) lands in a local (rows, cols) tile
    in logical row-major order; copied back as ND it equals the matrix's window bit for bit."""
    from npusim.layouts.nz import nd_to_nz

    isz = np.dtype(dtype).itemsize
    c0 = 32 // isz
    rng = np.random.default_rng(r * 100 + c)
    mat = rng.integers(-100, 100, (r, c)).astype(dtype)
    r0 = data.draw(st.integers(0, r - 1))
    rows = data.draw(st.integers(1, r - r0))
    s0 = data.draw(st.integers(0, (c - 1) // c0))  # first C0 strip of the window
    cols = data.draw(st.integers(1, c - s0 * c0))
    strips = -(-cols // c0)
    r_pad = -(-r // 16) * 16
    store = nd_to_nz(mat, c0).reshape(-1)
    gm = {"x": GMTensor("x", store.shape, dtype, store),
          "y": GMTensor("y", (rows, cols), dtype, None, "output")}

    def build(b):
        t = b.alloc("UB", (rows, cols), dtype)
        src = Region("GM", (s0 * r_pad + r0) * c0 * isz, (strips, rows * c0), dtype, "x",
                     row_stride_bytes=r_pad * c0 * isz)
        b.dma(src, t, transform="nz")
        b.sync("MTE2", "MTE3", 0)
        b.dma(t, Region("GM", 0, (rows, cols), dtype, "y"))

    res = run_kernel(_one_aiv_kernel(build, gm), SOC, functional=True)
    want = mat[r0:r0 + rows, s0 * c0:s0 * c0 + cols]
    u = {1: np.uint8, 2: np.uint16, 4: np.uint32}[isz]
    assert np.array_equal(np.asarray(res.outputs["y"]).view(u), want.view(u))
