"""Pydantic models of one core kind (AIC, AIV, coupled AI Core, stand-alone vector core).

Every model rejects unknown keys and is frozen; integers carry their unit in the field name.
Numbers come from ``shared/reference/hardware.md``; the YAML files cite the source of each.
"""

from __future__ import annotations

import bisect
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from npusim.hw.dtypes import DTYPE_BITS, DtypeName, canonical_dtype

#: Largest integer a descriptor field takes (2^40: bytes of a 1 TiB memory, cycles of minutes),
#: beyond any real part; larger values overflowed the engines' integer cycle arithmetic
MAX_DESCRIPTOR_INT = 2**40
PositiveInt = Annotated[int, Field(strict=True, gt=0, le=MAX_DESCRIPTOR_INT)]
NonNegInt = Annotated[int, Field(strict=True, ge=0, le=MAX_DESCRIPTOR_INT)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0)]
CyclesPerRepeat = Annotated[float, Field(strict=True, gt=0, le=MAX_DESCRIPTOR_INT)]

BufferName = Literal["L1", "L0A", "L0B", "L0C", "UB", "BT", "FB"]
PathEnd = Literal["GM", "L1", "L0A", "L0B", "L0C", "UB", "BT", "FB"]
PipeName = Literal["S", "V", "M", "MTE1", "MTE2", "MTE3", "FIX"]
CoreKind = Literal["aic", "aiv", "aicore", "vector_core"]

#: vector instruction classes every vector unit must describe (hardware.md 2.5)
REQUIRED_VECTOR_CLASSES = (
    "unary", "binary", "special", "ternary", "reduce", "convert", "copy", "dup"
)

#: intrinsic families a core may list in ``intrinsics`` (a closed vocabulary so typos fail)
Intrinsic = Literal[
    "mmad",
    "mmad_sparse",
    "mmad_unit_flag",
    "gemv",
    "load2d",
    "load2d_transpose",
    "load3d",
    "load_sparse",
    "nd2nz",
    "nz2nd",
    "data_copy_pad",
    "fixpipe",
    "l0c_to_ub",
    "ub_to_l0c_broadcast",
    "l1_to_ub",
    "ub_to_l1",
    "vector_alu",
    "vector_special",
    "vector_reduce",
    "vector_convert",
    "vector_gather",
    "vector_sort",
    "cross_core_flag",
    "scalar_gm_access",
]

SOURCE_DESCRIPTION = (
    "Where the numbers come from: hardware.md keys (INI, KPP, PTO, DEVKIT, DOC, CATLASS, HC19, "
    "CM384), a calibration row id, or [D] derived / [G] guess, plus the choice made on conflicts"
)


class Model(BaseModel):
    """Base of all descriptor models: unknown keys rejected, instances frozen, floats finite
    (``.inf`` / ``.nan`` bandwidths or latencies would turn every time into 0 or nan)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BufferSpec(Model):
    """One on-core buffer."""

    capacity_bytes: PositiveInt = Field(description="Physical capacity in bytes")
    alignment_bytes: PositiveInt = Field(
        description="Required start-address alignment of any region in this buffer, bytes"
    )
    reserved_bytes: NonNegInt = Field(
        0,
        description="Bytes the runtime keeps for itself (e.g. Ascend C TMP / KFC areas); "
        "informative, the capacity check uses capacity_bytes",
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)

    @field_validator("alignment_bytes")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"alignment_bytes={v}: must be a power of two")
        return v

    @model_validator(mode="after")
    def _reserved_fits(self) -> BufferSpec:
        if self.reserved_bytes >= self.capacity_bytes:
            raise ValueError(
                f"reserved_bytes={self.reserved_bytes}: must be below "
                f"capacity_bytes={self.capacity_bytes}"
            )
        return self


CurvePoint = tuple[PositiveInt, PositiveFloat]


class TransferSpec(Model):
    """One data path (a DMA instruction family) of a core: latency + bytes / bandwidth(bytes)."""

    pipe: PipeName = Field(description="Pipe that executes this transfer")
    latency_cycles: NonNegInt = Field(
        description="First-data latency of one transfer in core cycles (GM paths: 0 here, the "
        "L2 hit / miss latency of the memory section applies)"
    )
    peak_bytes_per_cycle: PositiveFloat = Field(
        description="Peak core-side bandwidth in bytes per core cycle"
    )
    curve: tuple[CurvePoint, ...] = Field(
        (),
        description="Measured [size_bytes, bytes_per_cycle] points, sizes increasing; "
        "interpolated linearly and clamped at both ends; empty = peak at every size",
    )
    nd2nz_curve: tuple[CurvePoint, ...] = Field(
        (),
        description="Measured [size_bytes, bytes_per_cycle] points of the same path when it "
        "converts ND to FRACTAL_NZ on the fly (GM->L1 nd2nz / dn2nz); empty = use `curve`",
    )
    overlap_cycles: float = Field(
        0.0, ge=0, le=MAX_DESCRIPTOR_INT,
        description="Cycles of a lone copy's curve time that a copy issued directly after "
        "another DataCopy on the same pipe hides behind it (its request latency overlaps the "
        "previous copy's transfer; npusim.engine.timing.dma_local_cycles). 0 = no overlap",
    )
    nd2nz_overlap_cycles: float = Field(
        0.0, ge=0, le=MAX_DESCRIPTOR_INT,
        description="overlap_cycles of the same path when it converts ND to FRACTAL_NZ",
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)

    @model_validator(mode="after")
    def _curve_ok(self) -> TransferSpec:
        for i, (s, bw) in enumerate(self.nd2nz_curve):
            if i and s <= self.nd2nz_curve[i - 1][0]:
                raise ValueError(f"nd2nz_curve: sizes must increase strictly (point {i})")
            if bw > self.peak_bytes_per_cycle * (1 + 1e-9):
                raise ValueError(f"nd2nz_curve: point {i} ({s} B, {bw} B/cyc) exceeds "
                                 f"peak_bytes_per_cycle={self.peak_bytes_per_cycle}")
        sizes = [s for s, _ in self.curve]
        for i in range(1, len(sizes)):
            if sizes[i] <= sizes[i - 1]:
                raise ValueError(
                    f"curve: sizes must increase strictly, point {i} has size {sizes[i]} after "
                    f"{sizes[i - 1]}"
                )
        for i, (s, bw) in enumerate(self.curve):
            if bw > self.peak_bytes_per_cycle * (1 + 1e-9):
                raise ValueError(
                    f"curve: point {i} ({s} B, {bw} B/cyc) exceeds peak_bytes_per_cycle="
                    f"{self.peak_bytes_per_cycle}"
                )
        return self

    def bytes_per_cycle(self, size_bytes: int, transform: str = "") -> float:
        """Bandwidth of a transfer of ``size_bytes``: the measured curve interpolated linearly,
        clamped at its ends; the peak when no curve was measured. ``transform`` "nd2nz" or
        "dn2nz" selects ``nd2nz_curve`` when one was measured."""
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int | float):
            raise TypeError(f"size_bytes={size_bytes!r}: must be a number of bytes")
        if size_bytes <= 0:
            raise ValueError(f"size_bytes={size_bytes}: must be positive")
        curve = self.curve
        if transform in ("nd2nz", "dn2nz") and self.nd2nz_curve:
            curve = self.nd2nz_curve
        if not curve:
            return float(self.peak_bytes_per_cycle)
        sizes = [s for s, _ in curve]
        if size_bytes <= sizes[0]:
            return float(curve[0][1])
        if size_bytes >= sizes[-1]:
            return float(curve[-1][1])
        i = bisect.bisect_right(sizes, size_bytes)
        (s0, b0), (s1, b1) = curve[i - 1], curve[i]
        return b0 + (b1 - b0) * (size_bytes - s0) / (s1 - s0)


class CubeDtypeSpec(Model):
    """Cube throughput and fractal shape for one input dtype."""

    macs_per_cycle: PositiveInt = Field(description="Multiply-accumulates per core cycle")
    fractal_mkn: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        description="(m0, k0, n0): one L0A fractal is m0 x k0, one L0B fractal k0 x n0"
    )
    out_dtypes: tuple[DtypeName, ...] = Field(
        min_length=1, description="L0C / output dtypes the mmad supports for this input"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class CubeSpec(Model):
    """The cube (matrix) unit."""

    head_cycles: NonNegInt = Field(
        description="Latency of an Mmad issued to an idle M pipe, core cycles"
    )
    issue_cycles: NonNegInt = Field(
        description="Overhead of an Mmad issued back-to-back behind another, core cycles"
    )
    max_mkn: PositiveInt = Field(description="Largest m, k or n one Mmad instruction accepts")
    dtypes: dict[DtypeName, CubeDtypeSpec] = Field(
        min_length=1, description="Per input dtype: MACs per cycle, fractal shape, outputs"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)

    @model_validator(mode="after")
    def _fractals_are_512_bytes(self) -> CubeSpec:
        for name, d in self.dtypes.items():
            m0, k0, _ = d.fractal_mkn
            if m0 * k0 * DTYPE_BITS[name] != 512 * 8:
                raise ValueError(
                    f"dtypes.{name}.fractal_mkn={d.fractal_mkn}: an L0A fractal m0 x k0 must hold "
                    f"512 bytes (hardware.md 1.5), got {m0 * k0 * DTYPE_BITS[name] // 8}"
                )
        return self

    @property
    def supported_dtypes(self) -> tuple[str, ...]:
        return tuple(self.dtypes)

    def _spec(self, dtype: object) -> CubeDtypeSpec:
        name = canonical_dtype(dtype)
        if name not in self.dtypes:
            raise ValueError(
                f"dtype={dtype!r}: the cube does not support {name}; supported: "
                f"{', '.join(self.dtypes)}"
            )
        return self.dtypes[name]

    def macs_per_cycle(self, dtype: object) -> int:
        """MACs per cycle for input ``dtype``; ValueError if the cube does not support it."""
        return self._spec(dtype).macs_per_cycle

    def fractal_mkn(self, dtype: object) -> tuple[int, int, int]:
        """(m0, k0, n0) of one cube step for input ``dtype``."""
        return self._spec(dtype).fractal_mkn


class VectorClassSpec(Model):
    """Steady-state cost of one vector instruction class, conflict-free UB layout."""

    cycles_per_repeat: CyclesPerRepeat = Field(
        description="Cycles per 256 B repeat when no UB bank-group conflict occurs"
    )
    by_dtype: dict[DtypeName, CyclesPerRepeat] = Field(
        default_factory=dict, description="Per-dtype cycles per repeat where it differs"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class VectorSpec(Model):
    """The vector unit and the UB bank-group rule (hardware.md 2.5)."""

    head_cycles: NonNegInt = Field(
        description="Latency of a vector instruction issued to an idle V pipe, core cycles"
    )
    repeat_bytes: PositiveInt = Field(description="Bytes processed per repeat (8 blocks x 32 B)")
    max_repeats: PositiveInt = Field(description="Largest repeat count of one instruction")
    mask_bits: PositiveInt = Field(description="Width of the per-repeat element mask")
    ub_bank_groups: PositiveInt = Field(
        description="UB bank groups; group of an address = (addr // ub_block_bytes) % groups"
    )
    ub_block_bytes: PositiveInt = Field(description="Bytes of one UB block (one row of a bank)")
    ub_bank_bytes: PositiveInt = Field(
        description="Bytes spanned by one bank layer across all groups; bank index within a "
        "group = addr // ub_bank_bytes"
    )
    read_blocks_per_group_per_cycle: PositiveInt = Field(
        description="32 B blocks one bank group delivers to the vector unit per cycle"
    )
    count_mode_floor_cycles: NonNegInt = Field(
        default=0,
        description="Extra cycles of a vector ALU instruction (binary / divide classes) whose "
        "byte count is not a multiple of repeat_bytes (count-mask dispatch); 0 = not modelled",
    )
    classes: dict[str, VectorClassSpec] = Field(
        description="Cycles per repeat per instruction class (unary, binary, special, ternary, "
        "reduce, convert, copy, dup, and optional extra classes)"
    )
    supported_dtypes: tuple[DtypeName, ...] = Field(
        min_length=1, description="Element dtypes of vector arithmetic"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)

    @model_validator(mode="after")
    def _classes_complete(self) -> VectorSpec:
        missing = [c for c in REQUIRED_VECTOR_CLASSES if c not in self.classes]
        if missing:
            raise ValueError(f"classes: missing required class(es) {', '.join(missing)}")
        if self.repeat_bytes % self.ub_block_bytes:
            raise ValueError(
                f"repeat_bytes={self.repeat_bytes}: must be a multiple of "
                f"ub_block_bytes={self.ub_block_bytes}"
            )
        return self

    def cycles_per_repeat(self, op_class: str, dtype: object | None = None) -> float:
        """Conflict-free cycles per repeat of ``op_class`` (optionally for ``dtype``)."""
        spec = self.classes.get(op_class)
        if spec is None:
            raise ValueError(
                f"op_class={op_class!r}: unknown vector instruction class; known: "
                f"{', '.join(self.classes)}"
            )
        if dtype is not None:
            name = canonical_dtype(dtype)
            if name in spec.by_dtype:
                return float(spec.by_dtype[name])
        return float(spec.cycles_per_repeat)


class FixpipeSpec(Model):
    """FixPipe: L0C -> GM / L1 with on-the-fly conversion (220x only)."""

    elements_per_cycle: PositiveInt = Field(description="Output elements per core cycle")
    max_fp32_elements_per_cycle: PositiveInt = Field(
        description="Cap on elements per cycle when the output is 32-bit"
    )
    latency_cycles: NonNegInt = Field(description="Latency when the FIX pipe was idle, cycles")
    stages: tuple[str, ...] = Field(description="Conversion stages available on the path")
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class ScalarSpec(Model):
    """The scalar unit (no public CPI table; a rough calibration)."""

    cycles_per_instruction: PositiveFloat = Field(
        description="Average cycles per scalar instruction (loops, Get/SetValue, address math)"
    )
    flag_cycles: PositiveInt = Field(
        description="Issue cycles of a set_flag / wait_flag / barrier / mask-setting instruction"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class GmBurstSpec(Model):
    """How this core's DMA engines cut a GM access into requests (npusim.engine.gm_cost)."""

    granule_bytes: PositiveInt = Field(
        description="Smallest unit fetched from GM (a DataBlock); partial blocks cost whole ones"
    )
    window_bytes: PositiveInt = Field(
        description="Requests never cross a boundary of this many GM bytes (the alignment that "
        "reaches full bandwidth)"
    )
    burst_bytes: tuple[PositiveInt, ...] = Field(
        min_length=1, description="Request lengths the engine issues, increasing; a request's "
        "span is rounded up to the next one"
    )
    request_overhead_bytes: Annotated[float, Field(ge=0, le=2**30)] = Field(
        description="Per-request cost in byte-equivalents of transfer time at peak rate (at "
        "most 2^30: far beyond any real overhead; keeps the engine's cycle arithmetic finite)"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)

    @model_validator(mode="after")
    def _bursts_ok(self) -> GmBurstSpec:
        b = self.burst_bytes
        if any(b[i] <= b[i - 1] for i in range(1, len(b))):
            raise ValueError(f"burst_bytes={b}: must increase strictly")
        if b[-1] != self.window_bytes:
            raise ValueError(
                f"burst_bytes={b}: the largest burst must equal window_bytes={self.window_bytes}"
            )
        if self.window_bytes % self.granule_bytes:
            raise ValueError(
                f"window_bytes={self.window_bytes}: must be a multiple of "
                f"granule_bytes={self.granule_bytes}"
            )
        return self


class InFlightSpec(Model):
    """Bytes one core keeps in flight on its GM read paths (npusim.engine.timing.in_flight_cycles).

    Little's law: a read whose lines miss in L2 waits ``request_latency_cycles`` + the L2 miss
    latency per request, and with at most ``outstanding_bytes`` requested and not yet returned
    its missed bytes stream at no more than outstanding_bytes / that round trip, and no faster
    than the hit rate / ``miss_bandwidth_ratio``. Hits keep the path's measured curve (taken as
    L2-hit measurements)."""

    outstanding_bytes: PositiveInt = Field(
        description="Bytes of GM read requests one core keeps in flight on these paths"
    )
    request_latency_cycles: PositiveInt = Field(
        description="Round trip of one GM read request served by the L2 (hit), core cycles"
    )
    paths: tuple[str, ...] = Field(
        min_length=1, description="Transfer keys ('GM->L1', ...) the limit applies to"
    )
    miss_bandwidth_ratio: float | None = Field(
        None, ge=1.0, description="At least this many times slower than hits do missed bytes "
        "stream (hit rate / miss rate of one core); null = Little's law on the miss latency "
        "alone"
    )
    lone_copies: bool = Field(
        True, description="Whether the limit also binds a copy that does not follow another "
        "DataCopy on its pipe; false = the path's curve is read as holding a lone copy's misses "
        "already, and only back-to-back copies (transfers.*.overlap_cycles) are bound here"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class CoreDescriptor(Model):
    """One core kind of a SoC: buffers, pipes, transfer paths and compute units."""

    kind: CoreKind = Field(description="aic / aiv (split) or aicore / vector_core (coupled)")
    description: str = Field(description="What this core is, in one sentence")
    compiler_target: str = Field(min_length=1, description="bisheng/ccec target of this core")
    count: PositiveInt = Field(description="Cores of this kind available to one kernel launch")
    freq_mhz: PositiveInt | None = Field(
        None, description="Clock of this core kind in MHz; null = the SoC's aicore_freq_mhz"
    )
    pipes: tuple[PipeName, ...] = Field(min_length=1, description="Pipes of this core")
    buffers: dict[BufferName, BufferSpec] = Field(description="Local buffers by name")
    transfers: dict[str, TransferSpec] = Field(
        description="Data paths keyed 'SRC->DST' (GM, L1, L0A, L0B, L0C, UB, BT, FB)"
    )
    cube: CubeSpec | None = Field(None, description="Cube unit, null if the core has none")
    vector: VectorSpec | None = Field(None, description="Vector unit, null if the core has none")
    fixpipe: FixpipeSpec | None = Field(None, description="FixPipe, null if the core has none")
    scalar: ScalarSpec = Field(description="Scalar unit")
    intrinsics: tuple[Intrinsic, ...] = Field(
        (), description="Intrinsic families this core supports (capability flags)"
    )
    gm_bursts: GmBurstSpec | None = Field(
        None, description="GM request model of the DMA engines (layout-dependent cost); null = "
        "layout not modelled, every layout costs as the measured contiguous curves"
    )

    gm_read_in_flight: InFlightSpec | None = Field(
        None, description="Per-core bytes-in-flight limit of GM reads that miss in L2 (Little's "
        "law); null = not modelled, misses cost only the shared HBM channel and its latency"
    )

    _paths: dict[tuple[str, str], TransferSpec] = PrivateAttr(default_factory=dict)

    @field_validator("transfers")
    @classmethod
    def _keys(cls, v: dict[str, TransferSpec]) -> dict[str, TransferSpec]:
        ends = get_args(PathEnd)
        for key in v:
            parts = key.split("->")
            if len(parts) != 2 or parts[0] not in ends or parts[1] not in ends:
                raise ValueError(
                    f"transfers key {key!r}: must be 'SRC->DST' with SRC, DST among "
                    f"{', '.join(ends)}"
                )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CoreDescriptor:
        for key, t in self.transfers.items():
            for end in key.split("->"):
                if end != "GM" and end not in self.buffers:
                    raise ValueError(f"transfers.{key}: this core has no {end} buffer")
            if t.pipe not in self.pipes:
                raise ValueError(f"transfers.{key}.pipe={t.pipe}: not among pipes {self.pipes}")
        needs = (
            (self.cube, ("L0A", "L0B", "L0C"), "M", "cube"),
            (self.vector, ("UB",), "V", "vector"),
            (self.fixpipe, ("L0C",), "FIX", "fixpipe"),
        )
        for unit, bufs, pipe, name in needs:
            if unit is None:
                continue
            for b in bufs:
                if b not in self.buffers:
                    raise ValueError(f"{name}: the core has no {b} buffer")
            if pipe not in self.pipes:
                raise ValueError(f"{name}: the core has no {pipe} pipe")
        if "FIX" in self.pipes and self.fixpipe is None:
            raise ValueError("pipes: FIX listed but fixpipe is null")
        if self.gm_read_in_flight is not None:
            for key in self.gm_read_in_flight.paths:
                if key not in self.transfers or not key.startswith("GM->"):
                    raise ValueError(f"gm_read_in_flight.paths: {key!r} is not a GM read path "
                                     f"of this core (transfers: {', '.join(self.transfers)})")
        return self

    def model_post_init(self, __context: object) -> None:
        paths: dict[tuple[str, str], TransferSpec] = {}
        for key, t in self.transfers.items():
            src, dst = key.split("->")  # two parts: checked by _keys
            paths[(src, dst)] = t
        self._paths = paths

    def transfer(self, src: str, dst: str) -> TransferSpec | None:
        """The data path ``src`` -> ``dst`` of this core, or None when the core has none."""
        return self._paths.get((src, dst))

    def capacity(self, buffer: str) -> int | None:
        """The capacity in bytes of local buffer ``buffer``, or None when this core has none."""
        b = self.buffers.get(buffer)  # type: ignore[call-overload]  # any name; None if absent
        return None if b is None else int(b.capacity_bytes)
