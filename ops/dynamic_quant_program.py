"""Per-token dynamic quantisation, int4 output: the timing-only AIV program of rows E1a-E1h.

It exists to predict calibration rows E1a-E1h (910B4, fp16 x of (rows, 512), int4 out), which
measure this kernel; group_quant was only a proxy for them. The program is the kernel's structure
as the public descriptions give it, not CANN code:

- rows are split over ``min(rows, AIVs)`` cores (the first ``rows % cores`` take one more);
- a UB pass holds ``rows_per_pass`` rows of an ``h_chunk``-wide column chunk; x, the int4 output
  and the scale are ping-pong buffered so MTE2 / V / MTE3 overlap; the fp32 work tiles are used
  by V alone and are single;
- H <= h_chunk (the E rows): one pass per row block computes the max and quantises. Larger H
  takes two sweeps over the chunks: the first finds each row's max (chunk maxima merged with a
  Max), the second reloads the chunks and quantises;
- vector steps per chunk: Cast fp16 -> fp32, Abs, WholeReduceMax (64 fp32 per repeat -> one
  value) and, for rows wider than 64, a second WholeReduceMax over the partial maxima (one repeat
  per row); per row block Muls 1/7 (scale = max / 7, int4's largest magnitude), Div (1 / scale),
  Brcb (each row's reciprocal to a 32 B block); then Mul (x * reciprocal), Cast fp32 -> fp16
  (RINT), Cast fp16 -> int4 (RINT, saturating); MTE3 stores the int4 rows and the fp32 scales.

Costs are the descriptor's vector classes (``reduce`` = 7 cycles per repeat for WholeReduceMax)
and DMA curves; nothing here is fitted to the E rows. This program (``dst_type`` None) is kept
for the E rows, timing only: its chain is an earlier structural guess, not the public kernel's.
``dst_type='int8'`` / ``'int4'`` selects :mod:`npusim.ops.dynamic_quant_pertoken`, the typed
program with the public A2 kernel's chain, whose instructions give npu_dynamic_quant's bits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator
from npusim.ops.group_quant_program import (
    RowChunkTiling,
    default_row_chunk_tiling,
    refuse_off_a2_a3,
    validate_row_chunk_tiling,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan
    from npusim.validate import Measurement, Prediction

INT4_MAX = 7
REDUCE_ELEMS = 64  # fp32 elements one WholeReduceMax repeat folds into one value

#: cores, H chunk width (multiple of 64), rows per UB pass, ping-pong: group_quant's tiling
DynamicQuantTiling = RowChunkTiling


def default_dynamic_quant_tiling(soc: SocDescriptor, rows: int, h: int) -> DynamicQuantTiling:
    """group_quant's rule (H chunks up to 8192, a 32 KiB fp32 work tile per pass)."""
    return default_row_chunk_tiling(soc, rows, h, "dynamic_quant", _ub_bytes)


def _ub_bytes(t: DynamicQuantTiling) -> int:
    nbuf = 2 if t.double_buffer else 1
    tile = t.rows_per_pass * t.h_chunk
    rows8 = math.ceil(t.rows_per_pass / 8) * 8
    single = tile * 4 * 2 + rows8 * (math.ceil(t.h_chunk / REDUCE_ELEMS) + 8 + 4) * 4
    return nbuf * (tile * 2 + tile // 2 + rows8 * 4) + single


def validate_dynamic_quant_tiling(t: DynamicQuantTiling, soc: SocDescriptor, rows: int,
                                  h: int) -> None:
    validate_row_chunk_tiling(t, soc, rows, _ub_bytes, "dynamic_quant")


def build_dynamic_quant(soc: SocDescriptor, rows: int, h: int, x_dtype: str,
                        tiling: DynamicQuantTiling) -> Kernel:
    """The timing kernel for x (rows, h) -> int4 y (rows, h / 8 int32 words), fp32 scale (rows,)."""
    validate_dynamic_quant_tiling(tiling, soc, rows, h)
    gm = {"x": GMTensor("x", (rows, h), x_dtype, None, "input"),
          "y": GMTensor("y", (rows, h // 8), "int32", None, "output"),
          "scale": GMTensor("scale", (rows,), "float32", None, "output")}
    desc = soc.core("aiv")
    cores = []
    for c, (r0, r1) in enumerate(core_row_ranges(rows, tiling.cores)):
        prog = CoreProgram(c, "aiv")
        cores.append(prog)
        _CoreWriter(ProgramBuilder(prog, desc), tiling, h, x_dtype).emit(r0, r1)
    meta = {"op": "dynamic_quant", "rows": rows, "h": h, "out": "int4", "timing_only": True}
    return Kernel("dynamic_quant", gm, cores, meta)


def core_row_ranges(rows: int, cores: int) -> list[tuple[int, int]]:
    """Rows split over ``cores`` AIVs as evenly as whole rows allow (the first ``rows % cores``
    cores take one more): (r0, r1) per core, core index ascending."""
    base, extra = divmod(rows, cores)
    starts = [c * base + min(c, extra) for c in range(cores)]
    return [(r0, r0 + base + (1 if c < extra else 0)) for c, r0 in enumerate(starts)]


class RowStream:
    """Ping-pong state shared by the dynamic-quant programs: the x / y / scale buffers (event
    ids 0/1) and the fp32 work tile, allocated first in this order; x loads and output stores
    counted for the ping-pong waits."""

    def __init__(self, b: ProgramBuilder, t: RowChunkTiling, h: int, x_dtype: str,
                 y_dtype: str) -> None:
        self.b, self.h, self.x_dtype = b, h, x_dtype
        self.nbuf = 2 if t.double_buffer else 1
        self.rpp, hc = t.rows_per_pass, t.h_chunk
        self.tile, self.rows8 = self.rpp * hc, math.ceil(self.rpp / 8) * 8
        self.chunks = [(h0, min(hc, h - h0)) for h0 in range(0, h, hc)]
        self.xb = [b.alloc("UB", (self.tile,), x_dtype, f"x{i}") for i in range(self.nbuf)]
        self.yb = [b.alloc("UB", (self.tile,), y_dtype, f"y{i}") for i in range(self.nbuf)]
        self.sb = [b.alloc("UB", (self.rows8,), "float32", f"scale{i}")
                   for i in range(self.nbuf)]
        self.work = b.alloc("UB", (self.tile,), "float32", "x_fp32")
        self.loads = self.stores = 0

    def load(self, p0: int, pr: int, h0: int, hw: int) -> Region:
        """x rows [p0, p0 + pr), columns [h0, h0 + hw) GM -> the next x buffer."""
        b, i = self.b, self.loads % self.nbuf
        if self.loads >= self.nbuf:
            b.wait_flag("V", "MTE2", i)
        xr = Region("UB", self.xb[i].offset, (pr, hw), self.x_dtype)
        b.dma(Region("GM", (p0 * self.h + h0) * 2, (pr, hw), self.x_dtype, "x", self.h * 2), xr,
              name="x GM->UB")
        b.sync("MTE2", "V", i)
        self.loads += 1
        return xr

    def drain(self) -> None:
        """Wait for the last loads' and stores' flags (nothing left in flight)."""
        b, nbuf = self.b, self.nbuf
        for t in range(max(0, self.loads - nbuf), self.loads):
            b.wait_flag("V", "MTE2", t % nbuf)
        for t in range(max(0, self.stores - nbuf), self.stores):
            b.wait_flag("MTE3", "V", t % nbuf)


class _CoreWriter(RowStream):
    """Emits one core's instruction stream; counts x loads and output stores for ping-pong."""

    def __init__(self, b: ProgramBuilder, t: DynamicQuantTiling, h: int, x_dtype: str) -> None:
        super().__init__(b, t, h, x_dtype, "int4")
        tile, rows8, hc = self.tile, self.rows8, t.h_chunk
        self.absb = b.alloc("UB", (tile,), "float32", "abs")
        self.part = b.alloc("UB", (rows8 * math.ceil(hc / REDUCE_ELEMS),), "float32", "partial")
        self.rmax = b.alloc("UB", (rows8,), "float32", "row_max")
        self.cmax = b.alloc("UB", (rows8,), "float32", "chunk_max")
        self.brcb = b.alloc("UB", (rows8 * 8,), "float32", "recip_blocks")

    def release_x(self) -> None:
        self.b.set_flag("V", "MTE2", (self.loads - 1) % self.nbuf)

    def row_max(self, xr: Region, pr: int, hw: int, dst: Region) -> Region:
        """Cast, Abs and the max reductions of one chunk; returns the region of the maxima."""
        b, n = self.b, pr * hw
        f = Region("UB", self.work.offset, (n,), "float32")
        a = Region("UB", self.absb.offset, (n,), "float32")
        b.vec("Cast fp16->fp32", "convert", f, (xr,), elements=n, dtype=self.x_dtype)
        b.vec("Abs", "unary", a, (f,), elements=n, dtype="float32")
        pm = Region("UB", self.part.offset, (pr * math.ceil(hw / REDUCE_ELEMS),), "float32")
        b.vec("WholeReduceMax (64 -> 1)", "reduce", pm, (a,), elements=n, dtype="float32")
        if hw <= REDUCE_ELEMS:
            return pm
        b.vec("WholeReduceMax (row partials)", "reduce", dst, (pm,),  # one repeat per row
              elements=pr * REDUCE_ELEMS, dtype="float32")
        return dst

    def emit(self, r0: int, r1: int) -> None:
        b, nbuf, h = self.b, self.nbuf, self.h
        two_sweeps = len(self.chunks) > 1
        for p0 in range(r0, r1, self.rpp):
            pr = min(self.rpp, r1 - p0)
            rm = Region("UB", self.rmax.offset, (pr,), "float32")
            if two_sweeps:  # sweep 1: each row's max over all chunks
                for k, (h0, hw) in enumerate(self.chunks):
                    xr = self.load(p0, pr, h0, hw)
                    cm = Region("UB", self.cmax.offset, (pr,), "float32")
                    got = self.row_max(xr, pr, hw, rm if k == 0 else cm)
                    self.release_x()
                    if k:
                        b.vec("Max (merge chunk maxima)", "binary", rm, (rm, got), elements=pr,
                              dtype="float32")
            j = self.stores % nbuf
            if self.stores >= nbuf:
                b.wait_flag("MTE3", "V", j)
            sr = Region("UB", self.sb[j].offset, (pr,), "float32")
            recip = Region("UB", self.cmax.offset, (pr,), "float32")
            bb = Region("UB", self.brcb.offset, (pr * 8,), "float32")
            for k, (h0, hw) in enumerate(self.chunks):
                n = pr * hw
                xr = self.load(p0, pr, h0, hw)
                f = Region("UB", self.work.offset, (n,), "float32")
                if two_sweeps:
                    b.vec("Cast fp16->fp32", "convert", f, (xr,), elements=n, dtype=self.x_dtype)
                else:
                    rm = self.row_max(xr, pr, hw, rm)
                self.release_x()
                if k == 0:
                    b.vec(f"Muls 1/{INT4_MAX} (scale)", "unary", sr, (rm,), elements=pr,
                          dtype="float32")
                    b.vec("Div 1/scale", "divide", recip, (sr,), elements=pr, dtype="float32")
                    b.vec("Brcb reciprocal", "dup", bb, (recip,), elements=pr * 8,
                          dtype="float32")
                b.vec("Mul x * 1/scale", "binary", f, (f, bb), elements=n, dtype="float32")
                hh = Region("UB", self.absb.offset, (n,), "float16")
                b.vec("Cast fp32->fp16 RINT", "convert", hh, (f,), elements=n, dtype="float32")
                yr = Region("UB", self.yb[j].offset, (pr, hw // 8), "int32")
                b.vec("Cast fp16->int4 RINT", "convert", yr, (hh,), elements=n, dtype="float16")
                b.sync("V", "MTE3", j)
                b.dma(yr, Region("GM", (p0 * (h // 8) + h0 // 8) * 4, (pr, hw // 8), "int32",
                                 "y", (h // 8) * 4), name="y int4 UB->GM")
                if k < len(self.chunks) - 1:  # the next chunk's int4 output reuses buffer j
                    b.set_flag("MTE3", "V", j)
                    b.wait_flag("MTE3", "V", j)
            b.dma(sr, Region("GM", p0 * 4, (pr,), "float32", "scale"), name="scale UB->GM")
            b.set_flag("MTE3", "V", j)
            self.stores += 1
        self.drain()


def _args(x: Any, dst_type: Any = None) -> tuple[int, int, str]:
    from npusim.spec import is_spec, require_nd, shape_dtype

    require_nd("dynamic_quant", x=x)
    if dst_type is None and not is_spec(x):
        raise NotImplementedError(
            "dynamic_quant: without dst_type the program is the timing-only E1-row kernel; pass "
            "dst_type='int8' or 'int4' for the typed per-token program with output bits, or x "
            "as npusim.spec.spec(shape, dtype)")
    shape, dt = shape_dtype(x)
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f"x: shape {shape} must be 2-D (tokens, H), non-empty")
    if dt not in ("float16", "bfloat16"):
        raise TypeError(f"x: dtype {dt} must be float16 or bfloat16")
    if dst_type != "int8" and shape[1] % 8:
        raise ValueError(f"x: last dim {shape[1]} must be a multiple of 8 for int4 output")
    return int(shape[0]), int(shape[1]), dt


def _dst(dst_type: Any) -> str | None:
    if dst_type is None or dst_type in ("int8", "int4"):
        return cast(str | None, dst_type)
    raise ValueError(f"dst_type: {dst_type!r} must be None (the E1-row timing kernel), 'int8' "
                     "or 'int4'")


def plan_dynamic_quant(soc: SocDescriptor, tiling: Any = None, *, x: Any, dst_type: Any = None,
                       smooth_scales: Any = None, group_index: Any = None,
                       asymmetric: bool = False) -> Plan:
    """Runner entry for ``dynamic_quant``. ``dst_type`` None: the E1-row int4 program (timing
    only, cycles of the calibration rows); 'int8' / 'int4': the typed per-token program of
    :mod:`npusim.ops.dynamic_quant_pertoken` (output bits when x is an array); with
    ``asymmetric`` the asymmetric program of :mod:`npusim.ops.dynamic_quant_asymmetric`
    (outputs y, scale, offset)."""
    from npusim.runner import Plan

    _refuse(soc, asymmetric)
    out, rows, h, dt, ends = _checked(x, dst_type, smooth_scales, group_index, asymmetric)
    if out is None:
        t = default_dynamic_quant_tiling(soc, rows, h) if tiling is None else tiling
        return Plan(build_dynamic_quant(soc, rows, h, dt, t),
                    "dynamic_quant per-token int4 (AIV)", t, False,
                    notes=["timing-only program: no functional outputs"])
    from npusim.ops.dynamic_quant_pertoken import build_pertoken, default_pertoken_tiling
    from npusim.spec import is_spec

    functional = not is_spec(x)
    t = (default_pertoken_tiling(soc, rows, h, smooth_scales is not None, asymmetric)
         if tiling is None else tiling)
    kern = build_pertoken(soc, rows, h, dt, out, t, x=np.asarray(x) if functional else None,
                          smooth=np.asarray(smooth_scales) if functional and
                          smooth_scales is not None else None,
                          has_smooth=smooth_scales is not None, group_index=ends,
                          asymmetric=asymmetric)
    if asymmetric:
        return Plan(kern, f"dynamic_quant per-token asymmetric {out} (AIV)", t, functional,
                    finish=lambda o: (o["y"], o["scale"], o["offset"]))
    return Plan(kern, f"dynamic_quant per-token {out} (AIV)", t, functional,
                finish=lambda o: (o["y"], o["scale"]))


def _checked(x: Any, dst_type: Any, smooth_scales: Any, group_index: Any,
             asymmetric: Any = False) -> tuple[str | None, int, int, str, np.ndarray | None]:
    """The call's rules; (dst dtype or None for the E1 program, rows, H, x dtype, group ends)."""
    from npusim.spec import shape_dtype

    if not isinstance(asymmetric, bool):
        raise TypeError(f"asymmetric: {asymmetric!r} must be a bool")
    out = _dst(dst_type)
    rows, h, dt = _args(x, out)
    if out is None:
        if smooth_scales is not None:
            raise ValueError("smooth_scales: needs dst_type='int8' or 'int4' (the typed program)")
        if asymmetric:
            raise ValueError("asymmetric: needs dst_type='int8' or 'int4' (the typed program)")
        return out, rows, h, dt, None
    ends = _group_ends(group_index, smooth_scales, rows)
    want = ((h,) if ends is None else (len(ends), h), dt)
    if smooth_scales is not None and shape_dtype(smooth_scales) != want:
        raise ValueError(f"smooth_scales: {shape_dtype(smooth_scales)} must be {want} (one "
                         "value per column of x (one row per group with group_index), x's "
                         "dtype)")
    return out, rows, h, dt, ends


def _group_ends(group_index: Any, smooth_scales: Any, rows: int) -> np.ndarray | None:
    """``group_index`` checked as torch_npu documents it: 1-D int32 cumulative end rows,
    non-decreasing, the last equal to the row count; only with ``smooth_scales``."""
    if group_index is None:
        return None
    if smooth_scales is None:
        raise ValueError("group_index: needs smooth_scales (one smooth row per group)")
    gi = np.asarray(group_index)
    if gi.ndim != 1 or gi.size == 0 or gi.dtype != np.int32:
        raise ValueError(f"group_index: must be a non-empty 1-D int32 array, got "
                         f"{gi.dtype} {gi.shape}")
    if np.any(np.diff(gi) < 0) or gi[0] < 0 or int(gi[-1]) != rows:
        raise ValueError(f"group_index: {gi.tolist()} must be non-decreasing, >= 0 and end at "
                         f"the row count {rows}")
    return gi


def cli_dynamic_quant(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run dynamic_quant``: --m tokens (default 4096), --k H (512); timing only."""
    from npusim.spec import spec

    if functional:
        raise SystemExit("dynamic_quant: timing-only program; run without --functional")
    return {"x": spec((ns.m or 4096, ns.k or 512), ns.dtype or "float16")}


def default_tiling_dynamic_quant(soc: SocDescriptor, **op_args: Any) -> DynamicQuantTiling:
    out = _dst(op_args.get("dst_type"))
    rows, h, _ = _args(op_args["x"], out if out else None)
    if out is not None:
        from npusim.ops.dynamic_quant_pertoken import default_pertoken_tiling

        return default_pertoken_tiling(soc, rows, h, op_args.get("smooth_scales") is not None,
                                       asymmetric=bool(op_args.get("asymmetric", False)))
    return default_dynamic_quant_tiling(soc, rows, h)


def calibration_prediction(row: Measurement) -> Prediction | None:
    """Rows E1*: per-token int4 dynamic quant of fp16 (m, k) on the row's SoC, default tiling."""
    from npusim.engine.sim import run_kernel
    from npusim.runner import resolve_soc
    from npusim.validate import Prediction, soc_name_of

    if not row.id.startswith("E1"):
        return None
    soc = resolve_soc(soc_name_of(row))
    rows, h = row.size("m"), row.size("k")
    t = default_dynamic_quant_tiling(soc, rows, h)
    res = run_kernel(build_dynamic_quant(soc, rows, h, "float16", t), soc, check_races=False)
    from npusim.ops.group_quant_program import proxy_prediction

    proxy = proxy_prediction(row)
    if proxy is None:  # it predicts every E1 row, as this function does
        raise ValueError(f"row {row.id}: the group_quant proxy does not predict it")
    gq = proxy.predicted_us
    err = 100.0 * (gq - row.measured_us) / row.measured_us
    return Prediction(res.microseconds, {}, note=f"dynamic_quant program ({t.cores} AIV, "
                                                 f"{t.rows_per_pass} rows/pass); group_quant on "
                                                 f"the same rows {gq:.2f} us ({err:+.1f} %)")


def _validate(soc: SocDescriptor, *, x: Any, dst_type: Any = None, smooth_scales: Any = None,
              group_index: Any = None, asymmetric: bool = False) -> None:
    _refuse(soc, asymmetric)
    _checked(x, dst_type, smooth_scales, group_index, asymmetric)


def _refuse(soc: SocDescriptor, asymmetric: Any) -> None:
    """The API's refusal off A2 / A3 (torch_npu docs: Atlas A2 / A3 only)."""
    refuse_off_a2_a3(soc, "npu_dynamic_quant_asymmetric" if asymmetric is True else
                     "npu_dynamic_quant", "torch_npu docs")


OPERATOR = Operator(
    name="dynamic_quant",
    plan=plan_dynamic_quant,
    validate=_validate,
    default_tiling=default_tiling_dynamic_quant,
    example_inputs=cli_dynamic_quant,
    cli=CliSpec(
        "per-token dynamic quant to int4 (timing only; rows E1a-E1h)",
        {"--m": "tokens (default 4096)", "--k": "row length H (default 512)",
         "--dtype": "dtype of x (default float16)"}),
    cann_op_type="DynamicQuant",
    quantisation=lambda a: "per-token int4 out",
)
