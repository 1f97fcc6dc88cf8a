"""``npusim validate``: predict every calibration row the simulator can express and report errors.

Rows come from the calibration set shipped with the package (``npusim/data/calibration/``, a copy
of the project's third-party hardware timings with their sources). Each row
family is handled by the operator module that can express it (``calibration_cases``); rows no
handler accepts are listed as unsupported, never dropped silently. The report gives predicted vs
measured time with the signed error and, where a row gives per-pipe times or ratios, the compute-
pipe error and the transfer / stall error separately.

Rows are independent, so they run in a process pool (``--workers``); each row is printed as it
completes and the final table keeps the file's row order whatever the completion order.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Required, TypedDict

from npusim.engine.sim import default_l2_start

# Modules providing ``calibration_prediction(row) -> Prediction | None``, consulted in order.
CALIBRATION_MODULES = (
    "npusim.ops.vector_add",
    "npusim.ops.tensor_copy",
    "npusim.ops.matmul_calibration",
    "npusim.ops.dynamic_quant_program",  # E rows (its note adds group_quant on the same rows)
)


@dataclass(frozen=True)
class Measurement:
    """One row of measurements.csv."""

    id: str
    soc: str
    op: str
    m: int | None
    k: int | None
    n: int | None
    dtype: str
    layout: str
    tiling: str
    measured_us: float
    other_measured: str
    source: str

    def size(self, name: str) -> int:
        """Column ``name`` (m, k or n) of a row whose prediction needs it; an empty column is a
        ValueError naming the row and the column."""
        value: int | None = getattr(self, name)
        if value is None:
            raise ValueError(f"row {self.id}: column {name} is empty; the {self.op} prediction "
                             "needs it")
        return value


@dataclass
class Prediction:
    """A predicted row: total time and optional per-pipe comparisons."""

    predicted_us: float
    # name -> (predicted, measured, "compute" | "transfer"); values in us or ratios
    pipes: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    pipe_unit: str = "us"
    note: str = ""


class ValidationRecord(TypedDict, total=False):
    """One row's result (:func:`validate_row`); keys in this order (the CSV's columns)."""

    id: Required[str]
    soc: Required[str]
    op: Required[str]
    measured_us: Required[float]
    predicted_us: Required[float | None]  # None: no operator module expresses the row
    error_pct: Required[float | None]
    status: Required[str]  # "ok" | "unsupported"
    note: str
    compute_pipe_error_pct: float | None
    transfer_error_pct: float | None
    pipes: str


def shipped_measurements_path() -> Path:
    """The calibration rows shipped as package data (see ``npusim/data/calibration/README.md``)."""
    return Path(str(resources.files("npusim") / "data" / "calibration" / "measurements.csv"))


def default_measurements_path() -> Path:
    """``$NPUSIM_CALIBRATION`` when set, else the shipped copy."""
    env = os.environ.get("NPUSIM_CALIBRATION")
    path = Path(env) if env else shipped_measurements_path()
    if not path.is_file():
        origin = "NPUSIM_CALIBRATION" if env else "the installed package"
        raise FileNotFoundError(f"measurements file {path} (from {origin}) does not exist; "
                                "pass --measurements PATH")
    return path


def _int(v: str) -> int | None:
    v = v.strip()
    return int(v) if v else None


def load_measurements(path: Path | None = None) -> list[Measurement]:
    path = path or default_measurements_path()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        Measurement(r["id"], r["soc"], r["op"], _int(r["m"]), _int(r["k"]), _int(r["n"]),
                    r["dtype"], r["layout"], r["tiling"], float(r["measured_us"]),
                    r["other_measured"], r["source"])
        for r in rows
    ]


def soc_name_of(row: Measurement) -> str:
    """The SoC a row names ("Ascend910B2 (48 AIV; B1 or B2)" -> "Ascend910B2")."""
    m = re.match(r"(Ascend[0-9A-Za-z_]+)", row.soc)
    if not m:
        raise ValueError(f"row {row.id}: cannot read a SoC name from {row.soc!r}")
    return m.group(1)


def predict_row(row: Measurement) -> Prediction | None:
    """The first prediction a calibration module gives for ``row`` (None: no module models it).
    A listed module that cannot be imported or has no ``calibration_prediction`` is an error,
    not a skip: a renamed module would otherwise drop its rows to "unsupported" silently."""
    for modname in CALIBRATION_MODULES:
        mod = importlib.import_module(modname)
        fn = getattr(mod, "calibration_prediction", None)
        if fn is None:
            raise AttributeError(f"{modname}: listed in CALIBRATION_MODULES but has no "
                                 "calibration_prediction(row)")
        pred: Prediction | None = fn(row)  # each module's calibration_prediction
        if pred is not None:
            return pred
    return None


def signed_error_pct(pred: float, meas: float) -> float:
    return 100.0 * (pred - meas) / meas


def validate_row(row: Measurement, l2_start: str = "repeat") -> ValidationRecord:
    """Predict one row and compare it with its measurement (one result record)."""
    with default_l2_start(l2_start):
        pred = predict_row(row)
    if pred is None:
        return {"id": row.id, "soc": row.soc, "op": row.op, "measured_us": row.measured_us,
                "predicted_us": None, "error_pct": None, "status": "unsupported"}
    rec: ValidationRecord = {
        "id": row.id, "soc": row.soc, "op": row.op, "measured_us": row.measured_us,
        "predicted_us": round(pred.predicted_us, 3),
        "error_pct": round(signed_error_pct(pred.predicted_us, row.measured_us), 1),
        "status": "ok", "note": pred.note,
    }
    comp = [signed_error_pct(p, m) for p, m, kind in pred.pipes.values() if kind == "compute"]
    xfer = [signed_error_pct(p, m) for p, m, kind in pred.pipes.values() if kind != "compute"]
    rec["compute_pipe_error_pct"] = round(statistics.mean(comp), 1) if comp else None
    rec["transfer_error_pct"] = round(statistics.mean(xfer), 1) if xfer else None
    rec["pipes"] = "; ".join(
        f"{k} {p:.3g}/{m:.3g}{'%' if pred.pipe_unit == 'ratio' else ' us'}"
        for k, (p, m, _) in pred.pipes.items()
    )
    return rec


def _timed_row(row: Measurement, l2_start: str) -> tuple[ValidationRecord, float]:
    t0 = time.perf_counter()
    rec = validate_row(row, l2_start)
    return rec, time.perf_counter() - t0


def available_workers() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


RowCallback = Callable[[int, int, ValidationRecord, float], None]


def run_validation(rows: list[Measurement], l2_start: str = "repeat", workers: int = 1,
                   on_row: RowCallback | None = None) -> list[ValidationRecord]:
    """Predict every row, in the file's order. The rows were measured as loops of launches
    (profiler steps, sample series), so by default each run starts from the L2 the previous
    launch left (``l2_start="repeat"``, see :data:`npusim.engine.sim.L2_START_MODES`).

    ``workers`` > 1 predicts rows in that many processes; ``on_row(done, total, record,
    seconds)`` is called as each row completes (completion order), the returned list is in row
    order either way."""
    if workers < 1:
        raise ValueError(f"workers={workers}: must be >= 1")
    total = len(rows)
    if workers == 1 or total <= 1:
        out: list[ValidationRecord] = []
        for i, row in enumerate(rows):
            rec, secs = _timed_row(row, l2_start)
            out.append(rec)
            if on_row:
                on_row(i + 1, total, rec, secs)
        return out
    by_row: dict[int, ValidationRecord] = {}
    with ProcessPoolExecutor(max_workers=min(workers, total)) as pool:
        futs = {pool.submit(_timed_row, row, l2_start): i for i, row in enumerate(rows)}
        for done, fut in enumerate(as_completed(futs), start=1):
            i = futs[fut]
            by_row[i], secs = fut.result()
            if on_row:
                on_row(done, total, by_row[i], secs)
    return [by_row[i] for i in range(total)]


def format_row_progress(done: int, total: int, rec: ValidationRecord, seconds: float) -> str:
    """One progress line: ``[ 3/30] H2 add (z=x+y): predicted 6847.4 us, measured 6909.6 us,
    error -0.9 % (12.3 s)``."""
    head = f"[{done:>{len(str(total))}}/{total}] {rec['id']} {rec['op']}:"
    if rec["predicted_us"] is None:
        return f"{head} unsupported (no operator module expresses this row)"
    return (f"{head} predicted {rec['predicted_us']:g} us, measured {rec['measured_us']:g} us, "
            f"error {rec['error_pct']:+.1f} % ({seconds:.1f} s)")


def error_stats(results: list[ValidationRecord]) -> dict[str, float]:
    errs = sorted(abs(r["error_pct"]) for r in results if r["error_pct"] is not None)
    if not errs:
        return {"rows": 0}
    p90 = errs[min(len(errs) - 1, round(0.9 * (len(errs) - 1)))]
    return {"rows": len(errs), "median_abs_error_pct": round(statistics.median(errs), 1),
            "p90_abs_error_pct": round(p90, 1)}


def format_table(results: list[ValidationRecord]) -> str:
    cols = ["id", "op", "measured_us", "predicted_us", "error_pct", "compute_pipe_error_pct",
            "transfer_error_pct", "pipes", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        cells = []
        for c in cols:
            v = r.get(c)
            if v is None:
                v = "unsupported" if c == "predicted_us" else ""
            cells.append(str(v).replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: list[ValidationRecord], outdir: Path) -> tuple[Path, Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    stats = error_stats(results)
    md = outdir / "validation.md"
    md.write_text(
        "# npusim validation against the calibration measurements\n\n"
        + format_table(results)
        + "\n\n"
        + ", ".join(f"{k}: {v}" for k, v in stats.items())
        + "\n",
        encoding="utf-8",
    )
    buf = io.StringIO()
    cols: list[str] = []
    for r in results:
        cols += [k for k in r if k not in cols]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(results)
    csvp = outdir / "validation.csv"
    csvp.write_text(buf.getvalue(), encoding="utf-8")
    return md, csvp


def validate_command(args: argparse.Namespace) -> int:
    rows = load_measurements(args.measurements)
    if args.rows:
        prefixes = tuple(p.strip() for p in args.rows.split(","))
        known = sorted({r.id.rstrip("0123456789abcdefghijklmnopqrstuvwxyz") for r in rows})
        rows = [r for r in rows if r.id.startswith(prefixes)]
        if not rows:
            raise ValueError(f"--rows {args.rows!r}: matches no calibration row id (the ids "
                             f"start with {', '.join(known)})")
    workers = getattr(args, "workers", None)
    if workers is None:
        workers = available_workers()
    print(f"validating {len(rows)} calibration rows from {args.measurements or 'the shipped set'}"
          f" on {min(workers, max(len(rows), 1))} worker(s)", flush=True)

    def progress(done: int, total: int, rec: ValidationRecord, secs: float) -> None:
        print(format_row_progress(done, total, rec, secs), flush=True)

    results = run_validation(rows, args.l2_start, workers=workers, on_row=progress)
    print(format_table(results))
    stats = error_stats(results)
    if args.out:
        md, csvp = write_report(results, args.out)
        print(f"report: {md} {csvp}")
    if getattr(args, "lofo", False):  # fitted numbers, sensitivity, leave-one-family-out
        from npusim.calibration_fit import fit_report

        print(fit_report(rows, results, args.l2_start))
    sys.stdout.write(closing_line(results, stats) + "\n")
    return 0


def closing_line(results: list[ValidationRecord], stats: dict[str, float]) -> str:
    """The sentence validate ends with."""
    unsupported = sum(1 for r in results if r["predicted_us"] is None)
    if not stats.get("rows"):
        return f"validated 0 rows ({unsupported} unsupported): nothing to compare"
    return (f"validated {stats['rows']} rows ({unsupported} unsupported): median |error| "
            f"{stats['median_abs_error_pct']} %, p90 |error| {stats['p90_abs_error_pct']} %")
