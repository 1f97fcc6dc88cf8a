"""The engine's checks fire on deliberately broken programs, with clear messages (never a hang)."""

import numpy as np
import pytest
from _fake_soc import FakeSoc

from npusim.engine.errors import (
    BufferOverflowError,
    DeadlockError,
    MisalignedError,
    ProgramError,
    RaceError,
    SyncError,
)
from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.engine.sim import run_kernel

SOC = FakeSoc()


def _aiv_kernel(build, n_cores: int = 1):
    cores = []
    for c in range(n_cores):
        prog = CoreProgram(c, "aiv")
        build(ProgramBuilder(prog, SOC.core("aiv")), c)
        cores.append(prog)
    gm = {
        "x": GMTensor("x", (4096,), "float16", np.ones(4096, np.float16)),
        "z": GMTensor("z", (4096,), "float16", None, "output"),
    }
    return Kernel("test", gm, cores)


def _gx(n=1024):
    return Region("GM", 0, (n,), "float16", "x")


def _gz(n=1024):
    return Region("GM", 0, (n,), "float16", "z")


def test_overflowing_allocation_raises_at_build():
    """Allocating past a buffer's capacity names the buffer, the offset and the capacity."""
    b = ProgramBuilder(CoreProgram(0, "aiv"), SOC.core("aiv"))
    b.alloc("UB", (65536,), "float16")
    with pytest.raises(BufferOverflowError, match=r"UB.*capacity of 196608"):
        b.alloc("UB", (65536,), "float16")


def test_region_beyond_capacity_raises():
    """A hand-made region past the end of UB is rejected before the run."""

    def build(b, c):
        b.dma(_gx(), Region("UB", 196608 - 512, (1024,), "float16"))

    with pytest.raises(BufferOverflowError, match="beyond its capacity"):
        run_kernel(_aiv_kernel(build), SOC)


def test_misaligned_region_raises():
    """UB regions must be 32 B aligned (hardware.md 1.5)."""

    def build(b, c):
        b.dma(_gx(), Region("UB", 16, (1024,), "float16"))

    with pytest.raises(MisalignedError, match="not a multiple of its 32 B alignment"):
        run_kernel(_aiv_kernel(build), SOC)


def test_gm_access_outside_tensor_raises():
    """GM windows must lie inside their tensor."""

    def build(b, c):
        b.dma(Region("GM", 8000, (1024,), "float16", "x"), b.alloc("UB", (1024,), "float16"))

    with pytest.raises(BufferOverflowError, match="outside its 8192 B"):
        run_kernel(_aiv_kernel(build), SOC)


def test_missing_path_raises():
    """An AIV has no GM->L1 path; asking for one is a program error naming the path."""
    b = ProgramBuilder(CoreProgram(0, "aiv"), SOC.core("aiv"))
    with pytest.raises(ProgramError, match="no data path GM->L1"):
        b.dma(_gx(), Region("L1", 0, (1024,), "float16"))


def test_read_before_producer_signals_is_a_race():
    """V reading a UB tile that MTE2 wrote without MTE2->V flag is a race."""

    def build(b, c):
        x = b.alloc("UB", (1024,), "float16")
        z = b.alloc("UB", (1024,), "float16")
        b.dma(_gx(), x)
        b.vec("Adds", "unary", z, (x,), elements=1024, dtype="float16")

    with pytest.raises(RaceError, match=r"aiv0/V 'Adds' reads it while aiv0/MTE2"):
        run_kernel(_aiv_kernel(build), SOC)


def test_overwrite_before_reader_signals_is_a_race():
    """MTE2 refilling a tile the vector pipe still reads (no V->MTE2 flag) is a WAR race."""

    def build(b, c):
        x = b.alloc("UB", (1024,), "float16")
        z = b.alloc("UB", (1024,), "float16")
        b.dma(_gx(), x)
        b.sync("MTE2", "V", 0)
        b.vec("Adds", "unary", z, (x,), elements=1024, dtype="float16")
        b.dma(_gx(2048), b.alloc("UB", (2048,), "float16"))  # keeps MTE2 busy: V reads first
        b.dma(_gx(), x)

    with pytest.raises(RaceError, match="overwrites it while aiv0/V 'Adds'"):
        run_kernel(_aiv_kernel(build), SOC)


def test_flagged_program_has_no_race():
    """The same program with the flags in place runs and gives the right values."""

    def build(b, c):
        x = b.alloc("UB", (1024,), "float16")
        z = b.alloc("UB", (1024,), "float16")
        b.dma(_gx(), x)
        b.sync("MTE2", "V", 0)
        b.vec("Adds", "unary", z, (x,), elements=1024, dtype="float16",
              fn=lambda ctx: ctx.write(z, ctx.read(x) + np.float16(1)))
        b.sync("V", "MTE3", 0)
        b.dma(z, _gz())

    res = run_kernel(_aiv_kernel(build), SOC, functional=True)
    assert np.all(res.outputs["z"][:1024] == np.float16(2))
    assert np.all(res.outputs["z"][1024:] == 0)


def test_wait_without_set_is_reported_as_deadlock():
    """A WaitFlag no SetFlag will satisfy ends the run with the core, pipe and flag named."""

    def build(b, c):
        b.wait_flag("MTE3", "V", 3)
        b.vec("Dup", "dup", b.alloc("UB", (128,), "float16"), (), elements=128, dtype="float16")

    with pytest.raises(DeadlockError, match=r"aiv0 pipe V waits on flag MTE3->V event id 3"):
        run_kernel(_aiv_kernel(build), SOC)


def test_cross_core_wait_without_partner_deadlocks():
    """An AIC waiting for AIV sets that never come is reported, naming the cross-core flag."""
    aic = CoreProgram(0, "aic")
    ProgramBuilder(aic, SOC.core("aic")).cross_wait(5, "M")
    kernel = Kernel("k", {}, [aic])
    with pytest.raises(DeadlockError, match=r"aic0 pipe M waits on cross-core flag id 5"):
        run_kernel(kernel, SOC)


def test_event_id_out_of_range():
    """Event ids are 0..7 on A2/A3/310P."""

    def build(b, c):
        b.sync("MTE2", "V", 8)

    with pytest.raises(SyncError, match=r"event id 8; valid ids are 0..7"):
        run_kernel(_aiv_kernel(build), SOC)


def test_double_set_flag_is_rejected():
    """SetFlag twice on one (pipe pair, id) without a wait is undefined on hardware."""

    def build(b, c):
        b.set_flag("MTE2", "V", 1)
        b.set_flag("MTE2", "V", 1)

    with pytest.raises(SyncError, match="set twice without a WaitFlag"):
        run_kernel(_aiv_kernel(build), SOC)


def test_cross_core_flag_misuse():
    """Cross-core flag ids are 0..10, and mode 1 (AIV<->AIV) is not for the AIC."""
    aic = CoreProgram(0, "aic")
    ProgramBuilder(aic, SOC.core("aic")).cross_set(2, "FIX", 11)
    with pytest.raises(SyncError, match=r"cross-core flag id 11; valid ids are 0..10"):
        run_kernel(Kernel("k", {}, [aic]), SOC)
    aic = CoreProgram(0, "aic")
    ProgramBuilder(aic, SOC.core("aic")).cross_set(1, "FIX", 0)
    with pytest.raises(SyncError, match="mode 1 is between the two AIVs"):
        run_kernel(Kernel("k", {}, [aic]), SOC)


def test_cross_core_counter_limit():
    """More than 16 outstanding sets of one cross-core flag is misuse, not silence."""
    aic = CoreProgram(0, "aic")
    b = ProgramBuilder(aic, SOC.core("aic"))
    for _ in range(17):
        b.cross_set(2, "FIX", 0)
    aivs = [CoreProgram(i, "aiv") for i in range(2)]
    with pytest.raises(SyncError, match="exceeds the counter limit 16"):
        run_kernel(Kernel("k", {}, [aic, *aivs]), SOC)


def test_cross_core_mode2_orders_gm_handoff():
    """AIV writes GM, sets mode-2 flag; the AIC waits for both AIVs, then reads: no race."""
    gm = {"w": GMTensor("w", (2048,), "float16", None, "workspace")}
    cores = []
    for i in range(2):
        p = CoreProgram(i, "aiv")
        b = ProgramBuilder(p, SOC.core("aiv"))
        ub = b.alloc("UB", (1024,), "float16")
        b.dma(ub, Region("GM", i * 2048, (1024,), "float16", "w"))
        b.cross_set(2, "MTE3", 0)
        cores.append(p)
    aic = CoreProgram(0, "aic")
    b = ProgramBuilder(aic, SOC.core("aic"))
    b.cross_wait(0, "MTE2")
    b.dma(Region("GM", 0, (2048,), "float16", "w"), b.alloc("L1", (2048,), "float16"))
    res = run_kernel(Kernel("k", gm, [aic, *cores]), SOC)
    assert len(res.flows) == 2
    # Without the wait, the AIC's read races the AIVs' writes.
    aic2 = CoreProgram(0, "aic")
    b = ProgramBuilder(aic2, SOC.core("aic"))
    b.scalar("delay", 10_000)
    b.dma(Region("GM", 0, (2048,), "float16", "w"), b.alloc("L1", (2048,), "float16"))
    with pytest.raises(RaceError, match="GM tensor 'w'"):
        run_kernel(Kernel("k", gm, [aic2, *cores]), SOC)
