"""Sweep adapter for ``matmul`` (and W8A8 ``quant_matmul``): legal tilings, an analytical lower
bound per tiling (used to prune before the event simulation), and the simulation of one case.

Bound (cycles, per core, the busiest core): max of cube cycles (fractals x cycles per fractal),
MTE2 bytes / GM->L1 bandwidth at the chunk size, MTE1 bytes / L1->L0 bandwidths, FixPipe output /
rate, and the chip's HBM time for the unique A and B bytes. It ignores dependencies and
contention (and a split-K tiling's AIV reduction), so it is optimistic: it ranks, the simulation
decides.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from npusim.isa.operands import ITEMSIZE as _ITEM
from npusim.spec import spec

if TYPE_CHECKING:
    from npusim.fast_forward import FastForwardResult
    from npusim.hw.schema import SocDescriptor
    from npusim.ops.matmul_tiling import MatmulTiling
    from npusim.runner import SimResult


def _case(case: dict[str, Any]) -> tuple[int, int, int, str, str, bool]:
    m, k, n = int(case["m"]), int(case["k"]), int(case["n"])
    dt = case.get("dtype", "float16")
    out = case.get("out_dtype", dt if dt != "int8" else "int8")
    return m, k, n, dt, out, bool(case.get("trans_b", False))


def enumerate_tilings(soc: SocDescriptor, case: dict[str, Any]) -> Iterator[Any]:
    from npusim.ops.matmul_tiling import enumerate_matmul_tilings

    m, k, n, dt, out, tb = _case(case)
    return enumerate_matmul_tilings(m, k, n, dt, out, soc, tb)


def tiling_from_dict(soc: SocDescriptor, case: dict[str, Any], d: dict[str, Any]) -> Any:
    from npusim.ops.matmul_tiling import tiling_from_dict as _from
    from npusim.ops.matmul_tiling import validate_matmul_tiling

    m, k, n, dt, out, _ = _case(case)
    t = _from(d)
    validate_matmul_tiling(t, m, k, n, dt, out, soc)
    return t


def program_tiling(case: dict[str, Any], t: Any) -> Any:
    """The tiling that builds the same program as ``t`` with the block order ``row_major``
    wherever the order cannot change the program (``matmul_program.order_matters``), so that
    tilings differing only there are simulated once."""
    import dataclasses

    from npusim.ops.matmul_program import cube_tiling_from, order_matters

    m, _, n, *_ = _case(case)
    if t.block_order == "row_major" or order_matters(cube_tiling_from(t), m, n):
        return t
    return dataclasses.replace(t, block_order="row_major", swizzle=1)


def bound_cycles(soc: SocDescriptor, case: dict[str, Any], t: Any) -> float:
    m, k_full, n, dt, out, _ = _case(case)
    k = t.single_core_k if t.k_dim > 1 else k_full  # a split-K core sees its K slice only
    core = soc.core("aic" if "aic" in soc.core_counts() else "aicore")
    isz, osz = _ITEM[dt], _ITEM.get(out, 2)
    unit = core.cube
    assert unit is not None  # an aic / aicore core has a cube
    m0, k0, n0 = unit.fractal_mkn(dt)
    per_fractal = m0 * k0 * n0 / unit.macs_per_cycle(dt)
    bm_blocks = math.ceil(t.single_core_m / t.base_m)
    bn_blocks = math.ceil(t.single_core_n / t.base_n)
    tiles = bm_blocks * bn_blocks
    cube = tiles * math.ceil(t.base_m / m0) * math.ceil(k / k0) * math.ceil(t.base_n / n0)
    cube *= per_fractal
    a_bytes = tiles * t.base_m * k * isz
    b_bytes = tiles * t.base_n * k * isz
    chunk = t.base_m * t.base_k * t.step_ka * isz
    gm_l1, l1_l0a, l1_l0b = (core.transfer(*p) for p in (("GM", "L1"), ("L1", "L0A"),
                                                             ("L1", "L0B")))
    assert gm_l1 is not None and l1_l0a is not None and l1_l0b is not None  # a cube core's paths
    mte2 = (a_bytes + b_bytes) / gm_l1.bytes_per_cycle(max(1, chunk))
    mte1 = (a_bytes / l1_l0a.peak_bytes_per_cycle + b_bytes / l1_l0b.peak_bytes_per_cycle)
    fix = 0.0
    if core.fixpipe is not None:
        fix = tiles * t.base_m * t.base_n / core.fixpipe.elements_per_cycle
    hbm = (m * k_full + k_full * n) * isz + m * n * osz
    hbm_cycles = hbm / soc.bytes_per_cycle(soc.memory.hbm.bandwidth_gb_per_s)
    return cast(float, max(cube, mte2, mte1, fix, hbm_cycles))


def bound_us(soc: SocDescriptor, case: dict[str, Any], t: Any) -> float:
    return bound_cycles(soc, case, t) / soc.aicore_freq_mhz


def simulate_case(soc_entry: dict[str, Any], case: dict[str, Any],
                  tiling: dict[str, Any]) -> SimResult | FastForwardResult:
    """Timing-only simulation of one (SoC, case, tiling) point; a case with ``fast_forward:
    true`` (opt-in, approximate) extrapolates the steady-state K loop
    (:mod:`npusim.fast_forward`)."""
    import numpy as np

    import npusim
    from npusim import fast_forward
    from npusim.ops.matmul_tiling import tiling_from_dict as _from

    m, k0, n, dt, out, tb = _case(case)
    soc = soc_entry["name"]
    ov = soc_entry.get("overrides", ())

    def run(t: MatmulTiling, k: int) -> SimResult:
        b = spec((k, n), dt, transposed=tb)
        if dt == "int8":
            return npusim.simulate("quant_matmul", soc, t, overrides=ov, check_races=False,
                                   x1=spec((m, k), "int8"), x2=b,
                                   scale=np.full(n, 1e-3, np.float32), output_dtype=out)
        return npusim.simulate("matmul", soc, t, overrides=ov, check_races=False,
                               a=spec((m, k), dt), b=b, out_dtype=out)

    t = _from(tiling)
    if case.get("fast_forward", False) is True:
        return fast_forward.matmul(run, t, k0)
    return run(t, k0)


def default_tiling(soc: SocDescriptor, case: dict[str, Any]) -> Any:
    """The tiling ``simulate`` picks when given none (the sweep's reference for speed-ups)."""
    import numpy as np

    from npusim.ops.matmul_plans import default_tiling_matmul, default_tiling_quant_matmul

    m, k, n, dt, out, tb = _case(case)
    b = spec((k, n), dt, transposed=tb)
    if dt == "int8":
        return default_tiling_quant_matmul(soc, x1=spec((m, k), "int8"), x2=b,
                                           scale=np.full(n, 1e-3, np.float32), output_dtype=out)
    return default_tiling_matmul(soc, a=spec((m, k), dt), b=b, out_dtype=out)
