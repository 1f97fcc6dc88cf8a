"""Matmul tiling as a plain, validated data object; the default heuristic; legal-tiling enumeration.

:class:`MatmulTiling` mirrors the Ascend C matmul tiling data (``TCubeTiling`` plus the host-side
multi-core split); fields are snake_case, :meth:`MatmulTiling.ascendc_fields` gives the Ascend C
names. The tiling describes, per cube core:

* the core grid ``m_dim x n_dim x k_dim``; core (i, j, l) owns the single-core block
  ``C[i*single_core_m : (i+1)*single_core_m, j*single_core_n : ...]`` over
  ``K[l*single_core_k : ...]``;
* base blocks ``base_m x base_n`` (one L0C tile) computed in ``base_k`` slices (one L0A/L0B tile);
* L1 residency: an A buffer holds ``step_m*base_m x step_ka*base_k``, a B buffer
  ``step_kb*base_k x step_n*base_n``; ``depth_a1`` / ``depth_b1`` buffers of each (2 = double
  buffering). Ascend C's ``depthA1`` counts base blocks instead: ``depth_a1*step_m*step_ka``;
* L0 ping-pong flags ``db_l0a`` / ``db_l0b`` / ``db_l0c``;
* the traversal of base blocks inside a core (:meth:`MatmulTiling.block_sequence`).

Capacities come from the SoC descriptor (``soc.core("aic").buffers``; the coupled 310P core is
``"aicore"``), fractal shapes from hardware.md 1.5 (A fractal 16 x 32 B, B fractal 32 B x 16, L0C
fractal 16 x 16).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from npusim.hw.dtypes import DTYPE_BITS as ELEMENT_BITS
from npusim.isa.operands import element_bytes

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.hw.schema_core import CoreDescriptor
    from npusim.ops.program_stages import Buffer

# Bits per element of the dtypes a cube matmul reads or writes.
DTYPE_BITS = {d: ELEMENT_BITS[d] for d in ("int4", "int8", "float16", "bfloat16", "float32",
                                           "int32")}
CUBE_INPUT_DTYPES = ("int4", "int8", "float16", "bfloat16", "float32")
BLOCK_ORDERS = ("row_major", "col_major", "l2_swizzle")
FRACTAL_BYTES = 32  # one fractal row: k0 = 32 B / element size (hardware.md 1.5)
CUBE_MN = 16  # fractal rows of A and columns of B / L0C
MMAD_MAX = 4095  # max m / k / n of one Mmad instruction (hardware.md 1.5)
ACC_BYTES = 4  # L0C element: fp32 or int32

# Default-heuristic constants (see default_matmul_tiling).
PREFERRED_BASE = (128, 256)  # base M x N (or N x M) when it fits, as CANN's matmul tiling
BASE_K_BYTES = 128  # base K = 64 fp16/bf16, 128 int8, 32 fp32, 256 int4
# Bytes per cycle one cube core can be fed with in the heuristic's block-cost proxy (about the
# per-core L2 read rate of the 220x INI, 110 B/cycle, de-rated for ND2NZ and misses).
ASSUMED_FEED_BYTES_PER_CYCLE = 96.0


def k0_of(dtype: str) -> int:
    """Elements along K in one fractal (32 B): 16 fp16/bf16, 32 int8, 8 fp32, 64 int4."""
    return FRACTAL_BYTES * 8 // _bits(dtype, "in_dtype")


def _bits(dtype: str, arg: str) -> int:
    if dtype not in DTYPE_BITS:
        raise ValueError(f"{arg}={dtype!r}: unknown dtype; known: {sorted(DTYPE_BITS)}")
    return DTYPE_BITS[dtype]


def _bytes(elements: int, bits: int) -> int:
    return (elements * bits + 7) // 8


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


@dataclass(frozen=True)
class CubeTiling:
    """The resolved numbers a cube program needs (filled from an op's tiling object)."""

    base_m: int
    base_n: int
    base_k: int
    step_ka: int
    step_kb: int
    depth_a1: int
    depth_b1: int
    single_core_m: int
    single_core_n: int
    m_dim: int
    n_dim: int
    l0_db: bool = True
    l0c_db: bool = False
    order: str = "m_first"  # traversal of base blocks inside a core: m_first | n_first
    swizzle: int = 0  # > 0: L2 swizzle panels of this many base rows, each visited N-first
    k_dim: int = 1  # > 1: split-K over this many cube cores (mix kernel, AIV reduction)
    single_core_k: int = 0  # K per split-K core (0 = all of K)
    step_m: int = 1  # base blocks of M one L1 A buffer holds (reused across the group's N blocks)
    step_n: int = 1  # base blocks of N one L1 B buffer holds (reused across the group's M blocks)
    block_dim: int = 0  # > 0: base blocks dealt round robin over this many cores (no static grid)


def visit_order(t: CubeTiling, ms: Any, ns: Any) -> list[tuple[int, int]]:
    """(row, col) origins in the tiling's traversal: M outer, N outer, or swizzle panels of
    ``t.swizzle`` rows, each visited column by column."""
    ms_, ns_ = list(ms), list(ns)
    if t.swizzle > 0:
        return [(bm, bn) for p in range(0, len(ms_), t.swizzle) for bn in ns_
                for bm in ms_[p : p + t.swizzle]]
    if t.order == "n_first":
        return [(bm, bn) for bn in ns_ for bm in ms_]
    return [(bm, bn) for bm in ms_ for bn in ns_]


@dataclass(frozen=True)
class MatmulTiling:
    """One cube-matmul tiling (all sizes in elements unless the name says bits).

    ``block_dim`` > 0 replaces the static grid by a round-robin scheduler (CATLASS-style block
    loop ``for i = core; i < blocks; i += block_dim``): every base block of the matrix, in the
    ``block_order`` (swizzle panels included), goes to core ``i % block_dim``; the grid is then
    1 x 1 x 1 and the single-core block the whole matrix.

    ``block_order``: ``row_major`` visits a core's base blocks row by row (M outer, N inner; Ascend
    C ``MatrixTraverse::FIRSTN``), ``col_major`` column by column (N outer, M inner; ``FIRSTM``),
    ``l2_swizzle`` panels of ``swizzle`` base rows, each visited column by column, so that the A
    panel and one B column tile are reused while the cores of the same grid row / column read the
    same tiles (L2 hits on large shapes). See :meth:`block_sequence`.
    """

    base_m: int
    base_n: int
    base_k: int
    single_core_m: int
    single_core_n: int
    single_core_k: int
    m_dim: int = 1
    n_dim: int = 1
    k_dim: int = 1
    step_m: int = 1
    step_n: int = 1
    step_ka: int = 1
    step_kb: int = 1
    depth_a1: int = 2
    depth_b1: int = 2
    db_l0a: bool = True
    db_l0b: bool = True
    db_l0c: bool = False
    block_order: str = "row_major"
    swizzle: int = 1
    block_dim: int = 0  # > 0: round-robin scheduler (base blocks dealt over block_dim cores)
    in_bits: int | None = None  # None: derived from the operand dtypes (:meth:`for_dtypes`)
    out_bits: int | None = None
    acc_bits: int = 32

    def for_dtypes(self, in_dtype: str, out_dtype: str) -> MatmulTiling:
        """This tiling with ``in_bits`` / ``out_bits`` taken from the call's dtypes (a value
        given by hand must agree: :func:`validate_matmul_tiling` checks it)."""
        return replace(self, in_bits=_bits(in_dtype, "in_dtype"),
                       out_bits=_bits(out_dtype, "out_dtype"))

    def cube_tiling(self) -> CubeTiling:
        """The numbers the cube program reads (``block_order`` as its traversal: ``row_major``
        = M outer, ``col_major`` = N outer, ``l2_swizzle`` = panels of ``swizzle`` rows)."""
        return CubeTiling(
            base_m=self.base_m, base_n=self.base_n, base_k=self.base_k,
            step_ka=self.step_ka, step_kb=self.step_kb,
            depth_a1=self.depth_a1, depth_b1=self.depth_b1,
            single_core_m=self.single_core_m, single_core_n=self.single_core_n,
            m_dim=self.m_dim, n_dim=self.n_dim,
            l0_db=self.db_l0a and self.db_l0b, l0c_db=self.db_l0c,
            order="n_first" if self.block_order == "col_major" else "m_first",
            swizzle=self.swizzle if self.block_order == "l2_swizzle" else 0,
            k_dim=self.k_dim, single_core_k=self.single_core_k,
            step_m=self.step_m, step_n=self.step_n, block_dim=self.block_dim,
        )

    @property
    def used_cores(self) -> int:
        return self.block_dim or self.m_dim * self.n_dim * self.k_dim

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ascendc_fields(self) -> dict[str, Any]:
        """The tiling under Ascend C ``TCubeTiling`` / host-tiling names."""
        return {
            "usedCoreNum": self.used_cores,
            "mDim": self.m_dim,
            "nDim": self.n_dim,
            "kDim": self.k_dim,
            "singleCoreM": self.single_core_m,
            "singleCoreN": self.single_core_n,
            "singleCoreK": self.single_core_k,
            "baseM": self.base_m,
            "baseN": self.base_n,
            "baseK": self.base_k,
            "stepM": self.step_m,
            "stepN": self.step_n,
            "stepKa": self.step_ka,
            "stepKb": self.step_kb,
            "depthA1": self.depth_a1 * self.step_m * self.step_ka,
            "depthB1": self.depth_b1 * self.step_n * self.step_kb,
            "dbL0A": 2 if self.db_l0a else 1,
            "dbL0B": 2 if self.db_l0b else 1,
            "dbL0C": 2 if self.db_l0c else 1,
            # ORDER_M (0) = M offset moves first; l2_swizzle is M-first inside each panel.
            "iterateOrder": 1 if self.block_order == "row_major" else 0,
        }

    def block_sequence(self, rows: int, cols: int) -> list[tuple[int, int]]:
        """Origins (row, col) of the base blocks of a ``rows x cols`` single-core block, in the
        order the core visits them (the cube program's :func:`visit_order`)."""
        return visit_order(self.cube_tiling(), range(0, rows, self.base_m),
                           range(0, cols, self.base_n))


def cube_local_bytes(t: MatmulTiling, in_dtype: str, core: CoreDescriptor, *, with_bias: bool,
                     quant_vector: bool) -> dict[str, int]:
    """Bytes per local buffer the :class:`~npusim.ops.cube_emitter.CubeEmitter` of ``t``
    allocates on ``core`` (``cube_emitter_buffers``, the one statement of its buffers), plus
    ``A1`` / ``B1``: one L1 load of A / B, for the error text.

    Two rows stay sized as the tiling declares, not as the emitter builds it, so that legality
    is what it was: a tiling with ``db_l0a != db_l0b`` is sized per flag (Ascend C's dbL0A /
    dbL0B) though the emitter, with one ``l0_db``, single-buffers both; and with bias on a core
    without a BiasTable (the coupled 310P) L1 is still charged the bias row (base_n x 4 B)
    although the emitter stages it in UB."""
    # local import: cube_emitter imports CubeTiling / visit_order from this module
    from npusim.ops.cube_emitter import cube_emitter_buffers

    def total(bufs: dict[str, list[Buffer]], name: str) -> int:
        return sum(math.ceil(math.prod(shape) * element_bytes(dt)) for _, shape, dt in
                   bufs.get(name, []))

    ct = t.cube_tiling()
    bufs = cube_emitter_buffers(ct, in_dtype, core, bias=with_bias, quant_vector=quant_vector)
    out = {b: total(bufs, b) for b in bufs}
    if t.db_l0a != t.db_l0b:
        for buf, db in (("L0A", t.db_l0a), ("L0B", t.db_l0b)):
            out[buf] = total(cube_emitter_buffers(replace(ct, l0_db=db), in_dtype, core,
                                                  bias=False), buf)
    a1 = {name: math.ceil(math.prod(shape) * element_bytes(dt)) for name, shape, dt in
          bufs["L1"]}
    out["A1"], out["B1"] = a1["A1_0"], a1["B1_0"]
    if with_bias and "BT" not in core.buffers:
        out["L1"] += t.base_n * ACC_BYTES
    return out


# -- SoC accessors ------------------------------------------------------------------------------


def cube_core_kind(soc: SocDescriptor) -> str:
    """``aic`` on split SoCs (A2 / A3), ``aicore`` on the coupled 310P."""
    counts = soc.core_counts()
    for kind in ("aic", "aicore"):
        if counts.get(kind, 0) > 0:
            return kind
    raise ValueError(f"soc={getattr(soc, 'name', soc)!r}: no cube cores (aic / aicore) in {counts}")


# -- validation ---------------------------------------------------------------------------------


def _check_dtypes(in_dtype: str, out_dtype: str) -> None:
    if in_dtype not in CUBE_INPUT_DTYPES:
        raise ValueError(
            f"in_dtype={in_dtype!r}: the cube reads one of {CUBE_INPUT_DTYPES}"
        )
    _bits(out_dtype, "out_dtype")


_INT_FIELDS = (
    "base_m", "base_n", "base_k", "single_core_m", "single_core_n", "single_core_k",
    "m_dim", "n_dim", "k_dim", "step_m", "step_n", "step_ka", "step_kb",
    "depth_a1", "depth_b1", "swizzle",
)


def _fail(field: str, value: Any, rule: str) -> None:
    raise ValueError(f"tiling.{field}={value!r}: {rule}")


def validate_matmul_tiling(
    tiling: MatmulTiling,
    m: int,
    k: int,
    n: int,
    in_dtype: str,
    out_dtype: str,
    soc: SocDescriptor,
    *,
    with_bias: bool = False,
    quant_vector: bool = False,
) -> None:
    """Raise ValueError naming the field and the rule if ``tiling`` is not legal for the matmul
    (m x k) @ (k x n) of ``in_dtype`` -> ``out_dtype`` on ``soc``.

    Checks: positive integers; fractal alignment (base M/N multiple of 16, base K of k0); Mmad
    limits; base block not larger than the aligned single-core block; the grid covers the matrix
    without an empty row / column of cores and fits the cube cores; step Ka / Kb multiples of each
    other; L1 (A and B buffers x depth, bias staging), L0A / L0B (x2 with ping-pong), L0C (x2
    with ping-pong), BT (bias) and, on coupled cores, UB (L0C tile staging) capacities.
    """
    if not isinstance(tiling, MatmulTiling):
        raise TypeError(f"tiling: expected MatmulTiling, got {type(tiling).__name__}")
    _check_dtypes(in_dtype, out_dtype)
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}={v!r}: must be a positive integer")
    t = tiling
    for f in _INT_FIELDS:
        v = getattr(t, f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            _fail(f, v, "must be a positive integer")
    for f in ("db_l0a", "db_l0b", "db_l0c"):
        if not isinstance(getattr(t, f), bool):
            _fail(f, getattr(t, f), "must be a bool")
    if t.block_order not in BLOCK_ORDERS:
        _fail("block_order", t.block_order, f"must be one of {BLOCK_ORDERS}")
    in_bits, out_bits = DTYPE_BITS[in_dtype], DTYPE_BITS[out_dtype]
    if t.in_bits is not None and t.in_bits != in_bits:
        _fail("in_bits", t.in_bits, f"must be {in_bits} for in_dtype {in_dtype} (or None: "
              "derived)")
    if t.out_bits is not None and t.out_bits != out_bits:
        _fail("out_bits", t.out_bits, f"must be {out_bits} for out_dtype {out_dtype} (or None: "
              "derived)")
    if t.acc_bits != 32:
        _fail("acc_bits", t.acc_bits, "L0C accumulates in 32-bit (fp32 / int32)")
    k0 = k0_of(in_dtype)
    for f in ("base_m", "base_n"):
        v = getattr(t, f)
        if v % CUBE_MN:
            _fail(f, v, f"must be a multiple of the fractal size {CUBE_MN}")
        if v > MMAD_MAX:
            _fail(f, v, f"must be <= {MMAD_MAX} (Mmad limit)")
    if t.base_k % k0:
        _fail("base_k", t.base_k, f"must be a multiple of k0={k0} (32 B of {in_dtype})")
    if t.base_k > MMAD_MAX:
        _fail("base_k", t.base_k, f"must be <= {MMAD_MAX} (Mmad limit)")
    # Grid and single-core blocks.
    for dim, size, sc, grid, unit in (
        ("m", m, "single_core_m", "m_dim", CUBE_MN),
        ("n", n, "single_core_n", "n_dim", CUBE_MN),
        ("k", k, "single_core_k", "k_dim", k0),
    ):
        s, g = getattr(t, sc), getattr(t, grid)
        if dim == "k" and g == 1 and s < size:
            _check_single_core_split_k(t, k, k0, out_dtype, soc)
            continue
        if s * g < size:
            _fail(sc, s, f"{grid}={g} x {sc}={s} does not cover {dim}={size}")
        if (g - 1) * s >= size:
            _fail(grid, g, f"{grid}-1 cores of {sc}={s} already cover {dim}={size} (idle cores)")
        base = {"m": t.base_m, "n": t.base_n, "k": t.base_k}[dim]
        limit = _align(min(s, size), unit)
        if base > limit:
            _fail(f"base_{dim}", base, f"must be <= {sc} aligned to {unit} ({limit})")
    kind = cube_core_kind(soc)
    cores = int(soc.core_counts()[kind])
    if not isinstance(t.block_dim, int) or isinstance(t.block_dim, bool) or t.block_dim < 0:
        _fail("block_dim", t.block_dim, "must be 0 (static grid) or a positive core count")
    if t.block_dim and (t.m_dim, t.n_dim, t.k_dim) != (1, 1, 1):
        _fail("block_dim", t.block_dim, "the round-robin scheduler deals base blocks itself: "
              f"m_dim, n_dim, k_dim must be 1 (got {t.m_dim}, {t.n_dim}, {t.k_dim})")
    if t.used_cores > cores:
        _fail("m_dim", t.m_dim, f"grid {t.m_dim}x{t.n_dim}x{t.k_dim} needs more than the "
              f"{cores} {kind} cores of {getattr(soc, 'name', soc)}")
    if t.k_dim > 1:
        if getattr(soc, "organisation", "split") != "split":
            _fail("k_dim", t.k_dim, f"split-K reduces on the AIVs of a split SoC; "
                  f"{getattr(soc, 'name', soc)} is coupled")
        if t.single_core_k % k0:
            _fail("single_core_k", t.single_core_k, f"with k_dim > 1 each K slice must start on "
                  f"a fractal boundary: a multiple of k0={k0}")
    if max(t.step_ka, t.step_kb) % min(t.step_ka, t.step_kb):
        _fail("step_ka", t.step_ka, f"step_ka and step_kb={t.step_kb} must be multiples of each "
              "other")
    # Capacities.
    core = soc.core(kind)
    staged = [(" + bias", t.base_n * ACC_BYTES)] if with_bias else []
    if quant_vector:
        # FixPipe's per-column quant parameters (uint64, staged GM -> L1 -> FB per tile, the
        # matmul library's SetQuantVector path)
        staged.append((" + quant params", t.base_n * 8))
    needs = cube_local_bytes(t, in_dtype, core, with_bias=with_bias, quant_vector=quant_vector)
    for buf, flag, size_field, rows, cols in (
        ("L0A", "db_l0a", "base_m", t.base_m, t.base_k),
        ("L0B", "db_l0b", "base_n", t.base_k, t.base_n),
    ):
        pingpong = getattr(t, flag)
        need = needs[buf]
        cap = core.capacity(buf)
        if cap is not None and need > cap:
            field = flag if pingpong else size_field
            _fail(field, getattr(t, field), f"{buf} needs a {rows}x{cols} {in_dtype} tile"
                  f"{' x2 (ping-pong)' if pingpong else ''} = {need} B > {cap} B")
    l0c_need = needs["L0C"]
    l0c = core.capacity("L0C")
    if l0c is not None and l0c_need > l0c:
        _fail("db_l0c" if t.db_l0c else "base_n", t.db_l0c if t.db_l0c else t.base_n,
              f"L0C needs base_m*base_n*4{' x2 (ping-pong)' if t.db_l0c else ''} = {l0c_need} B"
              f" > {l0c} B")
    if with_bias:
        bt = core.capacity("BT")
        if bt is not None and t.base_n * ACC_BYTES > bt:
            _fail("base_n", t.base_n, f"bias table needs base_n*4 = {t.base_n * ACC_BYTES} B > BT "
                  f"{bt} B")
    a1, b1 = needs["A1"], needs["B1"]
    if quant_vector:
        fb = core.capacity("FB")
        if fb is not None and t.base_n * 8 > fb:
            _fail("base_n", t.base_n, f"per-column quant parameters need base_n*8 = "
                  f"{t.base_n * 8} B > FB {fb} B")
    l1_need = needs["L1"]
    l1 = core.capacity("L1")
    if l1 is not None and l1_need > l1:
        txt = "".join(name for name, _ in staged)
        _fail("step_ka", t.step_ka, f"L1 needs depth_a1*A1 + depth_b1*B1{txt} = "
              f"{t.depth_a1}*{a1} + {t.depth_b1}*{b1}{txt} = {l1_need} B > L1 {l1} B")
    if getattr(core, "fixpipe", None) is None and "UB" in core.buffers:
        # next to the L0C tile(s): the bias row (broadcast UB -> L0C) and, for an integer
        # matmul's int8 / fp16 output, its per-column dequant parameters (L0C -> UB VDEQ copy)
        ub = core.capacity("UB")
        extra = [(f"bias {t.base_n}*4", t.base_n * ACC_BYTES)] if with_bias else []
        if in_bits <= 8 and out_dtype in ("int8", "float16"):
            extra.append((f"deq params {t.base_n}*8", t.base_n * 8))
        ub_need = l0c_need + sum(b for _, b in extra)
        if ub is not None and ub_need > ub:
            what = "".join(f" + {name}" for name, _ in extra)
            _fail("base_n", t.base_n, f"coupled core stages the L0C tile(s){what} in UB: "
                  f"{ub_need} B > UB {ub} B")


def _check_single_core_split_k(t: MatmulTiling, k: int, k0: int, out_dtype: str,
                               soc: SocDescriptor) -> None:
    """single_core_k < k with k_dim = 1: each core runs its K in slices of single_core_k (K-outer
    loop) and FixPipe adds every slice's partial atomically into the zeroed GM output, so the
    output must be the 32-bit accumulator dtype (an fp16 atomic add would round each partial)."""
    if t.single_core_k % k0:
        _fail("single_core_k", t.single_core_k, f"single-core split-K slices must start on a "
              f"fractal boundary: a multiple of k0={k0}")
    if out_dtype not in ("float32", "int32"):
        _fail("single_core_k", t.single_core_k, f"single-core split-K (single_core_k < k={k}) "
              f"adds partials atomically into GM: out_dtype must be float32 / int32, not "
              f"{out_dtype}")
    if t.base_k > t.single_core_k:
        _fail("base_k", t.base_k, f"must be <= single_core_k={t.single_core_k}")
    if getattr(soc, "organisation", "split") != "split":
        _fail("single_core_k", t.single_core_k, "single-core split-K on a coupled core (FixPipe-"
              "less 310P) is not modelled: its UB -> GM drain has no atomic path here")


# -- default heuristic --------------------------------------------------------------------------


def _best_grid(mb: int, nb: int, cores: int) -> tuple[int, int, int]:
    """(blocks per core, m_dim, n_dim) minimising blocks per core, then m_dim + n_dim (less
    operand re-reading), then preferring n_dim >= m_dim."""
    best = None
    for md in range(1, min(mb, cores) + 1):
        nd = min(nb, cores // md)
        # Use the smallest n_dim giving the same blocks per core (fewer idle cores).
        per_n = -(-nb // nd)
        nd = -(-nb // per_n)
        per_m = -(-mb // md)
        md_eff = -(-mb // per_m)
        key = (per_m * per_n, md_eff + nd, md_eff > nd)
        cand = (key, md_eff, nd)
        if best is None or cand[0] < best[0]:
            best = cand
    assert best is not None
    return best[0][0], best[1], best[2]


def _feed_cost(bm: int, bn: int, in_dtype: str, macs_per_cycle: float) -> float:
    """Cycles per k0-step of one base block: cube time vs the time to feed its A and B slices."""
    k0 = k0_of(in_dtype)
    compute = bm * bn * k0 / macs_per_cycle
    feed = (bm + bn) * FRACTAL_BYTES / ASSUMED_FEED_BYTES_PER_CYCLE
    return max(compute, feed)


def _macs(soc: SocDescriptor, kind: str, in_dtype: str) -> float:
    """The cube's MACs per cycle for ``in_dtype`` (the default-tiling heuristic's rate); a cube
    descriptor without a rate for the dtype (ValueError) ranks with the fp16 fractal rate."""
    cube: Any = getattr(soc.core(kind), "cube", None)
    if cube is not None:
        try:
            return float(cube.macs_per_cycle(in_dtype))
        except ValueError:  # the cube does not list this dtype
            pass
    return 4096.0 * 16 / DTYPE_BITS[in_dtype]


def _fit_steps(t: MatmulTiling, m: int, k: int, n: int, in_dtype: str, out_dtype: str,
               soc: SocDescriptor,
               with_bias: bool, quant_vector: bool = False) -> MatmulTiling | None:
    """Largest equal power-of-two stepKa = stepKb (not beyond K) with double-buffered L1, else
    single-buffered; None if even that does not fit."""
    ksteps = -(-t.single_core_k // t.base_k)
    for depth in (2, 1):
        s = 1
        while s * 2 <= ksteps:
            s *= 2
        while s >= 1:
            cand = replace(t, step_ka=s, step_kb=s, depth_a1=depth, depth_b1=depth)
            try:
                validate_matmul_tiling(cand, m, k, n, in_dtype, out_dtype, soc,
                                       with_bias=with_bias, quant_vector=quant_vector)
                return cand
            except ValueError:
                s //= 2
    return None


def default_matmul_tiling(
    m: int,
    k: int,
    n: int,
    in_dtype: str,
    out_dtype: str,
    soc: SocDescriptor,
    trans_b: bool = False,
    *,
    with_bias: bool = False,
    split_k: bool = False,
    quant_vector: bool = False,
    n_unit: int = CUBE_MN,
) -> MatmulTiling:
    """The documented default heuristic (in the spirit of CANN's matmul tiling; not a copy of it).

    ``n_unit``: base N (and so every core's N block) is a multiple of it - the C0 of a B stored
    FRACTAL_NZ along N (32 for int8), whose windows start on C0-column strips.

    1. Base K = 128 B of input (64 fp16/bf16, 128 int8, 32 fp32), clipped to K aligned to k0.
    2. Base M x N candidates 128x256 and 256x128 (the CANN sizes, filling L0C 128 KiB without
       ping-pong), then 128x128, 64x128, 128x64, 64x64, 32x64, 64x32, 32x32, 16x.. , each clipped
       to M / N aligned to 16, and only if L0A / L0B fit with ping-pong.
    3. For each candidate, the core grid (m_dim x n_dim <= cube cores) minimising base blocks per
       core; the candidate minimising ``blocks per core x block cost`` wins, where block cost =
       max(cube cycles, feed cycles at ASSUMED_FEED_BYTES_PER_CYCLE) per k0-step. Ties prefer the
       larger block, then 128x256 when N >= M (256x128 otherwise).
    4. stepKa = stepKb = the largest power of two that fits L1 with double buffering (4 for
       128x256x64 fp16 on a 512 KiB L1); L0C ping-pong when two tiles fit.
    5. Block order ``l2_swizzle`` when A + B exceed half the L2 (panels sized so the panels of all
       grid rows fit a quarter of it), else ``row_major``. ``trans_b`` does not change the choice.
    6. Only when ``split_k`` (the operator can reduce partials on the AIVs of a split SoC) and the
       grid leaves at least half the cube cores idle (small M x N): K is split over
       ``k_dim = min(idle-free cores // grid, K // SPLIT_K_MIN_BYTES-worth of K)`` cores, each
       slice a multiple of base K; not when that gives fewer than 2 slices.
    """
    _check_dtypes(in_dtype, out_dtype)
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}={v!r}: must be a positive integer")
    kind = cube_core_kind(soc)
    cores = int(soc.core_counts()[kind])
    in_bits = DTYPE_BITS[in_dtype]
    k0 = k0_of(in_dtype)
    base_k = min(BASE_K_BYTES * 8 // in_bits, _align(k, k0))
    macs = _macs(soc, kind, in_dtype)
    pm, pn = PREFERRED_BASE if n >= m else PREFERRED_BASE[::-1]
    shapes = [(pm, pn), (pn, pm), (128, 128), (64, 128), (128, 64), (64, 64), (32, 64),
              (64, 32), (32, 32), (16, 32), (32, 16), (16, 16)]
    best = None
    for rank, (bm, bn) in enumerate(shapes):
        if bn % n_unit:
            continue
        bm, bn = min(bm, _align(m, CUBE_MN)), min(bn, _align(n, n_unit))
        if bn > _align(n, CUBE_MN):
            # one N block starting at 0 (on a C0 strip): it needs no more than N aligned to 16
            bn = _align(n, CUBE_MN)
        mb, nb = -(-m // bm), -(-n // bn)
        per_core, md, nd = _best_grid(mb, nb, cores)
        cost = per_core * _feed_cost(bm, bn, in_dtype, macs)
        t = MatmulTiling(
            base_m=bm, base_n=bn, base_k=base_k,
            single_core_m=min(m, -(-mb // md) * bm), single_core_n=min(n, -(-nb // nd) * bn),
            single_core_k=k, m_dim=md, n_dim=nd,
            in_bits=in_bits, out_bits=DTYPE_BITS[out_dtype],
        )
        t = replace(t, db_l0c=2 * bm * bn * ACC_BYTES <= (soc.core(kind).capacity("L0C") or 0))
        fitted = _fit_steps(t, m, k, n, in_dtype, out_dtype, soc, with_bias, quant_vector)
        if fitted is None and t.db_l0c:
            fitted = _fit_steps(replace(t, db_l0c=False), m, k, n, in_dtype, out_dtype, soc,
                                with_bias, quant_vector)
        if fitted is None:
            continue
        key = (cost, -bm * bn, rank)
        if best is None or key < best[0]:
            best = (key, fitted)
    if best is None:
        raise ValueError(
            f"no legal tiling for m={m} k={k} n={n} {in_dtype}->{out_dtype} on "
            f"{getattr(soc, 'name', soc)}: even 16x16 base blocks do not fit its buffers"
        )
    t = best[1]
    if split_k:
        t = _with_split_k(t, m, k, n, in_dtype, out_dtype, soc, with_bias, quant_vector)
    return _with_block_order(t, m, k, n, in_dtype, soc)


def tiling_for_tiles(
    m: int, k: int, n: int, in_dtype: str, out_dtype: str, soc: SocDescriptor, *, base_m: int,
    base_n: int, base_k: int, with_bias: bool = False, quant_vector: bool = False,
    **fields: Any,
) -> MatmulTiling:
    """"My tile sizes, your core grid": a legal tiling with the caller's base block and the core
    grid, single-core blocks and (unless given in ``fields``) steps / L1 depths the default
    heuristic would pick for it: the grid minimising base blocks per core (then m_dim + n_dim),
    the largest stepKa = stepKb fitting double-buffered L1. Other ``fields`` (``step_m``,
    ``block_order``, ``db_l0c`` ...) are kept as given. Raises ValueError naming the field if
    the result is not legal."""
    _check_dtypes(in_dtype, out_dtype)
    for name, v in (("m", m), ("k", k), ("n", n), ("base_m", base_m), ("base_n", base_n),
                    ("base_k", base_k)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}={v!r}: must be a positive integer")
    cores = int(soc.core_counts()[cube_core_kind(soc)])
    mb, nb = -(-m // base_m), -(-n // base_n)
    _, md, nd = _best_grid(mb, nb, cores)
    t = MatmulTiling(base_m=base_m, base_n=base_n, base_k=base_k,
                     single_core_m=min(m, -(-mb // md) * base_m),
                     single_core_n=min(n, -(-nb // nd) * base_n), single_core_k=k,
                     m_dim=md, n_dim=nd).for_dtypes(in_dtype, out_dtype)
    steps_given = {"step_ka", "step_kb", "depth_a1", "depth_b1"} & set(fields)
    t = replace(t, **fields)
    if not steps_given:
        fitted = _fit_steps(t, m, k, n, in_dtype, out_dtype, soc, with_bias, quant_vector)
        if fitted is None:
            validate_matmul_tiling(t, m, k, n, in_dtype, out_dtype, soc, with_bias=with_bias,
                                   quant_vector=quant_vector)
        t = fitted or t
    validate_matmul_tiling(t, m, k, n, in_dtype, out_dtype, soc, with_bias=with_bias,
                           quant_vector=quant_vector)
    return t


SPLIT_K_MIN_BYTES = 2048  # least K per split-K core, in bytes of input (1024 fp16, 2048 int8)


def _with_split_k(t: MatmulTiling, m: int, k: int, n: int, in_dtype: str, out_dtype: str,
                  soc: SocDescriptor, with_bias: bool, quant_vector: bool = False) -> MatmulTiling:
    if getattr(soc, "organisation", "split") != "split" or "aiv" not in soc.core_counts():
        return t
    cores = int(soc.core_counts()[cube_core_kind(soc)])
    grid = t.m_dim * t.n_dim
    if 2 * grid > cores:
        return t
    kd = min(cores // grid, k // (SPLIT_K_MIN_BYTES * 8 // DTYPE_BITS[in_dtype]))
    if kd < 2:
        return t
    sck = _align(-(-k // kd), t.base_k)
    kd = -(-k // sck)
    if kd < 2:
        return t
    fitted = _fit_steps(replace(t, k_dim=kd, single_core_k=sck), m, k, n, in_dtype, out_dtype,
                        soc, with_bias, quant_vector)
    return fitted if fitted is not None else t


def _with_block_order(t: MatmulTiling, m: int, k: int, n: int, in_dtype: str,
                      soc: SocDescriptor) -> MatmulTiling:
    l2 = _l2_bytes(soc)
    bits = DTYPE_BITS[in_dtype]
    footprint = _bytes(m * k, bits) + _bytes(k * n, bits)
    if l2 is None or footprint <= l2 // 2:
        return t
    rows = -(-t.single_core_m // t.base_m)
    panel_bytes = t.m_dim * _bytes(t.base_m * k, bits)  # one base row of A for every grid row
    swizzle = max(1, min(rows, (l2 // 4) // max(1, panel_bytes)))
    return replace(t, block_order="l2_swizzle", swizzle=swizzle)


def _l2_bytes(soc: SocDescriptor) -> int | None:
    try:
        return int(soc.memory.l2.capacity_bytes)
    except AttributeError:
        return None


# -- enumeration --------------------------------------------------------------------------------


def _pow2_multiples(unit: int, limit: int) -> list[int]:
    out, v = [], unit
    while v <= limit:
        out.append(v)
        v *= 2
    if limit not in out and limit % unit == 0:
        out.append(limit)
    return out


def enumerate_matmul_tilings(
    m: int,
    k: int,
    n: int,
    in_dtype: str,
    out_dtype: str,
    soc: SocDescriptor,
    trans_b: bool = False,
    *,
    with_bias: bool = False,
    quant_vector: bool = False,
    block_orders: tuple[str, ...] = ("row_major", "col_major"),
    bases: tuple[tuple[int, int], ...] | None = None,
    k_dims: tuple[int, ...] = (1,),
) -> Iterator[MatmulTiling]:
    """Yield legal tilings (each passes :func:`validate_matmul_tiling`), lazily.

    Space: base M / N = 16 x 2^i up to M / N aligned to 16 (and that aligned size itself), base K
    = k0 x 2^i up to K aligned to k0; per (base M, base N) the grids m_dim (1..) x the largest
    useful n_dim; stepKa = stepKb and (2s, s), (s, 2s) powers of two; L1 depth 2 then 1; L0
    ping-pong on / off; ``block_orders``; ``k_dims`` (default no split-K): each k_dim > 1 gives
    K slices of ``ceil(K / k_dim)`` aligned to base K (skipped where the grid would not fit the
    cores or the slices would leave a core idle). Larger blocks come first. ``bases`` restricts
    the (base M, base N) pairs.
    """
    _check_dtypes(in_dtype, out_dtype)
    for o in block_orders:
        if o not in BLOCK_ORDERS or o == "l2_swizzle":
            raise ValueError(f"block_orders: {o!r} is not one of ('row_major', 'col_major')")
    kind = cube_core_kind(soc)
    cores = int(soc.core_counts()[kind])
    k0 = k0_of(in_dtype)
    in_bits, out_bits = DTYPE_BITS[in_dtype], DTYPE_BITS[out_dtype]
    bms = sorted(_pow2_multiples(CUBE_MN, min(_align(m, CUBE_MN), 1024)), reverse=True)
    bns = sorted(_pow2_multiples(CUBE_MN, min(_align(n, CUBE_MN), 1024)), reverse=True)
    bks = sorted(_pow2_multiples(k0, min(_align(k, k0), 4 * BASE_K_BYTES * 8 // in_bits)),
                 reverse=True)
    pairs = [(bm, bn) for bm in bms for bn in bns]
    if bases is not None:
        pairs = [p for p in pairs if p in set(bases)]
    for bm, bn in pairs:
        mb, nb = -(-m // bm), -(-n // bn)
        grids = []
        for md in range(1, min(mb, cores) + 1):
            per_m = -(-mb // md)
            if -(-mb // per_m) != md:
                continue  # same split as a smaller m_dim
            nd = min(nb, cores // md)
            per_n = -(-nb // nd)
            grids.append((md, -(-nb // per_n), per_m, per_n))
        splits = []
        for bk in bks:
            for kd in k_dims:
                sck = k if kd == 1 else _align(-(-k // kd), bk)
                if kd == 1 or -(-k // sck) == kd:
                    splits.append((bk, kd, sck))
        for md, nd, per_m, per_n in grids:
            for bk, kd, sck in splits:
                if md * nd * kd > cores:
                    continue
                ksteps = -(-sck // bk)
                steps = []
                s = 1
                while s <= ksteps:
                    steps.append((s, s))
                    if 2 * s <= ksteps:
                        steps += [(2 * s, s), (s, 2 * s)]
                    s *= 2
                for ska, skb in steps:
                    for depth in (2, 1):
                        for dba, dbc in ((True, False), (True, True), (False, False)):
                            for order in block_orders:
                                t = MatmulTiling(
                                    base_m=bm, base_n=bn, base_k=bk,
                                    single_core_m=min(m, per_m * bm),
                                    single_core_n=min(n, per_n * bn), single_core_k=sck,
                                    m_dim=md, n_dim=nd, k_dim=kd, step_ka=ska, step_kb=skb,
                                    depth_a1=depth, depth_b1=depth, db_l0a=dba, db_l0b=dba,
                                    db_l0c=dbc, block_order=order,
                                    in_bits=in_bits, out_bits=out_bits,
                                )
                                try:
                                    validate_matmul_tiling(t, m, k, n, in_dtype, out_dtype,
                                                           soc, with_bias=with_bias,
                                                           quant_vector=quant_vector)
                                except ValueError:
                                    continue
                                yield t


def tiling_from_dict(d: dict[str, Any],
                     base: Callable[[], MatmulTiling] | None = None) -> MatmulTiling:
    """A tiling from snake_case fields or Ascend C names (``baseM``...; depthA1 in base blocks).
    A dict that gives every required field is a whole tiling (the rest take their defaults);
    one that does not takes the others from ``base()`` (the call's default tiling), as
    ``npusim run --tiling`` does; without ``base`` a missing field is a ValueError naming it."""
    if not isinstance(d, dict):
        raise TypeError(f"tiling: expected a dict, got {type(d).__name__}")
    names = {f: f for f in MatmulTiling.__dataclass_fields__}
    camel = {
        "baseM": "base_m", "baseN": "base_n", "baseK": "base_k",
        "singleCoreM": "single_core_m", "singleCoreN": "single_core_n",
        "singleCoreK": "single_core_k", "mDim": "m_dim", "nDim": "n_dim", "kDim": "k_dim",
        "stepM": "step_m", "stepN": "step_n", "stepKa": "step_ka", "stepKb": "step_kb",
    }
    out: dict[str, Any] = {}
    for key, v in d.items():
        if key in names:
            out[key] = v
        elif key in camel:
            out[camel[key]] = v
        elif key in ("depthA1", "depthB1", "dbL0A", "dbL0B", "dbL0C", "iterateOrder",
                     "usedCoreNum"):
            continue
        else:
            raise ValueError(f"tiling: unknown field {key!r}; fields are "
                             f"{', '.join(sorted(names))} or the Ascend C names "
                             f"{', '.join(camel)}, depthA1, depthB1, dbL0A, dbL0B, dbL0C, "
                             "iterateOrder")
    for key, (steps, field) in {"depthA1": (("step_m", "step_ka"), "depth_a1"),
                                "depthB1": (("step_n", "step_kb"), "depth_b1")}.items():
        if key in d and field not in out:
            per = math.prod(int(out.get(s, 1)) for s in steps)
            if d[key] % per:
                raise ValueError(f"tiling.{key}={d[key]}: must be a multiple of "
                                 f"{'*'.join(steps)} = {per}")
            out[field] = d[key] // per
    for key, field in (("dbL0A", "db_l0a"), ("dbL0B", "db_l0b"), ("dbL0C", "db_l0c")):
        if key in d and field not in out:
            out[field] = int(d[key]) == 2
    if "iterateOrder" in d and "block_order" not in out:
        out["block_order"] = "row_major" if int(d["iterateOrder"]) == 1 else "col_major"
    required = [f.name for f in dataclasses.fields(MatmulTiling)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [f for f in required if f not in out]
    if missing:
        if base is None:
            raise ValueError(f"tiling: missing field(s) {', '.join(missing)}")
        return dataclasses.replace(base(), **out)
    try:
        return MatmulTiling(**out)
    except TypeError as e:
        raise ValueError(f"tiling: {e}") from None
