"""The A8W4 ``npu_quant_matmul`` (int8 x, int4 weight, per-group scales) as a tiled program.

Structure of the A2 / A3 kernel (ops-nn ``quant_batch_matmul_v4_msd.h`` and
``quant_batch_matmul_v4_msd_tiling.cpp``, per-group K_G case; read for behaviour, not copied):
one mix launch of ``aicNum`` AI Cores (an AIC and its two AIVs each).

1. *Split, every AIV* (``QuantBatchMatmulV4MsdPre``): AIV ``v`` of the 2 x aicNum takes rows
   ``v, v + 2 aicNum, ...`` of x1. Per row: MTE2 loads the k int8 values; V runs Cast int8 ->
   fp16, Muls 1/16, Cast fp16 -> int4 FLOOR (``hi = x >> 4``), MTE3 stores the k / 2 bytes of
   ``hi`` over the row's first half; then And of the int16 view with 0x0F0F (``x & 15`` per
   byte), Cast int8 -> fp16, Adds -8, Cast fp16 -> int4 (``lo``), MTE3 stores it over the second
   half. x1's bytes are now a (2m, k) int4 matrix, row 2i = hi digits of row i, 2i + 1 = lo.
2. *SyncAll*: a mode-0 barrier of all AIVs, then each AIV signals its AIC (mode 2).
3. *AIC*: base blocks of 16 int4 rows x ``base_n`` columns (``base_n`` the first of 64 / 128 /
   256 / 512 above ceil(n / ceil(aicNum / ceil(2m / 16))), else 512), dealt round robin over
   the cores (block ``i`` on core ``i % aicNum``, N index fastest). Per block and per k-group of
   256: the matmul library's MDL step - A (16 x 256) and B (256 x base_n) GM -> L1 once (ND2NZ),
   two base-K = 128 steps through ping-pong L0A / L0B, Mmad int4 x int4 -> int32 in L0C - then
   the group's uint64 parameters GM -> L1 -> FB and FixPipe VDEQF16 into the block's fp16 slot
   of a GM workspace ring (4 slots per core): group 0 written, later groups atomically added.
   READY to the AIVs after the last group; before filling a slot again the AIC waits FREE.
4. *AIV*: both AIVs wait READY and load the block's y_offset; the block's output rows go to
   one of them (the kernel alternates by a chunk counter: the first block to AIV 1): MTE2 loads
   the hi and lo rows of the slot, V Casts fp16 -> fp32, Muls 16, Add (``16 hi + lo``), Add
   y_offset (64-lane column pieces, one repeat per row), loads the per-token scale, Brcb and Mul,
   Cast to the output dtype (CAST_RINT); MTE3 stores the rows. Both AIVs set FREE.

Declared (the source does not publish it, or npusim does not model it):

- CrossCoreWaitFlag waits on the scalar pipe; here the waits sit on MTE2 (the next pipe the
  core uses), so later work of that pipe waits as it would behind the scalar pipe.
- The library's BroadCast<float, 2, 1> of the per-token scale over a row is Brcb + a Mul by a
  block-stride-0 column view (same values; the library's own instruction sequence is not shown).
- The weight's L2 cache-disable hint (``blockDimM == 1``) is not modelled: its loads allocate in
  L2 like any other.
- The AIV's vecIn / vecOut queues hold one buffer (TQue depth 1): the input set is released to
  MTE2 at the store (the kernel frees it after its first Cast).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.cube_emitter import CubeEmitter
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.cube_templates import Interner
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.matmul_tiling import CubeTiling
from npusim.ops.program_stages import CrossFlag, CrossFlags, PingPong, Ring, VecInOut
from npusim.ops.quant_matmul_a8w4 import A8W4_NUMERICS_MODEL, A8W4Plan

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

BASE_NS = (64, 128, 256, 512)  # ops-nn BASEN: the per-group base_n choices
_ISZ = {"float16": 2, "bfloat16": 2, "float32": 4}


@dataclass(frozen=True)
class A8W4Tiling:
    """The numbers of the per-group A8W4 kernel (ops-nn ``SetMatmulTilingPerGroup``).

    ``base_m`` int4 rows (two per x1 row), ``base_n`` columns, ``base_k`` per L0 step
    (``group_k`` = 2 steps, L0A / L0B ping-pong), ``core_num`` AI Cores of the launch,
    ``parall_num`` workspace slots per AIC, ``ub_cal_size`` elements of an AIV chunk buffer."""

    base_n: int
    core_num: int
    base_m: int = 16
    base_k: int = 128
    group_k: int = 256
    parall_num: int = 4
    ub_cal_size: int = 32 * 256

    def cube(self) -> CubeTiling:
        steps = self.group_k // self.base_k
        return CubeTiling(base_m=self.base_m, base_n=self.base_n, base_k=self.base_k,
                          step_ka=steps, step_kb=steps, depth_a1=1, depth_b1=1,
                          single_core_m=self.base_m, single_core_n=self.base_n, m_dim=1,
                          n_dim=1, l0_db=True, l0c_db=False)

    def vec_rows(self) -> int:
        """Output rows per AIV chunk: min(ubCalSize / baseN, baseM / 2)."""
        return min(self.ub_cal_size // self.base_n, self.base_m // 2)


def default_a8w4_tiling(soc: SocDescriptor, m: int, n: int) -> A8W4Tiling:
    """ops-nn's per-group tiling: base_n from the cores left per block row."""
    aic = soc.core_counts()["aic"]
    base_m = 16
    cores_n = math.ceil(aic / math.ceil(2 * m / base_m))
    want = math.ceil(n / cores_n)
    base_n = next((b for b in BASE_NS if want < b), BASE_NS[-1])
    return A8W4Tiling(base_n=base_n, core_num=aic)


def check_a8w4_tiling(t: Any, soc: SocDescriptor) -> A8W4Tiling:
    """A given tiling: an :class:`A8W4Tiling` within the kernel's rules and the SoC's cores."""
    if not isinstance(t, A8W4Tiling):
        raise TypeError(f"tiling: the A8W4 kernel reads an A8W4Tiling, got {type(t).__name__}")
    aic = soc.core_counts()["aic"]
    if t.base_n not in BASE_NS:
        raise ValueError(f"tiling.base_n: {t.base_n} must be one of {BASE_NS}")
    if not 1 <= t.core_num <= aic:
        raise ValueError(f"tiling.core_num: {t.core_num} must be in [1, {aic}] on {soc.name}")
    if t.base_m % 2 or t.base_m < 2 or t.group_k % t.base_k or t.parall_num < 1:
        raise ValueError(f"tiling: base_m {t.base_m} must be even, base_k {t.base_k} must divide "
                         f"group_k {t.group_k}, parall_num {t.parall_num} must be >= 1")
    if t.vec_rows() < 1:
        raise ValueError(f"tiling.ub_cal_size: {t.ub_cal_size} holds no row of {t.base_n}")
    return t


@dataclass(frozen=True)
class _Flags:
    table: CrossFlags
    all_split: CrossFlag
    split: CrossFlag
    ring: Ring

    @classmethod
    def of(cls, soc: SocDescriptor, slots: int) -> _Flags:
        f = CrossFlags.of(soc)
        return cls(f, f.flag("every AIV wrote its x1 int4 digit rows", mode=0),
                   f.flag("x1 digit rows written (SyncAll)"),
                   f.ring("fp16 digit-product block slot", slots))


def _blocks(p: A8W4Plan, t: A8W4Tiling) -> list[tuple[int, int]]:
    """(m block, n block) of every base block, in dealing order (N index fastest)."""
    bdm, bdn = math.ceil(2 * p.m / t.base_m), math.ceil(p.n / t.base_n)
    return [(i // bdn, i % bdn) for i in range(bdm * bdn)]


def _split_rows(b: ProgramBuilder, p: A8W4Plan, v: int, n_aiv: int) -> None:
    """Step 1 on AIV ``v``: its x1 rows split into int4 hi / lo digit rows, in place."""
    k = p.k
    kpad = math.ceil(k / 32) * 32
    mark = b.used_bytes("UB")
    x = b.alloc("UB", (kpad,), "int8", "x")
    hi4 = b.alloc("UB", (kpad,), "int4", "x_hi_int4")
    lo4 = b.alloc("UB", (kpad,), "int4", "x_lo_int4")
    tmp = b.alloc("UB", (2 * kpad,), "float16", "tmp")
    mask = b.alloc("UB", (128,), "int16", "mask_0f0f")
    r0 = Region("UB", tmp.offset, (k,), "float16")
    r1 = Region("UB", tmp.offset + kpad * 2, (k,), "float16")
    b.vop(VecOp.DUPLICATE, mask, scalar=0x0F0F, name="Duplicate 0x0F0F")
    b.sync("V", "MTE2", 0)  # the kernel's V -> MTE2 flag set after the Duplicate
    xin = PingPong(b, "MTE2", "V", (0,))
    hi_out, lo_out = PingPong(b, "V", "MTE3", (0,)), PingPong(b, "V", "MTE3", (1,))
    lanes = kpad // 2
    reps, last = divmod(lanes, 128)
    for row in range(v, p.m, n_aiv):
        i = xin.acquire()
        b.dma(Region("GM", row * k, (k,), "int8", "x1"), Region("UB", x.offset, (k,), "int8"),
              name="x1 row GM->UB")
        xin.ready(i)
        b.cast(r0, Region("UB", x.offset, (k,), "int8"), round_mode="rint",
               name="Cast int8->fp16 (CAST_NONE)")
        b.vop(VecOp.MULS, r1, (r0,), scalar=0.0625, name="Muls 1/16")
        j = hi_out.acquire()
        hi = Region("UB", hi4.offset, (k,), "int4")
        b.cast(hi, r1, round_mode="floor", name="Cast fp16->int4 FLOOR (hi)")
        hi_out.ready(j)
        b.dma(hi, Region("GM", row * k, (k,), "int4", "x1"), name="hi digits UB->GM (x1)")
        hi_out.release(j)
        if reps:
            b.vop(VecOp.AND, Region("UB", tmp.offset, (reps, 128), "int16"),
                  (Region("UB", x.offset, (reps, 128), "int16"), mask), name="And 0x0F0F")
        if last:
            off = reps * 256
            b.vop(VecOp.AND, Region("UB", tmp.offset + off, (last,), "int16"),
                  (Region("UB", x.offset + off, (last,), "int16"),
                   Region("UB", mask.offset, (last,), "int16")), name="And 0x0F0F (tail)")
        xin.release(i)
        b.cast(r1, Region("UB", tmp.offset, (k,), "int8"), round_mode="rint",
               name="Cast int8->fp16 (CAST_NONE)")
        b.vop(VecOp.ADDS, r0, (r1,), scalar=-8.0, name="Adds -8")
        j = lo_out.acquire()
        lo = Region("UB", lo4.offset, (k,), "int4")
        b.cast(lo, r0, round_mode="rint", name="Cast fp16->int4 (CAST_NONE, lo)")
        lo_out.ready(j)
        b.dma(lo, Region("GM", row * k + k // 2, (k,), "int4", "x1"),
              name="lo digits UB->GM (x1)")
        lo_out.release(j)
    for q in (xin, hi_out, lo_out):
        q.drain()
    b.release("UB", mark)


def _slot(t: A8W4Tiling, ci: int, slot: int, r0: int, rows: int, rn: int,
          row_stride: int) -> Region:
    """Rows ``r0..`` of core ``ci``'s workspace slot (the block stored densely, rn wide)."""
    off = ((slot * t.core_num + ci) * t.base_m * t.base_n + r0 * rn) * 2
    return Region("GM", off, (rows, rn), "float16", "ws", row_stride)


def _aic(b: ProgramBuilder, soc: SocDescriptor, p: A8W4Plan, t: A8W4Tiling, ci: int, fl: _Flags,
         functional: bool, interner: Interner) -> None:
    """Step 3 on AIC ``ci``."""
    fl.split.wait(b, "MTE2")
    mine = _blocks(p, t)[ci::t.core_num]
    if not mine:
        return
    em = CubeEmitter(b, soc, t.cube(), "int4", functional=functional,
                     cube_model="exact_integer", with_bias=False, interner=interner)
    em.use_quant_vector(GmMatrix("qp", "uint64", p.n * 8))
    a = GmMatrix("x1", "int4", p.k // 2)
    w = GmMatrix("x2", "int4", p.n // 2)
    epi = Epilogue("VDEQF16", "float16", "int32")
    groups = p.k // t.group_k
    for j, (mi, ni) in enumerate(mine):
        fl.ring.fill(b, j, "MTE2")
        slot = j % t.parall_num
        m0, n0 = mi * t.base_m, ni * t.base_n
        m1, n1 = min(2 * p.m, m0 + t.base_m), min(p.n, n0 + t.base_n)
        for g in range(groups):
            def sink(bm: int, bn: int, rm: int, rn: int, last: bool = g == groups - 1,
                     slot: int = slot) -> tuple[Region, Any]:
                after = (lambda: fl.ring.publish(b, "FIX")) if last else (lambda: None)
                return _slot(t, ci, slot, 0, rm, rn, rn * 2), after

            em.sink = sink
            em.quant = GmMatrix("qp", "uint64", p.n * 8, offset=g * p.n * 8)
            em.atomic = "add" if g else ""
            em.block(a, w, a, epi, m0, m1, n0, n1, t.group_k, k_offset=g * t.group_k)


class _AivEpilogue:
    """Step 4's buffers and queues on one AIV."""

    def __init__(self, b: ProgramBuilder, p: A8W4Plan, t: A8W4Tiling) -> None:
        self.b, self.p, self.t = b, p, t
        rows, an = t.vec_rows(), math.ceil(t.base_n / 16) * 16
        cs = rows * an
        self.mm = b.alloc("UB", (2 * cs,), "float16", "mm_out")
        self.buf1 = b.alloc("UB", (2 * cs,), "float32", "buffer1")  # buffer4 aliases it
        self.buf2 = b.alloc("UB", (cs,), "float32", "buffer2")
        self.buf3 = b.alloc("UB", (cs,), "float32", "buffer3")
        self.out = b.alloc("UB", (cs,), p.out_dtype, "y")
        self.yoff = b.alloc("UB", (an,), "float32", "y_offset")
        self.pt = b.alloc("UB", (max(8, math.ceil(rows / 8) * 8),), "float32", "x1_scale")
        self.pb = b.alloc("UB", (rows, 8), "float32", "x1_scale_brcb")
        self.q = VecInOut(b, (0,))
        self.yq = PingPong(b, "MTE2", "V", (1,))
        self.pq = PingPong(b, "MTE2", "V", (2,))

    def load_offset(self, n0: int, rn: int) -> int:
        i = self.yq.acquire()
        self.b.dma(Region("GM", n0 * 4, (rn,), "float32", "y_offset"),
                   Region("UB", self.yoff.offset, (rn,), "float32"), name="y_offset GM->UB")
        self.yq.ready(i)
        return i

    def chunk(self, src_hi: Region, src_lo: Region, r0: int, rows: int, n0: int,
              rn: int) -> None:
        """Output rows r0.. (rows of them), columns n0..n0 + rn, from the slot's digit rows."""
        b, p = self.b, self.p
        an = math.ceil(rn / 16) * 16
        cs = rows * an

        def ub(base: Region, off: int, shape: tuple[int, ...], dt: str,
               stride: int | None = None) -> Region:
            return Region("UB", base.offset + off, shape, dt, None, stride)

        i = self.q.load()
        b.dma(src_hi, ub(self.mm, 0, (rows, rn), "float16", an * 2), name="hi rows GM->UB")
        b.dma(src_lo, ub(self.mm, cs * 2, (rows, rn), "float16", an * 2),
              name="lo rows GM->UB")
        self.q.compute(i)
        b.cast(ub(self.buf1, 0, (2 * cs,), "float32"), ub(self.mm, 0, (2 * cs,), "float16"),
               round_mode="rint", name="Cast fp16->fp32")
        hi16 = ub(self.buf2, 0, (cs,), "float32")
        b.vop(VecOp.MULS, hi16, (ub(self.buf1, 0, (cs,), "float32"),), scalar=16.0,
              name="Muls 16 (hi)")
        b.vop(VecOp.ADD, ub(self.buf3, 0, (cs,), "float32"),
              (ub(self.buf1, cs * 4, (cs,), "float32"), hi16), name="Add lo + 16 hi")
        for c0 in range(0, an, 64):
            w = min(64, an - c0)
            b.vop(VecOp.ADD, ub(self.buf2, c0 * 4, (rows, w), "float32", an * 4),
                  (ub(self.buf3, c0 * 4, (rows, w), "float32", an * 4),
                   ub(self.yoff, c0 * 4, (w,), "float32")), name="Add y_offset")
        j = self.pq.acquire()
        pt = ub(self.pt, 0, (rows,), "float32")
        b.dma(Region("GM", r0 * 4, (rows,), "float32", "pertoken"), pt,
              name="pertoken GM->UB")
        self.pq.ready(j)
        pb = ub(self.pb, 0, (rows, 8), "float32")
        b.vop(VecOp.BRCB, pb, (pt,), name="Brcb pertoken (BroadCast)")
        self.pq.release(j)
        f = ub(self.buf1, 0, (rows, an), "float32")  # buffer4
        b.vop(VecOp.MUL, f, (ub(self.buf2, 0, (rows, an), "float32"),
                             Region("UB", pb.offset, (rows, 1), "float32", None, 32)),
              name="Mul pertoken")
        y = ub(self.out, 0, (cs,), p.out_dtype)
        b.cast(y, ub(self.buf1, 0, (cs,), "float32"), round_mode="rint", saturate=True,
               name=f"Cast fp32->{p.out_dtype} RINT")
        self.q.store(i)
        osz = _ISZ[p.out_dtype]
        b.dma(ub(self.out, 0, (rows, rn), p.out_dtype, an * osz),
              Region("GM", (r0 * p.n + n0) * osz, (rows, rn), p.out_dtype, "c", p.n * osz),
              name="y UB->GM")
        self.q.stored(i)

    def drain(self) -> None:
        self.q.drain()
        self.yq.drain()
        self.pq.drain()


def _aiv(b: ProgramBuilder, p: A8W4Plan, t: A8W4Tiling, ci: int, h: int, fl: _Flags) -> None:
    """Steps 1, 2 and 4 on AIV ``h`` of AI Core ``ci``."""
    _split_rows(b, p, 2 * ci + h, 2 * t.core_num)
    fl.all_split.barrier(b, "MTE3", "MTE2")
    fl.split.set(b, "MTE2")
    mine = _blocks(p, t)[ci::t.core_num]
    if not mine:
        return
    ep = _AivEpilogue(b, p, t)
    half_m, vrows, count = t.base_m // 2, t.vec_rows(), 0
    for j, (mi, ni) in enumerate(mine):
        slot = j % t.parall_num
        n0 = ni * t.base_n
        rn = min(p.n, n0 + t.base_n) - n0
        out_rows = min(half_m, p.m - mi * half_m)
        fl.ring.take(b, "MTE2")
        yi = ep.load_offset(n0, rn)
        for r in range(0, out_rows, vrows):
            count += 1
            if count % 2 != h:
                continue
            rows = min(vrows, out_rows - r)
            ep.chunk(_slot(t, ci, slot, 2 * r, rows, rn, 4 * rn),
                     _slot(t, ci, slot, 2 * r + 1, rows, rn, 4 * rn),
                     mi * half_m + r, rows, n0, rn)
        ep.yq.release(yi)
        fl.ring.release(b, "MTE2")
    ep.drain()


def mix_cores(soc: SocDescriptor, n: int, aic: Callable[[ProgramBuilder, int], None],
              aiv: Callable[[ProgramBuilder, int, int], None]) -> list[CoreProgram]:
    """The programs of a mix launch of ``n`` AI Cores: AIC ``ci`` built by ``aic(b, ci)``, then
    AIV ``2 ci + h`` by ``aiv(b, ci, h)``."""
    cores: list[CoreProgram] = []
    for ci in range(n):
        cores.append(CoreProgram(ci, "aic"))
        aic(ProgramBuilder(cores[-1], soc.core("aic")), ci)
    for ci in range(n):
        for h in range(2):
            cores.append(CoreProgram(2 * ci + h, "aiv"))
            aiv(ProgramBuilder(cores[-1], soc.core("aiv")), ci, h)
    return cores


def build_a8w4_kernel(soc: SocDescriptor, p: A8W4Plan, t: A8W4Tiling, *,
                      x1: np.ndarray | None = None,
                      x2: np.ndarray | None = None, qp: np.ndarray | None = None,
                      y_offset: np.ndarray | None = None,
                      pertoken: np.ndarray | None = None) -> Kernel:
    """The kernel of one A8W4 call (module docstring); arrays None for a timing-only run."""
    fl = _Flags.of(soc, t.parall_num)
    groups = p.k // t.group_k
    gm = {
        "x1": GMTensor("x1", (p.m, p.k), "int8", x1, "input"),
        "x2": GMTensor("x2", (p.k, p.n), "int4", x2, "input"),
        "qp": GMTensor("qp", (groups, p.n), "uint64", qp, "input"),
        "y_offset": GMTensor("y_offset", (p.n,), "float32", y_offset, "input"),
        "pertoken": GMTensor("pertoken", (p.m,), "float32", pertoken, "input"),
        "ws": GMTensor("ws", (t.parall_num * t.core_num, t.base_m, t.base_n), "float16", None,
                       "workspace"),
        "c": GMTensor("c", (p.m, p.n), p.out_dtype, None, "output"),
    }
    functional = x1 is not None
    interner = Interner()
    cores = mix_cores(soc, t.core_num,
                      lambda b, ci: _aic(b, soc, p, t, ci, fl, functional, interner),
                      lambda b, ci, h: _aiv(b, p, t, ci, h, fl))
    meta = {
        "op": "quant_matmul", "kernel": "A8W4 MSD per-group (QuantBatchMatmulV4Msd K_G)",
        "m": p.m, "k": p.k, "n": p.n, "group_k": t.group_k, "out_dtype": p.out_dtype,
        "numerics_model": A8W4_NUMERICS_MODEL,
        "tiling": {"base_m": t.base_m, "base_n": t.base_n, "base_k": t.base_k,
                   "core_num": t.core_num, "parall_num": t.parall_num,
                   "vec_rows": t.vec_rows()},
        "cross_core_flags": fl.table.table(),
        "in_place": "x1's bytes are overwritten with its (2m, k) int4 digit rows, as the kernel "
                    "does (opPre.Init(x1, x1, ...)); the caller's array is not changed",
        "declared": ["CrossCoreWaitFlag waits modelled on MTE2 (the kernel waits on the scalar "
                     "pipe)", "BroadCast of the per-token scale as Brcb + block-stride-0 Mul",
                     "the weight's L2 cache-disable hint is not modelled",
                     "depth-1 AIV queues: the input set is released at the store"],
    }
    return Kernel("quant_matmul_a8w4", gm, cores, meta)


def plan_a8w4(soc: SocDescriptor, tiling: Any = None, *, x1: Any, x2: Any, scale: Any,
              offset: Any = None,
              pertoken_scale: Any = None, bias: Any = None, output_dtype: Any = None,
              group_sizes: Any = None) -> Any:
    """``quant_matmul`` with int8 x1, int32-packed int4 x2 and ``group_sizes``: the A8W4 kernel
    (validated with :func:`~npusim.ops.quant_matmul_a8w4.validate_a8w4`)."""
    from npusim.ops.quant_matmul_a8w4 import validate_a8w4
    from npusim.runner import Plan

    p = validate_a8w4(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale, bias=bias,
                      output_dtype=output_dtype, group_sizes=group_sizes, soc=soc)
    t = (default_a8w4_tiling(soc, p.m, p.n) if tiling is None
         else check_a8w4_tiling(tiling, soc))
    functional = isinstance(x1, np.ndarray)
    data: dict[str, Any] = {}
    if functional:
        data = {"x1": np.ascontiguousarray(x1),
                "x2": np.ascontiguousarray(x2),  # the packed words are the int4 bytes
                "qp": np.ascontiguousarray(np.asarray(scale).view(np.uint64)),
                "y_offset": np.asarray(offset, np.float32).reshape(p.n),
                "pertoken": np.asarray(pertoken_scale, np.float32).reshape(p.m)}
    kernel = build_a8w4_kernel(soc, p, t, **data)
    notes = [f"A8W4 values: {A8W4_NUMERICS_MODEL} (DEQF16 is the descriptor-free declared "
             "FixPipe model); " + "; ".join(kernel.meta["declared"])]
    return Plan(kernel, "quant_matmul (A8W4 MSD per-group: AIV int4 split, int4 cube, FixPipe "
                "VDEQF16 + fp16 atomic add, AIV recombine)", t, functional,
                finish=lambda out: out["c"], notes=notes)
