"""Atomic add into GM (SetAtomicAdd): functional accumulation, race rules, L2 traffic."""

import numpy as np
import pytest

from npusim.engine.errors import ProgramError, RaceError
from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc

SOC = load_soc("Ascend910B2")
N = 4096


def _kernel(parts: list[np.ndarray | None], dtype: str, atomic: str = "add",
            extra_loads: tuple[int, ...] = ()) -> Kernel:
    gm = {f"x{i}": GMTensor(f"x{i}", (N,), dtype, p, "input") for i, p in enumerate(parts)}
    gm["y"] = GMTensor("y", (N,), dtype, None, "output")
    cores = []
    for i in range(len(parts)):
        prog = CoreProgram(i, "aiv")
        b = ProgramBuilder(prog, SOC.core("aiv"))
        ub = b.alloc("UB", (N,), dtype, "buf")
        for _ in range(extra_loads[i] if extra_loads else 0):  # make this core finish later
            b.dma(Region("GM", 0, (N,), dtype, f"x{i}"), ub)
        b.dma(Region("GM", 0, (N,), dtype, f"x{i}"), ub)
        b.sync("MTE2", "MTE3", 0)
        b.dma(ub, Region("GM", 0, (N,), dtype, "y"), atomic=atomic)
        cores.append(prog)
    return Kernel("atomic", gm, cores, {})


def _sum(parts, order):
    acc = np.zeros(N, np.float32)
    for i in order:
        acc = (acc + parts[i]).astype(np.float32)
    return acc.view(np.uint32).tolist()


def test_fp32_atomic_adds_apply_in_core_order_rounding_once_each():
    """Declared model: atomic adds apply in ascending core order whatever order they complete
    in (core 0 finishes last here), each rounded once to fp32."""
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal(N).astype(np.float32) * 10.0 ** (4 * i) for i in range(3)]
    res = run_kernel(_kernel(parts, "float32", extra_loads=(6, 0, 0)), SOC, functional=True)
    done = sorted(range(3), key=lambda i: max(r.end for r in res.records if r.core == i))
    assert done[-1] == 0, "the setup makes core 0 complete last"
    assert _sum(parts, done) != _sum(parts, [0, 1, 2]), "the order matters for these values"
    assert res.outputs["y"].view(np.uint32).tolist() == _sum(parts, [0, 1, 2])


def test_int32_atomic_add_wraps():
    big = np.full(N, 2**31 - 1, np.int32)
    one = np.ones(N, np.int32)
    res = run_kernel(_kernel([big, one], "int32"), SOC, functional=True)
    assert (res.outputs["y"] == np.iinfo(np.int32).min).all()


def test_unordered_plain_writes_race_but_atomic_adds_do_not():
    with pytest.raises(RaceError, match="writes it while"):
        run_kernel(_kernel([None, None], "float32", atomic=""), SOC)
    run_kernel(_kernel([None, None], "float32"), SOC)  # no RaceError


def test_atomic_add_is_a_read_modify_write_in_l2():
    """The first add fetches the output's lines from HBM (cold L2); the L2 channel carries the
    data twice; a plain store fetches nothing."""
    atomic = run_kernel(_kernel([None], "float32"), SOC)
    plain = run_kernel(_kernel([None], "float32", atomic=""), SOC)
    assert atomic.traffic.hbm_read_bytes - plain.traffic.hbm_read_bytes == N * 4
    assert atomic.traffic.gm_write_bytes == plain.traffic.gm_write_bytes == N * 4


def test_bad_atomic_requests():
    prog = CoreProgram(0, "aiv")
    b = ProgramBuilder(prog, SOC.core("aiv"))
    ub = b.alloc("UB", (N,), "float32", "buf")
    ub8 = b.alloc("UB", (N,), "int8", "buf8")
    with pytest.raises(ProgramError, match="atomic must be"):
        b.dma(ub, Region("GM", 0, (N,), "float32", "y"), atomic="max")
    with pytest.raises(ProgramError, match="GM destination"):
        b.dma(Region("GM", 0, (N,), "float32", "x"), ub, atomic="add")
    with pytest.raises(ProgramError, match="int8"):
        b.dma(ub8, Region("GM", 0, (N,), "int8", "y"), atomic="add")
