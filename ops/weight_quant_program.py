"""Tiled programs of the npu_weight_quant_batchmatmul kernels on A2/A3 (split AIC + 2 AIV).

Structures (ops-semantics 5.4-5.6; written from the descriptions, not the kernel sources):

- ``Custom``: the AIVs dequantise an N strip of the weight (K x strip) into a GM workspace ring of
  ``slots`` buffers (Cast, Add offset, Mul scale; bf16 through fp32), one strip ahead of the
  cube, in the weight's stored layout (a transposed weight's strip is kept (strip, K) and the
  cube reads it transposed: ops-nn's Custom kernel passes the workspace to the matmul with
  ``bTrans``); the AIC waits for a strip (cross-core flag mode 2), runs the fp16/bf16 matmul of x
  with it and frees the slot. FixPipe writes fp16/bf16 (or int8 through the requant).
- ``Msd`` (``weight_quant_program_msd``) and ``MsdSplitK`` (``weight_quant_program_msd_splitk``):
  AIVs split x rows into integer digits (per row / per K block / per group) into a workspace;
  the AIC runs the exact integer matmul of the digit rows with the raw weight; the AIVs
  recombine (fp32, or the fp16 chain of inner_precise 1), apply scale / offset / bias and round.
- ``MsdGroup``: in ``weight_quant_program_msdgroup`` (the ``MsdGroupTiling`` grid: each AIC one
  (N range, K range) cell, per group int4 digit matmuls; its AIVs recombine the cell and atomically
  add the fp32 partial into a zeroed GM workspace; a final pass adds the bias and casts).

Other kernels live in ``weight_quant_program_splitk`` (CustomNzSplitK: K split over the AICs,
fp32 partials in a GM workspace reduced by all AIVs in a declared order),
``weight_quant_program_mix_splitk`` (SplitK: per-group fp32 products atomically added into a
zeroed GM workspace) and
``weight_quant_program_fixpipe`` (Fixpipe: identity matmul + DEQF16 into L1, then the fp16
matmul) and ``weight_quant_program_weight_nz`` (310P WeightNz on the coupled AI Core).

Functional outputs: ``Custom``, ``Msd``, ``MsdSplitK``, ``MsdGroup``, ``Fixpipe``,
``CustomNzSplitK``, ``SplitK`` and the 310P ``WeightNz`` (``weight_quant_program_weight_nz``)
are replayed from their instructions (``REPLAYED_KERNELS``) and equal the numerics model
``compute`` (the test oracle) bit for bit; so does the A2/A3 ``WeightNz`` (ops-nn
custom_weight_nz: Custom's dequant chain and cube path) on Custom's program.
Every kernel's metadata declares ``compulsory_hbm_bytes`` (inputs and output once) for the
summary's HBM bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from npusim.engine.program import CoreProgram, GMTensor, InstrPool, Kernel, ProgramBuilder, Region
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import ITEMSIZE
from npusim.ops.matmul_program import CubeEmitter, CubeTiling, Epilogue, GmMatrix
from npusim.ops.weight_quant_batchmatmul.tiling import custom_param_groups, custom_vector_buffers

_ITEM = ITEMSIZE  # bytes per element (int4: 0.5), the package's one size table
ITEM = _ITEM
READY, FREE, GROUP_READY, GROUP_FREE = 0, 1, 2, 3  # cross-core flag ids


@dataclass(frozen=True)
class WqbmmShape:
    """What the programs need to know about one call."""

    m: int
    k: int
    n: int
    x_dtype: str  # float16 | bfloat16
    w_dtype: str  # int8 | int4
    group_size: int = 0
    has_offset: bool = False
    has_bias: bool = False
    out_dtype: str = "float16"
    inner_precise: int = 0
    trans_w: bool = False
    weight_nz: bool = False
    scale_int64: bool = False
    quant_per_channel: bool = False  # int8 output: one quant parameter per column (else one)


@dataclass(frozen=True)
class WqbmmProgramTiling:
    """Program-level tiling: cores, N strip per workspace slot, slots, vector piece rows, and
    the cube tiling used inside each AIC."""

    cube_cores: int
    strip_n: int
    slots: int
    vec_rows: int
    base_m: int
    base_n: int
    base_k: int
    step_k: int
    k_block: int = 0  # MSD kernels: K per digit block (0 = whole K, or the group)
    group_pack: int = 1  # MsdSplitK per-group: groups per recombination pass


def default_program_tiling(soc: Any, s: WqbmmShape, kernel: str) -> WqbmmProgramTiling:
    """A CANN-like default: all AICs over N, 256-wide strips (or N / cores), two slots."""
    aic = soc.core_counts()["aic"]
    per_core = math.ceil(s.n / aic)
    strip = min(256, max(64, math.ceil(per_core / 64) * 64))
    cores = min(aic, math.ceil(s.n / strip))
    base_m = min(128, max(16, math.ceil(s.m / 16) * 16))
    base_k = 64 if kernel == "Custom" else (128 if s.w_dtype == "int8" else 256)
    return WqbmmProgramTiling(
        cube_cores=cores,
        strip_n=strip,
        slots=2,
        vec_rows=max(16, min(256, 32768 // strip)),
        base_m=base_m,
        base_n=min(strip, 256),
        base_k=base_k,
        step_k=4,
    )


def _cube_tiling(t: WqbmmProgramTiling, base_m: int | None = None) -> CubeTiling:
    return block_cube_tiling(base_m or t.base_m, t.base_n, t.base_k, t.step_k)


def block_cube_tiling(base_m: int, base_n: int, base_k: int, step_k: int) -> CubeTiling:
    """A CubeEmitter tiling for one block at a time (the WQBMM programs place blocks themselves):
    double-buffered L1, stepKa = stepKb = ``step_k``, a 1 x 1 grid."""
    return CubeTiling(
        base_m=base_m,
        base_n=base_n,
        base_k=base_k,
        step_ka=step_k,
        step_kb=step_k,
        depth_a1=2,
        depth_b1=2,
        single_core_m=1,
        single_core_n=1,
        m_dim=1,
        n_dim=1,
    )


def _strips(n: int, t: WqbmmProgramTiling) -> list[list[tuple[int, int]]]:
    """N strips assigned round-robin to the cube cores: per core a list of (n0, n1)."""
    strips = [(n0, min(n, n0 + t.strip_n)) for n0 in range(0, n, t.strip_n)]
    per: list[list[tuple[int, int]]] = [[] for _ in range(t.cube_cores)]
    for i, st in enumerate(strips):
        per[i % t.cube_cores].append(st)
    return per


def strips_per_core(n: int, t: WqbmmProgramTiling) -> list[list[tuple[int, int]]]:
    """The N strips (n0, n1) each AIC computes, AIC index ascending."""
    return _strips(n, t)


def cube_tiling_for_rows(t: WqbmmProgramTiling, rows: int) -> CubeTiling:
    """The AIC's cube tiling for ``rows`` A rows (the MSD digit rows): base_m covers them in
    16-row fractals, at most 128."""
    return _cube_tiling(t, base_m=min(max(16, math.ceil(rows / 16) * 16), 128))


def _w_bytes(s: WqbmmShape) -> int:
    return math.ceil(s.k * s.n * _ITEM[s.w_dtype])


def build_custom(
    soc: Any, s: WqbmmShape, t: WqbmmProgramTiling, data: dict[str, Any] | None = None
) -> Kernel:
    """The Custom kernel (dequantise on AIV into a GM workspace, fp16/bf16 matmul on AIC).

    With ``data`` (see :func:`custom_replay_data`) the program is functional: the AIV vector
    instructions dequantise into UB (Cast, Add, Mul as the numerics model, ``numerics_custom``),
    the workspace and cube tiles carry the values, Mmad accumulates in the SoC's declared cube
    model and FixPipe rounds (RNE) or requantises - the output is replayed, not computed aside.
    """
    per_core = _strips(s.n, t)
    xd = s.x_dtype
    fun = data is not None
    ngroups = math.ceil(s.k / s.group_size) if s.group_size else 1
    param_dtype = xd
    d = data or {}
    gm = {
        "x": GMTensor("x", (s.m, s.k), xd, d.get("x")),
        "w": GMTensor("w", (s.n, s.k) if s.trans_w else (s.k, s.n), s.w_dtype, d.get("w")),
        "scale": GMTensor("scale", (ngroups, s.n), param_dtype, d.get("scale")),
        "ws": GMTensor("ws", (t.cube_cores * t.slots, *((t.strip_n, s.k) if s.trans_w
                                                         else (s.k, t.strip_n))),
                       xd, role="workspace"),
        "y": GMTensor("y", (s.m, s.n), s.out_dtype, role="output"),
    }
    if s.has_offset:
        gm["offset"] = GMTensor("offset", (ngroups, s.n), param_dtype, d.get("offset"))
    if s.has_bias:
        gm["bias"] = GMTensor("bias", (s.n,), "float32", d.get("bias"))
    w_isz = _ITEM[s.w_dtype]
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
    # parameter rows one vector tile can span (a tile may start inside a group)
    pgroups = custom_param_groups(t.vec_rows, s.group_size)
    for ci in range(t.cube_cores):
        aic = CoreProgram(ci, "aic")
        em = CubeEmitter(
            ProgramBuilder(aic, aic_desc, pool),
            soc,
            _cube_tiling(t),
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
            em.bld.cross_wait(READY, "MTE2")
            ws = GmMatrix("ws", xd, (s.k if s.trans_w else t.strip_n) * 2,
                          offset=slot * s.k * t.strip_n * 2, transposed=s.trans_w)
            em.block(x_mat, ws, y_mat, epi, 0, s.m, n0, n1, s.k, bias_mat, b_col_offset=-n0)
            em.bld.cross_set(2, "MTE2", FREE)
        cores.append(aic)
        for half in range(2):
            aiv = CoreProgram(2 * ci + half, "aiv")
            b = ProgramBuilder(aiv, aiv_desc, pool)
            ub = {
                name: b.alloc("UB", shape, dt, name)
                for name, shape, dt in custom_vector_buffers(t.vec_rows, t.strip_n, xd, pgroups)
            }
            # fp16 x has no fp32 working tile (its chain runs in the fp16 output tile)
            bufs = [
                (ub[f"w{i}"], ub.get(f"f{i}"), ub[f"o{i}"], ub[f"params{i}"]) for i in range(2)
            ]
            pf = ub.get("params_f32")
            # the two AIVs split K at a multiple of 32 rows (the kernel hands out whole
            # vecSingleK tiles, multiples of 32), so every group segment starts 32 B-aligned
            k_half = min(s.k, 32 * math.ceil(s.k / 64))
            k0, k1 = (0, k_half) if half == 0 else (k_half, s.k)
            it = 0
            for j, (n0, n1) in enumerate(per_core[ci]):
                slot = ci * t.slots + j % t.slots
                width = n1 - n0
                if j >= t.slots:
                    b.cross_wait(FREE, "MTE3")
                for r0 in range(k0, k1, t.vec_rows):
                    rows = min(t.vec_rows, k1 - r0)
                    i = it % 2
                    wb, fb, ob, pb = bufs[i]
                    if it >= 2:
                        b.wait_flag("V", "MTE2", i)
                    if s.trans_w:
                        src = Region(
                            "GM",
                            math.ceil((n0 * s.k + r0) * w_isz),
                            (width, rows),
                            s.w_dtype,
                            "w",
                            math.ceil(s.k * w_isz),
                        )
                    else:
                        src = Region(
                            "GM",
                            math.ceil((r0 * s.n + n0) * w_isz),
                            (rows, width),
                            s.w_dtype,
                            "w",
                            math.ceil(s.n * w_isz),
                        )
                    tile = (width, rows) if s.trans_w else (rows, width)  # stored layout
                    # UB rows keep the strip's pitch (the kernel's 32 B-aligned row padding)
                    pitch = tile[1] if s.trans_w else t.strip_n
                    wreg = tile_region(wb.offset, tile, s.w_dtype, pitch)
                    b.dma(src, wreg, name="weight GM->UB")
                    g_lo, g_hi = (
                        (r0 // s.group_size, (r0 + rows - 1) // s.group_size)
                        if s.group_size
                        else (0, 0)
                    )
                    srow = t.strip_n * 4  # bytes per parameter row in UB
                    for g in range(g_lo, g_hi + 1):
                        po = pb.offset + (g - g_lo) * srow
                        b.dma(
                            Region("GM", (g * s.n + n0) * 2, (width,), param_dtype, "scale"),
                            Region("UB", po, (width,), param_dtype),
                            name="scale GM->UB",
                        )
                        if s.has_offset:
                            b.dma(
                                Region("GM", (g * s.n + n0) * 2, (width,), param_dtype, "offset"),
                                Region("UB", po + pgroups * srow, (width,), param_dtype),
                                name="offset GM->UB",
                            )
                    b.sync("MTE2", "V", i)
                    if it >= 2:
                        b.wait_flag("MTE3", "V", i)
                    _custom_dequant(b, s, tile, pitch, wreg, (fb, ob, pb, pf), pgroups, srow,
                                    (r0, g_lo))
                    b.set_flag("V", "MTE2", i)
                    b.sync("V", "MTE3", i)
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
                    b.set_flag("MTE3", "V", i)
                    it += 1
                b.cross_set(2, "MTE3", READY)
            cores.append(aiv)
    meta = _meta(s, "Custom", t)
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
                    wreg: Region, bufs: tuple[Region | None, ...], pgroups: int, srow: int,
                    where: tuple[int, int]) -> None:
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
        acc, work = tile_region(fb.offset, tile, "float32", pitch), "float32"
        b.cast(acc, h, name="Cast half->fp32")
    gsize = s.group_size or s.k
    g_hi = (r0 + rows - 1) // gsize if s.group_size else g_lo
    ng = g_hi - g_lo + 1
    blocks = [(0, "scale")] + ([(1, "offset")] if s.has_offset else [])
    prow: dict[int, int] = {}  # block -> byte offset of its first parameter row (working dtype)
    for which, name in blocks:
        raw = pb.offset + which * pgroups * srow
        if xd == "bfloat16":
            dst = pf.offset + which * pgroups * srow
            b.cast(Region("UB", dst, (ng, width), "float32", row_stride_bytes=srow),
                   Region("UB", raw, (ng, width), xd, row_stride_bytes=srow),
                   name=f"Cast {name}->fp32")
            prow[which] = dst
        else:
            prow[which] = raw
    isz = 4 if work == "float32" else 2
    for g in range(g_lo, g_hi + 1):
        a0 = max(r0, g * gsize) - r0
        a1 = min(r0 + rows, (g + 1) * gsize) - r0
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


def custom_replay_data(args: Any) -> dict[str, Any]:
    """GM contents of the Custom program for a validated call: x, the weight in its stored ND
    layout ((N, K) when transposed; int4 packed two per byte, low nibble first), the (G, N)
    parameters, the bias as fp32 (exact), the int8-output quant parameter."""
    import numpy as np

    from npusim.numerics import pack_int4

    w = np.ascontiguousarray(args.weight.T if args.trans_b else args.weight)
    if args.weight_dtype == "int4":
        if w.shape[-1] % 8:
            raise NotImplementedError(
                "Custom replay: an int4 weight whose stored last dimension is not a multiple of "
                "8 (packing)"
            )
        w = pack_int4(w)
    g = math.ceil(args.k / args.group_size) if args.group_size else 1
    scale = np.broadcast_to(args.antiquant_scale, (g, args.n)).copy()
    out = {"x": np.ascontiguousarray(args.x), "w": w, "scale": scale}
    if args.antiquant_offset is not None:
        out["offset"] = np.broadcast_to(args.antiquant_offset, (g, args.n)).copy()
    if args.bias is not None:
        out["bias"] = np.asarray(args.bias, dtype=np.float32)
    out["quant_param"] = args.quant_param
    return out


def _out_epilogue(s: WqbmmShape) -> Epilogue:
    """FixPipe out of L0C: RNE to fp16 / bf16, or the int8 requant with one quant parameter
    (QF322B8_PRE, SetQuantScalar) or one per column from FB (VQF322B8_PRE, SetQuantVector);
    values from the semantics table."""
    if s.out_dtype == "int8":
        return Epilogue("VQF322B8_PRE" if s.quant_per_channel else "QF322B8_PRE", "int8")
    return Epilogue("F322F16" if s.out_dtype == "float16" else "F322BF16", s.out_dtype)


def _meta(s: WqbmmShape, kernel: str, t: Any) -> dict:
    return kernel_meta(s, kernel, t)


def kernel_meta(s: WqbmmShape, kernel: str, t: Any) -> dict:
    """Trace / summary metadata of a wqbmm program: the call, the tiling and the bytes that
    must cross HBM at least once (read every input, write the output)."""
    return {
        "op": "weight_quant_batchmatmul",
        "selected_kernel": kernel,
        **s.__dict__,
        "program_tiling": dict(t.__dict__) if hasattr(t, "__dict__") else repr(t),
        "compulsory_hbm_bytes": compulsory_hbm_bytes(s),
        "compulsory_hbm_what": "x + weight + antiquant scale/offset + bias + y, each once",
    }


def bias_dtype(s: WqbmmShape) -> str:
    """The bias dtype the API takes: fp16 with fp16 x, fp32 with bf16 x (ops-semantics 5.2)."""
    return "float16" if s.x_dtype == "float16" else "float32"


def compulsory_hbm_bytes(s: WqbmmShape) -> int:
    """Bytes every implementation must move between HBM and the chip: x, the (packed) weight,
    the antiquant scale (and offset), the bias and quant parameters once each, y once.
    Parameters use the x dtype (8 bytes for an int64 scale)."""
    ngroups = math.ceil(s.k / s.group_size) if s.group_size else 1
    pbytes = 8 if s.scale_int64 else 2
    total = s.m * s.k * 2 + math.ceil(s.k * s.n * _ITEM[s.w_dtype])
    total += ngroups * s.n * pbytes * (2 if s.has_offset else 1)
    if s.has_bias:
        total += s.n * _ITEM[bias_dtype(s)]
    if s.out_dtype == "int8":
        total += s.n * 8
    return total + math.ceil(s.m * s.n * _ITEM[s.out_dtype])


def weight_tile_region(s: WqbmmShape, r0: int, rows: int, c0: int, cols: int) -> Region:
    """The GM window of weight rows (K) r0.. and columns (N) c0.. in its storage layout: ND
    (K, N), ND transposed (N, K), or FRACTAL_NZ of the transposed (N, K) weight, where each
    32-byte K column block of the tile is one contiguous run of ``cols`` x 32 bytes."""
    isz = _ITEM[s.w_dtype]
    if s.weight_nz:
        c0e = int(32 / isz)
        if r0 % c0e:
            raise ValueError(f"NZ weight tile must start on a {c0e}-element K block, got {r0}")
        n1 = math.ceil(s.n / 16) * 16
        runs = math.ceil(rows / c0e)
        return Region(
            "GM", (r0 // c0e) * n1 * 32 + c0 * 32, (runs, cols * c0e), s.w_dtype, "w", n1 * 32
        )
    if s.trans_w:
        return Region(
            "GM", math.ceil((c0 * s.k + r0) * isz), (cols, rows), s.w_dtype, "w",
            math.ceil(s.k * isz),
        )
    return Region(
        "GM", math.ceil((r0 * s.n + c0) * isz), (rows, cols), s.w_dtype, "w", math.ceil(s.n * isz)
    )


ZERO_CHUNK = 16384  # fp32 elements zeroed per UB -> GM copy (64 KiB)


def zero_gm_share(b: ProgramBuilder, tensor: str, total: int, v: int, n_aiv: int,
                  event: int) -> bool:
    """AIV ``v`` of ``n_aiv`` zeroes its 512 B-aligned share of the fp32 GM tensor ``tensor``
    (``total`` elements; the kernels' InitAtomicAddr before atomic adds): Duplicate 0 into UB,
    V -> MTE3 flag ``event``, UB -> GM copies. Returns whether the AIV had a share."""
    share = math.ceil(math.ceil(total / n_aiv) / 128) * 128
    z0 = v * share
    if z0 >= total:
        return False
    zn = min(share, total - z0)
    zb = b.alloc("UB", (min(zn, ZERO_CHUNK),), "float32", "zeros")
    b.vop(VecOp.DUPLICATE, zb, scalar=0.0, name="Duplicate 0")
    b.sync("V", "MTE3", event)
    for off in range(z0, z0 + zn, ZERO_CHUNK):
        cnt = min(ZERO_CHUNK, z0 + zn - off)
        b.dma(Region("UB", zb.offset, (cnt,), "float32"),
              Region("GM", off * 4, (cnt,), "float32", tensor), name=f"zero {tensor} UB->GM")
    return True


NZ_WEIGHT_LAYOUT_MODEL = (
    "NZ weight: the program addresses it as the FRACTAL_NZ storage of the transposed (N, K) "
    "matrix (C0 = 32 B), the call's own NZ layout taken as converted to that, untimed "
    "(declared layout model)"
)


def nz_weight_storage(args: Any) -> Any:
    """The weight of a validated call as its FRACTAL_NZ storage of the transposed (N, K) matrix
    (C0 = 32 B: 32 int8 or 64 int4, packed two per byte, low nibble first) - the layout
    :func:`weight_tile_region` addresses."""
    import numpy as np

    from npusim.layouts.nz import nd_to_nz

    wt = np.ascontiguousarray(np.asarray(args.weight).T).astype(np.int8)  # (N, K)
    if args.weight_dtype == "int4":
        nz = nd_to_nz(wt, 64).astype(np.int16) & 0xF
        return np.ascontiguousarray((nz[..., 0::2] | (nz[..., 1::2] << 4)).astype(np.uint8))
    return np.ascontiguousarray(nd_to_nz(wt, 32))


A2_WEIGHT_NZ_PROGRAM_MODEL = (
    "A2/A3 WeightNz (custom_weight_nz): the Custom program and tiling (the kernel dequantises on "
    "the AIVs into a GM workspace for the cube as Custom does; its NZ weight is read as ND "
    "windows, the Custom program's approximation)"
)

KERNEL_BUILDERS = {
    "Custom": lambda soc, s, t: build_custom(soc, s, t),
    "WeightNz": lambda soc, s, t: build_custom(soc, s, t),
    "Msd": lambda soc, s, t: _build_msd_multicore(soc, s, t),
    "MsdSplitK": lambda soc, s, t: _build_msd_split_k(soc, s, t),
}


#: kernels whose functional outputs are replayed from their instructions
REPLAYED_KERNELS = frozenset({"Custom", "Msd", "MsdSplitK", "MsdGroup", "Fixpipe",
                              "CustomNzSplitK", "SplitK"})


def _build_msd_multicore(soc: Any, s: WqbmmShape, t: WqbmmProgramTiling) -> Kernel:
    from npusim.ops.weight_quant_program_msd import build_msd_multicore

    return build_msd_multicore(soc, s, t)


def _build_msd_split_k(soc: Any, s: WqbmmShape, t: WqbmmProgramTiling) -> Kernel:
    from npusim.ops.weight_quant_program_msd_splitk import build_msd_split_k

    return build_msd_split_k(soc, s, t)


def _param_rows(s: WqbmmShape) -> int:
    return math.ceil(s.k / s.group_size) if s.group_size else 1


#: kernels whose program reads the kernel's own tiling object (tiling.py) directly
KERNEL_TILING_PROGRAMS = {"CustomNzSplitK": "CustomNzSplitKTiling", "SplitK":
                          "SplitKTiling", "Fixpipe": "FixpipeTiling",
                          "MsdGroup": "MsdGroupTiling"}


def build_wqbmm(soc: Any, s: WqbmmShape, kernel: str, tiling: Any = None) -> Kernel:
    """The tiled program of ``kernel``.

    ``tiling``: a :class:`WqbmmProgramTiling` for Custom / Msd / MsdSplitK (default:
    ``default_program_tiling``); the kernel tiling object for CustomNzSplitK
    (``CustomNzSplitKTiling``), SplitK (``SplitKTiling``), Fixpipe (``FixpipeTiling``) and
    MsdGroup (``MsdGroupTiling``), required; a ``WeightNzProgramTiling`` (optional) for the
    310P WeightNz kernel.
    """
    if soc.organisation != "split":
        from npusim.ops.weight_quant_program_weight_nz import (
            WeightNzProgramTiling,
            build_weight_nz,
            default_weight_nz_tiling,
        )

        if kernel != "WeightNz":
            raise NotImplementedError(f"kernel {kernel!r} is not registered on {soc.name}")
        t = tiling if isinstance(tiling, WeightNzProgramTiling) else None
        return build_weight_nz(soc, s, t or default_weight_nz_tiling(soc, s))
    if kernel in KERNEL_TILING_PROGRAMS:
        want = KERNEL_TILING_PROGRAMS[kernel]
        if type(tiling).__name__ != want:
            raise TypeError(
                f"tiling={type(tiling).__name__}: the {kernel} program needs a {want} "
                "(npusim.ops.weight_quant_batchmatmul.default_tiling)"
            )
        if kernel == "Fixpipe":
            from npusim.ops.weight_quant_program_fixpipe import build_fixpipe

            return build_fixpipe(soc, s, tiling)
        if kernel == "MsdGroup":
            from npusim.ops.weight_quant_program_msdgroup import build_msd_group

            return build_msd_group(soc, s, tiling)
        if kernel == "SplitK":
            from npusim.ops.weight_quant_program_mix_splitk import build_split_k

            return build_split_k(soc, s, tiling)
        from npusim.ops.weight_quant_program_splitk import build_dequant_splitk

        return build_dequant_splitk(soc, s, tiling, kernel)
    if kernel not in KERNEL_BUILDERS:
        raise NotImplementedError(
            f"weight_quant_batchmatmul: no tiled program for kernel {kernel!r} yet (programs exist "
            f"for {', '.join(KERNEL_BUILDERS)}); its numerics are still available through "
            "npusim.torch_npu.npu_weight_quant_batchmatmul"
        )
    t = tiling or default_program_tiling(soc, s, kernel)
    _check_cube_cores(soc, t)
    return KERNEL_BUILDERS[kernel](soc, s, t)


def validate_program_tiling(t: WqbmmProgramTiling, soc: Any, s: WqbmmShape, kernel: str) -> None:
    """A user's WqbmmProgramTiling: every count positive, the cube blocks whole fractals (M / N
    multiples of 16, K a multiple of the cube's 32 B K fractal for the kernel's cube dtype), the
    strip a multiple of 16 and at least one base_n block, the AICs available. Errors name the
    field, its value and the rule."""
    for name in ("cube_cores", "strip_n", "slots", "vec_rows", "base_m", "base_n", "base_k",
                 "step_k", "group_pack"):
        v = getattr(t, name)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"tiling.{name}={v!r}: must be a positive int")
    if not isinstance(t.k_block, int) or t.k_block < 0:
        raise ValueError(f"tiling.k_block={t.k_block!r}: must be an int >= 0 (0 = whole K)")
    for name in ("base_m", "base_n", "strip_n"):
        v = getattr(t, name)
        if v % 16:
            raise ValueError(f"tiling.{name}={v}: must be a multiple of 16 (one cube fractal)")
    cube_dtype = s.x_dtype if kernel in ("Custom", "WeightNz") else (
        "int4" if s.w_dtype == "int4" else "int8")
    k0 = int(32 / _ITEM[cube_dtype])
    if t.base_k % k0:
        raise ValueError(f"tiling.base_k={t.base_k}: must be a multiple of {k0} (the {cube_dtype} "
                         "cube's 32 B K fractal)")
    if t.base_n > t.strip_n:
        raise ValueError(f"tiling.base_n={t.base_n}: must not exceed strip_n={t.strip_n} (a base "
                         "block lies inside one workspace strip)")
    _check_cube_cores(soc, t)


def _check_cube_cores(soc: Any, t: WqbmmProgramTiling) -> None:
    if t.cube_cores > soc.core_counts()["aic"]:
        raise ValueError(
            f"tiling.cube_cores={t.cube_cores} exceeds the "
            f"{soc.core_counts()['aic']} AIC of {soc.name}"
        )


# -- runner entry -----------------------------------------------------------------------------


def _materialize(x: Any, name: str) -> Any:
    """Specs become placeholders (zero-stride zeros of their shape and dtype, one element of
    memory) so validation and kernel selection run unchanged; timing-only runs never read them
    (``normalize_args(values=False)``). A transposed spec stands for a transposed view."""
    from npusim.ops.weight_quant_batchmatmul.args import placeholder
    from npusim.spec import TensorSpec

    if not isinstance(x, TensorSpec):
        return x
    if x.npu_format == 29:
        return _materialize_nz(x, name)
    return placeholder(x.shape, _spec_dtype(x, name), transposed=x.transposed)


def _spec_dtype(x: Any, name: str) -> Any:
    """The numpy dtype of spec ``x``: npusim's names, else numpy's (float64, bool: refused by
    ``normalize_args`` with the rule, as the same array would be)."""
    import numpy as np

    from npusim.numerics import np_dtype

    try:
        return np_dtype(x.dtype)
    except ValueError:
        try:
            return np.dtype(x.dtype)
        except TypeError:
            raise TypeError(f"{name}.dtype={x.dtype!r}: not a dtype") from None


def _materialize_nz(x: Any, name: str) -> Any:
    """A FRACTAL_NZ spec becomes placeholder NZ storage. The spec's ``shape`` is the logical
    (K, N) view, as for ND specs; with ``transposed`` the origin ND matrix is (N, K) (the NZ
    weight of a transposed weight, ``transpose_nz``'s flag set)."""
    from npusim.layouts.formatted import FormattedArray
    from npusim.layouts.nz import nz_storage_shape
    from npusim.ops.weight_quant_batchmatmul.args import NZ_TRANSPOSED_ATTR, placeholder

    if len(x.shape) != 2:
        raise ValueError(f"{name}: a FRACTAL_NZ spec must be 2-D, got shape {x.shape}")
    origin = (x.shape[1], x.shape[0]) if x.transposed else tuple(x.shape)
    dt = _spec_dtype(x, name)
    c0 = 32 // dt.itemsize
    arr = FormattedArray(placeholder(nz_storage_shape(origin, c0), dt), 29, origin)
    setattr(arr, NZ_TRANSPOSED_ATTR, bool(x.transposed))
    return arr


def program_tiling_from(kt: Any, soc: Any, s: WqbmmShape, kernel: str) -> WqbmmProgramTiling:
    """Map the kernel's tiling data onto the program structure (see the module docstring)."""
    base = default_program_tiling(soc, s, kernel)
    cube = getattr(kt, "cube", None)
    aic = soc.core_counts()["aic"]
    if kernel == "Custom":
        cores = min(aic, kt.cube_block_dim_n)
        strip, slots, rows = kt.cube_single_n, kt.weight_cache_count, kt.vec_single_k
    elif kernel == "Msd":
        cores, strip, slots, rows = min(aic, kt.cube_block_dim_n), kt.single_core_n, 2, 0
    elif kernel == "MsdSplitK":
        cores = min(aic, math.ceil(kt.task_n_size / kt.cube_single_core_n))
        strip, slots, rows = kt.cube_single_core_n, 2, 0
    else:
        return base
    strip = max(16, min(strip, math.ceil(s.n / max(cores, 1) / 16) * 16 or 16))
    return WqbmmProgramTiling(
        cube_cores=max(1, min(cores, math.ceil(s.n / strip))),
        strip_n=strip,
        slots=max(1, slots),
        vec_rows=rows or base.vec_rows,
        base_m=cube.base_m if cube else base.base_m,
        base_n=min(strip, cube.base_n) if cube else base.base_n,
        base_k=cube.base_k if cube else base.base_k,
        step_k=cube.step_ka if cube else base.step_k,
        k_block=(s.group_size or kt.v1_base_k) if kernel == "MsdSplitK" else 0,
        group_pack=kt.group_pack if kernel == "MsdSplitK" else 1,
    )


def checked_call(soc: Any, *, x: Any, weight: Any, antiquant_scale: Any,
                 antiquant_offset: Any = None, quant_scale: Any = None, quant_offset: Any = None,
                 bias: Any = None, antiquant_group_size: int = 0, inner_precise: int = 0,
                 kernel: str | None = None, deterministic: bool = False
                 ) -> tuple[Any, str, WqbmmShape, bool]:
    """The call's documented rules and CANN's kernel choice: (normalised arguments, kernel
    name, program shape, functional) or the error naming the argument and rule."""
    from npusim.ops.weight_quant_batchmatmul.args import normalize_args
    from npusim.ops.weight_quant_batchmatmul.selection import select_kernel
    from npusim.spec import TensorSpec

    functional = not isinstance(x, TensorSpec)
    vals = {
        k: _materialize(v, k)
        for k, v in (
            ("x", x),
            ("weight", weight),
            ("antiquant_scale", antiquant_scale),
            ("antiquant_offset", antiquant_offset),
            ("quant_scale", quant_scale),
            ("quant_offset", quant_offset),
            ("bias", bias),
        )
    }
    args = normalize_args(
        vals["x"],
        vals["weight"],
        vals["antiquant_scale"],
        vals["antiquant_offset"],
        vals["quant_scale"],
        vals["quant_offset"],
        vals["bias"],
        antiquant_group_size,
        inner_precise,
        soc=soc,
        values=functional,
    )
    name = select_kernel(args, soc, deterministic=deterministic, kernel=kernel)
    if name == "SplitK":
        from npusim.ops.weight_quant_batchmatmul.numerics_splitk import split_k_unsupported

        if why := split_k_unsupported(args):
            raise NotImplementedError(f"kernel 'SplitK' (white-listed shape): {why}")
    s = WqbmmShape(
        m=args.m,
        k=args.k,
        n=args.n,
        x_dtype=args.x_dtype,
        w_dtype=args.weight_dtype,
        group_size=args.group_size,
        has_offset=args.has_offset,
        has_bias=args.has_bias,
        out_dtype=args.out_dtype,
        inner_precise=args.inner_precise,
        trans_w=args.trans_b,
        weight_nz=args.weight_format == "NZ",
        scale_int64=args.scale_dtype == "int64",
        quant_per_channel=args.quant_scale_type == "per_channel",
    )
    return args, name, s, functional


def plan_weight_quant_batchmatmul(
    soc: Any,
    tiling: Any = None,
    *,
    x: Any,
    weight: Any,
    antiquant_scale: Any,
    antiquant_offset: Any = None,
    quant_scale: Any = None,
    quant_offset: Any = None,
    bias: Any = None,
    antiquant_group_size: int = 0,
    inner_precise: int = 0,
    kernel: str | None = None,
    deterministic: bool = False,
):
    """Validate, select the kernel as CANN does, build its program; outputs (functional runs) are
    the selected kernel's numerics."""
    import numpy as np

    from npusim.ops.weight_quant_batchmatmul.compute import compute
    from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling, validate_tiling
    from npusim.runner import Plan

    args, name, s, functional = checked_call(
        soc, x=x, weight=weight, antiquant_scale=antiquant_scale,
        antiquant_offset=antiquant_offset, quant_scale=quant_scale, quant_offset=quant_offset,
        bias=bias, antiquant_group_size=antiquant_group_size, inner_precise=inner_precise,
        kernel=kernel, deterministic=deterministic)
    if name == "WeightNz" and soc.organisation != "split":
        from npusim.ops.weight_quant_batchmatmul.selection import WEIGHT_NZ_LAYOUT_MODEL
        from npusim.ops.weight_quant_program_weight_nz import (
            WeightNzProgramTiling,
            default_weight_nz_tiling,
        )

        # the kernel reads the (N, K) NZ weight whatever the call's layout (declared model)
        s = WqbmmShape(**{**s.__dict__, "trans_w": True, "weight_nz": True})
        kt = tiling if isinstance(tiling, WeightNzProgramTiling) else None
        kt = kt or default_weight_nz_tiling(soc, s)
        pt = kt
        layout_note = WEIGHT_NZ_LAYOUT_MODEL
    else:
        layout_note = ""
        # A2/A3 WeightNz (custom_weight_nz) has Custom's structure: Custom's tiling and program
        tname = "Custom" if name == "WeightNz" else name
        if name == "WeightNz":
            layout_note = A2_WEIGHT_NZ_PROGRAM_MODEL
        user = tiling is not None and not isinstance(tiling, WqbmmProgramTiling)
        kt = tiling if user else default_tiling(args, soc, tname)
        if user:
            validate_tiling(kt, args, soc, tname)
        if name in KERNEL_TILING_PROGRAMS and isinstance(tiling, WqbmmProgramTiling):
            raise TypeError(
                f"tiling: a WqbmmProgramTiling does not drive kernel {name}; pass a "
                f"{KERNEL_TILING_PROGRAMS[name]} (npusim.ops.weight_quant_batchmatmul."
                "default_tiling gives one to start from)"
            )
        if name in KERNEL_TILING_PROGRAMS:
            pt = kt
        elif isinstance(tiling, WqbmmProgramTiling):
            validate_program_tiling(tiling, soc, s, tname)
            pt = tiling
        else:
            pt = program_tiling_from(kt, soc, s, tname)
    coupled_nz = name == "WeightNz" and soc.organisation != "split"  # the 310P kernel
    # A2/A3 custom_weight_nz: Custom's dequant chain (ops-nn custom_weight_nz.h), on its program
    split_nz = name == "WeightNz" and not coupled_nz
    replay = functional and (name in REPLAYED_KERNELS or name == "WeightNz")
    if name == "Msd":
        from npusim.ops.weight_quant_batchmatmul.selection import is_msd_high_precision
        from npusim.ops.weight_quant_program_msd import build_msd_multicore, msd_replay_data

        _check_cube_cores(soc, pt)
        kern = build_msd_multicore(soc, s, pt, msd_replay_data(args) if replay else None,
                                   high_precision=is_msd_high_precision(args))
    elif name == "MsdSplitK":
        from npusim.ops.weight_quant_program_msd_splitk import (
            build_msd_split_k,
            msd_split_k_replay_data,
        )

        _check_cube_cores(soc, pt)
        data = msd_split_k_replay_data(args, pt.k_block) if replay else None
        kern = build_msd_split_k(soc, s, pt, data)
    elif name == "MsdGroup" and replay:
        from npusim.numerics import np_dtype
        from npusim.ops.weight_quant_program_msd_splitk import msd_split_k_replay_data
        from npusim.ops.weight_quant_program_msdgroup import build_msd_group

        data = msd_split_k_replay_data(args, s.group_size)
        if s.weight_nz:  # the FRACTAL_NZ storage the kernel's copies read
            data["w"] = nz_weight_storage(args)
        if args.bias is not None:  # the kernel loads the bias as given and casts it on the AIV
            data["bias"] = np.asarray(args.bias).astype(np_dtype(bias_dtype(s)))
        kern = build_msd_group(soc, s, pt, data)
    elif name == "SplitK":
        from npusim.ops.weight_quant_program_mix_splitk import build_split_k, split_k_replay_data

        kern = build_split_k(soc, s, pt, split_k_replay_data(args) if replay else None)
    elif name == "CustomNzSplitK" and replay:
        from npusim.ops.weight_quant_program_splitk import (
            build_dequant_splitk,
            nz_splitk_replay_data,
        )

        kern = build_dequant_splitk(soc, s, pt, name, nz_splitk_replay_data(args))
    elif coupled_nz and replay:
        from npusim.ops.weight_quant_program_weight_nz import (
            build_weight_nz,
            weight_nz_replay_data,
        )

        kern = build_weight_nz(soc, s, pt, weight_nz_replay_data(args))
    elif name == "Fixpipe" and replay:
        from npusim.ops.weight_quant_program_fixpipe import build_fixpipe, fixpipe_replay_data

        kern = build_fixpipe(soc, s, pt, fixpipe_replay_data(args, pt.base_n))
    elif replay:
        validate_tiling(kt, args, soc, "Custom" if split_nz else name)
        kern = build_custom(soc, s, pt, custom_replay_data(args))
    else:
        kern = build_wqbmm(soc, s, name, pt)
    kern.meta["kernel_tiling"] = repr(kt)
    kern.meta["compulsory_hbm_bytes"] = _compulsory_from_args(args)
    y = compute(args, name, soc, kt) if functional and not replay else None
    notes = [
        f"capable kernel chosen as CANN does: {name}",
        "outputs: replayed from the program's instructions (declared cube model)" if replay
        else "outputs: the kernel's numerics model; the tiled program gives the timing"
        if functional
        else "outputs: none (timing-only run: TensorSpec inputs carry no values)",
    ]

    if s.weight_nz and not layout_note:
        notes.append(NZ_WEIGHT_LAYOUT_MODEL)
        kern.meta["weight_layout_model"] = NZ_WEIGHT_LAYOUT_MODEL
    if layout_note:
        from npusim.ops.weight_quant_batchmatmul.compute import NUMERICS_MODELS

        notes += [layout_note, f"numerics model: {NUMERICS_MODELS['WeightNz']}"]
        kern.meta["selected_kernel"] = name
        kern.meta["weight_layout_model"] = layout_note

    def finish(out: dict) -> Any:
        if replay:
            return np.asarray(out["y"]).reshape(args.m, args.n)
        return np.asarray(y)

    return Plan(kern, name, kt, functional, finish=finish, notes=notes)


def _compulsory_from_args(args: Any) -> int:
    """Compulsory HBM bytes of a validated call: each parameter array once as given (x, scale,
    offset, quant parameter, bias), the weight packed (int4 = half a byte), y once."""
    total = math.ceil(args.k * args.n * _ITEM[args.weight_dtype])
    for arr in (args.x, args.antiquant_scale, args.antiquant_offset, args.quant_param, args.bias):
        if arr is not None:
            total += int(arr.nbytes)
    return total + math.ceil(args.m * args.n * _ITEM[args.out_dtype])
