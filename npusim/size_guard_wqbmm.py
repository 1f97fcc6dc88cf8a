"""Up-front instruction lower bounds of every weight_quant_batchmatmul kernel program, counted
from the call's tiling without building the program (``npusim.size_guard``'s program bound).

Each kernel's bound is its loops' trip counts (from the kernel tiling the plan itself resolves)
times the instructions each iteration emits whatever the call: only instructions its builder
emits unconditionally are counted (DMAs, vector ops, casts, Mmads, FixPipes, ``sync`` = set +
wait, PingPong ``ready`` = 2 / ``release`` = 1), so the count is a lower bound of the built
program's ``instruction_count()``. tests/test_size_guard_wqbmm.py checks it on random legal
calls of every kernel, and that it is within a stated factor of the built count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.ops.matmul_tiling import CubeTiling
    from npusim.ops.weight_quant_batchmatmul.tiling import (
        CustomNzSplitKTiling,
        FixpipeTiling,
        MsdGroupTiling,
        SplitKTiling,
    )
    from npusim.ops.weight_quant_common import WqbmmProgramTiling, WqbmmShape
    from npusim.ops.weight_quant_program_weight_nz import WeightNzProgramTiling

#: instructions every Custom AIV dequant pass emits whatever the call (build_custom: weight
#: GM->UB, >= 1 parameter row, MTE2->V set + wait, Cast w->half, Mul scale, V->MTE2 set,
#: V->MTE3 set + wait, the workspace UB->GM, MTE3->V set) and every cube K step (L1->L0A,
#: L1->L0B, MTE1->M set + wait, Mmad, M->MTE1 set)
CUSTOM_PASS_INSTRUCTIONS, CUBE_KSTEP_INSTRUCTIONS = 11, 6
#: Instructions every CubeEmitter output tile emits at least once, whatever its K steps: the
#: L0C write-out (FixPipe to GM on A2/A3, L0C -> UB on 310P) and the M -> write-out set + wait.
CUBE_TILE_INSTRUCTIONS = 3

Bound = tuple[int, str]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def emitter_block(rows: int, cols: int, k: int, ct: CubeTiling) -> int:
    """Instructions at least of one ``CubeEmitter.block`` of ``rows`` x ``cols`` over ``k`` with
    cube tiling ``ct``: every base tile over all of K in base_k steps, plus its write-out."""
    if rows <= 0 or cols <= 0 or k <= 0:
        return 0
    tiles = _cdiv(rows, ct.base_m) * _cdiv(cols, ct.base_n)
    return tiles * (CUBE_KSTEP_INSTRUCTIONS * _cdiv(k, ct.base_k) + CUBE_TILE_INSTRUCTIONS)


def _custom(s: WqbmmShape, pt: WqbmmProgramTiling, name: str) -> Bound:
    """Custom / A2-A3 WeightNz: strips x AIV dequant passes, cube tiles x K steps."""
    from npusim.ops.weight_quant_batchmatmul.tiling import custom_k_rows
    from npusim.ops.weight_quant_common import custom_vec_rows, strips_per_core

    c0e = custom_k_rows(s.weight_nz, s.w_dtype)  # build_custom's K split unit
    rows = custom_vec_rows(s, pt)
    k_half = min(s.k, c0e * _cdiv(s.k, 2 * c0e))
    passes = _cdiv(k_half, rows) + _cdiv(s.k - k_half, rows)
    ksteps = _cdiv(s.k, pt.base_k)
    strips = [n1 - n0 for core in strips_per_core(s.n, pt) for n0, n1 in core]
    tiles = sum(_cdiv(s.m, pt.base_m) * _cdiv(w, pt.base_n) for w in strips)
    count = (CUSTOM_PASS_INSTRUCTIONS * passes * len(strips)
             + CUBE_KSTEP_INSTRUCTIONS * ksteps * tiles)
    return count, (f"the {name} program's loops from its tiling: {len(strips):,} workspace "
                   f"strips x {passes:,} AIV dequant passes x >= {CUSTOM_PASS_INSTRUCTIONS} "
                   f"instructions, plus {tiles:,} cube tiles x {ksteps:,} K steps x >= "
                   f"{CUBE_KSTEP_INSTRUCTIONS}")


def _halves(n0: int, n1: int, strip_n: int) -> int:
    """AIVs (0..2) whose half of strip [n0, n1) is not empty (halves of ceil(strip_n / 2))."""
    return 1 + (n1 - n0 > _cdiv(strip_n, 2))


#: Msd, per x row on each AIC's AIVs: x GM->UB, MTE2->V sync (2), Cast, Abs, ReduceMax, >= 1
#: for 1/amax, Muls, Cast ROUND, 2 digit casts, Muls, Sub, Muls, Cast ROUND, 2 digit casts,
#: V->MTE3 sync (2), 2 digit stores, the amax store, MTE3->MTE2 set + wait
MSD_ROW = 24
#: Msd, per non-empty strip half: digit results GM->UB, >= 1 parameter load, MTE2->V sync,
#: 2 Casts, 2 Muls, Add, Mul amax, Cast scale, Mul scale, Cast out, V->MTE2 set + wait,
#: V->MTE3 sync, y store, MTE3->V set + wait
MSD_STRIP_HALF = 20


def _msd(s: WqbmmShape, pt: WqbmmProgramTiling, name: str) -> Bound:
    from npusim.ops.weight_quant_common import cube_tiling_for_rows, strips_per_core

    rows = 2 * s.m
    ct = cube_tiling_for_rows(pt, rows)
    per_core = strips_per_core(s.n, pt)
    cube = sum(emitter_block(rows, n1 - n0, s.k, ct) for core in per_core for n0, n1 in core)
    vec_rows = pt.cube_cores * s.m * MSD_ROW
    halves = sum(_halves(n0, n1, pt.strip_n) for core in per_core for n0, n1 in core)
    count = cube + vec_rows + halves * MSD_STRIP_HALF
    return count, (f"the {name} program's loops from its tiling: cube {cube:,} (2M digit rows "
                   f"x strips in base blocks x K steps), {pt.cube_cores} AICs' AIVs x {s.m} "
                   f"rows x >= {MSD_ROW}, {halves:,} strip halves x >= {MSD_STRIP_HALF}")


def _msd_split_k(s: WqbmmShape, pt: WqbmmProgramTiling, name: str) -> Bound:
    """MsdSplitK: per strip and K block a cube block of the digit rows; per row and
    pre-processing pass a digit split; per strip half and K block a recombination step."""
    from npusim.ops.weight_quant_common import cube_tiling_for_rows, strips_per_core
    from npusim.ops.weight_quant_program_msd_splitk import _Geometry

    geo = _Geometry(s, pt)
    d = geo.digits
    ct = cube_tiling_for_rows(pt, geo.rows)
    per_core = strips_per_core(s.n, pt)
    kblocks = [min(geo.g, s.k - b * geo.g) for b in range(geo.nb)]
    cube = sum(emitter_block(geo.rows, n1 - n0, kb, ct)
               for core in per_core for n0, n1 in core for kb in kblocks)
    # per row and pass: x load, sync, Cast, Abs, ReduceMax, Div, Muls, 3 casts per digit and
    # Sub + Muls per further digit, sync, a store per digit, the amax store, set + wait
    per_pass = 11 + 6 * d
    vec = pt.cube_cores * s.m * _cdiv(geo.nb, geo.per_pass) * per_pass
    halves = sum(_halves(n0, n1, pt.strip_n) for core in per_core for n0, n1 in core)
    # per non-empty strip half and K block: a load per digit, sync, >= d + 1 digit terms, Mul
    # scale, MulAddDst, set + wait; per strip half: Duplicate, Cast, sync, store, 2 set + wait
    per_half = geo.nb * (2 * d + 7) + 9
    count = cube + vec + halves * per_half
    return count, (f"the {name} program's loops from its tiling: cube {cube:,} ({geo.rows} "
                   f"digit rows x strips x {geo.nb} K blocks in base blocks x K steps), digit "
                   f"split {vec:,}, {halves:,} strip halves x {geo.nb} K blocks")


def _msd_group(s: WqbmmShape, kt: MsdGroupTiling, name: str) -> Bound:
    """MsdGroup: per cube cell and group its weight tile and base blocks x K steps; per row the
    digit split; per AIV with columns and group a recombination step."""
    from npusim.ops.weight_quant_program_msdgroup import msd_group_cells

    g, cb = s.group_size, kt.cube
    d = 3 if s.w_dtype == "int4" else 2
    cells = msd_group_cells(kt, s)
    cube = 0
    vec = 0
    for ci, (n0, n1, k0, k1) in enumerate(cells):
        cw = n1 - n0
        for gi in range(k0 // g, _cdiv(k1, g)):
            kg = min(g, s.k - gi * g)
            # B GM->L1, sync; per base_n block: K steps x 6 and sync + FixPipe + set
            cube += 3 + _cdiv(cw, cb.base_n) * (6 * _cdiv(kg, cb.base_k) + 4) if cw > 0 else 0
            for h in range(2):
                v = 2 * ci + h
                c0 = (v % kt.vec_block_dim_n) * kt.vec_single_core_n
                if min(kt.vec_single_core_n, s.n - c0) > 0:
                    # scale + amax loads, sync, Cast, a C load per digit, Muls / Axpy / Cast,
                    # Mul scale, Mul amax, Add / Copy, set
                    vec += 9 + d
    # per row of x: load, sync, Cast, Abs, the max reduction (2 BlockReduce, Brcb, sync,
    # store, set + wait), Div, Muls, 3 casts per digit, Sub + Muls per further digit, sync, a
    # store per digit
    rows = s.m * (15 + 6 * d)
    count = cube + vec + rows
    return count, (f"the {name} program's loops from its tiling: {len(cells)} cube cells x "
                   f"groups in base blocks x K steps ({cube:,}), recombination {vec:,}, "
                   f"digit split of {s.m} rows ({rows:,})")


def _custom_nz_split_k(s: WqbmmShape, kt: CustomNzSplitKTiling, name: str) -> Bound:
    """CustomNzSplitK: per AIC its strips over its K range; per AIV half the dequant passes
    (VecInOut: 6 flag instructions each, besides weight / parameter loads, >= 2 vector ops and
    the store); the post pass per (rows, columns) chunk and K partial."""
    from npusim.ops.program_stages import ranges
    from npusim.ops.weight_quant_common import block_cube_tiling

    dim_n, dim_k = kt.cube_block_dim_n, kt.cube_block_dim_k
    post = dim_k > 1 or s.x_dtype == "bfloat16" or s.has_bias
    step = max(1, kt.single_k // kt.cube_base_k)
    ct = block_cube_tiling(kt.cube_single_m, kt.cube_single_n, kt.cube_base_k, step)
    cube = passes = 0
    for ci in range(dim_n * dim_k):
        ni, ki = ci % dim_n, ci // dim_n
        n_lo, n_hi = ni * kt.cube_single_core_n, min(s.n, (ni + 1) * kt.cube_single_core_n)
        k_lo, k_hi = ki * kt.single_core_k, min(s.k, (ki + 1) * kt.single_core_k)
        kpasses = _cdiv(max(0, k_hi - k_lo), kt.single_k)
        for a, e in ranges(0, max(0, n_hi - n_lo), kt.cube_single_n):
            cube += emitter_block(s.m, e - a, k_hi - k_lo, ct)
            hw = _cdiv(e - a, 2)
            for half in range(2):
                width = min(e - a, (half + 1) * hw) - half * hw
                passes += _cdiv(max(0, width), kt.vec_single_n) * kpasses
    vec = passes * 11
    post_n = 0
    if post:
        for v in range(2 * dim_n * dim_k):
            c_lo, c_hi = v * kt.post_single_core_n, min(s.n, (v + 1) * kt.post_single_core_n)
            if c_lo < c_hi:
                post_n += _cdiv(s.m, max(1, kt.post_single_m)) * _cdiv(c_hi - c_lo,
                                                                       kt.post_single_n)
    post_count = post_n * (3 * dim_k + 5)
    count = cube + vec + post_count
    return count, (f"the {name} program's loops from its tiling: cube {cube:,} (strips in "
                   f"base blocks x K steps), {passes:,} AIV dequant passes x >= 11, "
                   f"{post_n:,} post-pass chunks x >= {3 * dim_k + 5}")


def _fixpipe(s: WqbmmShape, kt: FixpipeTiling, name: str) -> Bound:
    """Fixpipe: per AIC with work, per N tile its parameters and write-out, per K tile the
    weight load, stage-1 chunks (L1->L0A, Mmad with the identity, FixPipe DEQF16 to L1, their
    ping-pong flags: 9) and stage-2 chunks (2 L1->L0 copies, Mmad, flags: 6)."""
    from npusim.ops.program_stages import ranges
    from npusim.ops.weight_quant_program_fixpipe import STAGE1_ROWS, STAGE2_K

    ktiles = [k1 - k0 for k0, k1 in ranges(0, s.k, kt.base_k)]
    per_ntile = 13 + sum(7 + 9 * _cdiv(w, STAGE1_ROWS) + 6 * _cdiv(w, STAGE2_K) for w in ktiles)
    ntiles = 0
    for ci in range(kt.n_block_num * kt.m_block_num):
        ni, mi = ci % kt.n_block_num, ci // kt.n_block_num
        m0, m1 = mi * kt.base_m, min(s.m, (mi + 1) * kt.base_m)
        n_lo, n_hi = ni * kt.single_core_n, min(s.n, (ni + 1) * kt.single_core_n)
        if m0 < m1 and n_lo < n_hi:
            ntiles += _cdiv(n_hi - n_lo, kt.base_n)
    return ntiles * per_ntile, (f"the {name} program's loops from its tiling: {ntiles:,} N "
                                f"tiles x {len(ktiles):,} K tiles (stage-1 chunks of "
                                f"{STAGE1_ROWS} rows, stage-2 chunks of {STAGE2_K}) x >= "
                                f"{per_ntile:,} each")


def _split_k(s: WqbmmShape, kt: SplitKTiling, name: str) -> Bound:
    """SplitK: per AIC task its workspace tile and base blocks x K steps; per AIV task the
    parameter casts (8) and per pass the dequant (13); the output cast per column tile (8)."""
    from npusim.ops.weight_quant_program_mix_splitk import _tasks

    g, cb = kt.group_size, kt.cube
    n_aic = kt.cube_block_dim_n * kt.cube_block_dim_k
    cube = vec = 0
    for ci in range(n_aic):
        for _, _, _, width in _tasks(s, kt, ci, None):
            cube += 3 + _cdiv(width, cb.base_n) * (6 * _cdiv(g, cb.base_k) + 4)
        for h in range(2):
            vec += len(_tasks(s, kt, ci, h)) * (8 + 13 * _cdiv(g, kt.vec_pass_k))
    cols = _cdiv(s.n, kt.post_single_n)
    count = cube + vec + 8 * cols
    return count, (f"the {name} program's loops from its tiling: cube {cube:,} (tasks in base "
                   f"blocks x K steps), AIV dequant {vec:,}, {cols:,} output column tiles x 8")


#: 310P WeightNz, per K tile of a block: weight load, the ping-pong flags (ready 2 x 5,
#: release x 5), Cast w->half, >= 1 dequant op, UB->L1, x GM->L1, 2 L1->L0 copies, Mmad
WEIGHT_NZ_KTILE = 23
#: per (M, N) block: M->V sync, L0C->UB, set, Cast, ready, y store, release
WEIGHT_NZ_BLOCK = 8


def _weight_nz_310p(s: WqbmmShape, t: WeightNzProgramTiling, name: str) -> Bound:
    m_per, n_per = _cdiv(s.m, t.m_block_num), _cdiv(s.n, t.n_block_num)
    blocks = 0
    for ci in range(t.m_block_num * t.n_block_num):
        mi, ni = ci // t.n_block_num, ci % t.n_block_num
        mr = (mi * m_per, min(s.m, (mi + 1) * m_per))
        nr = (ni * n_per, min(s.n, (ni + 1) * n_per))
        if mr[0] < mr[1] and nr[0] < nr[1]:
            blocks += _cdiv(mr[1] - mr[0], t.m_l1) * _cdiv(nr[1] - nr[0], t.n_l1)
    ktiles = _cdiv(s.k, t.k_l1)
    count = blocks * (WEIGHT_NZ_BLOCK + WEIGHT_NZ_KTILE * ktiles)
    return count, (f"the {name} program's loops from its tiling: {blocks:,} (M, N) blocks x "
                   f"({ktiles:,} K tiles x >= {WEIGHT_NZ_KTILE} + {WEIGHT_NZ_BLOCK})")


#: per kernel: its bound from the shape and the tiling its program reads (one type per kernel)
_KERNEL_BOUNDS: dict[str, Callable[[WqbmmShape, Any, str], Bound]] = {
    "Custom": _custom, "WeightNz": _custom, "Msd": _msd, "MsdSplitK": _msd_split_k,
    "MsdGroup": _msd_group, "CustomNzSplitK": _custom_nz_split_k, "Fixpipe": _fixpipe,
    "SplitK": _split_k,
}


def wqbmm_program_bound(desc: SocDescriptor, op_args: Mapping[str, Any],
                        tiling: Any) -> Bound | None:
    """weight_quant_batchmatmul: the selected kernel's loops counted from the call's tiling (the
    tilings the plan itself resolves) without building the program; None when the call is
    refused (the planner reports it with its own message)."""
    from npusim.ops.weight_quant_program import checked_call, resolve_tilings

    try:
        args, name, s, _ = checked_call(desc, values=False, **op_args)  # the shape, not data
        s, _, pt, _ = resolve_tilings(desc, args, name, s, tiling)  # the plan's own tilings
    except Exception:  # the planner reports bad arguments itself, with its own message
        return None
    if getattr(desc, "organisation", "split") != "split":
        return _weight_nz_310p(s, pt, name) if name == "WeightNz" else None
    fn = _KERNEL_BOUNDS.get(name)
    return fn(s, pt, name) if fn is not None else None
