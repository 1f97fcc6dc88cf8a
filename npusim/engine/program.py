"""Tiled-program representation: buffer regions, instructions, per-core programs and kernels.

An operator builds a :class:`Kernel` - GM tensors plus one :class:`CoreProgram` per core - with a
:class:`ProgramBuilder`. The engine (``npusim.engine.sim``) knows nothing about operators; it runs
these instruction streams, one in-order queue per pipe.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

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
    ScalarStep,
    SetFlag,
    Vector,
    WaitFlag,
)
from npusim.isa.opcodes import FixpipeMode, Transform, VecOp
from npusim.isa.operands import BUFFERS, ITEMSIZE, Region, itemsize, nbytes_of  # noqa: F401

if TYPE_CHECKING:
    from npusim.hw.schema_core import BufferName, CoreDescriptor, TransferSpec

#: the instruction base class (older name)
Instr = Instruction
INSTR_KINDS = (
    "dma",
    "mmad",
    "vec",
    "fix",
    "scalar",
    "set_flag",
    "wait_flag",
    "barrier",
    "cross_set",
    "cross_wait",
)
_ITEMSIZE = ITEMSIZE
_itemsize = itemsize
_nbytes = nbytes_of


def timing_only(ctx: Any) -> None:
    """Semantics of an instruction a program emits for its timing alone: no buffer changes. The
    kernels whose outputs still come from a numerics model emit these (being retired; see
    ``npusim.isa.semantics.supplied_semantics``)."""


@dataclass(slots=True)
class CoreProgram:
    """The instruction stream of one core (``kind`` in aic / aiv / aicore / vector_core)."""

    core_id: int
    kind: str
    instrs: list[Instr] = field(default_factory=list)
    allocations: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}{self.core_id}"


#: the transform names DataCopy accepts
_TRANSFORMS = frozenset(t.value for t in Transform)
#: interned SetFlag / WaitFlag instructions, keyed by (class, src pipe, dst pipe, event id): they
#: are immutable and fully determined by the key, so every program shares one object per key
_FLAGS: dict[tuple[Any, ...], Instruction] = {}

def _flag(cls: type, src_pipe: str, dst_pipe: str, event_id: int) -> Instruction:
    """The interned SetFlag (issued on ``src_pipe``) or WaitFlag (on ``dst_pipe``)."""
    key = (cls, src_pipe, dst_pipe, event_id)
    ins = _FLAGS.get(key)
    if ins is None:
        if len(_FLAGS) >= 4096:  # bounded (event ids of bad programs are arbitrary)
            _FLAGS.clear()
        ins = _FLAGS[key] = cls(
            pipe=src_pipe if cls is SetFlag else dst_pipe,
            name=f"{cls.__name__} {src_pipe}->{dst_pipe} #{event_id}",
            src_pipe=src_pipe, dst_pipe=dst_pipe, event_id=event_id,
        )
    return ins


#: The instruction budget of the build in progress (set by ``npusim.size_guard``; None = none).
BUILD_BUDGET: ContextVar[Any] = ContextVar("npusim_build_budget", default=None)


@dataclass(slots=True)
class GMTensor:
    """A tensor in global memory. ``data`` is None in timing-only runs."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None
    role: str = "input"  # input | output | workspace
    l2_warm: bool = False  # resident in L2 at kernel start (e.g. written by the previous op)

    @property
    def nbytes(self) -> int:
        return _nbytes(self.shape, self.dtype)


@dataclass(slots=True)
class Kernel:
    """A launch: GM tensors, per-core programs and metadata (op, kernel, tiling)."""

    name: str
    gm: dict[str, GMTensor]
    cores: list[CoreProgram]
    meta: dict[str, Any] = field(default_factory=dict)

    def instruction_count(self) -> int:
        return sum(len(c.instrs) for c in self.cores)


#: the fields whose == is looser than identical behaviour (0.0 == -0.0, 1 == 1.0 == True)
_LOOSE_FIELDS = ("scalar", "deq_scale", "quant_param", "body")


class InstrPool:
    """Shares equal instructions among the builders of one kernel (issue 14 item 3).

    Builders that construct their instructions afresh per tile and per core (the wqbmm kernels)
    emit many instructions equal to earlier ones; :meth:`share` returns the first such object
    instead, so the program lists hold one object per distinct instruction and the fast engine
    lowers each once. Instructions are frozen and the engines never look at their identity, so
    runs are unchanged. Equality is the instructions' own (every field, same class) and, for
    the scalar operands, the same type and the same ``repr`` (so -0.0 is not 0.0, 1 not 1.0).
    """

    __slots__ = ("_instrs",)

    def __init__(self) -> None:
        self._instrs: dict[Instruction, Instruction] = {}

    def __len__(self) -> int:
        return len(self._instrs)

    def share(self, ins: Instruction) -> Instruction:
        """The pooled instruction identical to ``ins`` (``ins`` itself when it is the first)."""
        try:
            hit = self._instrs.setdefault(ins, ins)
        except TypeError:  # an unhashable operand (e.g. a list shape): kept unshared
            return ins
        if hit is ins:
            return ins
        for f in _LOOSE_FIELDS:
            a, b = getattr(ins, f, None), getattr(hit, f, None)
            if a is not b and (type(a) is not type(b) or repr(a) != repr(b)):
                return ins
        return hit


class ProgramBuilder:
    """Appends instructions to one core's program, allocating its local buffers.

    Allocation is a bump allocator per buffer with the SoC's alignment; exceeding a buffer's
    capacity raises :class:`npusim.engine.errors.BufferOverflowError` at build time. With a
    ``pool`` (one :class:`InstrPool` per kernel) every emitted instruction is shared through it.
    """

    def __init__(self, program: CoreProgram, core_desc: CoreDescriptor,
                 pool: InstrPool | None = None) -> None:
        self.program = program
        self.core = core_desc
        self._next: dict[str, int] = {}
        self._paths: dict[tuple[str, str], TransferSpec | None] = {}  # (src, dst) -> its path
        self._share = pool.share if pool is not None else None

    # -- allocation -------------------------------------------------------------------------
    def alloc(self, buffer: str, shape: tuple[int, ...], dtype: str, name: str = "") -> Region:
        from npusim.engine.errors import BufferOverflowError

        spec = self.core.buffers.get(cast("BufferName", buffer))  # another str: None, refused
        if spec is None:
            raise BufferOverflowError(
                f"{self.program.name}: buffer {buffer} does not exist on a {self.program.kind} core"
            )
        align = spec.alignment_bytes
        start = self._next.get(buffer, 0)
        start = (start + align - 1) // align * align
        size = _nbytes(shape, dtype)
        if start + size > spec.capacity_bytes:
            raise BufferOverflowError(
                f"{self.program.name}: allocating {name or 'region'} of {size} B in {buffer} at "
                f"offset {start} exceeds its capacity of {spec.capacity_bytes} B"
            )
        self._next[buffer] = start + size
        self.program.allocations.setdefault(buffer, []).append((name, start, size))
        return Region(buffer, start, tuple(shape), dtype)

    def used_bytes(self, buffer: str) -> int:
        return self._next.get(buffer, 0)

    def release(self, buffer: str, mark: int) -> None:
        """Free everything allocated in ``buffer`` after ``mark`` (a :meth:`used_bytes` value),
        so a later phase of the program reuses the space; the race checker still orders the
        phases' accesses."""
        self._next[buffer] = min(self._next.get(buffer, 0), mark)

    # -- instructions -----------------------------------------------------------------------
    def emit(self, instr: Instruction) -> Instruction:
        if self._share is not None:
            instr = self._share(instr)
        self.program.instrs.append(instr)
        budget = BUILD_BUDGET.get()
        if budget is not None:  # npusim.size_guard: stop a build past the instruction limit
            budget.spend()
        return instr

    def emit_many(self, instrs: tuple[Instruction, ...] | list[Instruction]) -> None:
        """:meth:`emit` each of ``instrs`` in order (an instruction sequence replayed whole)."""
        budget = BUILD_BUDGET.get()
        if budget is not None:
            budget.spend(len(instrs))
        self.program.instrs.extend(instrs)

    def dma(
        self,
        src: Region,
        dst: Region,
        *,
        name: str | None = None,
        fn: Callable[[Any], None] | None = None,
        l2_cache: str = "normal",
        transform: str = "",
        pipe: str | None = None,
        atomic: str = "",
    ) -> Instruction:
        """A DataCopy src -> dst on the pipe the SoC assigns to that path (MTE2/MTE3/MTE1/FIX/V).

        ``l2_cache`` is ``normal`` or ``bypass`` (SetL2CacheHint CACHE_MODE_DISABLE on reads);
        ``transform`` names an on-the-fly layout change (``nd2nz``, ``nz2nd``, ``dn2nz``).
        ``atomic="add"`` (SetAtomicAdd; GM destinations only) adds into the destination instead of
        overwriting it, see :func:`check_atomic`. The values follow the semantics table
        (``npusim.isa.semantics.data_copy``) unless a program supplies ``fn``.
        """
        from npusim.engine.errors import ProgramError

        if atomic:
            check_atomic(atomic, dst, self.program.name)
        path = (src.buffer, dst.buffer)
        spec = self._paths.get(path)
        if spec is None:
            spec = self._paths[path] = self.core.transfer(*path)
            if spec is None:
                raise ProgramError(
                    f"{self.program.name}: no data path {src.buffer}->{dst.buffer} on a "
                    f"{self.program.kind} core"
                )
        if l2_cache not in ("normal", "bypass"):
            raise ProgramError(f"l2_cache must be 'normal' or 'bypass', got {l2_cache!r}")
        if not isinstance(transform, str) or transform not in _TRANSFORMS:
            raise ProgramError(f"transform must be one of {[t.value for t in Transform]}, got "
                               f"{transform!r}")
        label = name or f"{src.buffer}->{dst.buffer}" + (f" {transform}" if transform else "")
        return self.emit(DataCopy(
            pipe=pipe or spec.pipe, name=label, reads=(src,), writes=(dst,), fn=fn,
            transform=transform, l2_cache=l2_cache, atomic=atomic,
        ))

    def mmad(
        self,
        a: Region,
        b: Region,
        c: Region,
        m: int,
        k: int,
        n: int,
        dtype: str,
        *,
        accumulate: bool,
        fn: Callable[[Any], None] | None = None,
        bias: Region | None = None,
        accumulation: str | None = None,
        hf32: str = "",
    ) -> Instruction:
        """Cube matmul L0A (m x k) x L0B (k x n) -> L0C (m x n), accumulating or initialising.
        ``hf32``: the HF32 mode's declared format (see :class:`npusim.isa.Mmad`).

        With ``accumulation`` (the declared fp accumulation model; any value for integer
        dtypes) the semantics table computes it; without it and without ``fn`` the Mmad is
        emitted for its timing alone (:func:`timing_only`)."""
        reads = (a, b, c) if accumulate else (a, b)
        if bias is not None:
            reads = (*reads, bias)
        if fn is None and accumulation is None:
            fn = timing_only
        return self.emit(Mmad(
            pipe="M", name="Mmad", reads=reads, writes=(c,), fn=fn, m=m, k=k, n=n, dtype=dtype,
            accumulate=accumulate, has_bias=bias is not None, accumulation=accumulation or "",
            hf32=hf32,
        ))

    def vec(
        self,
        op: str,
        op_class: str,
        dst: Region | tuple[Region, ...],
        srcs: tuple[Region, ...],
        *,
        elements: int,
        dtype: str,
        fn: Callable[[Any], None] | None = None,
        pipe: str = "V",
    ) -> Instruction:
        """An untyped vector instruction named ``op`` with cost class ``op_class`` (older form:
        its values come from ``fn``, else it is timing only). New code uses :meth:`vop` /
        :meth:`cast`, whose values come from the semantics table."""
        dsts = dst if isinstance(dst, tuple) else (dst,)
        return self.emit(Vector(
            pipe=pipe, name=op, reads=tuple(srcs), writes=dsts, fn=fn or timing_only,
            op=VecOp.CUSTOM, elements=elements, dtype=dtype, cost_class=op_class,
        ))

    def vop(
        self,
        op: VecOp,
        dst: Region,
        srcs: tuple[Region, ...] = (),
        *,
        dtype: str | None = None,
        elements: int | None = None,
        scalar: float | int | None = None,
        name: str | None = None,
        pipe: str = "V",
    ) -> Instruction:
        """A typed vector instruction (semantics and cost class from ``op``); ``dtype`` defaults
        to the destination's, ``elements`` to the destination's element count."""
        from npusim.engine.errors import ProgramError

        if op in (VecOp.CAST, VecOp.CUSTOM):
            raise ProgramError(f"vop: use cast() for Cast and vec() for a program-supplied op, "
                               f"not {op}")
        reads = tuple(srcs)
        if op in (VecOp.AXPY, VecOp.MUL_ADD_DST):
            reads = (*reads, dst)  # reads its destination
        return self.emit(Vector(
            pipe=pipe, name=name or op.value, reads=reads, writes=(dst,), op=op,
            elements=dst.elements if elements is None else elements,
            dtype=dtype or dst.dtype, scalar=scalar,
        ))

    def cast(
        self,
        dst: Region,
        src: Region,
        *,
        round_mode: str = "rint",
        saturate: bool = True,
        elements: int | None = None,
        name: str | None = None,
        pipe: str = "V",
    ) -> Instruction:
        """Vector Cast src -> dst in ``round_mode`` (RoundMode name), saturating by default."""
        from npusim.numerics import RoundMode

        RoundMode(round_mode)
        return self.emit(Cast(
            pipe=pipe, name=name or f"Cast {src.dtype}->{dst.dtype} {round_mode.upper()}",
            reads=(src,), writes=(dst,), op=VecOp.CAST,
            elements=src.elements if elements is None else elements, dtype=src.dtype,
            round_mode=round_mode, saturate=saturate,
        ))

    def fixpipe(
        self,
        src: Region,
        dst: Region,
        *,
        elements: int,
        out_dtype: str,
        mode: str,
        fn: Callable[[Any], None] | None = None,
        extra_reads: tuple[Region, ...] = (),
        atomic: str = "",
        replay: bool = False,
        deq_scale: float | None = None,
        quant_param: int | None = None,
    ) -> Instruction:
        """FixPipe L0C -> GM / L1 with on-the-fly conversion ``mode`` (F322F16, REQ8, ...);
        ``atomic="add"`` accumulates into a GM destination (see :func:`check_atomic`). With
        ``replay`` the semantics table computes the values (parameter-free modes NONE, F322F16,
        F322BF16, and DEQF16 with a scalar ``deq_scale``); else ``fn`` does, or, without it, the
        instruction is timing only."""
        from npusim.engine.errors import ProgramError

        check_atomic(atomic, dst, self.program.name)
        try:
            FixpipeMode(mode)
        except ValueError:
            raise ProgramError(f"fixpipe mode must be one of {[m.value for m in FixpipeMode]}, "
                               f"got {mode!r}") from None
        if fn is None and not replay:
            fn = timing_only
        return self.emit(FixPipe(
            pipe="FIX", name=f"Fixpipe {mode}", reads=(src, *extra_reads), writes=(dst,),
            fn=fn, elements=elements, out_dtype=out_dtype, mode=mode, atomic=atomic,
            deq_scale=deq_scale, quant_param=quant_param,
        ))

    def scalar(
        self,
        name: str,
        instructions: int,
        fn: Callable[[Any], None] | None = None,
        reads: tuple[Region, ...] = (),
        writes: tuple[Region, ...] = (),
        body: tuple[ScalarStep, ...] = (),
    ) -> Instruction:
        """``instructions`` scalar-unit instructions (address arithmetic, loops, Get/SetValue);
        ``body``: the element-wise steps the loop computes (their sources join ``reads``, their
        destinations ``writes``)."""
        for step in body:
            reads += tuple(r for r in step.srcs if r not in reads)
            if step.dst not in writes:
                writes += (step.dst,)
        return self.emit(Scalar(pipe="S", name=name, reads=reads, writes=writes, fn=fn,
                                count=instructions, body=body))

    def set_flag(self, src_pipe: str, dst_pipe: str, event_id: int) -> Instruction:
        return self.emit(_flag(SetFlag, src_pipe, dst_pipe, event_id))

    def wait_flag(self, src_pipe: str, dst_pipe: str, event_id: int) -> Instruction:
        return self.emit(_flag(WaitFlag, src_pipe, dst_pipe, event_id))

    def sync(self, src_pipe: str, dst_pipe: str, event_id: int) -> None:
        """SetFlag on ``src_pipe`` immediately followed by the matching WaitFlag on ``dst_pipe``."""
        self.set_flag(src_pipe, dst_pipe, event_id)
        self.wait_flag(src_pipe, dst_pipe, event_id)

    def barrier(self, pipe: str) -> Instruction:
        return self.emit(PipeBarrier(pipe=pipe, name=f"PipeBarrier {pipe}"))

    def cross_set(self, mode: int, pipe: str, flag_id: int) -> Instruction:
        """CrossCoreSetFlag<mode, pipe>(flag_id) (hardware.md 2.3)."""
        return self.emit(CrossCoreSetFlag(
            pipe=pipe, name=f"CrossCoreSetFlag m{mode} #{flag_id}", mode=mode, flag_id=flag_id,
        ))

    def cross_wait(self, flag_id: int, pipe: str, mode: int = 2) -> Instruction:
        """CrossCoreWaitFlag(flag_id) on ``pipe``; ``mode`` must match the setters' mode."""
        return self.emit(CrossCoreWaitFlag(
            pipe=pipe, name=f"CrossCoreWaitFlag m{mode} #{flag_id}", mode=mode, flag_id=flag_id,
        ))


#: dtypes an atomic add into GM supports (the result is dst + src rounded once to dst's dtype,
#: RNE for floats; int32 wraps - a declared model, the overflow behaviour is not published)
ATOMIC_ADD_DTYPES = ("float32", "float16", "bfloat16", "int32")


def check_atomic(atomic: str, dst: Region, where: str) -> None:
    """Validate an ``atomic`` mode: "" (plain write) or "add" into a GM region of a supported
    dtype. Atomic adds to the same bytes from different pipes need no ordering among
    themselves (they commute up to rounding; functional runs apply them in the declared
    ``split_k_reduction_order`` - see ``engine.buffers`` - and timing follows completion)."""
    from npusim.engine.errors import ProgramError

    if atomic not in ("", "add"):
        raise ProgramError(f"{where}: atomic must be '' or 'add', got {atomic!r}")
    if atomic and dst.buffer != "GM":
        raise ProgramError(f"{where}: atomic add needs a GM destination, not {dst.buffer}")
    if atomic and dst.dtype not in ATOMIC_ADD_DTYPES:
        raise ProgramError(f"{where}: atomic add into {dst.dtype} is not supported "
                           f"(dtypes: {', '.join(ATOMIC_ADD_DTYPES)})")
