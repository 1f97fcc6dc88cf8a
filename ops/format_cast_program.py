"""npu_format_cast ND <-> FRACTAL_NZ as a TransData-like tiled program on the vector cores.

The ND matrix (per batch) (M, N) is padded to (M1 * 16, N1 * C0) and cut into tiles of
``m_tile`` rows (a multiple of 16) x ``n_strips`` C0-wide column strips; tiles are dealt to the
cores in contiguous ranges. Per tile, ping-pong buffered in UB:

ND -> NZ
  MTE2  one 2-D copy GM -> UB: the tile's valid rows, each ``cols * itemsize`` bytes from the ND
        row (DataCopyPad: the row is zero padded up to its 32 B block), into a row-major UB tile
        (m_tile, n_strips * C0);
  V     Duplicate 0 over the NZ tile when the tile holds padding (rows past M or strips past N),
        then a block-strided Copy that moves each C0-wide block of a row to its strip: the UB
        transposition (m_tile, n_strips, C0) -> (n_strips, m_tile, C0);
  MTE3  one 2-D copy UB -> GM: ``n_strips`` runs of ``m_tile * C0`` elements, one per strip, at
        the NZ strip stride ``M1 * 16 * C0``.
NZ -> ND
  the mirror image: MTE2 reads the strips' runs, V transposes back, MTE3 writes only the valid
  rows and columns (DataCopyPad), so the ND output has no padding.

Both directions move large contiguous runs over GM (an ND row of the tile, an NZ strip run) and do
the 32-byte-block shuffle in UB, as TransData kernels do. Values are only moved: the output equals
``npusim.layouts.nd_to_nz`` / ``nz_to_nd`` bit for bit (C0 = 32 B / min(itemsize, 2): fp16 / bf16 /
fp32 16, int8 32; zero padding) for every legal tiling. The V copy is costed as the descriptor's
``copy`` class over the tile's bytes; strided UB writes cost no extra (the engine models read bank
conflicts only), and GM runs have no per-burst cost beyond the size curves.

Inputs: an array (functional run; an NZ source is a ``FormattedArray``) or a ``spec`` whose
``shape`` is the logical (origin) shape and ``npu_format`` the source format (timing only). A
cast to the format the input already has launches no kernel in torch_npu and raises here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator
from npusim.ops.program_stages import VecInOut

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan

FRACTAL_ROWS = 16
TILE_BUDGET_BYTES = 32768  # one UB buffer; four of them (in / out, ping-pong) = 128 KiB
DEFAULT_STRIPS = 8


@dataclass(frozen=True)
class FormatCastTiling:
    """Cores, rows per tile (multiple of 16), C0 strips per tile, ping-pong buffering."""

    cores: int
    m_tile: int
    n_strips: int
    double_buffer: bool = True


@dataclass(frozen=True)
class _Geom:
    batch: int
    m: int
    n: int
    c0: int
    dtype: str
    to_nz: bool

    @property
    def isz(self) -> int:
        return np.dtype(_np_name(self.dtype)).itemsize

    @property
    def m1(self) -> int:
        return math.ceil(self.m / FRACTAL_ROWS)

    @property
    def n1(self) -> int:
        return math.ceil(self.n / self.c0)


def _np_name(dtype: str) -> str:
    return "float16" if dtype == "bfloat16" else dtype


def _core_kind(soc: SocDescriptor) -> str:
    counts = soc.core_counts()
    if counts.get("aiv", 0):
        return "aiv"
    if counts.get("aicore", 0):
        return "aicore"
    raise NotImplementedError(f"format_cast on {soc.name}: no core with a UB")


def _ub_bytes(t: FormatCastTiling, g: _Geom) -> int:
    tile = t.m_tile * t.n_strips * g.c0 * g.isz
    return (2 if t.double_buffer else 1) * 2 * tile


def _tiles(t: FormatCastTiling, g: _Geom) -> int:
    return g.batch * math.ceil(g.m1 * FRACTAL_ROWS / t.m_tile) * math.ceil(g.n1 / t.n_strips)


def default_format_cast_tiling(soc: SocDescriptor, g: _Geom) -> FormatCastTiling:
    """``n_strips`` = min(N1, 8); ``m_tile`` fills a 32 KiB buffer, then shrinks (not below 16)
    until every core has a tile."""
    avail = soc.core_counts()[_core_kind(soc)]
    strips = min(g.n1, DEFAULT_STRIPS)
    rows = max(FRACTAL_ROWS, TILE_BUDGET_BYTES // (strips * g.c0 * g.isz)
               // FRACTAL_ROWS * FRACTAL_ROWS)
    rows = min(rows, g.m1 * FRACTAL_ROWS)
    t = FormatCastTiling(1, rows, strips)
    while t.m_tile > FRACTAL_ROWS and _tiles(t, g) < avail:
        t = FormatCastTiling(1, max(FRACTAL_ROWS, t.m_tile // 2 // 16 * 16), strips)
    return FormatCastTiling(max(1, min(avail, _tiles(t, g))), t.m_tile, t.n_strips)


def validate_format_cast_tiling(t: FormatCastTiling, soc: SocDescriptor, g: _Geom) -> None:
    """``t``'s type and fields, its core count and tiles against the SoC and the geometry."""
    from npusim.tiling_overrides import check_tiling_type

    check_tiling_type(t, FormatCastTiling, "format_cast")
    kind = _core_kind(soc)
    avail = soc.core_counts()[kind]
    tiles = _tiles(t, g) if t.m_tile > 0 and t.n_strips > 0 else 0
    if not 1 <= t.cores <= min(avail, max(tiles, 1)):
        raise ValueError(f"tiling.cores={t.cores}: must be in 1..{min(avail, max(tiles, 1))} "
                         f"({avail} {kind} cores, {tiles} tiles)")
    if t.m_tile <= 0 or t.m_tile % FRACTAL_ROWS:
        raise ValueError(f"tiling.m_tile={t.m_tile}: must be a positive multiple of 16")
    if t.n_strips <= 0:
        raise ValueError(f"tiling.n_strips={t.n_strips}: must be >= 1")
    ub = soc.core(kind).buffers["UB"].capacity_bytes
    need = _ub_bytes(t, g)
    if need > ub:
        raise ValueError(f"tiling needs {need} B of UB (2 tiles of m_tile x n_strips x C0 x "
                         f"{g.isz} B, {'double' if t.double_buffer else 'single'}-buffered) "
                         f"> {ub} B")


def build_format_cast(soc: SocDescriptor, g: _Geom, tiling: FormatCastTiling,
                      x: np.ndarray | None = None) -> Kernel:
    """The kernel for a batch of (M, N) matrices; ``x`` is the source storage (ND or NZ)."""
    from npusim.layouts import nz_c0

    validate_format_cast_tiling(tiling, soc, g)
    kind = _core_kind(soc)
    isz, c0, m1, n1 = g.isz, g.c0, g.m1, g.n1
    mpad = m1 * FRACTAL_ROWS
    nd_shape, nz_shape = (g.batch, g.m, g.n), (g.batch, n1, m1, FRACTAL_ROWS, c0)
    src_shape, dst_shape = (nd_shape, nz_shape) if g.to_nz else (nz_shape, nd_shape)
    gm = {"x": GMTensor("x", src_shape, g.dtype, x, "input"),
          "y": GMTensor("y", dst_shape, g.dtype, None, "output")}
    nd_row, strip = g.n * isz, mpad * c0 * isz  # GM strides: ND row, NZ strip
    nd_mat, nz_mat = g.m * nd_row, n1 * strip
    rtiles = math.ceil(mpad / tiling.m_tile)
    stiles = math.ceil(n1 / tiling.n_strips)
    units = [(b, r, s) for b in range(g.batch) for r in range(rtiles) for s in range(stiles)]
    base, extra = divmod(len(units), tiling.cores)
    nbuf = 2 if tiling.double_buffer else 1
    tile_elems = tiling.m_tile * tiling.n_strips * c0
    cores = []
    for ci in range(tiling.cores):
        prog = CoreProgram(ci, kind)
        cores.append(prog)
        bld = ProgramBuilder(prog, soc.core(kind))
        bufs = [(bld.alloc("UB", (tile_elems,), g.dtype, f"nd{i}"),
                 bld.alloc("UB", (tile_elems,), g.dtype, f"nz{i}")) for i in range(nbuf)]
        u0 = ci * base + min(ci, extra)
        mine = units[u0:u0 + base + (1 if ci < extra else 0)]
        q = VecInOut(bld, tuple(range(nbuf)))
        for b, rt, st in mine:
            i = q.load()
            ndb, nzb = bufs[i]
            r0, s0 = rt * tiling.m_tile, st * tiling.n_strips
            mr = min(tiling.m_tile, mpad - r0)
            ns = min(tiling.n_strips, n1 - s0)
            mv = max(0, min(mr, g.m - r0))  # >= 1: the padding rows are fewer than 16
            cv = min(ns * c0, g.n - s0 * c0)
            cvb = math.ceil(cv * isz / 32) * 32 // isz  # valid columns up to their 32 B block
            nd_ub = Region("UB", ndb.offset, (mv, cvb), g.dtype, row_stride_bytes=ns * c0 * isz)
            nz_ub = Region("UB", nzb.offset, (ns, mr * c0), g.dtype)
            nd_gm = Region("GM", b * nd_mat + r0 * nd_row + s0 * c0 * isz, (mv, cv), g.dtype,
                           "y" if g.to_nz is False else "x", nd_row)
            nz_gm = Region("GM", b * nz_mat + s0 * strip + r0 * c0 * isz, (ns, mr * c0),
                           g.dtype, "y" if g.to_nz else "x", strip)
            src_ub, dst_ub = (nd_ub, nz_ub) if g.to_nz else (nz_ub, nd_ub)
            if g.to_nz:
                bld.dma(nd_gm, nd_ub, name="ND rows GM->UB (pad to 32 B)")
            else:
                bld.dma(nz_gm, nz_ub, name="NZ strips GM->UB")
            q.compute(i)
            padded = mv < mr or cvb < ns * c0
            if g.to_nz and padded:
                bld.vop(VecOp.DUPLICATE, nz_ub, (), scalar=0, elements=ns * mr * c0,
                        name="Duplicate 0")
            moved = mv * cvb if g.to_nz else ns * mr * c0
            bld.vop(VecOp.TRANSPOSE_BLOCKS, dst_ub, (src_ub,), elements=moved,
                    scalar=None if c0 == nz_c0(g.dtype) else c0,
                    name="Copy block-strided (transpose 32 B blocks)")
            q.store(i)
            if g.to_nz:
                bld.dma(nz_ub, nz_gm, name="NZ strips UB->GM")
            else:
                out = Region("UB", ndb.offset, (mv, cv), g.dtype, row_stride_bytes=ns * c0 * isz)
                bld.dma(out, nd_gm, name="ND rows UB->GM (valid bytes)")
            q.stored(i)
        q.drain(oldest_first=True)
    meta = {"op": "format_cast", "direction": "ND->NZ" if g.to_nz else "NZ->ND",
            "batch": g.batch, "m": g.m, "n": g.n, "c0": c0}
    return Kernel("format_cast", gm, cores, meta)


def _geometry(x: Any, acl_format: Any, c0: int | None = None
              ) -> tuple[_Geom, tuple[int, ...], np.ndarray | None]:
    """(geometry, origin shape, source storage or None for a spec). Arrays get the operator's
    full validation; a spec's ``shape`` is the logical (origin) shape, ``npu_format`` its format.
    ``c0``: the NZ C0 when it is not the dtype's (torch_npu's ``customize_dtype``); an NZ array
    source has its storage's."""
    from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, nz_c0, origin_shape_of
    from npusim.ops.format_cast import SUPPORTED_DTYPES, validate_format_cast
    from npusim.spec import is_spec

    if is_spec(x):
        from npusim.layouts.formatted import check_npu_format

        src, dst = check_npu_format(x.npu_format, "x.npu_format"), acl_format
        dst = check_npu_format(acl_format, "acl_format")
        if x.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"x: dtype {x.dtype} not supported; must be one of "
                            f"{SUPPORTED_DTYPES}")
        origin, dtype, data = x.shape, x.dtype, None
    else:
        src, dst = validate_format_cast(x, acl_format)
        origin, dtype = origin_shape_of(x), np.asarray(x).dtype.name
        data = np.ascontiguousarray(np.asarray(x))
    if src == dst:
        raise ValueError(f"acl_format: x is already in format {dst}; npu_format_cast returns the "
                         "input itself and launches no kernel, so there is nothing to simulate")
    shape2 = origin if len(origin) >= 2 else ((*origin, 1) if origin else (1, 1))
    *batch, m, n = shape2
    if m == 0 or n == 0 or 0 in batch:
        raise ValueError(f"x: shape {tuple(origin)} is empty; nothing to simulate")
    if data is not None and dst != ACL_FORMAT_FRACTAL_NZ:
        c0 = int(data.shape[-1])
    c0 = nz_c0(dtype) if c0 is None else int(c0)
    if c0 <= 0 or c0 * np.dtype(_np_name(dtype)).itemsize % 32:
        raise NotImplementedError(f"c0={c0}: the program moves 32 B blocks; a C0 of "
                                  f"{dtype} that is not a whole number of them is not tiled")
    g = _Geom(int(np.prod(batch, dtype=np.int64)), int(m), int(n), c0, dtype,
              dst == ACL_FORMAT_FRACTAL_NZ)
    return g, tuple(origin), data


def plan_format_cast(soc: SocDescriptor, tiling: Any = None, *, x: Any, acl_format: Any,
                     c0: int | None = None) -> Plan:
    """Runner entry for ``format_cast`` (2 = ND, 29 = FRACTAL_NZ; ``c0`` as in _geometry)."""
    from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, FormattedArray
    from npusim.runner import Plan

    g, origin, data = _geometry(x, acl_format, c0)
    t = default_format_cast_tiling(soc, g) if tiling is None else tiling
    kern = build_format_cast(soc, g, t, data)

    def finish(o: dict[str, np.ndarray]) -> Any:
        y = o["y"]
        if g.to_nz:
            lead = origin[:-2] if len(origin) >= 2 else ()
            return FormattedArray(y.reshape(*lead, *y.shape[1:]), ACL_FORMAT_FRACTAL_NZ, origin)
        return y.reshape(origin)

    name = f"TransData {'ND->FRACTAL_NZ' if g.to_nz else 'FRACTAL_NZ->ND'} ({_core_kind(soc)})"
    return Plan(kern, name, t, data is not None, finish=finish)


def cli_format_cast(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run format_cast``: ND (--m, default 4096) x (--k, default 4096) of --dtype
    (float16) -> FRACTAL_NZ; ``--kernel nz2nd`` casts an NZ tensor back to ND."""
    from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, FormattedArray, nd_to_nz
    from npusim.numerics import np_dtype
    from npusim.spec import spec

    m, n, dt = ns.m or 4096, ns.k or 4096, ns.dtype or "float16"
    back = (ns.kernel or "") == "nz2nd"
    fmt = ACL_FORMAT_ND if back else ACL_FORMAT_FRACTAL_NZ
    if not functional:
        return {"x": spec((m, n), dt, npu_format=ACL_FORMAT_FRACTAL_NZ if back else
                          ACL_FORMAT_ND), "acl_format": fmt}
    x = (rng.standard_normal((m, n)) * 100).astype(np_dtype(dt))
    if back:
        x = FormattedArray(nd_to_nz(x), ACL_FORMAT_FRACTAL_NZ, (m, n))
    return {"x": x, "acl_format": fmt}


def check_format_cast(res: Any, op_args: dict[str, Any]) -> str:
    from npusim.ops.format_cast import reference_format_cast

    want = np.asarray(reference_format_cast(op_args["x"], op_args["acl_format"]))
    got = np.asarray(res.outputs)
    same = got.shape == want.shape and np.array_equal(got.view(np.uint8), want.view(np.uint8))
    return f"output storage equals npusim.layouts bit for bit: {same}"


def default_tiling_format_cast(soc: SocDescriptor, **op_args: Any) -> FormatCastTiling:
    g, _, _ = _geometry(op_args["x"], op_args["acl_format"], op_args.get("c0"))
    return default_format_cast_tiling(soc, g)


def _validate(soc: SocDescriptor, *, x: Any, acl_format: Any, c0: int | None = None) -> None:
    _geometry(x, acl_format, c0)


def _quantisation(op_args: dict[str, Any]) -> str:
    to = {2: "ND", 29: "FRACTAL_NZ"}.get(op_args["acl_format"], op_args["acl_format"])
    return f"no quantisation (cast to {to})"


OPERATOR = Operator(
    name="format_cast",
    plan=plan_format_cast,
    validate=_validate,
    default_tiling=default_tiling_format_cast,
    example_inputs=cli_format_cast,
    cli=CliSpec(
        "npu_format_cast ND <-> FRACTAL_NZ (TransData-like)",
        {"--m": "rows (default 4096)", "--k": "columns (default 4096)",
         "--dtype": "dtype (default float16)",
         "--kernel": "nd2nz (default) or nz2nd"},
        kernels=("nd2nz", "nz2nd")),
    cann_op_type="TransData",
    quantisation=_quantisation,
    check_output=check_format_cast,
)
