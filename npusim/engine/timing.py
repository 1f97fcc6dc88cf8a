"""The cost table's local costs, from the SoC descriptor (hardware.md 2.9): head latency + work /
throughput, one function per instruction class (dispatched by ``npusim.engine.sim``'s ``_COST``).

Costs here are pure functions of an instruction and a core description; they never compute values.
GM-side effects (shared HBM / L2 bandwidth, hits and misses) are added by ``npusim.engine.memory``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from npusim.engine import gm_cost
from npusim.engine.errors import ProgramError
from npusim.isa.instructions import FixPipe, Mmad, Scalar, Vector
from npusim.isa.instructions import Instruction as Instr
from npusim.isa.operands import Region

if TYPE_CHECKING:
    from npusim.hw.schema_core import CoreDescriptor, InFlightSpec

VECTOR_REPEAT_BYTES = 256
RAW_WINDOW = 64  # vector writes remembered for the auto-sync RAW rule (vector_raw_barriers)


def dma_local_cycles(core: CoreDescriptor, instr: Instr, pipelined: bool = False) -> int:
    """Latency + bytes / bandwidth(bytes) of the core-side DMA engine, plus the layout surcharge
    (:mod:`npusim.engine.gm_cost`): (factor - 1) x bytes at the path's large-transfer rate for GM
    rows that are short, strided or not 512 B aligned and for the C0 padding of an ND -> NZ copy
    (factor 1, no surcharge, for the contiguous aligned copies the curves were measured with).

    ``pipelined``: the copy directly follows another DataCopy on the same pipe (see
    :func:`dma_pipelined`), so its request latency overlaps that copy's transfer: it pays the
    curve time less the path's ``overlap_cycles`` (``nd2nz_overlap_cycles`` when it converts),
    never less than its bytes at the path's large-transfer rate. A lone copy keeps the curve."""
    src = instr.reads[0]
    dst = instr.writes[0]
    spec = core.transfer(src.buffer, dst.buffer)
    if spec is None:
        raise ProgramError(f"no data path {src.buffer}->{dst.buffer} on this core")
    nbytes = max(src.nbytes, dst.nbytes)
    transform = instr.params.get("transform", "")
    bpc = spec.bytes_per_cycle(nbytes, transform) if transform else spec.bytes_per_cycle(nbytes)
    cycles = nbytes / bpc
    factor = gm_cost.gm_side_factor(core, src, dst, transform)
    overlap = 0.0
    if pipelined:
        overlap = spec.nd2nz_overlap_cycles if transform in gm_cost.NZ_TRANSFORMS else (
            spec.overlap_cycles)
    if factor > 1.0 or overlap:  # the extra bursts stream at the path's large-transfer rate
        plateau = spec.bytes_per_cycle(1 << 40, transform) if transform else spec.bytes_per_cycle(
            1 << 40)
        if overlap:
            cycles = max(cycles - overlap, nbytes / plateau)
        cycles += (factor - 1.0) * nbytes / plateau
    return int(spec.latency_cycles) + math.ceil(cycles)


def dma_pipelined(core: CoreDescriptor, instr: Instr, previous: Instr | None) -> bool:
    """Whether ``instr`` (a DataCopy) overlaps the ``previous`` instruction of its pipe's queue:
    the previous one is a DataCopy too and the path declares an overlap (DMA engines keep
    several requests outstanding, so back-to-back copies issue while the earlier data streams;
    a flag, barrier or wait in between drains the pipe). Static: the same for both engines."""
    if previous is None or previous.kind != "dma":
        return False
    spec = core.transfer(instr.reads[0].buffer, instr.writes[0].buffer)
    if spec is None:
        return False
    nz = instr.params.get("transform", "") in gm_cost.NZ_TRANSFORMS
    return bool(spec.nd2nz_overlap_cycles if nz else spec.overlap_cycles)


def in_flight_of(core: CoreDescriptor, instr: Instr) -> tuple[InFlightSpec, float] | None:
    """(the core's GM read in-flight limit, the GM layout factor of the read) when the limit
    applies to this DataCopy's path, else None. The factor (:mod:`npusim.engine.gm_cost`) scales
    the streamed bytes: short or misaligned rows occupy more of the bytes in flight per payload."""
    spec = getattr(core, "gm_read_in_flight", None)
    src, dst = instr.reads[0], instr.writes[0]
    if spec is None or src.buffer != "GM" or f"GM->{dst.buffer}" not in spec.paths:
        return None
    factor = gm_cost.layout_factor(getattr(core, "gm_bursts", None), *gm_cost.region_layout(src),
                                   straddle=instr.params.get("transform", "") in
                                   gm_cost.NZ_TRANSFORMS)
    return spec, factor


def in_flight_round_trips(spec: InFlightSpec, miss_latency: int) -> tuple[int, int, float]:
    """(hit, miss, streaming) round trips of :func:`in_flight_cycles`: a hit's request latency,
    plus ``miss_latency`` for a miss, and the effective round trip of missed bytes under the
    descriptor's ``miss_bandwidth_ratio`` (the compiled loop's encoding reads them here too)."""
    hit_rt = spec.request_latency_cycles
    miss_rt = hit_rt + miss_latency
    ratio = getattr(spec, "miss_bandwidth_ratio", None)
    return hit_rt, miss_rt, (max(miss_rt, ratio * hit_rt) if ratio else miss_rt)


def in_flight_cycles(spec: InFlightSpec, nbytes: int, missed: int, miss_latency: int,
                     factor: float = 1.0, pipelined: bool = False) -> float:
    """Cycles a GM read of ``nbytes`` takes when ``missed`` of them miss in L2, under the core's
    bytes-in-flight limit (Little's law, descriptor ``gm_read_in_flight``): every request waits
    the L2 round trip plus ``miss_latency``; at most ``outstanding_bytes`` are in flight, so the
    missed bytes stream at outstanding / (round trip + miss latency) and the hit ones at
    outstanding / round trip, both slowed by the layout ``factor``; with the descriptor's
    ``miss_bandwidth_ratio`` r the missed bytes stream no faster than the hit rate / r (an
    effective round trip of max(hit + miss latency, r x hit) per outstanding window). The engine
    takes the larger of this and the path's curve time. A ``pipelined`` copy (see
    :func:`dma_pipelined`) issued its requests behind the previous copy: no round trip of its own;
    a lone one is not bound at all when the descriptor says ``lone_copies: false`` (0 here)."""
    if not (pipelined or getattr(spec, "lone_copies", True)):
        return 0.0  # a lone copy keeps its curve (descriptor: the curve holds its misses)
    hit_rt, miss_rt, stream_rt = in_flight_round_trips(spec, miss_latency)
    missed = min(missed, nbytes)
    return (0 if pipelined else miss_rt) + factor * (
        missed * stream_rt + (nbytes - missed) * hit_rt) / spec.outstanding_bytes


def mmad_cycles(core: CoreDescriptor, instr: Mmad, pipe_was_idle: bool) -> int:
    """Cube: head (if the pipe was idle) + fractal count x cycles per fractal."""
    cube = core.cube
    if cube is None:
        raise ProgramError("this core has no cube unit")
    dtype = instr.dtype
    m0, k0, n0 = cube.fractal_mkn(dtype)
    fractals = math.ceil(instr.m / m0) * math.ceil(instr.k / k0) * math.ceil(instr.n / n0)
    per_fractal = (m0 * k0 * n0) / cube.macs_per_cycle(dtype)
    head = cube.head_cycles if pipe_was_idle else cube.issue_cycles
    return int(head) + math.ceil(fractals * per_fractal)


def vector_repeats(elements: int, dtype_bytes: float) -> int:
    return max(1, math.ceil(elements * dtype_bytes / VECTOR_REPEAT_BYTES))


def bank_conflict_factor(core: CoreDescriptor, srcs: tuple[Region, ...]) -> int:
    """Cycles one 256 B repeat needs on the UB read ports (hardware.md 2.5, the bank-group rule).

    Each source reads 8 consecutive 32 B blocks; bank group = (addr >> 5) % groups. The vector
    unit reads one block per group per cycle, so a repeat takes as many cycles as the most-read
    group. Writes have their own port; a read and a write in the same bank cost nothing extra in
    this model: calibration rows H3-H5 (x, y, z in one bank for 8 KiB tiles, in two banks for 32
    KiB tiles) all measure ~2 cycles per repeat, which the read-group rule alone explains.
    """
    vec = core.vector
    if vec is None:  # (vector_cycles checks first; the same error for a direct call)
        raise ProgramError("this core has no vector unit")
    groups = vec.ub_bank_groups
    block = vec.ub_block_bytes
    blocks = VECTOR_REPEAT_BYTES // block
    reads: dict[int, int] = {}
    for r in srcs:
        if r.buffer != "UB":
            continue
        first = r.offset // block
        for i in range(blocks):
            g = (first + i) % groups
            reads[g] = reads.get(g, 0) + 1
    return max(reads.values(), default=1)


def vector_cycles(core: CoreDescriptor, instr: Vector, pipe_was_idle: bool,
                  dtype_bytes: float) -> int:
    """Vector: head (if idle) + repeats x cycles-per-repeat(class) x bank-conflict factor, plus
    the count-mode floor of a binary / divide op that leaves a partial 256 B repeat."""
    vec = core.vector
    if vec is None:
        raise ProgramError("this core has no vector unit")
    op_class = instr.op_class
    repeats = vector_repeats(instr.elements, dtype_bytes)
    cpr = vec.cycles_per_repeat(op_class, instr.dtype)  # per-dtype rates where cited
    factor = bank_conflict_factor(core, instr.reads) if op_class in ("binary", "ternary") else 1
    head = vec.head_cycles if pipe_was_idle else 0
    floor = 0  # count-mask dispatch of an ALU op whose bytes leave a partial repeat (PTO)
    if op_class in ("binary", "divide") and instr.elements * dtype_bytes % VECTOR_REPEAT_BYTES:
        floor = getattr(vec, "count_mode_floor_cycles", 0)
    return int(head) + floor + math.ceil(repeats * cpr * factor)


def fixpipe_cycles(core: CoreDescriptor, instr: FixPipe, pipe_was_idle: bool) -> int:
    """FixPipe: latency (if idle) + output elements / elements per cycle (fp32 out is capped)."""
    fix = core.fixpipe
    if fix is None:
        raise ProgramError("this core has no FixPipe (310P drains L0C through the vector pipe)")
    rate = fix.elements_per_cycle
    if instr.out_dtype in ("float32", "int32"):
        rate = min(rate, fix.max_fp32_elements_per_cycle)
    head = fix.latency_cycles if pipe_was_idle else 0
    # NZ -> ND into GM: the output rows' burst cost (gm_cost; 1 for aligned rows)
    factor = gm_cost.gm_side_factor(core, instr.reads[0], instr.writes[0])
    return int(head) + math.ceil(instr.elements / rate * factor)


def scalar_cycles(core: CoreDescriptor, instr: Scalar) -> int:
    return max(1, math.ceil(instr.count * core.scalar.cycles_per_instruction))


def flag_cycles(core: CoreDescriptor) -> int:
    return max(1, int(core.scalar.flag_cycles))


def vector_raw_barriers(queue: Iterable[Instr]) -> frozenset[int]:
    """Positions in one core's V-pipe queue (program order, every instruction on pipe V) of the
    vector instructions that read UB bytes an earlier vector instruction wrote since the last
    barrier: there the compiler's auto-sync puts a PipeBarrier<PIPE_V> (DEVKIT PipeBarrier doc:
    a vector instruction reading another's output must wait for it to finish; with auto-sync on,
    the default, the compiler inserts the PIPE_V sync), so the reader starts on a drained pipe
    and pays the head latency. A PipeBarrier on V or a SetFlag from V (which waits for V's
    earlier work) ends the window. Overlap is by byte hull [offset, end) per buffer (declared: a
    strided region counts its whole span; at most the last ``RAW_WINDOW`` writes are kept).
    Static: the same set for both engines."""
    from npusim.isa.instructions import Cast, PipeBarrier, SetFlag, Vector

    marked: list[int] = []
    pending: list[tuple[str, int, int]] = []
    span: dict[int, tuple[str, int, int]] = {}  # id(region) -> (buffer, start, end)

    def hull(r: Region) -> tuple[str, int, int]:
        got = span.get(id(r))
        if got is None:
            got = span[id(r)] = (r.buffer, r.offset, r.end)
        return got

    for i, ins in enumerate(queue):
        cls = type(ins)
        if cls is Vector or cls is Cast:
            if pending:
                for r in ins.reads:
                    b, lo_r, hi_r = hull(r)
                    if any(lo < hi_r and lo_r < hi and pb == b for pb, lo, hi in pending):
                        marked.append(i)
                        pending = []
                        break
            for w in ins.writes:
                if w.buffer != "GM":
                    pending.append(hull(w))
            if len(pending) > RAW_WINDOW:
                del pending[:-RAW_WINDOW]
        elif cls is PipeBarrier or (cls is SetFlag and cast(SetFlag, ins).src_pipe == "V"):
            pending = []
    return frozenset(marked)
