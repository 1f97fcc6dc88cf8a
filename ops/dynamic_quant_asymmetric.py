"""npu_dynamic_quant_asymmetric (per-token) as a typed AIV program: timing and output bits.

The chain is the public A2 DynamicQuant kernel's asymmetric path (CANN open-source
``dynamic_quant.h`` ``ComputAsymmetric`` and ``dynamic_quant_base.h`` ``GetScaleAndOffset``,
read, not copied); the x load, smooth Mul, chunking, MoE groups, ping-pong and the final casts
are the symmetric program's (:mod:`npusim.ops.dynamic_quant_pertoken`):

- ReduceMax and ReduceMin per row of the fp32 (smoothed) x (exact in any order; a row wider
  than one chunk merges the chunks' results with Max / Min);
- ``scale = max((max - min) / RANGE, 1e-12)`` (RANGE = 255 for int8, 15 for int4),
  ``offset = DTYPE_OFFSET - max / scale`` (127 / 7) and ``back = 1 / scale``: the kernel's
  scalar float arithmetic, issued here as per-row vector Sub / Div / Maxs (declared: IEEE fp32,
  round to nearest even, as the symmetric program's scalar division);
- ``x * back`` (Muls), ``+ offset`` (Adds), Cast RINT to int32, int32 -> fp16, fp16 -> int8 /
  int4 (the symmetric program's casts). Outputs y, scale and offset (fp32 per row).
"""

from __future__ import annotations

import numpy as np

from npusim.engine.program import ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.dynamic_quant_pertoken import _Writer
from npusim.ops.group_quant_program import RowChunkTiling

RANGE = {"int8": 255.0, "int4": 15.0}
DTYPE_OFFSET = {"int8": 127.0, "int4": 7.0}
EPSILON = float(np.float32(1e-12))  # the kernel's lower bound of the scale


class AsymmetricWriter(_Writer):
    """One core's stream of the asymmetric program (the symmetric writer's, with min / max
    statistics, the scale / offset chain and a second per-row output)."""

    def __init__(self, b: ProgramBuilder, t: RowChunkTiling, h: int, x_dtype: str, out: str,
                 smooth: bool) -> None:
        super().__init__(b, t, h, x_dtype, out, smooth)
        rows8 = self.rows8
        self.rmin = b.alloc("UB", (rows8,), "float32", "row_min")
        self.cmin = b.alloc("UB", (rows8,), "float32", "chunk_min")
        self.diff = b.alloc("UB", (rows8,), "float32", "max_minus_min")
        self.offv = b.alloc("UB", (rows8,), "float32", "dtype_offset")
        self.ob = [b.alloc("UB", (rows8,), "float32", f"offset{i}") for i in range(self.nbuf)]

    def _prologue(self) -> None:
        b = self.b
        b.vop(VecOp.DUPLICATE, self.cmaxv, scalar=RANGE[self.out], name="Duplicate RANGE")
        b.vop(VecOp.DUPLICATE, self.offv, scalar=DTYPE_OFFSET[self.out],
              name="Duplicate DTYPE_OFFSET")
        b.vop(VecOp.DUPLICATE, self.ones, scalar=1.0, name="Duplicate 1.0")

    def _reduce(self, f: Region, pr: int, hw: int, first: bool) -> None:
        b = self.b
        for op, merge, total, part in ((VecOp.REDUCE_MAX, VecOp.MAX, self.rmax, self.cmax),
                                       (VecOp.REDUCE_MIN, VecOp.MIN, self.rmin, self.cmin)):
            t = Region("UB", total.offset, (pr,), "float32")
            c = Region("UB", part.offset, (pr,), "float32")
            b.vop(op, t if first else c, (f,), name=f"{op.value} per row")
            if not first:
                b.vop(merge, t, (t, c), name=f"{merge.value} (merge chunk results)")

    def _scales(self, pr: int, j: int) -> None:
        b = self.b

        def r(buf: Region) -> Region:
            return Region("UB", buf.offset, (pr,), "float32")

        sr, mx, d = r(self.sb[j]), r(self.rmax), r(self.diff)
        b.vop(VecOp.SUB, d, (mx, r(self.rmin)), name="Sub max - min")
        b.vop(VecOp.DIV, sr, (d, r(self.cmaxv)), name="Div (max - min) / RANGE")
        b.vop(VecOp.MAXS, sr, (sr,), scalar=EPSILON, name="Maxs scale, 1e-12")
        b.vop(VecOp.DIV, d, (mx, sr), name="Div max / scale")
        b.vop(VecOp.SUB, r(self.ob[j]), (r(self.offv), d), name="Sub offset = DTYPE_OFFSET - ..")
        b.vop(VecOp.DIV, r(self.recip), (r(self.ones), sr), name="Div back = 1 / scale")
        self.j = j

    def _scale_x(self, f: Region, pr: int) -> None:
        b = self.b
        b.vop(VecOp.MUL, f, (f, Region("UB", self.recip.offset, (pr, 1), "float32")),
              name="Muls x * back")
        b.vop(VecOp.ADD, f, (f, Region("UB", self.ob[self.j].offset, (pr, 1), "float32")),
              name="Adds x + offset")

    def _store_stats(self, p0: int, pr: int, j: int) -> None:
        super()._store_stats(p0, pr, j)
        self.b.dma(Region("UB", self.ob[j].offset, (pr,), "float32"),
                   Region("GM", p0 * 4, (pr,), "float32", "offset"), name="offset UB->GM")
