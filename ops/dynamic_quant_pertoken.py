"""npu_dynamic_quant (per-token, symmetric) as a typed AIV program: timing and output bits.

The vector chain is the public A2 DynamicQuant kernel's (CANN open-source ``dynamic_quant.h``,
read, not copied), every step an instruction of the semantics table:

- Cast x (fp16 / bf16) -> fp32 (exact; the kernel's CAST_NONE, written RINT); with
  ``smooth_scales`` a Mul by the fp32-cast smooth row;
- Abs, ReduceMax per row (exact in any order);
- Div: ``r = DTYPE_MAX / rowmax`` (fp32, RNE; DTYPE_MAX = 127 for int8, 7 for int4), and the
  scale output ``1 / r`` (the kernel's scalar division, IEEE fp32);
- Mul x by ``r`` (fp32, RNE; the kernel's Muls by the per-row scalar), Cast fp32 -> int32 RINT,
  int32 -> fp16, fp16 -> int8 / int4 (both exact: the values are integers of at most 128).

Structure (the ``RowChunkTiling`` of group_quant): rows over ``cores`` AIVs, ``rows_per_pass``
rows per UB pass, ping-pong x / y / scale buffers. A row wider than ``h_chunk`` takes two sweeps
(each chunk's ReduceMax merged with a Max, then the chunks reloaded and quantised) - declared:
the public kernel has a separate large-shape variant whose order cannot change a value (max is
exact; every other step is per element). A zero row gives ``r = inf``, scale 0 and ``0 * inf =
NaN`` cast to 0 (the semantics table's NaN -> 0 Cast rule, declared).

MoE groups (``group_index``, cumulative end rows): row r uses smooth row g with
``group_index[g-1] <= r < group_index[g]``; each core walks its rows group by group. The smooth
row (its H chunk, for wide rows) is loaded into UB when a chunk needs one other than the one held
(declared structure: the public MoE and large-shape variants were not read; the per-element
values cannot depend on it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.dynamic_quant_program import RowStream, core_row_ranges
from npusim.ops.group_quant_program import (
    RowChunkTiling,
    default_row_chunk_tiling,
    validate_row_chunk_tiling,
)
from npusim.ops.program_stages import allocated

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

DTYPE_MAX = {"int8": 127.0, "int4": 7.0}


def ub_bytes(t: RowChunkTiling, smooth: bool = False, asymmetric: bool = False) -> int:
    """UB working set: ping-pong x (2 B), y (1 B) and scale tiles; single fp32 work tiles;
    asymmetric: ping-pong offset tiles and four more per-row slots."""
    nbuf = 2 if t.double_buffer else 1
    tile = t.rows_per_pass * t.h_chunk
    rows8 = math.ceil(t.rows_per_pass / 8) * 8
    single = tile * 4 * 2 + rows8 * 4 * 5 + (t.h_chunk * 6 if smooth else 0)
    extra = rows8 * 4 * (4 + nbuf) if asymmetric else 0
    return nbuf * (tile * 2 + tile + rows8 * 4) + single + extra


def default_pertoken_tiling(soc: SocDescriptor, rows: int, h: int, smooth: bool = False,
                            asymmetric: bool = False) -> RowChunkTiling:
    return default_row_chunk_tiling(soc, rows, h, "dynamic_quant",
                                    lambda t: ub_bytes(t, smooth, asymmetric))


def build_pertoken(soc: SocDescriptor, rows: int, h: int, x_dtype: str, out: str,
                   tiling: RowChunkTiling,
                   *, x: np.ndarray | None = None, smooth: np.ndarray | None = None,
                   has_smooth: bool = False, group_index: np.ndarray | None = None,
                   asymmetric: bool = False) -> Kernel:
    """x (rows, h) -> y int8 (rows, h) or int4 packed in int32 (rows, h / 8), fp32 scale
    (and, ``asymmetric``, fp32 offset: :mod:`npusim.ops.dynamic_quant_asymmetric`).
    ``smooth`` is (h,), or (groups, h) with ``group_index`` (validated cumulative end rows)."""
    has_smooth = has_smooth or smooth is not None
    ends = None if group_index is None else [int(e) for e in np.asarray(group_index).reshape(-1)]
    validate_row_chunk_tiling(tiling, soc, rows,
                              lambda t: ub_bytes(t, has_smooth, asymmetric), "dynamic_quant")
    out_cols, out_dt = (h // 8, "int32") if out == "int4" else (h, "int8")
    gm = {"x": GMTensor("x", (rows, h), x_dtype, x, "input"),
          "y": GMTensor("y", (rows, out_cols), out_dt, None, "output"),
          "scale": GMTensor("scale", (rows,), "float32", None, "output")}
    writer: type[_Writer] = _Writer
    if asymmetric:
        from npusim.ops.dynamic_quant_asymmetric import AsymmetricWriter

        gm["offset"] = GMTensor("offset", (rows,), "float32", None, "output")
        writer = AsymmetricWriter
    if has_smooth:
        shape = (h,) if ends is None else (len(ends), h)
        gm["smooth"] = GMTensor("smooth", shape, x_dtype, smooth, "input")
    desc = soc.core("aiv")
    cores = []
    for c, (r0, r1) in enumerate(core_row_ranges(rows, tiling.cores)):
        prog = CoreProgram(c, "aiv")
        cores.append(prog)
        writer(ProgramBuilder(prog, desc), tiling, h, x_dtype, out, has_smooth).emit(
            _segments(r0, r1, ends if has_smooth else None))
    meta = {"op": "dynamic_quant", "rows": rows, "h": h, "out": out, "smooth": has_smooth,
            "groups": None if ends is None else len(ends)}
    if asymmetric:
        meta["asymmetric"] = True
    return Kernel("dynamic_quant", gm, cores, meta)


def _segments(r0: int, r1: int, ends: list[int] | None) -> list[tuple[int, int, int | None]]:
    """(first row, end row, smooth row) runs of a core's rows [r0, r1): one run with smooth row
    0 (or none) without groups, else one per non-empty group."""
    if ends is None:
        return [(r0, r1, 0)] if r1 > r0 else []
    runs: list[tuple[int, int, int | None]] = []
    start = 0
    for g, end in enumerate(ends):
        a, b = max(r0, start), min(r1, end)
        if a < b:
            runs.append((a, b, g))
        start = max(start, end)
    return runs


class _Writer(RowStream):
    """One core's instruction stream (event ids: 0/1 ping-pong, 2 the smooth row)."""

    def __init__(self, b: ProgramBuilder, t: RowChunkTiling, h: int, x_dtype: str, out: str,
                 smooth: bool) -> None:
        super().__init__(b, t, h, x_dtype, "int8")
        self.out = out
        tile, rows8, hc = self.tile, self.rows8, t.h_chunk
        self.tmp = b.alloc("UB", (tile,), "float32", "abs_int32_half")
        self.rmax = b.alloc("UB", (rows8,), "float32", "row_max")
        self.cmax = b.alloc("UB", (rows8,), "float32", "chunk_max")
        self.recip = b.alloc("UB", (rows8,), "float32", "dtype_max_over_max")
        self.cmaxv = b.alloc("UB", (rows8,), "float32", "dtype_max")
        self.ones = b.alloc("UB", (rows8,), "float32", "ones")
        self.smooth: Region | None = None
        self.smooth_at: tuple[int, int] | None = None  # (smooth row, h0) held in UB
        self.g = 0
        if smooth:
            self.smooth_raw = b.alloc("UB", (hc,), x_dtype, "smooth_raw")
            self.smooth = b.alloc("UB", (hc,), "float32", "smooth")

    def _to_fp32(self, xr: Region, pr: int, h0: int, hw: int) -> Region:
        """Cast (and smooth Mul) of a loaded chunk into the fp32 work tile; frees the x tile."""
        b = self.b
        f = Region("UB", self.work.offset, (pr, hw), "float32")
        b.cast(f, xr, round_mode="rint", name="Cast x->fp32")
        if self.smooth is not None:
            self._smooth_chunk(h0, hw)
            b.vop(VecOp.MUL, f, (f, Region("UB", self.smooth.offset, (hw,), "float32")),
                  name="Mul smooth_scales")
        b.set_flag("V", "MTE2", (self.loads - 1) % self.nbuf)
        return f

    def _row_max(self, f: Region, pr: int, hw: int, dst: Region) -> None:
        a = Region("UB", self.tmp.offset, (pr, hw), "float32")
        self.b.vop(VecOp.ABS, a, (f,), name="Abs")
        self.b.vop(VecOp.REDUCE_MAX, dst, (a,), name="ReduceMax per row")

    def _prologue(self) -> None:
        b = self.b
        b.vop(VecOp.DUPLICATE, self.cmaxv, scalar=DTYPE_MAX[self.out], name="Duplicate DTYPE_MAX")
        b.vop(VecOp.DUPLICATE, self.ones, scalar=1.0, name="Duplicate 1.0")

    def _smooth_chunk(self, h0: int, hw: int) -> None:
        """Columns [h0, h0 + hw) of smooth row ``self.g`` in UB as fp32, loaded unless held
        (event 2: V's reads of the previous one end before MTE2 overwrites it)."""
        b, h = self.b, self.h
        if self.smooth_at == (self.g, h0):
            return
        if self.smooth_at is not None:
            b.sync("V", "MTE2", 2)
        raw = Region("UB", self.smooth_raw.offset, (hw,), self.x_dtype)
        b.dma(Region("GM", (self.g * h + h0) * 2, (hw,), self.x_dtype, "smooth"), raw,
              name="smooth GM->UB")
        b.sync("MTE2", "V", 2)
        smooth = allocated(self.smooth, "smooth UB buffer")
        b.cast(Region("UB", smooth.offset, (hw,), "float32"), raw, round_mode="rint",
               name="Cast smooth->fp32")
        self.smooth_at = (self.g, h0)

    def _reduce(self, f: Region, pr: int, hw: int, first: bool) -> None:
        """This chunk's row statistic into ``rmax`` (merged with a Max after the first)."""
        rm = Region("UB", self.rmax.offset, (pr,), "float32")
        cm = Region("UB", self.cmax.offset, (pr,), "float32")
        self._row_max(f, pr, hw, rm if first else cm)
        if not first:
            self.b.vop(VecOp.MAX, rm, (rm, cm), name="Max (merge chunk maxima)")

    def _scales(self, pr: int, j: int) -> None:
        """Per-row factors: ``recip = DTYPE_MAX / max``, the scale output ``1 / recip``."""
        b = self.b
        rm = Region("UB", self.rmax.offset, (pr,), "float32")
        rc = Region("UB", self.recip.offset, (pr,), "float32")
        b.vop(VecOp.DIV, rc, (Region("UB", self.cmaxv.offset, (pr,), "float32"), rm),
              name="Div DTYPE_MAX / max")
        b.vop(VecOp.DIV, Region("UB", self.sb[j].offset, (pr,), "float32"),
              (Region("UB", self.ones.offset, (pr,), "float32"), rc),
              name="Div scale = 1 / (DTYPE_MAX / max)")

    def _scale_x(self, f: Region, pr: int) -> None:
        self.b.vop(VecOp.MUL, f, (f, Region("UB", self.recip.offset, (pr, 1), "float32")),
                   name="Mul x * DTYPE_MAX / max")

    def _store_stats(self, p0: int, pr: int, j: int) -> None:
        self.b.dma(Region("UB", self.sb[j].offset, (pr,), "float32"),
                   Region("GM", p0 * 4, (pr,), "float32", "scale"), name="scale UB->GM")

    def _quantise(self, f: Region, pr: int, hw: int, p0: int, h0: int, j: int) -> None:
        b, h = self.b, self.h
        self._scale_x(f, pr)
        ir = Region("UB", self.tmp.offset, (pr, hw), "int32")
        hr = Region("UB", self.tmp.offset, (pr, hw), "float16")
        b.cast(ir, f, round_mode="rint", name="Cast fp32->int32 RINT")
        b.cast(hr, ir, round_mode="round", name="Cast int32->fp16")
        qr = Region("UB", self.yb[j].offset, (pr, hw), self.out)
        b.cast(qr, hr, round_mode="trunc", name=f"Cast fp16->{self.out}")
        b.sync("V", "MTE3", j)
        if self.out == "int4":
            yr = Region("UB", self.yb[j].offset, (pr, hw // 8), "int32")
            dst = Region("GM", (p0 * (h // 8) + h0 // 8) * 4, (pr, hw // 8), "int32", "y",
                         (h // 8) * 4)
        else:
            yr = Region("UB", self.yb[j].offset, (pr, hw), "int8")
            dst = Region("GM", p0 * h + h0, (pr, hw), "int8", "y", h)
        b.dma(yr, dst, name="y UB->GM")

    def emit(self, runs: list[tuple[int, int, int | None]]) -> None:
        self._prologue()
        for r0, r1, g in runs:
            self.g = g or 0
            self._rows(r0, r1)
        self.drain()

    def _rows(self, r0: int, r1: int) -> None:
        b, nbuf = self.b, self.nbuf
        two_sweeps = len(self.chunks) > 1
        for p0 in range(r0, r1, self.rpp):
            pr = min(self.rpp, r1 - p0)
            if two_sweeps:
                for k, (h0, hw) in enumerate(self.chunks):
                    f = self._to_fp32(self.load(p0, pr, h0, hw), pr, h0, hw)
                    self._reduce(f, pr, hw, k == 0)
            j = self.stores % nbuf
            if self.stores >= nbuf:
                b.wait_flag("MTE3", "V", j)
            for k, (h0, hw) in enumerate(self.chunks):
                f = self._to_fp32(self.load(p0, pr, h0, hw), pr, h0, hw)
                if not two_sweeps:
                    self._reduce(f, pr, hw, True)
                if k == 0:
                    self._scales(pr, j)
                self._quantise(f, pr, hw, p0, h0, j)
                if k < len(self.chunks) - 1:  # the next chunk's output reuses buffer j
                    b.set_flag("MTE3", "V", j)
                    b.wait_flag("MTE3", "V", j)
            self._store_stats(p0, pr, j)
            b.set_flag("MTE3", "V", j)
            self.stores += 1

