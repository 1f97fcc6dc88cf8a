"""Per-core and chip-wide GM bandwidth limits (issue 13 item 2): a core streaming a weight alone is
bounded by its MTE2 path (msKPP single-core curve: latency-bound small copies, ~152-163 B/cyc
plateau), far below the chip's HBM rate; many cores together are bounded by the shared HBM
channel."""

from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.ops.matmul_program import CubeTiling, Epilogue, build_matmul_kernel

SOC = load_soc("Ascend910B2")


def _gemv(k: int, n: int, cores: int):
    t = CubeTiling(base_m=16, base_n=256, base_k=64, step_ka=4, step_kb=4, depth_a1=2,
                   depth_b1=2, single_core_m=1, single_core_n=n // cores, m_dim=1, n_dim=cores)
    kern = build_matmul_kernel(SOC, 1, k, n, "float16", t, Epilogue("F322F16", "float16"))
    return run_kernel(kern, SOC, check_races=False, l2_start="cold")


def test_m1_matmul_on_one_core_cannot_exceed_the_per_core_mte2_rate():
    """M = 1, K = 2048, N = 1024 on one AIC: the 4 MiB weight streams at no more than the
    GM->L1 peak of the descriptor (163.1 B/cyc), i.e. under a fifth of the chip's HBM rate."""
    k, n = 2048, 1024
    res = _gemv(k, n, 1)
    rate = k * n * 2 / res.cycles
    peak = SOC.core("aic").transfer("GM", "L1").peak_bytes_per_cycle
    hbm = SOC.bytes_per_cycle(SOC.memory.hbm.bandwidth_gb_per_s)
    assert rate <= peak
    assert rate < hbm / 4
    assert rate > 0.3 * peak  # and it is the MTE2 stream, not something else, that binds


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
    each core streams at its own MTE2 rate (aggregate within 15 % of cores x the one-core rate:
    the cores do not yet share a bottleneck); 24 cores stay under the HBM channel, which 24 x the
    one-core rate would exceed."""
    k = 8192
    rates = {}
    for cores in (1, 2, 4, 24):
        res = _gemv(k, cores * 256, cores)
        rates[cores] = k * cores * 256 * 2 / res.cycles
    hbm = SOC.bytes_per_cycle(SOC.memory.hbm.bandwidth_gb_per_s)
    for cores in (2, 4):
        assert rates[cores] >= 0.85 * cores * rates[1]
    assert 24 * rates[1] > hbm >= rates[24]
