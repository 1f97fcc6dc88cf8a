"""The ``SplitK`` weight_quant_batchmatmul kernel as a program (A2/A3 mix kernel).

Structure, read from ops-nn ``weight_quant_batch_matmul_v2_custom_mix_splitk.h`` and its tiling
``weight_quant_batch_matmul_v2_tiling_splitk.cpp`` (behaviour only, no code copied); the tiling
object is ``SplitKTiling``:

1. *Every AIV* zeroes its 512 B-aligned share of the fp32 (M, N) workspace ``acc`` (Duplicate
   0, UB -> GM), then all AIVs meet (SyncAll: a mode-0 cross-core barrier).
2. *AIV* ``2i + h`` of AIC ``i`` (K block ``i // dim_n``) walks its groups, and per group its
   512-column tiles (``vec_single_n``; tile ``2 (i % dim_n) + h``, stepping by
   ``2 dim_n``): the offset and scale rows (bf16) in, the weight in passes of 32 rows
   (``vec_pass_k``), per pass Cast int8 -> fp16, Add the fp16 offset, Cast -> fp32, Mul the fp32
   scale, Cast RINT -> bf16, out to the group's slot of a 4-slot GM ring (rows ``ki * group``
   .., pitch N aligned to 256). After each task it signals its AIC (mode 2); from its fifth
   task on it first waits for the AIC to free a slot.
3. *AIC* ``i``: its x block (M x K block, bf16) into L1 once (ND2NZ); per task the group's
   dequantised chunk (group x 1024) from the ring into L1 (double-buffered), Mmad blocks of
   ``base_m x 512 x 64`` (L0C double-buffered), FixPipe fp32 with **atomic add** into ``acc``.
   After its last task a mode-0 barrier of all AICs, then a last flag to its AIVs.
4. *Every AIV* casts 256-column tiles of ``acc`` (all M rows; tiles ``v``, stepping by the AIV
   count) to bf16 with CAST_RINT into y.

Unpublished behaviour, declared: the order of the atomic adds (``numerics.
split_k_reduction_order`` = ``core_index_ascending``: applied core by core, each core's in
program order - all groups of a column in K order); the engine holds the adds and applies them
so (``npusim.engine.buffers``). The kernel issues one Add / Mul per weight row (128 / 64-element
repeats); here one typed instruction covers the pass (same elements, the vector addressing's
region broadcast). Its final waits assume four tasks per AIV (every white-listed shape has more);
here an AIV waits for the flags its AIC actually sets. Functional runs replay the values and
equal ``numerics_splitk.split_k`` bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npusim.engine.program import GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.group_tile_cube import GroupTileCube
from npusim.ops.program_stages import (
    CrossFlag,
    CrossFlags,
    MixLaunch,
    PingPong,
    Ring,
    alloc_layout,
)
from npusim.ops.weight_quant_batchmatmul.tiling import (
    split_k_post_buffers,
    split_k_vector_buffers,
)
from npusim.ops.weight_quant_common import WqbmmShape, kernel_meta, split_k_order, zero_gm_share

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor


@dataclass(frozen=True)
class SplitKFlags:
    """The kernel's cross-core flags, with the ids it gives them: the weight ring (AIV -> AIC a
    slot is ready, AIC -> AIV a slot is free / all done), the all-AIC barrier and the all-AIV
    barrier (SyncAll)."""

    flags: CrossFlags
    ring: Ring
    all_aic: CrossFlag
    all_aiv: CrossFlag

    @classmethod
    def of(cls, soc: SocDescriptor, slots: int) -> SplitKFlags:
        f = CrossFlags.of(soc)
        ring = Ring(f.flag("dequantised weight group ready", flag_id=8),
                    f.flag("weight slot free / cube done", flag_id=9), slots)
        return cls(f, ring, f.flag("every AIC finished its atomic adds", mode=0, flag_id=7),
                   f.flag("every AIV zeroed its share", mode=0, flag_id=6))
ACCUMULATION = (
    "SplitK: each group's fp32 product is FixPipe'd with atomic add into a zeroed (M, N) fp32 "
    "workspace; adds applied in core_index_ascending order, program order within a core "
    "(declared model; the device's atomic order is unpublished)"
)


def _blocks(s: WqbmmShape, kt: Any, ki: int) -> range:
    """The groups of K block ``ki`` (whole groups; the last block ends at K)."""
    g = kt.group_size
    lo = ki * kt.vec_single_k // g
    return range(lo, min(lo + kt.vec_single_k_group_num, s.k // g))


def _tasks(s: WqbmmShape, kt: Any, ci: int, half: int | None) -> list[tuple[int, int, int, int]]:
    """(task, group, c0, width) of AIC ``ci`` (``half`` None) or of its AIV ``half``, in the
    kernel's order: groups outer, column tiles inner."""
    dim_n = kt.cube_block_dim_n
    if half is None:
        first, step, width = (ci % dim_n) * kt.cube_single_core_n, dim_n * kt.cube_single_core_n, \
            kt.cube_single_core_n
    else:
        vn = 2 * (ci % dim_n) + half
        first, step, width = vn * kt.vec_single_n, 2 * dim_n * kt.vec_single_n, kt.vec_single_n
    out: list[tuple[int, int, int, int]] = []
    for gi in _blocks(s, kt, ci // dim_n):
        for c0 in range(first, s.n, step):
            out.append((len(out), gi, c0, min(width, s.n - c0)))
    return out


def build_split_k(soc: SocDescriptor, s: WqbmmShape, kt: Any, data: dict[str,
                  Any] | None = None) -> Kernel:
    """The SplitK program for ``kt`` (SplitKTiling); with ``data`` (:func:`split_k_replay_data`)
    a functional run replays its values."""
    split_k_order(soc, "SplitK")
    d = data or {}
    g = kt.group_size
    ngroups = s.k // g
    n_align = math.ceil(s.n / 256) * 256
    ws_rows = kt.cube_block_dim_k * g
    n_aic = kt.cube_block_dim_n * kt.cube_block_dim_k
    gm = {
        "x": GMTensor("x", (s.m, s.k), "bfloat16", d.get("x")),
        "w": GMTensor("w", (s.k, s.n), "int8", d.get("w")),
        "scale": GMTensor("scale", (ngroups, s.n), "bfloat16", d.get("scale")),
        "offset": GMTensor("offset", (ngroups, s.n), "bfloat16", d.get("offset")),
        "ws": GMTensor("ws", (kt.cache_num, ws_rows, n_align), "bfloat16", role="workspace"),
        "acc": GMTensor("acc", (s.m, s.n), "float32", role="workspace"),
        "y": GMTensor("y", (s.m, s.n), "bfloat16", role="output"),
    }
    cube_model = str(soc.numerics.cube_accumulation.model) if data is not None else ""
    launch = MixLaunch(soc)
    fl = SplitKFlags.of(soc, kt.cache_num)
    for ci in range(n_aic):
        _cube(launch.aic(ci), s, kt, ci, n_align, cube_model, fl)
        for h in range(2):
            v = 2 * ci + h
            b = launch.aiv(v)
            mark = b.used_bytes("UB")
            _zero_share(b, s, v, 2 * n_aic, fl)
            b.release("UB", mark)
            tasks = _tasks(s, kt, ci, h)
            _dequant(b, s, kt, ci, tasks, n_align, fl.ring)
            b.release("UB", mark)
            # the FREEs of the last slots and the AIC's final one: every atomic add landed
            for _ in range(min(len(_tasks(s, kt, ci, None)), kt.cache_num) + 1):
                fl.ring.free.wait(b, "MTE2")
            _cast_out(b, s, kt, v, 2 * n_aic)
    meta = kernel_meta(s, "SplitK", kt)
    meta["cross_core_flags"] = fl.flags.table()
    meta["split_k_accumulation"] = ACCUMULATION
    if data is not None:
        meta["functional_replay"] = (f"instructions (semantics table; cube model {cube_model}; "
                                     "atomic adds applied in core_index_ascending order)")
    return Kernel("wqbmm_splitk", gm, launch.cores, meta)


def _zero_share(b: ProgramBuilder, s: WqbmmShape, v: int, n_aiv: int, fl: SplitKFlags) -> None:
    """Step 1: zero this AIV's share of ``acc`` (512 B-aligned shares), then the all-AIV
    barrier (the kernel's InitAtomicAddr + SyncAll)."""
    if zero_gm_share(b, "acc", s.m * s.n, v, n_aiv, 0):
        b.sync("MTE3", "MTE2", 0)
        b.sync("V", "MTE2", 0)
    fl.all_aiv.barrier(b, "MTE3", "MTE2")


def _dequant(b: ProgramBuilder, s: WqbmmShape, kt: Any, ci: int,
             tasks: list[tuple[int, int, int, int]], n_align: int, ring: Ring) -> None:
    """Step 2: the AIV's tasks (group, 512-column tile), typed dequant into the ring."""
    g, rows, cols = kt.group_size, kt.vec_pass_k, kt.vec_single_n
    ub = alloc_layout(b, "UB", split_k_vector_buffers(rows, cols))
    ki = ci // kt.cube_block_dim_n
    parq = PingPong(b, "MTE2", "V", (2, 3))  # a group's offset and scale rows
    wq = PingPong(b, "MTE2", "V", (0, 1))  # a pass of weight rows
    outq = PingPong(b, "V", "MTE3", (0,))  # the bf16 pass on its way to the GM ring
    for t, gi, c0, width in tasks:
        ring.fill(b, t, "MTE2")
        p = parq.acquire()
        off_in = Region("UB", ub[f"off_in{p}"].offset, (width,), "bfloat16")
        sc_in = Region("UB", ub[f"scale_in{p}"].offset, (width,), "bfloat16")
        b.dma(Region("GM", (gi * s.n + c0) * 2, (width,), "bfloat16", "offset"), off_in,
              name="offset GM->UB")
        b.dma(Region("GM", (gi * s.n + c0) * 2, (width,), "bfloat16", "scale"), sc_in,
              name="scale GM->UB")
        parq.ready(p)
        off32 = Region("UB", ub["off32"].offset, (width,), "float32")
        off16 = Region("UB", ub["off16"].offset, (width,), "float16")
        sc32 = Region("UB", ub["scale32"].offset, (width,), "float32")
        b.cast(off32, off_in, round_mode="rint", name="Cast offset bf16->fp32 (exact)")
        b.cast(off16, off32, round_mode="rint", name="Cast offset fp32->fp16 CAST_NONE (RNE)")
        b.cast(sc32, sc_in, round_mode="rint", name="Cast scale bf16->fp32 (exact)")
        parq.release(p)
        slot = (gi - _blocks(s, kt, ki).start) % kt.cache_num
        for r0 in range(0, g, rows):
            nr = min(rows, g - r0)
            q = wq.acquire()
            wreg = Region("UB", ub[f"w{q}"].offset, (nr, width), "int8")
            b.dma(Region("GM", (gi * g + r0) * s.n + c0, (nr, width), "int8", "w", s.n), wreg,
                  name="weight GM->UB")
            wq.ready(q)
            h = Region("UB", ub["h"].offset, (nr, width), "float16")
            f = Region("UB", ub["f"].offset, (nr, width), "float32")
            o = Region("UB", ub["o"].offset, (nr, width), "bfloat16")
            b.cast(h, wreg, round_mode="rint", name="Cast w->half (exact)")
            wq.release(q)
            b.vop(VecOp.ADD, h, (h, off16), name="Add offset (fp16)")
            b.cast(f, h, round_mode="rint", name="Cast half->fp32 (exact)")
            b.vop(VecOp.MUL, f, (f, sc32), name="Mul scale (fp32)")
            oi = outq.acquire()
            b.cast(o, f, round_mode="rint", name="Cast fp32->bf16 RINT")
            outq.ready(oi)
            row = (slot * kt.cube_block_dim_k + ki) * g + r0
            b.dma(o, Region("GM", (row * n_align + c0) * 2, (nr, width), "bfloat16", "ws",
                            n_align * 2), name="dequant w UB->GM ws")
            outq.release(oi)
        ring.publish(b, "MTE3")
    for q_ in (wq, parq, outq):  # the flags the last passes left set
        q_.drain()


def _cube(b: ProgramBuilder, s: WqbmmShape, kt: Any, ci: int, n_align: int,
          cube_model: str, fl: SplitKFlags) -> None:
    """Step 3 on AIC ``ci``: x block in L1 once, per task the group chunk into L1, Mmads, FixPipe
    fp32 atomic add into ``acc``; then the all-AIC barrier and the last flag to its AIVs."""
    g, cb = kt.group_size, kt.cube
    ki = ci // kt.cube_block_dim_n
    groups = _blocks(s, kt, ki)
    tasks = _tasks(s, kt, ci, None)
    if tasks:
        k_lo = groups.start * g
        kw = min(kt.vec_single_k, s.k - k_lo)
        csn = kt.cube_single_core_n
        cube, a1, b1 = GroupTileCube.allocate(b, cb, (s.m, kw), "A1_x", (g, csn), "bfloat16",
                                              "bfloat16", "float32", 1)
        cube.load_resident(Region("GM", k_lo * 2, (s.m, kw), "bfloat16", "x", s.k * 2), a1,
                           "x GM->L1 nd2nz")
        fun = bool(cube_model)
        for t, gi, c0, width in tasks:
            fl.ring.take(b, "MTE2")
            slot = (gi - groups.start) % kt.cache_num
            row = (slot * kt.cube_block_dim_k + ki) * g

            def copy_tile(i: int, row: int = row, c0: int = c0, width: int = width) -> None:
                b.dma(Region("GM", (row * n_align + c0) * 2, (g, width), "bfloat16", "ws",
                             n_align * 2),
                      Region("L1", b1[i].offset, (g, width), "bfloat16"),
                      name="B ws GM->L1 nd2nz", transform="nd2nz")

            ib = cube.load_tile(copy_tile)

            def drain(acc: Region, bn: int, rn: int, c0: int = c0) -> None:
                dst = Region("GM", (c0 + bn) * 4, (s.m, rn), "float32", "acc", s.n * 4)
                b.fixpipe(acc, dst, elements=s.m * rn, out_dtype="float32", mode="NONE",
                          atomic="add", replay=fun)

            cube.tile_product(a1, s.m, gi * g - k_lo, b1[ib], g, width, cb.base_n, cb.base_k,
                              "float32", drain=drain, accumulation=cube_model or None)
            cube.free_tile(ib, len(tasks) - 1 - t)
            fl.ring.release(b, "FIX")
    fl.all_aic.barrier(b, "FIX", "FIX")
    fl.ring.release(b, "FIX")  # after every AIC's atomic adds: the AIVs may read acc


def _cast_out(b: ProgramBuilder, s: WqbmmShape, kt: Any, v: int, n_aiv: int) -> None:
    """Step 4: 256-column tiles of ``acc`` (all rows) -> Cast RINT -> bf16 y."""
    pn = kt.post_single_n
    ub = alloc_layout(b, "UB", split_k_post_buffers(s.m, pn))
    cols = list(range(v * pn, s.n, n_aiv * pn))
    yq = PingPong(b, "V", "MTE3", (1,))  # the bf16 tile on its way to y
    for i, c0 in enumerate(cols):
        w = min(pn, s.n - c0)
        acc = Region("UB", ub["acc"].offset, (s.m, w), "float32")
        y = Region("UB", ub["y"].offset, (s.m, w), "bfloat16")
        if i:
            b.sync("V", "MTE2", 0)
        b.dma(Region("GM", c0 * 4, (s.m, w), "float32", "acc", s.n * 4), acc,
              name="acc GM->UB")
        b.sync("MTE2", "V", 0)
        yi = yq.acquire()
        b.cast(y, acc, round_mode="rint", name="Cast fp32->bf16 RINT")
        yq.ready(yi)
        b.dma(y, Region("GM", c0 * 2, (s.m, w), "bfloat16", "y", s.n * 2), name="y UB->GM")
        yq.release(yi)
    yq.drain()


def split_k_replay_data(args: Any) -> dict[str, Any]:
    """GM contents of the SplitK program for a validated call: x, the (K, N) int8 weight and the
    (groups, N) bf16 scale and offset."""
    import numpy as np

    return {"x": np.ascontiguousarray(args.x), "w": np.ascontiguousarray(args.weight),
            "scale": np.ascontiguousarray(args.antiquant_scale),
            "offset": np.ascontiguousarray(args.antiquant_offset)}


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    return build_split_k(soc, s, t, split_k_replay_data(args) if replay else None)
