"""Typed, frozen instructions: what an Ascend C kernel issues, one class per instruction family.

Every instruction names its pipe, the regions it reads and writes, and its typed parameters. The
engine dispatches on the class: costs come from ``npusim.engine.timing`` (the cost table), values
from ``npusim.isa.semantics`` (the semantics table). ``fn`` lets a program supply an
instruction's value semantics itself; it is being retired (``npusim.isa.semantics`` reports
which kernels still use it) and is never consulted in timing-only runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region

Semantics = Callable[[Any], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """Base of every instruction: the pipe that executes it, its name in traces, its operands."""

    pipe: str
    name: str
    reads: tuple[Region, ...] = ()
    writes: tuple[Region, ...] = ()
    fn: Semantics | None = None

    kind: ClassVar[str] = ""

    @property
    def params(self) -> dict[str, Any]:
        """The typed parameters as a dict (for reports and older callers)."""
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class DataCopy(Instruction):
    """DataCopy / Nd2Nz / Fixpipe-free moves on MTE1/MTE2/MTE3 (or V on coupled cores):
    ``reads[0]`` -> ``writes[0]``, with an on-the-fly ``transform``, an L2 cache hint on GM reads
    (``bypass`` = SetL2CacheHint no-allocate) and ``atomic="add"`` (SetAtomicAdd) into GM.

    ``deq`` (a coupled core's L0C -> UB copy, DataCopyEnhancedParams.deqScale): DEQ16 / DEQ8
    with the uint64 parameter ``deq_value``, VDEQ16 / VDEQ8 with one parameter per column read
    from UB (``reads[1]``), see :mod:`npusim.numerics.l0c_dequant`."""

    transform: str = ""
    l2_cache: str = "normal"
    atomic: str = ""
    deq: str = ""
    deq_value: int | None = None
    kind: ClassVar[str] = "dma"

    @property
    def src(self) -> Region:
        return self.reads[0]

    @property
    def dst(self) -> Region:
        return self.writes[0]

    @property
    def params(self) -> dict[str, Any]:
        return {"src": self.reads[0].buffer, "dst": self.writes[0].buffer,
                "l2_cache": self.l2_cache, "transform": self.transform, "atomic": self.atomic}


@dataclass(frozen=True, slots=True, kw_only=True)
class Mmad(Instruction):
    """Cube matmul L0A (m x k) x L0B (k x n) -> L0C (m x n): ``reads`` = (a, b[, c][, bias]).

    ``accumulate`` adds onto L0C; otherwise L0C is initialised (from the bias table when
    ``has_bias``). ``accumulation`` names the declared fp accumulation model
    (``numerics.cube_accumulation.model``); integer products are exact. ``hf32`` (e.g.
    ``m10_rne``): HF32 mode, fp32 operands rounded to the declared HF32 (``numerics.hf32``)
    first."""

    m: int
    k: int
    n: int
    dtype: str
    accumulate: bool = False
    has_bias: bool = False
    accumulation: str = ""
    hf32: str = ""
    kind: ClassVar[str] = "mmad"

    @property
    def params(self) -> dict[str, Any]:
        return {"m": self.m, "k": self.k, "n": self.n, "dtype": self.dtype}


@dataclass(frozen=True, slots=True, kw_only=True)
class Vector(Instruction):
    """A vector-unit instruction over ``elements`` elements of ``dtype`` (repeats of 256 B).

    ``op`` selects the semantics; ``cost_class`` the descriptor's cycles-per-repeat class
    (defaults to the opcode's). ``scalar`` is the scalar operand of Adds / Muls / Maxs / Mins /
    Axpy / Duplicate. Operands are whole regions: a source whose shape broadcasts to the
    destination's (a (n,) row against (rows, n)) stands for a repeat stride of 0 - the declared
    addressing model; the element order within a repeat is the region's row-major order."""

    op: VecOp
    elements: int
    dtype: str
    cost_class: str = ""
    scalar: float | int | None = None
    kind: ClassVar[str] = "vec"

    @property
    def op_class(self) -> str:
        return self.cost_class or self.op.cost_class

    @property
    def params(self) -> dict[str, Any]:
        return {"op_class": self.op_class, "elements": self.elements, "dtype": self.dtype}


@dataclass(frozen=True, slots=True, kw_only=True)
class Cast(Vector):
    """Vector Cast ``reads[0]`` -> ``writes[0]`` with a rounding mode (``npusim.numerics``
    RoundMode name: rint, round, floor, ceil, trunc, odd; ``none`` = exact widening) and
    saturation (out-of-range values clamp instead of wrapping / becoming inf)."""

    round_mode: str = "rint"
    saturate: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class FixPipe(Instruction):
    """FixPipe L0C -> GM / L1 with the conversion ``mode`` (FixpipeMode) of ``elements``
    elements into ``out_dtype``; ``atomic="add"`` accumulates into GM."""

    elements: int
    out_dtype: str
    mode: str
    atomic: str = ""
    deq_scale: float | None = None  # the scalar scale of DEQF16 / REQ8 (SetFixpipe scalar)
    # the uint64 quant parameter (npu_trans_quant_param's encoding) of REQ8 / QF322B8_PRE
    quant_param: int | None = None
    kind: ClassVar[str] = "fix"

    @property
    def params(self) -> dict[str, Any]:
        return {"elements": self.elements, "out_dtype": self.out_dtype,
                "dst": self.writes[0].buffer, "atomic": self.atomic}


@dataclass(frozen=True, slots=True)
class ScalarStep:
    """One step of a scalar loop's body, over whole regions (the loop runs it element by
    element): ``dst = op(*srcs)``, or ``op(srcs[0], scalar)`` for the scalar-operand opcodes
    (Adds, Ands, ShiftLefts, ...). Values are the semantics table's, in ``dst``'s dtype; a Cast
    step converts an integer element exactly (a value the destination cannot hold is an
    error)."""

    op: VecOp
    dst: Region
    srcs: tuple[Region, ...]
    scalar: int | float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scalar(Instruction):
    """``count`` scalar-unit instructions (address arithmetic, loops, Get/SetValue). ``body``:
    the element-wise steps such a loop computes (GetValue, the arithmetic, SetValue per
    element), executed in order by the semantics table; empty for bookkeeping. ``count`` is the
    whole loop's instruction count (its cost); the body carries the values."""

    count: int
    body: tuple[ScalarStep, ...] = ()
    kind: ClassVar[str] = "scalar"

    @property
    def params(self) -> dict[str, Any]:
        return {"count": self.count}


@dataclass(frozen=True, slots=True, kw_only=True)
class SetFlag(Instruction):
    """SetFlag<src, dst>(event_id), issued on the source pipe."""

    src_pipe: str
    dst_pipe: str
    event_id: int
    kind: ClassVar[str] = "set_flag"

    @property
    def params(self) -> dict[str, Any]:
        return {"src": self.src_pipe, "dst": self.dst_pipe, "id": self.event_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitFlag(Instruction):
    """WaitFlag<src, dst>(event_id), issued on the destination pipe."""

    src_pipe: str
    dst_pipe: str
    event_id: int
    kind: ClassVar[str] = "wait_flag"

    @property
    def params(self) -> dict[str, Any]:
        return {"src": self.src_pipe, "dst": self.dst_pipe, "id": self.event_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeBarrier(Instruction):
    """PipeBarrier<pipe>: the pipe's queue order already serialises it; costs its issue cycle."""

    kind: ClassVar[str] = "barrier"

    @property
    def params(self) -> dict[str, Any]:
        return {"pipe": self.pipe}


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossCoreSetFlag(Instruction):
    """CrossCoreSetFlag<mode, pipe>(flag_id) (hardware.md 2.3)."""

    mode: int
    flag_id: int
    kind: ClassVar[str] = "cross_set"

    @property
    def params(self) -> dict[str, Any]:
        return {"mode": self.mode, "id": self.flag_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossCoreWaitFlag(Instruction):
    """CrossCoreWaitFlag(flag_id) on ``pipe``; ``mode`` must match the setters' mode."""

    mode: int
    flag_id: int
    kind: ClassVar[str] = "cross_wait"

    @property
    def params(self) -> dict[str, Any]:
        return {"mode": self.mode, "id": self.flag_id}


#: every instruction class, for the engine's dispatch tables
INSTRUCTION_TYPES: tuple[type[Instruction], ...] = (
    DataCopy, Mmad, Vector, Cast, FixPipe, Scalar, SetFlag, WaitFlag, PipeBarrier,
    CrossCoreSetFlag, CrossCoreWaitFlag,
)
