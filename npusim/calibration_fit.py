"""Which descriptor numbers were fitted to which calibration rows, how much each moves each row
family, and leave-one-family-out (LOFO) error (issue 13 item 6).

Every fitted number of the SoC descriptors is listed in :data:`FITTED` with the rows it was
fitted on. ``sensitivity`` re-simulates one representative row per family with one number
changed by +10 % (descriptor overrides, nothing else touched) and reports the elasticity
(relative change of the prediction per relative change of the number).

LOFO, declared method: for a family X, every number fitted on X is refitted on the other
families' rows by least squares on their signed errors, using the linearised model
``err(theta) = err + (100 + err) * sum_j elasticity_j * dtheta_j / theta_j`` (elasticities of the
family's representative row). A number no other family constrains (all their elasticities
below ``MATERIAL`` = 0.05) falls back to its declared documented alternative (``fallback``);
X's rows are then
predicted with the same linearised model; for additive numbers (launch floor, per-block
dispatch) the representative elasticity is rescaled by the row's predicted time (the same
absolute shift), which makes it exact up to the block count. Bandwidth elasticities are
approximate away from the +10 % step. ``fit_report`` (``npusim validate --lofo``) then
re-simulates every row of X with the refit / fallback numbers (:func:`simulate_lofo`), so the
printed LOFO errors are simulations, not the linear estimate. Nothing is fitted per row or shape.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from pathlib import Path

    from npusim.hw.schema import SocDescriptor
    from npusim.validate import Measurement

FAMILIES = ("A", "B", "E", "F", "H")
#: one cheap row per family whose elasticities stand for the family (declared approximation)
REPRESENTATIVE = {"A": "A2", "B": "B1", "E": "E1e", "F": "F1", "H": "H4"}
STEP = 0.10
#: an elasticity below this is too weak to refit a number on (it would amplify noise)
MATERIAL = 0.05


class LofoFamily(TypedDict, total=False):
    """One left-out family's result (:func:`lofo`, :func:`simulate_lofo`)."""

    numbers: list[str]  # how each number fitted on the family was replaced
    errors: dict[str, float]  # row id -> LOFO signed error, %
    median_abs: float | None
    rel: dict[str, float]  # number name -> relative change (refit or fallback factor - 1)


@dataclass(frozen=True)
class FittedNumber:
    """A descriptor number fitted to calibration rows."""

    name: str
    paths: tuple[str, ...]  # dotted descriptor paths changed together (relative change)
    family: str  # family whose rows it was fitted on
    rows: str  # the rows, as cited in socs/
    fallback: float  # relative value used when no other family constrains it (1.0 = keep)
    fallback_source: str
    additive: bool = False  # an absolute time shift (same us for every row of a family)


FITTED: tuple[FittedNumber, ...] = (
    FittedNumber("HBM bandwidth", ("memory.hbm.bandwidth_gb_per_s",), "F",
                 "F1 (consistent with H6)", 1380 / 1446,
                 "INI-implied 1.38 TB/s on a 910B2 (hardware.md 1.1) [D]"),
    FittedNumber("HBM request overhead", ("memory.hbm.request_overhead_bytes",), "H", "H3/H4",
                 0.0, "0: the family file's 'not modelled' value (no source gives one)"),
    FittedNumber("L2 bandwidth", ("memory.l2.bandwidth_gb_per_s",), "B", "B2-B4",
                 4880 / 3600, "INI-implied l2_read_rate 110 B/cyc/core (4.88 TB/s on 910_9391)"),
    # Fallbacks of the launch numbers: DEVKIT's documented empty pure-Cube kernel on the rows'
    # SoC (Ascend910B4 kernel_launch_cube_cycles 3780 / per-block 207, from 2.52 us and
    # (5.7 - 2.52) us / 23 cores), relative to the E1a / E1a-E1b fit (3449 / 49 cycles): the
    # nearest documented launch cost (no figure for AIV-only kernels is published).
    FittedNumber("launch floor", ("kernel_launch_cycles",), "E", "E1a", 3780 / 3449,
                 "DEVKIT empty pure-Cube kernel, 1 core: 2.52 us", additive=True),
    FittedNumber("per-block dispatch", ("kernel_launch_per_block_cycles",), "E", "E1a/E1b",
                 207 / 49, "DEVKIT empty pure-Cube kernel: +138 ns per further core",
                 additive=True),
    FittedNumber("scalar cycles per instruction",
                 ("cores.aic.scalar.cycles_per_instruction",
                  "cores.aiv.scalar.cycles_per_instruction"), "H", "H1", 1.0,
                 "none documented (hardware.md 2.8): kept, so H1 is not a LOFO prediction"),
    FittedNumber("FixPipe fp32-output elements per cycle",
                 ("cores.aic.fixpipe.max_fp32_elements_per_cycle",), "B",
                 "B1-B4 TSTORE (1799-1875 cycles per 128 x 256 fp32 tile, mean 1841)", 32 / 18,
                 "DEVKIT fixpipe_perf 32 fp32 elements / cycle (128 B/cyc)"),
    FittedNumber("vector binary / ternary cycles per repeat (conflict-free)",
                 ("cores.aiv.vector.classes.binary.cycles_per_repeat",
                  "cores.aiv.vector.classes.ternary.cycles_per_repeat"), "H",
                 "H6/H7 (DEVKIT add case 5 vs 6: 12.85 -> 6.95 us)", 2.0,
                 "KPP / PTO 2 (6 for ternary) cyc/rep, measured in the bank-conflicting layout"),
)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if part == "cores":
            continue
        if isinstance(obj, dict):
            obj = obj[part]
        else:
            obj = obj.core(part) if part in ("aic", "aiv") else getattr(obj, part)
    return obj


@contextmanager
def scaled(number: FittedNumber, factor: float) -> Iterator[None]:
    """Within the block, every SoC the calibration predictions resolve has ``number`` scaled."""
    import npusim.runner as runner
    from npusim.hw import load_soc

    orig = runner.resolve_soc

    def patched(soc: str | Path | SocDescriptor | None = None, overrides: Sequence[str] = (),
                patch: Any = None) -> SocDescriptor:
        if soc is not None and not isinstance(soc, str):
            return orig(soc, overrides, patch)
        base = load_soc(str(soc or runner.DEFAULT_SOC))
        extra = []
        for p in number.paths:
            v = _get(base, p)
            new = v * factor
            extra.append(f"{p}={round(new) if isinstance(v, int) else new}")
        return orig(soc, (*overrides, *extra), patch)

    runner.resolve_soc = patched
    try:
        yield
    finally:
        runner.resolve_soc = orig


def _predict(row: Measurement, l2_start: str) -> float:
    from npusim.engine.sim import default_l2_start
    from npusim.validate import predict_row

    with default_l2_start(l2_start):
        pred = predict_row(row)
    if pred is None:
        raise ValueError(f"row {row.id}: not expressible")
    return pred.predicted_us


def sensitivity(rows: Sequence[Measurement], l2_start: str = "repeat"
                ) -> dict[str, dict[str, float]]:
    """Elasticity of each family's representative row to each fitted number (+10 % step)."""
    by_id = {r.id: r for r in rows}
    out: dict[str, dict[str, float]] = {}
    for fam, rid in REPRESENTATIVE.items():
        row = by_id.get(rid)
        if row is None:
            continue
        base = _predict(row, l2_start)
        out[fam] = {}
        for num in FITTED:
            with scaled(num, 1 + STEP):
                p = _predict(row, l2_start)
            out[fam][num.name] = (p - base) / base / STEP
    return out


def _family(row_id: str) -> str:
    return row_id[0]


def _row_elasticity(r: Mapping[str, Any], n: FittedNumber, elast: dict[str, dict[str, float]],
                    pred: dict[str, float]) -> float:
    """The family's representative elasticity; for an additive number rescaled to the row's own
    time (the same absolute shift is a smaller fraction of a longer row)."""
    fam = _family(r["id"])
    e = elast[fam][n.name]
    rep = pred.get(REPRESENTATIVE[fam])
    if n.additive and rep and r.get("predicted_us"):
        return e * rep / float(r["predicted_us"])
    return e


def lofo(results: Sequence[Mapping[str, Any]], elast: dict[str, dict[str, float]]
         ) -> dict[str, LofoFamily]:
    """Leave-one-family-out errors from in-sample ``results`` (validate records) and
    ``elast`` (:func:`sensitivity`); see the module docstring for the method."""
    import numpy as np

    ok = [r for r in results if r.get("error_pct") is not None]
    pred = {r["id"]: float(r["predicted_us"]) for r in ok if r.get("predicted_us")}
    out: dict[str, LofoFamily] = {}
    for fam in FAMILIES:
        if fam not in elast:
            continue
        nums = [n for n in FITTED if n.family == fam]
        train = [r for r in ok if _family(r["id"]) != fam and _family(r["id"]) in elast]
        rel = np.zeros(len(nums))
        how = []
        fit_idx = [i for i, n in enumerate(nums)
                   if any(abs(elast[_family(r["id"])][n.name]) >= MATERIAL for r in train)]
        for i, n in enumerate(nums):
            if i not in fit_idx:
                rel[i] = n.fallback - 1.0
                how.append(f"{n.name}: fallback x{n.fallback:.3g} ({n.fallback_source})")
        if fit_idx and train:
            a = np.array([[(100 + r["error_pct"]) * _row_elasticity(r, nums[i], elast, pred)
                           for i in fit_idx] for r in train])
            b = -np.array([r["error_pct"] for r in train], dtype=float)
            sol, *_ = np.linalg.lstsq(a, b, rcond=None)
            for i, d in zip(fit_idx, sol, strict=True):
                rel[i] = max(d, -0.9)
                how.append(f"{nums[i].name}: refit x{1 + rel[i]:.3g} on the other families")
        errs = {}
        for r in ok:
            if _family(r["id"]) != fam:
                continue
            e = r["error_pct"]
            shift = sum(_row_elasticity(r, n, elast, pred) * rel[i] for i, n in enumerate(nums))
            errs[r["id"]] = round(e + (100 + e) * shift, 1)
        absd = sorted(abs(v) for v in errs.values())
        out[fam] = {"numbers": how or ["nothing fitted on this family"], "errors": errs,
                    "median_abs": round(statistics.median(absd), 1) if absd else None,
                    "rel": {n.name: float(rel[i]) for i, n in enumerate(nums)}}
    return out


def simulate_lofo(rows: Sequence[Measurement], lofo_res: dict[str, LofoFamily],
                  l2_start: str = "repeat") -> dict[str, LofoFamily]:
    """``lofo_res`` with each left-out family's errors re-simulated: every row of the family
    predicted with its fitted numbers scaled by the refit / fallback factors (no linearisation).
    A family whose numbers all stay (factor 1) keeps its in-sample errors."""
    from contextlib import ExitStack

    from npusim.validate import signed_error_pct

    by_name = {n.name: n for n in FITTED}
    out: dict[str, LofoFamily] = {}
    for fam, rec in lofo_res.items():
        rel = {k: v for k, v in rec.get("rel", {}).items() if v != 0.0}
        if not rel:
            out[fam] = rec
            continue
        errs = {}
        with ExitStack() as stack:
            for name, d in rel.items():
                stack.enter_context(scaled(by_name[name], 1.0 + d))
            for row in rows:
                if row.id in rec["errors"]:
                    errs[row.id] = round(signed_error_pct(_predict(row, l2_start),
                                                          row.measured_us), 1)
        absd = sorted(abs(v) for v in errs.values())
        out[fam] = {**rec, "errors": errs,
                    "median_abs": round(statistics.median(absd), 1) if absd else None}
    return out


def format_fit_tables(elast: dict[str, dict[str, float]], lofo_res: dict[str, LofoFamily]
                      ) -> str:
    """Markdown: provenance of fitted numbers, sensitivity, LOFO per family."""
    lines = ["| fitted number | descriptor path | fitted on | LOFO fallback | leave-out error "
             "(its family's rows predicted without it: median abs %) |", "|---|---|---|---|---|"]
    for n in FITTED:
        rec = lofo_res.get(n.family, {})
        how = next((h for h in rec.get("numbers", []) if h.startswith(n.name + ":")), "")
        left = (f"{n.family}: {rec['median_abs']} ({how.split(': ', 1)[1].split(' (')[0]})"
                if rec.get("median_abs") is not None and how else "not computed")
        lines.append(f"| {n.name} | {', '.join(n.paths)} | {n.rows} | {n.fallback_source} | "
                     f"{left} |")
    fams = [f for f in FAMILIES if f in elast]
    lines += ["", "Elasticity (relative change of the representative row per relative change of "
              "the number, +10 % step): " + ", ".join(f"{f}={REPRESENTATIVE[f]}" for f in fams),
              "", "| fitted number | " + " | ".join(fams) + " |", "|---|" + "---|" * len(fams)]
    for n in FITTED:
        lines.append(f"| {n.name} | " + " | ".join(f"{elast[f][n.name]:+.3f}" for f in fams)
                     + " |")
    lines += ["", "| left-out family | refit | LOFO errors (%, simulated with the refit / fallback "
              "numbers) | median abs |", "|---|---|---|---|"]
    all_abs = []
    for fam, rec in lofo_res.items():
        errs = rec["errors"]
        all_abs += [abs(v) for v in errs.values()]
        lines.append(f"| {fam} | {'; '.join(rec['numbers'])} | "
                     + ", ".join(f"{k} {v:+.1f}" for k, v in errs.items())
                     + f" | {rec['median_abs']} |")
    if all_abs:
        lines.append(f"\nLOFO over all rows: median |error| {round(statistics.median(all_abs), 1)}"
                     " %")
    return "\n".join(lines)


def fit_report(rows: Sequence[Measurement], results: Sequence[Mapping[str, Any]],
               l2_start: str = "repeat") -> str:
    """The tables ``npusim validate --lofo`` prints beside the in-sample table."""
    elast = sensitivity(rows, l2_start)
    return format_fit_tables(elast, simulate_lofo(rows, lofo(results, elast), l2_start))
