"""Per-group A4W4 ``npu_quant_matmul`` (int4 x, int4 transposed weight, per-group scale and
float16 zero points, per-token scale) as a tiled program.

Structure of the A2 / A3 kernel (ops-nn ``quant_batch_matmul_v4_pergroup.h`` and
``quant_batch_matmul_v4_pergroup_tiling.cpp``; read for behaviour, not copied): a mix launch of
``min(aicNum, blocks)`` AI Cores over base blocks of 128 x 256 outputs (baseK = group_k = 256).

* *AIC*, per block and per k-group: A (rows x 256 int4 of x1) and B (256 columns of the
  transposed x2) GM -> L1 with ND2NZ, L1 -> L0A / L0B, one Mmad int4 x int4 -> int32 (L0C
  single-buffered), then - after FREE for the slot - FixPipe of the int32 group product into
  one of two GM workspace slots (ping / pong) and READY to both AIVs.
* *AIV h*, rows ``h * 64 ..`` of the block (its half): at the block start Duplicate 0 into the
  fp32 accumulator and load its per-token scales; per group the scale and zero-point rows; per
  chunk of ``ub_calc_m`` rows: wait READY (first chunk), copy the int32 rows (FREE after the
  last chunk's copy), Cast int32 -> fp32; load the group's int4 x1 rows, Cast int4 -> fp16 ->
  fp32, ReduceSum per row (exact: small integers), broadcast, times the fp32 zero points; Sub;
  Mul by the group's scale row; Add onto the accumulator. After the last group: Brcb the
  per-token scale, Mul, Cast (CAST_RINT), store the rows.

Values: :func:`~npusim.ops.quant_matmul_a4w4_pergroup.reference_a4w4_pergroup` (the same chain,
one fp32 operation per step); bits equal it.

Declared (not what the source shows, or not modelled):

- Block order and core mapping: blocks in row-major order dealt round robin over the cores
  (the kernel's L2 tiling - ``DoL2CacheTiling``, serpentine tile order - is not reproduced).
- L1: A and B enter L1 one group (256 of K) per ND2NZ copy, double-buffered; the kernel copies
  stepKa = stepKb = 4 groups per copy.
- The last row chunk copies its own rows of the int32 tile (the kernel copies ``ub_calc_m`` rows
  whenever it has more than one chunk); vector work covers rows x n, not rows x 256 of a tail.
- Broadcast of the row sums is Brcb + a block-stride-0 operand; cross-core waits sit on the pipe
  that acts next (the kernel waits on the scalar pipe); the kernel's PipeBarrier<PIPE_ALL> after
  each chunk is modelled by flags (a next load waits only for the buffer it overwrites).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import GMTensor, Kernel, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.cube_emitter import CubeEmitter
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.cube_templates import Interner
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.matmul_tiling import CubeTiling
from npusim.ops.program_stages import CrossFlags, PingPong, Ring
from npusim.ops.quant_matmul_a4w4_pergroup import A4W4GroupPlan
from npusim.ops.quant_matmul_a8w4_program import mix_cores

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

_ISZ = {"float16": 2, "bfloat16": 2}
BASE_M, BASE_N, GROUP_K = 128, 256, 256  # ops-nn pergroup tiling: BASE_M / BASE_N, baseK = gk


@dataclass(frozen=True)
class A4W4GroupTiling:
    """Block sizes, cores and the AIV chunk rows (``ub_calc_m``, ops-nn CalcDequantTiling)."""

    core_num: int
    ub_calc_m: int
    base_m: int = BASE_M
    base_n: int = BASE_N
    group_k: int = GROUP_K

    def cube(self) -> CubeTiling:
        return CubeTiling(base_m=self.base_m, base_n=self.base_n, base_k=self.group_k,
                          step_ka=1, step_kb=1, depth_a1=2, depth_b1=2,
                          single_core_m=self.base_m, single_core_n=self.base_n, m_dim=1,
                          n_dim=1, l0_db=True, l0c_db=False)


def ub_calc_m(ub_bytes: int, base_m: int, base_n: int, group_k: int) -> int:
    """Rows per AIV chunk: what CalcDequantTiling leaves of the UB (in fp32 elements) after
    the accumulator and the per-row / per-column buffers, over 4 x base_n + 1.5 x group_k."""
    aiv_m = math.ceil(base_m / 2)
    a8 = math.ceil(aiv_m / 8) * 8
    left = ub_bytes // 4 - aiv_m * base_n - a8 - a8 * 8 - int(3.5 * base_n) - a8
    return int(left // (4 * base_n + 1.5 * group_k))


def default_a4w4_group_tiling(soc: SocDescriptor, m: int, n: int) -> A4W4GroupTiling:
    blocks = math.ceil(m / BASE_M) * math.ceil(n / BASE_N)
    ub = int(soc.core("aiv").buffers["UB"].capacity_bytes)
    return A4W4GroupTiling(core_num=min(soc.core_counts()["aic"], blocks),
                           ub_calc_m=ub_calc_m(ub, BASE_M, BASE_N, GROUP_K))


def check_a4w4_group_tiling(tiling: object, soc: SocDescriptor) -> None:
    """A user tiling of the per-group A4W4 kernel: an A4W4GroupTiling with core_num in
    [1, AIC count] and ub_calc_m >= 1 (ValueError naming the rule)."""
    aic = soc.core_counts()["aic"]
    if not isinstance(tiling, A4W4GroupTiling) or tiling.ub_calc_m < 1 or \
            not 1 <= tiling.core_num <= aic:
        raise ValueError(f"tiling: {tiling!r} must be an A4W4GroupTiling with core_num in "
                         f"[1, {aic}] and ub_calc_m >= 1")


def _blocks(p: A4W4GroupPlan, t: A4W4GroupTiling) -> list[tuple[int, int]]:
    bdn = math.ceil(p.n / t.base_n)
    return [(i // bdn, i % bdn) for i in range(math.ceil(p.m / t.base_m) * bdn)]


def _slot(t: A4W4GroupTiling, ci: int, slot: int, r0: int, rows: int, rn: int) -> Region:
    off = ((ci * 2 + slot) * t.base_m * t.base_n + r0 * rn) * 4
    return Region("GM", off, (rows, rn), "int32", "ws", rn * 4)


def _aic(b: ProgramBuilder, soc: SocDescriptor, p: A4W4GroupPlan, t: A4W4GroupTiling, ci: int,
         ring: Ring, functional: bool, interner: Interner) -> None:
    em = CubeEmitter(b, soc, t.cube(), "int4", functional=functional,
                     cube_model="exact_integer", with_bias=False, interner=interner)
    a = GmMatrix("x1", "int4", p.k // 2)
    w = GmMatrix("x2", "int4", p.k // 2, transposed=True)
    epi = Epilogue("NONE", "int32", "int32")
    fills = 0
    for mi, ni in _blocks(p, t)[ci::t.core_num]:
        m0, n0 = mi * t.base_m, ni * t.base_n
        m1, n1 = min(p.m, m0 + t.base_m), min(p.n, n0 + t.base_n)
        for g in range(p.k // t.group_k):
            def sink(bm: int, bn: int, rm: int, rn: int, j: int = fills) -> tuple[Region, Any]:
                ring.fill(b, j, "FIX")
                return _slot(t, ci, j % 2, 0, rm, rn), lambda: ring.publish(b, "FIX")

            em.sink = sink
            em.block(a, w, a, epi, m0, m1, n0, n1, t.group_k, k_offset=g * t.group_k)
            fills += 1
    for _ in range(min(fills, ring.slots)):  # the kernel's closing waits for both slots
        ring.free.wait(b, "FIX")


class _Aiv:
    """One AIV's buffers (laid out as the kernel's single UB carve-up) and queues."""

    def __init__(self, b: ProgramBuilder, p: A4W4GroupPlan, t: A4W4GroupTiling) -> None:
        self.b, self.p, self.t = b, p, t
        half, rc, n, gk = math.ceil(t.base_m / 2), t.ub_calc_m, t.base_n, t.group_k
        a8 = math.ceil(half / 8) * 8
        self.accu = b.alloc("UB", (half * n,), "float32", "dequant_accu")  # y aliases it
        self.mm = b.alloc("UB", (rc * n,), "int32", "mm_out")
        self.mmf = b.alloc("UB", (rc * n,), "float32", "mm_out_fp32")
        self.x2s = b.alloc("UB", (n,), "float32", "x2_scale")
        self.x1s = b.alloc("UB", (a8,), "float32", "x1_scale")
        self.x1b = b.alloc("UB", (a8, 8), "float32", "x1_scale_brcb")
        self.x1f = b.alloc("UB", (rc * gk,), "float32", "x1_fp32")  # x1 int4 aliases it
        self.x1h = b.alloc("UB", (rc * gk,), "float16", "x1_half")
        self.rs = b.alloc("UB", (max(8, math.ceil(rc / 8) * 8),), "float32", "x1_rowsum")
        self.rsb = b.alloc("UB", (rc, 8), "float32", "x1_rowsum_brcb")
        self.x2o = b.alloc("UB", (n,), "float32", "x2_offset")
        self.x2oh = b.alloc("UB", (n,), "float16", "x2_offset_fp16")
        self.prod = b.alloc("UB", (rc * n,), "float32", "x1_rowsum_x_offset")
        self.mmq = PingPong(b, "MTE2", "V", (2,))  # int32 rows in, free again after the Cast
        self.x1q = PingPong(b, "MTE2", "V", (4,))
        self.parq = PingPong(b, "MTE2", "V", (1,))  # scale + zero-point rows of a group
        self.x1sq = PingPong(b, "MTE2", "V", (0,))
        self.outq = PingPong(b, "V", "MTE3", (7,))

    def ub(self, base: Region, off: int, shape: tuple[int, ...], dt: str,
           stride: int | None = None) -> Region:
        return Region("UB", base.offset + off, shape, dt, None, stride)

    def block_start(self, r0: int, rows: int, rn: int) -> int:
        b = self.b
        j = self.outq.acquire()  # the previous block's output is stored
        b.vop(VecOp.DUPLICATE, self.ub(self.accu, 0, (rows * rn,), "float32"), scalar=0.0,
              name="Duplicate 0 (accumulator)")
        i = self.x1sq.acquire()
        b.dma(Region("GM", r0 * 4, (rows,), "float32", "pertoken"),
              self.ub(self.x1s, 0, (rows,), "float32"), name="x1_scale GM->UB")
        self.x1sq.ready(i)
        return j

    def group_params(self, g: int, n0: int, rn: int) -> int:
        b, p = self.b, self.p
        i = self.parq.acquire()
        b.dma(Region("GM", (g * p.n + n0) * 4, (rn,), "float32", "scale"),
              self.ub(self.x2s, 0, (rn,), "float32"), name="x2_scale GM->UB")
        b.dma(Region("GM", (g * p.n + n0) * 2, (rn,), "float16", "offset"),
              self.ub(self.x2oh, 0, (rn,), "float16"), name="x2_offset GM->UB")
        self.parq.ready(i)
        b.cast(self.ub(self.x2o, 0, (rn,), "float32"), self.ub(self.x2oh, 0, (rn,), "float16"),
               round_mode="rint", name="Cast x2_offset fp16->fp32")
        return i

    def chunk(self, src: Region, g: int, row: int, moff: int, rows: int, rn: int,
              last: bool, ring: Ring) -> None:
        """Rows ``row..`` of x1 (accumulator rows ``moff..``): one group's dequant and add."""
        b, t, p = self.b, self.t, self.p
        cs, gk = rows * rn, t.group_k
        i = self.mmq.acquire()
        b.dma(src, self.ub(self.mm, 0, (rows, rn), "int32"), name="mm_out GM->UB")
        if last:
            ring.release(b, "MTE2")
        self.mmq.ready(i)
        mmf = self.ub(self.mmf, 0, (cs,), "float32")
        b.cast(mmf, self.ub(self.mm, 0, (cs,), "int32"), round_mode="rint",
               name="Cast int32->fp32")
        self.mmq.release(i)
        j = self.x1q.acquire()
        x1i4 = self.ub(self.x1f, 0, (rows, gk), "int4")
        b.dma(Region("GM", (row * p.k + g * gk) // 2, (rows, gk), "int4", "x1", p.k // 2),
              x1i4, name="x1 group rows GM->UB")
        self.x1q.ready(j)
        x1h = self.ub(self.x1h, 0, (rows, gk), "float16")
        b.cast(x1h, x1i4, round_mode="rint", name="Cast int4->fp16")
        x1f = self.ub(self.x1f, 0, (rows, gk), "float32")
        b.cast(x1f, x1h, round_mode="rint", name="Cast fp16->fp32")
        rs = self.ub(self.rs, 0, (rows,), "float32")
        b.vop(VecOp.REDUCE_SUM, rs, (x1f,), elements=rows * gk, name="ReduceSum rows")
        self.x1q.release(j)  # x1's int4 bytes (under x1_fp32) are read for the last time
        rsb = self.ub(self.rsb, 0, (rows, 8), "float32")
        b.vop(VecOp.BRCB, rsb, (rs,), name="Brcb rowsum (Broadcast)")
        prod = self.ub(self.prod, 0, (rows, rn), "float32")
        col = Region("UB", rsb.offset, (rows, 1), "float32", None, 32)
        b.vop(VecOp.MUL, prod, (self.ub(self.x2o, 0, (rn,), "float32"), col),
              name="Mul rowsum x x2_offset")
        m2 = self.ub(self.mmf, 0, (rows, rn), "float32")
        b.vop(VecOp.SUB, m2, (m2, prod), name="Sub")
        b.vop(VecOp.MUL, m2, (self.ub(self.x2s, 0, (rn,), "float32"), m2), name="Mul x2_scale")
        acc = self.ub(self.accu, moff * rn * 4, (rows, rn), "float32")
        b.vop(VecOp.ADD, acc, (m2, acc), name="Add (accumulate)")

    def block_end(self, r0: int, rows: int, n0: int, rn: int, j: int) -> None:
        b, p = self.b, self.p
        i = 0
        self.x1sq.release(i)
        brcb = self.ub(self.x1b, 0, (rows, 8), "float32")
        b.vop(VecOp.BRCB, brcb, (self.ub(self.x1s, 0, (rows,), "float32"),),
              name="Brcb x1_scale")
        acc = self.ub(self.accu, 0, (rows, rn), "float32")
        b.vop(VecOp.MUL, acc, (Region("UB", brcb.offset, (rows, 1), "float32", None, 32), acc),
              name="Mul x1_scale")
        y = self.ub(self.accu, 0, (rows * rn,), p.out_dtype)
        b.cast(y, self.ub(self.accu, 0, (rows * rn,), "float32"), round_mode="rint",
               saturate=True, name=f"Cast fp32->{p.out_dtype} RINT")
        self.outq.ready(j)
        osz = _ISZ[p.out_dtype]
        b.dma(self.ub(self.accu, 0, (rows, rn), p.out_dtype),
              Region("GM", (r0 * p.n + n0) * osz, (rows, rn), p.out_dtype, "c", p.n * osz),
              name="y UB->GM")
        self.outq.release(j)

    def drain(self) -> None:
        for q in (self.mmq, self.x1q, self.parq, self.x1sq, self.outq):
            q.drain()


def _aiv(b: ProgramBuilder, p: A4W4GroupPlan, t: A4W4GroupTiling, ci: int, h: int,
         ring: Ring) -> None:
    """AIV ``h`` of AI Core ``ci``: its half of every block of its AIC."""
    mine = _blocks(p, t)[ci::t.core_num]
    if not mine:
        return
    st = _Aiv(b, p, t)
    half, fills = math.ceil(t.base_m / 2), 0
    for mi, ni in mine:
        m0, n0 = mi * t.base_m, ni * t.base_n
        rm, rn = min(p.m, m0 + t.base_m) - m0, min(p.n, n0 + t.base_n) - n0
        rows = max(0, min(half, rm - h * half))
        r0 = m0 + h * half
        j = st.block_start(r0, rows, rn) if rows else 0
        for g in range(p.k // t.group_k):
            slot, fills = fills % 2, fills + 1
            if not rows:  # the other half only: take the slot and free it again
                ring.take(b, "MTE2")
                ring.release(b, "MTE2")
                continue
            pi = st.group_params(g, n0, rn)
            chunks = [(c, min(t.ub_calc_m, rows - c)) for c in range(0, rows, t.ub_calc_m)]
            for idx, (c, cr) in enumerate(chunks):
                if idx == 0:
                    ring.take(b, "MTE2")
                st.chunk(_slot(t, ci, slot, h * half + c, cr, rn), g, r0 + c, c, cr, rn,
                         idx == len(chunks) - 1, ring)
            st.parq.release(pi)
        if rows:
            st.block_end(r0, rows, n0, rn, j)
    st.drain()


def build_a4w4_group_kernel(soc: SocDescriptor, p: A4W4GroupPlan, t: A4W4GroupTiling, *,
                            data: dict[str, np.ndarray] | None = None) -> Kernel:
    """The kernel of one per-group A4W4 call (module docstring); ``data`` None: timing only."""
    d = data or {}
    flags = CrossFlags.of(soc)
    ring = flags.ring("int32 group-product slot (ping / pong)", 2)
    groups = p.k // t.group_k
    gm = {
        "x1": GMTensor("x1", (p.m, p.k), "int4", d.get("x1"), "input"),
        "x2": GMTensor("x2", (p.n, p.k), "int4", d.get("x2"), "input"),
        "scale": GMTensor("scale", (groups, p.n), "float32", d.get("scale"), "input"),
        "offset": GMTensor("offset", (groups, p.n), "float16", d.get("offset"), "input"),
        "pertoken": GMTensor("pertoken", (p.m,), "float32", d.get("pertoken"), "input"),
        "ws": GMTensor("ws", (t.core_num * 2, t.base_m, t.base_n), "int32", None, "workspace"),
        "c": GMTensor("c", (p.m, p.n), p.out_dtype, None, "output"),
    }
    interner = Interner()
    cores = mix_cores(soc, t.core_num,
                      lambda b, ci: _aic(b, soc, p, t, ci, ring, data is not None, interner),
                      lambda b, ci, h: _aiv(b, p, t, ci, h, ring))
    meta = {"op": "quant_matmul",
            "kernel": "per-group A4W4 (QuantBatchMatmulV4Pergroup)", "m": p.m, "k": p.k,
            "n": p.n, "group_k": t.group_k, "out_dtype": p.out_dtype,
            "tiling": {"base_m": t.base_m, "base_n": t.base_n, "core_num": t.core_num,
                       "ub_calc_m": t.ub_calc_m},
            "cross_core_flags": flags.table(), "declared": list(DECLARED)}
    return Kernel("quant_matmul_a4w4_pergroup", gm, cores, meta)


DECLARED = ("blocks dealt round robin in row-major order (the kernel's L2 tiling is not "
            "reproduced)", "A / B enter L1 one group per copy (the kernel: 4 groups)",
            "row sums broadcast as Brcb + block-stride-0 operand",
            "cross-core waits on the pipe that acts next (the kernel: scalar pipe)",
            "PipeBarrier<PIPE_ALL> per chunk modelled by buffer flags")


def plan_a4w4_pergroup(soc: SocDescriptor, tiling: Any = None, *, x1: Any, x2: Any, scale: Any,
                       offset: Any = None, pertoken_scale: Any = None, bias: Any = None,
                       output_dtype: Any = None, group_sizes: Any = None) -> Any:
    """``quant_matmul`` with int32-packed int4 x1 and transposed x2 and ``group_sizes``."""
    from npusim.ops.quant_matmul_a4w4_pergroup import validate_a4w4_pergroup
    from npusim.runner import Plan

    p = validate_a4w4_pergroup(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale,
                               bias=bias, output_dtype=output_dtype, group_sizes=group_sizes,
                               soc=soc)
    assert p.group_k == GROUP_K  # validate_a4w4_pergroup refuses any other
    t = default_a4w4_group_tiling(soc, p.m, p.n)
    if tiling is not None and tiling != t:
        check_a4w4_group_tiling(tiling, soc)
        t = tiling
    data = None
    if isinstance(x1, np.ndarray):
        data = {"x1": np.ascontiguousarray(x1),
                "x2": np.ascontiguousarray(np.swapaxes(np.asarray(x2), -1, -2)),  # stored (n, k)
                "scale": np.asarray(scale, np.float32), "offset": np.asarray(offset, np.float16),
                "pertoken": np.asarray(pertoken_scale, np.float32).reshape(p.m)}
    kernel = build_a4w4_group_kernel(soc, p, t, data=data)
    return Plan(kernel, "quant_matmul (per-group A4W4: int4 cube per group -> GM ping / pong, "
                "AIV zero-point correction, scale, accumulate)", t, data is not None,
                finish=lambda out: out["c"], notes=["per-group A4W4: " + "; ".join(DECLARED)])
