"""``--profile DIR``: msprof's folder layout and the column names of its documentation, so a
parser of on-board profiles reads predicted ones without renaming."""

import csv
import json

import pytest

from npusim.cli import main
from npusim.profile import compare_calibration_row, write_profile
from npusim.runner import simulate
from npusim.spec import TensorSpec

# msprof op, "PipeUtilization (Percentages of Time Taken by Compute Units and MTEs)", Table 1
# (Atlas A2/A3), https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/optool/
# atlasopdev_16_0099.html - in the documented order; "ai*" stands for aic and aiv.
PIPE_UTILIZATION_DOC = [
    "block_id", "sub_block_id", "aic_time(us)", "aic_total_cycles", "aiv_time(us)",
    "aiv_total_cycles", "aiv_vec_time(us)", "aiv_vec_ratio", "aic_cube_time(us)",
    "aic_cube_ratio", "ai*_scalar_time(us)", "ai*_scalar_ratio", "aic_fixpipe_time(us)",
    "aic_fixpipe_ratio", "aic_mte1_time(us)", "aic_mte1_ratio", "ai*_mte2_time(us)",
    "ai*_mte2_ratio", "ai*_mte3_time(us)", "ai*_mte3_ratio", "ai*_icache_miss_rate",
]
# msprof op, "OpBasicInfo (Basic Operator Information)", Table 1,
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/optool/atlasopdev_16_0098.html
OP_BASIC_INFO_DOC = ["Op Name", "Op Type", "Task Duration(us)", "Block Dim", "Mix Block Dim",
                     "Device Id", "Pid", "Current Freq", "Rated Freq"]
# msprof, "op_summary (Operator Details)" (single-operator scenario: no Model Name / Infer ID),
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/profiling/
# atlasprofiling_16_0067.html and the zh 80RC1 table (atlasprofiling_16_0165.html).
OP_SUMMARY_HEAD_DOC = [
    "Device_id", "Model ID", "Task ID", "Stream ID", "Op Name", "OP Type", "OP State",
    "Task Type", "Task Start Time(us)", "Task Duration(us)", "Task Wait Time(us)", "Block Dim",
    "Mix Block Dim", "HF32 Eligible", "Input Shapes", "Input Data Types", "Input Formats",
    "Output Shapes", "Output Data Types", "Output Formats", "Context ID",
]
# op_summary's PipeUtilization metrics, "AI Core/AI Vector Core性能指标采集项说明 (Atlas A2)":
# ai*_vec/mac/scalar/fixpipe/mte1/mte2/mte3 _time and _ratio, plus aicore_time / total cycles,
# https://www.hiascend.com/document/detail/zh/canncommercial/700/devtools/auxiliarydevtool/
# atlasprofiling_16_0257.html
OP_SUMMARY_METRICS_DOC = ["aicore_time(us)", "aic_total_cycles", "aiv_time(us)",
                          "aiv_total_cycles"] + [
    f"ai*_{stem}_{kind}" for stem in ("vec", "mac", "scalar", "fixpipe", "mte1", "mte2", "mte3")
    for kind in ("time(us)", "ratio")]


def _expand(doc: list[str]) -> list[str]:
    """``ai*_x`` -> ``aic_x``, ``aiv_x`` (the documentation's shorthand), order kept."""
    out = []
    for c in doc:
        out += [c.replace("ai*", "aic"), c.replace("ai*", "aiv")] if "ai*" in c else [c]
    return out


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def wqbmm(tmp_path_factory):
    """A small W4A16 mix launch (AIC + 2 AIV per block) profiled into one folder."""
    args = {"x": TensorSpec((16, 512), "float16"), "weight": TensorSpec((512, 64), "int32"),
            "antiquant_scale": TensorSpec((4, 512), "float16"), "antiquant_group_size": 128}
    res = simulate("weight_quant_batchmatmul", "Ascend910B2", **args)
    out = tmp_path_factory.mktemp("prof")
    return res, write_profile(out, "weight_quant_batchmatmul", res, args), out


def test_folders_are_laid_out_like_msprof(wqbmm):
    """OPPROF_*/{PipeUtilization,OpBasicInfo}.csv (msprof op) and
    PROF_*/mindstudio_profiler_output/{op_summary_*.csv, msprof_*.json} (msprof)."""
    _, files, out = wqbmm
    assert files["opprof"].parent == out and files["opprof"].name.startswith("OPPROF_")
    assert {p.name for p in files["opprof"].iterdir()} == {"PipeUtilization.csv",
                                                           "OpBasicInfo.csv"}
    mso = files["prof"] / "mindstudio_profiler_output"
    names = sorted(p.name for p in mso.iterdir())
    assert any(n.startswith("op_summary_") and n.endswith(".csv") for n in names)
    assert any(n.startswith("msprof_") and n.endswith(".json") for n in names)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_pipe_utilization_columns_are_the_documented_ones_in_order(wqbmm):
    """Every predicted column is a documented one, in the documentation's order (the order of
    aic_ / aiv_ within one ``ai*`` entry is not documented); the times carry (us); block_id and
    sub_block_id lead."""
    _, files, _ = wqbmm
    with open(files["opprof"] / "PipeUtilization.csv") as f:
        header = next(csv.reader(f))
    doc = _expand(PIPE_UTILIZATION_DOC)
    assert header[:2] == ["block_id", "sub_block_id"]
    assert set(header) <= set(doc), sorted(set(header) - set(doc))
    entry = {c: i for i, d in enumerate(PIPE_UTILIZATION_DOC) for c in _expand([d])}
    assert [entry[c] for c in header] == sorted(entry[c] for c in header)
    assert {"aic_time(us)", "aiv_time(us)", "aic_cube_ratio", "aiv_vec_ratio",
            "aic_mte2_time(us)", "aiv_mte3_time(us)"} <= set(header)


def test_one_row_per_sub_block_two_aivs_per_mix_block(wqbmm):
    """A mix block is its AIC (cube0) and its two AIVs (vector0, vector1); each row has its own
    kind's columns and N/A for the other kind's; ratio = time / core time."""
    res, files, _ = wqbmm
    rows = _read(files["opprof"] / "PipeUtilization.csv")
    cores = res.run.kernel.cores
    assert len(rows) == len(cores)
    blocks: dict[str, list[str]] = {}
    for r in rows:
        blocks.setdefault(r["block_id"], []).append(r["sub_block_id"])
    assert all(subs == ["cube0", "vector0", "vector1"] for subs in blocks.values())
    assert len(blocks) == sum(c.kind == "aic" for c in cores)
    for r in rows:
        mine, other = ("aic", "aiv") if r["sub_block_id"] == "cube0" else ("aiv", "aic")
        assert r[f"{other}_time(us)"] == "N/A"
        total = int(r[f"{mine}_total_cycles"])
        assert total > 0
        t = float(r[f"{mine}_mte2_time(us)"]) * res.run.freq_mhz
        assert abs(float(r[f"{mine}_mte2_ratio"]) - t / total) < 2e-3


def test_op_basic_info_and_op_summary_columns_are_documented(wqbmm):
    res, files, _ = wqbmm
    with open(files["opprof"] / "OpBasicInfo.csv") as f:
        assert next(csv.reader(f)) == OP_BASIC_INFO_DOC
    info = _read(files["opprof"] / "OpBasicInfo.csv")[0]
    n_aic = sum(c.kind == "aic" for c in res.run.kernel.cores)
    assert (int(info["Block Dim"]), int(info["Mix Block Dim"])) == (n_aic, 2 * n_aic)
    assert float(info["Task Duration(us)"]) == round(res.microseconds, 3)
    path = next((files["prof"] / "mindstudio_profiler_output").glob("op_summary_*.csv"))
    with open(path) as f:
        header = next(csv.reader(f))
    n = len(OP_SUMMARY_HEAD_DOC)
    assert header[:n] == OP_SUMMARY_HEAD_DOC
    metrics = _expand(OP_SUMMARY_METRICS_DOC)
    assert set(header[n:]) <= set(metrics), sorted(set(header[n:]) - set(metrics))
    row = _read(path)[0]
    assert row["OP Type"] == "WeightQuantBatchMatmulV2" and row["Task Type"] == "MIX_AIC"
    assert row["Input Shapes"] == "16,512;512,64;4,512"
    assert row["Input Data Types"] == "FLOAT16;INT32;FLOAT16"
    assert row["Output Shapes"] == "16,512"


def test_timeline_is_the_run_trace(wqbmm):
    res, files, _ = wqbmm
    path = next((files["prof"] / "mindstudio_profiler_output").glob("msprof_*.json"))
    trace = json.loads(path.read_text())
    assert trace["metadata"]["total_cycles"] == res.cycles
    assert sum(e["ph"] == "X" for e in trace["traceEvents"]) > 0


def test_vector_only_launch_has_vector_sub_blocks(tmp_path):
    """vector_add runs on AIVs only: one vector0 row per block, task type AI_VECTOR_CORE."""
    res = simulate("vector_add", "Ascend910B2", n_elements=1 << 16, dtype="float16")
    files = write_profile(tmp_path, "vector_add", res, {}, gantt=False)
    rows = _read(files["opprof"] / "PipeUtilization.csv")
    assert {r["sub_block_id"] for r in rows} == {"vector0"}
    assert "aic_time(us)" not in rows[0]
    info = _read(files["opprof"] / "OpBasicInfo.csv")[0]
    assert info["Mix Block Dim"] == "N/A" and int(info["Block Dim"]) == len(rows)


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    """The folders appear only complete: a failure mid-way removes the temporary folder."""
    res = simulate("vector_add", "Ascend910B2", n_elements=1 << 16, dtype="float16")

    def boom(path):
        raise OSError("disk full")

    monkeypatch.setattr(res, "write_trace", boom)
    with pytest.raises(OSError):
        write_profile(tmp_path, "vector_add", res, {}, gantt=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_profile_and_gantt(tmp_path, capsys):
    """``npusim run ... --profile DIR --gantt FILE`` writes both and names them."""
    png = tmp_path / "g.png"
    assert main(["run", "vector_add", "--n-elements", "65536", "--profile", str(tmp_path / "p"),
                 "--gantt", str(png)]) == 0
    out = capsys.readouterr().out
    assert "profile: " in out and "OPPROF_" in out and str(png) in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.strip().splitlines()[-1].startswith("HBM bound")


def test_measured_calibration_profile_joins_the_predicted_one(tmp_path):
    """Row B1's measured profiler ratios land in PipeUtilization columns the predicted profile
    also has (a join without renaming), as fractions of the row's percentages."""
    text = compare_calibration_row("B1", tmp_path)
    measured = _read(next((tmp_path / "measured").glob("OPPROF_*")) / "PipeUtilization.csv")
    predicted = _read(next((tmp_path / "predicted").glob("OPPROF_*")) / "PipeUtilization.csv")
    cols = set(measured[0]) - {"block_id", "sub_block_id"}
    assert cols == {"aic_cube_ratio", "aic_mte1_ratio", "aic_mte2_ratio", "aic_fixpipe_ratio"}
    assert cols <= set(predicted[0])
    assert float(measured[0]["aic_cube_ratio"]) == 0.545  # the row: "Cube 54.5%"
    assert "Task Duration(us)" in text and "38.8" in text


def test_compare_inner_precise_refuses_output_files(tmp_path, capsys):
    """Rule: --compare-inner-precise runs two launches and writes no files, so asking it for a
    profile (or trace / csv / gantt) is an error naming the flag, and nothing is written."""
    assert main(["run", "weight_quant_batchmatmul", "--compare-inner-precise", "--profile",
                 str(tmp_path / "p")]) == 2
    assert "drop --profile" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
