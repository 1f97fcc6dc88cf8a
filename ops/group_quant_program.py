"""npu_group_quant as a tiled program on the vector cores (ops-semantics 4.5).

Rows are split over ``min(S, cores)`` AIVs, the first ``S % cores`` taking one more row. Each core
walks its rows group by group; H is processed in chunks of at most 8192 columns (aligned up to
64); a UB pass holds ``rows_per_pass`` rows (32 KiB / 4 / chunk width as in the kernel). Per pass:
MTE2 copies x rows (and, once per group and chunk, the scale row), the vector unit runs
Cast(x -> fp32), Mul(scale), Adds(offset), Cast(-> int32, RINT), Cast(-> half), Cast(-> int8/int4),
and MTE3 writes the result. The result is independent of the tiling (element-wise op).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa import VecOp
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator
from npusim.ops.program_stages import VecInOut

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan
    from npusim.validate import Measurement, Prediction

PEER_H = 8192
UB_PASS_BYTES = 32768


@dataclass(frozen=True)
class RowChunkTiling:
    """How a per-row AIV op (group_quant, dynamic_quant) is tiled: rows over ``cores``, H in
    ``h_chunk``-wide chunks, ``rows_per_pass`` rows per UB pass, optional ping-pong buffers."""

    cores: int
    h_chunk: int
    rows_per_pass: int
    double_buffer: bool = True


GroupQuantTiling = RowChunkTiling


def refuse_off_a2_a3(soc: SocDescriptor, api: str, source: str) -> None:
    """The refusal of the torch_npu API (``npusim.torch_npu``) for a SoC without split AIV
    cores (the Atlas inference series), raised by ``simulate`` too: the same ValueError."""
    if soc.core_counts().get("aiv", 0) == 0:
        raise ValueError(f"soc: {api} is not supported on {soc.name}; it runs on Atlas A2 / A3 "
                         f"only ({source})")


def default_row_chunk_tiling(soc: SocDescriptor, rows: int, h: int, op: str,
                             ub_bytes: Callable[[RowChunkTiling], int]) -> RowChunkTiling:
    """The kernels' rule: every AIV (at most one per row), H chunks of up to PEER_H (a multiple
    of 64), an fp32 work tile of UB_PASS_BYTES per pass, halved until ``ub_bytes`` fits UB (the
    rows per pass first, then - one row still too wide - the H chunk)."""
    avail = soc.core_counts().get("aiv", 0)
    if avail == 0:
        raise NotImplementedError(
            f"{op} on {soc.name}: the op exists only on A2/A3 (split AIV cores)"
        )
    h_chunk = min(math.ceil(h / 64) * 64, PEER_H)
    per_pass = max(1, UB_PASS_BYTES // 4 // h_chunk)
    t = RowChunkTiling(cores=max(1, min(rows, avail)), h_chunk=h_chunk, rows_per_pass=per_pass)
    ub = soc.core("aiv").buffers["UB"].capacity_bytes
    while t.rows_per_pass > 1 and ub_bytes(t) > ub:  # keep the ping-pong working set in UB
        t = RowChunkTiling(t.cores, t.h_chunk, t.rows_per_pass // 2, t.double_buffer)
    while t.h_chunk > 64 and ub_bytes(t) > ub:  # one row still too wide: narrower H chunks
        t = RowChunkTiling(t.cores, max(64, t.h_chunk // 2 // 64 * 64), 1, t.double_buffer)
    return t


def validate_row_chunk_tiling(t: RowChunkTiling, soc: SocDescriptor, rows: int,
                              ub_bytes: Callable[[RowChunkTiling], int], op: str) -> None:
    """Check ``t``'s type, then against the core count, the 64-element chunk rule and UB (the
    ``ub_bytes(t)`` its kernel allocates)."""
    from npusim.tiling_overrides import check_tiling_type

    check_tiling_type(t, RowChunkTiling, op)
    avail = soc.core_counts().get("aiv", 0)
    if not 1 <= t.cores <= min(rows, avail):
        raise ValueError(f"tiling.cores={t.cores}: must be in 1..{min(rows, avail)}")
    if t.h_chunk <= 0 or t.h_chunk % 64:
        raise ValueError(f"tiling.h_chunk={t.h_chunk}: must be a positive multiple of 64")
    if t.rows_per_pass < 1:
        raise ValueError(f"tiling.rows_per_pass={t.rows_per_pass}: must be >= 1")
    ub, need_ub = soc.core("aiv").buffers["UB"].capacity_bytes, ub_bytes(t)
    if need_ub > ub:
        raise ValueError(
            f"tiling needs {need_ub} B of UB (rows_per_pass x h_chunk buffers, "
            f"{'double' if t.double_buffer else 'single'}-buffered) > {ub} B"
        )


def default_group_quant_tiling(soc: SocDescriptor, rows: int, h: int) -> GroupQuantTiling:
    return default_row_chunk_tiling(soc, rows, h, "group_quant", _ub_bytes)


def validate_group_quant_tiling(t: GroupQuantTiling, soc: SocDescriptor, rows: int, h: int) -> None:
    validate_row_chunk_tiling(t, soc, rows, _ub_bytes, "group_quant")


def _ub_bytes(t: GroupQuantTiling) -> int:
    nbuf = 2 if t.double_buffer else 1
    tile = t.rows_per_pass * t.h_chunk
    # x (up to 4 B), fp32 work, int32 work, output (1 B) per buffer; scale row fp32 once.
    return nbuf * tile * (4 + 4 + 4 + 1) + t.h_chunk * 4


def _quantize(x: np.ndarray, s: np.ndarray, offset: float | None, out: str) -> np.ndarray:
    """The vector chain's values: fp32 Mul, fp32 Add, RINT to int32, exact to half, saturate."""
    from npusim.numerics import RoundMode, float_to_int

    v = x.astype(np.float32) * s.astype(np.float32)
    if offset is not None:
        v = (v + np.float32(offset)).astype(np.float32)
    i32 = float_to_int(v, "int32", RoundMode.RINT)
    return float_to_int(i32.astype(np.float16), "int4" if out == "int4" else "int8", RoundMode.RINT)


def build_group_quant(
    soc: SocDescriptor,
    x_shape: tuple[int, int],
    x_dtype: str,
    scale_dtype: str,
    group_index: np.ndarray,
    tiling: GroupQuantTiling,
    *,
    out: str = "int8",
    x: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    offset: float | None = None,
) -> Kernel:
    """The kernel. ``group_index`` (cumulative end rows) must already be validated."""
    rows, h = x_shape
    validate_group_quant_tiling(tiling, soc, rows, h)
    e = len(group_index)
    out_cols = h // 8 if out == "int4" else h
    out_dtype = "int32" if out == "int4" else "int8"
    gm = {
        "x": GMTensor("x", (rows, h), x_dtype, x, "input"),
        "scale": GMTensor("scale", (e, h), scale_dtype, scale, "input"),
        "y": GMTensor("y", (rows, out_cols), out_dtype, None, "output"),
    }
    desc = soc.core("aiv")
    xs = np.dtype(x_dtype if x_dtype != "bfloat16" else "float16").itemsize
    ss = 2 if scale_dtype in ("float16", "bfloat16") else 4
    base, extra = divmod(rows, tiling.cores)
    starts = np.concatenate([[0], np.asarray(group_index, dtype=np.int64)])
    nbuf = 2 if tiling.double_buffer else 1
    cores = []
    for c in range(tiling.cores):
        prog = CoreProgram(c, "aiv")
        cores.append(prog)
        b = ProgramBuilder(prog, desc)
        r0 = c * base + min(c, extra)
        r1 = r0 + base + (1 if c < extra else 0)
        tile = tiling.rows_per_pass * tiling.h_chunk
        bufs = [
            (
                b.alloc("UB", (tile,), x_dtype, f"x{i}"),
                b.alloc("UB", (tile,), "float32", f"f{i}"),
                b.alloc("UB", (tile,), "int32", f"i{i}"),
                b.alloc("UB", (tile,), "int8", f"y{i}"),
            )
            for i in range(nbuf)
        ]
        srow = b.alloc("UB", (tiling.h_chunk,), "float32", "scale")
        # a non-fp32 scale row lands here first and is cast to fp32 (the Mul computes in fp32)
        sraw = (b.alloc("UB", (tiling.h_chunk,), scale_dtype, "scale_raw")
                if scale_dtype != "float32" else None)
        t = 0
        q = VecInOut(b, tuple(range(nbuf)))
        for h0 in range(0, h, tiling.h_chunk):
            hw = min(tiling.h_chunk, h - h0)
            for g in range(e):
                g0, g1 = max(r0, int(starts[g])), min(r1, int(starts[g + 1]))
                if g0 >= g1:
                    continue
                if t > 0:
                    b.wait_flag("V", "MTE2", 2)  # previous scale row no longer read
                sreg = Region("UB", srow.offset, (hw,), "float32")
                sload = sreg if sraw is None else Region("UB", sraw.offset, (hw,), scale_dtype)
                b.dma(
                    Region("GM", (g * h + h0) * ss, (hw,), scale_dtype, "scale"),
                    sload,
                    name="scale row GM->UB",
                )
                b.sync("MTE2", "V", 2)
                if sraw is not None:
                    b.cast(sreg, sload, round_mode="rint", name="Cast scale->fp32")
                for p0 in range(g0, g1, tiling.rows_per_pass):
                    pr = min(tiling.rows_per_pass, g1 - p0)
                    i = q.load()
                    xb, fb, ib, yb = bufs[i]
                    xr = Region("UB", xb.offset, (pr, hw), x_dtype)
                    b.dma(
                        Region("GM", (p0 * h + h0) * xs, (pr, hw), x_dtype, "x", h * xs),
                        xr,
                        name="x GM->UB",
                    )
                    q.compute(i)
                    fr = Region("UB", fb.offset, (pr, hw), "float32")
                    ir = Region("UB", ib.offset, (pr, hw), "int32")
                    ycols = hw // 8 if out == "int4" else hw
                    yr = Region(
                        "UB", yb.offset, (pr, ycols), out_dtype if out == "int4" else "int8"
                    )
                    hr = Region("UB", ib.offset, (pr, hw), "float16")  # in place over ir
                    qr = Region("UB", yb.offset, (pr, hw), out)  # the bytes of yr
                    if x_dtype == "float32":  # no Cast (fp32 -> fp32 would round to integral)
                        b.vop(VecOp.MUL, fr, (xr, sreg), name="Mul scale")
                    else:
                        b.cast(fr, xr, round_mode="rint", name="Cast x->fp32")
                        b.vop(VecOp.MUL, fr, (fr, sreg), name="Mul scale")
                    if offset is not None:
                        b.vop(VecOp.ADDS, fr, (fr,), scalar=offset, name="Adds offset")
                    b.cast(ir, fr, round_mode="rint", name="Cast fp32->int32 RINT")
                    b.cast(hr, ir, round_mode="rint", name="Cast int32->half")
                    b.cast(qr, hr, round_mode="rint", name=f"Cast half->{out}")
                    q.store(i)
                    ocols = 8 if out == "int4" else 1
                    osz = 4 if out == "int4" else 1
                    b.dma(
                        yr,
                        Region(
                            "GM",
                            (p0 * out_cols + h0 // ocols) * osz,
                            (pr, ycols),
                            yr.dtype,
                            "y",
                            out_cols * osz,
                        ),
                        name="y UB->GM",
                    )
                    q.stored(i)
                    t += 1
                b.set_flag("V", "MTE2", 2)
    meta = {"op": "group_quant", "rows": rows, "h": h, "groups": e, "out": out}
    return Kernel("group_quant", gm, cores, meta)


def proxy_prediction(row: Measurement) -> Prediction | None:
    """Rows E1* predicted with group_quant (one group, int4 output, fp16 x) as the vector-only
    proxy the calibration README names. Superseded in ``npusim validate`` by
    ``ops.dynamic_quant_program.calibration_prediction`` (the measured kernel itself); kept to
    compare the two."""
    from npusim.engine.sim import run_kernel
    from npusim.runner import resolve_soc
    from npusim.validate import Prediction, soc_name_of

    if not row.id.startswith("E1"):
        return None
    soc = resolve_soc(soc_name_of(row))
    rows, h = row.size("m"), row.size("k")
    gi = np.array([rows], dtype=np.int64)
    kern = build_group_quant(
        soc,
        (rows, h),
        "float16",
        "float32",
        gi,
        default_group_quant_tiling(soc, rows, h),
        out="int4",
    )
    res = run_kernel(kern, soc, check_races=False)
    return Prediction(res.microseconds, {}, note="group_quant proxy (1 group, int4 out)")


def _group_quant_args(
    x: Any, scale: Any, group_index: Any, offset: Any, dst_dtype: Any
) -> tuple[int, int, str, str, np.ndarray, float | None, str]:
    """Shape/dtype checks of the tiled program's inputs (the operator's full validation lives in
    the torch_npu API); returns (rows, h, x dtype, scale dtype, group_index, offset, out)."""
    from npusim.spec import is_spec, require_nd, shape_dtype

    require_nd("group_quant", x=x, scale=scale, offset=offset)
    (rows_h, xdt), (sshape, sdt) = shape_dtype(x), shape_dtype(scale)
    if len(rows_h) != 2:
        raise ValueError(f"x: must be 2-D (S, H), got shape {rows_h}")
    if len(sshape) != 2 or sshape[1] != rows_h[1]:
        raise ValueError(f"scale: must be 2-D (E, H) with H = {rows_h[1]}, got {sshape}")
    for name, dt in (("x", xdt), ("scale", sdt)):
        if dt not in ("float16", "bfloat16", "float32"):
            raise TypeError(f"{name}: dtype {dt} must be float16, bfloat16 or float32")
    if is_spec(group_index):
        raise TypeError("group_index: a spec has no values, and the program's row-to-group "
                        "mapping needs them; pass the cumulative end rows as an int32 / int64 "
                        "array (x and scale may stay specs)")
    gi = np.asarray(group_index).reshape(-1)
    gi = gi.astype(np.int64) if gi.dtype.kind in "iu" else gi
    if gi.size != sshape[0] or gi.size == 0:
        raise ValueError(f"group_index: length {gi.size} must equal scale.shape[0] = {sshape[0]}")
    if np.any(np.diff(gi) < 0) or gi[0] < 0 or gi[-1] != rows_h[0]:
        raise ValueError(f"group_index: {gi.tolist()} must be non-decreasing, >= 0 and end at "
                         f"the row count {rows_h[0]}")
    from npusim.ops.group_quant import INDEX_DTYPES, dst_dtype_kind

    gdt = np.asarray(group_index).dtype.name
    if gdt not in INDEX_DTYPES:
        raise TypeError(f"group_index: dtype {gdt} not supported; must be int32 or int64")
    if offset is not None and shape_dtype(offset)[1] != sdt:
        raise TypeError(f"offset: dtype {shape_dtype(offset)[1]} must equal scale's dtype {sdt}")
    out = dst_dtype_kind(dst_dtype)
    if out == "int4" and rows_h[1] % 8:
        raise ValueError(f"x: last dim {rows_h[1]} must be divisible by 8 for quint4x2")
    off = None if offset is None else float(np.asarray(offset, dtype=np.float32).reshape(-1)[0])
    return rows_h[0], rows_h[1], xdt, sdt, gi, off, out


def plan_group_quant(soc: SocDescriptor, tiling: Any = None, *, x: Any, scale: Any,
                     group_index: Any, offset: Any = None, dst_dtype: Any = None) -> Plan:
    """Runner entry for ``group_quant``."""
    from npusim.runner import Plan

    refuse_off_a2_a3(soc, "npu_group_quant", "seed 004")
    rows, h, xdt, sdt, gi, off, out = _group_quant_args(x, scale, group_index, offset, dst_dtype)
    t = default_group_quant_tiling(soc, rows, h) if tiling is None else tiling
    functional = isinstance(x, np.ndarray)
    kern = build_group_quant(soc, (rows, h), xdt, sdt, gi, t, out=out,
                             x=x if functional else None,
                             scale=np.asarray(scale) if functional else None, offset=off)
    return Plan(kern, "group_quant (AIV)", t, functional, finish=lambda o: o["y"])


def cli_group_quant(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run group_quant``: --m rows (default 4096), --k H (512), 8 equal groups."""
    from npusim.spec import spec

    rows, h = ns.m or 4096, ns.k or 512
    e = 8
    gi = np.linspace(0, rows, e + 1).astype(np.int64)[1:]
    xdt = ns.dtype or "float16"
    if functional:
        return {"x": (rng.standard_normal((rows, h)) * 3).astype(xdt),
                "scale": rng.uniform(0.5, 20, (e, h)).astype(np.float32), "group_index": gi}
    return {"x": spec((rows, h), xdt), "scale": spec((e, h), "float32"), "group_index": gi}


def check_group_quant(res: Any, op_args: dict[str, Any]) -> str:
    x = op_args["x"].astype(np.float32)
    gi = np.asarray(op_args["group_index"])
    grp = np.searchsorted(gi, np.arange(x.shape[0]), side="right")
    want = _quantize(x, op_args["scale"][grp], None, "int8")
    return f"output equals clip(rint(x*scale)) exactly: {np.array_equal(res.outputs, want)}"


def default_tiling_group_quant(soc: SocDescriptor, **op_args: Any) -> GroupQuantTiling:
    rows, h, *_ = _group_quant_args(op_args["x"], op_args["scale"], op_args["group_index"],
                                    op_args.get("offset"), op_args.get("dst_dtype"))
    return default_group_quant_tiling(soc, rows, h)


def _validate(soc: SocDescriptor, *, x: Any, scale: Any, group_index: Any, offset: Any = None,
              dst_dtype: Any = None) -> None:
    refuse_off_a2_a3(soc, "npu_group_quant", "seed 004")
    _group_quant_args(x, scale, group_index, offset, dst_dtype)


OPERATOR = Operator(
    name="group_quant",
    plan=plan_group_quant,
    validate=_validate,
    default_tiling=default_tiling_group_quant,
    example_inputs=cli_group_quant,
    cli=CliSpec(
        "npu_group_quant: rows x H quantised to int8 with 8 equal row groups' scales",
        {"--m": "rows (default 4096)", "--k": "row length H (default 512)",
         "--dtype": "dtype of x (default float16)"}),
    cann_op_type="GroupQuant",
    quantisation=lambda a: f"int8 per row group ({len(a['group_index'])} groups)",
    check_output=check_group_quant,
)
