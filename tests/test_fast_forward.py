"""Opt-in fast-forward of a matmul's steady-state K loop (issue 14 item 5) and the sweep's
program dedup.

Rules pinned here: fast-forward runs only when a case asks for it; its cycles are within
``BOUND`` of the full simulation for decode-matmul tilings drawn from the sweep's space, and the
quantities linear in K (cube MACs, GM bytes) equal the full run's exactly; a tiling it does not
apply to is simulated in full. ``program_tiling`` maps a tiling to one that builds the identical
program, and leaves tilings whose block order matters alone.
"""

from __future__ import annotations

import random

import pytest

from npusim import fast_forward
from npusim.hw import load_soc
from npusim.ops import matmul_sweep
from npusim.runner import SimResult

SOC = {"name": "Ascend910B2"}
CASE = {"m": 1, "k": 4096, "n": 1024, "dtype": "float16"}
#: the declared error bound of fast-forwarded cycles against full runs, on the sampled tilings
BOUND = 0.03


def _tilings(case: dict, count: int, seed: int, pred=lambda t: True) -> list:
    soc = load_soc(SOC["name"])
    ts = [t for t in matmul_sweep.enumerate_tilings(soc, case) if pred(t)]
    return random.Random(seed).sample(ts, min(count, len(ts)))


def test_fast_forward_is_opt_in():
    """A case without ``fast_forward: true`` is simulated in full."""
    t = _tilings(CASE, 1, 1, lambda t: fast_forward.periods(t, 4096) is not None)[0]
    for case in (CASE, dict(CASE, fast_forward=False)):
        res = matmul_sweep.simulate_case(SOC, case, t.as_dict())
        assert isinstance(res, SimResult) and "fast-forward" not in res.kernel_name


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_forward_error_is_bounded(seed):
    """Sampled tilings it applies to: cycles within BOUND of the full run, MACs and GM bytes
    exact, and the result says it was fast-forwarded."""
    ff_case = dict(CASE, fast_forward=True)
    for t in _tilings(CASE, 5, seed, lambda t: fast_forward.periods(t, 4096) is not None):
        full = matmul_sweep.simulate_case(SOC, CASE, t.as_dict())
        ff = matmul_sweep.simulate_case(SOC, ff_case, t.as_dict())
        assert isinstance(ff, fast_forward.FastForwardResult)
        assert "fast-forward" in ff.kernel_name and "fast_forward" in ff.summary()
        assert abs(ff.cycles - full.cycles) <= BOUND * full.cycles, t
        fs, qs = full.summary(), ff.summary()
        for key in ("cube_macs", "gm_read_bytes", "gm_write_bytes"):
            assert qs[key] == fs[key], (key, t)
        assert ff.microseconds == pytest.approx(ff.cycles / full.soc.aicore_freq_mhz)


def test_fast_forward_falls_back_to_the_full_run():
    """A tiling whose K loop has too few periods (or a split-K tiling) is simulated in full:
    the same cycles as without fast-forward."""
    for t in _tilings(CASE, 2, 2, lambda t: fast_forward.periods(t, 4096) is None):
        full = matmul_sweep.simulate_case(SOC, CASE, t.as_dict())
        got = matmul_sweep.simulate_case(SOC, dict(CASE, fast_forward=True), t.as_dict())
        assert isinstance(got, SimResult) and got.cycles == full.cycles


@pytest.mark.parametrize("case", [{"m": 1, "k": 1024, "n": 4096, "dtype": "float16"},
                                  {"m": 300, "k": 512, "n": 700, "dtype": "float16"}])
def test_program_tiling_builds_the_same_program(case):
    """Sampled tilings: ``program_tiling`` gives a tiling whose program equals the original's
    instruction for instruction; where it changes nothing the block order can matter."""
    from npusim.operators import get_operator
    from npusim.ops.matmul_program import cube_tiling_from, order_matters
    from npusim.spec import spec

    soc = load_soc(SOC["name"])
    args = {"a": spec((case["m"], case["k"]), "float16"),
            "b": spec((case["k"], case["n"]), "float16")}
    changed = 0
    for t in _tilings(case, 16, 7, lambda t: t.block_order != "row_major"):
        c = matmul_sweep.program_tiling(case, t)
        if c is t:
            assert order_matters(cube_tiling_from(t), case["m"], case["n"])
            continue
        changed += 1
        assert c.block_order == "row_major"
        got = [i for co in get_operator("matmul").plan(soc, c, **args).kernel.cores
               for i in co.instrs]
        want = [i for co in get_operator("matmul").plan(soc, t, **args).kernel.cores
                for i in co.instrs]
        assert got == want, t
    assert changed  # the sample exercises the mapping
