"""Profiler-shaped output of a simulated run (``npusim run ... --profile DIR``).

The files and column names follow what Huawei's profilers write, so a parser (or MindStudio
Insight) that reads an on-board profile reads a predicted one the same way:

- ``DIR/OPPROF_{timestamp}_NPUSIM/`` - the folder ``msprof op --output=DIR`` creates
  (``OPPROF_{timestamp}_XXX``):

  - ``PipeUtilization.csv``: one row per sub-block (``block_id``, ``sub_block_id``; a mix block is
    ``cube0`` + ``vector0`` + ``vector1``), times in ``(us)``. Columns: msprof op documentation,
    "PipeUtilization (Percentages of Time Taken by Compute Units and MTEs)",
    https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/optool/atlasopdev_16_0099.html
  - ``OpBasicInfo.csv``: Op Name, Op Type, Task Duration(us), Block Dim, Mix Block Dim, ...
    https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/optool/atlasopdev_16_0098.html

- ``DIR/PROF_{timestamp}_NPUSIM/mindstudio_profiler_output/`` - the folder ``msprof`` writes:

  - ``op_summary_{timestamp}.csv``: one row for the kernel (op type, input / output shapes,
    dtypes and formats, Block Dim, Task Duration(us), aicore_time(us), per-pipe ``aic_mac_*`` /
    ``aiv_vec_*`` ...). Columns: "op_summary (Operator Details)",
    https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/profiling/atlasprofiling_16_0067.html
    and its metric names, "AI Core/AI Vector Core性能指标采集项说明 (Atlas A2)",
    https://www.hiascend.com/document/detail/zh/canncommercial/700/devtools/auxiliarydevtool/atlasprofiling_16_0257.html
  - ``msprof_{timestamp}.json``: the timeline (Chrome trace JSON, as ``msprof_*.json`` and
    torch_npu's ``trace_view.json`` are): one process per core, one thread per pipe.
  - ``gantt_{timestamp}.png``: the same timeline as a picture (when matplotlib is installed).

Declared model (not published, our choices): the sub-block names ``cube0`` / ``vectorN``; the
AIVs of mix block b are the AIVs with id // 2 == b's AIC id; columns the simulator does not model
(``icache_miss_rate``, bandwidth columns, PMU counters) are left out, not filled in; fields with
no simulator meaning (Model ID, Stream ID, Pid, ...) are ``N/A``; ``Op Type`` is the CANN
operator type of :func:`cann_op_type`; ``Task Duration(us)`` is the simulated launch-to-last-
instruction time (launch floor included). Writing goes to a temporary folder first, so a failed
run leaves nothing half-written.

``python -m npusim.profile B1 DIR`` writes the predicted profile of calibration row B1 beside a
measured one (the row's profiler ratios in the same columns) and prints them side by side.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.sim import RunResult
from npusim.report.summary import pipe_utilization_rows

if TYPE_CHECKING:
    from npusim.runner import SimResult
    from npusim.validate import Measurement


def cann_op_type(op: str) -> str:
    """The CANN operator type a launch of ``op`` is (``Operator.cann_op_type``; our mapping)."""
    from npusim.operators import get_operator

    return get_operator(op).cann_op_type or op


OP_BASIC_INFO_COLUMNS = ("Op Name", "Op Type", "Task Duration(us)", "Block Dim", "Mix Block Dim",
                         "Device Id", "Pid", "Current Freq", "Rated Freq")

OP_SUMMARY_HEAD = ("Device_id", "Model ID", "Task ID", "Stream ID", "Op Name", "OP Type",
                   "OP State", "Task Type", "Task Start Time(us)", "Task Duration(us)",
                   "Task Wait Time(us)", "Block Dim", "Mix Block Dim", "HF32 Eligible",
                   "Input Shapes", "Input Data Types", "Input Formats", "Output Shapes",
                   "Output Data Types", "Output Formats", "Context ID")

#: op_summary pipe metrics (the ``ai*_`` PipeUtilization names): simulator pipe -> stem.
OP_SUMMARY_PIPES = {"aic": (("M", "mac"), ("S", "scalar"), ("MTE1", "mte1"), ("MTE2", "mte2"),
                            ("FIX", "fixpipe"), ("MTE3", "mte3")),
                    "aiv": (("V", "vec"), ("S", "scalar"), ("MTE2", "mte2"), ("MTE3", "mte3"))}

_FORMATS = {2: "ND", 29: "FRACTAL_NZ"}
_DTYPES = {"float16": "FLOAT16", "bfloat16": "DT_BF16", "float32": "FLOAT", "int8": "INT8",
           "int32": "INT32", "int64": "INT64", "uint64": "UINT64", "int4": "INT4",
           "uint8": "UINT8"}


def _csv_text(cols: list[str] | tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def block_dims(run: RunResult) -> tuple[int, int | str, str]:
    """(Block Dim, Mix Block Dim, Task Type): a mix launch counts its AICs as Block Dim and its
    AIVs as Mix Block Dim (task type MIX_AIC); a single-kind launch has Mix Block Dim N/A."""
    kinds = [c.kind for c in run.kernel.cores]
    n_aic = sum(k in ("aic", "aicore") for k in kinds)
    n_aiv = sum(k in ("aiv", "vector_core") for k in kinds)
    if n_aic and n_aiv:
        return n_aic, n_aiv, "MIX_AIC"
    if n_aiv:
        return n_aiv, "N/A", "AI_VECTOR_CORE"
    return n_aic, "N/A", "AI_CORE"


def _tensor_fields(values: list[Any]) -> tuple[str, str, str]:
    """msprof's ``Input Shapes`` / ``Input Data Types`` / ``Input Formats`` strings: tensors
    separated by ``;``, dimensions by ``,``."""
    from npusim.spec import TensorSpec

    shapes, dtypes, formats = [], [], []
    for v in values:
        if isinstance(v, TensorSpec):
            shape, dtype, fmt = v.shape, v.dtype, v.npu_format
        else:
            shape = tuple(getattr(v, "origin_shape", v.shape))
            dtype, fmt = str(v.dtype), getattr(v, "npu_format", 2)
        shapes.append(",".join(str(d) for d in shape))
        dtypes.append(_DTYPES.get(str(dtype), str(dtype).upper()))
        formats.append(_FORMATS.get(fmt, str(fmt)))
    return ";".join(shapes), ";".join(dtypes), ";".join(formats)


def _is_tensor(v: Any) -> bool:
    from npusim.spec import TensorSpec

    return isinstance(v, TensorSpec) or (isinstance(v, np.ndarray) and v.ndim >= 1
                                         and v.size > 1)


def op_summary_row(op: str, run: RunResult, op_args: dict[str, Any]) -> dict[str, Any]:
    """The op_summary row of one simulated launch."""
    f = run.freq_mhz
    block, mix, task_type = block_dims(run)
    ins = [v for v in op_args.values() if _is_tensor(v)]
    outs = [t for t in run.kernel.gm.values() if t.role == "output"]
    in_s, in_d, in_f = _tensor_fields(ins) if ins else ("", "", "")
    out_s = ";".join(",".join(str(d) for d in t.shape) for t in outs)
    out_d = ";".join(_DTYPES.get(str(t.dtype), str(t.dtype).upper()) for t in outs)
    row: dict[str, Any] = {
        "Device_id": 0, "Model ID": "N/A", "Task ID": 0, "Stream ID": "N/A",
        "Op Name": run.kernel.name, "OP Type": cann_op_type(op), "OP State": "static",
        "Task Type": task_type, "Task Start Time(us)": 0.0,
        "Task Duration(us)": round(run.microseconds, 3), "Task Wait Time(us)": 0.0,
        "Block Dim": block, "Mix Block Dim": mix, "HF32 Eligible": "N/A",
        "Input Shapes": in_s, "Input Data Types": in_d, "Input Formats": in_f,
        "Output Shapes": out_s, "Output Data Types": out_d,
        "Output Formats": ";".join("ND" for _ in outs), "Context ID": "N/A",
    }
    rows = pipe_utilization_rows(run)
    for prefix, pipes in OP_SUMMARY_PIPES.items():
        mine = [r for r in rows if r.get(f"{prefix}_total_cycles", "N/A") != "N/A"]
        if not mine:
            continue
        cycles = sum(r[f"{prefix}_total_cycles"] for r in mine) / len(mine)
        label = "aicore_time(us)" if prefix == "aic" else "aiv_time(us)"
        row[label] = round(cycles / f, 3)
        row[f"{prefix}_total_cycles"] = round(cycles)
        for pipe, stem in pipes:
            src = _pipe_stem(pipe)
            given = [r.get(f"{prefix}_{src}_time(us)") for r in mine]
            if any(t in (None, "N/A") for t in given):
                continue
            times = [t for t in given if t is not None]  # all of them (None: skipped above)
            t = sum(times) / len(times)
            row[f"{prefix}_{stem}_time(us)"] = round(t, 3)
            row[f"{prefix}_{stem}_ratio"] = round(t * f / cycles, 4) if cycles else 0.0
    return row


def _pipe_stem(pipe: str) -> str:
    from npusim.report.summary import _STEMS

    return _STEMS[pipe]


def op_basic_info_row(op: str, run: RunResult) -> dict[str, Any]:
    block, mix, _ = block_dims(run)
    f = run.freq_mhz
    return {"Op Name": run.kernel.name, "Op Type": cann_op_type(op),
            "Task Duration(us)": round(run.microseconds, 3), "Block Dim": block,
            "Mix Block Dim": mix, "Device Id": 0, "Pid": "N/A", "Current Freq": f,
            "Rated Freq": f}


def _fresh(parent: Path, stem: str) -> Path:
    path = parent / stem
    n = 1
    while path.exists():
        n += 1
        path = parent / f"{stem}_{n}"
    return path


def write_profile(out_dir: str | Path, op: str, result: SimResult, op_args: dict[str, Any],
                  gantt: bool = True) -> dict[str, Path]:
    """Write the profile folders of one :class:`npusim.runner.SimResult` under ``out_dir``;
    returns {"opprof": folder, "prof": folder, file name: path...}."""
    run: RunResult = result.run
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--profile {out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix=".npusim-profile-", dir=out_dir))
    try:
        opprof = tmp / "OPPROF"
        opprof.mkdir()
        rows = pipe_utilization_rows(run)
        (opprof / "PipeUtilization.csv").write_text(_csv_text(list(rows[0]), rows)
                                                    if rows else "", encoding="utf-8")
        (opprof / "OpBasicInfo.csv").write_text(
            _csv_text(OP_BASIC_INFO_COLUMNS, [op_basic_info_row(op, run)]), encoding="utf-8")
        prof = tmp / "PROF" / "mindstudio_profiler_output"
        prof.mkdir(parents=True)
        summary = op_summary_row(op, run, op_args)
        (prof / f"op_summary_{stamp}.csv").write_text(_csv_text(list(summary), [summary]),
                                                      encoding="utf-8")
        result.write_trace(prof / f"msprof_{stamp}.json")
        if gantt:
            from npusim.report.plots import gantt_png

            # matplotlib is an extra (RuntimeError without it): the CSVs and timeline stand alone
            with contextlib.suppress(RuntimeError):
                gantt_png(run, prof / f"gantt_{stamp}.png", title=f"{op}: {run.kernel.name}")
        final_opprof = _fresh(out_dir, f"OPPROF_{stamp}_NPUSIM")
        final_prof = _fresh(out_dir, f"PROF_{stamp}_NPUSIM")
        opprof.rename(final_opprof)
        (tmp / "PROF").rename(final_prof)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = {"opprof": final_opprof, "prof": final_prof}
    for p in sorted(final_opprof.iterdir()) + sorted((final_prof /
                                                       "mindstudio_profiler_output").iterdir()):
        files[p.name] = p
    return files


# ---- a calibration row's measured profile beside the predicted one ---------------------------

#: Calibration label (rows B1-B4, on-device profiler) -> PipeUtilization column of the AIC.
MEASURED_COLUMNS = {"Cube": "aic_cube_ratio", "TEXTRACT": "aic_mte1_ratio",
                    "TLOAD": "aic_mte2_ratio", "TSTORE": "aic_fixpipe_ratio"}


def measured_row(row: Measurement) -> dict[str, Any]:
    """The PipeUtilization columns a calibration row measured (its ratios, as fractions)."""
    from npusim.ops.matmul_calibration import pipe_ratios

    got = pipe_ratios(row.other_measured)
    if not got:
        raise ValueError(f"row {row.id}: no per-pipe measurement (other_measured "
                         f"{row.other_measured!r}); rows B1-B4 have them")
    out: dict[str, Any] = {"block_id": "mean", "sub_block_id": "cube"}
    for label, col in MEASURED_COLUMNS.items():
        if label in got:
            out[col] = round(got[label] / 100.0, 4)
    return out


def mean_row(rows: list[dict[str, Any]], cols: list[str], sub: str = "cube0") -> dict[str, Any]:
    """The mean of ``cols`` over the sub-blocks named ``sub`` (the AICs)."""
    mine = [r for r in rows if r["sub_block_id"] == sub]
    out: dict[str, Any] = {"block_id": "mean", "sub_block_id": "cube"}
    for c in cols:
        out[c] = round(sum(float(r[c]) for r in mine) / len(mine), 4)
    return out


def compare_calibration_row(row_id: str, out_dir: str | Path) -> str:
    """Write ``predicted/`` (a full profile) and ``measured/`` (OpBasicInfo.csv and a
    PipeUtilization.csv mean row with the row's measured columns) for a matmul calibration row
    with profiler ratios, and return the side-by-side table (text)."""
    from npusim.engine.sim import run_kernel
    from npusim.ops.cube_epilogue import Epilogue
    from npusim.ops.matmul_calibration import b_row_tiling
    from npusim.ops.matmul_program import build_matmul_kernel
    from npusim.runner import SimResult, resolve_soc
    from npusim.validate import load_measurements, soc_name_of

    rows = {r.id: r for r in load_measurements()}
    if row_id not in rows:
        raise ValueError(f"row {row_id!r}: not in the calibration set ({', '.join(rows)})")
    row = rows[row_id]
    measured = measured_row(row)
    soc = resolve_soc(soc_name_of(row))
    m, k, n = row.size("m"), row.size("k"), row.size("n")
    tiling = b_row_tiling(m)
    kern = build_matmul_kernel(soc, m, k, n, "float16", tiling,
                               Epilogue("NONE", "float32"), trans_b=row.layout.startswith("NT"))
    run = run_kernel(kern, soc, check_races=False, l2_start="repeat")
    res = SimResult("matmul", soc, kern.name, tiling, run, None, [])
    from npusim.spec import TensorSpec

    args: dict[str, Any] = {"a": TensorSpec((m, k), "float16"), "b": TensorSpec((n, k), "float16")}
    out_dir = Path(out_dir)
    files = write_profile(out_dir / "predicted", "matmul", res, args, gantt=False)
    cols = [c for c in MEASURED_COLUMNS.values() if c in measured]
    pred = mean_row(pipe_utilization_rows(run), cols)
    mdir = out_dir / "measured" / files["opprof"].name.replace("NPUSIM", "MEASURED")
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "PipeUtilization.csv").write_text(_csv_text(list(measured), [measured]),
                                              encoding="utf-8")
    info = op_basic_info_row("matmul", run)
    info.update({"Task Duration(us)": row.measured_us, "Op Name": "N/A", "Block Dim": "N/A",
                 "Current Freq": "N/A", "Rated Freq": "N/A"})
    (mdir / "OpBasicInfo.csv").write_text(_csv_text(OP_BASIC_INFO_COLUMNS, [info]),
                                          encoding="utf-8")
    lines = [f"calibration row {row.id}: {row.op} {row.m}x{row.k}x{row.n} {row.dtype} "
             f"{row.layout} on {soc.name} (source: {row.source})",
             f"{'column':<20} {'predicted':>10} {'measured':>10}",
             f"{'Task Duration(us)':<20} {run.microseconds:>10.1f} {row.measured_us:>10.1f}"]
    for c in cols:
        lines.append(f"{c:<20} {pred[c]:>10.3f} {measured[c]:>10.3f}")
    err = 100.0 * (run.microseconds - row.measured_us) / row.measured_us
    lines.append(f"{row.id}: predicted {run.microseconds:.1f} us vs measured {row.measured_us:g} "
                 f"us ({err:+.1f} %); profiles with the same file and column names in "
                 f"{files['opprof'].parent} and {mdir.parent}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m npusim.profile ROW_ID OUT_DIR   (e.g. B1 out/b1)",
              file=sys.stderr)
        return 2
    try:
        print(compare_calibration_row(argv[0], argv[1]))
    except ValueError as exc:
        print(f"npusim.profile: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
