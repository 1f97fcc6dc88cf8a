"""Kernel launch cost: a floor for every launch plus a dispatch step per further block."""

from npusim.engine.program import CoreProgram, Kernel, ProgramBuilder
from npusim.engine.sim import Engine, run_kernel
from npusim.hw import load_soc

SOC = load_soc("Ascend910B4")


def _kernel(kinds_ids: list[tuple[str, int]]) -> Kernel:
    cores = []
    for kind, cid in kinds_ids:
        prog = CoreProgram(cid, kind)
        ProgramBuilder(prog, SOC.core(kind)).scalar("work", 10)
        cores.append(prog)
    return Kernel("launch", {}, cores, {})


def test_blocks_start_one_dispatch_step_apart():
    floor, step = SOC.kernel_launch_cycles, SOC.kernel_launch_per_block_cycles
    assert floor > 0 and step > 0
    one = run_kernel(_kernel([("aiv", 0)]), SOC)
    many = run_kernel(_kernel([("aiv", i) for i in range(32)]), SOC)
    assert many.cycles - one.cycles == 31 * step
    starts = sorted({r.start for r in many.records if r.name == "work"})
    assert starts[0] == floor and starts[1] - starts[0] == step


def test_mix_kernel_block_is_one_ai_core():
    """AIC b and AIVs 2b, 2b+1 form block b and start together."""
    k = _kernel([("aic", 0), ("aic", 1), ("aiv", 0), ("aiv", 1), ("aiv", 2), ("aiv", 3)])
    offsets = Engine._launch_offsets(SOC, k)
    floor, step = SOC.kernel_launch_mix_cycles, SOC.kernel_launch_mix_per_block_cycles
    assert offsets == [floor, floor + step, floor, floor, floor + step, floor + step]


def test_override_removes_dispatch_cost():
    soc = load_soc("Ascend910B4", overrides=["kernel_launch_per_block_cycles=0"])
    k = _kernel([("aiv", i) for i in range(8)])
    assert set(Engine._launch_offsets(soc, k)) == {soc.kernel_launch_cycles}


def test_launch_cost_by_kernel_type():
    """DEVKIT head-overhead figures: an empty cube-only kernel costs more than a vector one and a
    MIX kernel more again, and its per-core growth is steepest (12.66 vs 5.7 us at 24 cores)."""
    vec = SOC.launch_cycles({"aiv"})
    cube = SOC.launch_cycles({"aic"})
    mix = SOC.launch_cycles({"aic", "aiv"})
    assert vec == (SOC.kernel_launch_cycles, SOC.kernel_launch_per_block_cycles)
    assert vec[0] < cube[0] < mix[0] and vec[1] < cube[1] < mix[1]
    f = SOC.aicore_freq_mhz
    assert abs(cube[0] + 23 * cube[1] - 5.7 * f) <= 23
    assert abs(mix[0] + 23 * mix[1] - 12.66 * f) <= 23
    k = _kernel([("aic", i) for i in range(3)])
    assert Engine._launch_offsets(SOC, k) == [cube[0] + i * cube[1] for i in range(3)]
