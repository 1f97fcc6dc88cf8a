"""The program skeleton of the digit-split weight_quant_batchmatmul kernels (Msd, MsdSplitK).

Both kernels have the same shape (ops-semantics 5.5): per AI Core, its two AIVs split
alternate x rows into integer digits (phase 1) and signal the AIC once; the AIC multiplies
the digit rows by the raw weight block by block into a ring of GM workspace slots; the AIVs
recombine each slot's columns, one half each (phase 2), and store the output. The kernels
differ in what a phase does (digit count, K blocks, the recombination formula), which they pass
in as :class:`DigitKernel`'s callbacks; the launch, the GM tensors, the cube loop and the
output store are written here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npusim.engine.program import GMTensor, InstrPool, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.cube_emitter import CubeEmitter
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.program_stages import MixLaunch, cast_store
from npusim.ops.weight_quant_common import (
    ITEM,
    MsdFlags,
    WqbmmProgramTiling,
    WqbmmShape,
    cube_tiling_for_rows,
    kernel_meta,
    operand_tensors,
    strips_per_core,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

#: phase 1 / phase 2 of one AIV: (builder, AI Core index, AIV half, its AIC's strips, flags)
AivPhase = Callable[[ProgramBuilder, int, int, list[tuple[int, int]], MsdFlags], None]


@dataclass(frozen=True)
class DigitKernel:
    """What a digit-split kernel fixes: its names, digit rows and dtypes, its K blocks (offset,
    length) per strip, its stats workspace shape, the cube's epilogue, and its two AIV phases."""

    name: str  # the kernel's name in meta ("Msd")
    program_name: str  # the Kernel's name ("wqbmm_msd")
    rows: int  # digit rows: digits x M
    digit_dtype: str
    c_dtype: str  # the digit products in the workspace slots: int32, or fp16 (DEQF16)
    param_rows: int  # rows of the scale / offset parameters: groups, or 1
    stats_shape: tuple[int, ...]  # per AI Core
    k_blocks: list[tuple[int, int]]
    epilogue: Epilogue
    prepare: AivPhase
    recombine: AivPhase
    deq_scale: float | None = None  # the FixPipe DEQF16 scale of an fp16 product


def store_output(b: ProgramBuilder, s: WqbmmShape, acc: Region, out: Region, c0: int,
                 r0: int = 0) -> None:
    """CAST_ROUND the fp32 ``acc`` into ``out`` and store it at row ``r0``, column ``c0`` of y;
    the next tile's vector work waits for the store (V -> MTE3 2, MTE3 -> V 2)."""
    cast_store(b, out, acc, "y", r0, c0, s.n, 2)
    b.sync("MTE3", "V", 2)


def digit_cast(b: ProgramBuilder, src: Region, half: Region, digit: Region) -> None:
    """An integral fp32 digit (already CAST_ROUNDed) -> half (exact) -> the int8 / int4 digit
    (saturating), the two casts the kernels use (there is no direct fp32 -> int8 cast)."""
    b.cast(half, src, round_mode="rint", name="Cast digit fp32->half")
    b.cast(digit, half, round_mode="rint", name=f"Cast digit half->{digit.dtype}")


def digit_split(b: ProgramBuilder, norm: Region, t: Region, rounded: Region, half: Region,
                digits: list[Region], f1: float, f2: float) -> None:
    """The MSD digit recurrence on the normalised x ``norm``: ``t = norm f1``, digit ``i`` is
    ``ROUND(t)`` (fp32 in ``rounded``, then through ``half`` into ``digits[i]``), then
    ``t = (t - digit) f2`` for the next one."""
    b.vop(VecOp.MULS, t, (norm,), scalar=f1, name="Muls f1")
    for d, digit in enumerate(digits):
        if d:
            b.vop(VecOp.SUB, t, (t, rounded), name="Sub digit")
            b.vop(VecOp.MULS, t, (t,), scalar=f2, name="Muls f2")
        b.cast(rounded, t, round_mode="round", name=f"Cast ROUND digit {d}")
        digit_cast(b, rounded, half, digit)


def build_digit_kernel(soc: SocDescriptor, s: WqbmmShape, t: WqbmmProgramTiling, dk: DigitKernel,
                       data: dict[str, Any] | None) -> Kernel:
    """The kernel's program: per AI Core the AIC's digit x weight blocks into the slot ring,
    then its two AIVs' phases; with ``data`` (x, the stored weight, parameters, bias) a
    functional run replays the values."""
    d = data or {}
    rows, cores_n = dk.rows, t.cube_cores
    d_isz, c_isz = ITEM[dk.digit_dtype], ITEM[dk.c_dtype]
    gm = operand_tensors(s, d, {
        "digits": GMTensor("digits", (cores_n, rows, s.k), dk.digit_dtype, role="workspace"),
        "stats": GMTensor("stats", (cores_n, *dk.stats_shape), "float32", role="workspace"),
        "c": GMTensor("c", (cores_n * t.slots, rows, t.strip_n), dk.c_dtype, role="workspace"),
    }, param_rows=dk.param_rows)
    w_mat = GmMatrix("w", s.w_dtype, math.ceil((s.k if s.trans_w else s.n) * ITEM[s.w_dtype]),
                     transposed=s.trans_w)
    per_core = strips_per_core(s.n, t)
    cube_t = cube_tiling_for_rows(t, rows)
    launch = MixLaunch(soc, InstrPool())  # cores repeat instructions (issue 14)
    fl = MsdFlags.of(soc, t.slots)
    for ci in range(cores_n):
        em = CubeEmitter(launch.aic(ci), soc, cube_t, s.w_dtype,
                         functional=data is not None, cube_model="", with_bias=False)
        if dk.deq_scale is not None:
            em.deq_scale = dk.deq_scale
        dig = GmMatrix("digits", dk.digit_dtype, math.ceil(s.k * d_isz),
                       offset=math.ceil(ci * rows * s.k * d_isz))
        fl.digits.wait(em.bld, "MTE2")
        slot_i = 0
        for n0, n1 in per_core[ci]:
            for k0, kl in dk.k_blocks:
                slot = ci * t.slots + slot_i % t.slots
                fl.c.fill(em.bld, slot_i, "FIX")
                out = GmMatrix("c", dk.c_dtype, math.ceil(t.strip_n * c_isz),
                               offset=math.ceil(slot * rows * t.strip_n * c_isz))
                em.block(dig, w_mat, out, dk.epilogue, 0, rows, n0, n1, kl, k_offset=k0,
                         out_col_offset=-n0)
                fl.c.publish(em.bld, "FIX")
                slot_i += 1
        for half in range(2):
            b = launch.aiv(2 * ci + half)
            mark = b.used_bytes("UB")
            dk.prepare(b, ci, half, per_core[ci], fl)
            b.release("UB", mark)  # the recombination phase reuses the UB space
            dk.recombine(b, ci, half, per_core[ci], fl)
    meta = kernel_meta(s, dk.name, t)
    meta["cross_core_flags"] = fl.flags.table()
    return Kernel(dk.program_name, gm, launch.cores, meta)
