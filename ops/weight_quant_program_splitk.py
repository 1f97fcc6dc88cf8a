"""The ``CustomNzSplitK`` split-K dequantise-then-matmul program (A2/A3 mix kernel).

Structure (ops-semantics 5.3 / 5.4 and the CustomNzSplitK tiling data; written from the
descriptions and the kernel's published structure, no code copied):

- AIC ``i`` owns the N range ``i % cube_block_dim_n`` (``cube_single_core_n`` columns) and the K
  range ``i // cube_block_dim_n`` (``single_core_k`` rows). Its two AIVs dequantise that K x N
  block, ``cube_single_n`` columns (one strip) at a time, in passes of ``single_k`` rows x
  ``vec_single_n`` columns (GM -> UB, Cast / Add offset / Mul scale, UB -> GM) into a workspace
  ring of ``cache_num`` slots; cross-core flags (mode 2) hand a strip to the cube and the slot
  back, as in ``Custom``.
- The AIC multiplies x[:, K range] by each strip (``CubeEmitter``: ND2NZ loads, L0 ping-pong,
  Mmad with base ``cube_single_m x cube_single_n x cube_base_k``).
- When a post pass is needed (more than one K block, bf16 x, or a bias) the strip result leaves
  FixPipe as fp32 partials; after every AIC is done (mode 2 to its AIVs, then a mode-0 barrier of
  all AIVs) the AIVs reduce the partials column-range by column-range (``post_single_core_n``
  per AIV, ``post_single_m x post_single_n`` per pass), apply the bf16 scale and the bias, and
  Cast with CAST_ROUND. Otherwise FixPipe writes fp16 y directly (F322F16).

Split-K accumulation model (hardware order not published): the real kernel atomically adds the
partials into a zeroed fp32 workspace. Here every K block writes its own workspace slot and the
AIVs add the slots in **core-index-ascending** order (``SPLIT_K_ACCUMULATION`` below, the SoC's
``numerics.split_k_reduction_order``), which is the order the numerics model
(``numerics_custom.custom_nz_splitk``) uses. The slots cost ``cube_block_dim_k`` reads of the
partials in the post pass where the device does read-modify-writes in L2.

``SplitK`` (ops-nn ``WeightQuantBatchMatmulV2MixSplitKKernel``, white-listed bf16 x int8 ->
bf16 per-group shapes) has its own program, ``weight_quant_program_mix_splitk``: per-group
products FixPipe'd with atomic add into a zeroed fp32 workspace.

Functional runs of CustomNzSplitK replay its values (typed dequant, the NZ window delivered to UB
in logical order under the declared local-tile model, the cube in the declared model, the
core-ordered post pass) and equal ``numerics_custom.custom_nz_splitk`` bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npusim.engine.errors import ProgramError
from npusim.engine.program import GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region, itemsize
from npusim.ops.cube_emitter import CubeEmitter
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.program_stages import (
    CrossFlags,
    MixLaunch,
    Ring,
    VecInOut,
    add_bias,
    alloc_layout,
    cast_store,
    group_segments,
    ranges,
)
from npusim.ops.weight_quant_batchmatmul.tiling import (
    custom_nz_splitk_post_buffers,
    custom_nz_splitk_vector_buffers,
)
from npusim.ops.weight_quant_common import (
    WqbmmShape,
    bias_dtype,
    block_cube_tiling,
    cube_cells,
    kernel_meta,
    load_params,
    operand_tensors,
    replay_inputs,
    split_k_order,
    weight_tile_region,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

SPLIT_K_ACCUMULATION = (
    "split_k partials: one fp32 GM workspace slot per K block, added by the AIVs in "
    "core_index_ascending order (declared model; device atomic-add order unpublished)"
)


def build_dequant_splitk(soc: SocDescriptor, s: WqbmmShape, kt: Any, kernel: str,
                         data: dict[str, Any] | None = None) -> Kernel:
    """The CustomNzSplitK program for the kernel tiling ``kt`` (CustomNzSplitKTiling); with
    ``data`` (:func:`nz_splitk_replay_data`) a functional run replays its values."""
    d = data or {}
    cube_model = str(soc.numerics.cube_accumulation.model) if data is not None else ""
    split_k_order(soc, kernel)
    xd = s.x_dtype
    dim_n, dim_k = kt.cube_block_dim_n, kt.cube_block_dim_k
    ncores = dim_n * dim_k
    if ncores > soc.core_counts()["aic"]:
        raise ValueError(
            f"tiling uses {ncores} AICs (cube_block_dim_n x cube_block_dim_k), more than the "
            f"{soc.core_counts()['aic']} of {soc.name}"
        )
    post = dim_k > 1 or xd == "bfloat16" or s.has_bias
    strip, slots = kt.cube_single_n, kt.cache_num
    ngroups = math.ceil(s.k / s.group_size) if s.group_size else 1
    ws_t = GMTensor("ws", (ncores * slots, kt.single_core_k, strip), xd, role="workspace")
    gm = operand_tensors(s, d, {"ws": ws_t}, w_shape=weight_storage_shape(s), param_rows=ngroups,
                         bias_dt=bias_dtype(s))
    if post:
        gm["part"] = GMTensor("part", (dim_k, s.m, s.n), "float32", role="workspace")
    x_mat = GmMatrix("x", xd, s.k * 2)
    step = max(1, kt.single_k // kt.cube_base_k)
    cube_t = block_cube_tiling(kt.cube_single_m, strip, kt.cube_base_k, step)
    launch = MixLaunch(soc)
    flags = CrossFlags.of(soc)
    ring = flags.ring("dequantised weight strip", slots)  # AIVs fill, the AIC multiplies
    if post:
        done = flags.flag("K-slice partials written")  # AIC -> its AIVs
        all_aiv = flags.flag("every AIV reached the post pass", mode=0)
    cells = cube_cells(dim_n, dim_k, kt.cube_single_core_n, kt.single_core_k, s.n, s.k)
    for ci, (n_lo, n_hi, k_lo, k_hi) in enumerate(cells):
        ki = ci // dim_n
        strips = ranges(n_lo, n_hi, strip)
        em = CubeEmitter(launch.aic(ci), soc, cube_t, xd, functional=data is not None,
                         cube_model=cube_model, with_bias=False)
        if post:
            out = GmMatrix("part", "float32", s.n * 4, offset=ki * s.m * s.n * 4)
            epi = Epilogue("NONE", "float32")
        else:
            out = GmMatrix("y", s.out_dtype, s.n * itemsize(s.out_dtype))
            epi = Epilogue("F322F16", s.out_dtype)
        for j, (n0, n1) in enumerate(strips):
            slot = ci * slots + j % slots
            ring.take(em.bld, "MTE2")
            base = slot * kt.single_core_k * strip * 2
            ws = GmMatrix("ws", xd, strip * 2, offset=base - k_lo * strip * 2)
            em.block(x_mat, ws, out, epi, 0, s.m, n0, n1, k_hi - k_lo, k_offset=k_lo,
                     b_col_offset=-n0)
            ring.release(em.bld, "MTE2")
        if post:
            done.set(em.bld, "FIX")
        for half in range(2):
            b = launch.aiv(2 * ci + half)
            mark = b.used_bytes("UB")
            _dequant_strips(b, s, kt, ci, half, strips, (k_lo, k_hi), ring)
            if post:
                b.release("UB", mark)
                done.wait(b, "MTE2")
                all_aiv.barrier(b, "MTE2", "MTE2")
                _post_pass(b, s, kt, 2 * ci + half, dim_k)
    meta = kernel_meta(s, kernel, kt)
    meta["cross_core_flags"] = flags.table()
    meta["split_k_accumulation"] = SPLIT_K_ACCUMULATION if post else "none (one K block)"
    if data is not None:
        meta["functional_replay"] = f"instructions (semantics table; cube model {cube_model})"
    return Kernel(f"wqbmm_{kernel.lower()}", gm, launch.cores, meta)


def nz_splitk_replay_data(args: Any) -> dict[str, Any]:
    """GM contents of the CustomNzSplitK program for a validated call: x, the weight as its
    FRACTAL_NZ storage of the transposed (N, K) matrix (int4 packed two per byte), the (1, N)
    parameters and the bias in the dtype the API takes."""
    from npusim.ops.weight_quant_common import nz_weight_storage

    xd = "float16" if args.x_dtype == "float16" else "float32"
    return replay_inputs(args, nz_weight_storage(args), 1, bias_dt=xd)


def weight_storage_shape(s: WqbmmShape) -> tuple[int, ...]:
    """GM storage shape of the weight: ND (K, N) / (N, K), or FRACTAL_NZ of the (N, K)
    transposed weight (K / c0, N / 16, 16, c0) with c0 = 32 bytes of elements."""
    if not s.weight_nz:
        return (s.n, s.k) if s.trans_w else (s.k, s.n)
    c0 = 32 if s.w_dtype == "int8" else 64
    return (math.ceil(s.k / c0), math.ceil(s.n / 16), 16, c0)


@dataclass(frozen=True)
class _SideBuffers:
    """One ping-pong side of a dequant pass's UB layout: the weight tile ``w``, the fp16
    working tile ``h``, the output tile ``o``, the parameter rows ``p``; the shared fp32 tile
    ``f`` (bf16 x only) and the broadcast parameter blocks ``b`` (NZ weight only)."""

    w: Region
    h: Region
    o: Region
    p: Region
    f: Region | None
    b: Region | None


def _dequant_strips(
    b: ProgramBuilder,
    s: WqbmmShape,
    kt: Any,
    ci: int,
    half: int,
    strips: list[tuple[int, int]],
    krange: tuple[int, int],
    ring: Ring,
) -> None:
    """AIV half of one AIC: dequantise its half of every strip's columns into the ring slot
    (ping-pong UB buffers, parameters included, so one pass's loads overlap the previous
    pass's vector work)."""
    xd, rows, cols = s.x_dtype, kt.single_k, kt.vec_single_n
    strip, slots = kt.cube_single_n, kt.cache_num
    layout = custom_nz_splitk_vector_buffers(rows, cols, xd, s.w_dtype, s.weight_nz)
    ub = alloc_layout(b, "UB", layout)
    bufs = [
        _SideBuffers(
            w=ub[f"w{i}"],
            h=ub[f"h{i}"],
            f=ub.get("f"),
            # bf16: the side's fp16 working tile is reused for its bf16 output
            o=ub[f"o{i}"] if f"o{i}" in ub else ub[f"h{i}"],
            p=ub[f"params{i}"],
            b=ub.get(f"params_brcb{i}"),
        )
        for i in range(2)
    ]
    k_lo, k_hi = krange
    q = VecInOut(b)
    for j, (n0, n1) in enumerate(strips):
        slot = ci * slots + j % slots
        hw = math.ceil((n1 - n0) / 2)
        c_lo, c_hi = n0 + half * hw, min(n1, n0 + (half + 1) * hw)
        ring.fill(b, j, "MTE3")
        for c0, c1 in ranges(c_lo, c_hi, cols):
            width = c1 - c0
            for r0, r1 in ranges(k_lo, k_hi, rows):
                nr = r1 - r0
                i = q.load()
                u = bufs[i]
                wreg = Region("UB", u.w.offset, (nr, width), s.w_dtype)
                # an NZ window lands in UB in logical order (declared local-tile model)
                b.dma(weight_tile_region(s, r0, nr, c0, width), wreg, name="weight GM->UB",
                      transform="nz2nd" if s.weight_nz else "")
                prm = u.p
                for g, _, _ in group_segments(r0, r1, s.group_size):
                    load_params(b, s, g, c0, width, prm.offset, prm.offset + prm.shape[1] * 4)
                q.compute(i)
                oreg = Region("UB", u.o.offset, (nr, width), xd)
                _dequant_ops(b, s, u, wreg, oreg, width)
                q.store(i)
                dst = Region(
                    "GM",
                    ((slot * kt.single_core_k + r0 - k_lo) * strip + c0 - n0) * 2,
                    (nr, width),
                    xd,
                    "ws",
                    strip * 2,
                )
                b.dma(oreg, dst, name="dequant w UB->GM ws")
                q.stored(i)
        ring.publish(b, "MTE3")
    q.drain()  # the ping-pong flags left set by the last passes


def _dequant_ops(
    b: ProgramBuilder,
    s: WqbmmShape,
    u: _SideBuffers,
    wreg: Region,
    oreg: Region,
    width: int,
) -> None:
    """The vector dequant of one pass, typed (values from the semantics table, in the order of
    ``numerics_custom``).

    fp16 x: Cast w->half, Add offset, Mul scale (fp16). bf16: Cast the offset bf16->fp16, Cast
    w->half, Add offset (fp16), Cast half->fp32->bf16 (the scale comes after the matmul). An NZ
    tile's per-channel parameters vary along its rows on the device and are first broadcast per
    32 B block (Brcb, whose values the table computes though nothing reads them); the tile is in
    logical order here, so the values use the parameter rows as column broadcasts."""
    xd, shape = s.x_dtype, oreg.shape
    h = Region("UB", u.h.offset, shape, "float16")
    prm = u.p
    scale = Region("UB", prm.offset, (width,), xd)
    offset = Region("UB", prm.offset + prm.shape[1] * 4, (width,), xd)
    if xd == "bfloat16" and s.has_offset:
        offset16 = Region("UB", offset.offset, (width,), "float16")
        b.cast(offset16, offset, name="Cast offset bf16->fp16")
        offset = offset16
    b.cast(h, wreg, name="Cast w->half")
    if u.b is not None:  # each parameter to a 32 B block (a bit move: fp16 lanes)
        rows = 1 + s.has_offset
        src = Region("UB", prm.offset, (rows, width), "float16", None, prm.shape[1] * 4)
        dst = Region("UB", u.b.offset, (rows, width * 16), "float16", None,
                     u.b.shape[1] * 16 * 2)
        b.vop(VecOp.BRCB, dst, (src,), elements=width * 16 * rows, dtype="float16",
              name="Brcb params")
    if xd == "float16":
        if s.has_offset:
            b.vop(VecOp.ADD, h, (h, offset), name="Add offset")
        b.vop(VecOp.MUL, oreg, (h, scale), name="Mul scale")
        return
    if u.f is None:
        raise ProgramError("bf16 dequant pass: the UB layout has no fp32 tile 'f'")
    f = Region("UB", u.f.offset, shape, "float32")
    if s.has_offset:
        b.vop(VecOp.ADD, h, (h, offset), name="Add offset")
    b.cast(f, h, name="Cast half->fp32")
    b.cast(oreg, f, name="Cast fp32->bf16")


def _post_pass(b: ProgramBuilder, s: WqbmmShape, kt: Any, v: int, dim_k: int) -> None:
    """AIV ``v`` of the launch: reduce the K partials of its column range in core-index order,
    scale (bf16), bias, CAST_ROUND, write y."""
    pm, pn = max(1, kt.post_single_m), kt.post_single_n
    c_lo, c_hi = v * kt.post_single_core_n, min(s.n, (v + 1) * kt.post_single_core_n)
    if c_lo >= c_hi:
        return
    ub = alloc_layout(b, "UB", custom_nz_splitk_post_buffers(pm, pn, s.out_dtype))
    acc, tmp, raw, sc, bi, out = (
        ub[k] for k in ("acc", "part", "param_in", "scale", "bias", "out")
    )
    first = True
    for m0, m1 in ranges(0, s.m, pm):
        for c0, c1 in ranges(c_lo, c_hi, pn):
            rows, width = m1 - m0, c1 - c0
            if not first:
                b.wait_flag("MTE3", "MTE2", 1)
            first = False
            for ki in range(dim_k):
                dst = acc if ki == 0 else tmp
                if ki > 1:
                    b.wait_flag("V", "MTE2", 0)
                b.dma(
                    Region("GM", ((ki * s.m + m0) * s.n + c0) * 4, (rows, width), "float32",
                           "part", s.n * 4),
                    Region("UB", dst.offset, (rows, width), "float32"),
                    name=f"partial {ki} GM->UB",
                )
                b.sync("MTE2", "V", 0)
                if ki > 0:
                    acc_r = Region("UB", acc.offset, (rows, width), "float32")
                    b.vop(VecOp.ADD, acc_r, (acc_r, Region("UB", tmp.offset, (rows, width),
                                                          "float32")), name="Add partial")
                    if ki < dim_k - 1:
                        b.set_flag("V", "MTE2", 0)
            if s.x_dtype == "bfloat16":
                b.dma(Region("GM", c0 * 2, (width,), s.x_dtype, "scale"),
                      Region("UB", raw.offset, (width,), s.x_dtype), name="scale GM->UB")
                b.sync("MTE2", "V", 2)
                sc_r = Region("UB", sc.offset, (width,), "float32")
                b.cast(sc_r, Region("UB", raw.offset, (width,), s.x_dtype), name="Cast scale->fp32")
                acc_r = Region("UB", acc.offset, (rows, width), "float32")
                b.vop(VecOp.MUL, acc_r, (acc_r, sc_r), name="Mul scale")
            if s.has_bias:
                bdt = bias_dtype(s)
                b.dma(Region("GM", c0 * itemsize(bdt), (width,), bdt, "bias"),
                      Region("UB", bi.offset, (width,), bdt), name="bias GM->UB")
                b.sync("MTE2", "V", 3)
                add_bias(b, Region("UB", acc.offset, (rows, width), "float32"),
                         Region("UB", bi.offset, (width,), bdt),
                         Region("UB", bi.offset, (width,), "float32"))
            cast_store(b, Region("UB", out.offset, (rows, width), s.out_dtype),
                       Region("UB", acc.offset, (rows, width), "float32"), "y", m0, c0, s.n, 2)
            b.set_flag("MTE3", "MTE2", 1)
    b.wait_flag("MTE3", "MTE2", 1)


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    return build_dequant_splitk(soc, s, t, "CustomNzSplitK",
                                nz_splitk_replay_data(args) if replay else None)
