"""npu_quantize as a tiled vector program: timing and output bits.

torch_npu's ``npu_quantize`` is two kernels:

- ``div_mode=False`` -> aclnnAscendQuantV3, the AscendQuantV2 kernel (CANN ops-nn
  ``quant/ascend_quant_v2``, read, not copied). Its chain, every step an instruction here: x,
  scale and offset (one dtype, T) to fp32 (Cast NONE, exact; an fp32 x is used in place), Mul by
  the scale, Add the offset (fp32, RNE), Cast fp32 -> int32 in the round mode torch_npu passes
  ("round": CAST_RINT), Cast int32 -> fp16, then fp16 -> int8 (RINT; CAST_ROUND on the 310P,
  the same on integral values) or fp16 -> int4 (RINT). Saturation comes from the saturating
  Casts (fp16 beyond int8's range clamps; an int32 beyond fp16's keeps its sign).
- ``div_mode=True`` -> aclnnQuantize, the ``Quantize`` op. Its A2 / A3 / 310P kernel is not
  published (ops-nn has only the Ascend950 ``arch35`` one), so its chain is a declared model,
  ``quantize_div_chain`` = the published arch35 kernel's: x, scale and zero point to fp32
  (int8 / uint8 exactly, int32 RINT, bf16 exactly), ``x / scale`` (IEEE fp32 division, RNE),
  ``+ zero_point`` (fp32, RNE), Cast fp32 -> int32 RINT; int32 output as is, int8 / uint8
  through fp16 (saturating Casts). RINT (round half to even) is declared too: aclnnQuantize
  takes no round mode.

Parameter layouts (``scales`` / ``zero_points`` 1-D, one value or one per element of the
quantised axis): per-tensor (a one-element UB region broadcast - the kernels read a scalar;
the same fp32 products), per-channel along the last dim (a column chunk broadcast down the
rows, loaded once per chunk as the kernel does), or along an earlier axis (x viewed as
(rows, C) with row r using parameter ``r % axis_size``: the per-head layout; a (rows, 1) column
broadcast along each row).

Structure (declared: the kernels' tiling, blockAxis / blockUnion core splits and baseN / baseLen
choices, is not modelled): rows over ``cores`` vector cores (AIVs on A2 / A3, AI Cores on the
310P) as evenly as whole rows allow, H in ``h_chunk`` chunks, ``rows_per_pass`` rows per UB pass
(a pass never straddles a per-head parameter period), x / y buffers single-buffered as the
kernel's ``bufferNum_ = 1`` (``double_buffer`` ping-pongs them). Values do not depend on the
tiling (every step is per element).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator
from npusim.ops.dynamic_quant_program import core_row_ranges
from npusim.ops.group_quant_program import PEER_H, UB_PASS_BYTES, RowChunkTiling
from npusim.ops.program_stages import VecInOut

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan

#: output kind -> (GM dtype of y, smallest, largest value)
OUTPUTS: dict[str, tuple[str, int, int]] = {
    "int8": ("int8", -128, 127), "uint8": ("uint8", 0, 255),
    "int32": ("int32", -2**31, 2**31 - 1), "int4": ("int32", -8, 7)}

QuantizeTiling = RowChunkTiling

DECLARED = {
    "quantize_div_chain": "div_mode=True (aclnnQuantize; the A2 / A3 / 310P kernel is not "
                          "published): the Ascend950 kernel's fp32 chain, x / scale + "
                          "zero_point, Cast RINT to int32, int8 / uint8 through fp16",
    "tiling": "rows over cores, H chunks, rows per pass: npusim's rule, not the kernels' "
              "tiling (which cannot change a value)",
    "per_tensor_parameter": "a one-element UB region broadcast (the kernels' scalar Muls / "
                            "Adds by the same fp32 value)",
}

_FLOATS = ("float32", "float16", "bfloat16")
_SIZES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int32": 4}


def _is_a2(soc: SocDescriptor) -> bool:
    return bool(soc.core_counts().get("aiv", 0))


def core_kind(soc: SocDescriptor) -> str:
    """The vector core the kernels run on: AIVs on A2 / A3, AI Cores on the coupled 310P."""
    counts = soc.core_counts()
    if counts.get("aiv", 0):
        return "aiv"
    if counts.get("aicore", 0):
        return "aicore"
    raise NotImplementedError(f"quantize on {soc.name}: no core with a vector unit")


def layout(shape: tuple[int, ...], axis: int, nparam: int, div_mode: bool
           ) -> tuple[int, int, str, int]:
    """x viewed as (rows, n) with the parameters' layout: ("tensor" | "column" | "row", the
    per-head period). ``axis`` is the call's (div_mode False: -2 = the second-to-last dim, any
    other value the last)."""
    ndim = len(shape)
    n_last = shape[-1]
    rows = math.prod(shape[:-1])
    if nparam == 1:
        return rows, n_last, "tensor", 1
    ax = (ndim - 2 if axis == -2 else ndim - 1) if not div_mode else axis % ndim
    if ax == ndim - 1:
        return rows, n_last, "column", shape[ax]
    return math.prod(shape[:ax + 1]), math.prod(shape[ax + 1:]), "row", shape[ax]


def _checked(soc: SocDescriptor, x: Any, scales: Any, zero_points: Any, dtype: Any, axis: Any,
             div_mode: Any) -> tuple[tuple[int, ...], str, str, str | None, str, int, int, str,
                                     int]:
    """The call's documented rules (torch_npu npu_quantize for A2 / A3 and the 310P);
    (x shape, x dtype, scale dtype, zero-point dtype, out kind, rows, n, layout, period)."""
    from npusim.spec import require_nd, shape_dtype

    if not isinstance(div_mode, bool):
        raise TypeError(f"div_mode: {div_mode!r} must be a bool")
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"axis: {axis!r} must be an int")
    axis = int(axis)
    if x is not None and getattr(x, "npu_format", 2) == 29:
        raise NotImplementedError(
            "quantize: a FRACTAL_NZ input (the (e, k, n) float32 quint4x2 weight path of "
            "div_mode=False) is not modelled; cast it to ND first")
    require_nd("quantize", scales=scales, zero_points=zero_points)
    a2 = _is_a2(soc)
    where = "Atlas A2 / A3" if a2 else f"{soc.name} (Atlas inference)"
    shape, xdt = shape_dtype(x)
    sshape, sdt = shape_dtype(scales)
    floats = _FLOATS if a2 else ("float32", "float16")
    if xdt not in floats:
        raise TypeError(f"x: dtype {xdt} not supported on {where}; must be one of {floats}")
    if len(shape) == 0 or len(shape) > 8:
        raise ValueError(f"x: shape {shape} must have 1 to 8 dims")
    if len(sshape) != 1:
        raise ValueError(f"scales: shape {sshape} must be 1-D (one value, or one per element of "
                         "the quantised axis)")
    zdt = None
    if zero_points is not None:
        zshape, zdt = shape_dtype(zero_points)
        if zshape != sshape:
            raise ValueError(f"zero_points: shape {zshape} must equal scales' {sshape}")
    out = str(dtype)
    if out not in OUTPUTS:
        raise TypeError(f"dtype: {dtype!r} must be one of {sorted(OUTPUTS)}")
    if div_mode:
        sok = ("float32", "float16", "bfloat16") if a2 else ("float32", "float16")
        zok = ("int8", "uint8", "int32", "bfloat16") if a2 else ("int8", "uint8", "int32")
        if out not in ("int8", "uint8", "int32"):
            raise TypeError(f"dtype: {out} needs div_mode=False; div_mode=True gives int8, "
                            "uint8 or int32")
        if sdt not in sok:
            raise TypeError(f"scales: dtype {sdt} not supported with div_mode=True on {where}; "
                            f"must be one of {sok}")
        if zdt is not None and zdt not in zok:
            raise TypeError(f"zero_points: dtype {zdt} not supported with div_mode=True on "
                            f"{where}; must be one of {zok}")
        if "bfloat16" in (sdt, zdt) and not (xdt == sdt == "bfloat16"
                                            and zdt in (None, "bfloat16")):
            raise TypeError("x, scales, zero_points: a bfloat16 scale or zero point needs all "
                            f"three bfloat16 (aclnnQuantize); got {xdt}, {sdt}, {zdt}")
        ndim = len(shape)
        if sshape[0] != 1:
            if not -ndim <= axis < ndim:
                raise ValueError(f"axis: {axis} out of range for a {ndim}-D input")
            if sshape[0] != shape[axis % ndim]:
                raise ValueError(f"scales: size {sshape[0]} must be 1 or x's dim {axis} "
                                 f"({shape[axis % ndim]})")
    else:
        if out not in ("int8", "int4"):
            raise TypeError(f"dtype: {out} needs div_mode=True; div_mode=False gives "
                            "torch.qint8 or torch.quint4x2")
        if not a2 and (out == "int4" or axis == -2):
            raise ValueError(f"{'dtype torch.quint4x2' if out == 'int4' else 'axis=-2'} with "
                             f"div_mode=False is not supported on {where} (torch_npu docs)")
        if sdt != xdt or zdt not in (None, sdt):
            raise TypeError(f"scales / zero_points: dtypes {sdt} / {zdt} must equal x's {xdt} "
                            "with div_mode=False (aclnnAscendQuantV3)")
        if axis < -2 or axis >= len(shape):
            raise ValueError(f"axis: {axis} must be in [-2, {len(shape)}) with div_mode=False")
        if axis == -2 and len(shape) < 2:
            raise ValueError("axis: -2 needs an input of at least 2 dims")
        ax = len(shape) - 2 if axis == -2 else len(shape) - 1
        if sshape[0] not in (1, shape[ax]):
            raise ValueError(f"scales: size {sshape[0]} must be 1 or x's dim {ax} ({shape[ax]})")
        if out == "int4" and shape[-1] % 8:
            raise ValueError(f"x: last dim {shape[-1]} must be a multiple of 8 for "
                             "torch.quint4x2")
    if math.prod(shape) == 0:
        raise ValueError(f"x: shape {shape} is empty (the API returns an empty result itself)")
    rows, n, mode, period = layout(shape, axis, sshape[0], div_mode)
    return shape, xdt, sdt, zdt, out, rows, n, mode, period


def ub_bytes(t: RowChunkTiling, xdt: str, out: str) -> int:
    """UB: x and y tiles per buffer, one fp32 work tile, scale / zero-point rows (raw + fp32)."""
    nbuf = 2 if t.double_buffer else 1
    tile = t.rows_per_pass * t.h_chunk
    ysz = 4 if out == "int32" else 1
    par = max(t.h_chunk, math.ceil(t.rows_per_pass / 8) * 8)
    return nbuf * tile * (_SIZES[xdt] + ysz) + tile * 4 + par * 4 * 4


def default_quantize_tiling(soc: SocDescriptor, rows: int, n: int, xdt: str, out: str,
                            double_buffer: bool = False) -> QuantizeTiling:
    """Every vector core (at most one per row), H chunks of up to 8192 (a multiple of 64), a
    32 KiB fp32 work tile per pass, halved until UB holds the working set."""
    avail = soc.core_counts()[core_kind(soc)]
    h_chunk = min(math.ceil(n / 64) * 64, PEER_H)
    t = RowChunkTiling(max(1, min(rows, avail)), h_chunk,
                       max(1, UB_PASS_BYTES // 4 // h_chunk), double_buffer)
    ub = soc.core(core_kind(soc)).buffers["UB"].capacity_bytes
    while t.rows_per_pass > 1 and ub_bytes(t, xdt, out) > ub:
        t = RowChunkTiling(t.cores, t.h_chunk, t.rows_per_pass // 2, t.double_buffer)
    while t.h_chunk > 64 and ub_bytes(t, xdt, out) > ub:
        t = RowChunkTiling(t.cores, max(64, t.h_chunk // 2 // 64 * 64), 1, t.double_buffer)
    return t


def validate_quantize_tiling(t: Any, soc: SocDescriptor, rows: int, xdt: str, out: str) -> None:
    from npusim.tiling_overrides import check_tiling_type

    check_tiling_type(t, RowChunkTiling, "quantize")
    avail = soc.core_counts()[core_kind(soc)]
    if not 1 <= t.cores <= min(rows, avail):
        raise ValueError(f"tiling.cores={t.cores}: must be in 1..{min(rows, avail)}")
    if t.h_chunk <= 0 or t.h_chunk % 64:
        raise ValueError(f"tiling.h_chunk={t.h_chunk}: must be a positive multiple of 64")
    if t.rows_per_pass < 1:
        raise ValueError(f"tiling.rows_per_pass={t.rows_per_pass}: must be >= 1")
    ub, need = soc.core(core_kind(soc)).buffers["UB"].capacity_bytes, ub_bytes(t, xdt, out)
    if need > ub:
        raise ValueError(f"tiling needs {need} B of UB > {ub} B")


def build_quantize(soc: SocDescriptor, shape: tuple[int, ...], xdt: str, sdt: str, zdt: str | None,
                   out: str, div_mode: bool, rows: int, n: int, mode: str, period: int,
                   tiling: QuantizeTiling, *, x: np.ndarray | None = None,
                   scales: np.ndarray | None = None,
                   zero_points: np.ndarray | None = None) -> Kernel:
    """The kernel for x viewed as (rows, n); parameters of ``mode`` (:func:`layout`)."""
    validate_quantize_tiling(tiling, soc, rows, xdt, out)
    ydt = OUTPUTS[out][0]
    ycols = n // 8 if out == "int4" else n
    nparam = 1 if mode == "tensor" else period
    gm = {"x": GMTensor("x", (rows, n), xdt,
                        None if x is None else np.ascontiguousarray(x).reshape(rows, n), "input"),
          "scales": GMTensor("scales", (nparam,), sdt, scales, "input"),
          "y": GMTensor("y", (rows, ycols), ydt, None, "output")}
    if zdt is not None:
        gm["zero_points"] = GMTensor("zero_points", (nparam,), zdt, zero_points, "input")
    kind = core_kind(soc)
    desc = soc.core(kind)
    cores = []
    for c, (r0, r1) in enumerate(core_row_ranges(rows, tiling.cores)):
        prog = CoreProgram(c, kind)
        cores.append(prog)
        _Writer(ProgramBuilder(prog, desc), tiling, n, xdt, sdt, zdt, out, div_mode, mode,
                period, a2=kind == "aiv").emit(r0, r1)
    meta = {"op": "quantize", "shape": list(shape), "rows": rows, "n": n, "layout": mode,
            "period": period, "out": out, "div_mode": div_mode,
            "kernel": "AscendQuantV2 (ops-nn)" if not div_mode else "Quantize (declared chain)",
            "declared": {k: v for k, v in DECLARED.items()
                         if div_mode or k != "quantize_div_chain"}}
    return Kernel("quantize", gm, cores, meta)


class _Writer:
    """One core's instruction stream. Event ids: 0 / 1 the x / y buffer sets, 2 the parameter
    rows (V releases them to MTE2 before a reload)."""

    def __init__(self, b: ProgramBuilder, t: RowChunkTiling, n: int, xdt: str, sdt: str,
                 zdt: str | None, out: str, div_mode: bool, mode: str, period: int,
                 *, a2: bool) -> None:
        self.b, self.t, self.n, self.xdt, self.sdt, self.zdt = b, t, n, xdt, sdt, zdt
        self.out, self.div, self.mode, self.period, self.a2 = out, div_mode, mode, period, a2
        nbuf = 2 if t.double_buffer else 1
        tile = t.rows_per_pass * t.h_chunk
        ysz = 4 if out == "int32" else 1
        self.xb = [b.alloc("UB", (tile,), xdt, f"x{i}") for i in range(nbuf)]
        self.yb = [b.alloc("UB", (tile * ysz,), "int8", f"y{i}") for i in range(nbuf)]
        self.work = b.alloc("UB", (tile,), "float32", "x_fp32")
        par = max(t.h_chunk, math.ceil(t.rows_per_pass / 8) * 8)
        self.s_raw = b.alloc("UB", (par,), "float32", "scale_raw")
        self.s32 = b.alloc("UB", (par,), "float32", "scale_fp32")
        self.z_raw = b.alloc("UB", (par,), "float32", "offset_raw")
        self.z32 = b.alloc("UB", (par,), "float32", "offset_fp32")
        self.q = VecInOut(b, tuple(range(nbuf)))
        self.param_loads = 0

    def _param(self, gm_name: str, dt: str, raw: Region, f32: Region, p0: int, cnt: int,
               shape: tuple[int, ...]) -> Region:
        """Parameters [p0, p0 + cnt) GM -> UB, cast to fp32 unless fp32; their region."""
        b = self.b
        src = Region("GM", p0 * _SIZES[dt], (cnt,), dt, gm_name)
        if dt == "float32":
            dst = Region("UB", f32.offset, (cnt,), "float32")
            b.dma(src, dst, name=f"{gm_name} GM->UB")
            return Region("UB", f32.offset, shape, "float32")
        r = Region("UB", raw.offset, (cnt,), dt)
        b.dma(src, r, name=f"{gm_name} GM->UB")
        return Region("UB", f32.offset, shape, "float32")

    def _load_params(self, p0: int, cnt: int, shape: tuple[int, ...]
                     ) -> tuple[Region, Region | None]:
        """Scale (and zero point) values [p0, p0 + cnt) as fp32 UB regions of ``shape``."""
        b = self.b
        if self.param_loads:
            b.wait_flag("V", "MTE2", 2)  # the previous parameters are no longer read
        self.param_loads += 1
        s = self._param("scales", self.sdt, self.s_raw, self.s32, p0, cnt, shape)
        z = None
        if self.zdt is not None:
            z = self._param("zero_points", self.zdt, self.z_raw, self.z32, p0, cnt, shape)
        b.sync("MTE2", "V", 2)
        for dt, raw, reg, what in ((self.sdt, self.s_raw, s, "scale"),
                                   (self.zdt, self.z_raw, z, "offset")):
            if dt is None or dt == "float32" or reg is None:
                continue
            mode = "rint"  # exact for fp16 / bf16 / int8 / uint8; int32 -> fp32 rounds (RINT)
            b.cast(Region("UB", reg.offset, (cnt,), "float32"),
                   Region("UB", raw.offset, (cnt,), dt), round_mode=mode,
                   name=f"Cast {what} {dt}->fp32")
        return s, z

    def _release_params(self) -> None:
        self.b.set_flag("V", "MTE2", 2)

    def _pass(self, p0: int, pr: int, h0: int, hw: int, s: Region, z: Region | None) -> None:
        b, n, xdt, out = self.b, self.n, self.xdt, self.out
        q = self.q
        i = q.load()
        xr = Region("UB", self.xb[i].offset, (pr, hw), xdt)
        xs = _SIZES[xdt]
        b.dma(Region("GM", (p0 * n + h0) * xs, (pr, hw), xdt, "x", n * xs), xr, name="x GM->UB")
        q.compute(i)
        f = Region("UB", self.work.offset, (pr, hw), "float32")
        src = xr
        if xdt != "float32":
            b.cast(f, xr, round_mode="rint", name=f"Cast x {xdt}->fp32")
            src = f
        if self.div:
            b.vop(VecOp.DIV, f, (src, s), name="Div x / scale")
        else:
            b.vop(VecOp.MUL, f, (src, s), name="Mul x * scale")
        if z is not None:
            b.vop(VecOp.ADD, f, (f, z), name="Add offset")
        ir = Region("UB", self.work.offset, (pr, hw), "int32")
        ybuf = self.yb[i]
        if out == "int32":
            yr = Region("UB", ybuf.offset, (pr, hw), "int32")
            b.cast(yr, f, round_mode="rint", name="Cast fp32->int32 RINT")
        else:
            b.cast(ir, f, round_mode="rint", name="Cast fp32->int32 RINT")
            hr = Region("UB", self.work.offset, (pr, hw), "float16")
            b.cast(hr, ir, round_mode="rint", name="Cast int32->fp16")
            last = "round" if (not self.a2 and not self.div and out == "int8") else "rint"
            b.cast(Region("UB", ybuf.offset, (pr, hw), out), hr, round_mode=last,
                   name=f"Cast fp16->{out} {last.upper()}")
            yr = (Region("UB", ybuf.offset, (pr, hw // 8), "int32") if out == "int4"
                  else Region("UB", ybuf.offset, (pr, hw), out))
        q.store(i)
        if out == "int4":
            dst = Region("GM", (p0 * (n // 8) + h0 // 8) * 4, (pr, hw // 8), "int32", "y",
                         (n // 8) * 4)
        else:
            ys = _SIZES[OUTPUTS[out][0]]
            dst = Region("GM", (p0 * n + h0) * ys, (pr, hw), yr.dtype, "y", n * ys)
        b.dma(yr, dst, name="y UB->GM")
        q.stored(i)

    def emit(self, r0: int, r1: int) -> None:
        t, n = self.t, self.n
        if r1 <= r0:
            return
        chunks = [(h0, min(t.h_chunk, n - h0)) for h0 in range(0, n, t.h_chunk)]
        if self.mode == "tensor":
            s, z = self._load_params(0, 1, (1,))
            for h0, hw in chunks:
                for p0 in range(r0, r1, t.rows_per_pass):
                    self._pass(p0, min(t.rows_per_pass, r1 - p0), h0, hw, s, z)
            self._release_params()
        elif self.mode == "column":
            for h0, hw in chunks:  # the parameter chunk once per column chunk
                s, z = self._load_params(h0, hw, (hw,))
                for p0 in range(r0, r1, t.rows_per_pass):
                    self._pass(p0, min(t.rows_per_pass, r1 - p0), h0, hw, s, z)
                self._release_params()
        else:  # per-head: row r uses parameter r % period; passes stay inside one period
            for h0, hw in chunks:
                p0 = r0
                while p0 < r1:
                    k = p0 % self.period
                    pr = min(t.rows_per_pass, r1 - p0, self.period - k)
                    s, z = self._load_params(k, pr, (pr, 1))
                    self._pass(p0, pr, h0, hw, s, z)
                    self._release_params()
                    p0 += pr
        self.b.wait_flag("V", "MTE2", 2)
        self.q.drain()


def _arrays(x: Any, scales: Any, zero_points: Any) -> bool:
    from npusim.spec import is_spec

    return not any(is_spec(v) for v in (x, scales, zero_points) if v is not None)


def plan_quantize(soc: SocDescriptor, tiling: Any = None, *, x: Any, scales: Any,
                  zero_points: Any = None,
                  dtype: Any = "int8", axis: int = -1, div_mode: bool = True) -> Plan:
    """Runner entry for ``quantize``: x (any shape) -> y of ``dtype`` ('int8', 'uint8', 'int32';
    'int4' = int4 packed 8 per int32 along the last dim) with 1-D ``scales`` / ``zero_points``
    (one value, or one per element of ``axis``) as torch_npu's npu_quantize (module docstring)."""
    from npusim.runner import Plan

    shape, xdt, sdt, zdt, out, rows, n, mode, period = _checked(
        soc, x, scales, zero_points, dtype, axis, div_mode)
    t = default_quantize_tiling(soc, rows, n, xdt, out) if tiling is None else tiling
    functional = _arrays(x, scales, zero_points)
    kern = build_quantize(
        soc, shape, xdt, sdt, zdt, out, div_mode, rows, n, mode, period, t,
        x=np.asarray(x) if functional else None,
        scales=np.ascontiguousarray(scales) if functional else None,
        zero_points=(np.ascontiguousarray(zero_points) if functional and zero_points is not None
                     else None))
    oshape = (*shape[:-1], shape[-1] // 8) if out == "int4" else shape
    kname = ("quantize " + ("div (Quantize)" if div_mode else "mul (AscendQuantV2)")
             + f" {mode} {out} ({core_kind(soc).upper()})")
    return Plan(kern, kname, t, functional, finish=lambda o: np.asarray(o["y"]).reshape(oshape))


def default_tiling_quantize(soc: SocDescriptor, **op_args: Any) -> QuantizeTiling:
    _, xdt, _, _, out, rows, n, _, _ = _checked(
        soc, op_args["x"], op_args["scales"], op_args.get("zero_points"),
        op_args.get("dtype", "int8"), op_args.get("axis", -1), op_args.get("div_mode", True))
    return default_quantize_tiling(soc, rows, n, xdt, out)


def _validate(soc: SocDescriptor, *, x: Any, scales: Any, zero_points: Any = None,
              dtype: Any = "int8", axis: int = -1, div_mode: bool = True) -> None:
    _checked(soc, x, scales, zero_points, dtype, axis, div_mode)


def cli_quantize(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run quantize``: --m rows (default 4096), --k H (512), per-channel fp32 scales,
    x / scale (div_mode=True), int8 out."""
    from npusim.spec import spec

    rows, h = ns.m or 4096, ns.k or 512
    xdt = ns.dtype or "float16"
    if functional:
        return {"x": rng.standard_normal((rows, h)).astype(xdt),
                "scales": rng.uniform(0.01, 0.1, (h,)).astype(np.float32)}
    return {"x": spec((rows, h), xdt), "scales": spec((h,), "float32")}


def check_quantize(res: Any, op_args: dict[str, Any]) -> str:
    """The CLI's --functional line for its call (per-channel fp32 scales, div_mode=True, int8,
    no zero points): the program's bits against numpy's fp32 chain, rint(x / scale) saturated
    to int8 (fp32 division correctly rounded; the int32 -> fp16 -> int8 Casts saturate)."""
    x, s = op_args["x"], op_args["scales"]
    with np.errstate(all="ignore"):
        want = np.rint(np.asarray(x).astype(np.float32) / np.asarray(s, np.float32))
    want = np.where(np.isnan(want), 0, np.clip(want, -128, 127)).astype(np.int8)
    got = np.asarray(res.outputs)
    same = got.shape == want.shape and np.array_equal(got.view(np.uint8), want.view(np.uint8))
    return f"output equals numpy's fp32 rint(x / scale) saturated to int8, bit for bit: {same}"


OPERATOR = Operator(
    name="quantize",
    plan=plan_quantize,
    validate=_validate,
    default_tiling=default_tiling_quantize,
    example_inputs=cli_quantize,
    check_output=check_quantize,
    cli=CliSpec(
        "npu_quantize: x / scales (+ zero points) to int8 per channel",
        {"--m": "rows (default 4096)", "--k": "row length H (default 512)",
         "--dtype": "dtype of x (default float16)"}),
    cann_op_type="AscendQuantV2",
    quantisation=lambda a: (f"{a.get('dtype', 'int8')} "
                            f"{'x / scale' if a.get('div_mode', True) else 'x * scale'}"),
)
