"""Stages the tiled programs are built from: ranges of a loop; ping-pong buffers with their
flags (the producer waits for the consumer's release before the n-th reuse, and the last uses'
flags are drained so every SetFlag has its WaitFlag); a kernel's cross-core flags, allocated
one id per meaning (:class:`CrossFlags`); GM workspace rings between an AIC and its AIVs with
their READY / FREE handshake (:class:`Ring`); launch-wide barriers; the cores of a mix launch
(:class:`MixLaunch`); the bias add and the output cast and store (:func:`add_bias`,
:func:`cast_store`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from npusim.engine.errors import ProgramError
from npusim.engine.program import CoreProgram, InstrPool, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import ITEMSIZE, Region

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

T = TypeVar("T")

#: one buffer of a local-buffer layout: (name, shape, dtype)
Buffer = tuple[str, tuple[int, ...], str]


def allocated(value: T | None, what: str) -> T:
    """``value`` narrowed to not-None: a buffer (or parameter) a program sets up before the path
    that reads it; None is a ProgramError naming ``what``."""
    if value is None:
        raise ProgramError(f"{what}: read before it was set up")
    return value


def alloc_layout(b: ProgramBuilder, buffer: str, layout: list[Buffer]) -> dict[str, Region]:
    """Allocate ``layout`` in ``buffer`` in its order, by name: a program allocates from the
    layout its validator sizes, so the two cannot drift apart."""
    return {name: b.alloc(buffer, shape, dt, name) for name, shape, dt in layout}


def ranges(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) in consecutive pieces of ``size`` (the last one shorter)."""
    return [(a, min(hi, a + size)) for a in range(lo, hi, size)]


def lanes32(count: int, item: int) -> int:
    """Elements of a row of ``count`` ``item``-byte elements padded to 32 B (a vector operand
    starts 32 B aligned in UB)."""
    return math.ceil(count * item / 32) * 32 // item


def group_segments(r0: int, r1: int, group_size: int) -> list[tuple[int, int, int]]:
    """(group, start, end) of each antiquant group that K rows [r0, r1) span, start and end
    relative to r0 - the parameter rows a dequant tile loads and the row segment each one
    applies to; one segment (0, 0, r1 - r0) without groups (``group_size`` 0)."""
    if not group_size:
        return [(0, 0, r1 - r0)]
    return [(g, max(r0, g * group_size) - r0, min(r1, (g + 1) * group_size) - r0)
            for g in range(r0 // group_size, (r1 - 1) // group_size + 1)]


class PingPong:
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

    def drain(self, oldest_first: bool = False) -> None:
        """Wait for the releases the last uses left set (newest first, or oldest first)."""
        last = range(min(self.uses, len(self.ids)))
        for j in reversed(last) if oldest_first else last:
            i = (self.uses - 1 - j) % len(self.ids)
            self.b.wait_flag(self.cons, self.prod, self.ids[i])


class VecInOut:
    """A core's MTE2 -> compute -> MTE3 pipeline over UB buffer sets ``ids`` (Ascend C's VECIN /
    VECOUT queue pair; ``compute`` is the V pipe, or S for a scalar loop): ``load`` (wait until
    the compute pipe released the set, then the caller's GM -> UB copies), ``compute`` (MTE2 ->
    compute, and wait until MTE3 stored the set's previous output), ``store`` (release the input
    to MTE2, compute -> MTE3, then the caller's UB -> GM copy), ``stored`` (MTE3 -> compute);
    ``drain`` waits for the flags the last passes left set."""

    def __init__(self, b: ProgramBuilder, ids: tuple[int, ...] = (0, 1),
                 compute: str = "V") -> None:
        self.inq = PingPong(b, "MTE2", compute, ids)
        self.outq = PingPong(b, compute, "MTE3", ids)

    def load(self) -> int:
        """The buffer set to fill next."""
        return self.inq.acquire()

    def compute(self, i: int) -> None:
        self.inq.ready(i)
        self.outq.acquire()

    def store(self, i: int) -> None:
        self.inq.release(i)
        self.outq.ready(i)

    def stored(self, i: int) -> None:
        self.outq.release(i)

    def drain(self, oldest_first: bool = False) -> None:
        self.inq.drain(oldest_first)
        self.outq.drain(oldest_first)


@dataclass(frozen=True)
class CrossFlag:
    """One cross-core flag of a kernel: the id :class:`CrossFlags` gave it, the mode its setters
    and waiters use (hardware.md 2.3: 0 = all AICs or all AIVs of the launch, 1 = the two AIVs of
    one AI Core, 2 = an AIC and its two AIVs) and what it means."""

    flag_id: int
    mode: int
    meaning: str

    def set(self, b: ProgramBuilder, pipe: str) -> None:
        b.cross_set(self.mode, pipe, self.flag_id)

    def wait(self, b: ProgramBuilder, pipe: str) -> None:
        b.cross_wait(self.flag_id, pipe, mode=self.mode)

    def barrier(self, b: ProgramBuilder, set_pipe: str, wait_pipe: str) -> None:
        """Every core of this kind meets here (a mode-0 flag): set on ``set_pipe``, then wait
        on ``wait_pipe`` until all of them set it."""
        if self.mode != 0:
            raise ProgramError(f"cross-core flag {self.flag_id} ({self.meaning}) is mode "
                               f"{self.mode}; a launch-wide barrier needs mode 0")
        self.set(b, set_pipe)
        self.wait(b, wait_pipe)


class CrossFlags:
    """The cross-core flag ids of one kernel, allocated in declaration order, one meaning each
    (no id is reused with another meaning). ``limit``: the ids a kernel may use
    (``soc.sync.cross_core_flag_ids``: 0-10 on the 220x)."""

    def __init__(self, limit: int = 11) -> None:
        self.limit = limit
        self.flags: list[CrossFlag] = []

    @classmethod
    def of(cls, soc: object) -> CrossFlags:
        sync = getattr(soc, "sync", None)
        return cls(int(getattr(sync, "cross_core_flag_ids", 11)))

    def flag(self, meaning: str, mode: int = 2, flag_id: int | None = None) -> CrossFlag:
        """A new flag: the lowest free id, or ``flag_id`` where a published kernel fixes it."""
        if any(f.meaning == meaning for f in self.flags):
            raise ProgramError(f"cross-core flag {meaning!r} declared twice")
        used = {f.flag_id for f in self.flags}
        if flag_id is None:
            flag_id = min((i for i in range(self.limit) if i not in used), default=self.limit)
        if flag_id >= self.limit or flag_id < 0:
            raise ProgramError(
                f"cross-core flag {meaning!r}: no id left below {self.limit} (in use: "
                + ", ".join(f.meaning for f in self.flags) + ")")
        if flag_id in used:
            other = next(f.meaning for f in self.flags if f.flag_id == flag_id)
            raise ProgramError(f"cross-core flag {meaning!r}: id {flag_id} already means {other!r}")
        f = CrossFlag(flag_id, mode, meaning)
        self.flags.append(f)
        return f

    def ring(self, what: str, slots: int) -> Ring:
        """A workspace ring of ``slots`` slots with its own READY and FREE flags (mode 2)."""
        return Ring(self.flag(f"{what} ready"), self.flag(f"{what} free"), slots)

    def table(self) -> dict[str, str]:
        """id -> meaning (and mode), for the kernel's metadata and traces."""
        return {str(f.flag_id): f"{f.meaning} (mode {f.mode})"
                for f in sorted(self.flags, key=lambda f: f.flag_id)}


@dataclass(frozen=True)
class Ring:
    """A GM workspace ring of ``slots`` slots between the producer and consumer side of one AI
    Core (an AIC and its two AIVs, either way round). The producer fills slot ``j % slots``
    and publishes READY; before its fill ``j >= slots`` it waits for FREE (the consumer has taken
    the slot's data). The consumer waits READY, takes the data, releases FREE. Every fill and
    take is counted by the flag counters (mode 2: both AIVs' sets release the AIC, the AIC's
    set releases both AIVs)."""

    ready: CrossFlag
    free: CrossFlag
    slots: int

    def fill(self, b: ProgramBuilder, j: int, pipe: str) -> None:
        """Producer, before writing its ``j``-th slot: wait until the slot is free again."""
        if j >= self.slots:
            self.free.wait(b, pipe)

    def publish(self, b: ProgramBuilder, pipe: str) -> None:
        self.ready.set(b, pipe)

    def take(self, b: ProgramBuilder, pipe: str) -> None:
        """Consumer: wait until the next slot is filled."""
        self.ready.wait(b, pipe)

    def release(self, b: ProgramBuilder, pipe: str) -> None:
        self.free.set(b, pipe)

    def done(self, b: ProgramBuilder, j: int, n: int, pipe: str) -> None:
        """Consumer, done with its ``j``-th of ``n`` takes: release the slot only if the producer
        fills it again (a fill ``j + slots < n`` waits for it)."""
        if j + self.slots < n:
            self.release(b, pipe)


class MixLaunch:
    """The cores of a mix (AIC + AIV) launch in the order the Kernel lists them: per AI Core
    ``ci`` its AIC (core id ``ci``), then its two AIVs (``2 ci`` and ``2 ci + 1``). ``pool``:
    the launch's shared instruction objects (None: none shared)."""

    def __init__(self, soc: SocDescriptor, pool: InstrPool | None = None) -> None:
        self.aic_desc, self.aiv_desc = soc.core("aic"), soc.core("aiv")
        self.pool = pool
        self.cores: list[CoreProgram] = []

    def aic(self, ci: int) -> ProgramBuilder:
        """A builder for the next core, AIC ``ci``."""
        return self._core(ci, "aic", self.aic_desc)

    def aiv(self, v: int) -> ProgramBuilder:
        """A builder for the next core, AIV ``v``."""
        return self._core(v, "aiv", self.aiv_desc)

    def _core(self, core_id: int, kind: str, desc: Any) -> ProgramBuilder:
        core = CoreProgram(core_id, kind)
        self.cores.append(core)
        return ProgramBuilder(core, desc, self.pool)


def add_bias(b: ProgramBuilder, acc: Region, bias: Region, f32: Region | None = None) -> None:
    """``acc += bias`` (one row, broadcast over the rows of the fp32 ``acc``); a bias that is
    not fp32 is first cast into the fp32 tile ``f32`` (required then)."""
    if bias.dtype != "float32":
        f32 = allocated(f32, "add_bias: the fp32 tile of a non-fp32 bias")
        b.cast(f32, bias, name="Cast bias->fp32")
        bias = f32
    b.vop(VecOp.ADD, acc, (acc, bias), name="Add bias")


def cast_store(b: ProgramBuilder, out: Region, acc: Region, tensor: str, row0: int, col0: int,
               row_len: int, event: int, *, write: bool = True) -> None:
    """The output stage: CAST_ROUND the fp32 ``acc`` into the UB tile ``out``; with ``write``,
    V -> MTE3 flag ``event`` and ``out`` to rows ``row0..`` / columns ``col0..`` of the GM
    tensor ``tensor`` (``row_len`` elements per row)."""
    b.cast(out, acc, round_mode="round", name="Cast ROUND -> out")
    if write:
        b.sync("V", "MTE3", event)
        isz = ITEMSIZE[out.dtype]
        b.dma(out, Region("GM", math.ceil((row0 * row_len + col0) * isz), out.shape, out.dtype,
                          tensor, math.ceil(row_len * isz)), name="y UB->GM")
