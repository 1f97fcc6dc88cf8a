"""Direction and size of the timing mechanisms end to end (issue 13 "done when"): each test runs
whole matmul programs that differ in one thing only and pins which one is slower and by how much
at least, with the unit-level numbers the size comes from (tests/test_gm_cost.py,
tests/test_core_bandwidth_limits.py pin those exactly)."""

import math

import pytest

from npusim import simulate
from npusim.engine import gm_cost, timing
from npusim.engine.program import Region
from npusim.hw import load_soc
from npusim.isa import DataCopy, FixPipe
from npusim.spec import spec

SOC = load_soc("Ascend910B2")
AIC = SOC.core("aic")


def _matmul_cycles(m: int, k: int, n: int, l2_start: str = "cold") -> int:
    res = simulate("matmul", "Ascend910B2", a=spec((m, k), "float16"),
                   b=spec((k, n), "float16"), l2_start=l2_start)
    return res.run.cycles


def test_misaligned_n_matmul_costs_more_than_the_aligned_one():
    """M = 128, K = 1024, fp16, default tiling, cold L2: N = 4100 (4 elements past a multiple of
    16) takes over 15 % longer (20.5 %) than N = 4096 although it moves 0.1 % more bytes - its
    B rows start off 512 B and 32 B boundaries (layout factor 1.865 per 256 x 256 ND2NZ tile:
    bursts and two DataBlocks per C0 piece), which costs both on the DMA curve and in the bytes
    in flight of the weight reads that miss in L2."""
    aligned = _matmul_cycles(128, 1024, 4096)
    ragged = _matmul_cycles(128, 1024, 4100)
    assert ragged > 1.15 * aligned


def test_misaligned_weight_from_hbm_same_cycles_on_both_engines():
    """The layout factor of the in-flight limit is charged identically by the fast engine."""
    from npusim.engine.fast import default_engine

    runs = {}
    for eng in ("fast", "reference"):
        with default_engine(eng):
            runs[eng] = simulate("matmul", "Ascend910B2", a=spec((16, 512), "float16"),
                                 b=spec((512, 1028), "float16"), l2_start="cold").run
    assert runs["fast"].cycles == runs["reference"].cycles
    assert runs["fast"].records == runs["reference"].records


def test_misaligned_rows_occupy_more_of_the_bytes_in_flight():
    """The in-flight time of a missed read scales its streamed bytes by the GM layout factor of
    the ND -> NZ source (bursts, and two DataBlocks per C0 piece of a row off 32 B): the
    N = 4100 tile's read is slower than the N = 4096 one by exactly that factor on the
    streaming part (the round trip is paid once either way)."""
    l1 = Region("L1", 0, (256, 256), "float16")

    def read(n_total: int, row0: int) -> DataCopy:
        src = Region("GM", row0 * n_total * 2, (256, 256), "float16", "b", n_total * 2)
        return DataCopy(pipe="MTE2", name="t", reads=(src,), writes=(l1,), transform="nd2nz")

    spec_a, f_a = timing.in_flight_of(AIC, read(4096, 0))
    spec_r, f_r = timing.in_flight_of(AIC, read(4100, 1))
    assert f_a == 1.0
    assert f_r == pytest.approx(gm_cost.layout_factor(AIC.gm_bursts, 8200, 256, 512, 8200,
                                                      straddle=True))
    assert f_r > gm_cost.layout_factor(AIC.gm_bursts, 8200, 256, 512, 8200)
    miss = SOC.memory.l2.miss_extra_latency_cycles
    nb = 256 * 512
    t_a = timing.in_flight_cycles(spec_a, nb, nb, miss, f_a)
    t_r = timing.in_flight_cycles(spec_r, nb, nb, miss, f_r)
    rt = spec_a.request_latency_cycles + miss
    assert (t_r - rt) == pytest.approx(f_r * (t_a - rt), rel=1e-12)
    # local (on-core) copies and the AIV's GM->UB are not under the limit
    assert timing.in_flight_of(AIC, DataCopy(pipe="MTE1", name="x", reads=(l1,), writes=(
        Region("L0A", 0, (128, 64), "float16"),))) is None


def test_weight_read_from_hbm_is_bound_by_the_bytes_in_flight():
    """M = 16, K = 4096, N = 1024, default tiling (B tiles of 1024 x 64 fp16: 128 KiB in 128 B
    rows, layout factor 1.714): from a warm L2 the first B read on core 0 costs its curve time
    (131072 / 111.0 + 0.714 x 131072 / 118.7 -> 1970 cycles), from HBM (cold L2, every line
    missed) exactly the in-flight time 320 + 1.714 x 131072 x 340 / 27727 -> 3076 cycles (the
    miss stream at half the hit rate, ``miss_bandwidth_ratio`` 2)."""

    def first_b_read(l2_start: str):
        res = simulate("matmul", "Ascend910B2", a=spec((16, 4096), "float16"),
                       b=spec((4096, 1024), "float16"), l2_start=l2_start)
        core0 = res.run.kernel.cores[0]
        ins = next(i for i in core0.instrs if isinstance(i, DataCopy)
                   and i.reads[0].buffer == "GM" and i.reads[0].tensor == "b")
        rec = next(r for r in res.run.records if r.core == 0 and r.name == ins.name)
        return ins, rec.end - rec.start

    ins, warm = first_b_read("repeat")
    _, cold = first_b_read("cold")
    assert ins.reads[0].nbytes == 131072
    assert warm == timing.dma_local_cycles(AIC, ins) == 1970
    spec_, factor = timing.in_flight_of(AIC, ins)
    assert factor == pytest.approx(288 / 168)  # (128 B burst + 160) / (128 + 160 x 128 / 512)
    miss = SOC.memory.l2.miss_extra_latency_cycles
    assert cold == math.ceil(timing.in_flight_cycles(spec_, 131072, 131072, miss, factor)) == 3076


def test_fp32_fixpipe_drains_a_base_tile_at_the_calibrated_rate():
    """A 128 x 256 fp32 tile from L0C into an aligned ND output costs 20 + 32768 / 18 cycles on
    an idle FIX pipe (rows B1-B4 TSTORE: 1799-1875 cycles per such tile, mean 1841); fp16 out
    keeps the documented 64 elements per cycle."""
    l0c = Region("L0C", 0, (128, 256), "float32")

    def fix(out_dtype: str, mode: str) -> int:
        bpe = 4 if out_dtype == "float32" else 2
        out = Region("GM", 0, (128, 256), out_dtype, "c", 4096 * bpe)
        ins = FixPipe(pipe="FIX", name="f", reads=(l0c,), writes=(out,), elements=128 * 256,
                      out_dtype=out_dtype, mode=mode)
        return timing.fixpipe_cycles(AIC, ins, pipe_was_idle=True)

    assert AIC.fixpipe.max_fp32_elements_per_cycle == 18
    assert fix("float32", "NONE") == 20 + -(-32768 // 18) == 1841
    assert fix("float16", "F322F16") == 20 + 32768 // 64


def test_nd2nz_rows_off_32b_pay_two_datablocks_per_c0_piece():
    """ND -> NZ moves each row as 32 B C0 pieces into separate fractals, so a source row whose
    GM start is off a 32 B boundary reads the two DataBlocks every piece spans (gm_cost
    ``straddle``). A 64 x 256 fp16 tile of an N = 12287 matrix (rows 24574 B apart: 60 of 64
    rows off 32 B) costs 1.958x the aligned N = 12288 tile as an ND2NZ source, against 1.422x
    for the same rows copied plain; rows that are 32 B aligned but off 512 B (N = 12304) pay
    only their extra requests, 1.461x either way. Calibration rows (aligned) keep factor 1."""
    spec_ = AIC.gm_bursts
    for n, nz, plain in ((12288, 1.0, 1.0), (12304, 1.4613, 1.4613), (12287, 1.9576, 1.4219)):
        assert gm_cost.layout_factor(spec_, 0, 64, 512, 2 * n, straddle=True) == pytest.approx(
            nz, abs=1e-4)
        assert gm_cost.layout_factor(spec_, 0, 64, 512, 2 * n) == pytest.approx(plain, abs=1e-4)


def test_matmul_with_k_off_32b_costs_more_than_k_32b_aligned():
    """End to end (M = 128, N = 1024, cold L2, default tiling): K = 4100 puts A's rows off 32 B
    (8200 B = 8 mod 32), so every ND2NZ A load pays two DataBlocks per C0 piece - over 8 % more
    cycles than K = 4096 for 0.1 % more work; K = 4112 (rows 32 B aligned, off 512 B) pays
    only extra requests, under 4 %."""
    base = _matmul_cycles(128, 4096, 1024)
    assert _matmul_cycles(128, 4100, 1024) > 1.08 * base
    assert base < _matmul_cycles(128, 4112, 1024) < 1.04 * base


def _vector_chain(dependent: bool, barrier: bool = False):
    """One AIV: Cast fp16 -> fp32 of 4096 elements, then Abs of 4096 fp32 reading the Cast's
    output (dependent) or another UB tile (independent); ``barrier``: an explicit PipeBarrier."""
    from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder

    prog = CoreProgram(0, "aiv")
    b = ProgramBuilder(prog, SOC.core("aiv"))
    x = b.alloc("UB", (4096,), "float16", "x")
    f = b.alloc("UB", (4096,), "float32", "f")
    other = b.alloc("UB", (4096,), "float32", "other")
    out = b.alloc("UB", (4096,), "float32", "abs")
    b.vec("Cast", "convert", f, (x,), elements=4096, dtype="float16")
    if barrier:
        b.barrier("V")
    b.vec("Abs", "unary", out, (f if dependent else other,), elements=4096, dtype="float32")
    return Kernel("chain", {"x": GMTensor("x", (8,), "float16", None, "input")}, [prog])


def test_dependent_vector_instruction_pays_the_auto_sync_barrier():
    """DEVKIT PipeBarrier doc: a vector instruction reading another's output waits for it to
    finish (auto-sync, on by default, inserts the PIPE_V barrier). So Abs after the Cast it reads
    starts on a drained pipe and pays the vector head (24 cycles) again; the same Abs on an
    independent tile streams behind the Cast. An explicit barrier costs its issue cycle and the
    same head (no double count), and both engines agree."""
    from npusim.engine.sim import run_kernel

    head = SOC.core("aiv").vector.head_cycles
    cyc = {k: run_kernel(_vector_chain(*k), SOC, check_races=False, engine="reference").cycles
           for k in ((False, False), (True, False), (True, True))}
    launch = SOC.launch_cycles({"aiv"})[0]
    assert cyc[(False, False)] - launch == head + 32 + 64  # 8 KiB + 16 KiB at 256 B a repeat
    assert cyc[(True, False)] - cyc[(False, False)] == head
    assert cyc[(True, True)] - cyc[(True, False)] == 1  # the barrier's own issue cycle
    for k, ref in cyc.items():
        assert run_kernel(_vector_chain(*k), SOC, check_races=False, engine="fast").cycles == ref


def test_ragged_vector_alu_op_pays_the_count_mode_floor():
    """PTO (cce_costmodel_core.hpp, kCountModeFloorCycles): a vector ALU op (binary / divide
    class) whose bytes leave a partial 256 B repeat runs in count-mask dispatch, 16 cycles more.
    Add of 4090 fp16 (32 repeats, the last partial) costs the aligned 4096-element Add + 16; a
    unary op of the same ragged size pays no floor."""
    from npusim.engine.program import CoreProgram, ProgramBuilder

    aiv = SOC.core("aiv")
    b = ProgramBuilder(CoreProgram(0, "aiv"), aiv)
    x = b.alloc("UB", (4096,), "float16", "x")
    y = b.alloc("UB", (4096,), "float16", "y")  # 8 KiB apart: a different bank group pair
    z = b.alloc("UB", (4096,), "float16", "z")

    def cyc(op_class: str, n: int) -> int:
        ins = b.vec("op", op_class, z, (x, y) if op_class == "binary" else (x,), elements=n,
                    dtype="float16")
        return timing.vector_cycles(aiv, ins, False, 2)

    floor = aiv.vector.count_mode_floor_cycles
    assert floor == 16
    assert cyc("binary", 4090) == cyc("binary", 4096) + floor
    assert cyc("unary", 4090) == cyc("unary", 4096)
