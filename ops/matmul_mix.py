"""The AIV half of mix matmul kernels on split SoCs (A2 / A3: one AIC + two AIVs per AI Core).

Two structures, both reading the cube's int32 / fp32 accumulator tiles from a GM workspace:

* **Vector epilogue** (quant_matmul with bf16 output or a per-token scale, ops-semantics 6.2): each
  AIC writes every L0C tile by FixPipe (no conversion) into a per-core ring of ``RING_SLOTS`` tile
  slots and raises cross-core flag READY (mode 2, both AIVs released). AIV ``h`` of the pair takes
  rows ``h`` of the tile's two halves, in chunks of ``vec_rows`` rows, double-buffered in UB:
  MTE2 loads the chunk + scale (+ per-token scale, + float bias), V runs ``Cast int32->fp32``,
  ``Mul scale``, [``Brcb`` + ``Mul pertoken``], [``Add bias``], ``Cast fp32->out`` (CAST_RINT),
  MTE3 stores the output. After loading a slot's last chunk the AIV sets FREE; the AIC waits for
  FREE from both AIVs before it overwrites that slot.
* **Split-K reduction**: each cube core writes its K-slice partial to a ``part`` workspace; every
  AIC sets DONE to its AIVs when its partials are out, the AIVs meet in a mode-0 barrier (all AIVs
  of the launch) and then share the output, each chunk loading the ``k_dim`` partials and adding
  them in the declared order before the same conversion.

Declared split-K model (``core_index_ascending``, the SoC's ``numerics.split_k_reduction_order``;
the hardware's order is not published): partial ``l`` is the cube result of K slice ``l`` (the
bias initialises slice 0's accumulator); the partials are added onto a zero-initialised fp32
accumulator in ascending slice (= core) index, each add RNE (``((0 + p0) + p1) + ...``); integer
partials add exactly. :func:`npusim.ops.matmul.reference_matmul` with ``single_core_k`` computes
the same model from the operands.

Simplifications (stated, not hidden): UB chunk rows are packed (no 32 B row padding); a (1,)
scale is broadcast to (n,) on the host; the local layout of tiles is row-major.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.program_stages import CrossFlag, CrossFlags, PingPong, Ring, VecInOut, allocated

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

RING_SLOTS = 2  # accumulator tiles per AIC in the workspace ring (GM ping-pong)
UB_RESERVE_BYTES = 1024  # UB left unallocated by the chunk buffers (alignment slack)
SPLIT_K_ORDERS = ("core_index_ascending",)
_ISZ = {"float16": 2, "bfloat16": 2, "float32": 4, "int32": 4, "int8": 1}


@dataclass(eq=False)
class AivStage:
    """What the AIVs do to an accumulator tile (after any split-K reduction).

    ``dequant``: ``fp32(acc) * scale[col]`` (AscendDequant; scale not truncated), then
    ``* pertoken[row]`` if ``has_pertoken``, ``+ bias[col]`` if ``bias_dtype``; ``cast``: the
    fp32 (or accumulator) tile is cast to the output dtype with CAST_RINT, overflow saturating
    when ``saturate`` (the vector Cast) or to +-inf (the FixPipe F322F16 / F322BF16 formula the
    split-K reduction reproduces); without it the accumulator is stored as is. Every step is a
    typed instruction (values from the semantics table). Arrays are None in timing-only runs.
    """

    out_dtype: str
    dequant: bool = False
    scale: np.ndarray | None = None
    scale_dtype: str = "float32"
    has_pertoken: bool = False
    pertoken: np.ndarray | None = None
    bias_dtype: str | None = None
    bias: np.ndarray | None = None
    bias_rows: int = 1
    cast: bool = False
    saturate: bool = True
    #: REQ8 on the vector unit (split-K): after ``* scale``, s9 = clip(rint(v), -256, 255),
    #: then ``+ offset[col]`` (int32) before the saturating Cast to int8 - FixPipe's formula
    requant: bool = False
    offset: np.ndarray | None = None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def gm_tensors(self, m: int, n: int) -> dict[str, GMTensor]:
        """The GM inputs the AIVs read besides the workspace."""
        out: dict[str, GMTensor] = {}
        if self.dequant:
            sc = None if self.scale is None else np.broadcast_to(
                np.asarray(self.scale).reshape(-1), (n,)).copy()
            out["scale"] = GMTensor("scale", (n,), self.scale_dtype, sc, "input")
        if self.requant:
            off = None if self.offset is None else np.broadcast_to(
                np.asarray(self.offset, np.int32).reshape(-1), (n,)).copy()
            out["offset"] = GMTensor("offset", (n,), "int32", off, "input")
        if self.has_pertoken:
            out["pertoken"] = GMTensor("pertoken", (m,), "float32", self.pertoken, "input")
        if self.bias_dtype is not None:
            b = None if self.bias is None else np.asarray(self.bias).reshape(self.bias_rows, n)
            out["fbias"] = GMTensor("fbias", (self.bias_rows, n), self.bias_dtype, b, "input")
        return out


def cast_stage(out_dtype: str, acc_dtype: str) -> AivStage:
    """The stage of a split-K matmul: the reduced accumulator cast to the output with the
    operator's FixPipe conversion (F322F16 / F322BF16: RNE, overflow to inf) run on the vector
    unit, or stored as is when out == acc dtype."""
    if out_dtype == acc_dtype:
        return AivStage(out_dtype, label="store")
    return AivStage(out_dtype, cast=True, saturate=False, label=f"Cast->{out_dtype}")


@dataclass(frozen=True)
class MixFlags:
    """The cross-core flags of a mix matmul: the accumulator ring's READY / FREE (vector
    epilogue), or DONE (an AIC's K-slice partials are out) and the all-AIV barrier (split-K)."""

    flags: CrossFlags
    ring: Ring | None = None
    done: CrossFlag | None = None
    all_aiv: CrossFlag | None = None

    @classmethod
    def of(cls, soc: SocDescriptor, split_k: bool) -> MixFlags:
        f = CrossFlags.of(soc)
        if split_k:
            return cls(f, done=f.flag("K-slice partials written"),
                       all_aiv=f.flag("every AIV saw its AIC's partials", mode=0))
        return cls(f, ring=f.ring("accumulator tile slot", RING_SLOTS))


class WorkspaceRing:
    """Per-AIC ring of accumulator tile slots in GM between the cube and its two AIVs, with its
    READY / FREE handshake (``handshake``)."""

    def __init__(self, n_cores: int, base_m: int, base_n: int, dtype: str,
                 handshake: Ring) -> None:
        self.n_cores, self.base_m, self.base_n = n_cores, base_m, base_n
        self.dtype, self.slots, self.handshake = dtype, handshake.slots, handshake
        self.tiles: dict[int, list[tuple[int, int, int, int, int, int]]] = {}
        self.batch_index = 0  # output matrix of the tiles being emitted (set by the builder)

    def tensor(self) -> GMTensor:
        return GMTensor("ws", (self.n_cores * self.slots, self.base_m, self.base_n), self.dtype,
                        None, "workspace")

    def region(self, core: int, slot: int, r0: int, rows: int, cols: int) -> Region:
        row_bytes = self.base_n * _ISZ[self.dtype]
        off = ((core * self.slots + slot) * self.base_m + r0) * row_bytes
        return Region("GM", off, (rows, cols), self.dtype, "ws", row_bytes)

    def sink(self, bld: ProgramBuilder, core: int
             ) -> Callable[[int, int, int, int], tuple[Region, Callable[[], None]]]:
        """The CubeEmitter hook: wait until both AIVs freed the slot, FixPipe into it, READY."""
        tiles = self.tiles.setdefault(core, [])

        def sink(bm: int, bn: int, rm: int, rn: int) -> tuple[Region, Callable[[], None]]:
            idx = len(tiles)
            slot = idx % self.slots
            self.handshake.fill(bld, idx, "FIX")
            tiles.append((self.batch_index, bm, bn, rm, rn, slot))
            return (self.region(core, slot, 0, rm, rn),
                    lambda: self.handshake.publish(bld, "FIX"))

        return sink


def vec_rows_for(ub_bytes: int, n_src: int, width: int, stage: AivStage, acc_dtype: str) -> int:
    """Rows per UB chunk so that two chunk buffers (sources, output, parameters) fit in UB."""
    per_row = n_src * width * _ISZ[acc_dtype]
    if stage.cast:
        per_row += width * _ISZ[stage.out_dtype]
    if stage.has_pertoken:
        per_row += 4 + 32  # the per-token scale and its Brcb (8 copies per row)
    fixed, allocs = 0, n_src + 3
    if stage.dequant:
        fixed += width * (4 + (_ISZ[stage.scale_dtype] if stage.scale_dtype != "float32" else 0))
        allocs += 2
    if stage.bias_dtype is not None:
        fixed += width * (4 + (_ISZ[stage.bias_dtype] if stage.bias_dtype != "float32" else 0))
        allocs += 2
    if stage.requant:
        fixed += width * 4
        allocs += 2
    budget = (ub_bytes - UB_RESERVE_BYTES) // 2 - fixed - 32 * allocs
    rows = budget // per_row
    if rows < 1:
        raise ValueError(f"AIV UB of {ub_bytes} B cannot hold one row of {n_src} accumulator "
                         f"tiles {width} wide (split-K too deep for this base_n)")
    return int(rows)


class AivTileEmitter:
    """Emits one AIV's chunk pipeline (ping-pong UB): load, reduce, dequant / cast, store."""

    def __init__(self, bld: ProgramBuilder, stage: AivStage, n_src: int, width: int,
                 vec_rows: int, acc_dtype: str, m: int, n: int, functional: bool) -> None:
        self.bld, self.st, self.n_src = bld, stage, n_src
        self.acc, self.m, self.n, self.fun = acc_dtype, m, n, functional
        st = stage
        self.src = [[bld.alloc("UB", (vec_rows, width), acc_dtype, f"src{i}_{j}")
                     for j in range(n_src)] for i in range(2)]
        self.out = ([bld.alloc("UB", (vec_rows, width), st.out_dtype, f"out{i}") for i in range(2)]
                    if st.cast else None)
        # MTE2 -> V -> MTE3 over two UB sets; without a cast the accumulator tile itself is
        # stored, so its input buffer is free once MTE3 has read it (MTE3 -> MTE2)
        self.q = VecInOut(bld) if self.out is not None else None
        self.stored_in = PingPong(bld, "MTE2", "MTE3", (0, 1)) if self.out is None else None
        self.sc = self.sc_raw = self.fb = self.fb_raw = self.pt = self.pb = self.off = None
        if st.requant:
            self.off = [bld.alloc("UB", (width,), "int32", f"offset{i}") for i in range(2)]
        if st.dequant:
            self.sc = [bld.alloc("UB", (width,), "float32", f"scale{i}") for i in range(2)]
            if st.scale_dtype != "float32":
                self.sc_raw = [bld.alloc("UB", (width,), st.scale_dtype, f"scale_in{i}")
                               for i in range(2)]
        if st.has_pertoken:
            self.pt = [bld.alloc("UB", (max(vec_rows, 8),), "float32", f"pt{i}") for i in range(2)]
            self.pb = [bld.alloc("UB", (vec_rows, 8), "float32", f"pt_brcb{i}") for i in range(2)]
        if st.bias_dtype is not None:
            self.fb = [bld.alloc("UB", (width,), "float32", f"bias{i}") for i in range(2)]
            if st.bias_dtype != "float32":
                self.fb_raw = [bld.alloc("UB", (width,), st.bias_dtype, f"bias_in{i}")
                               for i in range(2)]

    def chunk(self, srcs: list[Region], bidx: int, row0: int, rows: int, col0: int,
              cols: int) -> None:
        """Output rows ``row0..`` / cols ``col0..`` of matrix ``bidx`` from the GM ``srcs``."""
        bld, st = self.bld, self.st
        i = self.q.load() if self.q is not None else self._stored_in().acquire()

        def ub(base: Region, dt: str, shape: tuple[int, ...] = (rows, cols)) -> Region:
            return Region("UB", base.offset, shape, dt)

        s = [ub(self.src[i][j], self.acc) for j in range(self.n_src)]
        for j, g in enumerate(srcs):
            bld.dma(g, s[j], name="acc GM->UB" if self.n_src == 1 else f"partial {j} GM->UB")
        sc = raw = pt = pb = fb = braw = None
        if st.dequant:
            sc = ub(allocated(self.sc, "AIV scale")[i], "float32", (cols,))
            raw = ub(self.sc_raw[i], st.scale_dtype, (cols,)) if self.sc_raw else sc
            bld.dma(Region("GM", col0 * _ISZ[st.scale_dtype], (cols,), st.scale_dtype, "scale"),
                    raw, name="scale GM->UB")
        off = None
        if st.requant:
            off = ub(allocated(self.off, "AIV offset")[i], "int32", (cols,))
            bld.dma(Region("GM", col0 * 4, (cols,), "int32", "offset"), off,
                    name="offset GM->UB")
        if st.has_pertoken:
            pt = ub(allocated(self.pt, "AIV pertoken")[i], "float32", (rows,))
            pb = ub(allocated(self.pb, "AIV pertoken Brcb")[i], "float32", (rows, 8))
            bld.dma(Region("GM", row0 * 4, (rows,), "float32", "pertoken"), pt,
                    name="pertoken GM->UB")
        if st.bias_dtype is not None:
            fb = ub(allocated(self.fb, "AIV bias")[i], "float32", (cols,))
            braw = ub(self.fb_raw[i], st.bias_dtype, (cols,)) if self.fb_raw else fb
            brow = bidx if st.bias_rows > 1 else 0
            bld.dma(Region("GM", (brow * self.n + col0) * _ISZ[st.bias_dtype], (cols,),
                           st.bias_dtype, "fbias"), braw, name="bias GM->UB")
        if self.q is not None:
            self.q.compute(i)
        else:
            bld.sync("MTE2", "V", i)
        acc = s[0]
        if self.n_src > 1:
            self._reduce(s)
        if st.dequant:
            acc = self._dequant(s[0], allocated(sc, "AIV scale"), allocated(raw, "AIV scale"),
                                pt, pb, fb, braw)
        if st.requant:
            acc = _requant_chain(bld, acc, allocated(off, "AIV offset"))
        last = acc
        if st.cast:
            o = ub(allocated(self.out, "AIV output")[i], st.out_dtype)
            bld.cast(o, acc, round_mode="rint", saturate=st.saturate,
                     name=f"Cast {acc.dtype}->{st.out_dtype}")
            last = o
        if self.q is not None:
            self.q.store(i)  # the input set back to MTE2, the output to MTE3
        else:
            bld.sync("V", "MTE3", i)
        dst = Region("GM", ((bidx * self.m + row0) * self.n + col0) * _ISZ[st.out_dtype],
                     (rows, cols), st.out_dtype, "c", self.n * _ISZ[st.out_dtype])
        bld.dma(last, dst, name="out UB->GM")
        if self.q is not None:
            self.q.stored(i)
        else:
            self._stored_in().release(i)

    def _stored_in(self) -> PingPong:
        assert self.stored_in is not None
        return self.stored_in

    def _reduce(self, s: list[Region]) -> None:
        """Partials added in ascending slice order onto a zero accumulator (declared model)."""
        a0, bld = s[0], self.bld
        if self.acc == "float32":
            bld.vop(VecOp.ADDS, a0, (a0,), scalar=0.0, name="Adds 0 (zeroed accumulator)")
        for p in s[1:]:
            bld.vop(VecOp.ADD, a0, (a0, p), name="Add partial")

    def _dequant(self, s0: Region, sc: Region, sc_raw: Region, pt: Region | None,
                 pb: Region | None, fb: Region | None, fb_raw: Region | None) -> Region:
        st, bld = self.st, self.bld
        f = Region("UB", s0.offset, s0.shape, "float32")
        bld.cast(f, s0, round_mode="rint", name="Cast int32->fp32")
        if sc_raw is not sc:
            bld.cast(sc, sc_raw, round_mode="rint", name=f"Cast scale {st.scale_dtype}->fp32")
        bld.vop(VecOp.MUL, f, (f, sc), name="Mul scale")
        if pt is not None and pb is not None:  # set together (has_pertoken)
            bld.vop(VecOp.BRCB, pb, (pt,), name="Brcb pertoken")
            # each row's first lane of its Brcb'd block (block stride 0 across the row)
            col = Region("UB", pb.offset, (pb.shape[0], 1), "float32", row_stride_bytes=32)
            bld.vop(VecOp.MUL, f, (f, col), name="Mul pertoken")
        if fb is not None and fb_raw is not None:  # set together (a bias)
            if fb_raw is not fb:
                bld.cast(fb, fb_raw, round_mode="rint", name=f"Cast bias {st.bias_dtype}->fp32")
            bld.vop(VecOp.ADD, f, (f, fb), name="Add bias")
        return f


def _requant_chain(bld: ProgramBuilder, f: Region, off: Region) -> Region:
    """REQ8's integer steps on the vector unit: the fp32 product ``f`` to int32 (CAST_RINT,
    saturating; NaN -> 0), clamped to the 9-bit range, plus the column offsets, in place in the
    tile's int32 view; the saturating Cast to int8 that follows clamps to [-128, 127]."""
    q = Region("UB", f.offset, f.shape, "int32")
    bld.cast(q, f, round_mode="rint", saturate=True, name="Cast fp32->int32")
    bld.vop(VecOp.MAXS, q, (q,), scalar=-256, name="Maxs -256 (s9)")
    bld.vop(VecOp.MINS, q, (q,), scalar=255, name="Mins 255 (s9)")
    bld.vop(VecOp.ADD, q, (q, off), name="Add offset")
    return q


def emit_aiv_programs(
    soc: SocDescriptor,
    cores: list[CoreProgram],
    ring: WorkspaceRing | None,
    stage: AivStage | None,
    epilogue: Any,
    t: Any,
    m: int,
    n: int,
    nb: int,
    acc_dtype: str,
    *,
    split_k_order: str | None,
    functional: bool,
    flags: MixFlags,
) -> tuple[dict[str, Any], dict[str, GMTensor]]:
    """Append the AIV programs of a mix matmul to ``cores`` (after its AICs); return the kernel
    metadata and the extra GM tensors the AIVs read."""
    desc = soc.core("aiv")
    ub = int(desc.buffers["UB"].capacity_bytes)
    n_aic = len(cores)
    if stage is None:
        stage = cast_stage(epilogue.out_dtype, acc_dtype)
    info: dict[str, Any] = {"aiv_stage": stage.label or "dequant"}
    if split_k_order is None:
        assert ring is not None
        width = t.base_n
        vec_rows = min(vec_rows_for(ub, 1, width, stage, acc_dtype), math.ceil(t.base_m / 2))
        for ci in range(n_aic):
            tiles = ring.tiles.get(ci, [])
            for h in range(2):
                prog = CoreProgram(2 * ci + h, "aiv")
                cores.append(prog)
                if not tiles:
                    continue
                bld = ProgramBuilder(prog, desc)
                em = AivTileEmitter(bld, stage, 1, width, vec_rows, acc_dtype, m, n, functional)
                for bi, bm, bn, rm, rn, slot in tiles:
                    ring.handshake.take(bld, "MTE2")
                    half = math.ceil(rm / 2)
                    lo, hi = min(rm, h * half), min(rm, (h + 1) * half)
                    per = math.ceil((hi - lo) / max(1, math.ceil((hi - lo) / vec_rows)))
                    for r in range(lo, hi, max(1, per)):
                        rows = min(per, hi - r)
                        em.chunk([ring.region(ci, slot, r, rows, rn)], bi, bm + r, rows, bn, rn)
                    ring.handshake.release(bld, "MTE2")
        info.update(workspace_slots=ring.slots, aiv_vec_rows=vec_rows)
        return info, stage.gm_tensors(m, n)
    if split_k_order not in SPLIT_K_ORDERS:
        raise NotImplementedError(
            f"split_k_reduction_order={split_k_order!r}: only {SPLIT_K_ORDERS} is implemented")
    k_dim = t.k_dim
    width = min(n, t.base_n)
    strips = math.ceil(n / width)
    n_aiv = 2 * n_aic
    vec_rows = vec_rows_for(ub, k_dim, width, stage, acc_dtype)
    rows_per = max(1, min(vec_rows, math.ceil(m / max(1, math.ceil(n_aiv / (strips * nb))))))
    units = [(bi, r0, c0) for bi in range(nb) for r0 in range(0, m, rows_per)
             for c0 in range(0, n, width)]
    part_row = n * _ISZ[acc_dtype]
    for j in range(n_aiv):
        prog = CoreProgram(j, "aiv")
        cores.append(prog)
        bld = ProgramBuilder(prog, desc)
        assert flags.done is not None and flags.all_aiv is not None
        flags.done.wait(bld, "MTE2")
        flags.all_aiv.barrier(bld, "MTE2", "MTE2")
        mine = units[j::n_aiv]
        if not mine:
            continue
        em = AivTileEmitter(bld, stage, k_dim, width, rows_per, acc_dtype, m, n, functional)
        for bi, r0, c0 in mine:
            rows, cols = min(rows_per, m - r0), min(width, n - c0)
            srcs = [Region("GM", ((li * nb + bi) * m + r0) * part_row + c0 * _ISZ[acc_dtype],
                           (rows, cols), acc_dtype, "part", part_row) for li in range(k_dim)]
            em.chunk(srcs, bi, r0, rows, c0, cols)
    info.update(split_k={"k_dim": k_dim, "single_core_k": t.single_core_k,
                         "reduction_order": split_k_order,
                         "model": "partials of ascending K slices added onto a zeroed "
                                  "accumulator, fp32 RNE per add (integer: exact)"},
                aiv_vec_rows=rows_per)
    return info, stage.gm_tensors(m, n)
