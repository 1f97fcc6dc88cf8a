"""Pydantic model of a whole SoC: core kinds, chip memory, sync limits, declared numerics.

``SocDescriptor`` is the accessor API the engine uses (``core_counts``, ``core``, ``freq_mhz``,
``bytes_per_cycle``, ``peak_tflops``, ``supports``). Per-core models live in ``schema_core``.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

import yaml
from pydantic import Field, model_validator

from npusim.hw.dtypes import canonical_dtype
from npusim.hw.errors import DescriptorError
from npusim.hw.schema_core import (
    SOURCE_DESCRIPTION,
    CoreDescriptor,
    CoreKind,
    Intrinsic,
    Model,
    NonNegInt,
    PositiveFloat,
    PositiveInt,
)

SCHEMA_VERSION = 1

#: core kinds each organisation must have (hardware.md 2.1)
ORGANISATION_KINDS: dict[str, tuple[str, ...]] = {
    "split": ("aic", "aiv"),
    "coupled": ("aicore", "vector_core"),
}

#: features ``SocDescriptor.supports`` derives from the descriptor (besides intrinsic names)
DERIVED_FEATURES = (
    "fixpipe",
    "fp16_cube",
    "bf16_cube",
    "fp32_cube",
    "hf32_cube",
    "int8_cube",
    "int4_cube",
    "l0c_to_ub",
    "l1_to_ub",
    "bias_table",
    "cross_core_flags",
)


class HbmSpec(Model):
    """Device memory (HBM on A2/A3, LPDDR4X on 310P), shared by all cores."""

    kind: Literal["HBM", "LPDDR4X"] = Field(description="Memory technology")
    capacity_bytes: PositiveInt = Field(description="Device memory capacity in bytes")
    bandwidth_gb_per_s: PositiveFloat = Field(
        description="Achievable chip-wide bandwidth in GB/s (1e9 B/s), reads plus writes"
    )
    latency_cycles: NonNegInt = Field(
        description="Extra first-byte latency of a device-memory access beyond an L2 hit, cycles"
    )
    request_overhead_bytes: NonNegInt = Field(
        0, description="Bytes of channel time each DMA request costs on top of its payload"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class L2Spec(Model):
    """The chip-level L2 cache."""

    capacity_bytes: PositiveInt = Field(description="L2 capacity in bytes")
    bandwidth_gb_per_s: PositiveFloat = Field(
        description="Chip-wide L2 bandwidth in GB/s (1e9 B/s), mixed reads and writes"
    )
    line_bytes: PositiveInt = Field(description="L2 line size in bytes")
    hit_latency_cycles: NonNegInt = Field(description="Latency of an L2 hit in core cycles")
    miss_extra_latency_cycles: NonNegInt = Field(
        description="Additional latency of an L2 miss in core cycles"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)


class MemorySpec(Model):
    """Chip memory hierarchy below the cores."""

    hbm: HbmSpec = Field(description="Device memory")
    l2: L2Spec = Field(description="L2 cache")


class SyncSpec(Model):
    """Synchronisation limits (hardware.md 2.3)."""

    event_ids: PositiveInt = Field(description="SetFlag/WaitFlag event ids per pipe pair (0..n-1)")
    user_event_ids: PositiveInt = Field(description="Event ids free for user kernels")
    cross_core_flag_ids: NonNegInt = Field(
        description="CrossCoreSetFlag flag ids (0..n-1); 0 = no cross-core flags"
    )
    cross_core_counter_max: NonNegInt = Field(
        description="Sets a cross-core flag counter holds before it saturates"
    )
    source: str = Field(min_length=1, description=SOURCE_DESCRIPTION)

    @model_validator(mode="after")
    def _user_within(self) -> SyncSpec:
        if self.user_event_ids > self.event_ids:
            raise ValueError(
                f"user_event_ids={self.user_event_ids}: must not exceed event_ids={self.event_ids}"
            )
        return self


class CubeAccumulation(Model):
    """The declared accumulation order of the cube (the hardware's is not published)."""

    model: Literal["fractal_exact_fp32_sequential", "exact_round_once"] = Field(
        description="fractal_exact_fp32_sequential: each k-fractal's products are summed exactly "
        "and rounded once to fp32 (RNE), fractal sums are added to the fp32 L0C accumulator in "
        "increasing k order, each add RNE, bias initialises the accumulator; exact_round_once: "
        "the whole dot product (plus bias) is exact and rounded once"
    )
    description: str = Field(description="The model in words, and why it was chosen")


class L0cToUbDequant(Model):
    """The declared rounding of the coupled core's dequantising L0C -> UB DataCopy (DEQ16 /
    VDEQ16 / DEQ8 / VDEQ8; the order of its steps is published, its roundings are not)."""

    model: Literal["fixpipe_equivalent"] = Field(
        description="fixpipe_equivalent: the A2 FixPipe models with M = the parameter's whole low "
        "32 bits as float32 - DEQ16: fp16(fp32(acc) * M), both RNE, saturating; DEQ8: "
        "clip(clip(rint(fp32(acc) * M), -256, 255) + offset, -128, 127)"
    )
    description: str = Field(description="The model in words, its sources, and why it was chosen")


class Hf32Model(Model):
    """The declared HF32 format of the cube's HF32 mode (its rounding modes are published -
    AscendC SetHF32 / SetHF32Mode - its mantissa width is not)."""

    mantissa_bits: int = Field(ge=1, le=23, description="Stored mantissa bits kept of fp32's 23 "
                               "(declared; the width is not published)")
    rounding: Literal["rne", "ties_away"] = Field(
        description="fp32 -> HF32 rounding: rne = to nearest, ties to even (SetHF32 transMode 0, "
        "the default); ties_away = to nearest, ties away from zero (transMode 1)")
    description: str = Field(description="The model in words, its sources, and why it was chosen")


class NumericsSpec(Model):
    """Declared numerical behaviour that the hardware documentation leaves open."""

    cube_accumulation: CubeAccumulation = Field(description="Cube accumulation model")
    split_k_reduction_order: Literal["core_index_ascending"] = Field(
        description="Order in which split-K partial sums from several cores are added"
    )
    hf32: Hf32Model | None = Field(
        None, description="Declared HF32 format of the cube's HF32 mode (allow_hf32 with fp32 "
        "inputs); None on cubes without the mode"
    )
    l0c_to_ub_dequant: L0cToUbDequant | None = Field(
        None, description="Dequantising L0C -> UB DataCopy of a coupled core (310P); None on "
        "cores without that path"
    )


class SocDescriptor(Model):
    """A whole SoC, resolved (base files and core references merged)."""

    schema_version: Literal[1] = Field(description="Version of this descriptor schema")
    name: str = Field(min_length=1, description="SoC version string, e.g. Ascend910B2")
    family: str = Field(min_length=1, description="Product family, e.g. Atlas A2")
    description: str = Field(description="Provenance and the derived peak check, in words")
    organisation: Literal["split", "coupled"] = Field(
        description="split: AIC + 2 AIV per AI Core; coupled: cube+vector AI Cores plus "
        "stand-alone vector cores"
    )
    aicore_freq_mhz: PositiveInt = Field(description="AI Core clock in MHz (INI cube_freq)")
    cores: dict[CoreKind, CoreDescriptor] = Field(description="Core kinds by name")
    memory: MemorySpec = Field(description="Chip memory hierarchy")
    sync: SyncSpec = Field(description="Synchronisation limits")
    kernel_launch_cycles: NonNegInt = Field(
        0,
        description="Fixed cost of one kernel launch (scheduling to the cores and the end "
        "response, part of the profiler's Task Duration) in AI-core cycles; added before the "
        "first instruction",
    )
    kernel_launch_per_block_cycles: NonNegInt = Field(
        0,
        description="Dispatch cost of each further block (AI Core) of a launch in AI-core "
        "cycles: block b starts kernel_launch_cycles + b x this after the launch",
    )
    kernel_launch_cube_cycles: NonNegInt | None = Field(
        None, description="kernel_launch_cycles for a cube-only kernel (AIC cores only); "
        "null = kernel_launch_cycles"
    )
    kernel_launch_cube_per_block_cycles: NonNegInt | None = Field(
        None, description="kernel_launch_per_block_cycles for a cube-only kernel; null = the "
        "vector value"
    )
    kernel_launch_mix_cycles: NonNegInt | None = Field(
        None, description="kernel_launch_cycles for a mix kernel (AIC and AIV); null = "
        "kernel_launch_cycles"
    )
    kernel_launch_mix_per_block_cycles: NonNegInt | None = Field(
        None, description="kernel_launch_per_block_cycles for a mix kernel; null = the "
        "vector value"
    )
    numerics: NumericsSpec = Field(description="Declared numerics")
    provenance: tuple[str, ...] = Field(
        (), description="Files merged into this descriptor, most general first"
    )
    overrides_applied: tuple[str, ...] = Field(
        (), description="What-if overrides and patches applied on top of the files"
    )

    @model_validator(mode="before")
    @classmethod
    def _order_cores(cls, data: object) -> object:
        """List core kinds in the organisation's order (aic before aiv, aicore before vector)."""
        if isinstance(data, dict) and isinstance(data.get("cores"), dict):
            order = [k for kinds in ORGANISATION_KINDS.values() for k in kinds]
            cores = data["cores"]
            ranked = sorted(cores, key=lambda k: order.index(k) if k in order else len(order))
            data = {**data, "cores": {k: cores[k] for k in ranked}}
        return data

    @model_validator(mode="after")
    def _organisation(self) -> SocDescriptor:
        want = ORGANISATION_KINDS[self.organisation]
        if tuple(sorted(self.cores)) != tuple(sorted(want)):
            raise ValueError(
                f"cores: a {self.organisation} SoC has core kinds {', '.join(want)}, got "
                f"{', '.join(self.cores) or 'none'}"
            )
        for kind, core in self.cores.items():
            if core.kind != kind:
                raise ValueError(f"cores.{kind}.kind={core.kind!r}: must equal its key {kind!r}")
        if self.organisation == "split":
            aic, aiv = self.cores["aic"], self.cores["aiv"]
            if aiv.count != 2 * aic.count:
                raise ValueError(
                    f"cores.aiv.count={aiv.count}: a split SoC has 2 AIV per AIC "
                    f"(cores.aic.count={aic.count})"
                )
        return self

    # -- accessors used by the engine ------------------------------------------------------
    def launch_cycles(self, kinds: set[str] | frozenset[str]) -> tuple[int, int]:
        """(launch floor, per-block dispatch) in cycles for a kernel whose cores are of
        ``kinds``: mix (AIC + AIV), cube-only (AIC) or the default (vector / coupled)."""
        floor, per_block = self.kernel_launch_cycles, self.kernel_launch_per_block_cycles
        if {"aic", "aiv"} <= set(kinds):
            f, b = self.kernel_launch_mix_cycles, self.kernel_launch_mix_per_block_cycles
        elif set(kinds) == {"aic"}:
            f, b = self.kernel_launch_cube_cycles, self.kernel_launch_cube_per_block_cycles
        else:
            f = b = None
        return (floor if f is None else f), (per_block if b is None else b)

    def core_counts(self) -> dict[str, int]:
        """Cores per kind, e.g. {"aic": 24, "aiv": 48}."""
        return {k: c.count for k, c in self.cores.items()}

    def core(self, kind: str) -> CoreDescriptor:
        """The description of core kind ``kind``; DescriptorError if the SoC has none."""
        if kind not in self.cores:
            raise DescriptorError(
                f"{self.name}: kind={kind!r}: no such core kind; this SoC has "
                f"{', '.join(self.cores)}"
            )
        return self.cores[kind]

    def freq_mhz(self, kind: str) -> int:
        """Clock of core kind ``kind`` in MHz."""
        core = self.core(kind)
        return core.freq_mhz if core.freq_mhz is not None else self.aicore_freq_mhz

    def bytes_per_cycle(self, gb_per_s: float, kind: str = "aic") -> float:
        """A chip bandwidth in GB/s (1e9 B/s) as bytes per cycle of core kind ``kind``.

        ``kind`` defaults to "aic"; on a coupled SoC "aic" means the AI Core clock.
        """
        if gb_per_s <= 0:
            raise ValueError(f"gb_per_s={gb_per_s}: must be positive")
        freq = self.aicore_freq_mhz if kind in ("aic", "aicore") else self.freq_mhz(kind)
        return gb_per_s * 1e9 / (freq * 1e6)

    def peak_tflops(self, dtype: str) -> float:
        """Dense cube peak: sum over cube-bearing core kinds of count x MACs x 2 x clock."""
        name = canonical_dtype(dtype)
        total = 0.0
        for kind, core in self.cores.items():
            if core.cube is not None and name in core.cube.dtypes:
                macs = core.cube.macs_per_cycle(name)
                total += core.count * macs * 2 * self.freq_mhz(kind) * 1e6
        if total == 0.0:
            raise ValueError(f"dtype={dtype!r}: no cube on {self.name} supports {name}")
        return total / 1e12

    def supports(self, feature: str) -> bool:
        """Whether the SoC has ``feature``: a derived feature (see DERIVED_FEATURES) or an
        intrinsic family listed by any of its cores."""
        cubes = [c.cube for c in self.cores.values() if c.cube is not None]
        cube_dtype = {
            "fp16_cube": "float16",
            "bf16_cube": "bfloat16",
            "fp32_cube": "float32",
            "hf32_cube": "hfloat32",
            "int8_cube": "int8",
            "int4_cube": "int4",
        }
        if feature in cube_dtype:
            return any(cube_dtype[feature] in c.dtypes for c in cubes)
        if feature == "fixpipe":
            return any(c.fixpipe is not None for c in self.cores.values())
        if feature == "l0c_to_ub":
            return any(c.transfer("L0C", "UB") is not None for c in self.cores.values())
        if feature == "l1_to_ub":
            return any(c.transfer("L1", "UB") is not None for c in self.cores.values())
        if feature == "bias_table":
            return any("BT" in c.buffers for c in self.cores.values())
        if feature == "cross_core_flags":
            return self.sync.cross_core_flag_ids > 0
        if feature in get_args(Intrinsic):
            return any(feature in c.intrinsics for c in self.cores.values())
        raise ValueError(
            f"feature={feature!r}: unknown; known: {', '.join(DERIVED_FEATURES)} and the "
            f"intrinsic families {', '.join(get_args(Intrinsic))}"
        )

    def model_dump_yaml(self) -> str:
        """The resolved descriptor as YAML; the text validates as a descriptor file again."""
        header = (
            f"# {self.name}: resolved descriptor (schema {self.schema_version}).\n"
            f"# Files: {', '.join(self.provenance) or '-'}\n"
        )
        if self.overrides_applied:
            header += f"# What-if: {'; '.join(self.overrides_applied)}\n"
        body = cast(str, yaml.dump(  # PyYAML ships no type stubs
            self.model_dump(mode="json"), Dumper=_FlowListDumper, sort_keys=False,
            allow_unicode=True, width=200,
        ))
        return header + body


class _FlowListDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no stubs: Any base
    """Block-style mappings; lists of scalars (or of scalar pairs) on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[object]) -> yaml.Node:
    flat = all(
        not isinstance(x, dict | list) or (isinstance(x, list) and not any(
            isinstance(y, dict | list) for y in x))
        for x in data
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_FlowListDumper.add_representer(list, _represent_list)
