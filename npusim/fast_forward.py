"""Opt-in fast-forward of a matmul's steady-state K loop (issue 14 item 5): approximate, never
the default.

A matmul core streams K in periods of ``base_k x max(step_ka, step_kb)`` (one L1 load of each
operand per period). After a few periods the pipeline is in its steady state and every further
period adds the same time, so the cycles of the full K are extrapolated from two shorter
simulations of the same tiling, ``PERIODS`` = (4, 8) periods of K (same cores, same N blocks,
same per-period work), along the line through them:

    cycles(P) ~= c(4) + (c(8) - c(4)) x (P - 4) / 4,  P = K / period.

Quantities linear in K by construction (cube MACs, GM / HBM bytes, busy cycles of every pipe)
are extrapolated the same way. It applies to static-grid tilings without split-K whose K is a
whole number of periods and more than 8 periods long; any other call is simulated in full. The
error against full runs is bounded by tests (tests/test_fast_forward.py) and printed by
``benchmarks/bench_sweep.py``; a result says it was fast-forwarded (``kernel_name`` and the
summary's ``fast_forward`` entry).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from npusim.hw.schema import SocDescriptor
    from npusim.ops.matmul_tiling import MatmulTiling
    from npusim.runner import SimResult

#: the two K lengths simulated, in periods
PERIODS = (4, 8)


def k_period(t: MatmulTiling) -> int:
    """K elements per period of the tiling's K loop (one L1 load of each operand)."""
    return int(t.base_k) * max(int(t.step_ka), int(t.step_kb))


def periods(t: MatmulTiling, k: int) -> int | None:
    """K periods of a matmul tiling when fast-forward applies to it, else None."""
    if t.k_dim != 1 or t.block_dim or t.single_core_k != k:
        return None
    unit = k_period(t)
    if k % unit or k // unit <= PERIODS[1]:
        return None
    return k // unit


def _line(y1: float, y2: float, p: int) -> float:
    """The value at ``p`` periods on the line through (PERIODS[0], y1) and (PERIODS[1], y2)."""
    p1, p2 = PERIODS
    return y1 + (y2 - y1) * (p - p1) / (p2 - p1)


@dataclass(frozen=True)
class FastForwardResult:
    """Extrapolated timing of a call (the parts of a ``SimResult`` a sweep reads)."""

    op: str
    soc: SocDescriptor
    kernel_name: str
    tiling: MatmulTiling
    cycles: int
    periods: int
    sampled_cycles: tuple[int, int]
    _summary: dict[str, Any]

    @property
    def microseconds(self) -> float:
        return self.cycles / float(self.soc.aicore_freq_mhz)

    def summary(self) -> dict[str, Any]:
        return dict(self._summary)


def extrapolate(short: SimResult, long: SimResult, p: int, tiling: MatmulTiling
                ) -> FastForwardResult:
    """The call of ``tiling`` at ``p`` periods from its ``SimResult`` at PERIODS[0] (``short``)
    and PERIODS[1] (``long``) periods: cycles on the line, rounded; every integer summary entry
    (bytes, MACs, instruction count) on the line, rounded; busy percentages as busy cycles on
    the line over the extrapolated cycles. Other entries are those of ``long``."""
    cycles = max(1, round(_line(short.cycles, long.cycles, p)))
    a, b = short.summary(), long.summary()
    out: dict[str, Any] = {}
    for key, vb in b.items():
        va = a.get(key)
        if key.endswith("_busy_pct") and isinstance(va, float | int):
            busy = _line(va * short.cycles, vb * long.cycles, p)
            out[key] = round(busy / cycles, 2)
        elif type(vb) is int and type(va) is int:
            out[key] = round(_line(va, vb, p))
        else:
            out[key] = vb
    out["cycles"] = cycles
    out["us"] = round(cycles / long.soc.aicore_freq_mhz, 3)
    name = f"{long.kernel_name} (fast-forward)"
    out["selected_kernel"] = name
    out["fast_forward"] = (f"K loop: {PERIODS[0]} and {PERIODS[1]} of {p} periods of "
                           f"{k_period(tiling)} simulated ({short.cycles}, {long.cycles} "
                           "cycles), the rest extrapolated linearly")
    return FastForwardResult(long.op, long.soc, name, tiling, cycles, p,
                             (short.cycles, long.cycles), out)


def matmul(simulate: Callable[[MatmulTiling, int], SimResult], t: MatmulTiling, k: int
           ) -> SimResult | FastForwardResult:
    """``simulate(tiling, k)`` (a timing-only matmul call of K = ``k``) fast-forwarded: the
    :class:`FastForwardResult` of the two shorter calls, or the full call's result when
    fast-forward does not apply (:func:`periods`)."""
    p = periods(t, k)
    if p is None:
        return simulate(t, k)
    unit = k_period(t)
    short, long = (simulate(dataclasses.replace(t, single_core_k=n * unit), n * unit)
                   for n in PERIODS)
    return extrapolate(short, long, p, t)
