"""The MsdSplitK kernel as a program whose run gives its bits (per-channel int8 / int4 with K
blocks of ``v1_base_k``, per-group int4 with the group as block; both inner_precise modes).

Structure (ops-semantics 5.5; written from the description, not the kernel source): the two AIVs
of each AIC split alternate x rows, block by block, into ``D`` integer digits (int8: 2, int4: 3)
of ``x / amax`` with the recurrence ``t0 = xn f1, d_i = ROUND(t_i), t_{i+1} = (t_i - d_i) f2``,
and (with an offset) take each block's row sum; digits go to a GM workspace, amax / row sums to a
stats workspace. The AIC multiplies each block's ``D x M`` digit rows by the block's weight rows
(exact int32; fp16 through FixPipe DEQF16 with scale 1 for inner_precise 1 per-group) into a
ring of workspace slots, block after block for each N strip. The AIVs recombine each strip's
columns (one half each) into one fp32 accumulator, per ``group_pack`` blocks the offset terms
``rsum_b * (scale * offset)`` first, then each block's digit terms
``(sum_i C_i * divF_i) * scale * amax_b`` (the ``msd_recombine`` stage, its fused form); then
bias and CAST_ROUND.

Every vector instruction is a typed ISA instruction (values from ``npusim.isa.semantics``) in the
order of the numerics model (``numerics_msd.msd_split_k``, the test oracle). Blocks of a
pre-processing pass are the rows of 2-D UB regions, so one instruction covers them all.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from npusim.engine.program import Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.group_reduce import block_reduce, group_reduce
from npusim.ops.msd_recombine import MsdRecombine
from npusim.ops.program_stages import add_bias, alloc_layout, lanes32
from npusim.ops.weight_quant_batchmatmul.numerics_msd import DIGIT_FACTORS
from npusim.ops.weight_quant_batchmatmul.tiling import (
    msd_split_k_prepare_buffers,
    msd_split_k_recombine_buffers,
)
from npusim.ops.weight_quant_common import (
    ITEM,
    MsdFlags,
    WqbmmProgramTiling,
    WqbmmShape,
    digit_count,
    msd_split_k_blocks,
    replay_inputs,
    stored_weight,
)
from npusim.ops.weight_quant_digit_kernel import (
    DigitKernel,
    build_digit_kernel,
    digit_split,
    store_output,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor


def _blocks(base: int, nbk: int, g: int, col0: int, cols: int) -> Region:
    """Columns [col0, col0 + cols) of ``nbk`` fp32 blocks of ``g`` elements at UB ``base``."""
    return Region("UB", base + col0 * 4, (nbk, cols), "float32", row_stride_bytes=g * 4)


class _Geometry:
    """Blocks, digits and pre-processing passes of one call."""

    def __init__(self, s: WqbmmShape, t: WqbmmProgramTiling) -> None:
        self.per_group = s.group_size > 0
        # the K block, blocks, blocks per pre-processing pass (the kernel's v1 loop) and
        # parameter rows held per pack, as validate_program_tiling sizes them
        self.g, self.nb, self.per_pass, self.pk = msd_split_k_blocks(s, t)
        self.digits = digit_count(s.w_dtype)
        self.high_perf = self.per_group and s.w_dtype == "int4" and s.inner_precise == 1
        self.c_dtype = "float16" if self.high_perf else "int32"
        self.pack = t.group_pack if self.per_group else self.nb
        self.rows = self.digits * s.m


def _prepare_rows(b: ProgramBuilder, s: WqbmmShape, geo: _Geometry, ci: int, half: int,
                  fl: MsdFlags) -> None:
    """AIV phase 1: digits, amax and row sums of the rows ``half, half + 2, ...``, block pass by
    block pass."""
    g, nb, per = geo.g, geo.nb, geo.per_pass
    f1, f2 = (float(v) for v in DIGIT_FACTORS[s.w_dtype][:2])
    ub = alloc_layout(b, "UB", msd_split_k_prepare_buffers(g, per, geo.digits, s.x_dtype,
                                                           s.w_dtype))
    xb, fb, wb, sums, st = (ub[nm] for nm in ("x", "xf", "work", "block_sums", "stats"))
    db = [ub[f"digit{d}"] for d in range(geo.digits)]
    amax_at, rsum_at = st.offset, st.offset + lanes32(per, 4) * 4
    m, k = s.m, s.k
    for r in range(half, m, 2):
        for b0 in range(0, nb, per):
            nbk = min(per, nb - b0)
            k0 = b0 * g
            n = min(k, k0 + nbk * g) - k0  # real elements; the last block may be partial
            length = nbk * g
            xf = Region("UB", fb.offset, (nbk, g), "float32")
            w = Region("UB", wb.offset, (nbk, g), "float32")
            amax = Region("UB", amax_at, (nbk, 1), "float32")
            rsum = Region("UB", rsum_at, (nbk,), "float32")
            b.dma(Region("GM", (r * k + k0) * 2, (n,), s.x_dtype, "x"),
                  Region("UB", xb.offset, (n,), s.x_dtype), name="x row GM->UB")
            b.sync("MTE2", "V", 0)
            b.cast(Region("UB", fb.offset, (n,), "float32"),
                   Region("UB", xb.offset, (n,), s.x_dtype), name="Cast x->fp32")
            if n < length:  # the partial block is zero padded
                b.vop(VecOp.DUPLICATE, Region("UB", fb.offset + n * 4, (length - n,), "float32"),
                      scalar=0.0, name="Duplicate 0 pad")
            b.vop(VecOp.ABS, w, (xf,))
            b.vop(VecOp.REDUCE_MAX, Region("UB", amax_at, (nbk,), "float32"), (w,),
                  name="ReduceMax per block")
            if s.has_offset:
                _emit_block_sums(b, geo, fb.offset, wb.offset, nbk, sums, rsum)
            b.vop(VecOp.DIV, xf, (xf, amax), name="Div amax")
            digit_split(b, xf, w, xf, Region("UB", xb.offset, (nbk, g), "float16"),
                        [Region("UB", db[d].offset, (nbk, g), s.w_dtype)
                         for d in range(geo.digits)], f1, f2)
            b.sync("V", "MTE3", 0)
            isz = ITEM[s.w_dtype]
            for d in range(geo.digits):
                row = (ci * geo.rows + d * m + r) * k + k0
                b.dma(Region("UB", db[d].offset, (n,), s.w_dtype),
                      Region("GM", math.ceil(row * isz), (n,), s.w_dtype, "digits"),
                      name="digits UB->GM")
            for j, at in [(0, amax_at)] + ([(1, rsum_at)] if s.has_offset else []):
                # stats workspace (cores, 2, nb, m): this row's column of blocks b0..
                b.dma(Region("UB", at, (nbk,), "float32"),
                      Region("GM", (((ci * 2 + j) * nb + b0) * m + r) * 4, (nbk, 1), "float32",
                             "stats", m * 4), name="block stats UB->GM")
            b.sync("MTE3", "MTE2", 0)
    b.sync("MTE3", "V", 0)  # the recombination's vector work reuses this phase's UB
    fl.digits.set(b, "MTE3")


def _emit_block_sums(
    b: ProgramBuilder, geo: _Geometry, x_at: int, w_at: int, nbk: int, sums: Region,
    dst: Region,
) -> None:
    """Each block's row sum: per-group (g = 64 / 128) the group_reduce stage; per-channel the
    in-place halving of the block's 64-lane chunks, then the stage's two block sums."""
    g = geo.g
    eights = Region("UB", sums.offset, (nbk * 8,), "float32")
    if geo.per_group:
        if g not in (64, 128):
            raise ValueError(f"MsdSplitK per-group row sums take groups of 64 or 128, not {g}")
        group_reduce(b, "Sum", Region("UB", x_at, (nbk, g), "float32"),
                     Region("UB", w_at, (nbk, 64), "float32"), eights, dst)
        return
    src, r = x_at, g // 64
    while r > 1:
        p = r // 2
        b.vop(VecOp.ADD, _blocks(w_at, nbk, g, 0, 64 * p),
              (_blocks(src, nbk, g, 0, 64 * p), _blocks(src, nbk, g, 64 * p, 64 * p)),
              name="Add chunk halves")
        if r % 2:
            b.vop(VecOp.COPY, _blocks(w_at, nbk, g, 64 * p, 64),
                  (_blocks(src, nbk, g, 128 * p, 64),), name="Copy odd chunk")
        src, r = w_at, p + r % 2
    block_reduce(b, "Sum", _blocks(src, nbk, g, 0, 64), eights, dst)


def _recombine_strips(
    b: ProgramBuilder, s: WqbmmShape, t: WqbmmProgramTiling, geo: _Geometry, ci: int, half: int,
    strips: list[tuple[int, int]], fl: MsdFlags,
) -> None:
    """AIV phase 2: this AIV's half of every strip's columns, block by block into one fp32
    accumulator (per pack: the offset terms, then the digit terms), bias, CAST_ROUND, store."""
    m, xd, nb, rows = s.m, s.x_dtype, geo.nb, geo.rows
    width = math.ceil(t.strip_n / 2)
    wl = lanes32(width, 4)
    c_isz = ITEM[geo.c_dtype]
    rc = MsdRecombine.of(s.w_dtype, geo.high_perf, fused=True)
    pk = geo.pk  # parameter rows held per pack
    ub = alloc_layout(b, "UB", msd_split_k_recombine_buffers(m, width, nb, pk, geo.digits, xd,
                                                             s.out_dtype))
    cb = [ub[f"c{d}"] for d in range(geo.digits)]
    cc, acc, pin, pf, st, ob = (ub[nm] for nm in ("cc", "acc", "params_in", "params",
                                                  "block_stats", "out"))
    i_row, p_row = lanes32(width, 2) * 2, wl * 4
    ml = lanes32(m, 4)

    def stat(j: int, blk: int) -> Region:  # amax (j 0) / rsum (j 1) of block blk, per row
        return Region("UB", st.offset + (j * nb + blk) * ml * 4, (m, 1), "float32")

    def prm(base: int, row: int, cw: int, dtype: str, stride: int) -> Region:
        return Region("UB", base + row * stride, (cw,), dtype)

    def pack_rows(i: int, f32: bool, rows_here: int, cw: int) -> Region:
        """The raw or fp32 rows of parameter ``i`` (0 scale, 1 offset) held for a pack."""
        base, stride, dt = (pf.offset, p_row, "float32") if f32 else (pin.offset, i_row, xd)
        return Region("UB", base + i * pk * stride, (rows_here, cw), dt, row_stride_bytes=stride)

    slot_i = 0
    for si, (n0, n1) in enumerate(strips):
        c0 = n0 + half * width
        cw = min(width, n1 - c0)
        if cw <= 0:  # this AIV's half of a narrow strip is empty: keep the handshakes only
            for _ in range(nb):
                fl.c.take(b, "MTE2")
                fl.c.release(b, "MTE2")
            slot_i += nb
            continue
        acc_r = Region("UB", acc.offset, (m, cw), "float32")
        cc_r = Region("UB", cc.offset, (m, cw), "float32")
        sum_r = rc.accumulator(b, acc_r)
        for blk in range(nb):
            slot = ci * t.slots + slot_i % t.slots
            slot_i += 1
            fl.c.take(b, "MTE2")
            pack_start = blk % geo.pack == 0
            rows_here = min(pk, nb - blk) if geo.per_group else 1
            prow0 = blk if geo.per_group else 0
            names = ["scale"] + (["offset"] if s.has_offset else [])
            if si == 0 and blk == 0:
                b.dma(Region("GM", ci * 2 * nb * m * 4, (2 * nb, m), "float32", "stats", m * 4),
                      Region("UB", st.offset, (2 * nb, m), "float32", row_stride_bytes=ml * 4),
                      name="block stats GM->UB")
            if pack_start:
                for i, nm in enumerate(names):
                    b.dma(Region("GM", (prow0 * s.n + c0) * 2, (rows_here, cw), xd, nm, s.n * 2),
                          pack_rows(i, False, rows_here, cw), name=f"{nm} GM->UB")
            c_ub = [Region("UB", cb[d].offset, (m, cw), geo.c_dtype) for d in range(geo.digits)]
            for d in range(geo.digits):
                src = (slot * rows + d * m) * t.strip_n + half * width
                b.dma(Region("GM", math.ceil(src * c_isz), (m, cw), geo.c_dtype, "c",
                             math.ceil(t.strip_n * c_isz)), c_ub[d], name="digit results GM->UB")
            fl.c.release(b, "MTE2")
            b.sync("MTE2", "V", 1)
            if pack_start:
                sc, of = ((pack_rows(i, True, rows_here, cw), pack_rows(i, False, rows_here, cw))
                          for i in range(2))
                rc.params(b, sc, of if s.has_offset else None)
                if s.has_offset:  # scale * offset is in place of the offset rows
                    for bb in range(blk, min(nb, blk + geo.pack)):
                        so_row = prm(pf.offset + pk * p_row, bb - blk if geo.per_group else 0,
                                     cw, "float32", p_row)
                        sum_r.add_offset(b, stat(1, bb), so_row)
            scale_row = prm(pf.offset, (blk % pk) if geo.per_group else 0, cw, "float32", p_row)
            rc.digit_sum(b, c_ub, cc_r)
            sum_r.add_digits(b, cc_r, scale_row, stat(0, blk))
            b.sync("V", "MTE2", 1)
        if s.has_bias:
            bias = prm(pf.offset, 2 * pk, cw, "float32", p_row)
            b.dma(Region("GM", c0 * 4, (cw,), "float32", "bias"), bias, name="bias GM->UB")
            b.sync("MTE2", "V", 1)
            add_bias(b, acc_r, bias)
        store_output(b, s, acc_r, Region("UB", ob.offset, (m, cw), s.out_dtype), c0)
        b.sync("V", "MTE2", 1)  # the next strip's loads wait for this strip's vector work


def build_msd_split_k(
    soc: SocDescriptor, s: WqbmmShape, t: WqbmmProgramTiling, data: dict[str, Any] | None = None
) -> Kernel:
    """The MsdSplitK program; with ``data`` (:func:`msd_split_k_replay_data`) a functional run
    replays its values."""
    geo = _Geometry(s, t)

    def prepare(b: ProgramBuilder, ci: int, half: int, _strips: list[tuple[int, int]],
                fl: MsdFlags) -> None:
        _prepare_rows(b, s, geo, ci, half, fl)

    def recombine(b: ProgramBuilder, ci: int, half: int, strips: list[tuple[int, int]],
                  fl: MsdFlags) -> None:
        _recombine_strips(b, s, t, geo, ci, half, strips, fl)

    blocks = [(blk * geo.g, min(geo.g, s.k - blk * geo.g)) for blk in range(geo.nb)]
    dk = DigitKernel("MsdSplitK", "wqbmm_msdsplitk", geo.rows, s.w_dtype, geo.c_dtype,
                     geo.nb if geo.per_group else 1, (2, geo.nb, s.m), blocks,
                     Epilogue("DEQF16" if geo.high_perf else "NONE", geo.c_dtype), prepare,
                     recombine, deq_scale=1.0 if geo.high_perf else None)
    kernel = build_digit_kernel(soc, s, t, dk, data)
    kernel.meta["split_k_accumulation"] = (
        f"{geo.nb} K blocks of {geo.g}: digit products in GM workspace slots, recombined into "
        "one fp32 accumulator per output element in k_block_ascending order (declared model)")
    if data is not None:
        kernel.meta["functional_replay"] = "instructions (semantics table; exact integer cube)"
    return kernel


def msd_split_k_replay_data(args: Any, block: int) -> dict[str, Any]:
    """GM contents for a validated call: x, the weight in its stored layout (int4 packed eight
    per word, low nibble first), the (G, N) scale and offset, the bias as fp32 (exact)."""
    from npusim.ops.weight_quant_batchmatmul.numerics_msd import check_block_amax

    size = args.group_size or block
    check_block_amax(args.x, size, "group" if args.group_size else "K block")
    g = math.ceil(args.k / args.group_size) if args.group_size else 1
    return replay_inputs(args, stored_weight(args, "MsdSplitK"), g)


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    from npusim.ops.weight_quant_common import check_cube_cores

    check_cube_cores(soc, t)
    return build_msd_split_k(soc, s, t, msd_split_k_replay_data(args, t.k_block) if replay
                             else None)
