"""The event engine: every pipe of every core is a simpy process executing its queue in order.

Pipes overlap; SetFlag/WaitFlag, PipeBarrier and cross-core flags follow hardware.md 2.3. GM
traffic goes through the chip's shared memory system. In functional mode each instruction's value
semantics runs on simulated buffers when it completes; timing is identical in both modes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from npusim.engine import timing
from npusim.engine.buffers import FunctionalContext
from npusim.engine.errors import (
    BufferOverflowError,
    DeadlockError,
    MisalignedError,
    ProgramError,
    SyncError,
)
from npusim.engine.hazards import HazardTracker
from npusim.engine.memory import L2Cache, MemorySystem, TrafficStats, gm_accesses
from npusim.engine.program import Kernel
from npusim.isa.instructions import (
    Cast,
    CrossCoreSetFlag,
    CrossCoreWaitFlag,
    DataCopy,
    FixPipe,
    Instruction,
    Mmad,
    PipeBarrier,
    Scalar,
    SetFlag,
    Vector,
    WaitFlag,
)
from npusim.isa.operands import BUFFERS, element_bytes
from npusim.isa.semantics import execute

Instr = Instruction
#: what a pipe's simpy process yields
_Proc = Generator[simpy.Event, Any, None]

if TYPE_CHECKING:
    class _Env(simpy.Environment):
        """simpy's environment as this engine uses it: every delay is an integer, so ``now``
        is one (the runtime class is simpy.Environment itself)."""

        @property
        def now(self) -> int: ...
    from npusim.hw.schema import SocDescriptor
    from npusim.hw.schema_core import CoreDescriptor
else:
    _Env = simpy.Environment

#: How the L2 looks when the kernel starts. "cold": empty except tensors marked ``l2_warm`` (a
#: layer inside a model: weights come from HBM, the previous op's output is resident). "repeat":
#: the steady state of back-to-back launches of the same kernel, as benchmark loops and profilers
#: measure it - the L2 holds what the previous launch left, dirty lines included, which the
#: measured launch must write back when it evicts them. The earlier launch is replayed through the
#: L2 model alone (MemorySystem.replay_launch: program order per core, cores round-robin).
L2_START_MODES = ("cold", "repeat")
_L2_START: ContextVar[str] = ContextVar("npusim_l2_start", default="cold")


@contextmanager
def default_l2_start(mode: str) -> Iterator[None]:
    """Within the block, :func:`run_kernel` calls without ``l2_start`` use ``mode``."""
    _check_l2_start(mode)
    token = _L2_START.set(mode)
    try:
        yield
    finally:
        _L2_START.reset(token)


def _check_l2_start(mode: str) -> str:
    if mode not in L2_START_MODES:
        raise ValueError(f"l2_start={mode!r}: must be one of {', '.join(L2_START_MODES)}")
    return mode


def _is_atomic(ins: Instr) -> bool:
    return getattr(ins, "atomic", "") == "add"


def written_gm(kernel: Kernel) -> set[str | None]:
    """The GM tensors some instruction writes (reads of the others cannot race)."""
    return {r.tensor for c in kernel.cores for i in c.instrs for r in i.writes
            if r.buffer == "GM"}


def check_hazards(hz: HazardTracker, written: set[str | None], core_name: str, pidx: int, seq: int,
                  ins: Instr) -> None:
    """Check the reads and writes of instruction ``seq`` of pipe ``pidx`` (on ``core_name``)
    as it starts; raises RaceError."""
    space: tuple[str, str | None]
    for r in ins.reads:
        if r.buffer == "GM":
            if r.tensor not in written:
                continue
            space = ("GM", r.tensor)
        else:
            space = (core_name, r.buffer)
        hz.access(space, r, pidx, seq, ins.name, write=False)
    atomic = _is_atomic(ins)
    for r in ins.writes:
        space = ("GM", r.tensor) if r.buffer == "GM" else (core_name, r.buffer)
        hz.access(space, r, pidx, seq, ins.name, write=True, atomic=atomic)


SPLIT_PIPES = {"aic": ("S", "MTE1", "MTE2", "M", "FIX", "MTE3"), "aiv": ("S", "V", "MTE2", "MTE3")}


@dataclass(slots=True)
class InstrRecord:
    """One executed instruction: which core and pipe, when, and what it moved."""

    core: int
    pipe: str
    name: str
    kind: str
    start: int
    end: int
    nbytes: int = 0
    hbm_bytes: int = 0


@dataclass(slots=True)
class FlowRecord:
    """A flag edge: set on (core, pipe) at ``ts_set``, consumed on (core, pipe) at ``ts_wait``."""

    name: str
    src_core: int
    src_pipe: str
    ts_set: int
    dst_core: int
    dst_pipe: str
    ts_wait: int


@dataclass
class RunResult:
    """Everything one run produced: cycles, per-instruction records, traffic and outputs."""

    kernel: Kernel
    soc: SocDescriptor
    cycles: int
    records: list[InstrRecord]
    flows: list[FlowRecord]
    traffic: TrafficStats
    functional: bool
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    hbm_busy_cycles: float = 0.0
    l2_start: str = "cold"

    @property
    def freq_mhz(self) -> int:
        return int(self.soc.aicore_freq_mhz)

    @property
    def microseconds(self) -> float:
        return self.cycles / self.freq_mhz

    def pipe_busy(self) -> dict[tuple[int, str], int]:
        busy: dict[tuple[int, str], int] = {}
        for r in self.records:
            if r.kind in ("set_flag", "wait_flag", "cross_set", "cross_wait", "barrier"):
                continue
            key = (r.core, r.pipe)
            busy[key] = busy.get(key, 0) + (r.end - r.start)
        return busy


class _Flag:
    __slots__ = ("event", "is_set", "payload", "set_at", "set_pipe")

    def __init__(self, env: simpy.Environment) -> None:
        self.event = env.event()
        self.is_set = False
        self.payload: np.ndarray | None = None
        self.set_at = 0
        self.set_pipe = ""


class _Counter:
    """Cross-core flag: a counting semaphore saturating at the SoC's limit."""

    __slots__ = ("count", "payloads", "sets", "waiters")

    def __init__(self) -> None:
        self.count = 0
        self.waiters: list[simpy.Event] = []
        self.payloads: list[tuple[np.ndarray | None, int, int, str]] = []
        self.sets: dict[int, int] = {}


class Engine:
    """Runs one :class:`Kernel` on one SoC descriptor."""

    def __init__(
        self,
        kernel: Kernel,
        soc: SocDescriptor,
        *,
        functional: bool = False,
        check_races: bool = True,
        l2_page_bytes: int = 32768,
        l2_state: L2Cache | None = None,
        l2_start: str = "cold",
    ) -> None:
        self.kernel = kernel
        self.l2_start = l2_start
        self.soc = soc
        self.functional = functional
        self.env = _Env()
        self.mem = MemorySystem(soc, kernel.gm, page_bytes=l2_page_bytes, l2=l2_state)
        self.records: list[InstrRecord] = []
        self.flows: list[FlowRecord] = []
        self.core_descs = [soc.core(c.kind) for c in kernel.cores]
        self.freq_scale = [soc.aicore_freq_mhz / soc.freq_mhz(c.kind) for c in kernel.cores]
        self.pipe_index: dict[tuple[int, str], int] = {}
        names: list[str] = []
        self.queues: dict[tuple[int, str], list[Instr]] = {}
        for ci, core in enumerate(kernel.cores):
            pipes = tuple(self.core_descs[ci].pipes)
            for ins in core.instrs:
                if ins.pipe not in pipes:
                    raise ProgramError(
                        f"{core.name}: instruction '{ins.name}' uses pipe {ins.pipe}, which a "
                        f"{core.kind} core does not have (pipes: {', '.join(pipes)})"
                    )
                key = (ci, ins.pipe)
                if key not in self.pipe_index:
                    self.pipe_index[key] = len(names)
                    names.append(f"{core.name}/{ins.pipe}")
                    self.queues[key] = []
                self.queues[key].append(ins)
        self.hazards = HazardTracker(names) if check_races else None
        self.written_gm = written_gm(kernel)
        self.flags: dict[tuple[Any, ...], _Flag] = {}
        self.counters: dict[tuple[Any, ...], _Counter] = {}
        self.pending_wait: dict[tuple[int, str], str] = {}
        self.ctx = FunctionalContext(kernel, self.core_descs) if functional else None
        self.launch_cycles = self._launch_offsets(soc, kernel)
        self._check_static()

    @staticmethod
    def _launch_offsets(soc: SocDescriptor, kernel: Kernel) -> list[int]:
        """Cycles before each core's first instruction: the launch floor plus its block's place
        in the dispatch order (blocks are dispatched one after another). A block is one AI Core:
        an AIC with its AIVs in a mix kernel (AIV ``core_id`` = 2 x block + half), else a core."""
        floor = int(getattr(soc, "kernel_launch_cycles", 0) or 0)
        per_block = int(getattr(soc, "kernel_launch_per_block_cycles", 0) or 0)
        if hasattr(soc, "launch_cycles"):  # per kernel type: vector, cube-only, mix
            floor, per_block = soc.launch_cycles({c.kind for c in kernel.cores})
        mix = {c.kind for c in kernel.cores} >= {"aic", "aiv"}
        ratio = 1
        if mix:
            counts = soc.core_counts()
            ratio = max(1, counts.get("aiv", 1) // max(1, counts.get("aic", 1)))
        return [
            floor + per_block * (c.core_id // ratio if mix and c.kind == "aiv" else c.core_id)
            for c in kernel.cores
        ]

    # -- static checks ----------------------------------------------------------------------
    def _check_static(self) -> None:
        sync = self.soc.sync
        for ci, core in enumerate(self.kernel.cores):
            desc = self.core_descs[ci]
            for ins in core.instrs:
                for r in (*ins.reads, *ins.writes):
                    self._check_region(core.name, desc, ins, r)
                if isinstance(ins, SetFlag | WaitFlag):
                    eid = ins.event_id
                    if not 0 <= eid < sync.event_ids:
                        raise SyncError(
                            f"{core.name}: '{ins.name}' uses event id {eid}; valid ids are "
                            f"0..{sync.event_ids - 1}"
                        )
                    for p in (ins.src_pipe, ins.dst_pipe):
                        if p not in desc.pipes:
                            raise SyncError(
                                f"{core.name}: '{ins.name}' names pipe {p}, absent "
                                f"on a {core.kind} core"
                            )
                if isinstance(ins, CrossCoreSetFlag | CrossCoreWaitFlag):
                    if self.soc.organisation != "split":
                        raise SyncError(
                            f"{core.name}: cross-core flags exist only on split (220x) SoCs, "
                            f"not on {self.soc.name}"
                        )
                    fid = ins.flag_id
                    if not 0 <= fid < sync.cross_core_flag_ids:
                        raise SyncError(
                            f"{core.name}: '{ins.name}' uses cross-core flag id {fid}; valid ids "
                            f"are 0..{sync.cross_core_flag_ids - 1}"
                        )
                    if ins.mode not in (0, 1, 2):
                        raise SyncError(f"{core.name}: cross-core mode must be 0, 1 or 2")
                    if ins.mode == 1 and core.kind != "aiv":
                        raise SyncError(
                            f"{core.name}: cross-core mode 1 is between the two AIVs "
                            "of one AI Core; an AIC cannot use it"
                        )

    def _check_region(self, core_name: str, desc: CoreDescriptor, ins: Instr, r: Any) -> None:
        if r.buffer not in BUFFERS:
            raise ProgramError(f"{core_name}: '{ins.name}' names unknown buffer {r.buffer}")
        if r.buffer == "GM":
            t = self.kernel.gm.get(r.tensor)
            if t is None:
                raise ProgramError(
                    f"{core_name}: '{ins.name}' names unknown GM tensor {r.tensor!r}"
                )
            if r.offset < 0 or r.end > t.nbytes:
                raise BufferOverflowError(
                    f"{core_name}: '{ins.name}' accesses GM tensor {r.tensor!r} bytes "
                    f"[{r.offset}, {r.end}) outside its {t.nbytes} B"
                )
            return
        spec = desc.buffers.get(r.buffer)
        if spec is None:
            raise ProgramError(f"{core_name}: '{ins.name}' uses {r.buffer}, absent on this core")
        if r.offset < 0 or r.end > spec.capacity_bytes:
            raise BufferOverflowError(
                f"{core_name}: '{ins.name}' accesses {r.buffer} bytes [{r.offset}, {r.end}) "
                f"beyond its capacity of {spec.capacity_bytes} B"
            )
        if r.offset % spec.alignment_bytes:
            raise MisalignedError(
                f"{core_name}: '{ins.name}' accesses {r.buffer} at offset {r.offset}, not a "
                f"multiple of its {spec.alignment_bytes} B alignment"
            )

    # -- run ----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        procs = {}
        for key, instrs in self.queues.items():
            procs[key] = self.env.process(self._pipe(key, instrs))
        self.env.run()
        stuck = [k for k, p in procs.items() if p.is_alive]
        if stuck:
            lines = []
            for ci, pipe in stuck:
                what = self.pending_wait.get((ci, pipe), "an earlier instruction")
                lines.append(f"{self.kernel.cores[ci].name} pipe {pipe} waits on {what}")
            raise DeadlockError(
                "deadlock: these waits can never be satisfied - " + "; ".join(sorted(lines))
            )
        cycles = max((r.end for r in self.records), default=0)
        outputs = self.ctx.outputs() if self.ctx is not None else {}
        return RunResult(
            self.kernel,
            self.soc,
            int(cycles),
            self.records,
            self.flows,
            self.mem.stats,
            self.functional,
            outputs,
            self.mem.hbm.busy_cycles,
            self.l2_start,
        )

    def _pipe(self, key: tuple[int, str], instrs: list[Instr]) -> _Proc:
        ci, pipe = key
        env = self.env
        pidx = self.pipe_index[key]
        desc = self.core_descs[ci]
        scale = self.freq_scale[ci]
        last_end = -1
        # vector reads of a V write since the last barrier: auto-sync's PIPE_V barrier (timing)
        raw = timing.vector_raw_barriers(instrs) if pipe == "V" else frozenset()
        # DataCopys issued back to back behind another DataCopy (timing.dma_pipelined)
        piped = frozenset(i for i, x in enumerate(instrs) if i and type(x) is DataCopy
                          and timing.dma_pipelined(desc, x, instrs[i - 1]))
        if self.launch_cycles[ci]:
            yield env.timeout(self.launch_cycles[ci])
        ins: Any  # dispatched on its class
        for seq, ins in enumerate(instrs):
            cls = type(ins)
            kind = ins.kind
            if cls is WaitFlag:
                yield from self._wait_flag(ci, pipe, pidx, ins)
                continue
            if cls is CrossCoreWaitFlag:
                yield from self._cross_wait(ci, pipe, pidx, ins)
                continue
            if cls is PipeBarrier:
                # Queue order already serialises this pipe; the barrier costs its issue cycle.
                start = env.now
                yield env.timeout(1)
                self.records.append(InstrRecord(ci, pipe, ins.name, kind, start, env.now))
                continue
            start = env.now
            was_idle = start > last_end or seq in raw
            if cls is DataCopy:  # a DataCopy's "idle": not overlapping the copy before it
                was_idle = seq not in piped
            if self.hazards is not None:
                self._check_hazards(ci, pidx, seq, ins)
            dur, nbytes, hbm = _COST[cls](self, desc, ins, was_idle, start)
            dur = max(1, math.ceil(dur * scale)) if cls is not DataCopy else max(1, dur)
            yield env.timeout(dur)
            if self.ctx is not None:
                self.ctx.core = ci
                self.ctx.accumulate = _is_atomic(ins)
                execute(ins, self.ctx)
                self.ctx.accumulate = False
            if self.hazards is not None:
                self.hazards.completed(pidx, seq)
            last_end = env.now
            self.records.append(InstrRecord(ci, pipe, ins.name, kind, start, env.now, nbytes, hbm))
            if cls is SetFlag:
                self._set_flag(ci, pipe, pidx, ins)
            elif cls is CrossCoreSetFlag:
                self._cross_set(ci, pipe, pidx, ins)

    def _check_hazards(self, ci: int, pidx: int, seq: int, ins: Instr) -> None:
        if self.hazards is not None:  # (the caller checks)
            check_hazards(self.hazards, self.written_gm, self.kernel.cores[ci].name, pidx, seq,
                          ins)

    # -- the cost table (local costs from npusim.engine.timing, GM effects from memory) -------
    def _cost_dma(self, desc: CoreDescriptor, ins: Instr, was_idle: bool, now: int
                  ) -> tuple[int, int, int]:
        piped = not was_idle  # (the pipe loop: behind another DataCopy, timing.dma_pipelined)
        local = timing.dma_local_cycles(desc, ins, piped)
        src, dst = ins.reads[0], ins.writes[0]
        nbytes = max(src.nbytes, dst.nbytes)
        end = float(now + local)
        hbm_before = self.mem.stats.hbm_read_bytes + self.mem.stats.hbm_write_bytes
        in_flight = timing.in_flight_of(desc, ins)
        for access in gm_accesses(ins):
            ch_end, lat = self.mem.gm_access(now, access)
            # Measured DMA curves already include the access latency of a lone
            # transfer; the memory latency adds only behind a busy shared channel (and is
            # hidden behind the previous copy of a pipelined one).
            end = max(end, ch_end if piped else ch_end + lat)
            if in_flight is not None and not access.write and self.mem.last_miss:
                # L2 misses: the core's bytes in flight bound the stream (timing.in_flight_cycles)
                end = max(end, float(now) + timing.in_flight_cycles(
                    in_flight[0], access.region.nbytes, self.mem.last_miss,
                    self.mem.miss_latency, in_flight[1], piped))
        stats = self.mem.stats
        path = f"{src.buffer}->{dst.buffer}"
        stats.per_path_bytes[path] = stats.per_path_bytes.get(path, 0) + nbytes
        hbm = stats.hbm_read_bytes + stats.hbm_write_bytes - hbm_before
        return max(1, math.ceil(end - now - 1e-9)), nbytes, hbm

    def _cost_mmad(self, desc: CoreDescriptor, ins: Mmad, was_idle: bool, now: int
                   ) -> tuple[int, int, int]:
        return timing.mmad_cycles(desc, ins, was_idle), 0, 0

    def _cost_vec(self, desc: CoreDescriptor, ins: Vector | Cast, was_idle: bool, now: int
                  ) -> tuple[int, int, int]:
        return timing.vector_cycles(desc, ins, was_idle, element_bytes(ins.dtype)), 0, 0

    def _cost_fix(self, desc: CoreDescriptor, ins: FixPipe, was_idle: bool, now: int
                  ) -> tuple[int, int, int]:
        cyc = timing.fixpipe_cycles(desc, ins, was_idle)
        for access in gm_accesses(ins):
            ch_end, lat = self.mem.gm_access(now, access)
            cyc = max(cyc, math.ceil(ch_end - now) + lat)
        return cyc, ins.writes[0].nbytes, 0

    def _cost_scalar(self, desc: CoreDescriptor, ins: Scalar, was_idle: bool, now: int
                     ) -> tuple[int, int, int]:
        return timing.scalar_cycles(desc, ins), 0, 0

    def _cost_flag(self, desc: CoreDescriptor, ins: Instr, was_idle: bool, now: int
                   ) -> tuple[int, int, int]:
        return timing.flag_cycles(desc), 0, 0

    # -- intra-core flags -----------------------------------------------------------------------
    def _flag(self, key: tuple[Any, ...]) -> _Flag:
        f = self.flags.get(key)
        if f is None:
            f = self.flags[key] = _Flag(self.env)
        return f

    def _set_flag(self, ci: int, pipe: str, pidx: int, ins: SetFlag) -> None:
        key = (ci, ins.src_pipe, ins.dst_pipe, ins.event_id)
        f = self._flag(key)
        if f.is_set:
            raise SyncError(
                f"{self.kernel.cores[ci].name}: SetFlag {ins.src_pipe}->{ins.dst_pipe} id "
                f"{ins.event_id} set "
                f"twice without a WaitFlag in between (undefined on hardware) at cycle "
                f"{self.env.now}"
            )
        f.is_set = True
        f.set_at = self.env.now
        f.payload = self.hazards.payload(pidx) if self.hazards is not None else None
        if not f.event.triggered:
            f.event.succeed()

    def _wait_flag(self, ci: int, pipe: str, pidx: int, ins: WaitFlag) -> _Proc:
        key = (ci, ins.src_pipe, ins.dst_pipe, ins.event_id)
        f = self._flag(key)
        start = self.env.now
        if not f.is_set:
            self.pending_wait[(ci, pipe)] = (
                f"flag {ins.src_pipe}->{ins.dst_pipe} event id {ins.event_id} (no SetFlag will "
                "come)"
            )
            yield f.event
            self.pending_wait.pop((ci, pipe), None)
        f.is_set = False
        if self.hazards is not None and f.payload is not None:
            self.hazards.merge(pidx, f.payload)
        self.flows.append(FlowRecord(ins.name, ci, ins.src_pipe, f.set_at, ci, pipe, self.env.now))
        f.event = self.env.event()
        self.records.append(InstrRecord(ci, pipe, ins.name, "wait_flag", start, self.env.now))

    # -- cross-core flags ---------------------------------------------------------------------
    def _targets(self, ci: int, mode: int) -> list[int]:
        """Partners of core ``ci`` for a mode (hardware.md 2.3): the cores its CrossCoreSetFlag
        feeds, and equally the setters whose sets together release one of its waits."""
        cores = self.kernel.cores
        me = cores[ci]
        if mode == 0:
            return [j for j, c in enumerate(cores) if c.kind == me.kind]
        if mode == 1:
            return [
                j for j, c in enumerate(cores) if c.kind == "aiv" and c.core_id == me.core_id ^ 1
            ]
        if me.kind == "aic":
            return [
                j for j, c in enumerate(cores) if c.kind == "aiv" and c.core_id // 2 == me.core_id
            ]
        return [j for j, c in enumerate(cores) if c.kind == "aic" and c.core_id == me.core_id // 2]

    def _cross_set(self, ci: int, pipe: str, pidx: int, ins: CrossCoreSetFlag) -> None:
        mode, fid = ins.mode, ins.flag_id
        targets = self._targets(ci, mode)
        if not targets:
            raise SyncError(
                f"{self.kernel.cores[ci].name}: CrossCoreSetFlag mode {mode} id {fid} "
                "has no partner core in this launch"
            )
        payload = self.hazards.payload(pidx) if self.hazards is not None else None
        limit = self.soc.sync.cross_core_counter_max
        for tj in targets:
            ctr = self.counters.setdefault((tj, mode, fid), _Counter())
            ctr.sets[ci] = ctr.sets.get(ci, 0) + 1
            ctr.payloads.append((payload, ci, self.env.now, pipe))
            needed = self._targets(tj, mode)  # the partner relation is symmetric
            complete = min(ctr.sets.get(j, 0) for j in needed)
            if complete > 0:
                for j in needed:
                    ctr.sets[j] -= 1
                ctr.count += 1
                if ctr.count > limit:
                    raise SyncError(
                        f"cross-core flag id {fid} (mode {mode}) of "
                        f"{self.kernel.cores[tj].name} exceeds the counter limit {limit}: more "
                        "sets than waits"
                    )
                while ctr.waiters and ctr.count > 0:
                    ev = ctr.waiters.pop(0)
                    ctr.count -= 1
                    ev.succeed()

    def _cross_wait(self, ci: int, pipe: str, pidx: int, ins: CrossCoreWaitFlag) -> _Proc:
        mode, fid = ins.mode, ins.flag_id
        ctr = self.counters.setdefault((ci, mode, fid), _Counter())
        start = self.env.now
        if ctr.count > 0:
            ctr.count -= 1
        else:
            ev = self.env.event()
            ctr.waiters.append(ev)
            self.pending_wait[(ci, pipe)] = f"cross-core flag id {fid} (mode {mode})"
            yield ev
            self.pending_wait.pop((ci, pipe), None)
        for payload, src, ts, spipe in ctr.payloads:
            if self.hazards is not None and payload is not None:
                self.hazards.merge(pidx, payload)
            self.flows.append(FlowRecord(ins.name, src, spipe, ts, ci, pipe, self.env.now))
        ctr.payloads.clear()
        self.records.append(InstrRecord(ci, pipe, ins.name, "cross_wait", start, self.env.now))


#: the cost table: instruction class -> Engine method giving (cycles, bytes moved, HBM bytes)
_COST: dict[type, Callable[..., tuple[int, int, int]]] = {
    DataCopy: Engine._cost_dma,
    Mmad: Engine._cost_mmad,
    Vector: Engine._cost_vec,
    Cast: Engine._cost_vec,
    FixPipe: Engine._cost_fix,
    Scalar: Engine._cost_scalar,
    SetFlag: Engine._cost_flag,
    CrossCoreSetFlag: Engine._cost_flag,
}

def run_kernel(
    kernel: Kernel,
    soc: SocDescriptor,
    *,
    functional: bool = False,
    check_races: bool = True,
    l2_page_bytes: int = 32768,
    l2_start: str | None = None,
    engine: str | None = None,
) -> RunResult:
    """Simulate ``kernel`` on ``soc``; see :class:`Engine` and :data:`L2_START_MODES`
    (``l2_start`` None = the :func:`default_l2_start` in force, normally "cold"). ``engine``:
    "fast" (default: every run goes to :mod:`npusim.engine.fast`, same results and bits) or
    "reference" (this module's simpy engine); see ``fast.selected_engine``."""
    mode = _check_l2_start(l2_start if l2_start is not None else _L2_START.get())

    if functional:  # the semantics' many small-tile matmuls run fastest on one BLAS thread
        from npusim.numerics.blas_threads import single_thread_blas

        with single_thread_blas():
            return _run(kernel, soc, True, check_races, l2_page_bytes, mode, engine)
    return _run(kernel, soc, False, check_races, l2_page_bytes, mode, engine)


def _run(kernel: Kernel, soc: SocDescriptor, functional: bool, check_races: bool,
         l2_page_bytes: int, mode: str, engine: str | None) -> RunResult:
    from npusim.engine import fast

    if fast.use_fast(engine, functional=functional, check_races=check_races):
        return fast.run_fast(kernel, soc, functional=functional, check_races=check_races,
                             l2_page_bytes=l2_page_bytes, l2_start=mode,
                             engine=fast.selected_engine(engine))
    l2_state = None
    if mode == "repeat":
        l2_state = MemorySystem(soc, kernel.gm, page_bytes=l2_page_bytes).replay_launch(kernel)
    return Engine(
        kernel, soc, functional=functional, check_races=check_races,
        l2_page_bytes=l2_page_bytes, l2_state=l2_state, l2_start=mode,
    ).run()
