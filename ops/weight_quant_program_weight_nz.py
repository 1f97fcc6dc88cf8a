"""The 310P ``WeightNz`` program of npu_weight_quant_batchmatmul (Atlas inference series, one
coupled AI Core per block: cube and vector in one instruction stream, no FixPipe, no BiasTable).

Structure (``weight_quant_batch_matmul_v2_weight_nz*.h`` in ops-nn, read for behaviour; no code
copied): per core an M x N block and a K loop. MTE2 brings the FRACTAL_NZ weight tile into UB,
the vector unit dequantises it (Cast w->half, Add offset, Mul scale in fp16; per-channel
parameters once per N block and Brcb'd, per-group parameters per K tile), MTE3 moves it UB -> L1,
MTE2 loads x into L1 (ND -> NZ), MTE1 feeds L0A / L0B and the cube accumulates in L0C. With a
bias, the fp16 bias row is cast to fp32 on the vector unit and broadcast UB -> L0C before the
block's first Mmad, which accumulates onto it (the cube bias path of a core without a
BiasTable). At the end L0C -> UB on the vector pipe, Cast to fp16 (RINT, saturating: the 310P's
only overflow mode), UB -> GM.

Functional runs replay the values from the semantics table: the NZ weight window lands in UB in
logical order (the declared local-tile model; the Brcb of the parameters is kept for its time and
the values use the parameter rows as row broadcasts), each group's rows of a tile take their
group's parameter row, the Mmads run in the SoC's declared cube model. The output equals the
declared oracle ``numerics_weight_nz.weight_nz_310p`` bit for bit (tested).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npusim.engine.program import CoreProgram, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region, itemsize
from npusim.ops.program_stages import Buffer, PingPong, group_segments, ranges
from npusim.ops.weight_quant_batchmatmul.tiling import layout_bytes
from npusim.ops.weight_quant_common import (
    WqbmmShape,
    kernel_meta,
    load_params,
    operand_tensors,
    replay_inputs,
    weight_tile_region,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.hw.schema_core import BufferName


@dataclass(frozen=True)
class WeightNzProgramTiling:
    """Program tiling of the 310P WeightNz kernel (its tiling data's core split and L1 block
    sizes: ``mAL1Size`` / ``nBL1Size`` / ``kL1Size``; the L0 block equals the L1 block in M and
    N). The kernel tiling model in ``weight_quant_batchmatmul.tiling`` has no WeightNz entry."""

    m_block_num: int
    n_block_num: int
    m_l1: int
    n_l1: int
    k_l1: int


def default_weight_nz_tiling(soc: SocDescriptor, s: WqbmmShape) -> WeightNzProgramTiling:
    """N over the cores in 32-aligned ranges of at most 128 columns per L1 block, then M;
    K blocks of 128 (double-buffered fp16 L0B blocks of 128 x 128 fill the 64 KiB L0B): a
    heuristic, the 310P host tiling was not read."""
    cores = soc.core_counts()["aicore"]
    n_l1 = min(128, max(32, math.ceil(math.ceil(s.n / cores) / 32) * 32))
    n_blocks = min(cores, math.ceil(s.n / n_l1))
    m_blocks = max(1, min(cores // n_blocks, math.ceil(s.m / 128)))
    m_l1 = min(128, math.ceil(math.ceil(s.m / m_blocks) / 16) * 16)
    return WeightNzProgramTiling(m_blocks, n_blocks, m_l1, n_l1, min(128, _align(s.k, 32)))


def weight_nz_core_buffers(s: WqbmmShape, t: WeightNzProgramTiling
                           ) -> dict[BufferName, list[Buffer]]:
    """Local buffers of one WeightNz AI Core, per buffer in allocation order (declared once; the
    program allocates exactly this): in UB the stored weight tiles and their fp16 dequant
    (ping-pong), the per-channel parameter rows, the per-group parameter rows of a K tile
    (ping-pong), the Brcb'd parameters, the fp32 result block, the output block and the bias;
    in L1 the dequantised weight and x tiles (ping-pong); the L0A / L0B operands (ping-pong)
    and the L0C accumulator."""
    ml, nl, kl = t.m_l1, t.n_l1, t.k_l1
    gpt = _group_params_rows(s, kl)
    ub: list[Buffer] = [(f"w{i}", (kl, nl), s.w_dtype) for i in range(2)]
    ub += [(f"h{i}", (kl, nl), "float16") for i in range(2)]
    ub += [("params", (2, nl), "float16")]
    ub += [(f"group_params{i}", (2, gpt, nl), "float16") for i in range(2)]
    ub += [("params_brcb", (2, nl, 16), "float16"), ("c", (ml, nl), "float32"),
           ("y", (ml, nl), s.out_dtype), ("bias", (2, nl), "float32")]
    l1: list[Buffer] = [(f"wl1_{i}", (kl, nl), "float16") for i in range(2)]
    l1 += [(f"xl1_{i}", (ml, kl), "float16") for i in range(2)]
    return {"UB": ub, "L1": l1,
            "L0A": [(f"a{i}", (ml, kl), "float16") for i in range(2)],
            "L0B": [(f"b{i}", (kl, nl), "float16") for i in range(2)],
            "L0C": [("acc", (ml, nl), "float32")]}


def validate_weight_nz_tiling(t: Any, soc: SocDescriptor, s: WqbmmShape) -> None:
    """A user's 310P WeightNz tiling: the right type, positive integer fields, at most the SoC's
    AI Cores, fractal-aligned blocks (M and the NZ weight's N rows in 16s, K in the weight's
    32 B C0), and its local buffers within each buffer's capacity. ValueError / TypeError name
    the field and the rule."""
    if not isinstance(t, WeightNzProgramTiling):
        raise TypeError(f"tiling={type(t).__name__}: the 310P WeightNz program needs a "
                        "WeightNzProgramTiling (npusim.ops.weight_quant_program_weight_nz)")
    for f in dataclasses.fields(t):
        v = getattr(t, f.name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"WeightNz tiling: {f.name}={v!r} must be a positive integer")
    cores = soc.core_counts()["aicore"]
    if t.m_block_num * t.n_block_num > cores:
        raise ValueError(f"WeightNz tiling: m_block_num x n_block_num = "
                         f"{t.m_block_num * t.n_block_num} cores, {soc.name} has {cores}")
    for name, unit in (("m_l1", 16), ("n_l1", 16), ("k_l1", 32)):
        if getattr(t, name) % unit:
            raise ValueError(f"WeightNz tiling: {name}={getattr(t, name)} must be a multiple of "
                             f"{unit} (the cube fractal / the int8 weight's C0)")
    core = soc.core("aicore")
    for buf, layout in weight_nz_core_buffers(s, t).items():
        spec = core.buffers[buf]
        need = layout_bytes(layout, spec.alignment_bytes)
        if need > spec.capacity_bytes:
            raise ValueError(
                f"WeightNz tiling: {buf} needs {need} B for m_l1={t.m_l1}, n_l1={t.n_l1}, "
                f"k_l1={t.k_l1} ({', '.join(n for n, _, _ in layout)}), above its "
                f"{spec.capacity_bytes} B")


def _align(a: int, b: int) -> int:
    return -(-a // b) * b


def weight_nz_replay_data(args: Any) -> dict[str, Any]:
    """GM contents of the 310P WeightNz program for a validated call: x, the weight as the
    FRACTAL_NZ storage of the (N, K) matrix (the layout the kernel reads, declared), the (G, N)
    fp16 parameters and the fp16 bias."""
    import numpy as np

    from npusim.layouts.nz import nd_to_nz

    wt = np.ascontiguousarray(np.asarray(args.weight).T).astype(np.int8)  # (N, K)
    g = math.ceil(args.k / args.group_size) if args.group_size else 1
    return replay_inputs(args, np.ascontiguousarray(nd_to_nz(wt, 32)), g,
                         param_dtype="float16", bias_dt="float16")


def build_weight_nz(soc: SocDescriptor, s: WqbmmShape, t: WeightNzProgramTiling,
                    data: dict[str, Any] | None = None) -> Kernel:
    """The 310P WeightNz program (coupled AI Cores); with ``data``
    (:func:`weight_nz_replay_data`) a functional run replays its values."""
    if not s.trans_w:
        raise NotImplementedError("WeightNz program: only the transposed (N, K) NZ weight")
    if s.x_dtype != "float16":
        raise NotImplementedError(f"WeightNz program: x dtype {s.x_dtype} (310P cube has fp16)")
    ncores = t.m_block_num * t.n_block_num
    avail = soc.core_counts()["aicore"]
    if ncores > avail:
        raise ValueError(f"WeightNz tiling uses {ncores} cores, {soc.name} has {avail} AI Cores")
    snz = WqbmmShape(**{**s.__dict__, "weight_nz": True})
    from npusim.ops.weight_quant_program_splitk import weight_storage_shape

    d = data or {}
    ngroups = math.ceil(s.k / s.group_size) if s.group_size else 1
    gm = operand_tensors(s, d, {}, w_shape=weight_storage_shape(snz), param_rows=ngroups,
                         bias_dt="float16")  # x and its parameters are fp16 (checked above)
    cube_model = str(soc.numerics.cube_accumulation.model) if data is not None else None
    desc = soc.core("aicore")
    m_per = math.ceil(s.m / t.m_block_num)
    n_per = math.ceil(s.n / t.n_block_num)
    cores = []
    for ci in range(ncores):
        prog = CoreProgram(ci, "aicore")
        cores.append(prog)
        mi, ni = ci // t.n_block_num, ci % t.n_block_num
        mr = (mi * m_per, min(s.m, (mi + 1) * m_per))
        nr = (ni * n_per, min(s.n, (ni + 1) * n_per))
        if mr[0] < mr[1] and nr[0] < nr[1]:
            _weight_nz_core(ProgramBuilder(prog, desc), snz, t, mr, nr, cube_model)
    meta = kernel_meta(s, "WeightNz", t)
    if data is not None:
        meta["functional_replay"] = f"instructions (semantics table; cube model {cube_model})"
    return Kernel("wqbmm_weightnz", gm, cores, meta)


def _brcb(b: ProgramBuilder, brc: Region, src: Region) -> None:
    """Brcb: each parameter of the (rows, width) ``src`` to a 32 B block of ``brc`` (rows of
    ``brc``'s width x 16 fp16 lanes); the table computes the values though the dequant reads
    the parameter rows directly (its declared addressing model)."""
    rows, width = src.shape
    dst = Region("UB", brc.offset, (rows, width * 16), "float16", None, brc.shape[1] * 16 * 2)
    b.vop(VecOp.BRCB, dst, (src,), elements=width * 16 * rows, dtype="float16",
          name="Brcb params")


def _group_params_rows(s: WqbmmShape, kl: int) -> int:
    """Parameter rows one K tile of ``kl`` rows can span (1 per-channel)."""
    return math.ceil(kl / s.group_size) + 1 if s.group_size else 1


def _weight_nz_core(
    b: ProgramBuilder, s: WqbmmShape, t: WeightNzProgramTiling, mr: tuple[int, int],
    nr: tuple[int, int], cube_model: str | None,
) -> None:
    ml, nl, kl = t.m_l1, t.n_l1, t.k_l1
    gpt = _group_params_rows(s, kl)
    loc = {buf: {name: b.alloc(buf, shape, dt, name) for name, shape, dt in layout}
           for buf, layout in weight_nz_core_buffers(s, t).items()}
    ub, l1 = loc["UB"], loc["L1"]
    w_ub, h_ub = [ub[f"w{i}"] for i in range(2)], [ub[f"h{i}"] for i in range(2)]
    prm, brc = ub["params"], ub["params_brcb"]
    prm_g = [ub[f"group_params{i}"] for i in range(2)]
    c_ub, y_ub, bias_ub = ub["c"], ub["y"], ub["bias"]
    w_l1, x_l1 = [l1[f"wl1_{i}"] for i in range(2)], [l1[f"xl1_{i}"] for i in range(2)]
    a0 = [loc["L0A"][f"a{i}"] for i in range(2)]
    b0 = [loc["L0B"][f"b{i}"] for i in range(2)]
    acc = loc["L0C"]["acc"]

    w_in = PingPong(b, "MTE2", "V", (0, 1))  # weight tile in UB
    w_out = PingPong(b, "V", "MTE3", (0, 1))  # dequantised tile in UB
    l1w = PingPong(b, "MTE3", "MTE1", (0, 1))  # dequantised tile in L1
    l1x = PingPong(b, "MTE2", "MTE1", (2, 3))  # x tile in L1
    l0 = PingPong(b, "MTE1", "M", (0, 1))
    c_out = PingPong(b, "V", "MTE3", (2,))  # result tile in UB
    prm_p = PingPong(b, "MTE2", "V", (2,))
    first_block = True
    for m0, m1 in ranges(mr[0], mr[1], ml):
        rm = m1 - m0
        for n0, n1 in ranges(nr[0], nr[1], nl):
            wn = n1 - n0
            c_reg = Region("L0C", acc.offset, (rm, wn), "float32")
            if not s.group_size:
                p = prm_p.acquire()
                load_params(b, s, 0, n0, wn, prm.offset, prm.offset + nl * 2, "float16")
                prm_p.ready(p)
                _brcb(b, brc, Region("UB", prm.offset, (2, wn), "float16", None, nl * 2))
            if s.has_bias:  # fp16 bias -> fp32 on V, broadcast into L0C before the first Mmad
                if not first_block:
                    b.wait_flag("V", "MTE2", 5)
                b.dma(Region("GM", n0 * 2, (wn,), "float16", "bias"),
                      Region("UB", bias_ub.offset, (wn,), "float16"), name="bias GM->UB")
                b.sync("MTE2", "V", 4)
                bias32 = Region("UB", bias_ub.offset + nl * 4, (wn,), "float32")
                b.cast(bias32, Region("UB", bias_ub.offset, (wn,), "float16"),
                       name="Cast bias->fp32")
                # V is in order: the previous block's L0C -> UB is done
                b.dma(bias32, c_reg, name="bias UB->L0C broadcast")
                b.set_flag("V", "MTE2", 5)
                b.set_flag("V", "M", 6)
            for kti, (k0, k1) in enumerate(ranges(0, s.k, kl)):
                wk = k1 - k0
                i = w_in.acquire()
                wreg = Region("UB", w_ub[i].offset, (wk, wn), s.w_dtype)
                # the NZ window lands in UB in logical order (declared local-tile model)
                b.dma(weight_tile_region(s, k0, wk, n0, wn), wreg, name="weight NZ GM->UB",
                      transform="nz2nd")
                per_group = group_segments(k0, k1, s.group_size) if s.group_size else []
                for gi, (g, _, _) in enumerate(per_group):
                    po = prm_g[i].offset + gi * nl * 2
                    load_params(b, s, g, n0, wn, po, po + gpt * nl * 2, "float16")
                w_in.ready(i)
                o = w_out.acquire()
                hreg = Region("UB", h_ub[o].offset, (wk, wn), "float16")
                b.cast(hreg, wreg, name="Cast w->half")
                if s.group_size:
                    _brcb(b, brc, Region("UB", prm_g[i].offset, (1 + s.has_offset, wn),
                                         "float16", None, gpt * nl * 2))
                _dequant(b, s, hreg, (k0, k1), prm.offset, prm_g[i].offset, (nl, gpt))
                w_in.release(i)
                w_out.ready(o)
                j = l1w.acquire()
                b.dma(hreg, Region("L1", w_l1[j].offset, (wk, wn), "float16"),
                      name="dequant w UB->L1")
                w_out.release(o)
                xj = l1x.acquire()
                b.dma(Region("GM", (m0 * s.k + k0) * 2, (rm, wk), "float16", "x", s.k * 2),
                      Region("L1", x_l1[xj].offset, (rm, wk), "float16"), name="x GM->L1 nd2nz",
                      transform="nd2nz")
                l1w.ready(j)
                l1x.ready(xj)
                q = l0.acquire()
                xa = Region("L0A", a0[q].offset, (rm, wk), "float16")
                wb = Region("L0B", b0[q].offset, (wk, wn), "float16")
                b.dma(Region("L1", x_l1[xj].offset, (rm, wk), "float16"), xa, name="x L1->L0A")
                b.dma(Region("L1", w_l1[j].offset, (wk, wn), "float16"), wb, name="w L1->L0B")
                l1w.release(j)
                l1x.release(xj)
                l0.ready(q)
                if kti == 0 and not first_block:
                    b.wait_flag("V", "M", 0)  # the previous block's L0C -> UB is done
                if kti == 0 and s.has_bias:
                    b.wait_flag("V", "M", 6)  # the bias row is in L0C
                b.mmad(xa, wb, c_reg, rm, wk, wn, "float16", accumulate=kti > 0 or s.has_bias,
                       accumulation=cube_model)
                l0.release(q)
            if not s.group_size:
                prm_p.release(p)  # the block's last dequant has read the parameter rows
            first_block = False
            b.sync("M", "V", 0)
            c = c_out.acquire()
            creg = Region("UB", c_ub.offset, (rm, wn), "float32")
            b.dma(c_reg, creg, name="L0C->UB")
            b.set_flag("V", "M", 0)
            yreg = Region("UB", y_ub.offset, (rm, wn), s.out_dtype)
            # the 310P fp32 -> fp16 conversion: RINT, saturating (its only overflow mode)
            b.cast(yreg, creg, round_mode="rint", saturate=True, name="Cast fp32->fp16 nz2nd")
            c_out.ready(c)
            b.dma(yreg, Region("GM", (m0 * s.n + n0) * itemsize(s.out_dtype), (rm, wn), s.out_dtype,
                               "y", s.n * itemsize(s.out_dtype)), name="y UB->GM")
            c_out.release(c)
    if not first_block:
        b.wait_flag("V", "M", 0)
    if s.has_bias and not first_block:
        b.wait_flag("V", "MTE2", 5)
    for pair in (w_in, w_out, l1w, l1x, l0, c_out, prm_p):
        pair.drain()


def _dequant(b: ProgramBuilder, s: WqbmmShape, h: Region, krange: tuple[int, int], prm: int,
             prm_g: int, geom: tuple[int, int]) -> None:
    """Add offset, Mul scale in fp16 on the logical (K rows, N cols) tile ``h``: per channel
    one row broadcast each; per group one Add / Mul per group segment of the tile's rows with
    that group's parameter rows (loaded at ``prm_g``, ``gpt`` rows per block)."""
    nl, gpt = geom
    k0, k1 = krange
    wk, wn = h.shape
    if not s.group_size:
        if s.has_offset:
            b.vop(VecOp.ADD, h, (h, Region("UB", prm + nl * 2, (wn,), "float16")),
                  name="Add offset")
        b.vop(VecOp.MUL, h, (h, Region("UB", prm, (wn,), "float16")), name="Mul scale")
        return
    g0 = k0 // s.group_size
    for g, a0, a1 in group_segments(k0, k1, s.group_size):
        seg = h if (a0, a1) == (0, wk) else Region("UB", h.offset + a0 * wn * 2, (a1 - a0, wn),
                                                   "float16")
        row = prm_g + (g - g0) * nl * 2
        if s.has_offset:
            b.vop(VecOp.ADD, seg, (seg, Region("UB", row + gpt * nl * 2, (wn,), "float16")),
                  name="Add offset")
        b.vop(VecOp.MUL, seg, (seg, Region("UB", row, (wn,), "float16")), name="Mul scale")


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    return build_weight_nz(soc, s, t, weight_nz_replay_data(args) if replay else None)
