"""A small synthetic SoC implementing the descriptor accessor API, for engine unit tests whose
expected cycle counts should not move when calibrated descriptor numbers change."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace


@dataclass(frozen=True)
class Buf:
    capacity_bytes: int
    alignment_bytes: int


@dataclass(frozen=True)
class Path:
    pipe: str
    latency_cycles: int
    peak_bytes_per_cycle: float
    overlap_cycles: float = 0.0  # no back-to-back overlap: cycles stay the synthetic ones
    nd2nz_overlap_cycles: float = 0.0

    def bytes_per_cycle(self, size_bytes: int) -> float:
        return self.peak_bytes_per_cycle


@dataclass(frozen=True)
class Cube:
    head_cycles: int = 10
    issue_cycles: int = 0

    def macs_per_cycle(self, dtype: str) -> int:
        return {"float16": 4096, "bfloat16": 4096, "int8": 8192, "float32": 1024}[dtype]

    def fractal_mkn(self, dtype: str) -> tuple[int, int, int]:
        return {
            "float16": (16, 16, 16),
            "bfloat16": (16, 16, 16),
            "int8": (16, 32, 16),
            "float32": (16, 8, 16),
        }[dtype]


@dataclass(frozen=True)
class Vec:
    head_cycles: int = 20
    repeat_bytes: int = 256
    max_repeats: int = 255
    ub_bank_groups: int = 16
    ub_block_bytes: int = 32
    ub_bank_bytes: int = 65536

    def cycles_per_repeat(self, op_class: str, dtype: object | None = None) -> float:
        return 1.0


@dataclass(frozen=True)
class Core:
    kind: str
    buffers: dict
    pipes: tuple
    paths: dict
    cube: Cube | None = None
    vector: Vec | None = None
    fixpipe: object | None = None
    scalar: object = field(
        default_factory=lambda: SimpleNamespace(cycles_per_instruction=1.0, flag_cycles=1)
    )

    def transfer(self, src: str, dst: str):
        return self.paths.get((src, dst))


AIC = Core(
    "aic",
    {
        "L1": Buf(524288, 32),
        "L0A": Buf(65536, 512),
        "L0B": Buf(65536, 512),
        "L0C": Buf(131072, 64),
        "BT": Buf(1024, 64),
    },
    ("S", "MTE1", "MTE2", "M", "FIX"),
    {
        ("GM", "L1"): Path("MTE2", 0, 64.0),
        ("L1", "L0A"): Path("MTE1", 0, 256.0),
        ("L1", "L0B"): Path("MTE1", 0, 128.0),
        ("L0C", "GM"): Path("FIX", 0, 128.0),
        ("L1", "BT"): Path("MTE1", 0, 32.0),
    },
    cube=Cube(),
    fixpipe=SimpleNamespace(
        elements_per_cycle=64, latency_cycles=0, max_fp32_elements_per_cycle=32
    ),
)
AIV = Core(
    "aiv",
    {"UB": Buf(196608, 32)},
    ("S", "V", "MTE2", "MTE3"),
    {
        ("GM", "UB"): Path("MTE2", 0, 64.0),
        ("UB", "GM"): Path("MTE3", 0, 64.0),
        ("UB", "UB"): Path("V", 0, 256.0),
    },
    vector=Vec(),
)


class FakeSoc:
    """Two AI Cores (2 AIC + 4 AIV) at 1000 MHz with huge shared bandwidth (no contention)."""

    name = "FakeSoc"
    organisation = "split"
    aicore_freq_mhz = 1000

    def __init__(self, hbm_gb_per_s: float = 1e6, l2_bytes: int = 1 << 30) -> None:
        self.memory = SimpleNamespace(
            hbm=SimpleNamespace(
                bandwidth_gb_per_s=hbm_gb_per_s, latency_cycles=0, request_overhead_bytes=0
            ),
            l2=SimpleNamespace(
                capacity_bytes=l2_bytes,
                bandwidth_gb_per_s=1e6,
                line_bytes=512,
                hit_latency_cycles=0,
                miss_extra_latency_cycles=0,
            ),
        )
        self.sync = SimpleNamespace(
            event_ids=8, user_event_ids=6, cross_core_flag_ids=11, cross_core_counter_max=16
        )

    def core_counts(self) -> dict[str, int]:
        return {"aic": 2, "aiv": 4}

    def core(self, kind: str) -> Core:
        return {"aic": AIC, "aiv": AIV}[kind]

    def freq_mhz(self, kind: str) -> int:
        return 1000

    def bytes_per_cycle(self, gb_per_s: float, kind: str = "aic") -> float:
        return gb_per_s * 1e9 / (self.aicore_freq_mhz * 1e6)
