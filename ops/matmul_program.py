"""The Ascend C matmul as a tiled program on the cube cores (the skeleton of every matmul op).

Per AIC, for each base block (baseM x baseN) of its single-core block, in the tiling's order:
GM -> L1 by MTE2 (ND2NZ on the way) in chunks of stepKa / stepKb base-K slices, ping-pong over
``depth`` L1 buffers; L1 -> L0A / L0B by MTE1 one base-K slice at a time, ping-pong over two L0
buffers; Mmad on the cube accumulating in L0C; L0C -> GM by FixPipe with the epilogue's conversion
(F322F16, REQ8, DEQF16, ...). Flags follow hardware.md 2.3; overlap emerges from the pipes.

Functional runs keep tiles row-major inside L1 / L0 (the fractal byte order inside local buffers
is not modelled; transfer costs use the ND2NZ path). Accumulation follows the declared cube model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.numerics.cube import cube_matmul_float, cube_matmul_int

_ITEM = {"float16": 2, "bfloat16": 2, "float32": 4, "int8": 1, "int32": 4, "int4": 0.5}


@dataclass(frozen=True)
class CubeTiling:
    """The resolved numbers a cube program needs (filled from an op's tiling object)."""

    base_m: int
    base_n: int
    base_k: int
    step_ka: int
    step_kb: int
    depth_a1: int
    depth_b1: int
    single_core_m: int
    single_core_n: int
    m_dim: int
    n_dim: int
    l0_db: bool = True
    l0c_db: bool = False
    order: str = "m_first"  # traversal of base blocks inside a core: m_first | n_first


def _get(t: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if hasattr(t, n):
            return getattr(t, n)
    if default is not None:
        return default
    raise AttributeError(f"tiling {type(t).__name__} has none of {names}")


def cube_tiling_from(t: Any) -> CubeTiling:
    """Read a tiling object whose fields use Ascend C names (baseM) or snake_case (base_m)."""
    if isinstance(t, CubeTiling):
        return t
    order = str(_get(t, "order", "block_order", "iterate_order", default="m_first")).lower()
    return CubeTiling(
        base_m=int(_get(t, "base_m", "baseM")),
        base_n=int(_get(t, "base_n", "baseN")),
        base_k=int(_get(t, "base_k", "baseK")),
        step_ka=int(_get(t, "step_ka", "stepKa", default=1)),
        step_kb=int(_get(t, "step_kb", "stepKb", default=1)),
        depth_a1=int(_get(t, "depth_a1", "depthA1", default=2)),
        depth_b1=int(_get(t, "depth_b1", "depthB1", default=2)),
        single_core_m=int(_get(t, "single_core_m", "singleCoreM")),
        single_core_n=int(_get(t, "single_core_n", "singleCoreN")),
        m_dim=int(_get(t, "m_dim", "mDim", default=1)),
        n_dim=int(_get(t, "n_dim", "nDim", default=1)),
        l0_db=bool(_get(t, "l0_db", "l0_double_buffer", "dbL0A", default=True)),
        l0c_db=bool(_get(t, "l0c_db", "l0c_double_buffer", "dbL0C", default=False)),
        order="n_first" if "n" in order.split("_")[0] else "m_first",
    )


@dataclass
class Epilogue:
    """How L0C leaves the core: FixPipe ``mode`` to ``out_dtype``, with value semantics ``convert``
    mapping the (rows, cols) L0C tile and its (row0, col0) origin to output values."""

    mode: str
    out_dtype: str
    convert: Callable[[np.ndarray, int, int], np.ndarray] | None = None
    l0c_dtype: str = "float32"


def _nbytes(shape: tuple[int, int], dtype: str) -> int:
    return math.ceil(shape[0] * shape[1] * _ITEM[dtype])


def build_matmul_kernel(
    soc: Any,
    m: int,
    k: int,
    n: int,
    in_dtype: str,
    tiling: Any,
    epilogue: Epilogue,
    *,
    trans_b: bool = False,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    cube_model: str = "fractal_exact_fp32_sequential",
    name: str = "matmul",
    meta: dict | None = None,
) -> Kernel:
    """Build the kernel of C (m x n) = A (m x k) @ B (k x n) [+ bias] -> epilogue.

    ``b`` is given as stored: (k, n), or (n, k) when ``trans_b``. ``bias`` (n,) initialises the
    accumulator (float32 for float matmuls, int32 for integer ones) through the bias table.
    """
    t = cube_tiling_from(tiling)
    kind = "aic" if "aic" in soc.core_counts() else "aicore"
    desc = soc.core(kind)
    cores_avail = soc.core_counts()[kind]
    if t.m_dim * t.n_dim > cores_avail:
        raise ValueError(
            f"tiling core grid {t.m_dim}x{t.n_dim} exceeds the {cores_avail} "
            f"{kind} cores of {soc.name}"
        )
    functional = a is not None
    integer = in_dtype in ("int8", "int4")
    acc_dtype = "int32" if integer else "float32"
    gm = {
        "a": GMTensor("a", (m, k), in_dtype, a, "input"),
        "b": GMTensor("b", (n, k) if trans_b else (k, n), in_dtype, b, "input"),
        "c": GMTensor("c", (m, n), epilogue.out_dtype, None, "output"),
    }
    if bias is not None:
        gm["bias"] = GMTensor("bias", (n,), acc_dtype, np.asarray(bias).astype(acc_dtype), "input")
    isz = _ITEM[in_dtype]
    osz = _ITEM[epilogue.out_dtype]
    a_row = math.ceil(k * isz)
    b_row = math.ceil((k if trans_b else n) * isz)
    c_row = math.ceil(n * osz)
    ka_chunk = t.base_k * t.step_ka
    kb_chunk = t.base_k * t.step_kb
    ksteps = math.ceil(k / t.base_k)
    n_l0 = 2 if t.l0_db else 1
    n_l0c = 2 if t.l0c_db else 1
    cores: list[CoreProgram] = []
    for core_id in range(t.m_dim * t.n_dim):
        mi, ni = divmod(core_id, t.n_dim)
        m0, n0 = mi * t.single_core_m, ni * t.single_core_n
        m1, n1 = min(m, m0 + t.single_core_m), min(n, n0 + t.single_core_n)
        prog = CoreProgram(core_id, kind)
        cores.append(prog)
        if m0 >= m1 or n0 >= n1:
            continue
        bld = ProgramBuilder(prog, desc)
        l1a = [
            bld.alloc("L1", (t.base_m, ka_chunk), in_dtype, f"A1_{i}") for i in range(t.depth_a1)
        ]
        l1b = [
            bld.alloc("L1", (kb_chunk, t.base_n), in_dtype, f"B1_{i}") for i in range(t.depth_b1)
        ]
        l0a = [bld.alloc("L0A", (t.base_m, t.base_k), in_dtype, f"A0_{i}") for i in range(n_l0)]
        l0b = [bld.alloc("L0B", (t.base_k, t.base_n), in_dtype, f"B0_{i}") for i in range(n_l0)]
        l0c = [bld.alloc("L0C", (t.base_m, t.base_n), acc_dtype, f"C0_{i}") for i in range(n_l0c)]
        bt = l1bias = None
        if bias is not None:
            if "BT" not in desc.buffers:
                raise NotImplementedError(
                    f"bias on {soc.name}: cores without a BiasTable (coupled 310P) would broadcast "
                    "the bias UB -> L0C; that path is not modelled yet"
                )
            bt = bld.alloc("BT", (t.base_n,), acc_dtype, "bias")
            l1bias = bld.alloc("L1", (t.base_n,), acc_dtype, "bias_l1")
        coupled = desc.fixpipe is None
        if coupled:
            ub_out = [
                bld.alloc("UB", (t.base_m, t.base_n), acc_dtype, f"C_ub{i}") for i in range(n_l0c)
            ]
        blocks = [(bm, bn) for bm in range(m0, m1, t.base_m) for bn in range(n0, n1, t.base_n)]
        if t.order == "n_first":
            blocks.sort(key=lambda x: (x[1], x[0]))
        ca = cb = 0  # running L1 chunk counters (ping-pong index = counter % depth)
        step = 0  # running L0 slice counter
        for tile_idx, (bm, bn) in enumerate(blocks):
            rm, rn = min(t.base_m, m1 - bm), min(t.base_n, n1 - bn)
            cbuf = tile_idx % n_l0c
            c_reg = Region("L0C", l0c[cbuf].offset, (rm, rn), acc_dtype)
            bias_reg = None
            if bt is not None:
                bias_reg = Region("BT", bt.offset, (rn,), acc_dtype)
                staged = Region("L1", l1bias.offset, (rn,), acc_dtype)
                if tile_idx > 0:
                    bld.wait_flag("MTE1", "MTE2", 4)
                bld.dma(Region("GM", bn * 4, (rn,), acc_dtype, "bias"), staged, name="bias GM->L1")
                bld.sync("MTE2", "MTE1", 4)
                if tile_idx > 0:
                    bld.wait_flag("M", "MTE1", 2)
                bld.dma(staged, bias_reg, name="bias L1->BT")
                bld.set_flag("MTE1", "MTE2", 4)
            a_reg = b_reg = None
            for s in range(ksteps):
                k0 = s * t.base_k
                rk = min(t.base_k, k - k0)
                if s % t.step_ka == 0:
                    ia = ca % t.depth_a1
                    kc = min(ka_chunk, k - k0)
                    if ca >= t.depth_a1:
                        bld.wait_flag("MTE1", "MTE2", ia)
                    a_reg = Region("L1", l1a[ia].offset, (rm, kc), in_dtype)
                    bld.dma(
                        Region(
                            "GM", math.ceil(bm * a_row + k0 * isz), (rm, kc), in_dtype, "a", a_row
                        ),
                        a_reg,
                        name="A GM->L1 nd2nz",
                        transform="nd2nz",
                        fn=_copy2d(
                            Region(
                                "GM",
                                math.ceil(bm * a_row + k0 * isz),
                                (rm, kc),
                                in_dtype,
                                "a",
                                a_row,
                            ),
                            a_reg,
                        )
                        if functional
                        else None,
                    )
                    bld.sync("MTE2", "MTE1", ia)
                    ca += 1
                if s % t.step_kb == 0:
                    ib = cb % t.depth_b1
                    kc = min(kb_chunk, k - k0)
                    if cb >= t.depth_b1:
                        bld.wait_flag("MTE1", "MTE2", 2 + ib)
                    b_reg = Region("L1", l1b[ib].offset, (kc, rn), in_dtype)
                    if trans_b:
                        g = Region(
                            "GM", math.ceil(bn * b_row + k0 * isz), (rn, kc), in_dtype, "b", b_row
                        )
                    else:
                        g = Region(
                            "GM", math.ceil(k0 * b_row + bn * isz), (kc, rn), in_dtype, "b", b_row
                        )
                    bld.dma(
                        g,
                        b_reg,
                        name="B GM->L1 nd2nz",
                        transform="dn2nz" if trans_b else "nd2nz",
                        fn=_copy2d(g, b_reg, transpose=trans_b) if functional else None,
                    )
                    bld.sync("MTE2", "MTE1", 2 + ib)
                    cb += 1
                lb = step % n_l0
                if step >= n_l0:
                    bld.wait_flag("M", "MTE1", lb)
                ka_off = (s % t.step_ka) * t.base_k
                kb_off = (s % t.step_kb) * t.base_k
                a_src = _sub_cols(a_reg, ka_off, rk)
                b_src = _sub_rows(b_reg, kb_off, rk)
                a0 = Region("L0A", l0a[lb].offset, (rm, rk), in_dtype)
                b0 = Region("L0B", l0b[lb].offset, (rk, rn), in_dtype)
                bld.dma(a_src, a0, name="L1->L0A", fn=_copy2d(a_src, a0) if functional else None)
                bld.dma(b_src, b0, name="L1->L0B", fn=_copy2d(b_src, b0) if functional else None)
                if s % t.step_ka == t.step_ka - 1 or s == ksteps - 1:
                    bld.set_flag("MTE1", "MTE2", (ca - 1) % t.depth_a1)
                if s % t.step_kb == t.step_kb - 1 or s == ksteps - 1:
                    bld.set_flag("MTE1", "MTE2", 2 + (cb - 1) % t.depth_b1)
                bld.sync("MTE1", "M", lb)
                if s == 0 and tile_idx >= n_l0c:
                    bld.wait_flag("V" if coupled else "FIX", "M", cbuf)
                fn = None
                if functional:
                    fn = _mmad_fn(
                        a0, b0, c_reg, s == 0, integer, cube_model, bias_reg if s == 0 else None
                    )
                bld.mmad(
                    a0,
                    b0,
                    c_reg,
                    rm,
                    rk,
                    rn,
                    in_dtype,
                    accumulate=s > 0,
                    fn=fn,
                    bias=bias_reg if s == 0 else None,
                )
                if s == 0 and bias_reg is not None:
                    bld.set_flag("M", "MTE1", 2)
                bld.set_flag("M", "MTE1", lb)
                step += 1
            out = Region(
                "GM", math.ceil(bm * c_row + bn * osz), (rm, rn), epilogue.out_dtype, "c", c_row
            )
            fn = _fix_fn(c_reg, out, epilogue, bm, bn) if functional else None
            if coupled:
                _coupled_epilogue(
                    bld,
                    c_reg,
                    ub_out[cbuf],
                    out,
                    epilogue,
                    cbuf,
                    tile_idx,
                    n_l0c,
                    (bm, bn) if functional else None,
                )
                continue
            bld.sync("M", "FIX", cbuf)
            bld.fixpipe(
                c_reg,
                out,
                elements=rm * rn,
                out_dtype=epilogue.out_dtype,
                mode=epilogue.mode,
                fn=fn,
            )
            bld.set_flag("FIX", "M", cbuf)
    md = {
        "op": name,
        "m": m,
        "k": k,
        "n": n,
        "in_dtype": in_dtype,
        "out_dtype": epilogue.out_dtype,
        "trans_b": trans_b,
        "cube_model": cube_model,
    }
    md.update(meta or {})
    return Kernel(name, gm, cores, md)


def _sub_cols(r: Region, col0: int, cols: int) -> Region:
    rows, total = r.shape
    isz = _ITEM[r.dtype]
    return Region(
        r.buffer,
        r.offset + math.ceil(col0 * isz),
        (rows, cols),
        r.dtype,
        None,
        math.ceil(total * isz),
    )


def _sub_rows(r: Region, row0: int, rows: int) -> Region:
    _, cols = r.shape
    isz = _ITEM[r.dtype]
    return Region(r.buffer, r.offset + math.ceil(row0 * cols * isz), (rows, cols), r.dtype)


def _copy2d(src: Region, dst: Region, transpose: bool = False):
    def copy(ctx) -> None:
        data = ctx.read(src)
        ctx.write(dst, data.T if transpose else data)

    return copy


def _mmad_fn(
    a0: Region, b0: Region, c: Region, init: bool, integer: bool, model: str, bias: Region | None
):
    def mmad(ctx) -> None:
        a = ctx.read(a0)
        b = ctx.read(b0)
        if integer:
            part = cube_matmul_int(a, b)
            if init:
                acc = (
                    np.zeros(c.shape, np.int32)
                    if bias is None
                    else np.broadcast_to(ctx.read(bias), c.shape).astype(np.int32)
                )
            else:
                acc = ctx.read(c)
            ctx.write(c, (acc.astype(np.int64) + part).astype(np.int32))
        else:
            init_acc = None
            if init:
                if bias is not None:
                    init_acc = np.broadcast_to(ctx.read(bias), c.shape).astype(np.float32)
            else:
                init_acc = ctx.read(c)
            ctx.write(c, cube_matmul_float(a, b, model=model, bias=init_acc))

    return mmad


def _fix_fn(c: Region, out: Region, epi: Epilogue, row0: int, col0: int):
    def fix(ctx) -> None:
        tile = ctx.read(c)
        ctx.write(out, epi.convert(tile, row0, col0) if epi.convert else tile)

    return fix


def _coupled_epilogue(
    bld: ProgramBuilder,
    c_reg: Region,
    ub: Region,
    out: Region,
    epi: Epilogue,
    cbuf: int,
    tile_idx: int,
    n_l0c: int,
    origin: tuple[int, int] | None,
) -> None:
    """310P (no FixPipe): L0C -> UB on the vector pipe, conversion on the vector unit, UB -> GM."""
    rm, rn = c_reg.shape
    ub_acc = Region("UB", ub.offset, (rm, rn), c_reg.dtype)
    ub_res = Region("UB", ub.offset, (rm, rn), epi.out_dtype)
    bld.sync("M", "V", cbuf)
    if tile_idx >= n_l0c:
        bld.wait_flag("MTE3", "V", cbuf)
    bld.dma(c_reg, ub_acc, name="L0C->UB")
    bld.set_flag("V", "M", cbuf)
    fn = None
    if origin is not None:
        row0, col0 = origin

        def fn(ctx) -> None:
            tile = ctx.read(ub_acc)
            ctx.write(ub_res, epi.convert(tile, row0, col0) if epi.convert else tile)

    bld.vec(
        f"Cast {epi.mode}", "convert", ub_res, (ub_acc,), elements=rm * rn, dtype=c_reg.dtype, fn=fn
    )
    bld.sync("V", "MTE3", cbuf)
    bld.dma(ub_res, out, name="UB->GM")
    bld.set_flag("MTE3", "V", cbuf)


# -- calibration rows A* (vendor default tiling) and B* (the tiling the row gives) ---------------

_B_PIPES = (
    ("Cube", "M", "compute"),
    ("TEXTRACT", "MTE1", "transfer"),
    ("TLOAD", "MTE2", "transfer"),
    ("TSTORE", "FIX", "transfer"),
)


def b_row_tiling(size: int) -> CubeTiling:
    """Rows B1-B4: baseM/N/K = 128/256/64, stepKa = stepKb = 4, double-buffered L1 and L0, on the
    4 x 6 core grid that row B3 states (singleCore = size/4 x size/6)."""
    return CubeTiling(
        base_m=128,
        base_n=256,
        base_k=64,
        step_ka=4,
        step_kb=4,
        depth_a1=2,
        depth_b1=2,
        single_core_m=math.ceil(size / 4),
        single_core_n=math.ceil(size / 6),
        m_dim=4,
        n_dim=6,
        l0_db=True,
        l0c_db=False,
    )


def _ratios(text: str) -> dict[str, float]:
    out = {}
    for label, _, _ in _B_PIPES:
        idx = text.find(label)
        if idx >= 0:
            pct = text[idx:].split("%")[0].split()[-1]
            out[label] = float(pct)
    return out


def calibration_prediction(row):
    """Rows A* and B*: fp16 / bf16 matmuls on 910B2 and 910_9391."""
    from npusim.report.summary import pipe_busy_by_kind
    from npusim.validate import Prediction, soc_name_of

    if not (row.id.startswith("A") or row.id.startswith("B")) or row.op != "matmul":
        return None
    from npusim.runner import resolve_soc

    soc = resolve_soc(soc_name_of(row))
    in_dtype = "bfloat16" if row.dtype.startswith("bfloat16") else "float16"
    out_dtype = "float32" if "float32 out" in row.dtype else in_dtype
    trans_b = row.layout.startswith("NT")
    if row.id.startswith("B"):
        tiling = b_row_tiling(row.m)
    else:
        from npusim.ops.matmul_tiling import default_matmul_tiling

        tiling = default_matmul_tiling(
            row.m, row.k, row.n, in_dtype, out_dtype, soc, trans_b=trans_b
        )
    epi = Epilogue("F322F16" if out_dtype != "float32" else "NONE", out_dtype)
    kern = build_matmul_kernel(soc, row.m, row.k, row.n, in_dtype, tiling, epi, trans_b=trans_b)
    from npusim.engine.sim import run_kernel

    res = run_kernel(kern, soc, check_races=False)
    pipes = {}
    if row.id.startswith("B"):
        busy = pipe_busy_by_kind(res).get("aic", {})
        measured = _ratios(row.other_measured)
        for label, pipe, kind in _B_PIPES:
            if label in measured:
                pipes[label] = (100.0 * busy.get(pipe, 0.0) / res.cycles, measured[label], kind)
    tflops = 2 * row.m * row.k * row.n / (res.microseconds * 1e-6) / 1e12
    return Prediction(res.microseconds, pipes, "ratio", note=f"{tflops:.1f} TFLOPS predicted")
