"""Cube-centred wqbmm programs without the AIC/AIV split: ``Fixpipe`` (A2/A3, AIC only) and
``WeightNz`` (310P, coupled AI Core).

``Fixpipe`` (int64 antiquant scale; ops-semantics 5.6; structure from the kernel's stage-1 /
stage-2 description, no code copied). Per AIC: its M block (``base_m`` rows) and N range
(``single_core_n``), in N tiles of ``base_n`` and K tiles of ``base_k``:

- MTE2 loads the int8 weight tile (transposed ND) into L1 (ping-pong), x (whole K when
  ``a_full_load``, else per K tile); per N tile the int32 offset (-> BT), the uint64 scale
  (-> FB on the FIX pipe) and the fp16 bias (-> BT as fp32).
- Stage 1, per 32-row K chunk: MTE1 loads the weight chunk transposed into L0A, the cube
  multiplies it by an int8 identity held in L0B with the offset as the bias-table initial value
  (exact ``w + off`` in int32 L0C), FixPipe VDEQF16 writes the fp16 weight chunk into L1.
- Stage 2, per 64-wide K slice: MTE1 loads x and the fp16 weight into L0A / L0B, the cube
  accumulates fp32 in L0C (bias as initial value); after the last K tile FixPipe F322F16 writes
  y. The identity is loaded once per core from a GM constant (how the kernel materialises it
  is not modelled).

``WeightNz`` (310P; structure of ``weight_quant_batch_matmul_v2_weight_nz*.h``: per core an M x N
block, a K loop): MTE2 brings the FRACTAL_NZ weight tile into UB, the vector unit dequantises it
(Cast, Add offset, Mul scale in fp16; per-channel parameters once per N block), MTE3 moves it
UB -> L1, MTE2 loads x into L1, MTE1 feeds L0A / L0B and the cube accumulates in L0C; at the end
L0C -> UB on the vector pipe, Cast to fp16 (plus the bias add, done here on the vector unit
because a 200x core has no bias table), UB -> GM. One instruction stream per core: no
cross-core flags. Its numerics are not modelled (ops-semantics 7.9), so functional runs raise
NotImplementedError; the program gives timing only.

Functional runs of the Fixpipe program replay its values: the identity Mmad (exact int32, the
offset as the bias-table initial value), FixPipe VDEQF16 with the uint64 parameters in FB, the
fp16 Mmad in the declared cube model and FixPipe F322F16 come from the semantics table; the
output equals the numerics model (tested bit for bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.ops.weight_quant_program import (
    ITEM,
    WqbmmShape,
    kernel_meta,
    weight_tile_region,
)

STAGE1_ROWS = 32  # K rows per identity matmul (the kernel's 32 x 256 ping-pong chunks)
STAGE2_K = 64  # K per fp16 Mmad of stage 2


def _ranges(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(hi, a + size)) for a in range(lo, hi, size)]


class _Pair:
    """A producer -> consumer ping-pong resource: wait for 'free' before the n-th reuse."""

    def __init__(self, b: ProgramBuilder, prod: str, cons: str, ids: tuple[int, ...]) -> None:
        self.b, self.prod, self.cons, self.ids = b, prod, cons, ids
        self.uses = 0

    def acquire(self) -> int:
        """Index of the buffer to fill next, waiting until its consumer released it."""
        i = self.uses % len(self.ids)
        if self.uses >= len(self.ids):
            self.b.wait_flag(self.cons, self.prod, self.ids[i])
        self.uses += 1
        return i

    def ready(self, i: int) -> None:
        self.b.sync(self.prod, self.cons, self.ids[i])

    def release(self, i: int) -> None:
        self.b.set_flag(self.cons, self.prod, self.ids[i])

    def drain(self) -> None:
        for j in range(min(self.uses, len(self.ids))):
            i = (self.uses - 1 - j) % len(self.ids)
            self.b.wait_flag(self.cons, self.prod, self.ids[i])


def build_fixpipe(soc: Any, s: WqbmmShape, kt: Any, data: dict[str, Any] | None = None
                  ) -> Kernel:
    """The Fixpipe kernel's program for its tiling ``kt`` (FixpipeTiling); with ``data``
    (:func:`fixpipe_replay_data`) a functional run replays its values."""
    ncores = kt.n_block_num * kt.m_block_num
    if ncores > soc.core_counts()["aic"]:
        raise ValueError(
            f"tiling uses {ncores} AICs (n_block_num x m_block_num), more than the "
            f"{soc.core_counts()['aic']} of {soc.name}"
        )
    d = data or {}
    gm = {
        "x": GMTensor("x", (s.m, s.k), "float16", d.get("x")),
        "w": GMTensor("w", (s.n, s.k), "int8", d.get("w")),
        "scale": GMTensor("scale", (s.n,), "int64", d.get("scale")),
        "diag": GMTensor("diag", (kt.base_n, kt.base_n), "int8", d.get("diag")),
        "y": GMTensor("y", (s.m, s.n), "float16", role="output"),
    }
    if s.has_offset:
        gm["offset"] = GMTensor("offset", (s.n,), "int32", d.get("offset"))
    if s.has_bias:
        gm["bias"] = GMTensor("bias", (s.n,), "float16", d.get("bias"))
    cube_model = str(soc.numerics.cube_accumulation.model) if data is not None else None
    desc = soc.core("aic")
    cores = []
    for ci in range(ncores):
        prog = CoreProgram(ci, "aic")
        cores.append(prog)
        ni, mi = ci % kt.n_block_num, ci // kt.n_block_num
        m0, m1 = mi * kt.base_m, min(s.m, (mi + 1) * kt.base_m)
        n_lo, n_hi = ni * kt.single_core_n, min(s.n, (ni + 1) * kt.single_core_n)
        if m0 < m1 and n_lo < n_hi:
            _fixpipe_core(ProgramBuilder(prog, desc), s, kt, (m0, m1), (n_lo, n_hi), cube_model)
    meta = kernel_meta(s, "Fixpipe", kt)
    meta["stage1"] = "w16 = DEQF16(w_int8 @ I + offset_int32) via FixPipe into L1"
    if data is not None:
        meta["functional_replay"] = f"instructions (semantics table; cube model {cube_model})"
    return Kernel("wqbmm_fixpipe", gm, cores, meta)


def _fixpipe_core(
    b: ProgramBuilder, s: WqbmmShape, kt: Any, mr: tuple[int, int], nr: tuple[int, int],
    cube_model: str | None = None,
) -> None:
    """One AIC's M block x N range; ``cube_model`` (functional runs) makes the cube and FixPipe
    instructions carry their values."""
    fun = cube_model is not None
    m0, m1 = mr
    rm = m1 - m0
    bn, bk = kt.base_n, kt.base_k
    xk = s.k if kt.a_full_load else bk
    x_l1 = [b.alloc("L1", (kt.base_m, xk), "float16", f"x{i}")
            for i in range(1 if kt.a_full_load else 2)]
    w8_l1 = [b.alloc("L1", (bn, bk), "int8", f"w8_{i}") for i in range(2)]
    w16_l1 = b.alloc("L1", (bk, bn), "float16", "w16")
    diag_l1 = b.alloc("L1", (bn, bn), "int8", "diag")
    prm_l1 = b.alloc("L1", (4, bn), "int64", "params")
    a1 = [b.alloc("L0A", (STAGE1_ROWS, bn), "int8", f"a1_{i}") for i in range(2)]
    a2 = [b.alloc("L0A", (kt.base_m, STAGE2_K), "float16", f"a2_{i}") for i in range(2)]
    diag_l0 = b.alloc("L0B", (bn, bn), "int8", "diag")
    b2 = [b.alloc("L0B", (STAGE2_K, bn), "float16", f"b2_{i}") for i in range(2)]
    c1 = [b.alloc("L0C", (STAGE1_ROWS, bn), "int32", f"c1_{i}") for i in range(2)]
    acc = b.alloc("L0C", (kt.base_m, bn), "float32", "acc")
    bt_off = b.alloc("BT", (bn,), "int32", "offset")
    bt_bias = b.alloc("BT", (bn,), "float32", "bias") if s.has_bias else None
    fb = b.alloc("FB", (bn,), "uint64", "scale")

    l1_in = _Pair(b, "MTE2", "MTE1", (0, 1))  # weight (and x) tiles in L1
    l0a1 = _Pair(b, "MTE1", "M", (0, 1))  # stage-1 L0A chunks
    l0c1 = _Pair(b, "M", "FIX", (0, 1))  # stage-1 L0C chunks
    l0_2 = _Pair(b, "MTE1", "M", (2, 3))  # stage-2 L0A / L0B slices
    w16 = _Pair(b, "FIX", "MTE1", (0,))  # dequantised weight tile in L1
    accp = _Pair(b, "M", "FIX", (2,))  # fp32 accumulator
    prm = _Pair(b, "MTE2", "MTE1", (2,))  # per-N-tile parameters staged in L1
    prm_fix = _Pair(b, "MTE2", "FIX", (3,))  # the scale, read by FIX (L1 -> FB)
    tile_done = _Pair(b, "MTE1", "FIX", (1,))  # BT reusable after the tile's last FixPipe

    b.dma(Region("GM", 0, (bn, bn), "int8", "diag"), diag_l1, name="diag GM->L1")
    if kt.a_full_load:
        b.dma(Region("GM", m0 * s.k * 2, (rm, s.k), "float16", "x", s.k * 2),
              Region("L1", x_l1[0].offset, (rm, s.k), "float16"), name="x GM->L1 nd2nz",
              transform="nd2nz")
    b.sync("MTE2", "MTE1", 4)
    b.dma(diag_l1, diag_l0, name="diag L1->L0B")
    ktiles = _ranges(0, s.k, bk)
    for n0, n1 in _ranges(nr[0], nr[1], bn):
        wn = n1 - n0
        # per-N-tile parameters: offset -> BT, bias -> BT (fp32), scale -> FB
        p = prm.acquire()
        pf = prm_fix.acquire()
        b.dma(Region("GM", n0 * 8, (wn,), "int64", "scale"),
              Region("L1", prm_l1.offset, (wn,), "int64"), name="scale GM->L1")
        if s.has_offset:
            b.dma(Region("GM", n0 * 4, (wn,), "int32", "offset"),
                  Region("L1", prm_l1.offset + bn * 8, (wn,), "int32"), name="offset GM->L1")
        if s.has_bias:
            b.dma(Region("GM", n0 * 2, (wn,), "float16", "bias"),
                  Region("L1", prm_l1.offset + bn * 16, (wn,), "float16"), name="bias GM->L1")
        prm.ready(p)
        prm_fix.ready(pf)
        t = tile_done.acquire()
        if s.has_offset:
            b.dma(Region("L1", prm_l1.offset + bn * 8, (wn,), "int32"),
                  Region("BT", bt_off.offset, (wn,), "int32"), name="offset L1->BT")
        if bt_bias is not None:
            b.dma(Region("L1", prm_l1.offset + bn * 16, (wn,), "float16"),
                  Region("BT", bt_bias.offset, (wn,), "float32"), name="bias L1->BT")
        b.dma(Region("L1", prm_l1.offset, (wn,), "uint64"),
              Region("FB", fb.offset, (wn,), "uint64"), name="scale L1->FB")
        prm.release(p)
        prm_fix.release(pf)
        for kti, (k0, k1) in enumerate(ktiles):
            wk = k1 - k0
            i = l1_in.acquire()
            b.dma(weight_tile_region(s, k0, wk, n0, wn),
                  Region("L1", w8_l1[i].offset, (wn, wk), "int8", None, bk),
                  name="w GM->L1 nd2nz",
                  transform="nd2nz")
            xi = 0 if kt.a_full_load else i
            if not kt.a_full_load:
                b.dma(Region("GM", (m0 * s.k + k0) * 2, (rm, wk), "float16", "x", s.k * 2),
                      Region("L1", x_l1[xi].offset, (rm, wk), "float16", None, xk * 2),
                      name="x GM->L1 nd2nz",
                      transform="nd2nz")
            l1_in.ready(i)
            # stage 1: w16[k0:k1, n0:n1] = DEQF16(w @ I + offset), 32 K rows at a time
            for r0, r1 in _ranges(0, wk, STAGE1_ROWS):
                rr = r1 - r0
                j = l0a1.acquire()
                a = Region("L0A", a1[j].offset, (rr, wn), "int8")
                b.dma(Region("L1", w8_l1[i].offset + r0, (wn, rr), "int8", None, bk), a,
                      name="w L1->L0A transpose", transform="dn2nz")
                l0a1.ready(j)
                c = l0c1.acquire()
                creg = Region("L0C", c1[c].offset, (rr, wn), "int32")
                bias = Region("BT", bt_off.offset, (wn,), "int32") if s.has_offset else None
                eye = Region("L0B", diag_l0.offset, (wn, wn), "int8", None, bn)
                b.mmad(a, eye, creg, rr, wn, wn, "int8", accumulate=False, bias=bias,
                       accumulation="exact_integer" if fun else None)
                l0a1.release(j)
                l0c1.ready(c)
                if r0 == 0:
                    w16.acquire()  # stage 2 of the previous K tile has read w16
                b.fixpipe(creg, Region("L1", w16_l1.offset + r0 * bn * 2, (rr, wn), "float16",
                                       None, bn * 2),
                          elements=rr * wn, out_dtype="float16", mode="VDEQF16",
                          extra_reads=(Region("FB", fb.offset, (wn,), "uint64"),), replay=fun)
                l0c1.release(c)
            w16.ready(0)
            # stage 2: acc += x[:, k0:k1] @ w16
            if kti == 0 and accp.uses > 0:
                b.wait_flag("FIX", "M", 2)
            for s0, s1 in _ranges(0, wk, STAGE2_K):
                sk = s1 - s0
                j = l0_2.acquire()
                xa = Region("L0A", a2[j].offset, (rm, sk), "float16")
                wb = Region("L0B", b2[j].offset, (sk, wn), "float16")
                xoff = x_l1[xi].offset + ((k0 if kt.a_full_load else 0) + s0) * 2
                b.dma(Region("L1", xoff, (rm, sk), "float16", None, xk * 2), xa,
                      name="x L1->L0A")
                b.dma(Region("L1", w16_l1.offset + s0 * bn * 2, (sk, wn), "float16", None,
                             bn * 2), wb, name="w16 L1->L0B")
                l0_2.ready(j)
                first = kti == 0 and s0 == 0
                init = (Region("BT", bt_bias.offset, (wn,), "float32")
                        if first and bt_bias is not None else None)
                b.mmad(xa, wb, Region("L0C", acc.offset, (rm, wn), "float32"), rm, sk, wn,
                       "float16", accumulate=not first, bias=init, accumulation=cube_model)
                l0_2.release(j)
            w16.release(0)
            l1_in.release(i)
        accp.uses += 1
        b.sync("M", "FIX", 2)
        b.fixpipe(Region("L0C", acc.offset, (rm, wn), "float32"),
                  Region("GM", (m0 * s.n + n0) * 2, (rm, wn), "float16", "y", s.n * 2),
                  elements=rm * wn, out_dtype="float16", mode="F322F16", replay=fun)
        b.set_flag("FIX", "M", 2)
        tile_done.release(t)
    b.wait_flag("FIX", "M", 2)
    for pair in (l1_in, l0a1, l0c1, l0_2, w16, prm, prm_fix, tile_done):
        pair.drain()


def fixpipe_replay_data(args: Any, base_n: int) -> dict[str, Any]:
    """GM contents for a validated Fixpipe call: x, the (N, K) int8 weight as stored, the int64
    scale parameters, the int32 offset, the fp16 bias, and the int8 identity the stage-1
    matmul multiplies by."""
    import numpy as np

    out = {"x": np.ascontiguousarray(args.x),
           "w": np.ascontiguousarray(args.weight.T),
           "scale": np.broadcast_to(args.antiquant_scale.reshape(-1), (args.n,)).astype(np.int64),
           "diag": np.eye(base_n, dtype=np.int8)}
    if args.antiquant_offset is not None:
        out["offset"] = np.broadcast_to(np.asarray(args.antiquant_offset).reshape(-1),
                                        (args.n,)).astype(np.int32)
    if args.bias is not None:
        out["bias"] = np.asarray(args.bias, dtype=np.float16)
    return out


# -- 310P WeightNz -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightNzProgramTiling:
    """Program tiling of the 310P WeightNz kernel (its tiling data's core split and L1 block
    sizes: ``mAL1Size`` / ``nBL1Size`` / ``kL1Size``; the L0 block equals the L1 block in M and
    N). The kernel tiling model in ``weight_quant_batchmatmul.tiling`` has no WeightNz entry."""

    m_block_num: int
    n_block_num: int
    m_l1: int
    n_l1: int
    k_l1: int


def default_weight_nz_tiling(soc: Any, s: WqbmmShape) -> WeightNzProgramTiling:
    """N over the cores in 32-aligned ranges of at most 128 columns per L1 block, then M;
    K blocks of 128 (double-buffered fp16 L0B blocks of 128 x 128 fill the 64 KiB L0B): a
    heuristic, the 310P host tiling was not read."""
    cores = soc.core_counts()["aicore"]
    n_l1 = min(128, max(32, math.ceil(math.ceil(s.n / cores) / 32) * 32))
    n_blocks = min(cores, math.ceil(s.n / n_l1))
    m_blocks = max(1, min(cores // n_blocks, math.ceil(s.m / 128)))
    m_l1 = min(128, math.ceil(math.ceil(s.m / m_blocks) / 16) * 16)
    return WeightNzProgramTiling(m_blocks, n_blocks, m_l1, n_l1, min(128, _align(s.k, 32)))


def _align(a: int, b: int) -> int:
    return -(-a // b) * b


def build_weight_nz(soc: Any, s: WqbmmShape, t: WeightNzProgramTiling) -> Kernel:
    """The 310P WeightNz program (coupled AI Cores; timing only)."""
    if not s.trans_w:
        raise NotImplementedError("WeightNz program: only the transposed (N, K) NZ weight")
    if s.x_dtype != "float16":
        raise NotImplementedError(f"WeightNz program: x dtype {s.x_dtype} (310P cube has fp16)")
    ncores = t.m_block_num * t.n_block_num
    avail = soc.core_counts()["aicore"]
    if ncores > avail:
        raise ValueError(f"WeightNz tiling uses {ncores} cores, {soc.name} has {avail} AI Cores")
    snz = WqbmmShape(**{**s.__dict__, "weight_nz": True})
    from npusim.ops.weight_quant_program_splitk import weight_storage_shape

    ngroups = math.ceil(s.k / s.group_size) if s.group_size else 1
    gm = {
        "x": GMTensor("x", (s.m, s.k), "float16"),
        "w": GMTensor("w", weight_storage_shape(snz), s.w_dtype),
        "scale": GMTensor("scale", (ngroups, s.n), "float16"),
        "y": GMTensor("y", (s.m, s.n), s.out_dtype, role="output"),
    }
    if s.has_offset:
        gm["offset"] = GMTensor("offset", (ngroups, s.n), "float16")
    if s.has_bias:
        gm["bias"] = GMTensor("bias", (s.n,), "float16")
    desc = soc.core("aicore")
    m_per = math.ceil(s.m / t.m_block_num)
    n_per = math.ceil(s.n / t.n_block_num)
    cores = []
    for ci in range(ncores):
        prog = CoreProgram(ci, "aicore")
        cores.append(prog)
        mi, ni = ci // t.n_block_num, ci % t.n_block_num
        mr = (mi * m_per, min(s.m, (mi + 1) * m_per))
        nr = (ni * n_per, min(s.n, (ni + 1) * n_per))
        if mr[0] < mr[1] and nr[0] < nr[1]:
            _weight_nz_core(ProgramBuilder(prog, desc), snz, t, mr, nr)
    meta = kernel_meta(s, "WeightNz", t)
    meta["numerics"] = "not modelled (ops-semantics 7.9): timing only"
    return Kernel("wqbmm_weightnz", gm, cores, meta)


def _weight_nz_core(
    b: ProgramBuilder, s: WqbmmShape, t: WeightNzProgramTiling, mr: tuple[int, int],
    nr: tuple[int, int],
) -> None:
    ml, nl, kl = t.m_l1, t.n_l1, t.k_l1
    w_ub = [b.alloc("UB", (kl, nl), s.w_dtype, f"w{i}") for i in range(2)]
    h_ub = [b.alloc("UB", (kl, nl), "float16", f"h{i}") for i in range(2)]
    prm = b.alloc("UB", (2, nl), "float16", "params")
    prm_g = [b.alloc("UB", (2, nl), "float16", f"group_params{i}") for i in range(2)]
    brc = b.alloc("UB", (2, nl, 16), "float16", "params_brcb")
    c_ub = b.alloc("UB", (ml, nl), "float32", "c")
    y_ub = b.alloc("UB", (ml, nl), s.out_dtype, "y")
    bias_ub = b.alloc("UB", (2, nl), "float32", "bias")
    w_l1 = [b.alloc("L1", (kl, nl), "float16", f"wl1_{i}") for i in range(2)]
    x_l1 = [b.alloc("L1", (ml, kl), "float16", f"xl1_{i}") for i in range(2)]
    a0 = [b.alloc("L0A", (ml, kl), "float16", f"a{i}") for i in range(2)]
    b0 = [b.alloc("L0B", (kl, nl), "float16", f"b{i}") for i in range(2)]
    acc = b.alloc("L0C", (ml, nl), "float32", "acc")

    w_in = _Pair(b, "MTE2", "V", (0, 1))  # weight tile in UB
    w_out = _Pair(b, "V", "MTE3", (0, 1))  # dequantised tile in UB
    l1w = _Pair(b, "MTE3", "MTE1", (0, 1))  # dequantised tile in L1
    l1x = _Pair(b, "MTE2", "MTE1", (2, 3))  # x tile in L1
    l0 = _Pair(b, "MTE1", "M", (0, 1))
    c_out = _Pair(b, "V", "MTE3", (2,))  # result tile in UB
    prm_p = _Pair(b, "MTE2", "V", (2,))
    first_block = True
    for m0, m1 in _ranges(mr[0], mr[1], ml):
        rm = m1 - m0
        for n0, n1 in _ranges(nr[0], nr[1], nl):
            wn = n1 - n0
            if not s.group_size:
                p = prm_p.acquire()
                b.dma(Region("GM", n0 * 2, (wn,), "float16", "scale"),
                      Region("UB", prm.offset, (wn,), "float16"), name="scale GM->UB")
                if s.has_offset:
                    b.dma(Region("GM", n0 * 2, (wn,), "float16", "offset"),
                          Region("UB", prm.offset + nl * 2, (wn,), "float16"),
                          name="offset GM->UB")
                prm_p.ready(p)
                b.vec("Brcb params", "dup", brc, (prm,), elements=wn * 16 * 2, dtype="float16")
                prm_p.release(p)
            for kti, (k0, k1) in enumerate(_ranges(0, s.k, kl)):
                wk = k1 - k0
                i = w_in.acquire()
                wreg = Region("UB", w_ub[i].offset, (wk, wn), s.w_dtype)
                b.dma(weight_tile_region(s, k0, wk, n0, wn), wreg, name="weight NZ GM->UB")
                if s.group_size:
                    for g in range(k0 // s.group_size, (k1 - 1) // s.group_size + 1):
                        b.dma(Region("GM", (g * s.n + n0) * 2, (wn,), "float16", "scale"),
                              Region("UB", prm_g[i].offset, (wn,), "float16"),
                              name="scale GM->UB")
                        if s.has_offset:
                            b.dma(Region("GM", (g * s.n + n0) * 2, (wn,), "float16", "offset"),
                                  Region("UB", prm_g[i].offset + nl * 2, (wn,), "float16"),
                                  name="offset GM->UB")
                w_in.ready(i)
                o = w_out.acquire()
                n_el = wk * wn
                hreg = Region("UB", h_ub[o].offset, (wk, wn), "float16")
                b.vec("Cast w->half", "convert", hreg, (wreg,), elements=n_el, dtype=s.w_dtype)
                if s.group_size:
                    b.vec("Brcb params", "dup", brc, (prm_g[i],),
                          elements=wn * 16 * (1 + s.has_offset), dtype="float16")
                w_in.release(i)
                if s.has_offset:
                    b.vec("Add offset", "binary", hreg, (hreg, brc), elements=n_el,
                          dtype="float16")
                b.vec("Mul scale", "binary", hreg, (hreg, brc), elements=n_el, dtype="float16")
                w_out.ready(o)
                j = l1w.acquire()
                b.dma(hreg, Region("L1", w_l1[j].offset, (wk, wn), "float16"),
                      name="dequant w UB->L1")
                w_out.release(o)
                xj = l1x.acquire()
                b.dma(Region("GM", (m0 * s.k + k0) * 2, (rm, wk), "float16", "x", s.k * 2),
                      Region("L1", x_l1[xj].offset, (rm, wk), "float16"), name="x GM->L1 nd2nz",
                      transform="nd2nz")
                l1w.ready(j)
                l1x.ready(xj)
                q = l0.acquire()
                xa = Region("L0A", a0[q].offset, (rm, wk), "float16")
                wb = Region("L0B", b0[q].offset, (wk, wn), "float16")
                b.dma(Region("L1", x_l1[xj].offset, (rm, wk), "float16"), xa, name="x L1->L0A")
                b.dma(Region("L1", w_l1[j].offset, (wk, wn), "float16"), wb, name="w L1->L0B")
                l1w.release(j)
                l1x.release(xj)
                l0.ready(q)
                if kti == 0 and not first_block:
                    b.wait_flag("V", "M", 0)  # the previous block's L0C -> UB is done
                b.mmad(xa, wb, Region("L0C", acc.offset, (rm, wn), "float32"), rm, wk, wn,
                       "float16", accumulate=kti > 0)
                l0.release(q)
            first_block = False
            b.sync("M", "V", 0)
            c = c_out.acquire()
            creg = Region("UB", c_ub.offset, (rm, wn), "float32")
            b.dma(Region("L0C", acc.offset, (rm, wn), "float32"), creg, name="L0C->UB")
            b.set_flag("V", "M", 0)
            if s.has_bias:
                b.dma(Region("GM", n0 * 2, (wn,), "float16", "bias"),
                      Region("UB", bias_ub.offset, (wn,), "float16"), name="bias GM->UB")
                b.sync("MTE2", "V", 4)
                b.vec("Cast bias->fp32", "convert", bias_ub, (bias_ub,), elements=wn,
                      dtype="float16")
                b.vec("Add bias", "binary", creg, (creg, bias_ub), elements=rm * wn,
                      dtype="float32")
            yreg = Region("UB", y_ub.offset, (rm, wn), s.out_dtype)
            b.vec("Cast fp32->fp16 nz2nd", "convert", yreg, (creg,), elements=rm * wn,
                  dtype="float32")
            c_out.ready(c)
            b.dma(yreg, Region("GM", (m0 * s.n + n0) * ITEM[s.out_dtype], (rm, wn), s.out_dtype,
                               "y", s.n * ITEM[s.out_dtype]), name="y UB->GM")
            c_out.release(c)
            if s.has_bias:
                b.sync("MTE3", "MTE2", 5)  # the next bias load reuses bias_ub after y left
    if not first_block:
        b.wait_flag("V", "M", 0)
    for pair in (w_in, w_out, l1w, l1x, l0, c_out, prm_p):
        pair.drain()
