"""The 310P pp_matmul W8A8 path as tiled programs: x1 TransData -> PpMatmul -> y TransData.

On the Atlas inference series aclnn runs QuantBatchMatmulV3's pp_matmul kernel (ops-nn
``arch20/pp_matmul_kernel.h``, ``PpMatmul<0, false, true, false, int8_t, uint64_t, int32_t,
half>``, tiling key 13) when M >= 1024 with a bias and x2 transposed after aclnn's own
transposes (:func:`npusim.ops.quant_matmul.takes_pp_matmul`). aclnn surrounds it with two
TransData launches (``aclnn_quant_matmul_v4.cpp``: ``TransdataForX1`` before, ``TransData(y,
ND)`` after). Three launches on one stream:

1. **x1 TransData ND -> FRACTAL_NZ**: the :mod:`npusim.ops.format_cast_program` kernel on the
   AI Cores (C0 = 32 int8); its output storage is the matmul's ``a``.
2. **PpMatmul** (:func:`build_pp_matmul_kernel`), per AI Core ``c`` the blocks ``loop_idx = c,
   c + block_dim, ...`` of the (m_loop x n_loop) grid in the kernel's Zn swizzle: per block,
   A (m_round x k0, from the NZ x1) and B (n_round x k0, from the transposed NZ x2) GM -> L1 by
   MTE2 as plain NZ copies into ping / pong L1 halves, the next K chunk prefetched before the
   current one is consumed; the int32 bias GM -> UB, broadcast UB -> L0C before the first Mmad;
   per K chunk, parts of ``k_part_len = 32768 / max(m_round, n_round)`` (32-aligned) L1 -> L0A /
   L0B (ping / pong) by MTE1 and Mmad accumulating in the one L0C tile; then the block's
   n_round uint64 parameters GM -> UB and the dequantising L0C -> UB copy VDEQ16 on V (the
   declared ``numerics.l0c_to_ub_dequant`` model, as the BmmDequant program); UB -> GM into the
   NZ output ``y_nz`` (fp16, C0 16) by MTE3. Flags and event ids are the kernel's.
3. **y TransData FRACTAL_NZ -> ND**: the format_cast kernel again; its output is the result.

Values: every stage's output is its functional run (the format_cast programs' moves, the
semantics table's exact int8 Mmad and VDEQ16 copy), bit-identical to
:func:`npusim.ops.quant_matmul.reference_quant_matmul` for the cases
:func:`~npusim.ops.quant_matmul.check_pp_matmul` defines (one matrix, an (n,) scale, float16
output). ``simulate`` returns the PpMatmul launch's run; each TransData launch is run once
(from a cold L2, functional when the call is: the y TransData of a functional call when the plan
is finished, on the PpMatmul's output) and its cycles named in the plan's notes and the kernel
metadata ``launches``.

Declared (not published, named in the kernel metadata ``declared``):

- the x2 Transpose + TransData of an ND x2 is weight preparation outside the timed launches
  (the BmmDequant program reads an ND x2 directly too); an NZ x2 is read as stored;
- scale / bias GM tensors are padded with zeros to RoundUp(n, 16): the kernel reads n_round
  values per block, past (n,) in the last block; only padding columns read them, which the
  output TransData drops;
- the kernel's per-fractal BroadCastVecToMM calls (n_round / 16 x m_round / 16) are one UB ->
  L0C broadcast copy of the block; its one NZ ub_to_gm of n_round / 16 bursts is one DataCopy
  per burst (UB holds the tile in logical order, the table's local-tile model);
- the heuristic's ``swizzle_direct`` is kept in the tiling but the quant kernel is instantiated
  with SWIZZL_DIR 0 (Zn), which the program follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.instructions import DataCopy
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.matmul_plans import stored_tensor

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan

L1_HALF = 131072  # L1_PINGPONG_BUFFER_LEN_INT8: one ping / pong half of A (or of B)
L0AB_HALF = 32768  # L0AB_PINGPONG_BUFFER_LEN_INT8
K0_BUFFER = 131072  # pp_matmul_default End() on 310P: k0 from L0AB_PINGPONG_BUFFER_LEN_FP16
UB_SCALE, UB_C, UB_BIAS = 0, 8 * 1024, 8 * 1024 + 128 * 1024  # the kernel's UB map (bytes)
AXES0_MAX = 256  # AXES_ALIGN_SIZE 512 / int8 size 1 / 2 (int8 on 310P)
BW_COEF = np.float32(5.0)  # HardwareInfo default l2BandWidth 5 / hbmBandWidth 1


@dataclass(frozen=True)
class PpMatmulTiling:
    """PpMatmulTilingData's free fields: base block ``m0`` x ``n0``, L1 K chunk ``k0``,
    ``block_dim`` cores, ``swizzle_count`` (Zn panel height in blocks) and the heuristic's
    ``swizzle_direct`` (unused by the kernel, which is Zn)."""

    m0: int
    n0: int
    k0: int
    block_dim: int
    swizzle_count: int = 1
    swizzle_direct: int = 0


def _f32(x: float | np.float32) -> np.float32:
    return np.float32(x)


def _cost(m: int, k: int, n: int, m0: int, n0: int, cores: int, l2: int) -> np.float32:
    """CostFunc of pp_matmul_common_tiling.h in float32."""
    m_loop, n_loop = -(-m // m0), -(-n // n0)
    block_dim = min(m_loop * n_loop, cores)
    m_once = m0 if block_dim < n_loop else block_dim // n_loop * m0
    n_once = cores * n0 if block_dim < n_loop else n
    a = BW_COEF if m_once * k > l2 else _f32(1)
    b = BW_COEF if n_once * k > l2 else _f32(1)
    return _f32(_f32(1) / (a * _f32(n0))) + _f32(_f32(1) / (b * _f32(m0)))


def default_pp_tiling(soc: SocDescriptor, m: int, k: int, n: int) -> PpMatmulTiling:
    """ops-nn's heuristic for the int8 pp_matmul on 310P (PpMatMulDefault::GetMatMulTilingData:
    TilingFunc's search over power-of-two m0 / n0 by CostFunc, SetBaseOp, Swizzle, End), float32
    where the source computes in float."""
    cores = soc.core_counts()["aicore"]
    l0c = soc.core("aicore").buffers["L0C"].capacity_bytes
    l2 = soc.memory.l2.capacity_bytes
    pri = m >= n  # PRI_FLAG: the primary axis is M
    other = -(-(n if pri else m) // 16)
    round_base = int(2.0 ** math.ceil(math.log(other)) * 16)
    pri_axes = -(-(m if pri else n) // 16) * 16
    axes = -(-(n if pri else m) // round_base) * round_base
    best, m0, n0 = _f32(1), 0, 0
    p0 = 16
    while p0 <= pri_axes and p0 <= AXES0_MAX:
        a0 = 16
        while a0 <= axes and a0 <= AXES0_MAX:
            if p0 * a0 * 4 <= l0c:
                cm, cn = (p0, a0) if pri else (a0, p0)
                cost = _cost(m, k, n, cm, cn, cores, l2)
                if cost < best:
                    best, m0, n0 = cost, cm, cn
            a0 *= 2
        p0 *= 2
    m_loop, n_loop = -(-m // m0), -(-n // n0)
    block_dim = min(m_loop * n_loop, cores)
    # Swizzle: the last direction tried is kept (as the source), the count of the best cost
    mincost = _f32(_f32(m) * _f32(k) + _f32(k) * _f32(n))
    count, direct = 1, 0
    for i in range(1, block_dim + 1):
        c = -(-block_dim // i)
        if _f32(_f32(i * n0) + _f32(m)) < _f32(_f32(m0 * c) + _f32(n)):
            direct, cost = 1, _f32(n0 * i + m0 * c)
            if cost <= mincost:
                mincost, count = cost, i
        else:
            direct, cost = 0, _f32(m0 * i + n0 * c)
            if cost < mincost:
                mincost, count = cost, i
    k0_max = K0_BUFFER // (m0 + n0)
    k0 = k0_max // 16 * 16 if k0_max < 256 else k0_max // 256 * 256
    return PpMatmulTiling(m0, n0, k0, block_dim, count, direct)


def validate_pp_tiling(t: PpMatmulTiling, soc: SocDescriptor, m: int, k: int, n: int) -> None:
    """The tiling's fields against the kernel's fixed buffer map and the SoC (ValueError naming
    the field)."""
    from npusim.tiling_overrides import check_tiling_type

    check_tiling_type(t, PpMatmulTiling, "quant_matmul (pp_matmul)")
    for f in ("m0", "n0"):
        v = getattr(t, f)
        if v <= 0 or v % 16:
            raise ValueError(f"tiling.{f}={v}: must be a positive multiple of 16")
    if t.k0 <= 0 or t.k0 % 32:
        raise ValueError(f"tiling.k0={t.k0}: must be a positive multiple of 32")
    l0c = soc.core("aicore").buffers["L0C"].capacity_bytes
    if t.m0 * t.n0 * 4 > l0c:
        raise ValueError(f"tiling.n0={t.n0}: the m0 x n0 int32 block needs {t.m0 * t.n0 * 4} B "
                         f"> L0C {l0c} B")
    if t.m0 * t.n0 * 2 > UB_BIAS - UB_C:
        raise ValueError(f"tiling.n0={t.n0}: the m0 x n0 float16 UB tile needs "
                         f"{t.m0 * t.n0 * 2} B > the kernel's {UB_BIAS - UB_C} B")
    if max(t.m0, t.n0) > L0AB_HALF // 32:
        raise ValueError(f"tiling.m0={t.m0}, n0={t.n0}: max(m0, n0) must be <= "
                         f"{L0AB_HALF // 32} (one 32-deep K part per L0A / L0B half)")
    if t.n0 * 8 > UB_C - UB_SCALE:
        raise ValueError(f"tiling.n0={t.n0}: n0 uint64 parameters exceed the kernel's 8 KiB")
    if max(t.m0, t.n0) * t.k0 > L1_HALF:
        raise ValueError(f"tiling.k0={t.k0}: an m0 / n0 x k0 int8 chunk needs "
                         f"{max(t.m0, t.n0) * t.k0} B > one L1 half of {L1_HALF} B")
    loops = -(-m // t.m0) * -(-n // t.n0)
    cores = soc.core_counts()["aicore"]
    if not 1 <= t.block_dim <= min(cores, loops):
        raise ValueError(f"tiling.block_dim={t.block_dim}: must be in 1..{min(cores, loops)} "
                         f"({cores} AI Cores, {loops} blocks)")
    if t.swizzle_count < 1:
        raise ValueError(f"tiling.swizzle_count={t.swizzle_count}: must be >= 1 (Zn panels "
                         "of swizzle_count block rows)")
    if t.swizzle_direct not in (0, 1):
        raise ValueError(f"tiling.swizzle_direct={t.swizzle_direct}: must be 0 or 1")


def block_order(t: PpMatmulTiling, m: int, n: int) -> list[tuple[int, int]]:
    """(m_idx, n_idx) of loop_idx 0, 1, ... (the kernel's GetIdx, SWIZZL_DIR 0 = Zn)."""
    m_loop, n_loop, s = -(-m // t.m0), -(-n // t.n0), t.swizzle_count
    out = []
    tile_loop = -(-m_loop // s)
    for li in range(m_loop * n_loop):
        tb, inner = divmod(li, s * n_loop)
        rows = m_loop - s * tb if tb == tile_loop - 1 else s
        out.append((tb * s + inner % rows, inner // rows))
    return out


#: the kernel's event ids, set before its block loop and waited after it, in this order
_KERNEL_EVENTS = (*(("MTE1", "MTE2", ev) for ev in (0, 1, 2, 3)),
                  ("M", "MTE1", 0), ("M", "MTE1", 1), ("V", "M", 0), ("MTE3", "V", 0),
                  ("V", "MTE2", 1), ("V", "MTE2", 0))


@dataclass(frozen=True)
class _Block:
    """One output block: its (m, n) block indices and rows / columns rounded to 16."""

    mi: int
    ni: int
    mr: int
    nr: int


def _load_chunk(bld: ProgramBuilder, l1a: list[Region], l1b: list[Region], t: PpMatmulTiling,
                k: int, a: GmMatrix, b: GmMatrix, blk: _Block, kidx: int, buf: int) -> None:
    """K chunk ``kidx`` of the block's A and B GM -> L1 (``buf`` 1: the ping halves, events 0 /
    2; 0: pong, 1 / 3), each a plain copy of its NZ runs (``a``: x1's NZ storage, ``b``: the
    transposed x2's, both C0 = 32 int8)."""
    k_loop = -(-k // t.k0)
    ka = k - kidx * t.k0 if kidx == k_loop - 1 else t.k0
    kr = -(-ka // 32) * 32
    ea, eb = (0, 2) if buf else (1, 3)
    bld.wait_flag("MTE1", "MTE2", ea)
    bld.dma(a.window(blk.mi * t.m0, blk.mr, kidx * t.k0, kr),
            Region("L1", l1a[1 - buf].offset, (blk.mr, kr), "int8"),
            name="A GM->L1 (NZ)", transform="nz")
    bld.set_flag("MTE2", "MTE1", ea)
    bld.wait_flag("MTE1", "MTE2", eb)
    bld.dma(b.window(blk.ni * t.n0, blk.nr, kidx * t.k0, kr),
            Region("L1", l1b[1 - buf].offset, (kr, blk.nr), "int8"),
            name="B GM->L1 (NZ, transposed)", transform="nz2nd")
    bld.set_flag("MTE2", "MTE1", eb)


def build_pp_matmul_kernel(soc: SocDescriptor, m: int, k: int, n: int, t: PpMatmulTiling, *,
                           a: np.ndarray | None = None, b: np.ndarray | None = None,
                           bias: np.ndarray | None = None, params: np.ndarray | None = None,
                           meta: dict[str, Any] | None = None) -> Kernel:
    """The PpMatmul launch. ``a``: x1's NZ storage (k1, m1, 16, 32); ``b``: the transposed
    x2's NZ storage (k1, n1, 16, 32); ``bias`` int32 and ``params`` (the uint64 parameters as
    int64) of n values (None: timing only). Output ``y_nz``: (n1, m1, 16, 16) float16."""
    validate_pp_tiling(t, soc, m, k, n)
    desc = soc.core("aicore")
    mu, nu, ku = -(-m // 16) * 16, -(-n // 16) * 16, -(-k // 32) * 32
    functional = a is not None
    pad_n = np.zeros(nu, np.int32)
    gm = {
        "a": GMTensor("a", (ku // 32, mu // 16, 16, 32), "int8", a, "input"),
        "b": GMTensor("b", (ku // 32, nu // 16, 16, 32), "int8", b, "input"),
        "bias": GMTensor("bias", (nu,), "int32", None if bias is None else np.concatenate(
            [np.asarray(bias, np.int32).reshape(-1), pad_n[n:]]), "input"),
        "qp": GMTensor("qp", (nu,), "uint64", None if params is None else np.concatenate(
            [np.asarray(params).view(np.uint64).reshape(-1), pad_n[n:].astype(np.uint64)]),
            "input"),
        "y_nz": GMTensor("y_nz", (nu // 16, mu // 16, 16, 16), "float16", None, "output"),
    }
    a_nz, b_nz = (GmMatrix(name, "int8", 0, nz_rows=rows, nz_c0=32)
                  for name, rows in (("a", mu), ("b", nu)))
    m_loop, n_loop, k_loop = -(-m // t.m0), -(-n // t.n0), -(-k // t.k0)
    order = block_order(t, m, n)
    path = desc.transfer("L0C", "UB")
    assert path is not None  # the coupled AI Core's dequantising copy
    cores = []
    for ci in range(t.block_dim):
        prog = CoreProgram(ci, "aicore")
        cores.append(prog)
        bld = ProgramBuilder(prog, desc)
        l1a = [bld.alloc("L1", (L1_HALF,), "int8", f"l1_a_{i}") for i in ("ping", "pong")]
        l1b = [bld.alloc("L1", (L1_HALF,), "int8", f"l1_b_{i}") for i in ("ping", "pong")]
        l0a = [bld.alloc("L0A", (L0AB_HALF,), "int8", f"l0_a_{i}") for i in ("ping", "pong")]
        l0b = [bld.alloc("L0B", (L0AB_HALF,), "int8", f"l0_b_{i}") for i in ("ping", "pong")]
        l0c = bld.alloc("L0C", (t.m0 * t.n0,), "int32", "l0c")
        for src, dst, ev in _KERNEL_EVENTS:  # primed once, drained at the end
            bld.set_flag(src, dst, ev)
        pp = 1  # l1_ping_pong: 1 = ping
        for li in range(ci, m_loop * n_loop, t.block_dim):
            mi, ni = order[li]
            ma = m - mi * t.m0 if mi == m_loop - 1 else t.m0
            na = n - ni * t.n0 if ni == n_loop - 1 else t.n0
            mr, nr = -(-ma // 16) * 16, -(-na // 16) * 16
            c_reg = Region("L0C", l0c.offset, (mr, nr), "int32")

            blk = _Block(mi, ni, mr, nr)
            _load_chunk(bld, l1a, l1b, t, k, a_nz, b_nz, blk, 0, pp)
            bias_ub = Region("UB", UB_BIAS, (nr,), "int32")
            bld.wait_flag("V", "MTE2", 0)
            bld.dma(Region("GM", ni * t.n0 * 4, (nr,), "int32", "bias"), bias_ub,
                    name="bias GM->UB")
            bld.set_flag("MTE2", "V", 0)
            k_part = L0AB_HALF // max(mr, nr) // 32 * 32
            for kidx in range(k_loop):
                ka = k - kidx * t.k0 if kidx == k_loop - 1 else t.k0
                kr = -(-ka // 32) * 32
                ea, eb = (0, 2) if pp else (1, 3)
                if kidx < k_loop - 1:
                    _load_chunk(bld, l1a, l1b, t, k, a_nz, b_nz, blk, kidx + 1, 1 - pp)
                a_l1 = Region("L1", l1a[1 - pp].offset, (mr, kr), "int8")
                b_l1 = Region("L1", l1b[1 - pp].offset, (kr, nr), "int8")
                parts = -(-ka // k_part)
                for kp in range(parts):
                    k0r = k_part if kp < parts - 1 else kr - kp * k_part
                    lp = 1 - kp % 2
                    ev = 0 if lp else 1
                    if kp == 0:
                        bld.wait_flag("MTE2", "MTE1", ea)
                    bld.wait_flag("M", "MTE1", ev)
                    a0 = Region("L0A", l0a[1 - lp].offset, (mr, k0r), "int8")
                    b0 = Region("L0B", l0b[1 - lp].offset, (k0r, nr), "int8")
                    bld.dma(Region("L1", a_l1.offset + kp * k_part, (mr, k0r), "int8",
                                   None, kr), a0, name="L1->L0A")
                    if kp == parts - 1:
                        bld.set_flag("MTE1", "MTE2", ea)
                    if kp == 0:
                        bld.wait_flag("MTE2", "MTE1", eb)
                    bld.dma(Region("L1", b_l1.offset + kp * k_part * nr, (k0r, nr), "int8"),
                            b0, name="L1->L0B")
                    if kp == parts - 1:
                        bld.set_flag("MTE1", "MTE2", eb)
                    bld.sync("MTE1", "M", ev)
                    if kidx == 0 and kp == 0:
                        bld.wait_flag("MTE2", "V", 0)
                        bld.dma(bias_ub, c_reg, name="bias UB->L0C broadcast")
                        bld.set_flag("V", "MTE2", 0)
                        bld.sync("V", "M", 1)
                        bld.wait_flag("V", "M", 0)
                    bld.barrier("M")
                    bld.mmad(a0, b0, c_reg, mr, k0r, nr, "int8", accumulate=True,
                             accumulation="exact_integer" if functional else None)
                    bld.set_flag("M", "MTE1", ev)
                pp = 1 - pp
            bld.barrier("MTE2")
            bld.wait_flag("V", "MTE2", 1)
            ub_q = Region("UB", UB_SCALE, (nr,), "uint64")
            bld.dma(Region("GM", ni * t.n0 * 8, (nr,), "uint64", "qp"), ub_q,
                    name="deq params GM->UB")
            bld.sync("M", "V", 0)
            bld.wait_flag("MTE3", "V", 0)
            bld.sync("MTE2", "V", 1)
            ub_c = Region("UB", UB_C, (mr, nr), "float16")
            bld.emit(DataCopy(pipe=path.pipe, name="L0C->UB VDEQ16", reads=(c_reg, ub_q),
                              writes=(ub_c,), deq="VDEQ16"))
            bld.set_flag("V", "MTE2", 1)
            if ma == 1:  # the kernel zeroes row 1 (m_mmad_actual = 2) before the store
                row = Region("UB", UB_C + nr * 2, (1, nr), "float16")
                bld.vop(VecOp.MULS, row, (row,), scalar=0.0, name="Muls 0 (row 1)")
            bld.set_flag("V", "M", 0)
            bld.sync("V", "MTE3", 0)
            for s in range(nr // 16):
                col = ni * t.n0 // 16 + s
                bld.dma(Region("UB", UB_C + s * 32, (mr, 16), "float16", None, nr * 2),
                        Region("GM", (col * mu + mi * t.m0) * 32, (mr, 16), "float16",
                               "y_nz", 32), name="y UB->GM (NZ burst)")
            bld.set_flag("MTE3", "V", 0)
        for src, dst, ev in _KERNEL_EVENTS:
            bld.wait_flag(src, dst, ev)
    md: dict[str, Any] = {
        "op": "quant_matmul", "kernel": "PpMatmul (ops-nn arch20/pp_matmul_kernel.h)",
        "m": m, "k": k, "n": n, "m0": t.m0, "n0": t.n0, "k0": t.k0, "m_loop": m_loop,
        "n_loop": n_loop, "k_loop": k_loop, "block_dim": t.block_dim,
        "swizzle": f"Zn x{t.swizzle_count}", "x1_format": "FRACTAL_NZ",
        "x2_format": "FRACTAL_NZ (transposed)", "y_format": "FRACTAL_NZ",
        "declared": {
            "x2_prepass": "an ND x2's Transpose + TransData is weight preparation, not timed",
            "scale_bias_padding": "zeros up to RoundUp(n, 16) (read by padding columns only)",
            "bias_broadcast": "one UB -> L0C copy per block for the per-fractal "
                              "BroadCastVecToMM calls",
            "nz_store": "one DataCopy per 16-column NZ burst of the block",
            "swizzle": "Zn (the kernel's SWIZZL_DIR 0) whatever swizzle_direct says",
        },
    }
    md.update(meta or {})
    return Kernel("quant_matmul_pp", gm, cores, md)


def _x2_storage(x2: np.ndarray) -> np.ndarray:
    """The transposed x2's NZ storage (k1, n1, 16, 32): an NZ x2 as stored; an ND x2 (a (k, n)
    array or a transposed view of an (n, k) one) as its stored (n, k) matrix, converted on the
    host (the declared weight preparation)."""
    from npusim.layouts import nd_to_nz

    stored = stored_tensor(x2, True)
    assert stored is not None  # a functional call's x2 is an array
    return stored if getattr(x2, "npu_format", 2) == 29 else np.asarray(nd_to_nz(stored))


def _outputs(plan: Plan, run: Any) -> Any:
    """A format_cast launch's result as its plan finishes it."""
    return plan.finish(run.outputs) if plan.finish else run.outputs["y"]


def _run(soc: SocDescriptor, plan: Plan) -> Any:
    from npusim.engine.sim import run_kernel

    return run_kernel(plan.kernel, soc, functional=plan.functional,
                      check_races=plan.functional)


def plan_pp_matmul(soc: SocDescriptor, tiling: Any, p: Any, *, x1: Any, x2: Any, scale: Any,
                   offset: Any = None, bias: Any = None) -> Plan:
    """Runner entry of the pp_matmul path (``p``: the validated, pp-checked call)."""
    from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, FormattedArray
    from npusim.ops.format_cast_program import plan_format_cast
    from npusim.ops.quant_matmul import coupled_deq_model, coupled_deq_params
    from npusim.runner import Plan
    from npusim.spec import spec

    functional = isinstance(x1, np.ndarray)
    t = default_pp_tiling(soc, p.m, p.k, p.n) if tiling is None else tiling
    validate_pp_tiling(t, soc, p.m, p.k, p.n)
    pre = plan_format_cast(soc, x=x1 if functional else spec((p.m, p.k), "int8"),
                           acl_format=ACL_FORMAT_FRACTAL_NZ)
    pre_run = _run(soc, pre)
    a = None
    if functional:
        nz = _outputs(pre, pre_run)
        a = np.ascontiguousarray(np.asarray(nz).view(np.ndarray))
    params = coupled_deq_params(scale, offset, p) if functional else None
    kern = build_pp_matmul_kernel(
        soc, p.m, p.k, p.n, t, a=a, b=_x2_storage(x2) if functional else None,
        bias=np.asarray(bias) if functional else None, params=params,
        meta={"declared_l0c_to_ub_dequant_model": coupled_deq_model(soc)})
    launches: dict[str, Any] = {"x1 TransData ND->NZ": pre_run.cycles, "PpMatmul": "this run"}
    kern.meta["launches"] = launches
    notes: list[str] = []

    def post(y_nz: Any) -> Any:
        """Run the y TransData on ``y_nz`` (the PpMatmul's output, or its spec) once and name
        its cycles in the launches and the note; its result (None timing-only)."""
        back = plan_format_cast(soc, x=y_nz, acl_format=ACL_FORMAT_ND)
        run = _run(soc, back)
        launches["y TransData NZ->ND"] = run.cycles
        notes[:] = [f"310P pp_matmul path: 3 launches; this run is PpMatmul; x1 TransData "
                    f"ND->NZ {pre_run.cycles} cycles and y TransData NZ->ND {run.cycles} cycles "
                    "run separately (each from a cold L2)"]
        return _outputs(back, run) if back.functional else None

    if not functional:  # timing only: nothing to wait for
        post(spec((p.m, p.n), "float16", npu_format=ACL_FORMAT_FRACTAL_NZ))

    def finish(out: dict[str, np.ndarray]) -> Any:
        y = post(FormattedArray(out["y_nz"], ACL_FORMAT_FRACTAL_NZ, (p.m, p.n)))
        return np.asarray(y).reshape(p.out_shape)

    return Plan(kern, "quant_matmul (PpMatmul: x1 TransData, NZ blocks, y TransData)", t,
                functional, finish=finish, notes=notes)
