"""Back-to-back DataCopys overlap (issue 13 item 2): a copy issued directly behind another
DataCopy on the same pipe hides its request latency (the path's ``overlap_cycles``, derived from
the msKPP curve's first point) behind that copy's transfer, so a stream of small copies runs at
the transfer rate, not at the lone-copy curve; a flag between copies drains the pipe and
restores the lone cost. The same on both engines."""

import math

import pytest

from npusim.engine import timing
from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.isa import DataCopy

SOC = load_soc("Ascend910B2")
AIV = SOC.core("aiv")
AIC = SOC.core("aic")


def _stream(kind: str, copies: int, nbytes: int, flags: bool = False, row_off: int = 0,
            transform: str = "") -> Kernel:
    """One core copying ``copies`` consecutive ``nbytes`` chunks (fp16, one row each, or 64
    rows for ``transform``) from GM; ``flags``: a SetFlag / WaitFlag pair after every copy."""
    dst = "UB" if kind == "aiv" else "L1"
    prog = CoreProgram(0, kind)
    b = ProgramBuilder(prog, SOC.core(kind))
    elems = nbytes // 2
    rows = 64 if transform else 1
    cols = elems // rows
    stride = 2 * cols + row_off
    buf = b.alloc(dst, (rows, cols), "float16", "buf")
    for i in range(copies):
        src = Region("GM", i * rows * stride, (rows, cols), "float16", "x",
                     stride if rows > 1 else None)
        b.dma(src, buf if rows > 1 else Region(dst, buf.offset, (cols,), "float16"),
              transform=transform)
        if flags:
            b.set_flag("MTE2", "S", 0)
            b.wait_flag("MTE2", "S", 0)
    gm = {"x": GMTensor("x", (copies * rows * stride // 2 + 64,), "float16", None, "input",
                        l2_warm=True)}
    return Kernel("stream", gm, [prog])


def _mte2_records(res) -> list[int]:
    return [r.end - r.start for r in res.records if r.pipe == "MTE2" and r.kind == "dma"]


def test_second_back_to_back_copy_hides_its_latency():
    """1 KiB GM -> UB copies from a warm L2 on one AIV: the first pays its curve time (1024 /
    4.2 = 244 cycles) plus the L2 hit latency; each further copy only max(244 - 221, 1024 /
    45.6) = 23 cycles: the stream runs at the path's plateau, 10x the lone-copy rate."""
    k = _stream("aiv", 8, 1024)
    ins = [i for i in k.cores[0].instrs if isinstance(i, DataCopy)]
    assert timing.dma_local_cycles(AIV, ins[0]) == math.ceil(1024 / 4.2)
    assert timing.dma_local_cycles(AIV, ins[1], True) == math.ceil(1024 / 45.6)
    assert timing.dma_pipelined(AIV, ins[1], ins[0])
    durs = _mte2_records(run_kernel(k, SOC, check_races=False, engine="reference"))
    assert durs[0] == math.ceil(1024 / 4.2)  # the lone curve already holds the L2 latency
    assert durs[1:] == [math.ceil(1024 / 45.6)] * 7


def test_a_flag_between_copies_drains_the_pipe():
    """With a SetFlag / WaitFlag after every copy each one is a lone copy again: the stream of
    8 is several times slower than the back-to-back one."""
    piped = run_kernel(_stream("aiv", 8, 1024), SOC, check_races=False, engine="reference")
    drained = run_kernel(_stream("aiv", 8, 1024, flags=True), SOC, check_races=False,
                         engine="reference")
    assert set(_mte2_records(drained)) == {_mte2_records(piped)[0]}
    assert drained.cycles > piped.cycles + 7 * 200


def test_large_copies_are_bound_by_the_transfer_rate_not_the_overlap():
    """A 128 KiB copy's curve time is already its bytes at the plateau: overlapping its latency
    saves nothing (the overlap never makes a copy faster than the path's transfer rate)."""
    k = _stream("aiv", 2, 131072)
    _, b = [i for i in k.cores[0].instrs if isinstance(i, DataCopy)]
    assert timing.dma_local_cycles(AIV, b, True) == timing.dma_local_cycles(AIV, b) == (
        math.ceil(131072 / 45.6))


def test_nd2nz_overlap_keeps_the_start_cost():
    """Back-to-back ND2NZ copies (64 x 64 fp16 tiles into L1) hide the nd2nz curve's fixed part
    except the Nd2Nz start cost every copy pays (ops-nn cycle model, 210 cycles): 558 of the
    8192 / 10.1 = 811 curve cycles (plus the same 128 B-row burst surcharge either way)."""
    k = _stream("aic", 2, 8192, transform="nd2nz")
    _, b = [i for i in k.cores[0].instrs if isinstance(i, DataCopy)]
    lone = timing.dma_local_cycles(AIC, b)
    assert lone > math.ceil(8192 / 10.1)  # 128 B rows: the burst surcharge
    assert AIC.transfer("GM", "L1").nd2nz_overlap_cycles == 558
    assert timing.dma_local_cycles(AIC, b, True) == lone - 558


def test_misaligned_rows_still_cost_more_behind_another_copy():
    """The layout surcharge is kept on a pipelined copy: 64 rows of 512 B whose GM starts are
    2 B off 32 B cost more than aligned ones, lone (1074 vs 806 cycles) or back to back (545 vs
    277: the same 268 surcharge cycles on a smaller base)."""
    aligned = _stream("aic", 2, 32768, transform="nd2nz")
    ragged = _stream("aic", 2, 32768, transform="nd2nz", row_off=2)
    for piped in (False, True):
        ca = timing.dma_local_cycles(AIC, aligned.cores[0].instrs[1], piped)
        cr = timing.dma_local_cycles(AIC, ragged.cores[0].instrs[1], piped)
        assert cr - ca == 268  # (factor - 1) x bytes at the plateau, lone or pipelined


@pytest.mark.parametrize("kind,nbytes,transform,warm", [
    ("aiv", 1024, "", True), ("aiv", 8192, "", False), ("aic", 8192, "nd2nz", False),
    ("aic", 4096, "", False)])
def test_overlap_is_identical_on_both_engines(kind, nbytes, transform, warm):
    from npusim.engine.fast import FastRunResult

    k = _stream(kind, 6, nbytes, transform=transform)
    k.gm["x"].l2_warm = warm
    ref = run_kernel(k, SOC, check_races=False, engine="reference")
    got = run_kernel(k, SOC, check_races=False, engine="fast")
    assert isinstance(got, FastRunResult)
    assert got.cycles == ref.cycles
    assert [(r.pipe, r.start, r.end, r.hbm_bytes) for r in got.records] == [
        (r.pipe, r.start, r.end, r.hbm_bytes) for r in ref.records]
