"""The Msd kernel (multi-core, per-channel int8 weight) as a program whose run gives its bits.

Structure (ops-semantics 5.5; written from the description, not the kernel source): the two AIVs
of each AIC split alternate x rows into two int8 digit rows, a row's max |x| and (with an offset)
its row sum, into GM workspaces; the AIC multiplies the 2M digit rows by the raw weight (exact
int32) strip by strip into a ring of workspace slots; the AIVs recombine each strip's columns
(one half each): ``c = (C1 * 1/E1 + C2 * 1/E2) * amax``, ``+ rsum * offset``, ``* scale``,
``+ bias``, CAST_ROUND to the output dtype.

Every vector instruction is a typed instruction whose values come from the semantics table
(``npusim.isa.semantics``), in the order of the numerics model
(``weight_quant_batchmatmul.numerics_msd.msd_multicore``, the test oracle): a functional run's
output is read from the simulated GM. Scalars the kernel keeps in registers (amax, 1/amax, the
row sum) live in 32 B UB slots here and reach the recombination through a GM workspace (the
declared data path; the kernel's own layout is not published).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from npusim.engine.program import Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.group_reduce import block_reduce
from npusim.ops.program_stages import add_bias, alloc_layout, lanes32, ranges
from npusim.ops.weight_quant_batchmatmul import numerics_msd as nm
from npusim.ops.weight_quant_batchmatmul.tiling import (
    MSD_STAT_SLOT,
    UB_ALIGN,
    msd_prepare_buffers,
    msd_recombine_buffers,
)
from npusim.ops.weight_quant_common import (
    MsdFlags,
    WqbmmProgramTiling,
    WqbmmShape,
    load_params,
    replay_inputs,
    stored_weight,
)
from npusim.ops.weight_quant_digit_kernel import (
    DigitKernel,
    build_digit_kernel,
    digit_cast,
    store_output,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

_RECIPROCAL_MIN_K = 128  # K >= 128: x * (1/amax) (scalar reciprocal + Muls), else x / amax
_HALVING_MIN_K = 4096  # K >= 4096: the row sum halves in place (RowSumInplace)
# the numerics model's float32 constants (C++ float constexpr) as the Muls scalars
E1, E2, INV_E1, INV_E2 = (float(v) for v in (nm.E1, nm.E2, nm.INV_E1, nm.INV_E2))


def _slot(st: Region, i: int, elements: int = 1) -> Region:
    return Region("UB", st.offset + i * MSD_STAT_SLOT, (elements,), "float32")


def _chunk(v: Region, start: int, count: int) -> Region:
    """Elements [start, start + count) of a 1-D fp32 UB region."""
    return Region("UB", v.offset + 4 * start, (count,), "float32")


def emit_sequential_row_sum(
    b: ProgramBuilder, v: Region, k: int, t64: Region, s8: Region, dst: Region
) -> None:
    """Row sum of ``v`` (k >= 64 fp32) as RowSumFixTmpTensor adds it: the first two 64-lane
    chunks, each further full chunk in turn, a partial tail lane-wise; then two block sums."""
    full = k // 64
    if k >= 128:
        b.vop(VecOp.ADD, t64, (_chunk(v, 0, 64), _chunk(v, 64, 64)))
        for i in range(2, full):
            b.vop(VecOp.ADD, t64, (t64, _chunk(v, 64 * i, 64)))
        tail = k - full * 64
        if tail:
            head = _chunk(t64, 0, tail)
            b.vop(VecOp.ADD, head, (head, _chunk(v, 64 * full, tail)))
    else:
        b.vop(VecOp.COPY, t64, (_chunk(v, 0, 64),))
        if k > 64:
            head = _chunk(t64, 0, k - 64)
            b.vop(VecOp.ADD, head, (_chunk(v, 0, k - 64), _chunk(v, 64, k - 64)))
    block_reduce(b, "Sum", t64, s8, dst)


def emit_halving_row_sum(
    b: ProgramBuilder, v: Region, k: int, work: Region, s8: Region, dst: Region
) -> None:
    """Row sum of ``v`` (k >= 64 fp32) as RowSumInplace adds it: chunk i onto chunk P+i
    (P = half the chunks, an odd last chunk carried) until one 64-lane chunk remains, the
    partial tail added lane-wise, then two block sums. The first pass reads ``v`` and writes
    ``work`` (``v`` itself when they are the same region), later passes work in place."""
    full = k // 64
    src, r = v, full
    while r > 1:
        p = r // 2
        b.vop(VecOp.ADD, _chunk(work, 0, 64 * p), (_chunk(src, 0, 64 * p),
                                                    _chunk(src, 64 * p, 64 * p)))
        if r % 2:
            b.vop(VecOp.COPY, _chunk(work, 64 * p, 64), (_chunk(src, 128 * p, 64),))
        src, r = work, p + r % 2
    if src is not work:
        b.vop(VecOp.COPY, _chunk(work, 0, 64), (_chunk(src, 0, 64),))
    if k > full * 64:
        head = _chunk(work, 0, k - full * 64)
        b.vop(VecOp.ADD, head, (head, _chunk(v, full * 64, k - full * 64)))
    block_reduce(b, "Sum", _chunk(work, 0, 64), s8, dst)


def _prepare_rows(
    b: ProgramBuilder, s: WqbmmShape, ci: int, half: int, high_precision: bool,
    fl: MsdFlags,
) -> None:
    """AIV phase 1: digits, amax and row sum of the rows ``half, half + 2, ...``."""
    k = s.k
    kpad = math.ceil(k / 64) * 64
    ub = alloc_layout(b, "UB", msd_prepare_buffers(k, s.x_dtype))
    xb, fb, rb, db, st, t64, s8 = (ub[nm] for nm in ("x", "xf", "work", "digits", "stats",
                                                     "chunk", "blocks"))
    x_row = Region("UB", xb.offset, (k,), s.x_dtype)
    hrow = Region("UB", xb.offset, (k,), "float16")  # the x tile, reused for the half digits
    xf = Region("UB", fb.offset, (k,), "float32")
    w = Region("UB", rb.offset, (k,), "float32")
    digit = [Region("UB", db.offset + d * kpad, (k,), "int8") for d in range(2)]
    amax, recip, rsum, part = (_slot(st, i) for i in range(4))
    for r in range(half, s.m, 2):
        b.dma(Region("GM", r * k * 2, (k,), s.x_dtype, "x"), x_row, name="x row GM->UB")
        b.sync("MTE2", "V", 0)
        b.cast(xf, x_row, round_mode="rint", name="Cast x->fp32")
        b.vop(VecOp.ABS, w, (xf,))
        b.vop(VecOp.REDUCE_MAX, amax, (w,), elements=k)
        if s.has_offset and not high_precision:
            if k >= _HALVING_MIN_K:
                emit_halving_row_sum(b, xf, k, w, s8, rsum)
            elif k >= 64:
                emit_sequential_row_sum(b, xf, k, t64, s8, rsum)
            else:
                b.vop(VecOp.REDUCE_SUM, rsum, (xf,), elements=k)
        if k >= _RECIPROCAL_MIN_K:
            b.vop(VecOp.DUPLICATE, recip, scalar=1.0)
            b.vop(VecOp.DIV, recip, (recip, amax))
            b.vop(VecOp.MUL, xf, (xf, recip), name="Muls 1/amax")
        else:
            b.vop(VecOp.DIV, xf, (xf, amax), name="Div amax")
        b.vop(VecOp.MULS, w, (xf,), scalar=E1)
        b.cast(w, w, round_mode="round", name="Cast ROUND digit 1")
        digit_cast(b, w, hrow, digit[0])
        b.vop(VecOp.MULS, w, (w,), scalar=INV_E1)
        b.vop(VecOp.SUB, xf, (xf, w), name="Sub residual")
        if s.has_offset and high_precision:
            emit_halving_row_sum(b, w, k, w, s8, rsum)
        b.vop(VecOp.MULS, xf, (xf,), scalar=E2)
        b.cast(xf, xf, round_mode="round", name="Cast ROUND digit 2")
        digit_cast(b, xf, hrow, digit[1])
        if s.has_offset and high_precision:
            b.vop(VecOp.MULS, w, (xf,), scalar=INV_E2)
            emit_halving_row_sum(b, w, k, w, s8, part)
            b.vop(VecOp.ADD, rsum, (rsum, part))
            b.vop(VecOp.MUL, rsum, (rsum, amax))
        b.sync("V", "MTE3", 0)
        for d in range(2):
            b.dma(digit[d], Region("GM", ((ci * 2 + d) * s.m + r) * k, (k,), "int8", "digits"),
                  name="digits UB->GM")
        for j, slot in [(0, 0)] + ([(1, 2)] if s.has_offset else []):  # amax, rsum
            b.dma(_slot(st, slot, MSD_STAT_SLOT // 4),
                  Region("GM", ((ci * 2 + j) * s.m + r) * MSD_STAT_SLOT, (MSD_STAT_SLOT // 4,),
                         "float32", "stats"), name="row stats UB->GM")
        b.sync("MTE3", "MTE2", 0)
    fl.digits.set(b, "MTE3")


def _recombine_strips(
    b: ProgramBuilder, s: WqbmmShape, t: WqbmmProgramTiling, ci: int, half: int,
    strips: list[tuple[int, int]], fl: MsdFlags,
) -> None:
    """AIV phase 2: this AIV's half of every strip's columns, recombined and stored in passes
    of ``t.post_m`` rows (all M rows when 0 or more): a pass's digit products are loaded,
    recombined and stored before the next pass reuses its tiles; the parameters of a strip
    and the row statistics (once) are loaded with its first pass."""
    m, xd = s.m, s.x_dtype
    width = math.ceil(t.strip_n / 2)
    rows = min(m, t.post_m or m)
    passes = ranges(0, m, rows)
    ub = alloc_layout(b, "UB", msd_recombine_buffers(rows, m, width, xd, s.out_dtype))
    cb, f1, f2, pin, pf, st, ob = (ub[nm] for nm in ("c", "c1", "c2", "params_in", "params",
                                                     "row_stats", "out"))
    pass_stats = lanes32(rows, 4) * 4  # bytes of one pass's rows of a statistic
    stat_row = pass_stats * len(passes)  # bytes of one statistic's rows
    p_row, i_row = lanes32(width, 4) * 4, lanes32(width, 2) * 2  # bytes per parameter row
    c_rows = rows * lanes32(width, 4) * 4  # bytes of one digit's products in UB
    for j, (n0, n1) in enumerate(strips):
        c0 = n0 + half * width
        cw = min(width, n1 - c0)
        slot = ci * t.slots + j % t.slots
        fl.c.take(b, "MTE2")
        if cw <= 0:  # this AIV's half of a narrow strip is empty: keep the handshake only
            fl.c.release(b, "MTE2")
            continue
        names = ["scale"] + (["offset"] if s.has_offset else [])
        p_in = {nm: Region("UB", pin.offset + i * i_row, (cw,), xd) for i, nm in enumerate(names)}
        p32 = {nm: Region("UB", pf.offset + i * p_row, (cw,), "float32")
               for i, nm in enumerate([*names, "bias"])}
        for p_i, (r0, r1) in enumerate(passes):
            rr = r1 - r0
            src = Region("GM", (slot * 2 * m * t.strip_n + r0 * t.strip_n + half * width) * 4,
                         (rr, cw), "int32", "c", t.strip_n * 4)
            c_ub = [Region("UB", cb.offset, (rr, cw), "int32")]
            if rr == m and (m * cw * 4) % UB_ALIGN == 0:  # both digits' rows in one copy
                b.dma(Region("GM", src.offset, (2 * m, cw), "int32", "c", t.strip_n * 4),
                      Region("UB", cb.offset, (2 * m, cw), "int32"), name="digit results GM->UB")
                c_ub.append(Region("UB", cb.offset + m * cw * 4, (m, cw), "int32"))
            else:  # the second digit's rows would start unaligned: one copy per digit
                c_ub.append(Region("UB", cb.offset + c_rows, (rr, cw), "int32"))
                for d in range(2):
                    b.dma(Region("GM", src.offset + d * m * t.strip_n * 4, (rr, cw), "int32",
                                 "c", t.strip_n * 4), c_ub[d], name="digit results GM->UB")
            if p_i == 0:
                load_params(b, s, 0, c0, cw, pin.offset, pin.offset + i_row)
                if s.has_bias:
                    b.dma(Region("GM", c0 * 4, (cw,), "float32", "bias"), p32["bias"],
                          name="bias GM->UB")
            if j == 0 and p_i == 0:
                for row in range(2 if s.has_offset else 1):
                    for q, (q0, q1) in enumerate(passes):
                        reg = Region("UB", st.offset + row * stat_row + q * pass_stats,
                                     (q1 - q0, 1), "float32")
                        b.dma(Region("GM", ((ci * 2 + row) * m + q0) * MSD_STAT_SLOT,
                                     (q1 - q0, 1), "float32", "stats", MSD_STAT_SLOT), reg,
                              name="row stats GM->UB")
            if p_i == len(passes) - 1:
                fl.c.release(b, "MTE2")
            b.sync("MTE2", "V", 1)
            amax, rsum = (Region("UB", st.offset + row * stat_row + p_i * pass_stats, (rr, 1),
                                 "float32") for row in range(2))
            c1 = Region("UB", f1.offset, (rr, cw), "float32")
            c2 = Region("UB", f2.offset, (rr, cw), "float32")
            b.cast(c1, c_ub[0], name="Cast C1->fp32")
            b.cast(c2, c_ub[1], name="Cast C2->fp32")
            b.vop(VecOp.MULS, c1, (c1,), scalar=INV_E1)
            b.vop(VecOp.MULS, c2, (c2,), scalar=INV_E2)
            b.vop(VecOp.ADD, c1, (c1, c2))
            b.vop(VecOp.MUL, c1, (c1, amax), name="Mul amax")
            if p_i == 0:
                for nm in names:
                    b.cast(p32[nm], p_in[nm], name=f"Cast {nm}->fp32")
            if s.has_offset:
                b.vop(VecOp.MUL_ADD_DST, c1, (rsum, p32["offset"]), name="MulAddDst rsum*offset")
            b.vop(VecOp.MUL, c1, (c1, p32["scale"]), name="Mul scale")
            if s.has_bias:
                add_bias(b, c1, p32["bias"])
            store_output(b, s, c1, Region("UB", ob.offset, (rr, cw), s.out_dtype), c0, r0)
            b.sync("V", "MTE2", 1)  # the next pass's loads wait for this pass's vector work


def build_msd_multicore(
    soc: SocDescriptor,
    s: WqbmmShape,
    t: WqbmmProgramTiling,
    data: dict[str, Any] | None = None,
    *,
    high_precision: bool = False,
) -> Kernel:
    """The Msd program; with ``data`` (:func:`msd_replay_data`) a functional run replays its
    values (HIGH_PRECISION variant of the white-listed shape when ``high_precision``)."""
    if s.w_dtype != "int8" or s.group_size:
        raise ValueError("the Msd kernel takes a per-channel int8 weight")

    def prepare(b: ProgramBuilder, ci: int, half: int, _strips: list[tuple[int, int]],
                fl: MsdFlags) -> None:
        _prepare_rows(b, s, ci, half, high_precision, fl)

    def recombine(b: ProgramBuilder, ci: int, half: int, strips: list[tuple[int, int]],
                  fl: MsdFlags) -> None:
        _recombine_strips(b, s, t, ci, half, strips, fl)

    dk = DigitKernel("Msd", "wqbmm_msd", 2 * s.m, "int8", "int32", 1,
                     (2, s.m, MSD_STAT_SLOT // 4), [(0, s.k)], Epilogue("NONE", "int32"), prepare,
                     recombine)
    kernel = build_digit_kernel(soc, s, t, dk, data)
    kernel.meta["msd_variant"] = "HIGH_PRECISION" if high_precision else "default"
    if data is not None:
        kernel.meta["functional_replay"] = "instructions (semantics table; exact int8 cube)"
    return kernel


def msd_replay_data(args: Any) -> dict[str, Any]:
    """GM contents of the Msd program for a validated call: x, the int8 weight in its stored
    layout ((N, K) when transposed), the (1, N) scale and offset, the bias as fp32 (exact)."""
    nm.check_row_amax(args.x)
    return replay_inputs(args, stored_weight(args, "Msd"), 1)


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    from npusim.ops.weight_quant_batchmatmul.selection import is_msd_high_precision
    from npusim.ops.weight_quant_common import check_cube_cores

    check_cube_cores(soc, t)
    high = is_msd_high_precision(args) if args is not None else False
    return build_msd_multicore(soc, s, t, msd_replay_data(args) if replay else None,
                               high_precision=high)
