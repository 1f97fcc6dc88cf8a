"""Per-core and chip-wide GM bandwidth limits (issue 13 item 2): a core streaming a weight alone is
bounded by its MTE2 path - the msKPP single-core curve for L2 hits, and for L2 misses its bytes in
flight over the longer round trip (descriptor ``gm_read_in_flight``, Little's law) - far below
the chip's HBM rate; many cores together are bounded by the shared HBM channel."""

import pytest

from npusim.engine import timing
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.matmul_program import build_matmul_kernel
from npusim.ops.matmul_tiling import CubeTiling

SOC = load_soc("Ascend910B2")


def _gemv(k: int, n: int, cores: int, l2_start: str = "cold", engine: str | None = None):
    t = CubeTiling(base_m=16, base_n=256, base_k=64, step_ka=4, step_kb=4, depth_a1=2,
                   depth_b1=2, single_core_m=1, single_core_n=n // cores, m_dim=1, n_dim=cores)
    kern = build_matmul_kernel(SOC, 1, k, n, "float16", t, Epilogue("F322F16", "float16"))
    return run_kernel(kern, SOC, check_races=False, l2_start=l2_start, engine=engine)


def _miss_rate() -> float:
    """One core's ceiling on missed bytes: outstanding bytes / max(L2 round trip + miss latency,
    miss_bandwidth_ratio x round trip)."""
    spec = SOC.core("aic").gm_read_in_flight
    rt = spec.request_latency_cycles
    return spec.outstanding_bytes / max(rt + SOC.memory.l2.miss_extra_latency_cycles,
                                        spec.miss_bandwidth_ratio * rt)


def test_in_flight_limit_is_littles_law_on_the_descriptor():
    """A GM read whose lines all miss waits the round trip plus the miss latency (320 cycles)
    once, then streams at outstanding / 340: Little's law on the miss latency would give 320
    (1.88x slower than hits), but msKPP's mov_prof.py states "measured hit vs miss bandwidth
    differ by 2x+", so ``miss_bandwidth_ratio`` 2.0 caps the stream at the hit rate / 2 (the
    round trip 2 x 170). 128 KiB missed = 320 + 131072 x 340 / 27727 cycles; hits stream at
    outstanding / 170 (= the GM->L1 curve's peak)."""
    spec = SOC.core("aic").gm_read_in_flight
    miss = SOC.memory.l2.miss_extra_latency_cycles
    assert (spec.outstanding_bytes, spec.request_latency_cycles, miss) == (27727, 170, 150)
    assert spec.miss_bandwidth_ratio == 2.0
    assert timing.in_flight_cycles(spec, 131072, 131072, miss) == pytest.approx(
        320 + 131072 * 340 / 27727, rel=1e-12)
    # half missed: the hit half streams at outstanding / 170
    assert timing.in_flight_cycles(spec, 131072, 65536, miss) == pytest.approx(
        320 + (65536 * 340 + 65536 * 170) / 27727, rel=1e-12)
    # without the ratio: Little's law on the miss latency alone (the slower of the two binds)
    plain = spec.model_copy(update={"miss_bandwidth_ratio": None})
    assert timing.in_flight_cycles(plain, 131072, 131072, miss) == pytest.approx(
        320 + 131072 * 320 / 27727, rel=1e-12)
    slow = spec.model_copy(update={"miss_bandwidth_ratio": 1.5})  # below 320 / 170: no effect
    assert timing.in_flight_cycles(slow, 131072, 131072, miss) == timing.in_flight_cycles(
        plain, 131072, 131072, miss)
    peak = SOC.core("aic").transfer("GM", "L1").peak_bytes_per_cycle
    assert spec.outstanding_bytes / spec.request_latency_cycles == pytest.approx(peak, rel=1e-3)
    assert peak / _miss_rate() == pytest.approx(2.0, rel=1e-3)
    # the AIV's lone GM->UB copy keeps its curve (msKPP applies no miss penalty to GM->UB; row
    # H2, one AIV streaming from HBM, runs at that curve's rate); only copies issued back to back
    # (tests/test_dma_overlap.py) are bound: plateau x latency in flight, no miss ratio
    aiv = SOC.core("aiv").gm_read_in_flight
    assert not aiv.lone_copies and aiv.miss_bandwidth_ratio is None
    assert timing.in_flight_cycles(aiv, 8192, 8192, miss) == 0.0
    assert timing.in_flight_cycles(aiv, 8192, 8192, miss, pipelined=True) == pytest.approx(
        8192 * (221 + miss) / 10078, rel=1e-12)
    ub = SOC.core("aiv").transfer("GM", "UB")
    assert aiv.outstanding_bytes == round(ub.bytes_per_cycle(1 << 40) * ub.overlap_cycles)


def test_m1_matmul_on_one_core_cannot_exceed_the_per_core_mte2_rate():
    """M = 1, K = 2048, N = 1024 on one AIC: from HBM (cold L2) the 4 MiB weight streams at no
    more than the core's miss ceiling (81.5 B/cyc), under a ninth of the chip's HBM rate; from a
    warm L2 (repeat) faster, but never above the GM->L1 peak (163.1 B/cyc)."""
    k, n = 2048, 1024
    cold = k * n * 2 / _gemv(k, n, 1).cycles
    warm = k * n * 2 / _gemv(k, n, 1, "repeat").cycles
    peak = SOC.core("aic").transfer("GM", "L1").peak_bytes_per_cycle
    hbm = SOC.bytes_per_cycle(SOC.memory.hbm.bandwidth_gb_per_s)
    assert cold <= _miss_rate() < hbm / 9
    assert cold > 0.6 * _miss_rate()  # and it is the miss-bound MTE2 stream that binds
    assert cold < 0.75 * warm
    assert warm <= peak
    assert warm > 0.5 * peak


def test_in_flight_limit_gives_the_same_cycles_on_both_engines():
    """The bytes-in-flight limit is part of the memory semantics, so the fast engine charges it
    exactly as the reference (cold L2: every weight read misses)."""
    for cores in (1, 3):
        fast = _gemv(4096, cores * 256, cores, engine="fast")
        ref = _gemv(4096, cores * 256, cores, engine="reference")
        assert fast.cycles == ref.cycles
        assert fast.records == ref.records


def test_many_cores_are_bounded_by_the_shared_hbm_channel():
    """The same weight stream on 24 cores (N = 24 x 256, K = 8192, cold L2): the aggregate rate
    never exceeds the HBM channel, although 24 x the per-core peak would be ~4.9x higher."""
    k, n = 8192, 24 * 256
    res = _gemv(k, n, 24)
    rate = k * n * 2 / res.cycles
    hbm = SOC.bytes_per_cycle(SOC.memory.hbm.bandwidth_gb_per_s)
    assert rate <= hbm
    assert rate > 0.5 * hbm


def test_aggregate_rate_grows_with_the_cores_taking_part_until_the_hbm_channel_binds():
    """K = 8192, N = cores x 256, cold L2, one 256-column strip per core: with 1, 2 and 4 cores
    each core streams at its own miss-bound MTE2 rate (aggregate within 15 % of cores x the
    one-core rate: the cores do not yet share a bottleneck); 24 cores stay under the HBM channel,
    which 24 x the one-core rate would exceed."""
    k = 8192
    rates = {}
    for cores in (1, 2, 4, 24):
        res = _gemv(k, cores * 256, cores)
        rates[cores] = k * cores * 256 * 2 / res.cycles
    hbm = SOC.bytes_per_cycle(SOC.memory.hbm.bandwidth_gb_per_s)
    for cores in (2, 4):
        assert rates[cores] >= 0.85 * cores * rates[1]
    assert rates[1] <= _miss_rate()
    assert 24 * rates[1] > hbm >= rates[24]
