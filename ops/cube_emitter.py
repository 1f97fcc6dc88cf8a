"""The cube pipeline of one AIC (:class:`CubeEmitter`), the stage every cube kernel is built from.

Per base block (baseM x baseN) of a single-core block, in the tiling's order: GM -> L1 by MTE2
(ND2NZ on the way) in chunks of stepKa / stepKb base-K slices, ping-pong over ``depth`` L1
buffers; L1 -> L0A / L0B by MTE1 one base-K slice at a time, ping-pong over two L0 buffers; Mmad
on the cube accumulating in L0C; L0C -> GM by FixPipe with the epilogue's conversion (F322F16,
REQ8, DEQF16, ...), or on a coupled core through UB (:mod:`npusim.ops.cube_epilogue`). Flags
follow hardware.md 2.3; overlap emerges from the pipes.

Functional runs keep tiles row-major inside L1 / L0 (the fractal byte order inside local buffers
is not modelled; transfer costs use the ND2NZ path). Accumulation follows the declared cube model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from npusim.engine.program import ProgramBuilder
from npusim.isa.operands import ITEMSIZE, Region
from npusim.ops.cube_epilogue import Epilogue, QuantParams, coupled_deq_epilogue, coupled_epilogue
from npusim.ops.cube_templates import Interner, TileTemplate
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.matmul_tiling import CubeTiling, visit_order
from npusim.ops.program_stages import Buffer, allocated

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.hw.schema_core import CoreDescriptor


#: a local buffer of a core's layout with the buffer it lives in: (buffer, (name, shape, dtype))
Placed = tuple[str, Buffer]


def cube_acc_dtype(in_dtype: str) -> str:
    """The L0C accumulator dtype of a cube multiplying ``in_dtype`` tiles."""
    return "int32" if in_dtype in ("int8", "int4") else "float32"


def cube_emitter_layout(t: CubeTiling, in_dtype: str, core: CoreDescriptor, *,
                        bias: bool) -> list[Placed]:
    """The local buffers a :class:`CubeEmitter` of tiling ``t`` allocates on ``core`` when built,
    in allocation order: the A1 / B1 L1 loads times their depths, the L0A / L0B ping-pong (one
    of each without ``l0_db``), the L0C accumulators; with ``bias`` the BiasTable row and its L1
    staging, or on a core without a BiasTable the UB row broadcast into L0C; on a coupled core
    (no FixPipe) the UB copies of the accumulators."""
    acc = cube_acc_dtype(in_dtype)
    n_l0, n_l0c = (2 if t.l0_db else 1), (2 if t.l0c_db else 1)
    ka, kb = t.base_k * t.step_ka, t.base_k * t.step_kb
    out: list[Placed] = [
        *[("L1", (f"A1_{i}", (t.step_m * t.base_m, ka), in_dtype)) for i in range(t.depth_a1)],
        *[("L1", (f"B1_{i}", (kb, t.step_n * t.base_n), in_dtype)) for i in range(t.depth_b1)],
        *[("L0A", (f"A0_{i}", (t.base_m, t.base_k), in_dtype)) for i in range(n_l0)],
        *[("L0B", (f"B0_{i}", (t.base_k, t.base_n), in_dtype)) for i in range(n_l0)],
        *[("L0C", (f"C0_{i}", (t.base_m, t.base_n), acc)) for i in range(n_l0c)],
    ]
    if bias and "BT" in core.buffers:
        out += [("BT", ("bias", (t.base_n,), acc)), ("L1", ("bias_l1", (t.base_n,), acc))]
    elif bias:
        out.append(("UB", ("bias_ub", (t.base_n,), acc)))
    if core.fixpipe is None:
        out += [("UB", (f"C_ub{i}", (t.base_m, t.base_n), acc)) for i in range(n_l0c)]
    return out


def cube_quant_vector_layout(t: CubeTiling) -> list[Placed]:
    """What :meth:`CubeEmitter.use_quant_vector` allocates: a tile's uint64 per-column FixPipe
    parameters staged in L1 and held in FB."""
    return [("L1", ("quant_l1", (t.base_n,), "uint64")),
            ("FB", ("quant_fb", (t.base_n,), "uint64"))]


def cube_coupled_deq_layout(t: CubeTiling) -> list[Placed]:
    """What :meth:`CubeEmitter.use_coupled_deq` allocates per-channel: a tile's uint64
    dequantisation parameters in UB."""
    return [("UB", ("deq_ub", (t.base_n,), "uint64"))]


def cube_emitter_buffers(t: CubeTiling, in_dtype: str, core: CoreDescriptor, *, bias: bool,
                         quant_vector: bool = False,
                         coupled_deq: bool = False) -> dict[str, list[Buffer]]:
    """Every buffer a :class:`CubeEmitter` allocates on ``core`` (built, then with
    ``quant_vector`` / ``coupled_deq`` its ``use_quant_vector`` / per-channel
    ``use_coupled_deq``), per local buffer in allocation order: what a validator sizes."""
    placed = [*cube_emitter_layout(t, in_dtype, core, bias=bias),
              *(cube_quant_vector_layout(t) if quant_vector else []),
              *(cube_coupled_deq_layout(t) if coupled_deq else [])]
    out: dict[str, list[Buffer]] = {}
    for buf, b in placed:
        out.setdefault(buf, []).append(b)
    return out


def _alloc(bld: ProgramBuilder, placed: list[Placed]) -> dict[str, Region]:
    """Allocate ``placed`` in its order; the regions by name."""
    return {name: bld.alloc(buf, shape, dt, name) for buf, (name, shape, dt) in placed}


def _series(regs: dict[str, Region], prefix: str) -> list[Region]:
    """The regions named ``prefix`` + index, in allocation order."""
    return [r for name, r in regs.items() if name.startswith(prefix)]


class CubeEmitter:
    """Emits the cube pipeline of one AIC: buffers are allocated once, ping-pong counters persist
    across :meth:`block` calls so consecutive blocks overlap as in the real kernel."""

    def __init__(
        self,
        bld: ProgramBuilder,
        soc: SocDescriptor,
        t: CubeTiling,
        in_dtype: str,
        *,
        functional: bool,
        cube_model: str,
        with_bias: bool,
        interner: Interner | None = None,
    ) -> None:
        desc = bld.core
        self.intern = interner if interner is not None else Interner()
        self.bld, self.t, self.in_dtype = bld, t, in_dtype
        self.functional, self.cube_model = functional, cube_model
        self.hf32 = ""  # HF32 mode (the declared format, e.g. m10_rne): fp32 L0A / L0B rounded
        self.integer = in_dtype in ("int8", "int4")
        self.acc_dtype = cube_acc_dtype(in_dtype)
        self.n_l0 = 2 if t.l0_db else 1
        self.n_l0c = 2 if t.l0c_db else 1
        if with_bias and "BT" not in desc.buffers and "UB->L0C" not in desc.transfers:
            raise NotImplementedError(
                f"bias on {soc.name}: a core without a BiasTable needs the UB -> L0C "
                "broadcast path, which its descriptor does not declare"
            )
        # coupled 310P (no BiasTable): the bias row is broadcast UB -> L0C (broadcast_ub_to_cc)
        # and the Mmads accumulate onto it
        regs = _alloc(bld, cube_emitter_layout(t, in_dtype, desc, bias=with_bias))
        self.l1a, self.l1b = _series(regs, "A1_"), _series(regs, "B1_")
        self.l0a, self.l0b = _series(regs, "A0_"), _series(regs, "B0_")
        self.l0c = _series(regs, "C0_")
        self.bt, self.l1bias = regs.get("bias"), regs.get("bias_l1")
        self.ub_bias = regs.get("bias_ub")
        self.coupled = desc.fixpipe is None
        self.ub_out = _series(regs, "C_ub")
        self.deq: QuantParams | None = None  # the coupled quant epilogue (see use_coupled_deq)
        self.deq_ub: Region | None = None
        self.atomic = ""  # "add": FixPipe adds the tile into GM (single-core split-K partials)
        # what a tile template depends on besides the tile (tiling, dtypes, buffer layout, core)
        self.layout_key = (t, in_dtype, cube_model, id(desc), *(
            r.offset for r in (*self.l1a, *self.l1b, *self.l0a, *self.l0b, *self.l0c)))
        self.ca = self.cb = self.step = self.tiles = 0
        self.offsets = (0, 0, 0)
        # Optional FixPipe destination hook (mix kernels): ``sink(bm, bn, rm, rn)`` emits what
        # must precede the FixPipe on the FIX pipe and returns (destination, after) where
        # ``after()`` emits what follows it (e.g. a cross-core flag to the AIVs).
        self.sink: Callable[[int, int, int, int], tuple[Region, Callable[[], None]]] | None = None
        self.quant: GmMatrix | None = None  # per-column FixPipe parameters (see use_quant_vector)
        self.quant_param: int | None = None  # the scalar FixPipe parameter (QF322B8_PRE / REQ8)
        self.deq_scale: float | None = None  # a DEQF16 scale set as a float (SetFixpipe scalar)

    def use_quant_vector(self, params: GmMatrix) -> None:
        """FixPipe takes per-column uint64 quant parameters (VQF322B8_PRE / VREQ8 / VDEQF16)
        from ``params`` (a (1, N) row in GM): each tile's columns are staged GM -> L1 (MTE2)
        -> FB (FIX) before its FixPipe, which reads them from FB (the matmul library's
        SetQuantVector path)."""
        self.quant = params
        regs = _alloc(self.bld, cube_quant_vector_layout(self.t))
        self.quant_l1, self.quant_fb = regs["quant_l1"], regs["quant_fb"]

    def use_coupled_deq(self, deq: QuantParams) -> None:
        """A coupled core's L0C -> UB copy dequantises (DEQ16 / VDEQ16 / DEQ8 / VDEQ8); with
        ``deq.per_channel`` each tile's parameters are first copied GM ``qp`` -> UB (MTE2)."""
        if not self.coupled:
            raise ValueError("use_coupled_deq: only a coupled core dequantises on L0C -> UB")
        self.deq = deq
        if deq.per_channel:
            self.deq_ub = _alloc(self.bld, cube_coupled_deq_layout(self.t))["deq_ub"]

    def _stage_quant(self, q: GmMatrix, bn: int, rn: int) -> Region:
        """Stage the tile's quant parameters (``q``: :attr:`quant`) into FB (flags: the L1 copy
        is free once FIX has moved it into FB); returns the FB region the FixPipe reads."""
        bld = self.bld
        if self.tiles > 0:
            bld.wait_flag("FIX", "MTE2", 0)
        col = bn + self.offsets[2]
        staged = Region("L1", self.quant_l1.offset, (rn,), "uint64")
        bld.dma(Region("GM", q.offset + col * 8, (rn,), "uint64", q.tensor), staged,
                name="quant params GM->L1")
        bld.sync("MTE2", "FIX", 0)
        fb = Region("FB", self.quant_fb.offset, (rn,), "uint64")
        bld.dma(staged, fb, name="quant params L1->FB")
        bld.set_flag("FIX", "MTE2", 0)
        return fb

    def block(
        self,
        a: GmMatrix,
        b: GmMatrix,
        out: GmMatrix,
        epilogue: Epilogue,
        m0: int,
        m1: int,
        n0: int,
        n1: int,
        k: int,
        bias: GmMatrix | None = None,
        *,
        k_offset: int = 0,
        b_col_offset: int = 0,
        out_col_offset: int = 0,
    ) -> None:
        """C[m0:m1, n0:n1] = A[m0:m1, ko:ko+k] @ B[ko:ko+k, n0:n1] (+ bias) -> epilogue -> out.

        ``k_offset`` (ko) shifts the K window of A and B; ``b_col_offset`` / ``out_col_offset``
        shift B's and the output's columns (e.g. a per-core workspace strip).
        """
        self.offsets = (k_offset, b_col_offset, out_col_offset)
        t = self.t
        ksteps = math.ceil(k / t.base_k)
        if t.step_m == 1 and t.step_n == 1:
            for bm, bn in self._order(range(m0, m1, t.base_m), range(n0, n1, t.base_n)):
                rm, rn = min(t.base_m, m1 - bm), min(t.base_n, n1 - bn)
                self._tile(a, b, out, epilogue, bias, bm, bn, rm, rn, k, ksteps)
            return
        # L1 groups of step_m x step_n base blocks: an operand whose K chunks all fit its L1
        # buffers is loaded once per group (step_m base rows of A, step_n base columns of B)
        # and read by every tile of the group; otherwise each tile loads its own, as above.
        gm_, gn_ = t.step_m * t.base_m, t.step_n * t.base_n
        a_res = math.ceil(k / (t.base_k * t.step_ka)) <= t.depth_a1
        b_res = math.ceil(k / (t.base_k * t.step_kb)) <= t.depth_b1
        for g0m, g0n in self._order(range(m0, m1, gm_), range(n0, n1, gn_)):
            grows, gcols = min(gm_, m1 - g0m), min(gn_, n1 - g0n)
            tiles = self._order(range(g0m, g0m + grows, t.base_m),
                                range(g0n, g0n + gcols, t.base_n))
            ra = _Resident(g0m, grows) if a_res else None
            rb = _Resident(g0n, gcols) if b_res else None
            for i, (bm, bn) in enumerate(tiles):
                rm, rn = min(t.base_m, m1 - bm), min(t.base_n, n1 - bn)
                for r in (ra, rb):
                    if r is not None:
                        r.first, r.last = i == 0, i == len(tiles) - 1
                self._tile(a, b, out, epilogue, bias, bm, bn, rm, rn, k, ksteps, ra, rb)

    def _order(self, ms: range, ns: range) -> list[tuple[int, int]]:
        return visit_order(self.t, ms, ns)

    def _tile(self, a: GmMatrix, b: GmMatrix, out: GmMatrix, epilogue: Epilogue,
              bias: GmMatrix | None, bm: int, bn: int, rm: int, rn: int, k: int, ksteps: int,
              ra: _Resident | None = None, rb: _Resident | None = None) -> None:
        """One L0C tile over all of K. ``ra`` / ``rb`` (:class:`_Resident`): the operand's L1
        chunks are shared by a group of tiles (loaded by its first tile, released by its last).

        Timing-only tiles without bias, L1 groups, FB quant parameters or a FixPipe hook are
        replayed from a template (:class:`TileTemplate`) when an earlier tile of the kernel had
        the same shape and ping-pong state: its instructions again, with this tile's GM
        windows."""
        if self.functional or ra is not None or rb is not None or bias is not None or \
                a.nz_rows or b.nz_rows or \
                self.sink is not None or self.coupled or self.quant is not None or \
                not self.intern.templates:
            self._tile_emit(a, b, out, epilogue, bias, bm, bn, rm, rn, k, ksteps, ra, rb)
            return
        t = self.t
        key = (self.layout_key, rm, rn, k, b.transposed, epilogue.mode, epilogue.out_dtype,
               self.atomic, self.ca % t.depth_a1, min(self.ca, t.depth_a1), self.cb % t.depth_b1,
               min(self.cb, t.depth_b1), self.step % self.n_l0, min(self.step, self.n_l0),
               self.tiles % self.n_l0c, min(self.tiles, self.n_l0c))
        tpl: TileTemplate | Literal[False] | None = self.intern.tiles.get(key, False)
        if tpl is None:  # a tile the template cannot replay: emitted in full every time
            self._tile_emit(a, b, out, epilogue, bias, bm, bn, rm, rn, k, ksteps, ra, rb)
            return
        if tpl is False:
            instrs = self.bld.program.instrs
            start, counts = len(instrs), (self.ca, self.cb, self.step)
            self._tile_emit(a, b, out, epilogue, bias, bm, bn, rm, rn, k, ksteps, ra, rb)
            self.intern.tiles[key] = TileTemplate.record(
                instrs[start:], self.ca - counts[0], self.cb - counts[1], self.step - counts[2])
            return
        tpl.replay(self, a, b, out, bm, bn, rm, rn)

    def _tile_emit(self, a: GmMatrix, b: GmMatrix, out: GmMatrix, epilogue: Epilogue,
                   bias: GmMatrix | None, bm: int, bn: int, rm: int, rn: int, k: int,
                   ksteps: int, ra: _Resident | None = None, rb: _Resident | None = None
                   ) -> None:
        t, bld, dt = self.t, self.bld, self.in_dtype
        fun = self.functional
        cbuf = self.tiles % self.n_l0c
        reg, copy = self.intern.region, self.intern.copy
        c_reg = reg("L0C", self.l0c[cbuf].offset, (rm, rn), self.acc_dtype)
        bias_reg = None
        if bias is not None and self.bt is not None:
            bias_reg = Region("BT", self.bt.offset, (rn,), self.acc_dtype)
            staged = Region("L1", allocated(self.l1bias, "matmul program: bias_l1").offset, (rn,),
                            self.acc_dtype)
            if self.tiles > 0:
                bld.wait_flag("MTE1", "MTE2", 4)
            src = bias.window(0, 1, bn, rn)
            bld.dma(
                Region("GM", src.offset, (rn,), self.acc_dtype, bias.tensor),
                staged,
                name="bias GM->L1",
            )
            bld.sync("MTE2", "MTE1", 4)
            if self.tiles > 0:
                bld.wait_flag("M", "MTE1", 2)
            bld.dma(staged, bias_reg, name="bias L1->BT")
            bld.set_flag("MTE1", "MTE2", 4)
        bias_in_l0c = bias is not None and self.ub_bias is not None
        if bias is not None and self.ub_bias is not None:  # bias_in_l0c
            staged = Region("UB", self.ub_bias.offset, (rn,), self.acc_dtype)
            if self.tiles > 0:
                bld.wait_flag("V", "MTE2", 4)
            src = bias.window(0, 1, bn, rn)
            bld.dma(Region("GM", src.offset, (rn,), self.acc_dtype, bias.tensor), staged,
                    name="bias GM->UB")
            bld.sync("MTE2", "V", 4)
            # V is in order: this L0C buffer's previous drain (L0C -> UB on V) is done
            bld.dma(staged, c_reg, name="bias UB->L0C broadcast")
            bld.set_flag("V", "MTE2", 4)
            bld.sync("V", "M", 4)
        a_reg: Region  # the L1 windows of the K chunk: set by its first step (s % step == 0)
        b_reg: Region
        for s in range(ksteps):
            k0 = s * t.base_k
            rk = min(t.base_k, k - k0)
            if s % t.step_ka == 0 and ra is not None and not ra.first:
                ia, full = ra.chunks[s // t.step_ka]
                a_reg = _window(full, bm - ra.origin, rm, 0, full.shape[1])
            elif s % t.step_ka == 0:
                ia = self.ca % t.depth_a1
                kc = min(t.base_k * t.step_ka, k - k0)
                if self.ca >= t.depth_a1:
                    bld.wait_flag("MTE1", "MTE2", ia)
                r0, nr = (ra.origin, ra.extent) if ra is not None else (bm, rm)
                a_reg = reg("L1", self.l1a[ia].offset, (nr, kc), dt)
                ko = self.offsets[0]
                if a.nz_rows:  # stored FRACTAL_NZ: a plain copy of its fractal runs
                    copy(bld, self.intern.window(a, r0, nr, ko + k0, kc), a_reg,
                         "A GM->L1 (NZ)", "nz")
                else:
                    copy(bld, self.intern.window(a, r0, nr, ko + k0, kc), a_reg,
                         "A GM->L1 nd2nz", "nd2nz")
                bld.sync("MTE2", "MTE1", ia)
                self.ca += 1
                if ra is not None:
                    ra.chunks[s // t.step_ka] = (ia, a_reg)
                    a_reg = _window(a_reg, bm - ra.origin, rm, 0, kc)
            if s % t.step_kb == 0 and rb is not None and not rb.first:
                ib, full = rb.chunks[s // t.step_kb]
                b_reg = _window(full, 0, full.shape[0], bn - rb.origin, rn)
            elif s % t.step_kb == 0:
                ib = self.cb % t.depth_b1
                kc = min(t.base_k * t.step_kb, k - k0)
                if self.cb >= t.depth_b1:
                    bld.wait_flag("MTE1", "MTE2", 2 + ib)
                c0, nc = (rb.origin, rb.extent) if rb is not None else (bn, rn)
                b_reg = reg("L1", self.l1b[ib].offset, (kc, nc), dt)
                ko, bco, _ = self.offsets
                win = self.intern.window
                if b.nz_rows:  # stored FRACTAL_NZ: a plain copy of its fractal runs
                    src = (win(b, c0 + bco, nc, ko + k0, kc) if b.transposed
                           else win(b, ko + k0, kc, c0 + bco, nc))
                    copy(bld, src, b_reg, "B GM->L1 (NZ)", "nz2nd" if b.transposed else "nz")
                elif b.transposed:
                    copy(bld, win(b, c0 + bco, nc, ko + k0, kc), b_reg, "B GM->L1 nd2nz",
                         "dn2nz")
                else:
                    copy(bld, win(b, ko + k0, kc, c0 + bco, nc), b_reg, "B GM->L1 nd2nz",
                         "nd2nz")
                bld.sync("MTE2", "MTE1", 2 + ib)
                self.cb += 1
                if rb is not None:
                    rb.chunks[s // t.step_kb] = (ib, b_reg)
                    b_reg = _window(b_reg, 0, kc, bn - rb.origin, rn)
            lb = self.step % self.n_l0
            if self.step >= self.n_l0:
                bld.wait_flag("M", "MTE1", lb)
            a_src = _sub_cols(a_reg, (s % t.step_ka) * t.base_k, rk, reg)
            b_src = (_sub_rows(b_reg, (s % t.step_kb) * t.base_k, rk, reg) if rb is None
                     else _window(b_reg, (s % t.step_kb) * t.base_k, rk, 0, rn, reg))
            a0 = reg("L0A", self.l0a[lb].offset, (rm, rk), dt)
            b0 = reg("L0B", self.l0b[lb].offset, (rk, rn), dt)
            copy(bld, a_src, a0, "L1->L0A")
            copy(bld, b_src, b0, "L1->L0B")
            if (s % t.step_ka == t.step_ka - 1 or s == ksteps - 1) and (ra is None or ra.last):
                bld.set_flag("MTE1", "MTE2", ia)
            if (s % t.step_kb == t.step_kb - 1 or s == ksteps - 1) and (rb is None or rb.last):
                bld.set_flag("MTE1", "MTE2", 2 + ib)
            bld.sync("MTE1", "M", lb)
            if s == 0 and self.tiles >= self.n_l0c:
                bld.wait_flag("V" if self.coupled else "FIX", "M", cbuf)
            init_bias = bias_reg if s == 0 else None
            # values from the semantics table (exact integers / the declared fp model)
            acc_model = ("exact_integer" if self.integer else self.cube_model) if fun else None
            self.intern.mmad(bld, a0, b0, c_reg, rm, rk, rn, dt, s > 0 or bias_in_l0c, init_bias,
                             acc_model, self.hf32)
            if s == 0 and bias_reg is not None:
                bld.set_flag("M", "MTE1", 2)
            bld.set_flag("M", "MTE1", lb)
            self.step += 1
        after = None
        if self.sink is not None and not self.coupled:
            bld.sync("M", "FIX", cbuf)
            dst, after = self.sink(bm, bn, rm, rn)
        else:
            dst = out.window(bm, rm, bn + self.offsets[2], rn)
        if self.coupled and self.deq is not None:
            coupled_deq_epilogue(bld, c_reg, self.ub_out[cbuf], dst, self.deq,
                                 epilogue.out_dtype, cbuf, self.tiles, self.n_l0c,
                                 deq_ub=self.deq_ub, col=bn + self.offsets[2])
        elif self.coupled:
            coupled_epilogue(
                bld,
                c_reg,
                self.ub_out[cbuf],
                dst,
                epilogue,
                cbuf,
                self.tiles,
                self.n_l0c,
            )
        else:
            fb = self._stage_quant(self.quant, bn, rn) if self.quant is not None else None
            if after is None:
                bld.sync("M", "FIX", cbuf)
            bld.fixpipe(
                c_reg,
                dst,
                elements=rm * rn,
                out_dtype=epilogue.out_dtype,
                mode=epilogue.mode,
                replay=fun,  # the table's modes
                atomic=self.atomic,
                extra_reads=(fb,) if fb is not None else (),
                quant_param=self.quant_param,
                deq_scale=self.deq_scale,
            )
            bld.set_flag("FIX", "M", cbuf)
            if after is not None:
                after()
        self.tiles += 1


@dataclass
class _Resident:
    """An operand panel shared by a group of tiles: rows (A) or columns (B) ``origin`` ..
    ``origin + extent`` of the single-core block, its L1 chunk per K chunk index."""

    origin: int
    extent: int
    first: bool = True
    last: bool = True
    chunks: dict[int, tuple[int, Region]] = field(default_factory=dict)


def _window(r: Region, row0: int, rows: int, col0: int, cols: int,
            make: Callable[..., Region] = Region) -> Region:
    """A (rows x cols) window of a 2-D local region at (row0, col0), keeping its row stride
    (``make``: the Region constructor, or an :meth:`Interner.region`)."""
    isz = ITEMSIZE[r.dtype]
    stride = r.stride if r.row_stride_bytes is not None else math.ceil(r.shape[1] * isz)
    return make(r.buffer, r.offset + row0 * stride + math.ceil(col0 * isz), (rows, cols),
                r.dtype, None, stride)


def _sub_cols(r: Region, col0: int, cols: int, make: Callable[..., Region] = Region) -> Region:
    rows, total = r.shape
    isz = ITEMSIZE[r.dtype]
    return make(r.buffer, r.offset + math.ceil(col0 * isz), (rows, cols), r.dtype, None,
                math.ceil(total * isz))


def _sub_rows(r: Region, row0: int, rows: int, make: Callable[..., Region] = Region) -> Region:
    _, cols = r.shape
    isz = ITEMSIZE[r.dtype]
    return make(r.buffer, r.offset + math.ceil(row0 * cols * isz), (rows, cols), r.dtype)
