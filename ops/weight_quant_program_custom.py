"""The Custom kernel of npu_weight_quant_batchmatmul on A2/A3 (split AIC + 2 AIV), and on its
program the A2/A3 WeightNz kernel (ops-nn custom_weight_nz: Custom's dequant chain and cube path).

The AIVs dequantise an N strip of the weight (K x strip) into a GM workspace ring of ``slots``
buffers (Cast, Add offset, Mul scale; bf16 through fp32), one strip ahead of the cube, in the
weight's stored layout (a transposed weight's strip is kept (strip, K) and the cube reads it
transposed: ops-nn's Custom kernel passes the workspace to the matmul with ``bTrans``); the AIC
waits for a strip (cross-core flag mode 2), runs the fp16/bf16 matmul of x with it and frees the
slot. FixPipe writes fp16/bf16 (or int8 through the requant).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from npusim.engine.errors import ProgramError
from npusim.engine.program import CoreProgram, GMTensor, InstrPool, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.cube_emitter import CubeEmitter
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.program_stages import CrossFlags, VecInOut, alloc_layout, group_segments
from npusim.ops.weight_quant_batchmatmul.tiling import (
    custom_k_rows,
    custom_param_groups,
    custom_vector_buffers,
)
from npusim.ops.weight_quant_common import (
    ITEM,
    WqbmmProgramTiling,
    WqbmmShape,
    check_cube_cores,
    cube_tiling_of,
    custom_vec_rows,
    kernel_meta,
    load_params,
    nz_weight_storage,
    operand_tensors,
    replay_inputs,
    stored_weight,
    strips,
    weight_tile_region,
)
from npusim.ops.weight_quant_program_splitk import weight_storage_shape

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

_ITEM = ITEM

def build_custom(
    soc: SocDescriptor, s: WqbmmShape, t: WqbmmProgramTiling, data: dict[str, Any] | None = None
) -> Kernel:
    """The Custom kernel (dequantise on AIV into a GM workspace, fp16/bf16 matmul on AIC).

    With ``data`` (see :func:`custom_replay_data`) the program is functional: the AIV vector
    instructions dequantise into UB (Cast, Add, Mul as the numerics model, ``numerics_custom``),
    the workspace and cube tiles carry the values, Mmad accumulates in the SoC's declared cube
    model and FixPipe rounds (RNE) or requantises - the output is replayed, not computed aside.
    """
    # an NZ weight is read in whole 32 B K blocks (C0 = 32 int8 / 64 int4): the vector K tiles
    # and the AIVs' K split are multiples of C0
    c0e = custom_k_rows(s.weight_nz, s.w_dtype)
    t = replace(t, vec_rows=custom_vec_rows(s, t))
    per_core = strips(s.n, t)
    xd = s.x_dtype
    fun = data is not None
    ngroups = math.ceil(s.k / s.group_size) if s.group_size else 1
    param_dtype = xd
    d = data or {}
    ws_t = GMTensor("ws", (t.cube_cores * t.slots, *((t.strip_n, s.k) if s.trans_w
                                                   else (s.k, t.strip_n))), xd, role="workspace")
    gm = operand_tensors(s, d, {"ws": ws_t}, w_shape=weight_storage_shape(s), param_rows=ngroups)
    x_mat = GmMatrix("x", xd, s.k * 2)
    y_mat = GmMatrix("y", s.out_dtype, math.ceil(s.n * _ITEM[s.out_dtype]))
    bias_mat = GmMatrix("bias", "float32", s.n * 4) if s.has_bias else None
    epi = _out_epilogue(s)
    import numpy as np

    if s.quant_per_channel:
        qp = d.get("quant_param")
        gm["qp"] = GMTensor("qp", (s.n,), "uint64",
                            None if qp is None else np.asarray(qp).view(np.uint64))
    scalar_qp = (int(np.asarray(d["quant_param"]).view(np.uint64).reshape(-1)[0])
                 if fun and s.out_dtype == "int8" and not s.quant_per_channel else None)
    cube_model = str(soc.numerics.cube_accumulation.model) if fun else ""
    cores: list[CoreProgram] = []
    aic_desc, aiv_desc = soc.core("aic"), soc.core("aiv")
    pool = InstrPool()  # cores repeat instructions: one object each (issue 14)
    flags = CrossFlags.of(soc)
    ring = flags.ring("dequantised weight strip", t.slots)  # AIVs fill, the AIC multiplies
    # parameter rows one vector tile can span (a tile may start inside a group)
    pgroups = custom_param_groups(t.vec_rows, s.group_size)
    for ci in range(t.cube_cores):
        aic = CoreProgram(ci, "aic")
        em = CubeEmitter(
            ProgramBuilder(aic, aic_desc, pool),
            soc,
            cube_tiling_of(t),
            xd,
            functional=fun,
            cube_model=cube_model,
            with_bias=s.has_bias,
        )
        if s.quant_per_channel:
            em.use_quant_vector(GmMatrix("qp", "uint64", s.n * 8))
        em.quant_param = scalar_qp
        for j, (n0, n1) in enumerate(per_core[ci]):
            slot = ci * t.slots + j % t.slots
            ring.take(em.bld, "MTE2")
            ws = GmMatrix("ws", xd, (s.k if s.trans_w else t.strip_n) * 2,
                          offset=slot * s.k * t.strip_n * 2, transposed=s.trans_w)
            em.block(x_mat, ws, y_mat, epi, 0, s.m, n0, n1, s.k, bias_mat, b_col_offset=-n0)
            ring.release(em.bld, "MTE2")
        cores.append(aic)
        for half in range(2):
            aiv = CoreProgram(2 * ci + half, "aiv")
            b = ProgramBuilder(aiv, aiv_desc, pool)
            ub = alloc_layout(b, "UB", custom_vector_buffers(t.vec_rows, t.strip_n, xd, pgroups))
            # fp16 x has no fp32 working tile (its chain runs in the fp16 output tile)
            bufs = [
                (ub[f"w{i}"], ub.get(f"f{i}"), ub[f"o{i}"], ub[f"params{i}"]) for i in range(2)
            ]
            pf = ub.get("params_f32")
            # the two AIVs split K at a multiple of 32 rows (the kernel hands out whole
            # vecSingleK tiles, multiples of 32; of C0 for an NZ weight), so every group
            # segment starts 32 B-aligned
            k_half = min(s.k, c0e * math.ceil(s.k / (2 * c0e)))
            k0, k1 = (0, k_half) if half == 0 else (k_half, s.k)
            q = VecInOut(b)  # no drain: the kernel ends with its last flags set
            for j, (n0, n1) in enumerate(per_core[ci]):
                slot = ci * t.slots + j % t.slots
                width = n1 - n0
                ring.fill(b, j, "MTE3")
                for r0 in range(k0, k1, t.vec_rows):
                    rows = min(t.vec_rows, k1 - r0)
                    i = q.load()
                    wb, fb, ob, pb = bufs[i]
                    # the tile in its storage layout (weight_tile_region). An NZ weight's fractals
                    # are copied as stored: one run of width x 32 B per K block of the (N, K) NZ
                    # weight, delivered to UB in the tile's logical order (the declared local-tile
                    # model: ``nz`` for the stored (N, K) tile, ``nz2nd`` for the (K, N) tile of a
                    # non-transposed weight)
                    src = weight_tile_region(s, r0, rows, n0, width)
                    transform = ("nz" if s.trans_w else "nz2nd") if s.weight_nz else ""
                    tile = (width, rows) if s.trans_w else (rows, width)  # stored layout
                    # UB rows keep the strip's pitch (the kernel's 32 B-aligned row padding)
                    pitch = tile[1] if s.trans_w else t.strip_n
                    wreg = tile_region(wb.offset, tile, s.w_dtype, pitch)
                    b.dma(src, wreg, name="weight GM->UB" + (" (NZ)" if s.weight_nz else ""),
                          transform=transform)
                    segs = group_segments(r0, r0 + rows, s.group_size)
                    g_lo = segs[0][0]
                    srow = t.strip_n * 4  # bytes per parameter row in UB
                    for g, _, _ in segs:
                        po = pb.offset + (g - g_lo) * srow
                        load_params(b, s, g, n0, width, po, po + pgroups * srow, param_dtype)
                    q.compute(i)
                    _custom_dequant(b, s, tile, pitch, wreg, (fb, ob, pb, pf), pgroups, srow,
                                    (r0, g_lo))
                    q.store(i)
                    # the workspace keeps the weight's stored layout; the cube reads it
                    # transposed when the weight is (ops-nn Custom: SetTensorB(ws, bTrans))
                    if s.trans_w:
                        dst = Region("GM", (slot * s.k * t.strip_n + r0) * 2, tile, xd, "ws",
                                     s.k * 2)
                    else:
                        dst = Region("GM", ((slot * s.k + r0) * t.strip_n) * 2, tile, xd, "ws",
                                     t.strip_n * 2)
                    b.dma(tile_region(ob.offset, tile, xd, pitch), dst,
                          name="dequant w UB->GM ws")
                    q.stored(i)
                ring.publish(b, "MTE3")
            cores.append(aiv)
    meta = _meta(s, "Custom", t)
    meta["cross_core_flags"] = flags.table()
    if fun:
        meta["functional_replay"] = f"instructions (cube model {cube_model})"
    return Kernel("wqbmm_custom", gm, cores, meta)


def tile_region(offset: int, tile: tuple[int, int], dtype: str, pitch: int) -> Region:
    """A (rows, cols) UB tile whose rows are ``pitch`` elements apart (contiguous when the
    pitch is the row length)."""
    if pitch == tile[1]:
        return Region("UB", offset, tile, dtype)
    return Region("UB", offset, tile, dtype, row_stride_bytes=math.ceil(pitch * _ITEM[dtype]))


def _custom_dequant(b: ProgramBuilder, s: WqbmmShape, tile: tuple[int, int], pitch: int,
                    wreg: Region, bufs: tuple[Region | None, Region, Region, Region | None],
                    pgroups: int, srow: int, where: tuple[int, int]) -> None:
    """The typed vector dequant of one Custom tile, in the weight's stored layout (``tile``:
    (rows, width), or (width, rows) for a transposed weight): Cast w->half (->fp32 for bf16 x),
    Add offset, Mul scale in the working dtype, Cast fp32->bf16 (ops-semantics 5.4; the ops-nn
    Custom kernel's WeightCopyInAndCast / AntiQuant order).

    bf16 x casts the loaded parameter rows to fp32 first (one Cast per block, into the shared
    fp32 parameter buffer). Each group's rows (non-transposed) or columns (transposed) of the
    tile take their group's parameter row: one Add / Mul per group segment; a transposed tile
    broadcasts the row along its K axis (a (width, 1) column source: the Brcb'd parameters of
    the kernel, declared addressing model)."""
    fb, ob, pb, pf = bufs
    r0, g_lo = where
    xd = s.x_dtype
    rows = tile[1] if s.trans_w else tile[0]
    width = tile[0] if s.trans_w else tile[1]
    h = tile_region(ob.offset, tile, "float16", pitch)
    b.cast(h, wreg, name="Cast w->half")
    acc, work = h, "float16"
    if xd == "bfloat16":
        acc, work = tile_region(_fp32_tile(fb).offset, tile, "float32", pitch), "float32"
        b.cast(acc, h, name="Cast half->fp32")
    segs = group_segments(r0, r0 + rows, s.group_size)
    ng = len(segs)
    blocks = [(0, "scale")] + ([(1, "offset")] if s.has_offset else [])
    prow: dict[int, int] = {}  # block -> byte offset of its first parameter row (working dtype)
    for which, name in blocks:
        raw = pb.offset + which * pgroups * srow
        if xd == "bfloat16":
            dst = _fp32_tile(pf).offset + which * pgroups * srow
            b.cast(Region("UB", dst, (ng, width), "float32", row_stride_bytes=srow),
                   Region("UB", raw, (ng, width), xd, row_stride_bytes=srow),
                   name=f"Cast {name}->fp32")
            prow[which] = dst
        else:
            prow[which] = raw
    isz = 4 if work == "float32" else 2
    for g, a0, a1 in segs:
        if s.trans_w:
            seg = Region("UB", acc.offset + a0 * isz, (width, a1 - a0), work,
                         row_stride_bytes=rows * isz)
            pshape: tuple[int, ...] = (width, 1)
        else:
            seg = tile_region(acc.offset + a0 * pitch * isz, (a1 - a0, width), work, pitch)
            pshape = (width,)
        if ng == 1:
            seg = acc
        par = {w: Region("UB", prow[w] + (g - g_lo) * srow, pshape, work) for w in prow}
        if s.has_offset:
            b.vop(VecOp.ADD, seg, (seg, par[1]), name="Add offset")
        b.vop(VecOp.MUL, seg, (seg, par[0]), name="Mul scale")
    if xd == "bfloat16":
        b.cast(tile_region(ob.offset, tile, xd, pitch), acc, name="Cast fp32->bf16")


def _fp32_tile(r: Region | None) -> Region:
    """A bf16 dequant's fp32 buffer (the UB layout declares it for bf16 x)."""
    if r is None:
        raise ProgramError("bf16 Custom dequant: the UB layout has no fp32 tile")
    return r


def custom_replay_data(args: Any) -> dict[str, Any]:
    """GM contents of the Custom program for a validated call: x, the weight in its stored ND
    layout ((N, K) when transposed; int4 packed eight per word, low nibble first), the (G, N)
    parameters, the bias as fp32 (exact), the int8-output quant parameter."""
    g = math.ceil(args.k / args.group_size) if args.group_size else 1
    out = replay_inputs(args, stored_weight(args, "Custom"), g)
    out["quant_param"] = args.quant_param
    return out


def _out_epilogue(s: WqbmmShape) -> Epilogue:
    """FixPipe out of L0C: RNE to fp16 / bf16, or the int8 requant with one quant parameter
    (QF322B8_PRE, SetQuantScalar) or one per column from FB (VQF322B8_PRE, SetQuantVector);
    values from the semantics table."""
    if s.out_dtype == "int8":
        return Epilogue("VQF322B8_PRE" if s.quant_per_channel else "QF322B8_PRE", "int8")
    return Epilogue("F322F16" if s.out_dtype == "float16" else "F322BF16", s.out_dtype)


def _meta(s: WqbmmShape, kernel: str, t: Any) -> dict[str, Any]:
    return kernel_meta(s, kernel, t)


def program(soc: SocDescriptor, s: WqbmmShape, t: WqbmmProgramTiling, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (:data:`npusim.ops.weight_quant_program.KERNEL_PROGRAMS`):
    Custom's program for tiling ``t``; with ``replay`` its values from ``args`` (the validated
    call)."""
    check_cube_cores(soc, t)
    data = custom_replay_data(args) if replay else None
    if data is not None and s.weight_nz:  # the FRACTAL_NZ storage the weight copies read
        data["w"] = nz_weight_storage(args)
    return build_custom(soc, s, t, data)
