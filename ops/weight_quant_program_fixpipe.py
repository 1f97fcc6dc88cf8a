"""The ``Fixpipe`` wqbmm program (A2/A3, AIC only: no AIV dequant).

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

``WeightNz`` (310P, coupled AI Core) lives in ``weight_quant_program_weight_nz``.

Functional runs of the Fixpipe program replay its values: the identity Mmad (exact int32, the
offset as the bias-table initial value), FixPipe VDEQF16 with the uint64 parameters in FB, the
fp16 Mmad in the declared cube model and FixPipe F322F16 come from the semantics table; the
output equals the numerics model (tested bit for bit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from npusim.engine.program import CoreProgram, GMTensor, InstrPool, Kernel, ProgramBuilder
from npusim.isa.operands import Region
from npusim.ops.program_stages import PingPong, ranges
from npusim.ops.weight_quant_batchmatmul.tiling import (
    FIXPIPE_STAGE1_ROWS,
    FIXPIPE_STAGE2_K,
    fixpipe_core_buffers,
)
from npusim.ops.weight_quant_common import (
    WqbmmShape,
    kernel_meta,
    weight_tile_region,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

STAGE1_ROWS, STAGE2_K = FIXPIPE_STAGE1_ROWS, FIXPIPE_STAGE2_K


def build_fixpipe(soc: SocDescriptor, s: WqbmmShape, kt: Any, data: dict[str, Any] | None = None
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
    pool = InstrPool()  # cores repeat instructions: one object each (issue 14)
    for ci in range(ncores):
        prog = CoreProgram(ci, "aic")
        cores.append(prog)
        ni, mi = ci % kt.n_block_num, ci // kt.n_block_num
        m0, m1 = mi * kt.base_m, min(s.m, (mi + 1) * kt.base_m)
        n_lo, n_hi = ni * kt.single_core_n, min(s.n, (ni + 1) * kt.single_core_n)
        if m0 < m1 and n_lo < n_hi:
            _fixpipe_core(ProgramBuilder(prog, desc, pool), s, kt, (m0, m1), (n_lo, n_hi),
                          cube_model)
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
    loc = {buf: {name: b.alloc(buf, shape, dt, name) for name, shape, dt in layout}
           for buf, layout in fixpipe_core_buffers(kt, s.k, s.has_bias).items()}
    l1, l0a, l0b, l0c = loc["L1"], loc["L0A"], loc["L0B"], loc["L0C"]
    x_l1 = [l1[f"x{i}"] for i in range(1 if kt.a_full_load else 2)]
    w8_l1 = [l1[f"w8_{i}"] for i in range(2)]
    w16_l1, diag_l1, prm_l1 = l1["w16"], l1["diag"], l1["params"]
    a1 = [l0a[f"a1_{i}"] for i in range(2)]
    a2 = [l0a[f"a2_{i}"] for i in range(2)]
    diag_l0 = l0b["diag"]
    b2 = [l0b[f"b2_{i}"] for i in range(2)]
    c1 = [l0c[f"c1_{i}"] for i in range(2)]
    acc = l0c["acc"]
    bt_off, bt_bias = loc["BT"]["offset"], loc["BT"].get("bias")
    fb = loc["FB"]["scale"]

    l1_in = PingPong(b, "MTE2", "MTE1", (0, 1))  # weight (and x) tiles in L1
    l0a1 = PingPong(b, "MTE1", "M", (0, 1))  # stage-1 L0A chunks
    l0c1 = PingPong(b, "M", "FIX", (0, 1))  # stage-1 L0C chunks
    l0_2 = PingPong(b, "MTE1", "M", (2, 3))  # stage-2 L0A / L0B slices
    w16 = PingPong(b, "FIX", "MTE1", (0,))  # dequantised weight tile in L1
    accp = PingPong(b, "M", "FIX", (2,))  # fp32 accumulator
    prm = PingPong(b, "MTE2", "MTE1", (2,))  # per-N-tile parameters staged in L1
    prm_fix = PingPong(b, "MTE2", "FIX", (3,))  # the scale, read by FIX (L1 -> FB)
    tile_done = PingPong(b, "MTE1", "FIX", (1,))  # BT reusable after the tile's last FixPipe

    b.dma(Region("GM", 0, (bn, bn), "int8", "diag"), diag_l1, name="diag GM->L1")
    if kt.a_full_load:
        b.dma(Region("GM", m0 * s.k * 2, (rm, s.k), "float16", "x", s.k * 2),
              Region("L1", x_l1[0].offset, (rm, s.k), "float16"), name="x GM->L1 nd2nz",
              transform="nd2nz")
    b.sync("MTE2", "MTE1", 4)
    b.dma(diag_l1, diag_l0, name="diag L1->L0B")
    ktiles = ranges(0, s.k, bk)
    for n0, n1 in ranges(nr[0], nr[1], bn):
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
            for r0, r1 in ranges(0, wk, STAGE1_ROWS):
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
            for s0, s1 in ranges(0, wk, STAGE2_K):
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


def program(soc: SocDescriptor, s: WqbmmShape, t: Any, args: Any = None,
            replay: bool = False) -> Kernel:
    """The kernel registry's entry (``weight_quant_program.KERNEL_PROGRAMS``): this kernel's
    program for tiling ``t``; with ``replay`` its values from ``args`` (the validated call)."""
    return build_fixpipe(soc, s, t, fixpipe_replay_data(args, t.base_n) if replay else None)
