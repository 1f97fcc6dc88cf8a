"""``npusim sweep``: shapes x SoCs x tilings x operator options, with pruning, resume and pools.

A study (YAML file or flags) names an operator, a list of SoCs (each optionally with what-if
overrides), a list of shapes / operator options and a tiling space. For every (SoC, case) the
operator's sweep adapter enumerates the legal tilings and ranks them with its analytical bound;
the event simulation then runs the ``simulate_top`` best (plus every user-listed tiling). Results
are appended to a CSV as they finish - an interrupted sweep resumes where it stopped, because
points already present (by key) are skipped - and a failing point is recorded with its error.

Parallelism: a local process pool (default) or Ray (``--ray``; optional extra). Points are
simulated independently and written in a deterministic order, so both give identical files.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import itertools
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import yaml

RESULT_COLUMNS = ["key", "op", "soc", "overrides", "case", "tiling", "rank", "bound_us",
                  "status", "kernel", "cycles", "us", "error", "summary"]


@dataclass
class Study:
    """A sweep specification."""

    op: str
    socs: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    simulate_top: int = 8
    max_tilings: int | None = None
    tilings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Study:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a study file is a mapping with keys op, socs, cases")
        allowed = {"op", "socs", "cases", "simulate_top", "max_tilings", "tilings"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(allowed))}")
        for req in ("op", "socs", "cases"):
            if req not in data:
                raise ValueError(f"{path}: missing required key {req!r}")
        socs = [s if isinstance(s, dict) else {"name": s} for s in data["socs"]]
        for s in socs:
            if "name" not in s:
                raise ValueError(f"{path}: every entry of socs needs a name")
        cases = _expand_cases(data["cases"])
        return cls(data["op"], socs, cases, int(data.get("simulate_top", 8)),
                   data.get("max_tilings"), list(data.get("tilings", [])))


def _expand_cases(cases: Any) -> list[dict[str, Any]]:
    """A list of dicts, or a dict of lists (cartesian product)."""
    if isinstance(cases, dict):
        keys = sorted(cases)
        values = [v if isinstance(v, list) else [v] for v in (cases[k] for k in keys)]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    if isinstance(cases, list) and all(isinstance(c, dict) for c in cases):
        return cases
    raise ValueError("cases must be a list of mappings or a mapping of lists")


def _tiling_dict(t: Any) -> dict[str, Any]:
    if is_dataclass(t):
        return asdict(t)
    if isinstance(t, dict):
        return t
    return {"tiling": str(t)}


def point_key(op: str, soc: dict[str, Any], case: dict[str, Any], tiling: dict[str, Any]) -> str:
    blob = json.dumps([op, soc, case, tiling], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    key: str
    op: str
    soc: dict[str, Any]
    case: dict[str, Any]
    tiling: dict[str, Any]
    rank: int
    bound_us: float


def plan_points(study: Study) -> list[Point]:
    """Enumerate, bound and select the points to simulate (deterministic order)."""
    from npusim.runner import resolve_soc

    adapter = sweep_adapter(study.op)
    points: list[Point] = []
    for soc_entry in study.socs:
        soc = resolve_soc(soc_entry["name"], soc_entry.get("overrides", ()))
        for case in study.cases:
            if study.tilings:
                cands = [adapter.tiling_from_dict(soc, case, d) for d in study.tilings]
            else:
                cands = list(itertools.islice(adapter.enumerate_tilings(soc, case),
                                              study.max_tilings))
            scored = sorted(((adapter.bound_us(soc, case, t), i, t) for i, t in enumerate(cands)),
                            key=lambda x: (x[0], x[1]))
            keep = scored if study.tilings else scored[: study.simulate_top]
            for rank, (bound, _, t) in enumerate(keep):
                td = _tiling_dict(t)
                points.append(Point(point_key(study.op, soc_entry, case, td), study.op,
                                    soc_entry, case, td, rank, round(bound, 3)))
    return points


def sweep_adapter(op: str):
    """The module implementing ``enumerate_tilings``, ``bound_us``, ``tiling_from_dict`` and
    ``simulate_case`` for ``op``."""
    mods = {"matmul": "npusim.ops.matmul_sweep", "quant_matmul": "npusim.ops.matmul_sweep",
            "weight_quant_batchmatmul": "npusim.ops.matmul_sweep"}
    if op not in mods:
        raise NotImplementedError(f"sweep: operator {op!r} has no sweep adapter; available: "
                                  f"{', '.join(sorted(mods))}")
    return importlib.import_module(mods[op])


def run_point(p: Point) -> dict[str, Any]:
    """Simulate one point; never raises (errors are recorded)."""
    row: dict[str, Any] = {"key": p.key, "op": p.op, "soc": p.soc["name"],
                           "overrides": ";".join(p.soc.get("overrides", [])),
                           "case": json.dumps(p.case, sort_keys=True),
                           "tiling": json.dumps(p.tiling, sort_keys=True, default=str),
                           "rank": p.rank, "bound_us": p.bound_us}
    try:
        res = sweep_adapter(p.op).simulate_case(p.soc, p.case, p.tiling)
        row.update(status="ok", kernel=res.kernel_name, cycles=res.cycles,
                   us=round(res.microseconds, 3), error="",
                   summary=json.dumps({k: v for k, v in res.summary().items()
                                       if k.endswith("busy_pct")}, sort_keys=True))
    except Exception as exc:  # a failing point is data, not a fatal error
        row.update(status="error", kernel="", cycles="", us="",
                   error=f"{type(exc).__name__}: {exc}", summary="")
    return row


def _done_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        return {r["key"] for r in csv.DictReader(f)}


def run_sweep(study: Study, out: str | Path, *, workers: int | None = None, use_ray: bool = False,
              progress: bool = True) -> Path:
    """Run (or resume) a sweep; rows are appended to ``out`` in point order."""
    out = Path(out)
    points = [p for p in plan_points(study) if p.key not in _done_keys(out)]
    new_file = not out.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        if new_file:
            w.writeheader()
            f.flush()
        for row in _execute(points, workers, use_ray, progress):
            w.writerow(row)
            f.flush()
    return out


def _execute(points: Sequence[Point], workers: int | None, use_ray: bool,
             progress: bool) -> Iterable[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(total=len(points), disable=not progress, desc="sweep", unit="pt")
    if use_ray:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError("--ray needs the optional extra: pip install 'npusim[ray]'") from exc
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
        remote = ray.remote(run_point)
        refs = [remote.remote(p) for p in points]
        for ref in refs:  # in point order: deterministic file
            yield ray.get(ref)
            bar.update()
    elif workers == 1 or len(points) <= 1:
        for p in points:
            yield run_point(p)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            for row in pool.map(run_point, points):
                yield row
                bar.update()
    bar.close()


def sweep_command(args) -> int:
    """``npusim sweep``: a study file, or a one-operator study from flags."""
    if args.study:
        study = Study.from_yaml(args.study)
    else:
        cases = _expand_cases({"m": args.m or [16], "k": args.k or [4096], "n": args.n or [4096],
                               "dtype": [args.dtype]})
        study = Study(args.op, [{"name": s} for s in (args.soc or ["Ascend910B2"])], cases,
                      args.simulate_top, args.max_tilings)
    out = run_sweep(study, args.out, workers=args.workers, use_ray=args.ray)
    print(f"results: {out}")
    return 0
