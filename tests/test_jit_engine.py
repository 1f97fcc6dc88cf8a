"""engine="jit" (npusim.engine.jit_loop, the numba-compiled event loop) against engine="fast"
(the Python event loop): identical cycles, records, flows, per-pipe busy and traffic, and the
compiled loop really ran wherever it applies (timing-only, L2 that cannot evict, no cross-core
flags); elsewhere it hands the run to the Python loop, which these tests check too."""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")  # the jit extra (part of [test])

import npusim.engine.sim as sim
import npusim.runner as runner
from npusim import validate
from npusim.engine import fast, jit_loop
from npusim.hw import load_soc
from npusim.ops import matmul_sweep
from npusim.sweep import no_collections
from tests.test_fast_engine import (
    SOCS,
    _deadlock,
    _double_set,
    _one_core,
    coupled_kernels,
    fingerprint,
    split_kernels,
)

SOC = load_soc("Ascend910B2")
DECODE = {"m": 1, "k": 4096, "n": 4096, "dtype": "float16"}


class _Spy:
    """Counts the runs the compiled loop handed to the Python loop."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.python = 0
        real = fast._event_loop

        def loop(*a, **kw):
            self.python += 1
            return real(*a, **kw)

        monkeypatch.setattr(fast, "_event_loop", loop)


def _outcome(kernel, soc, engine: str, **kw) -> tuple:
    """A run's fingerprint, or its error's class and message."""
    try:
        return fingerprint(sim.run_kernel(kernel, soc, engine=engine, check_races=False, **kw))
    except Exception as exc:  # the reference's errors: both engines must raise the same
        return (type(exc), str(exc))


def _case(soc_name: str, case: dict, tiling: dict) -> tuple:
    """(fast fingerprint, jit fingerprint) of one sweep point."""
    out = []
    for engine in ("fast", "jit"):
        with fast.default_engine(engine), no_collections():
            res = matmul_sweep.simulate_case({"name": soc_name}, case, tiling)
        out.append(fingerprint(res.run))
    return tuple(out)


def _tilings(case: dict, n: int, seed: int) -> list[dict]:
    ts = list(matmul_sweep.enumerate_tilings(SOC, case))
    return [t.as_dict() for t in random.Random(seed).sample(ts, min(n, len(ts)))]


@pytest.mark.parametrize("tiling", _tilings(DECODE, 6, 0), ids=lambda t: "t")
def test_decode_matmul_tilings_identical(tiling, monkeypatch):
    """Random legal tilings of the decode matmul (M=1, K=N=4096 fp16, 910B2): the compiled
    loop runs them (no hand-back) and reports what the Python loop reports."""
    spy = _Spy(monkeypatch)
    ref, got = _case("Ascend910B2", DECODE, tiling)
    assert spy.python == 1  # the fast run only: the jit run never reached the Python loop
    assert got == ref


@pytest.mark.parametrize("case", [
    {"m": 16, "k": 1024, "n": 2048, "dtype": "float16"},
    {"m": 128, "k": 512, "n": 768, "dtype": "float16"},
    {"m": 200, "k": 384, "n": 320, "dtype": "bfloat16"},
    {"m": 64, "k": 2048, "n": 512, "dtype": "int8"},
], ids=lambda c: f"{c['m']}x{c['k']}x{c['n']}-{c['dtype']}")
def test_other_matmul_shapes_identical(case, monkeypatch):
    """Other shapes and dtypes (quant_matmul for int8), three random tilings each."""
    spy = _Spy(monkeypatch)
    tilings = _tilings(case, 3, 1)
    assert tilings
    for t in tilings:
        ref, got = _case("Ascend910B2", case, t)
        assert got == ref
    assert spy.python == len(tilings)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 7, 32, 96]), st.sampled_from([256, 768, 2048]),
       st.sampled_from([256, 1024, 1536]), st.sampled_from(["float16", "bfloat16"]),
       st.integers(0, 10 ** 6))
def test_random_shapes_and_tilings_identical(m, k, n, dtype, pick):
    """Random shapes, a random legal tiling of each: identical results."""
    case = {"m": m, "k": k, "n": n, "dtype": dtype}
    ts = list(matmul_sweep.enumerate_tilings(SOC, case))
    ref, got = _case("Ascend910B2", case, ts[pick % len(ts)].as_dict())
    assert got == ref


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_kernels(), st.sampled_from(["cold", "repeat"]))
def test_random_split_programs_identical(case, l2_start):
    """The fast engine's random programs (vector and cube work, bypass reads, atomic adds,
    flags, barriers, cross-core phases, an evicting 128 KiB L2): identical results."""
    kernel, soc_name = case
    soc = SOCS[soc_name]
    assert _outcome(kernel, soc, "jit", l2_start=l2_start) == _outcome(
        kernel, soc, "fast", l2_start=l2_start)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coupled_kernels())
def test_random_coupled_programs_identical(kernel):
    """Random programs on a coupled 310P (cube and vector in one core)."""
    soc = load_soc("Ascend310P3")
    assert _outcome(kernel, soc, "jit") == _outcome(kernel, soc, "fast")


@pytest.mark.parametrize("build", [_double_set, _deadlock])
def test_faulty_programs_raise_the_reference_error(build):
    """A flag set twice or a deadlock: the compiled loop hands the run back, and the same error
    as the fast engine's is raised."""
    kernel = _one_core(build)
    got = _outcome(kernel, SOCS["910B2"], "jit")
    assert got == _outcome(kernel, SOCS["910B2"], "fast")
    assert issubclass(got[0], Exception)


#: calibration rows compared (timing-only kernels up to this many instructions)
MAX_INSTR = 40000


@pytest.mark.parametrize("row", [r for r in validate.load_measurements()
                                 if r.id in ("A2", "A6a", "B1", "F1", "F2a", "E1a", "E1c")],
                         ids=lambda r: r.id)
def test_calibration_programs_identical(row, monkeypatch):
    """The kernels of a few calibration rows (validate's 'repeat' L2 start): identical on the
    fast and jit engines."""
    compared = []
    real = sim.run_kernel

    def both(kernel, soc, **kw):
        kw.pop("engine", None)
        ref = real(kernel, soc, engine="fast", **kw)
        if kernel.instruction_count() <= MAX_INSTR and not kw.get("functional"):
            got = real(kernel, soc, engine="jit", **kw)
            assert fingerprint(got) == fingerprint(ref), f"{row.id}: {kernel.name} differs"
            compared.append(kernel.name)
        return ref

    monkeypatch.setattr(sim, "run_kernel", both)
    monkeypatch.setattr(runner, "run_kernel", both)
    validate.validate_row(row)
    assert compared


def test_missing_numba_names_the_extra(monkeypatch):
    """Without numba, engine="jit" raises an ImportError that names the 'jit' extra."""
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "npusim.engine.jit_loop")
    kernel = _one_core(lambda b, _i: b.scalar("addr", 3))
    with pytest.raises(ImportError, match=r"npusim\[jit\]"):
        sim.run_kernel(kernel, SOCS["910B2"], engine="jit", check_races=False)
    assert jit_loop is not None
