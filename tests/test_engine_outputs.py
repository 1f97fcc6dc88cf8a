"""Engine outputs: trace structure, determinism, functional vs timing-only agreement, overlap."""

import itertools
import json

import numpy as np
from _fake_soc import FakeSoc

from npusim.engine.sim import run_kernel
from npusim.ops.vector_add import VectorAddTiling, build_vector_add
from npusim.report.summary import pipe_utilization_rows, write_pipe_csv
from npusim.report.trace import build_trace, write_trace

SOC = FakeSoc()
N = 16384 * 3 + 1000


def _kernel(db=True, data=True, cores=4):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(N).astype(np.float16) if data else None
    y = rng.standard_normal(N).astype(np.float16) if data else None
    t = VectorAddTiling(cores=cores, tile_bytes=8192, double_buffer=db, bank_conflict_free=db)
    return build_vector_add(SOC, N, t, x=x, y=y), x, y


def test_functional_output_is_bit_exact_and_timing_matches():
    """Functional and timing-only runs give identical cycles; the output equals fp16 RNE x + y."""
    k, x, y = _kernel()
    fun = run_kernel(k, SOC, functional=True)
    tim = run_kernel(_kernel(data=False)[0], SOC, functional=False)
    assert fun.cycles == tim.cycles
    assert fun.outputs["z"].view(np.uint16).tolist() == (x + y).view(np.uint16).tolist()
    assert tim.outputs == {}


def test_double_buffering_overlaps_pipes():
    """Ping-pong buffers let MTE2 fetch the next tile while V/MTE3 work: fewer cycles."""
    single = run_kernel(_kernel(db=False, data=False)[0], SOC)
    double = run_kernel(_kernel(db=True, data=False)[0], SOC)
    assert double.cycles < single.cycles


def test_trace_is_well_formed(tmp_path):
    """Every slice has pid/tid/ts/dur; slices on one thread do not overlap; flows have both ends;
    metadata names SoC, kernel and version."""
    res = run_kernel(_kernel(data=False)[0], SOC)
    trace = build_trace(res)
    ev = trace["traceEvents"]
    slices = [e for e in ev if e["ph"] == "X"]
    assert slices
    for e in slices:
        assert {"pid", "tid", "ts", "dur"} <= e.keys()
        assert e["dur"] >= 0
    by_thread: dict = {}
    for e in slices:
        by_thread.setdefault((e["pid"], e["tid"]), []).append(
            (e["args"]["start_cycle"], e["args"]["start_cycle"] + e["args"]["cycles"])
        )
    for spans in by_thread.values():
        spans.sort()
        for (_, end0), (start1, _) in itertools.pairwise(spans):
            assert start1 >= end0
    starts = {e["id"] for e in ev if e["ph"] == "s"}
    ends = {e["id"] for e in ev if e["ph"] == "f"}
    assert starts and starts == ends
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"PIPE_MTE2", "PIPE_V", "PIPE_MTE3"} <= names
    md = trace["metadata"]
    assert md["soc"] == "FakeSoc" and md["kernel"] == "vector_add" and "npusim_version" in md
    assert any(e["ph"] == "C" for e in ev)
    path = write_trace(res, tmp_path / "t.json")
    assert json.loads(path.read_text())["metadata"]["total_cycles"] == res.cycles


def test_outputs_are_byte_identical_across_runs(tmp_path):
    """Identical inputs give byte-identical trace and CSV files."""
    files = []
    for i in range(2):
        res = run_kernel(_kernel()[0], SOC, functional=True)
        files.append(write_trace(res, tmp_path / f"t{i}.json").read_bytes())
        files.append(write_pipe_csv(res, tmp_path / f"p{i}.csv").read_bytes())
    assert files[0] == files[2]
    assert files[1] == files[3]


def test_pipe_csv_columns_follow_profiler_names():
    """CSV rows carry aiv_vec_time(us) / aiv_mte2_time(us) / aiv_mte3_time(us) and ratios."""
    res = run_kernel(_kernel(data=False)[0], SOC)
    rows = pipe_utilization_rows(res)
    assert len(rows) == 4
    for col in ("aiv_total_cycles", "aiv_vec_time(us)", "aiv_vec_ratio", "aiv_mte2_time(us)",
                "aiv_mte2_ratio", "aiv_mte3_time(us)", "aiv_mte3_ratio"):
        assert col in rows[0]
    assert 0 < rows[0]["aiv_mte2_ratio"] <= 1
