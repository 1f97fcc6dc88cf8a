"""Tiled program of the ``MsdGroup`` kernel (A2/A3 mix kernel, per-group A16W4 decode).

The work partition follows ``MsdGroupTiling`` (ops-semantics 5.5(c); structure read from the
published kernel ``WeightQuantBatchMatMulV2MsdGroupKernel`` for behaviour, no code copied):

1. *Setup, all AIVs of the launch.* AIV ``v`` zeroes its share of the fp32 GM workspace ``acc``
   (M x N): ``ceil(M N / AIVs)`` elements aligned to 128 (512 B), a vector Dup of 0 then UB -> GM.
   AIV ``v < M`` splits row ``v`` of x over the whole K into digits (Cast, Abs, per-group max by a
   64-lane Max and two BlockReduceMax, Brcb; with an offset the per-group row sums the same way;
   Div by the group max, Muls, then per digit Cast ROUND / Cast to half / Cast to int4 or int8 and
   the residual Sub, Muls) and writes the digit rows, the broadcast group maxima (and sums) to GM
   workspaces. A mode-0 barrier of all AIVs (SyncAll), then each AIV signals its AIC.
2. *AIC ``ci`` = cell (``ci % cube_block_dim_n``, ``ci // cube_block_dim_n``)*: columns
   ``[n * cube_single_core_n, ...)`` x K rows ``[k * single_core_k, ...)``. Before the signal it
   streams the weight tiles of its first three groups GM -> L1 (an L2 warm-up overlapping step 1).
   After it, the digits of its K range GM -> L1 once; then per group of its K range the weight tile
   (one DMA, double-buffered in L1) and one integer matmul (digits x M rows, group K, the cell's
   columns) into a two-slot GM C workspace (int32; fp16 through FixPipe DEQF16 with scale 1.0
   for inner_precise 1); a flag per group to its AIVs, and from the third group on it waits for
   the slot to be free.
3. *AIV ``h`` of AIC ``ci``* (vec N index ``v % vec_block_dim_n``, vec K index
   ``v // vec_block_dim_n``, which is its AIC's cell: checked) recombines its
   ``vec_single_core_n`` columns of the cell group by group: scale (and offset) rows; C digit rows
   (int32: row chunks of 8, 6 and the rest, each digit Cast then Muls / Axpy in fp32; fp16: the
   Axpy chain in fp16, Cast, Muls); x scale, x group max; into an fp32 accumulator (M x columns)
   in UB (the ``msd_recombine`` stage, its unfused form). After its last group one UB -> GM DMA
   with **atomic add** into ``acc``.
4. *All AIVs, after a second mode-0 barrier:* AIV ``v`` loads the ``acc`` columns of vec N index
   ``v % vec_block_dim_n``, adds the bias, Casts (CAST_ROUND) to the output dtype and writes y.

Accumulation order: the device adds the K-range partials in whatever order the atomics land
(unpublished); a functional run holds the atomic adds and applies them in the SoC's declared
``split_k_reduction_order`` (``core_index_ascending``) when ``acc`` is next read (the engine's
buffers), which is also the order the numerics model (``numerics_msd.msd_group``, the tests'
oracle) uses; the metadata ``split_k_accumulation`` says so. The final cast pass is
the model's ``+ bias; CAST_ROUND`` (no int8 output: MsdGroup excludes it).

Assumptions / simplifications:

- Every AIV of the launch runs step 4 (the kernel's cube_block_dim_k copies per column range write
  identical y); only the AIVs of vec K index 0 issue the y write here (identical concurrent
  writes would be a race to the hazard checker) - the others load, add and cast.
- The zeroing size is M N fp32; the kernel's size argument looks like a byte count used as an
  element count (it would zero 4x as much) - unverified, not modelled.
- The C workspace holds two slots per AIC, each (digit rows x cube_single_core_n) contiguous; the
  kernel's slots span all N per K index (same bytes per transfer, other addresses) - contiguous
  per-core slots keep the hazard checker's strided footprints exact.
- L1 offsets inside a weight tile follow an N-block-major layout; the L1 -> L0 moves are base
  blocks of ``base_n`` x ``base_k`` (the matmul library's inner loop is not published).
- An NZ weight tile is read as its NZ window (``weight_tile_region``), one DMA per group tile.
- The launch has ``max(cells, ceil(ceil(M / vm) / 2))`` AIC blocks, ``vm`` =
  ``vec1_single_core_m`` rows of x per AIV (the host asks for max(ceil(M / vm), 2 x cells)
  AIVs; the block-dim rounding is assumed to be ceil(AIVs / 2)): blocks beyond the cells only
  split rows, zero their workspace share and run step 4.
- NotImplementedError: vector tilings whose AIV column ranges are not inside their AIC's cell.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npusim.engine.program import GMTensor, InstrPool, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region, itemsize
from npusim.ops.group_reduce import group_reduce
from npusim.ops.group_tile_cube import GroupTileCube
from npusim.ops.msd_recombine import MsdRecombine
from npusim.ops.program_stages import (
    CrossFlag,
    MixLaunch,
    PingPong,
    Ring,
    add_bias,
    cast_store,
)
from npusim.ops.weight_quant_batchmatmul.numerics_msd import DIGIT_FACTORS
from npusim.ops.weight_quant_common import (
    ITEM,
    MsdFlags,
    WqbmmShape,
    bias_dtype,
    cube_cells,
    kernel_meta,
    nz_weight_storage,
    operand_tensors,
    replay_inputs,
    split_k_order,
    stored_weight,
    weight_tile_region,
    zero_gm_share,
)
from npusim.ops.weight_quant_digit_kernel import digit_split

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor


@dataclass(frozen=True)
class GroupFlags:
    """MsdGroup's cross-core flags: the MSD pair (digits written, the two-slot C ring) and the
    two barriers of all AIVs (every digit row is in GM; every atomic add into ``acc`` landed)."""

    msd: MsdFlags
    all_digits: CrossFlag
    all_atomic: CrossFlag

    @classmethod
    def of(cls, soc: SocDescriptor) -> GroupFlags:
        msd = MsdFlags.of(soc, 2)
        return cls(msd, msd.flags.flag("every AIV wrote its digit rows", mode=0),
                   msd.flags.flag("every AIV's atomic adds landed", mode=0))


def msd_group_cells(kt: Any, s: WqbmmShape) -> list[tuple[int, int, int, int]]:
    """(n0, n1, k0, k1) of each cube core of the launch, core index order (N index fastest)."""
    return cube_cells(kt.cube_block_dim_n, kt.cube_block_dim_k, kt.cube_single_core_n,
                      kt.single_core_k, s.n, s.k)


def accumulation_note(kt: Any, order: str) -> str:
    """The ``split_k_accumulation`` metadata of the program."""
    return (
        f"{kt.cube_block_dim_k} K ranges of {kt.single_core_k}: each cube cell's fp32 partial "
        "(M x its columns) is atomically added (UB->GM DMA, atomic add) into a zeroed fp32 GM "
        "workspace; device order unpublished: functional runs apply the adds in "
        f"{order} order (SoC split_k_reduction_order) when the workspace is next read, timing "
        "follows their completion; then + bias and CAST_ROUND to y"
    )


def _check(soc: SocDescriptor, s: WqbmmShape, kt: Any, n_blocks: int) -> None:
    if n_blocks > soc.core_counts()["aic"]:
        raise ValueError(
            f"MsdGroup: a launch of {n_blocks} AIC blocks (cube_block_dim_n x cube_block_dim_k, "
            f"or M / 2) exceeds the {soc.core_counts()['aic']} AIC of {soc.name}"
        )
    if s.group_size <= 0:
        raise ValueError("MsdGroup needs a per-group call (antiquant_group_size > 0)")
    for ci, (n0, n1, _, _) in enumerate(msd_group_cells(kt, s)):
        for h in range(2):
            v = 2 * ci + h
            vn, vk = v % kt.vec_block_dim_n, v // kt.vec_block_dim_n
            c0 = vn * kt.vec_single_core_n
            c1 = min(s.n, c0 + kt.vec_single_core_n)
            inside = c0 >= c1 or (n0 <= c0 and c1 <= n1)
            if vk != ci // kt.cube_block_dim_n or not inside:
                raise NotImplementedError(
                    f"MsdGroup program: AIV {v} (vec N index {vn}, K index {vk}) does not "
                    f"recombine inside the cell of its AIC {ci}; only vec_block_dim_n = 2 x "
                    "cube_block_dim_n with 2 x vec_single_core_n = cube_single_core_n is modelled"
                )


def build_msd_group(soc: SocDescriptor, s: WqbmmShape, kt: Any, data: dict[str, Any] | None = None
                    ) -> Kernel:
    """The MsdGroup program for the kernel tiling ``kt`` (``MsdGroupTiling``); with ``data``
    (``weight_quant_program_msd_splitk.msd_split_k_replay_data``: x, stored weight, (G, N)
    parameters, fp32 bias) a functional run replays its values."""
    if s.k % s.group_size:
        raise NotImplementedError(f"MsdGroup program: K={s.k} is not a multiple of the group "
                                  f"size {s.group_size}")
    d = data or {}
    order = split_k_order(soc, "MsdGroup")
    cells = msd_group_cells(kt, s)
    n_aic = len(cells)
    vm = kt.vec1_single_core_m  # rows of x each AIV splits into digits
    # the host launches enough AIVs for the digit split (ceil(M / vm)) and for 2 x cells
    n_blocks = max(n_aic, math.ceil(math.ceil(s.m / vm) / 2))
    n_aiv = 2 * n_blocks
    _check(soc, s, kt, n_blocks)
    dig_dtype = "int4" if s.w_dtype == "int4" else "int8"
    digits = DIGIT_FACTORS[dig_dtype][2]
    rows = digits * s.m
    g = s.group_size
    ngroups = math.ceil(s.k / g)
    high_perf = s.inner_precise == 1 and s.w_dtype == "int4"
    c_dtype = "float16" if high_perf else "int32"
    csn = kt.cube_single_core_n
    gm = operand_tensors(s, d, {
        "digits": GMTensor("digits", (rows, s.k), dig_dtype, role="workspace"),
        "amax": GMTensor("amax", (s.m, ngroups * 8), "float32", role="workspace"),
        "c": GMTensor("c", (n_aic * 2, rows, csn), c_dtype, role="workspace"),
        "acc": GMTensor("acc", (s.m, s.n), "float32", role="workspace"),
    }, param_rows=ngroups, bias_dt=bias_dtype(s), offset_workspaces={
        "rsum": GMTensor("rsum", (s.m, ngroups * 8), "float32", role="workspace")})
    launch = MixLaunch(soc, InstrPool())  # cores and groups repeat instructions (issue 14)
    fl = GroupFlags.of(soc)
    for ci in range(n_blocks):
        if ci < n_aic:
            n0, _, k0, k1 = cells[ci]
            groups = range(k0 // g, math.ceil(k1 / g))
            _cube_cell(launch.aic(ci), s, kt, ci, cells[ci], digits, dig_dtype, c_dtype, fl,
                       functional=data is not None)
        else:  # a block launched only for the digit split of more rows: its cube has no cell
            fl.msd.digits.wait(launch.aic(ci), "MTE2")
        for h in range(2):
            v = 2 * ci + h
            b = launch.aiv(v)
            mark = b.used_bytes("UB")
            _setup(b, s, v, vm, n_aiv, digits, dig_dtype, ngroups, fl)
            b.release("UB", mark)
            c0 = (v % kt.vec_block_dim_n) * kt.vec_single_core_n
            cw = min(kt.vec_single_core_n, s.n - c0)
            if ci < n_aic:
                _recombine(b, s, kt, groups, ci, c0 - n0, cw, digits, c_dtype, fl.msd.c)
                b.release("UB", mark)
            fl.all_atomic.barrier(b, "MTE3", "MTE2")
            if cw > 0:
                _final(b, s, c0, cw, write=v < kt.vec_block_dim_n,
                       bias_dt=gm["bias"].dtype if s.has_bias else "")
    meta = kernel_meta(s, "MsdGroup", kt)
    meta["cross_core_flags"] = fl.msd.flags.table()
    meta["split_k_accumulation"] = accumulation_note(kt, order)
    meta["cube_cells"] = [list(c) for c in cells]
    if data is not None:
        meta["functional_replay"] = ("instructions (semantics table; exact integer cube; atomic "
                                     "adds applied in core_index_ascending order)")
    return Kernel("wqbmm_msdgroup", gm, launch.cores, meta)


def _cube_cell(
    b: ProgramBuilder, s: WqbmmShape, kt: Any, ci: int, cell: tuple[int, int, int, int],
    digits: int, dig_dtype: str, c_dtype: str, fl: GroupFlags, *, functional: bool = False,
) -> None:
    """Step 2 on AIC ``ci``: the digits of its K range into L1 once; per group the cell's
    weight tile (group x cell columns, one ND2NZ DMA, double-buffered in L1), base blocks of
    ``base_n`` x ``base_k`` through L0A / L0B (ping-pong), Mmad, FixPipe into C slot
    ``group % 2``. L1 holds the tiles in logical (K, N) order (the declared local-tile model);
    L0 base blocks are windows of them."""
    n0, n1, k0, k1 = cell
    g, cb = s.group_size, kt.cube
    rows = digits * s.m
    if rows > cb.base_m:
        raise NotImplementedError(
            f"MsdGroup program: {rows} digit rows exceed base_m={cb.base_m} (one M block modelled)"
        )
    csn, cw, kw = kt.cube_single_core_n, n1 - n0, k1 - k0
    c_isz = ITEM[c_dtype]
    groups = range(k0 // g, math.ceil(k1 / g))
    cube, a1, b1 = GroupTileCube.allocate(b, cb, (cb.base_m, kw), "A1_digits", (g, csn),
                                          s.w_dtype, dig_dtype, "int32", 2)
    for gi in list(groups)[:3]:  # the kernel's L2 warm-up: three weight tiles into one buffer
        src = weight_tile_region(s, gi * g, min(g, s.k - gi * g), n0, cw)
        b.dma(src, Region("L1", b1[0].offset, src.shape, s.w_dtype),
              name="weight preload GM->L1 (L2 warm-up)", transform="" if s.weight_nz else "nd2nz")
    fl.msd.digits.wait(b, "MTE2")
    cube.load_resident(Region("GM", math.ceil(k0 * ITEM[dig_dtype]), (rows, kw), dig_dtype,
                              "digits", math.ceil(s.k * ITEM[dig_dtype])), a1,
                       "A digits GM->L1 nd2nz")
    mode = "DEQF16" if c_dtype == "float16" else "NONE"
    # an NZ weight's fractals are copied as stored; the local tile holds them in logical order
    # (the declared local-tile model: DataCopy nz2nd from a GM FRACTAL_NZ window)
    b_transform = "nz2nd" if s.weight_nz else "dn2nz" if s.trans_w else "nd2nz"
    for task, gi in enumerate(groups):
        kg = min(g, s.k - gi * g)
        src = weight_tile_region(s, gi * g, kg, n0, cw)

        def copy_tile(i: int, src: Region = src, kg: int = kg) -> None:
            b.dma(src, Region("L1", b1[i].offset, (kg, cw), s.w_dtype),
                  name="B GM->L1 " + b_transform, transform=b_transform)

        ib = cube.load_tile(copy_tile)
        fl.msd.c.fill(b, task, "FIX")
        slot = ci * 2 + task % 2

        def drain(acc: Region, bn: int, rn: int, slot: int = slot) -> None:
            dst = Region("GM", math.ceil((slot * rows * csn + bn) * c_isz), (rows, rn), c_dtype,
                         "c", math.ceil(csn * c_isz))
            b.fixpipe(acc, dst, elements=rows * rn, out_dtype=c_dtype, mode=mode,
                      replay=functional, deq_scale=1.0 if mode == "DEQF16" else None)

        cube.tile_product(a1, rows, gi * g - k0, b1[ib], kg, cw, cb.base_n, cb.base_k, "int32",
                          drain=drain, accumulation="exact_integer" if functional else None)
        cube.free_tile(ib, len(groups) - 1 - task)
        fl.msd.c.publish(b, "FIX")


def _setup(
    b: ProgramBuilder, s: WqbmmShape, v: int, vm: int, n_aiv: int, digits: int,
    dig_dtype: str, ngroups: int, fl: GroupFlags,
) -> None:
    """Step 1 on AIV ``v``: zero its share of ``acc``; split its rows ``v * vm`` ..
    ``v * vm + vm - 1`` of x (those that exist) into digits, one row at a time; barrier of all
    AIVs; signal the AIC."""
    zero_gm_share(b, "acc", s.m * s.n, v, n_aiv, 1)
    for r in range(v * vm, min(s.m, (v + 1) * vm)):
        if r > v * vm:  # the previous row's vector work has read x before MTE2 reloads it
            b.sync("V", "MTE2", 0)
        mark = b.used_bytes("UB")
        _split_row(b, s, r, digits, dig_dtype, ngroups)
        b.release("UB", mark)
    fl.all_digits.barrier(b, "MTE3", "MTE2")
    fl.msd.digits.set(b, "MTE2")


def _split_row(
    b: ProgramBuilder, s: WqbmmShape, r: int, digits: int, dig_dtype: str, ngroups: int
) -> None:
    """Digits of row ``r`` of x (whole K), its broadcast group maxima (and sums) to GM."""
    k, g = s.k, s.group_size
    kpad = math.ceil(k / 16) * 16
    f1, f2 = (float(v) for v in DIGIT_FACTORS[dig_dtype][:2])
    xb = b.alloc("UB", (kpad,), s.x_dtype, "x")
    fb = b.alloc("UB", (kpad,), "float32", "xf")
    mb = b.alloc("UB", (kpad,), "float32", "multi_scale")
    db = b.alloc("UB", (digits, kpad), dig_dtype, "digits")
    brc = b.alloc("UB", (ngroups * 8,), "float32", "group_brc")
    hb = Region("UB", xb.offset, (ngroups, g), "float16")
    xf = Region("UB", fb.offset, (ngroups, g), "float32")
    ms = Region("UB", mb.offset, (ngroups, g), "float32")
    b.dma(Region("GM", r * k * 2, (k,), s.x_dtype, "x"), Region("UB", xb.offset, (k,), s.x_dtype),
          name="x row GM->UB")
    b.sync("MTE2", "V", 0)
    b.cast(xf, Region("UB", xb.offset, (ngroups, g), s.x_dtype), name="Cast x->fp32")

    def reduce_to_gm(what: str, src: Region, red: str) -> None:
        """Per group one value (the group_reduce stage, in place over multi_scale), Brcb to 8
        lanes, to its GM workspace row."""
        ones = Region("UB", mb.offset, (ngroups,), "float32")
        group_reduce(b, red, src, Region("UB", mb.offset, (ngroups, 64), "float32"),
                     Region("UB", mb.offset, (ngroups * 8,), "float32"), ones)
        b.vop(VecOp.BRCB, brc, (ones,), elements=ngroups * 8, name="Brcb")
        b.sync("V", "MTE3", 0)
        b.dma(Region("UB", brc.offset, (ngroups * 8,), "float32"),
              Region("GM", r * ngroups * 32, (ngroups * 8,), "float32", what),
              name=f"{what} GM workspace")
        b.sync("MTE3", "V", 0)  # the workspace row left UB before V rewrites it

    if s.has_offset:
        reduce_to_gm("rsum", xf, "Sum")
    b.vop(VecOp.ABS, ms, (xf,))
    reduce_to_gm("amax", ms, "Max")
    gmax = Region("UB", brc.offset, (ngroups, 1), "float32", row_stride_bytes=32)
    b.vop(VecOp.DIV, ms, (xf, gmax), name="Div by group max")
    digit_split(b, ms, ms, xf, hb, [Region("UB", db.offset + math.ceil(d * kpad * ITEM[dig_dtype]),
                                           (ngroups, g), dig_dtype) for d in range(digits)], f1, f2)
    b.sync("V", "MTE3", 0)
    for d in range(digits):
        b.dma(Region("UB", db.offset + math.ceil(d * kpad * ITEM[dig_dtype]), (k,), dig_dtype),
              Region("GM", math.ceil((r * digits + d) * k * ITEM[dig_dtype]), (k,), dig_dtype,
                     "digits"),
              name="digits UB->GM")


def _row_chunks(m: int) -> list[tuple[int, int]]:
    """The int32 recombination's row chunks (8 rows, then up to row 14, then the rest)."""
    edges = [0, min(m, 8), min(m, 14), m]
    return [(a, e) for a, e in itertools.pairwise(edges) if e > a]


def _recombine(
    b: ProgramBuilder, s: WqbmmShape, kt: Any, groups: range, ci: int, cc0: int, cw: int,
    digits: int, c_dtype: str, ring: Ring,
) -> None:
    """Step 3 on one AIV: per group of AIC ``ci``'s K range recombine the cell's columns
    [cc0, cc0 + cw) into an fp32 UB accumulator; then one atomic-add DMA into ``acc``."""
    ntask = len(groups)
    if cw <= 0:  # an empty column range keeps the handshakes with its AIC
        for task in range(ntask):
            ring.take(b, "MTE2")
            ring.done(b, task, ntask, "MTE2")
        return
    m, vsn, xd, csn = s.m, kt.vec_single_core_n, s.x_dtype, kt.cube_single_core_n
    rc = MsdRecombine.of(s.w_dtype, s.inner_precise == 1 and s.w_dtype == "int4", fused=False)
    c0 = (ci % kt.cube_block_dim_n) * csn + cc0  # the global first column
    ng8 = math.ceil(s.k / s.group_size) * 8
    rows = digits * m
    c_isz = ITEM[c_dtype]
    sc_raw = b.alloc("UB", (vsn,), xd, "scale_in")
    sc = b.alloc("UB", (vsn,), "float32", "scale")
    if s.has_offset:
        of_raw = b.alloc("UB", (vsn,), xd, "offset_in")
        of = b.alloc("UB", (vsn,), "float32", "scale_offset")
        rs = b.alloc("UB", (m * 8,), "float32", "rsum")
    acc = b.alloc("UB", (m, cw), "float32", "acc")
    am = b.alloc("UB", (m * 8,), "float32", "amax")
    if c_dtype == "int32":
        crow = max(a + digits * (e - a) for a, e in _row_chunks(m))
        cbuf = b.alloc("UB", (crow, cw), "int32", "c")
        cf = Region("UB", cbuf.offset, (m, cw), "float32")  # recombined rows alias the C rows
    else:
        cbytes = max(rows * cw * 2, m * cw * 6)
        cbuf = b.alloc("UB", (cbytes,), "int8", "c16")
        cf = Region("UB", cbuf.offset + m * cw * 2, (m, cw), "float32")  # over digits 1, 2
    scale = (Region("UB", sc.offset, (cw,), "float32"), Region("UB", sc_raw.offset, (cw,), xd))
    offset = ((Region("UB", of.offset, (cw,), "float32"), Region("UB", of_raw.offset, (cw,), xd))
              if s.has_offset else None)

    def per_row(buf: Region) -> Region:  # a group's value per row (8 lanes broadcast, 32 B)
        return Region("UB", buf.offset, (m, 1), "float32", row_stride_bytes=32)

    sum_r = rc.accumulator(b, Region("UB", acc.offset, (m, cw), "float32"))
    params = PingPong(b, "MTE2", "V", (0,))  # the group's scale / max (/ offset / sum) rows
    for task, gi in enumerate(groups):
        pi = params.acquire()
        b.dma(Region("GM", (gi * s.n + c0) * 2, (cw,), xd, "scale"), scale[1],
              name="scale GM->UB")
        b.dma(Region("GM", gi * 32, (m, 8), "float32", "amax", ng8 * 4),
              Region("UB", am.offset, (m, 8), "float32"), name="group max GM->UB")
        if offset is not None:
            b.dma(Region("GM", (gi * s.n + c0) * 2, (cw,), xd, "offset"), offset[1],
                  name="offset GM->UB")
            b.dma(Region("GM", gi * 32, (m, 8), "float32", "rsum", ng8 * 4),
                  Region("UB", rs.offset, (m, 8), "float32"), name="group sum GM->UB")
        params.ready(pi)
        rc.params(b, scale, offset)
        if offset is not None:
            sum_r.add_offset(b, per_row(rs), offset[0])
        ring.take(b, "MTE2")
        base = (ci * 2 + task % 2) * rows * csn
        if c_dtype == "int32":
            for ci_, (a, e) in enumerate(_row_chunks(m)):
                tail = e - a
                if ci_:  # V has read the previous chunk's C rows before MTE2 reloads them
                    b.sync("V", "MTE2", 1)
                c_ub = [Region("UB", cbuf.offset + (a + d * tail) * cw * 4, (tail, cw), "int32")
                        for d in range(digits)]

                def load(d: int, a: int = a, c_ub: list[Region] = c_ub, base: int = base) -> None:
                    b.dma(Region("GM", (base + (a * digits + d) * csn + cc0) * c_isz,
                                 c_ub[d].shape, c_dtype, "c", digits * csn * c_isz),
                          c_ub[d], name=f"C digit {d} GM->UB")
                    b.sync("MTE2", "V", 2 + d)  # one event per digit: MTE2 runs ahead

                rc.digit_sum(b, c_ub, c_ub[0].as_dtype("float32"), before=load)
        else:
            c16 = [Region("UB", cbuf.offset + d * m * cw * 2, (m, cw), "float16")
                   for d in range(digits)]
            for d in range(digits):
                b.dma(Region("GM", (base + d * csn + cc0) * c_isz, (m, cw), c_dtype, "c",
                             digits * csn * c_isz), c16[d], name=f"C digit {d} GM->UB")
            b.sync("MTE2", "V", 2)
            rc.digit_sum(b, c16, cf)
        ring.done(b, task, ntask, "MTE2")
        sum_r.add_digits(b, cf, scale[0], per_row(am))
        params.release(pi)
    params.drain()
    b.sync("V", "MTE3", 3)
    b.dma(Region("UB", acc.offset, (m, cw), "float32"),
          Region("GM", c0 * 4, (m, cw), "float32", "acc", s.n * 4),
          name="partial UB->GM atomic add", atomic="add")


def _final(b: ProgramBuilder, s: WqbmmShape, c0: int, cw: int, *, write: bool,
           bias_dt: str) -> None:
    """Step 4 on one AIV: acc columns [c0, c0 + cw) + bias, CAST_ROUND, y (if ``write``)."""
    m = s.m
    res = b.alloc("UB", (m, cw), "float32", "res")
    out = b.alloc("UB", (m, cw), s.out_dtype, "out")
    b.dma(Region("GM", c0 * 4, (m, cw), "float32", "acc", s.n * 4),
          Region("UB", res.offset, (m, cw), "float32"), name="acc GM->UB")
    if s.has_bias:
        braw = b.alloc("UB", (cw,), bias_dt, "bias_in")
        b.dma(Region("GM", c0 * itemsize(bias_dt), (cw,), bias_dt, "bias"),
              Region("UB", braw.offset, (cw,), bias_dt), name="bias GM->UB")
    b.sync("MTE2", "V", 0)
    res_r = Region("UB", res.offset, (m, cw), "float32")
    if s.has_bias:
        f32 = b.alloc("UB", (cw,), "float32", "bias") if bias_dt != "float32" else None
        add_bias(b, res_r, Region("UB", braw.offset, (cw,), bias_dt), f32)
    cast_store(b, Region("UB", out.offset, (m, cw), s.out_dtype), res_r, "y", 0, c0, s.n, 0,
               write=write)


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    data = None
    if replay:
        from npusim.ops.weight_quant_batchmatmul.numerics_msd import check_block_amax

        check_block_amax(args.x, s.group_size, "group")
        # an NZ weight: the FRACTAL_NZ storage the kernel's copies read; the bias as given (the
        # AIVs cast it)
        w = nz_weight_storage(args) if s.weight_nz else stored_weight(args, "MsdGroup")
        data = replay_inputs(args, w, math.ceil(s.k / s.group_size), bias_dt=bias_dtype(s))
    return build_msd_group(soc, s, t, data)
