"""``npusim sweep``: shapes x SoCs x what-if variants x tilings x operator options.

A study (YAML file or flags) names an operator, a list of SoCs, optional what-if variants
(descriptor overrides applied to every SoC, compared with the unmodified baseline), a list of
cases (shapes and operator options such as ``inner_precise``) and a tiling space. For every
(variant, case) the operator's sweep adapter enumerates the legal tilings and ranks them with its
analytical bound; the event simulation then runs the ``simulate_top`` best (or every user-listed
tiling). Results are appended to a CSV as they finish - an interrupted sweep resumes where it
stopped, because points already present (by key) are skipped - and a failing point is recorded
with its error.

Parallelism: a local process pool (default) or Ray (``use_ray``; optional extra). Rows are
written in plan order, never completion order, and every field is formatted by this module from
integers, rounded floats and sorted JSON, so the pool (any worker count) and Ray write
byte-identical files.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import importlib.util
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from npusim.sweep_file import (
    RESULT_COLUMNS,
    Appender,
    read_existing,
    read_rows,
    write_tidy,
)
from npusim.sweep_study import BASELINE, Study, StudyError, expand_cases, resolve_overrides

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.operator import SweepAdapter

__all__ = ["BASELINE", "RESULT_COLUMNS", "Point", "Study", "StudyError", "SweepError",
           "SweepOutcome", "expand_cases", "plan_points", "resolve_overrides",
           "run_point", "run_sweep", "sweep_command"]

# SimResult.summary() entries kept in the CSV's ``summary`` JSON (besides every *_busy_pct):
# what the report needs for rooflines and traffic tables.
SUMMARY_KEYS = ("cube_macs", "gm_read_bytes", "gm_write_bytes", "hbm_read_bytes",
                "hbm_write_bytes", "l2_hit_bytes", "l2_miss_bytes")
DEFAULT_TILING = {"tiling": "default"}


class SweepError(ValueError):
    """A sweep cannot start (missing extra, version skew): nothing has been written."""


def _tiling_dict(t: object) -> dict[str, Any]:
    if is_dataclass(t) and not isinstance(t, type):  # a tiling instance (never a class)
        return asdict(t)
    if isinstance(t, dict):
        return t
    return {"tiling": str(t)}


def point_key(op: str, soc: dict[str, Any], case: dict[str, Any], tiling: dict[str, Any]) -> str:
    """A stable 16-hex-digit id of one point (resume skips keys already in the file)."""
    blob = json.dumps([op, soc, case, tiling], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    """One (variant, case, tiling) to simulate; ``soc`` is a resolved variant. A point whose
    planning failed carries the ``error`` and becomes an error row without simulating;
    ``default`` marks the tiling ``simulate`` would pick (the reference for speed-ups)."""

    key: str
    op: str
    soc: dict[str, Any]
    case: dict[str, Any]
    tiling: dict[str, Any]
    rank: int | None
    bound_us: float | None
    default: bool = False
    error: str = ""


def _error_text(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def _plan_case(study: Study, adapter: SweepAdapter, soc: SocDescriptor, var: dict[str, Any],
               case: dict[str, Any]) -> list[Point]:
    """The points of one (variant, case): ranked tilings plus the default; a failure is an
    error point (for the case, or for one user-listed tiling), never an abort."""
    op = study.op

    def failed(tiling: dict[str, Any], exc: BaseException, what: str) -> Point:
        return Point(point_key(op, var, case, tiling), op, var, case, tiling, None, None,
                     error=f"{what}: {_error_text(exc)}")

    try:
        # the default tiling first: computing it validates the case the way simulate() does
        default_of = getattr(adapter, "default_tiling", None)
        default = _tiling_dict(default_of(soc, case)) if default_of else DEFAULT_TILING
        cands, bad = [], []
        if study.tilings:
            for d in study.tilings:
                try:
                    cands.append(adapter.tiling_from_dict(soc, case, d))
                except Exception as exc:  # an illegal user tiling is a row, not an abort
                    bad.append(failed(d, exc, "tiling refused"))
        else:
            cands = list(itertools.islice(adapter.enumerate_tilings(soc, case),
                                          study.max_tilings))
            if not cands:
                raise ValueError("the adapter found no legal tiling for this case")
        scored = sorted(((adapter.bound_us(soc, case, t), i, t) for i, t in enumerate(cands)),
                        key=lambda x: (x[0], x[1]))
        keep = scored if study.tilings else scored[: study.simulate_top]
        points: list[Point] = []
        for rank, (bound, _, t) in enumerate(keep):
            td = _tiling_dict(t)
            points.append(Point(point_key(op, var, case, td), op, var, case, td, rank,
                                round(bound, 3), default=td == default))
        if not any(p.default for p in points):
            default_bound = (
                adapter.bound_us(soc, case, adapter.tiling_from_dict(soc, case, default))
                if default_of else None)
            points.append(Point(point_key(op, var, case, default), op, var, case, default, None,
                                None if default_bound is None else round(default_bound, 3),
                                default=True))
        return points + bad
    except Exception as exc:  # planning failed for this case: one error row says why
        return [failed({}, exc, "planning failed")]


def plan_points(study: Study) -> list[Point]:
    """Enumerate, bound and select the points to simulate (deterministic order). A bad study
    (unknown operator or SoC, bad override) raises before anything runs; a case or tiling that
    fails to plan is an error point."""
    from npusim.runner import resolve_soc

    adapter = sweep_adapter(study.op)
    points: list[Point] = []
    for var in study.variants():
        soc = resolve_soc(var["name"], var["overrides"])
        for case in study.cases:
            points.extend(_plan_case(study, adapter, soc, var, case))
    return points


def sweep_adapter(op: str) -> SweepAdapter:
    """The operator's :class:`~npusim.operator.SweepAdapter` (``enumerate_tilings``,
    ``bound_us``, ``tiling_from_dict``, ``simulate_case``, optionally ``default_tiling``)."""
    from npusim.operators import get_operator, operator_names

    adapter = get_operator(op).sweep
    if adapter is None:
        have = [n for n in operator_names() if get_operator(n).sweep is not None]
        raise NotImplementedError(f"sweep: operator {op!r} has no sweep adapter; available: "
                                  f"{', '.join(sorted(have))}")
    return adapter


def _num(v: Any) -> Any:
    """Integers as integers, floats rounded to 3 decimals (stable text in the CSV)."""
    if isinstance(v, float):
        return round(v, 3) if math.isfinite(v) else str(v)
    return v


@contextmanager
def no_collections() -> Iterator[None]:
    """Within the block, no cyclic garbage collection: a point builds and drops a program of
    some 10^5 objects, which triggers collections that rescan them (about a fifth of a decode
    matmul point's CPU); the few cycles it leaves are collected after it."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def run_point(p: Point) -> dict[str, Any]:
    """Simulate one point; never raises (errors are recorded in the row)."""
    row: dict[str, Any] = {"key": p.key, "op": p.op, "soc": p.soc["name"],
                           "variant": p.soc.get("label", BASELINE),
                           "overrides": ";".join(p.soc.get("overrides", [])),
                           "case": json.dumps(p.case, sort_keys=True),
                           "tiling": json.dumps(p.tiling, sort_keys=True, default=str),
                           "rank": "" if p.rank is None else p.rank,
                           "default": 1 if p.default else 0,
                           "bound_us": "" if p.bound_us is None else p.bound_us}
    if p.error:
        row.update(status="error", kernel="", cycles="", us="", error=p.error, summary="")
        return row
    try:
        with no_collections():
            res = sweep_adapter(p.op).simulate_case(p.soc, p.case, p.tiling)
            summ = res.summary()
        keep = {k: _num(v) for k, v in summ.items()
                if k.endswith("busy_pct") or k in SUMMARY_KEYS}
        row.update(status="ok", kernel=res.kernel_name, cycles=int(res.cycles),
                   us=round(res.microseconds, 3), error="",
                   summary=json.dumps(keep, sort_keys=True))
    except Exception as exc:  # a failing point is data, not a fatal error
        row.update(status="error", kernel="", cycles="", us="", error=_error_text(exc),
                   summary="")
    return row


@dataclass
class SweepOutcome:
    """What a (resumed) sweep did: its plan, how much was already in the file, what it wrote."""

    path: Path
    points: list[Point]
    already_done: int
    written: int
    torn_tail_dropped: bool
    tidy: Path | None = None

    def __fspath__(self) -> str:
        return str(self.path)


def check_ray_available() -> None:
    """``--ray`` without Ray is refused before anything is planned or written."""
    if importlib.util.find_spec("ray") is None:
        raise SweepError("--ray needs Ray, which is not installed: pip install -e \".[ray]\" "
                         "in the npusim checkout (or run without --ray: a local process pool)")


def run_sweep(study: Study, out: str | Path, *, workers: int | None = None, use_ray: bool = False,
              ray_address: str | None = None, progress: bool = True) -> SweepOutcome:
    """Run (or resume) a sweep; rows are appended to ``out`` in plan order, whole lines only.
    Start-up failures (bad study, missing Ray, a results file of another study) raise before
    the file is created or changed."""
    out = Path(out)
    if use_ray:
        check_ray_available()
    plan = plan_points(study)
    columns = RESULT_COLUMNS
    existing = read_existing(out, columns)
    todo = [p for p in plan if p.key not in existing.keys]
    done = len(plan) - len(todo)
    appender = Appender(out, columns, existing)
    written = 0
    try:
        for row in _execute(todo, workers, use_ray, ray_address, progress):
            appender.write(row)
            written += 1
    finally:
        appender.close()
    return SweepOutcome(out, plan, done, written, existing.torn, write_tidy(out))


def _worker_version() -> str:
    from npusim import __version__

    return __version__


def _execute(points: Sequence[Point], workers: int | None, use_ray: bool,
             ray_address: str | None, progress: bool) -> Iterable[dict[str, Any]]:
    """Rows in ``points`` order, whatever the completion order."""
    from tqdm import tqdm

    bar = tqdm(total=len(points), disable=not progress, desc="sweep", unit="pt")
    if use_ray:
        yield from _execute_ray(points, workers, ray_address, bar)
    elif workers == 1 or len(points) <= 1:
        for p in points:
            yield run_point(p)
            bar.update()
    else:
        n = min(workers or os.cpu_count() or 1, len(points))
        with ProcessPoolExecutor(max_workers=n) as pool:
            for row in pool.map(run_point, points):
                yield row
                bar.update()
    bar.close()


def _execute_ray(points: Sequence[Point], workers: int | None, address: str | None,
                 bar: Any) -> Iterator[dict[str, Any]]:
    """Ray: connect to ``address`` (or $RAY_ADDRESS), else start a local Ray with ``workers``
    CPUs; results are fetched in point order."""
    try:
        import ray
    except ImportError as exc:
        raise SweepError("--ray needs the optional extra: pip install -e \".[ray]\" in the "
                         "npusim checkout") from exc
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:  # an existing cluster: its resources, its logging
            ray.init(address=address)
        else:
            ray.init(address="local", num_cpus=workers, include_dashboard=False,
                     log_to_driver=False)
        started = True
    try:
        remote_version = ray.get(ray.remote(_worker_version).remote())
        if remote_version != _worker_version():
            raise SweepError(f"Ray workers run npusim {remote_version}, the driver "
                               f"{_worker_version()}: install the same version on the cluster")
        remote = ray.remote(run_point)
        refs = [remote.remote(p) for p in points]
        for ref in refs:  # in point order: deterministic file
            yield ray.get(ref)
            bar.update()
    finally:
        if started:
            ray.shutdown()


def sweep_command(args: argparse.Namespace) -> int:
    """``npusim sweep``: a study file, or a one-operator study from flags; prints where the
    results went, whether it resumed, and the best tiling per case against the default."""
    from npusim.cli import SWEEP_FLAGS_DEFAULTS as FLAGS_STUDY_DEFAULTS
    from npusim.sweep_summary import summary_lines

    if args.study:
        given = [flag for flag in FLAGS_STUDY_DEFAULTS
                 if getattr(args, flag[2:].replace("-", "_"), None) is not None]
        if given:
            raise ValueError(
                f"npusim sweep {args.study}: {', '.join(given)} "
                f"{'describes' if len(given) == 1 else 'describe'} a study from flags and "
                "would not be read with a study file; put it in the study (op, socs, cases, "
                "simulate_top, max_tilings, what_if) or drop the file")
        study = Study.from_yaml(args.study)
    else:
        d = FLAGS_STUDY_DEFAULTS
        data: dict[str, Any] = {
            "op": args.op or d["--op"], "socs": list(args.soc or d["--soc"]),
            "cases": {"m": args.m or d["--m"], "k": args.k or d["--k"],
                      "n": args.n or d["--n"], "dtype": [args.dtype or d["--dtype"]]},
            "simulate_top": args.simulate_top or d["--simulate-top"]}
        if args.max_tilings is not None:
            data["max_tilings"] = args.max_tilings
        if getattr(args, "what_if", None):
            data["what_if"] = [{"label": ";".join(args.what_if), "overrides": args.what_if}]
        study = Study.from_mapping(data, "command line")
    outcome = run_sweep(study, args.out, workers=args.workers, use_ray=args.ray,
                        ray_address=getattr(args, "ray_address", None))
    rows = read_rows(outcome.path)
    for line in summary_lines(outcome, rows):
        print(line)
    if getattr(args, "report", None):
        from npusim.report.compare import report_sentence, write_report

        print(report_sentence(write_report(outcome.path, args.report)))
    planned = {p.key for p in outcome.points}
    if not any(r["status"] == "ok" for r in rows if r["key"] in planned):
        first = next((r["error"] for r in rows if r["key"] in planned), "")
        raise SweepError(f"every point of the study failed ({len(planned)} error rows in "
                         f"{outcome.path}); first: {first}")
    return 0
