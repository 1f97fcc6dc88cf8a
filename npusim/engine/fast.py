"""The fast engine (issue 14 item 2): the reference engine's runs, same cycles and bits, faster.

``npusim.engine.sim`` (the reference) runs every pipe as a simpy process. This engine runs the
same program lowered to compact tuples (:mod:`npusim.engine.fast_lower`) in a hand-rolled heapq
event loop that resumes pipes in exactly simpy's order, so every shared-channel reservation
(HBM, L2: :mod:`npusim.engine.memory`) and L2 access happens in the same order and cycles,
records and flows are identical. How simpy orders events, and how this loop reproduces it:

- simpy pops events by (time, priority, insertion id). Every event here is NORMAL except the
  process start (URGENT, all at time 0, in process creation order); every timeout is >= 1 cycle,
  so the starts run first, in creation order. The loop starts the pipes in that order too.
- a pipe's resumption after a timeout, a flag set or a cross-core release is one heap entry keyed
  by (time, a counter incremented where simpy schedules that event); events simpy schedules that
  resume nobody (a flag set before its wait, a process exit) are left out, which changes no
  relative order. Push-then-pop is ``heappushpop``: the same pop, without the heap round trip
  when the pushed entry is the earliest.
- a satisfied wait continues synchronously, as a simpy process does on a triggered flag.

Where it applies: every run (:func:`use_fast`). Functional runs execute each instruction's
semantics as it completes (through ``npusim.isa.compiled.execute_cached``: the table's bits, with
each instruction's operand checks and dispatch done once) and race-checked runs check it as it
starts and carry happens-before payloads on flags, exactly where the reference's pipe processes
do, in the same event order, so values (atomic-add order included) and verdicts are the
reference's (:class:`_Hooks`). A program the reference engine would reject (static checks, a
flag set twice, a counter overflow, a deadlock, a cost function or semantics error, a race) is
handed to the reference engine, so the error raised is the reference's, word for word.
``per_path_bytes`` is summed in program order (the reference: first-execution order; same
totals, same ``as_dict``).

Selection: ``engine=`` of ``run_kernel``, else :func:`default_engine` in force, else
``$NPUSIM_ENGINE`` (the CLI's ``npusim --engine reference ...``), else "fast"; "reference"
always runs the simpy engine.
"""

from __future__ import annotations

import gc
import math
import os
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from heapq import heappop, heappush, heappushpop
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from npusim.engine.fast_lower import (
    K_BARRIER,
    K_DMA,
    K_FIX,
    K_LOCAL,
    K_SET,
    K_WAIT,
    K_XSET,
    K_XWAIT,
    Access,
    Lowered,
    Pages,
    lower,
)
from npusim.engine.memory import L2Cache, MemorySystem
from npusim.engine.program import Kernel
from npusim.engine.sim import Engine, FlowRecord, InstrRecord, RunResult
from npusim.engine.timing import in_flight_cycles

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

ENGINES = ("fast", "reference", "jit")  # jit: the fast engine, compiled loop (jit_loop)
_ENGINE: ContextVar[str | None] = ContextVar("npusim_engine", default=None)


def selected_engine(engine: str | None = None) -> str:
    """The engine a run uses: ``engine``, else the :func:`default_engine` in force, else
    ``$NPUSIM_ENGINE``, else "fast"."""
    name = engine or _ENGINE.get() or os.environ.get("NPUSIM_ENGINE") or "fast"
    if name not in ENGINES:
        raise ValueError(f"engine={name!r}: must be one of {', '.join(ENGINES)}")
    return name


@contextmanager
def default_engine(name: str) -> Iterator[None]:
    """Within the block, runs without ``engine=`` use ``name`` (one of :data:`ENGINES`)."""
    selected_engine(name)
    token = _ENGINE.set(name)
    try:
        yield
    finally:
        _ENGINE.reset(token)


@contextmanager
def engine_environment(name: str | None) -> Iterator[None]:
    """Within the block, ``$NPUSIM_ENGINE`` is ``name`` (None: unchanged), so that worker
    processes started inside it use that engine too (the CLI's ``--engine``)."""
    if name is None:
        yield
        return
    selected_engine(name)
    saved = os.environ.get("NPUSIM_ENGINE")
    os.environ["NPUSIM_ENGINE"] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("NPUSIM_ENGINE", None)
        else:
            os.environ["NPUSIM_ENGINE"] = saved


def use_fast(engine: str | None, *, functional: bool, check_races: bool) -> bool:
    """True when a run goes to the fast engine: whenever it is selected (timing-only,
    functional and race-checked runs alike)."""
    return selected_engine(engine) != "reference"


class _Fallback(Exception):
    """The program fails in the reference engine; let it raise the exact error."""


class _Counter:
    """A cross-core flag counter (the reference's _Counter) with the release test kept O(1):
    ``nz`` = how many of the partners ``needed`` have an unmatched set."""

    __slots__ = ("count", "n", "needed", "needed_set", "nz", "payloads", "sets", "waiters")

    def __init__(self, needed: list[int]) -> None:
        self.count = 0
        self.needed = needed
        self.needed_set = frozenset(needed)
        self.n = len(needed)
        self.nz = 0
        self.sets: dict[int, int] = {}
        # (setter core, setter pipe, set at, happens-before payload or None)
        self.payloads: list[tuple[int, str, int, np.ndarray | None]] = []
        self.waiters: list[int] = []


def _partners(kernel: Kernel) -> Any:
    """``targets(ci, mode)`` of the reference engine, memoised (hardware.md 2.3 partner rule)."""
    cores = kernel.cores
    memo: dict[tuple[int, int], list[int]] = {}
    by_kind: dict[str, list[int]] = {}
    for j, c in enumerate(cores):
        by_kind.setdefault(c.kind, []).append(j)

    def targets(ci: int, mode: int) -> list[int]:
        key = (ci, mode)
        got = memo.get(key)
        if got is None:
            me = cores[ci]
            if mode == 0:
                got = by_kind.get(me.kind, [])
            elif mode == 1:
                got = [j for j in by_kind.get("aiv", []) if cores[j].core_id == me.core_id ^ 1]
            elif me.kind == "aic":
                got = [j for j in by_kind.get("aiv", []) if cores[j].core_id // 2 == me.core_id]
            else:
                got = [j for j in by_kind.get("aic", []) if cores[j].core_id == me.core_id // 2]
            memo[key] = got
        return got

    return targets


def l2_accessor(l2: L2Cache) -> Any:
    """``L2Cache.access`` over precomputed pages (:data:`~npusim.engine.fast_lower.Pages`):
    the same hits, misses, write-backs and LRU order, with the page list and line counts
    computed once per access shape instead of once per access, and reads whose lines are all
    present, the common case, taking the short path."""
    read, write = l2_read_write(l2)

    def access(pages: Pages, is_write: bool, allocate: bool) -> tuple[int, int, int]:
        got: tuple[int, int, int] = write(pages) if is_write else read(pages, allocate)
        return got

    return access


def l2_read_write(l2: L2Cache) -> tuple[Any, Any]:
    """(read(pages, allocate), write(pages)): ``L2Cache.access`` split by direction."""
    od = l2.pages
    cap = l2.capacity_pages
    lb = l2.line_bytes
    popitem = od.popitem
    move = od.move_to_end
    get = od.get

    def read(pages: Pages, allocate: bool) -> tuple[int, int, int]:
        hit = miss = writeback = 0
        first, pattern = pages
        for rel, mask, nbytes, bits in pattern:
            page = first + rel
            entry = get(page)
            if entry is not None:
                move(page)
                e0 = entry[0]
                if e0 & mask == mask:  # every line present
                    hit += nbytes
                    continue
                present = (e0 & mask).bit_count()
                hit += nbytes * present // bits
                miss += (bits - present) * lb
                if allocate:
                    entry[0] = e0 | mask
            elif allocate:
                while len(od) >= cap:
                    writeback += popitem(False)[1][1].bit_count() * lb
                od[page] = [mask, 0]
                miss += bits * lb
            else:
                miss += bits * lb
        return hit, miss, writeback

    def write(pages: Pages) -> tuple[int, int, int]:
        writeback = 0
        first, pattern = pages
        for rel, mask, _nbytes, _bits in pattern:
            page = first + rel
            entry = get(page)
            if entry is None:
                while len(od) >= cap:
                    writeback += popitem(False)[1][1].bit_count() * lb
                od[page] = [mask, mask]
            else:
                move(page)
                entry[0] |= mask
                entry[1] |= mask
        return 0, 0, writeback

    return read, write


def l2_read_write_no_evict(l2: L2Cache) -> tuple[Any, Any]:
    """:func:`l2_read_write` for a run in which no page can be evicted (every page it can touch
    fits in the L2 at once, :func:`cannot_evict`): the same hits and misses, write-backs 0 (they
    happen only on evictions), with a page's state its present-line mask alone - the LRU order
    and the dirty lines matter only to evictions, and the run's L2 is not read after it. Starts
    from ``l2``'s present lines and leaves ``l2`` unchanged."""
    present: dict[int, int] = {page: e[0] for page, e in l2.pages.items()}
    get = present.get
    lb = l2.line_bytes

    def read(pages: Pages, allocate: bool) -> tuple[int, int, int]:
        hit = miss = 0
        first, pattern = pages
        for rel, mask, nbytes, bits in pattern:
            page = first + rel
            e0 = get(page)
            if e0 is None:
                if allocate:
                    present[page] = mask
                miss += bits * lb
            elif e0 & mask == mask:  # every line present
                hit += nbytes
            else:
                n = (e0 & mask).bit_count()
                hit += nbytes * n // bits
                miss += (bits - n) * lb
                if allocate:
                    present[page] = e0 | mask
        return hit, miss, 0

    def write(pages: Pages) -> tuple[int, int, int]:
        first, pattern = pages
        for rel, mask, _nbytes, _bits in pattern:
            page = first + rel
            present[page] = get(page, 0) | mask
        return 0, 0, 0

    return read, write


def cannot_evict(kernel: Kernel, mem: MemorySystem) -> bool:
    """Whether every L2 page the kernel's GM tensors span fits in the L2 at once: a run's
    accesses stay inside its tensors (the static region checks) and its L2 starts with pages of
    those tensors only, so then no insertion ever finds the L2 full."""
    pb = mem.l2.page_bytes
    span = 0
    for name, t in kernel.gm.items():
        if t.nbytes > 0:
            b = mem.base[name]
            span += (b + t.nbytes - 1) // pb - b // pb + 1
    return span <= mem.l2.capacity_pages


def _replay(l2: L2Cache, streams: list[list[Access]]) -> None:
    """MemorySystem.replay_launch over lowered accesses: program order per core, round-robin."""
    access = l2_accessor(l2)
    for step in range(max((len(a) for a in streams), default=0)):
        for acc in streams:
            if step < len(acc):
                pages, write, alloc, atomic, _ = acc[step]
                if atomic:
                    access(pages, False, True)
                    access(pages, True, True)
                else:
                    access(pages, write, alloc)


class Records:
    """The event loop's records, 20 bytes each: record ``r`` is pipe ``pipe[r]``'s next
    instruction (every instruction of a pipe is recorded once, in its order), from ``start[r]`` to
    ``end[r]``; ``hbm`` holds the HBM bytes of the records that moved any; ``busy`` per pipe the
    summed durations of its timed records (DataCopy, FixPipe, local work: not flags, waits or
    barriers), pipes in the order of their first such record, as :meth:`RunResult.pipe_busy`."""

    __slots__ = ("busy", "end", "hbm", "pipe", "start")

    def __init__(self, pipe: array[int], start: array[int], end: array[int], hbm: dict[int, int],
                 busy: dict[int, int]) -> None:
        self.pipe, self.start, self.end, self.hbm = pipe, start, end, hbm
        self.busy = busy

    def __len__(self) -> int:
        return len(self.pipe)

    def rows(self, hbm: bool = True) -> Iterator[tuple[int, ...]]:
        """(pipe, index, start, end[, hbm bytes]) per record, in order."""
        nxt: dict[int, int] = {}
        get = self.hbm.get
        for p, s, e in zip(self.pipe, self.start, self.end, strict=True):
            i = nxt.get(p, 0)
            nxt[p] = i + 1
            yield (p, i, s, e, get(p << 32 | i, 0)) if hbm else (p, i, s, e)


class FastRunResult(RunResult):
    """A :class:`~npusim.engine.sim.RunResult` whose ``records`` and ``flows`` are built from the
    event loop's tuples when first read: building half a million records costs more than
    simulating them, and most callers read only cycles, traffic and :meth:`pipe_busy`, which the
    tuples give directly. Once read they are the reference engine's lists, element for element."""

    _raw: tuple[Lowered, Records, list[tuple[Any, ...]]] | None = None

    @classmethod
    def build(cls, kernel: Kernel, soc: SocDescriptor, cycles: int, mem: MemorySystem,
              l2_start: str, low: Lowered, recs: Records, flows: list[tuple[Any, ...]],
              outputs: dict[str, np.ndarray] | None = None) -> FastRunResult:
        res = cls(kernel, soc, cycles, None, None,  # type: ignore[arg-type]  # built when read
                  mem.stats, outputs is not None, outputs or {}, mem.hbm.busy_cycles, l2_start)
        res._raw = (low, recs, flows)
        return res

    @property
    def records(self) -> list[InstrRecord]:
        got: list[InstrRecord] | None = self.__dict__.get("_records")
        if got is None and self._raw is not None:
            low, recs, _ = self._raw
            cores = [k[0] for k in low.pipe_keys]
            pipes = [k[1] for k in low.pipe_keys]
            instrs, streams = low.instrs(), low.streams
            got = self.__dict__["_records"] = [
                InstrRecord(cores[p], pipes[p], (ins := instrs[p][i]).name, ins.kind, s, e,
                            streams[p][i][-1], h) for p, i, s, e, h in recs.rows()]
        return cast("list[InstrRecord]", got)  # None only once released (setter)

    @records.setter
    def records(self, value: list[InstrRecord] | None) -> None:
        self.__dict__["_records"] = value

    @property
    def flows(self) -> list[FlowRecord]:
        got: list[FlowRecord] | None = self.__dict__.get("_flows")
        if got is None and self._raw is not None:
            low, _, raw = self._raw
            cores = [k[0] for k in low.pipe_keys]
            pipes = [k[1] for k in low.pipe_keys]
            instrs = low.instrs()
            got = []
            for f in raw:
                p = f[0]
                ins = instrs[p][f[1]]
                if len(f) == 4:  # intra-core: set on the waiting core
                    got.append(FlowRecord(ins.name, cores[p], ins.src_pipe, f[2], cores[p],
                                          pipes[p], f[3]))
                else:
                    got.append(FlowRecord(ins.name, f[2], f[3], f[4], cores[p], pipes[p], f[5]))
            self.__dict__["_flows"] = got
        return cast("list[FlowRecord]", got)  # None only once released (setter)

    @flows.setter
    def flows(self, value: list[FlowRecord] | None) -> None:
        self.__dict__["_flows"] = value

    def pipe_busy(self) -> dict[tuple[int, str], int]:
        if self.__dict__.get("_records") is not None or self._raw is None:
            return super().pipe_busy()
        low, recs, _ = self._raw
        return {low.pipe_keys[p]: b for p, b in recs.busy.items()}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_records"], state["_flows"] = self.records, self.flows
        state.pop("_raw", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _Hooks:
    """What a functional or race-checked run adds to the event loop, at the points where the
    reference engine's pipe processes do it: the values (``execute`` of each completed
    instruction on ``ctx``) and the happens-before check (each instruction checked as it starts,
    marked completed as it ends; payloads carried by flag sets to their waits)."""

    __slots__ = ("ctx", "hz", "objs", "written")

    def __init__(self, kernel: Kernel, soc: SocDescriptor, low: Lowered, functional: bool,
                 check_races: bool) -> None:
        from npusim.engine.buffers import FunctionalContext
        from npusim.engine.hazards_slots import SlotHazardTracker
        from npusim.engine.sim import written_gm

        cores = kernel.cores
        self.objs = low.instrs()
        self.ctx = (FunctionalContext(kernel, [soc.core(c.kind) for c in cores])
                    if functional else None)
        self.written = written_gm(kernel) if check_races else set()
        self.hz: SlotHazardTracker | None = None
        if check_races:
            names = [f"{cores[ci].name}/{pipe}" for ci, pipe in low.pipe_keys]
            if len({c.name for c in cores}) < len(cores):  # spaces are named by core
                raise ValueError("core names repeat: the reference checks their races")
            self.hz = SlotHazardTracker(names, kernel, low.pipe_keys, self.written)


def run_fast(kernel: Kernel, soc: SocDescriptor, *, functional: bool = False,
             check_races: bool = False, l2_page_bytes: int = 32768,
             l2_start: str = "cold", engine: str = "fast") -> RunResult:
    """A run of ``kernel`` on ``soc``: the reference engine's
    :class:`~npusim.engine.sim.RunResult`, computed by the event loop of this module (records
    and flows built when first read, see :class:`FastRunResult`). ``functional``: every
    completed instruction executes its semantics on the buffers, in the reference's event order
    (same bits); ``check_races``: the reference's happens-before check; a program that fails
    either way is handed to the reference engine, which raises its error. ``engine="jit"``:
    the compiled loop where it applies (:mod:`npusim.engine.jit_loop`; needs numba)."""
    from npusim.engine import sim

    loop = _event_loop
    if engine == "jit":
        from npusim.engine.jit_loop import event_loop as loop

    def reference() -> RunResult:
        return sim.run_kernel(kernel, soc, functional=functional, check_races=check_races,
                              l2_page_bytes=l2_page_bytes, l2_start=l2_start,
                              engine="reference")

    gc_was_on = gc.isenabled()
    gc.disable()  # the run allocates no cycles; collections would only rescan the kernel
    try:
        mem = MemorySystem(soc, kernel.gm, page_bytes=l2_page_bytes)
        low = lower(kernel, soc, mem)
        if low is None:
            return reference()  # a static check fails: the reference raises its error
        if l2_start == "repeat":
            _replay(mem.l2, low.core_accesses())
        launch = Engine._launch_offsets(soc, kernel)
        hooks = None
        if functional or check_races:
            try:
                hooks = _Hooks(kernel, soc, low, functional, check_races)
            except Exception:  # e.g. data of the wrong size: the reference raises it
                return reference()
        try:
            cycles, recs, flows = loop(kernel, soc, mem, low, launch, hooks)
        except _Fallback:
            return reference()
        mem.stats.per_path_bytes.update(low.per_path_bytes)
        outputs = hooks.ctx.outputs() if hooks is not None and hooks.ctx is not None else None
        if outputs is None and functional:
            outputs = {}
        return FastRunResult.build(kernel, soc, int(cycles), mem, l2_start, low, recs, flows,
                                   outputs)
    finally:
        if gc_was_on:
            gc.enable()


def _event_loop(kernel: Kernel, soc: SocDescriptor, mem: MemorySystem, low: Lowered,
                launch: list[int],
                hooks: _Hooks | None = None) -> tuple[int, Records, list[tuple[Any, ...]]]:
    """Run the lowered streams; returns (cycles, :class:`Records`, flows), flows as tuples
    (pipe, index, set at, waited at) or (pipe, index, setter core, setter pipe, set at,
    released at). ``hooks``: values and race checks (:class:`_Hooks`), else timing only.

    A heap entry is one int, (time, order, pipe) packed into bit fields, so that the heap
    compares machine-size ints, not tuples; ``order`` is the simpy insertion counter."""
    npipes = len(low.pipe_keys)
    pb = max(1, npipes.bit_length())
    tb = pb + 40
    pmask = (1 << pb) - 1
    streams = low.streams
    lens = [len(s) for s in streams]
    core_of = [k[0] for k in low.pipe_keys]
    pipe_name = [k[1] for k in low.pipe_keys]
    idx = [0] * npipes
    state = [0] * npipes  # on resume: 0 start, 1 done, 2 flag released, 3 cross released
    started = [0] * npipes
    last_end = [-1] * npipes
    hbm_of = [0] * npipes
    nslots = low.flag_slots
    flag_set = [False] * nslots
    flag_at = [0] * nslots
    flag_waiters: list[list[int]] = [[] for _ in range(nslots)]
    counters: dict[tuple[int, int, int], _Counter] = {}
    targets = _partners(kernel)
    limit = soc.sync.cross_core_counter_max
    l2read, l2write = (l2_read_write_no_evict if cannot_evict(kernel, mem) else l2_read_write)(
        mem.l2)
    hbm_reserve = mem.hbm.reserve
    l2_reserve = mem.l2_channel.reserve
    hit_lat, miss_lat = mem.hit_latency, mem.miss_latency
    gr = gw = l2hit = l2miss = hr = hw = 0
    rec_pipe = array("I")
    rec_start = array("q")
    rec_end = array("q")
    rec_hbm: dict[int, int] = {}  # (pipe << 32 | index) -> HBM bytes, where not 0
    busy = [0] * npipes  # per pipe: summed durations of its timed records
    busy_first: list[int] = []  # pipes in the order of their first timed record
    busy_order = busy_first.append
    rp, rs, rend = rec_pipe.append, rec_start.append, rec_end.append
    flows: list[tuple[Any, ...]] = []
    flow = flows.append
    ceil = math.ceil
    heap: list[int] = []
    seq = 1 << pb  # the order field, pre-shifted
    one = 1 << pb
    init = 0  # pipes started so far (simpy's Initialize events, in creation order)
    nxt = -1  # an entry to push before the next pop
    ctx = hz = None
    if hooks is not None:
        from npusim.engine.sim import _is_atomic
        from npusim.isa.compiled import execute_cached as execute

        ctx, hz, objs = hooks.ctx, hooks.hz, hooks.objs
        flag_pay: list[Any] = [None] * nslots
        done = hz.done if hz is not None else []  # the tracker's completions (its completed)
    while True:
        if nxt >= 0:
            key = heappushpop(heap, nxt)
            nxt = -1
            p = key & pmask
            now = key >> tb
        elif init < npipes:
            p = init
            init += 1
            now = 0
            lc = launch[core_of[p]]
            if lc:
                heappush(heap, (lc << tb) | seq | p)
                seq += one
                continue
        elif heap:
            key = heappop(heap)
            p = key & pmask
            now = key >> tb
        else:
            break
        i = idx[p]
        stream = streams[p]
        st = state[p]
        if st == 1:
            ins = stream[i]
            k0 = ins[0]
            if hooks is not None and k0 != K_BARRIER:  # as the reference: values, then done
                o = objs[p][i]
                if ctx is not None:
                    ctx.core = core_of[p]
                    ctx.accumulate = _is_atomic(o)
                    try:
                        execute(o, ctx)
                    except Exception:
                        raise _Fallback from None  # the reference raises it
                    ctx.accumulate = False
                if hz is not None:
                    done[p] = i
            rp(p)
            rs(started[p])
            rend(now)
            if k0 <= K_FIX:  # K_LOCAL, K_DMA, K_FIX: timed work (pipe_busy)
                b = busy[p]
                if not b:  # every timed record lasts >= 1 cycle
                    busy_order(p)
                busy[p] = b + now - started[p]
                if k0 == K_DMA and hbm_of[p]:
                    rec_hbm[p << 32 | i] = hbm_of[p]
            if k0 == K_SET:
                last_end[p] = now
                slot = ins[2] + core_of[p]
                if flag_set[slot]:
                    raise _Fallback  # set twice without a wait
                flag_set[slot] = True
                flag_at[slot] = now
                if hz is not None:
                    flag_pay[slot] = hz.payload(p)
                ws = flag_waiters[slot]
                if ws:
                    for w in ws:
                        heappush(heap, (now << tb) | seq | w)
                        seq += one
                    flag_waiters[slot] = []
            elif k0 == K_XSET:
                last_end[p] = now
                ci = core_of[p]
                mode, fid = ins[2], ins[3]
                tgt = targets(ci, mode)
                if not tgt:
                    raise _Fallback  # no partner core
                pname = pipe_name[p]
                pay = hz.payload(p) if hz is not None else None
                for tj in tgt:
                    ck = (tj, mode, fid)
                    ctr = counters.get(ck)
                    if ctr is None:
                        ctr = counters[ck] = _Counter(targets(tj, mode))
                    sets = ctr.sets
                    s = sets.get(ci, 0)
                    sets[ci] = s + 1
                    if not s and ci in ctr.needed_set:
                        ctr.nz += 1
                    ctr.payloads.append((ci, pname, now, pay))
                    if ctr.nz == ctr.n:
                        for j in ctr.needed:
                            v = sets[j] - 1
                            sets[j] = v
                            if not v:
                                ctr.nz -= 1
                        ctr.count += 1
                        if ctr.count > limit:
                            raise _Fallback  # more sets than waits
                        ws = ctr.waiters
                        while ws and ctr.count > 0:
                            w = ws.pop(0)
                            ctr.count -= 1
                            heappush(heap, (now << tb) | seq | w)
                            seq += one
            elif k0 != K_BARRIER:
                last_end[p] = now
            i += 1
        elif st == 2:
            slot = stream[i][1] + core_of[p]
            flag_set[slot] = False
            if hz is not None:
                hz.merge(p, flag_pay[slot])
            flow((p, i, flag_at[slot], now))
            flag_waiters[slot] = []
            rp(p)
            rs(started[p])
            rend(now)
            i += 1
        elif st == 3:
            ins = stream[i]
            ctr = counters[(core_of[p], ins[1], ins[2])]
            for src, spipe, ts, pay in ctr.payloads:
                if pay is not None and hz is not None:
                    hz.merge(p, pay)
                flow((p, i, src, spipe, ts, now))
            ctr.payloads.clear()
            rp(p)
            rs(started[p])
            rend(now)
            i += 1
        n = lens[p]
        t = -1
        while i < n:
            ins = stream[i]
            k0 = ins[0]
            if k0 == K_WAIT:
                slot = ins[1] + core_of[p]
                if flag_set[slot]:
                    flag_set[slot] = False
                    if hz is not None:
                        hz.merge(p, flag_pay[slot])
                    flow((p, i, flag_at[slot], now))
                    flag_waiters[slot] = []
                    rp(p)
                    rs(now)
                    rend(now)
                    i += 1
                    continue
                flag_waiters[slot].append(p)
                st = 2
                break
            st = 1
            if hz is not None and k0 != K_XWAIT and k0 != K_BARRIER:  # checked as it starts
                try:
                    hz.check(core_of[p], p, i, objs[p][i])
                except Exception:
                    raise _Fallback from None  # the reference raises the RaceError
            if k0 == K_SET:
                t = now + ins[1]
                break
            if k0 == K_LOCAL:
                t = now + (ins[1] if now > last_end[p] else ins[2])
                break
            if k0 == K_DMA or k0 == K_FIX:  # noqa: SIM109 - two int compares are faster
                end = float(now + ins[1]) if k0 == K_DMA else 0.0
                h = 0
                fix_end = 0
                fnow = float(now)
                for pages, write, alloc, atomic, nb in (ins[2] if k0 == K_DMA else ins[3]):
                    if not write:
                        hit, miss, wb = l2read(pages, alloc)
                        gr += nb
                        l2hit += hit
                    elif atomic:  # read-modify-write: absent lines fetched, then dirtied
                        _, miss, wb = l2read(pages, True)
                        wb += l2write(pages)[2]
                        gw += nb
                    else:
                        _, miss, wb = l2write(pages)
                        gw += nb
                    e = fnow
                    if miss or wb:
                        l2miss += miss
                        hr += miss
                        hw += wb
                        e = hbm_reserve(now, miss + wb, 1)
                        if e < fnow:
                            e = fnow
                    e2 = l2_reserve(now, nb * 2 if atomic else nb)
                    if e2 > e:
                        e = e2
                    if k0 == K_DMA:
                        if not ins[4]:  # a pipelined copy's latency hides behind the last one
                            e += hit_lat + miss_lat if miss else hit_lat
                        if e > end:
                            end = e
                        if miss and not write and ins[3] is not None:  # bytes in flight
                            ifl = ins[3]
                            e = fnow + in_flight_cycles(ifl[0], nb, miss, miss_lat, ifl[1],
                                                        ins[4])
                            if e > end:
                                end = e
                        h += miss + wb
                    else:
                        c = ceil(e - now) + (hit_lat + miss_lat if miss else hit_lat)
                        if c > fix_end:
                            fix_end = c
                if k0 == K_DMA:
                    d = ceil(end - now - 1e-9)
                    t = now + (d if d > 1 else 1)
                    hbm_of[p] = h
                else:
                    cyc = ins[1] if now > last_end[p] else ins[2]
                    if fix_end > cyc:
                        cyc = fix_end
                    d = ceil(cyc * ins[4])
                    t = now + (d if d > 1 else 1)
                break
            if k0 == K_XWAIT:
                ck = (core_of[p], ins[1], ins[2])
                ctr = counters.get(ck)
                if ctr is None:
                    ctr = counters[ck] = _Counter(targets(ck[0], ck[1]))
                if ctr.count > 0:
                    ctr.count -= 1
                    for src, spipe, ts, pay in ctr.payloads:
                        if pay is not None and hz is not None:
                            hz.merge(p, pay)
                        flow((p, i, src, spipe, ts, now))
                    ctr.payloads.clear()
                    rp(p)
                    rs(now)
                    rend(now)
                    i += 1
                    continue
                ctr.waiters.append(p)
                st = 3
                break
            if k0 == K_XSET:
                t = now + ins[1]
                break
            if k0 == K_BARRIER:
                t = now + 1
                break
            raise _Fallback  # K_ERROR: the reference raises this instruction's error
        idx[p] = i
        state[p] = st
        started[p] = now
        if t >= 0:
            k = (t << tb) | seq | p
            seq += one
            if init < npipes:
                heappush(heap, k)
            else:
                nxt = k
    if any(idx[p] < lens[p] for p in range(npipes)):
        raise _Fallback  # deadlock: the reference names the stuck waits
    st_ = mem.stats
    st_.gm_read_bytes += gr
    st_.gm_write_bytes += gw
    st_.l2_hit_bytes += l2hit
    st_.l2_miss_bytes += l2miss
    st_.hbm_read_bytes += hr
    st_.hbm_write_bytes += hw
    # records are appended in time order, so the last one ends last (the reference's max end)
    return (rec_end[-1] if rec_end else 0), Records(
        rec_pipe, rec_start, rec_end, rec_hbm, {p: busy[p] for p in busy_first}), flows
