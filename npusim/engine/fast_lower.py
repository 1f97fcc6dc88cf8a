"""Lowering for the fast engine (issue 14 item 2): a kernel's instruction streams as compact tuples.

Every pipe's queue becomes a list of tuples whose first element is an integer kind and whose other
elements are what the event loop needs and nothing else: precomputed durations (idle and busy
variants, already scaled to the AI-core clock), a flag slot, a cross-core counter, and for GM
traffic the L2 pages each access touches (absolute pages: the GM address map is static). Local
costs come from ``npusim.engine.timing`` exactly as the reference engine computes them, memoised
per cost signature (the parameters the cost function reads), so each distinct signature is costed
once per run. A cost function that raises is lowered to :data:`K_ERROR`; the event loop then hands
the run to the reference engine, which raises the error at the same instruction.

The same pass makes the reference engine's static checks (pipes, regions, flag ids, cross-core
modes); :func:`lower` returns None when one fails, and the caller
lets the reference engine raise the exact error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from itertools import compress
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from npusim.engine import timing
from npusim.engine.memory import MemorySystem, page_pattern
from npusim.engine.program import CoreProgram, Kernel
from npusim.isa.instructions import (
    Cast,
    CrossCoreSetFlag,
    CrossCoreWaitFlag,
    DataCopy,
    FixPipe,
    Mmad,
    PipeBarrier,
    Scalar,
    SetFlag,
    Vector,
    WaitFlag,
)
from npusim.isa.operands import BUFFERS, Region, element_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from npusim.hw.schema import SocDescriptor
    from npusim.hw.schema_core import CoreDescriptor

# instruction kinds of the lowered streams; the last element of every tuple is the bytes the
# instruction's record reports
K_LOCAL = 0  # (K_LOCAL, dur_idle, dur_busy, nbytes): no GM, no flag (Mmad, Vector, local DMA)
K_DMA = 1  # (K_DMA, local cycles, accesses, (in-flight spec, layout factor) or None,
#            pipelined (behind another DataCopy, timing.dma_pipelined), nbytes)
K_FIX = 2  # (K_FIX, cycles_idle, cycles_busy, accesses, clock scale, nbytes): FixPipe into GM
K_SET = 3  # (K_SET, dur, flag key index x cores, 0): the slot is that + the core's index
K_XSET = 4  # (K_XSET, dur, mode, flag id, 0)
K_WAIT = 5  # (K_WAIT, flag key index x cores, 0)
K_XWAIT = 6  # (K_XWAIT, mode, flag id, 0): the counter is (the core's index, mode, flag id)
K_BARRIER = 7  # (K_BARRIER, 0)
K_ERROR = 8  # (K_ERROR, exception, 0): the reference engine raises it when the pipe reaches it

#: the L2 pages of one access: (first page, its page pattern), the pattern's entries (page - first
#: page, line mask, bytes, lines in mask) - shared by every access of that page-relative shape
Pages = tuple[int, tuple[tuple[int, int, int, int], ...]]
_PIPE = attrgetter("pipe")

#: (pages, write, allocate, atomic, bytes) of one GM access
Access = tuple[Pages, bool, bool, bool, int]


@dataclass
class Lowered:
    """A kernel lowered for the fast engine (one entry per pipe, in the reference's order)."""

    kernel: Kernel
    pipe_keys: list[tuple[int, str]]  # (core index, pipe name), simpy process creation order
    streams: list[list[tuple[Any, ...]]]  # per pipe: lowered instructions (may be shared)
    flag_slots: int
    per_path_bytes: dict[str, int] = field(default_factory=dict)
    # per core kind: id(instruction) -> (pipe, lowered, None or (accesses, path, bytes))
    seen: list[dict[int, tuple[Any, ...]]] = field(default_factory=list)
    core_kinds: list[int] = field(default_factory=list)  # per core: its kind's index in seen

    def core_accesses(self) -> list[list[Access]]:
        """Per core, its GM accesses in program order (the ``repeat`` L2 replay)."""
        out: list[list[Access]] = []
        for core, ki in zip(self.kernel.cores, self.core_kinds, strict=True):
            get = self.seen[ki].get
            acc: list[Access] = []
            for ins in core.instrs:
                hit = get(id(ins))
                if hit is not None and hit[2] is not None:
                    acc.extend(hit[2][0])
            out.append(acc)
        return out

    def instrs(self) -> list[list[Any]]:
        """Per pipe, the original instructions (for the names and kinds of records)."""
        index = {key: p for p, key in enumerate(self.pipe_keys)}
        out: list[list[Any]] = [[] for _ in self.pipe_keys]
        for ci, core in enumerate(self.kernel.cores):
            for ins in core.instrs:
                out[index[(ci, ins.pipe)]].append(ins)
        return out


def _mmad_cost(ins: Mmad, desc: CoreDescriptor, idle: bool) -> int:
    """An Mmad's cycles on ``desc`` (the cost-function shape :meth:`_Lowerer.local` takes)."""
    return timing.mmad_cycles(desc, ins, idle)


def _layout(r: Region) -> tuple[int, int, int, int]:
    """(offset, rows, row bytes, stride) of a region, as Region's properties compute them."""
    nb = r.nbytes
    rsb = r.row_stride_bytes
    if rsb is None:
        return r.offset, 1, nb, nb
    rows = r.shape[0]
    return r.offset, rows, (nb // rows if rows else 0), rsb


_ENTRIES: dict[tuple[int, ...], tuple[tuple[int, int, int, int], ...]] = {}
_ENTRIES_MAX = 65536


def pattern_entries(start: int, rows: int, row_bytes: int, stride: int, page_bytes: int,
                    line_bytes: int) -> tuple[tuple[int, int, int, int], ...]:
    """The entries of :data:`Pages` for a window of that page-relative shape: page_pattern's
    (page - first page, line mask, bytes) plus the mask's line count. Pure, so memoised for the
    process: the windows of one tiling recur in the other tilings of a sweep (a decode matmul's
    weight tiles, ~90 pages each, cost a quarter of a tiling's lowering before)."""
    key = (start, rows, row_bytes, stride, page_bytes, line_bytes)
    got = _ENTRIES.get(key)
    if got is None:
        if len(_ENTRIES) >= _ENTRIES_MAX:
            _ENTRIES.clear()
        got = _ENTRIES[key] = tuple(
            (rel, mask, nb, mask.bit_count()) for rel, (mask, nb) in
            page_pattern(start, rows, row_bytes, stride, page_bytes, line_bytes))
    return got


class _Kind:
    """Per core kind: descriptor, clock scale, pipes, (capacity, alignment) per buffer."""

    __slots__ = ("buffers", "desc", "flag_cycles", "index", "pipes", "scale", "window")

    def __init__(self, index: int, soc: SocDescriptor, kind: str) -> None:
        self.index = index
        self.desc = desc = soc.core(kind)
        self.scale = soc.aicore_freq_mhz / soc.freq_mhz(kind)
        self.pipes = frozenset(desc.pipes)
        # GM costs see a GM start address only modulo the burst window (npusim.engine.gm_cost:
        # row_cost reads start % window); without a burst model they ignore it
        bursts = getattr(desc, "gm_bursts", None)
        self.window = int(bursts.window_bytes) if bursts is not None else 1
        self.buffers: dict[str, tuple[int, int]] = {
            name: (b.capacity_bytes, b.alignment_bytes)
            for name, b in desc.buffers.items() if name in BUFFERS}
        try:
            self.flag_cycles = max(1, math.ceil(timing.flag_cycles(desc) * self.scale))
        except Exception:  # the reference raises it at the first SetFlag
            self.flag_cycles = -1


class _Lowerer:
    """Cost memo and GM page memo of one run (the cold paths of :func:`lower`)."""

    def __init__(self, kernel: Kernel, soc: SocDescriptor, mem: MemorySystem) -> None:
        self.soc = soc
        self.mem = mem
        self.gm_sizes = {name: t.nbytes for name, t in kernel.gm.items()}
        self.kinds: dict[str, _Kind] = {}
        self.cost: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        # page-relative shape -> entries of Pages
        self.patterns: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def kind(self, kind: str) -> _Kind:
        k = self.kinds.get(kind)
        if k is None:
            k = self.kinds[kind] = _Kind(len(self.kinds), self.soc, kind)
        return k

    def region_ok(self, r: Region, kd: _Kind) -> bool:
        """The reference's ``_check_region`` as a predicate."""
        b = r.buffer
        o = r.offset
        nb = r.nbytes
        rsb = r.row_stride_bytes
        if rsb is None:
            end = o + nb
        else:
            rows = r.shape[0]
            end = o + (rows - 1) * rsb + (nb // rows if rows else 0)
        if b == "GM":  # (BUFFERS holds GM; a local buffer must be in kd.buffers, all BUFFERS)
            size = self.gm_sizes.get(r.tensor) if r.tensor is not None else None
            return size is not None and o >= 0 and end <= size
        lim = kd.buffers.get(b)
        if lim is None:  # not on this core (or not a buffer at all)
            return False
        return bool(o >= 0 and end <= lim[0] and o % lim[1] == 0)

    def access(self, r: Region, layout: tuple[int, int, int, int], write: bool, allocate: bool,
               atomic: bool) -> Access:
        """One GM access: its pages as MemorySystem._pages finds them (page_pattern of the
        window's page-relative shape, from its first page), in the same order."""
        mem = self.mem
        pb = mem.l2.page_bytes
        base = mem.base[cast(str, r.tensor)] + layout[0]  # a GM region (region_ok passed)
        first = base // pb
        key = (base - first * pb, *layout[1:])
        pat = self.patterns.get(key)
        if pat is None:
            pat = self.patterns[key] = pattern_entries(*key, pb, mem.l2.line_bytes)
        return ((first, pat), write, allocate, atomic, r.nbytes)

    def local(self, kd: _Kind, cost: Callable[[CoreDescriptor, bool], float],
              nbytes: int = 0) -> tuple[Any, ...]:
        """(K_LOCAL, idle, busy, nbytes) from ``cost(desc, was_idle)``, scaled to the AI-core
        clock; (K_ERROR, exc, 0) when the cost function raises."""
        try:
            idle, busy = cost(kd.desc, True), cost(kd.desc, False)
        except Exception as exc:  # raised by the reference at this instruction
            return (K_ERROR, exc, 0)
        s = kd.scale
        return (K_LOCAL, max(1, math.ceil(idle * s)), max(1, math.ceil(busy * s)), nbytes)

    def dma(self, ins: Any, kd: _Kind, core_acc: list[Access],
            paths: dict[tuple[str, str], int]) -> tuple[Any, ...]:
        src, dst = ins.reads[0], ins.writes[0]
        sb, db = src.buffer, dst.buffer
        snb, dnb = src.nbytes, dst.nbytes
        nbytes = snb if snb > dnb else dnb
        pk = (sb, db)
        paths[pk] = paths.get(pk, 0) + nbytes
        sgm, dgm = sb == "GM", db == "GM"
        if not (sgm or dgm):  # on-core copy: the whole lowered tuple is the memo entry
            key: tuple[Any, ...] = (DataCopy, kd.index, sb, db, nbytes, ins.transform)
            low = self.cost.get(key)
            if low is None:
                try:
                    local = timing.dma_local_cycles(kd.desc, ins)
                except Exception as exc:  # raised by the reference here
                    return (K_ERROR, exc, 0)
                dur = max(1, local)  # the reference's ceil(end - now - 1e-9) of an integer
                low = self.cost[key] = (K_LOCAL, dur, dur, nbytes)
            return low
        sl: Any = _layout(src) if sgm else None
        dl: Any = _layout(dst) if dgm else None
        w = kd.window
        key = (DataCopy, kd.index, sb, db, nbytes, ins.transform,
               sl and (sl[0] % w, *sl[1:]), dl and (dl[0] % w, *dl[1:]))
        got: tuple[Any, ...] | None = self.cost.get(key)
        if got is None:
            try:
                got = self.cost[key] = (timing.dma_local_cycles(kd.desc, ins),
                                        timing.in_flight_of(kd.desc, ins) if sgm else None)
            except Exception as exc:  # raised by the reference here
                return (K_ERROR, exc, 0)
        local, in_flight = got
        if sgm and dgm:
            accs: tuple[Access, ...] = (
                self.access(src, sl, False, ins.l2_cache != "bypass", False),
                self.access(dst, dl, True, True, ins.atomic == "add"))
        elif sgm:
            accs = (self.access(src, sl, False, ins.l2_cache != "bypass", False),)
        else:
            accs = (self.access(dst, dl, True, True, ins.atomic == "add"),)
        core_acc.extend(accs)
        return (K_DMA, local, accs, in_flight, False, nbytes)

    def piped(self, ins: Any, kd: _Kind, low: tuple[Any, ...]) -> tuple[Any, ...]:
        """``low`` (a K_DMA tuple of ``ins``) as a copy issued behind another DataCopy on its
        pipe (timing.dma_pipelined): the overlapped local cycles, the latency hidden."""
        key = ("piped", kd.index, id(ins))
        got = self.cost.get(key)
        if got is None:
            got = self.cost[key] = (K_DMA, timing.dma_local_cycles(kd.desc, ins, True), low[2],
                                    low[3], True, low[5])
        return got

    def fix(self, ins: Any, kd: _Kind, core_acc: list[Access]) -> tuple[Any, ...]:
        src, dst = ins.reads[0], ins.writes[0]
        dgm = dst.buffer == "GM"
        w = kd.window
        sl: Any = _layout(src) if src.buffer == "GM" else None
        dl: Any = _layout(dst) if dgm else None
        key = (FixPipe, kd.index, ins.elements, ins.out_dtype, src.buffer, dst.buffer,
               sl and (sl[0] % w, *sl[1:]), dl and (dl[0] % w, *dl[1:]))
        low = self.cost.get(key)
        if low is None:
            if dgm:  # unscaled (idle, busy): the channel time joins them before scaling
                try:
                    low = (timing.fixpipe_cycles(kd.desc, ins, True),
                           timing.fixpipe_cycles(kd.desc, ins, False))
                except Exception as exc:  # raised by the reference here
                    return (K_ERROR, exc, 0)
            else:
                low = self.local(kd, lambda d, idle: timing.fixpipe_cycles(d, ins, idle),
                                 dst.nbytes)
                if low[0] == K_ERROR:
                    return low
            self.cost[key] = low
        if not dgm:
            return low
        acc = self.access(dst, dl, True, True, ins.atomic == "add")
        core_acc.append(acc)
        return (K_FIX, low[0], low[1], (acc,), kd.scale, dst.nbytes)

    def other(self, ins: Any, cls: type, ci: int, kd: _Kind, core_acc: list[Access]
              ) -> tuple[Any, ...]:
        """The less frequent classes: Vector, Cast, FixPipe, Scalar, barriers, cross-core."""
        cost = self.cost
        if cls is Vector or cls is Cast:
            op_class = ins.op_class
            reads: tuple[tuple[str, int], ...] = ()
            if op_class in ("binary", "ternary"):  # the bank-conflict rule reads UB offsets
                reads = tuple((r.buffer, r.offset) for r in ins.reads)
            key: tuple[Any, ...] = (Vector, kd.index, op_class, ins.elements, ins.dtype, reads)
            low: tuple[Any, ...] | None = cost.get(key)
            if low is None:
                low = cost[key] = self.local(kd, lambda d, idle: timing.vector_cycles(
                    d, ins, idle, element_bytes(ins.dtype)))
            return low
        if cls is FixPipe:
            return self.fix(ins, kd, core_acc)
        if cls is Scalar:
            key = (Scalar, kd.index, ins.count)
            low = cost.get(key)
            if low is None:
                low = cost[key] = self.local(kd, lambda d, idle: timing.scalar_cycles(d, ins))
            return low
        if cls is CrossCoreWaitFlag:
            return (K_XWAIT, ins.mode, ins.flag_id, 0)
        if cls is CrossCoreSetFlag:
            if kd.flag_cycles < 0:
                return (K_ERROR, None, 0)
            return (K_XSET, kd.flag_cycles, ins.mode, ins.flag_id, 0)
        if cls is PipeBarrier:
            return (K_BARRIER, 0)
        return (K_ERROR, TypeError(f"no cost for {cls.__name__}"), 0)


def lower(kernel: Kernel, soc: SocDescriptor, mem: MemorySystem) -> Lowered | None:
    """Lower every core's stream (pipes in the order the reference engine creates them); None
    when a static check of the reference engine fails.

    A lowered tuple depends on the instruction and its core's kind only (flag slots and
    cross-core counters are offset by the core in the event loop), so each instruction object is
    checked and lowered once per core kind: programs share immutable instruction objects
    (``ops.cube_templates.Interner``, ``npusim.engine.program.InstrPool``). A pipe's lowered
    stream depends only on its queue's instruction objects (a DataCopy's overlap on the previous
    one of the queue, a vector's auto-sync barrier on the V queue), so a queue another core of
    the kind already has - the cube and L1 -> L0 pipes of the cores of a matmul grid - reuses
    that core's stream: each core costs one pass at C speed over its instructions plus the
    per-instruction work of the queues it does not share (its GM loads and stores)."""
    lw = _Lowerer(kernel, soc, mem)
    sync = soc.sync
    event_ids = sync.event_ids
    split = soc.organisation == "split"
    xids = sync.cross_core_flag_ids
    ncores = len(kernel.cores)
    keys: list[tuple[int, str]] = []
    streams: list[list[tuple[Any, ...]]] = []
    paths: dict[tuple[str, str], int] = {}
    flag_keys: dict[tuple[str, str, int], int] = {}  # (src, dst, event id) -> index x cores
    cost = lw.cost
    region_ok = lw.region_ok
    dma = lw.dma
    # per core kind: id(instruction) -> (pipe, lowered, None or (accesses, path, bytes))
    seen_by_kind: dict[int, dict[int, tuple[Any, ...]]] = {}
    # (core kind, the queue's instruction ids) -> (lowered stream, per-path bytes of the queue)
    queues: dict[tuple[int, bytes], tuple[list[tuple[Any, ...]], dict[Any, int]]] = {}
    core_kinds: list[int] = []

    def lower_queue(q: list[Any], pipe: str, core: CoreProgram, kd: _Kind, seen: dict[int, Any]
                    ) -> tuple[list[tuple[Any, ...]], dict[Any, int]] | None:
        """One pipe's queue lowered (None: a static check fails), with its per-path bytes."""
        pipes, ki, flag_cycles, bufs = kd.pipes, kd.index, kd.flag_cycles, kd.buffers
        out: list[tuple[Any, ...]] = []
        put = out.append
        qpaths: dict[Any, int] = {}
        acc: list[Access] = []  # scratch: the accesses each GM instruction adds
        # V-queue positions that pay the head after auto-sync's PIPE_V barrier (timing, timing's
        # hook: such an instruction is lowered with its idle cost whatever the pipe's state)
        raw = timing.vector_raw_barriers(q) if pipe == "V" else frozenset()
        prv: Any = None  # the previous instruction of the queue
        ins: Any  # dispatched on its class below
        for pos, ins in enumerate(q):
            idle_only = bool(raw) and pos in raw
            hit = seen.get(id(ins))
            if hit is not None:  # checked and costed for this kind
                low = hit[1]
                if idle_only and low[0] == K_LOCAL:
                    low = (K_LOCAL, low[1], low[1], low[3])
                elif low[0] == K_DMA and timing.dma_pipelined(kd.desc, ins, prv):
                    low = lw.piped(ins, kd, low)
                put(low)
                gm = hit[2]
                if gm is not None and gm[2]:
                    qpaths[gm[1]] = qpaths.get(gm[1], 0) + gm[2]
                prv = ins
                continue
            for r in ins.reads:
                lim = bufs.get(r.buffer)
                if lim is not None and r.row_stride_bytes is None:  # contiguous, on the core
                    o = r.offset
                    if o < 0 or o + r.nbytes > lim[0] or o % lim[1]:
                        return None
                elif not region_ok(r, kd):
                    return None
            for r in ins.writes:
                lim = bufs.get(r.buffer)
                if lim is not None and r.row_stride_bytes is None:
                    o = r.offset
                    if o < 0 or o + r.nbytes > lim[0] or o % lim[1]:
                        return None
                elif not region_ok(r, kd):
                    return None
            cls = type(ins)
            gm = None
            if cls is SetFlag or cls is WaitFlag:
                fk = (ins.src_pipe, ins.dst_pipe, ins.event_id)
                if not (0 <= fk[2] < event_ids and fk[0] in pipes and fk[1] in pipes):
                    return None
                base = flag_keys.get(fk)
                if base is None:
                    base = flag_keys[fk] = len(flag_keys) * ncores
                if cls is WaitFlag:
                    low = (K_WAIT, base, 0)
                elif flag_cycles < 0:
                    low = (K_ERROR, None, 0)
                else:
                    low = (K_SET, flag_cycles, base, 0)
            elif cls is DataCopy:
                n_acc = len(acc)
                low = dma(ins, kd, acc, qpaths)
                if low[0] == K_ERROR:
                    put(low)
                    prv = ins
                    continue
                src, dst = ins.reads[0], ins.writes[0]
                gm = (tuple(acc[n_acc:]), (src.buffer, dst.buffer), max(src.nbytes, dst.nbytes))
            elif cls is Mmad:
                key = (Mmad, ki, ins.m, ins.k, ins.n, ins.dtype)
                low = cost.get(key)
                if low is None:
                    low = cost[key] = lw.local(kd, partial(_mmad_cost, ins))
            else:
                if cls is CrossCoreSetFlag or cls is CrossCoreWaitFlag:
                    if not (split and 0 <= ins.flag_id < xids and ins.mode in (0, 1, 2)):
                        return None
                    if ins.mode == 1 and core.kind != "aiv":
                        return None
                n_acc = len(acc)
                low = lw.other(ins, cls, 0, kd, acc)
                if low[0] == K_ERROR:
                    put(low)
                    prv = ins
                    continue
                if len(acc) > n_acc:
                    gm = (tuple(acc[n_acc:]), None, 0)
            seen[id(ins)] = (pipe, low, gm)
            if idle_only and low[0] == K_LOCAL:
                low = (K_LOCAL, low[1], low[1], low[3])
            elif low[0] == K_DMA and timing.dma_pipelined(kd.desc, ins, prv):
                low = lw.piped(ins, kd, low)
            put(low)
            prv = ins
        return out, qpaths

    for ci, core in enumerate(kernel.cores):
        kd = lw.kind(core.kind)
        core_kinds.append(kd.index)
        seen = seen_by_kind.setdefault(kd.index, {})
        instrs = core.instrs
        pipe_of = list(map(_PIPE, instrs))
        order = list(dict.fromkeys(pipe_of))  # pipes in first-use order (process creation)
        if len(order) > 1:  # which pipe each instruction is on, and the ids, as arrays
            code = {pipe: c for c, pipe in enumerate(order)}
            codes = np.frombuffer(bytes(map(code.__getitem__, pipe_of)), dtype=np.uint8)
        ids = np.fromiter(map(id, instrs), dtype=np.uint64, count=len(instrs))
        for c, pipe in enumerate(order):
            if pipe not in kd.pipes:
                return None
            sel = None if len(order) == 1 else codes == c
            qk = (kd.index, (ids if sel is None else ids[sel]).tobytes())
            got = queues.get(qk)
            if got is None:
                q = instrs if sel is None else list(compress(instrs, sel.tolist()))
                got = lower_queue(q, pipe, core, kd, seen)
                if got is None:
                    return None
                queues[qk] = got
            keys.append((ci, pipe))
            streams.append(got[0])
            for pk, nb in got[1].items():
                paths[pk] = paths.get(pk, 0) + nb
    return Lowered(kernel, keys, streams, len(flag_keys) * ncores,
                   {f"{s}->{d}": v for (s, d), v in paths.items()},
                   [seen_by_kind[k] for k in range(len(seen_by_kind))], core_kinds)
