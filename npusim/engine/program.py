"""Tiled-program representation: buffer regions, instructions, per-core programs and kernels.

An operator builds a :class:`Kernel` - GM tensors plus one :class:`CoreProgram` per core - with a
:class:`ProgramBuilder`. The engine (``npusim.engine.sim``) knows nothing about operators; it runs
these instruction streams, one in-order queue per pipe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BUFFERS = ("GM", "L1", "L0A", "L0B", "L0C", "UB", "BT", "FB")
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


@dataclass(frozen=True, slots=True)
class Region:
    """A window of a buffer: ``shape`` elements of ``dtype`` starting at byte ``offset``.

    ``row_stride_bytes`` (2-D windows only) is the distance between rows; ``None`` = contiguous.
    GM regions name their ``tensor``; offsets are then relative to that tensor.
    """

    buffer: str
    offset: int
    shape: tuple[int, ...]
    dtype: str
    tensor: str | None = None
    row_stride_bytes: int | None = None
    nbytes: int = field(init=False, repr=False, compare=False)  # payload bytes, derived

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", _nbytes(self.shape, self.dtype))

    @property
    def itemsize(self) -> int:
        return _itemsize(self.dtype)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.row_stride_bytes is not None else 1

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.rows if self.rows else 0

    @property
    def stride(self) -> int:
        return self.row_stride_bytes if self.row_stride_bytes is not None else self.nbytes

    @property
    def end(self) -> int:
        """One past the last byte of the window's span."""
        return self.offset + (self.rows - 1) * self.stride + self.row_bytes

    def sub(self, offset_bytes: int, shape: tuple[int, ...], dtype: str | None = None) -> Region:
        """A contiguous sub-window of a contiguous region."""
        return Region(
            self.buffer, self.offset + offset_bytes, shape, dtype or self.dtype, self.tensor
        )


_ITEMSIZE = {
    "int4": 0.5,
    "int8": 1,
    "uint8": 1,
    "float16": 2,
    "bfloat16": 2,
    "int16": 2,
    "float32": 4,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
}


def _itemsize(dtype: str) -> int:
    size = _ITEMSIZE.get(dtype)
    if size is None:
        raise ValueError(f"dtype {dtype!r} is not a buffer dtype; use one of {sorted(_ITEMSIZE)}")
    return max(1, int(size))


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    count = math.prod(shape)
    if dtype == "int4":
        return (count + 1) // 2
    return count * _itemsize(dtype)


def nbytes_of(shape: tuple[int, ...], dtype: str) -> int:
    """Payload size in bytes of ``shape`` elements of ``dtype`` (int4 packs two per byte)."""
    return _nbytes(shape, dtype)


@dataclass(slots=True)
class Instr:
    """One instruction on one pipe.

    ``params`` carries what the timing model needs (see ``npusim.engine.timing``); ``fn`` is the
    value semantics, called with the engine's functional context when the instruction completes.
    """

    pipe: str
    kind: str
    name: str
    reads: tuple[Region, ...] = ()
    writes: tuple[Region, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    fn: Callable[[Any], None] | None = None


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


class ProgramBuilder:
    """Appends instructions to one core's program, allocating its local buffers.

    Allocation is a bump allocator per buffer with the SoC's alignment; exceeding a buffer's
    capacity raises :class:`npusim.engine.errors.BufferOverflowError` at build time.
    """

    def __init__(self, program: CoreProgram, core_desc: Any) -> None:
        self.program = program
        self.core = core_desc
        self._next: dict[str, int] = {}

    # -- allocation -------------------------------------------------------------------------
    def alloc(self, buffer: str, shape: tuple[int, ...], dtype: str, name: str = "") -> Region:
        from npusim.engine.errors import BufferOverflowError

        spec = self.core.buffers.get(buffer)
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
    def emit(self, instr: Instr) -> Instr:
        self.program.instrs.append(instr)
        return instr

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
    ) -> Instr:
        """A data move src -> dst on the pipe the SoC assigns to that path (MTE2/MTE3/MTE1/FIX/V).

        ``l2_cache`` is ``normal`` or ``bypass`` (SetL2CacheHint CACHE_MODE_DISABLE on reads);
        ``transform`` names an on-the-fly layout change (``nd2nz``, ``nz2nd``) for the trace.
        ``atomic="add"`` (SetAtomicAdd; GM destinations only) adds into the destination instead of
        overwriting it, see :func:`check_atomic`. Without ``fn`` the functional semantics is a
        byte copy (or add) of equal-sized windows.
        """
        from npusim.engine.errors import ProgramError

        check_atomic(atomic, dst, self.program.name)
        spec = self.core.transfer(src.buffer, dst.buffer)
        if spec is None:
            raise ProgramError(
                f"{self.program.name}: no data path {src.buffer}->{dst.buffer} on a "
                f"{self.program.kind} core"
            )
        if l2_cache not in ("normal", "bypass"):
            raise ProgramError(f"l2_cache must be 'normal' or 'bypass', got {l2_cache!r}")
        label = name or f"{src.buffer}->{dst.buffer}" + (f" {transform}" if transform else "")
        return self.emit(
            Instr(
                pipe=pipe or spec.pipe,
                kind="dma",
                name=label,
                reads=(src,),
                writes=(dst,),
                params={"src": src.buffer, "dst": dst.buffer, "l2_cache": l2_cache,
                        "transform": transform, "atomic": atomic},
                fn=fn if fn is not None else _copy_fn(src, dst),
            )
        )

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
    ) -> Instr:
        """Cube matmul L0A (m x k) x L0B (k x n) -> L0C (m x n), accumulating or initialising."""
        reads = (a, b, c) if accumulate else (a, b)
        if bias is not None:
            reads = (*reads, bias)
        return self.emit(
            Instr(
                pipe="M",
                kind="mmad",
                name="Mmad",
                reads=reads,
                writes=(c,),
                params={"m": m, "k": k, "n": n, "dtype": dtype},
                fn=fn,
            )
        )

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
    ) -> Instr:
        """A vector instruction over ``elements`` elements of ``dtype`` (repeats of 256 B).

        ``op_class`` selects the descriptor's cycles-per-repeat class (unary, binary, ...); bank
        conflicts are derived from the UB addresses of ``srcs`` and ``dst``.
        """
        dsts = dst if isinstance(dst, tuple) else (dst,)
        return self.emit(
            Instr(
                pipe=pipe,
                kind="vec",
                name=op,
                reads=tuple(srcs),
                writes=dsts,
                params={"op_class": op_class, "elements": elements, "dtype": dtype},
                fn=fn,
            )
        )

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
    ) -> Instr:
        """FixPipe L0C -> GM / L1 with on-the-fly conversion ``mode`` (F322F16, REQ8, ...);
        ``atomic="add"`` accumulates into a GM destination (see :func:`check_atomic`)."""
        check_atomic(atomic, dst, self.program.name)
        return self.emit(
            Instr(
                pipe="FIX",
                kind="fix",
                name=f"Fixpipe {mode}",
                reads=(src, *extra_reads),
                writes=(dst,),
                params={"elements": elements, "out_dtype": out_dtype, "dst": dst.buffer,
                        "atomic": atomic},
                fn=fn,
            )
        )

    def scalar(
        self,
        name: str,
        instructions: int,
        fn: Callable[[Any], None] | None = None,
        reads: tuple[Region, ...] = (),
        writes: tuple[Region, ...] = (),
    ) -> Instr:
        """``instructions`` scalar-unit instructions (address arithmetic, loops, Get/SetValue)."""
        return self.emit(
            Instr(
                pipe="S",
                kind="scalar",
                name=name,
                reads=reads,
                writes=writes,
                params={"count": instructions},
                fn=fn,
            )
        )

    def set_flag(self, src_pipe: str, dst_pipe: str, event_id: int) -> Instr:
        return self.emit(
            Instr(
                pipe=src_pipe,
                kind="set_flag",
                name=f"SetFlag {src_pipe}->{dst_pipe} #{event_id}",
                params={"src": src_pipe, "dst": dst_pipe, "id": event_id},
            )
        )

    def wait_flag(self, src_pipe: str, dst_pipe: str, event_id: int) -> Instr:
        return self.emit(
            Instr(
                pipe=dst_pipe,
                kind="wait_flag",
                name=f"WaitFlag {src_pipe}->{dst_pipe} #{event_id}",
                params={"src": src_pipe, "dst": dst_pipe, "id": event_id},
            )
        )

    def sync(self, src_pipe: str, dst_pipe: str, event_id: int) -> None:
        """SetFlag on ``src_pipe`` immediately followed by the matching WaitFlag on ``dst_pipe``."""
        self.set_flag(src_pipe, dst_pipe, event_id)
        self.wait_flag(src_pipe, dst_pipe, event_id)

    def barrier(self, pipe: str) -> Instr:
        return self.emit(
            Instr(pipe=pipe, kind="barrier", name=f"PipeBarrier {pipe}", params={"pipe": pipe})
        )

    def cross_set(self, mode: int, pipe: str, flag_id: int) -> Instr:
        """CrossCoreSetFlag<mode, pipe>(flag_id) (hardware.md 2.3)."""
        return self.emit(
            Instr(
                pipe=pipe,
                kind="cross_set",
                name=f"CrossCoreSetFlag m{mode} #{flag_id}",
                params={"mode": mode, "id": flag_id},
            )
        )

    def cross_wait(self, flag_id: int, pipe: str, mode: int = 2) -> Instr:
        """CrossCoreWaitFlag(flag_id) on ``pipe``; ``mode`` must match the setters' mode."""
        return self.emit(
            Instr(
                pipe=pipe,
                kind="cross_wait",
                name=f"CrossCoreWaitFlag m{mode} #{flag_id}",
                params={"mode": mode, "id": flag_id},
            )
        )


#: dtypes an atomic add into GM supports (the result is dst + src rounded once to dst's dtype,
#: RNE for floats; int32 wraps - a declared model, the overflow behaviour is not published)
ATOMIC_ADD_DTYPES = ("float32", "float16", "bfloat16", "int32")


def check_atomic(atomic: str, dst: Region, where: str) -> None:
    """Validate an ``atomic`` mode: "" (plain write) or "add" into a GM region of a supported
    dtype. Atomic adds to the same bytes from different pipes need no ordering among
    themselves (they commute up to rounding; the simulator applies them in completion order)."""
    from npusim.engine.errors import ProgramError

    if atomic not in ("", "add"):
        raise ProgramError(f"{where}: atomic must be '' or 'add', got {atomic!r}")
    if atomic and dst.buffer != "GM":
        raise ProgramError(f"{where}: atomic add needs a GM destination, not {dst.buffer}")
    if atomic and dst.dtype not in ATOMIC_ADD_DTYPES:
        raise ProgramError(f"{where}: atomic add into {dst.dtype} is not supported "
                           f"(dtypes: {', '.join(ATOMIC_ADD_DTYPES)})")


def _copy_fn(src: Region, dst: Region) -> Callable[[Any], None]:
    def copy(ctx: Any) -> None:
        data = ctx.read(src)
        ctx.write(dst, data.reshape(dst.shape) if data.size == int(np.prod(dst.shape)) else data)

    return copy
