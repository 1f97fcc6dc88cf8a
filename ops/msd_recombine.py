"""The recombination stage of the per-block digit kernels MsdGroup and MsdSplitK (ops-semantics
5.5): on an AIV, for each K group (MsdGroup) or K block (MsdSplitK) ``b`` of its columns,

    acc += rsum_b * (scale_b * offset_b)              (with an offset)
    acc += (sum_i C_i divF_i) * scale_b * amax_b

with ``C_i`` the block's digit-``i`` products (int32, or fp16 from FixPipe DEQF16 for the
inner_precise 1 int4 chain) and ``divF_i`` the numerics model's ``recombination_factors`` of the
weight dtype's ``DIGIT_FACTORS``; the numerics models (``numerics_msd.msd_group`` /
``msd_split_k``) fix the order of every rounding. The kernels'
loads, flags and loops stay with them; this module emits the vector instructions, named once.

The two kernels start their sums differently, which changes instruction counts (so cycles),
not values (an fp32 ``0 + x`` is ``x`` but for a zero's sign; MulAddDst rounds its product
before the add, as a Mul then an Add do); each kernel's numerics model follows its own form:

- ``fused`` (MsdSplitK): the accumulator and an int32 digit sum start from Duplicate 0 and each
  term is one Axpy / MulAddDst;
- not fused (MsdGroup): the first term writes its sum (digit 0 scaled in place by a Muls, the
  first offset term a Mul), and the digit term is multiplied by amax in place, then copied into
  (first) or added to the accumulator.

The Msd kernel's recombination is another formula (``((C1/E1 + C2/E2) amax + rsum offset)
scale``, numerics_msd.msd_multicore) and is not built from this stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from npusim.engine.errors import ProgramError
from npusim.engine.program import ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.weight_quant_batchmatmul.numerics_msd import (
    DIGIT_FACTORS,
    recombination_factors,
)


@dataclass(frozen=True)
class MsdRecombine:
    """The recombination of one call: its ``div`` scalars, whether the products are the fp16
    chain's (``fp16``) and the kernel's way of starting a sum (``fused``, see the module)."""

    div: tuple[float, ...]
    fp16: bool
    fused: bool

    @classmethod
    def of(cls, w_dtype: str, high_perf: bool, *, fused: bool) -> MsdRecombine:
        f1, f2, _ = DIGIT_FACTORS[w_dtype]
        return cls(tuple(float(v) for v in recombination_factors(f1, f2, high_perf)), high_perf,
                   fused)

    def params(self, b: ProgramBuilder, scale: tuple[Region, Region],
               offset: tuple[Region, Region] | None = None) -> None:
        """The (fp32, raw) scale (and offset) rows to fp32; with an offset, scale * offset in
        place of its fp32 rows."""
        b.cast(*scale, name="Cast scale->fp32")
        if offset is not None:
            b.cast(*offset, name="Cast offset->fp32")
            b.vop(VecOp.MUL, offset[0], (scale[0], offset[0]), name="Mul scale*offset")

    def digit_sum(self, b: ProgramBuilder, c: list[Region], cc: Region,
                  before: Callable[[int], None] | None = None) -> None:
        """``cc = sum_i C_i divF_i`` over the products ``c`` in UB. The fp16 chain: ``C_0 +=
        C_i half(divF_i)``, then fp32 times divF_0. int32: each ``C_i`` cast to fp32 in place
        and added by an Axpy (from Duplicate 0 when fused, else digit 0 is ``cc`` itself,
        scaled by a Muls); ``before(i)`` is called before ``C_i`` is read (a kernel that loads
        the digits one by one)."""
        if self.fp16:
            if before is not None:
                raise ProgramError("MsdRecombine.digit_sum: the fp16 chain reads its products "
                                   "together (no per-digit hook)")
            for d in range(1, len(c)):
                b.vop(VecOp.AXPY, c[0], (c[d],), scalar=self.div[d], name="Axpy fp16 digit")
            b.cast(cc, c[0], name="Cast fp16->fp32")
            b.vop(VecOp.MULS, cc, (cc,), scalar=self.div[0], name="Muls divF0")
            return
        if self.fused:
            b.vop(VecOp.DUPLICATE, cc, scalar=0.0, name="Duplicate 0 cc")
        for d, cd in enumerate(c):
            if before is not None:
                before(d)
            f = cd.as_dtype("float32")
            b.cast(f, cd, name=f"Cast C{d}->fp32")
            if d or self.fused:
                b.vop(VecOp.AXPY, cc, (f,), scalar=self.div[d], name="Axpy digit")
            elif f != cc:
                raise ProgramError("MsdRecombine.digit_sum: an unfused sum starts in place: "
                                   f"digit 0's products {f} are not cc {cc}")
            else:
                b.vop(VecOp.MULS, cc, (cc,), scalar=self.div[0], name="Muls divF0")

    def accumulator(self, b: ProgramBuilder, acc: Region) -> Accumulator:
        """The fp32 accumulator ``acc`` of one column range (zeroed here when fused)."""
        out = Accumulator(self, acc)
        if self.fused:
            b.vop(VecOp.DUPLICATE, acc, scalar=0.0, name="Duplicate 0 acc")
            out.written = True
        return out


@dataclass
class Accumulator:
    """An fp32 UB accumulator of the recombination: the first term writes it, later ones add."""

    rc: MsdRecombine
    acc: Region
    written: bool = False

    def add_offset(self, b: ProgramBuilder, rsum: Region, scale_offset: Region) -> None:
        """``acc += rsum * (scale * offset)`` (rsum one value per row)."""
        if self.written:
            b.vop(VecOp.MUL_ADD_DST, self.acc, (rsum, scale_offset),
                  name="MulAddDst rsum*scale*offset")
        else:
            b.vop(VecOp.MUL, self.acc, (rsum, scale_offset), name="Mul rsum*scale*offset")
        self.written = True

    def add_digits(self, b: ProgramBuilder, cc: Region, scale: Region, amax: Region) -> None:
        """``acc += cc * scale * amax`` (cc is scaled in place; amax one value per row)."""
        b.vop(VecOp.MUL, cc, (cc, scale), name="Mul scale")
        if self.rc.fused:  # zeroed by MsdRecombine.accumulator
            b.vop(VecOp.MUL_ADD_DST, self.acc, (cc, amax), name="MulAddDst cc*amax")
        else:
            b.vop(VecOp.MUL, cc, (cc, amax), name="Mul amax")
            if self.written:
                b.vop(VecOp.ADD, self.acc, (self.acc, cc), name="Add to acc")
            else:
                b.vop(VecOp.COPY, self.acc, (cc,), name="Copy to acc")
        self.written = True
