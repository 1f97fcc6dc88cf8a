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

import csv
import hashlib
import importlib
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

RESULT_COLUMNS = ["key", "op", "soc", "variant", "overrides", "case", "tiling", "rank",
                  "bound_us", "status", "kernel", "cycles", "us", "error", "summary"]
# SimResult.summary() entries kept in the CSV's ``summary`` JSON (besides every *_busy_pct):
# what the report needs for rooflines and traffic tables.
SUMMARY_KEYS = ("cube_macs", "gm_read_bytes", "gm_write_bytes", "hbm_read_bytes",
                "hbm_write_bytes", "l2_hit_bytes", "l2_miss_bytes")
BASELINE = "baseline"


@dataclass
class Study:
    """A sweep specification: ``socs`` entries are ``{name, label?, overrides?}``; ``what_if``
    entries ``{label, overrides}`` are crossed with every SoC (plus its baseline)."""

    op: str
    socs: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    simulate_top: int = 8
    max_tilings: int | None = None
    tilings: list[dict[str, Any]] = field(default_factory=list)
    what_if: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Study:
        """Read and check a study file (unknown keys are errors, not ignored)."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a study file is a mapping with keys op, socs, cases")
        allowed = {"op", "socs", "cases", "simulate_top", "max_tilings", "tilings", "what_if"}
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
        what_if = list(data.get("what_if") or [])
        for w in what_if:
            if not isinstance(w, dict) or "label" not in w or not w.get("overrides"):
                raise ValueError(f"{path}: every what_if entry needs a label and overrides, "
                                 f"got {w!r}")
        return cls(data["op"], socs, _expand_cases(data["cases"]),
                   int(data.get("simulate_top", 8)), data.get("max_tilings"),
                   list(data.get("tilings") or []), what_if)

    def variants(self) -> list[dict[str, Any]]:
        """Every (SoC, what-if) combination as ``{name, label, overrides}`` with the scaled
        overrides (``path*=f``) resolved to absolute values, in study order."""
        out: list[dict[str, Any]] = []
        for s in self.socs:
            base_ov = list(s.get("overrides") or [])
            label = s.get("label") or (BASELINE if not base_ov else ";".join(base_ov))
            out.append({"name": s["name"], "label": label,
                        "overrides": resolve_overrides(s["name"], base_ov)})
            for w in self.what_if:
                ov = base_ov + list(w["overrides"])
                out.append({"name": s["name"], "label": str(w["label"]),
                            "overrides": resolve_overrides(s["name"], ov)})
        return out


def resolve_overrides(soc: str, overrides: Sequence[str]) -> list[str]:
    """Turn ``path*=factor`` (scale the SoC's own value, e.g. ``memory.hbm.bandwidth_gb_per_s*=2``)
    into ``path=value``; other overrides pass unchanged. Integer fields stay integers (rounded)."""
    if not any("*=" in o for o in overrides):
        return list(overrides)
    from npusim.hw import load_soc

    data = load_soc(soc).model_dump(mode="json")
    out = []
    for o in overrides:
        path, sep, factor = o.partition("*=")
        if not sep:
            out.append(o)
            continue
        node: Any = data
        parts = path.strip().split(".")
        parts[0] = "cores" if parts[0] == "core" else parts[0]
        for part in parts:
            if isinstance(node, list) and part.isdigit():
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise ValueError(f"override {o!r}: {soc} has no numeric field {path.strip()!r}")
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise ValueError(f"override {o!r}: field {path.strip()!r} is {node!r}, not a number")
        value = node * float(factor)
        value = round(value) if isinstance(node, int) else round(value, 6)
        out.append(f"{path.strip()}={value}")
    return out


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
    """A stable 16-hex-digit id of one point (resume skips keys already in the file)."""
    blob = json.dumps([op, soc, case, tiling], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    """One (variant, case, tiling) to simulate; ``soc`` is a resolved variant."""

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
    for var in study.variants():
        soc = resolve_soc(var["name"], var["overrides"])
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
                points.append(Point(point_key(study.op, var, case, td), study.op, var, case, td,
                                    rank, round(bound, 3)))
    return points


# --- weight_quant_batchmatmul -------------------------------------------------------------------
# Its legal program tilings are not enumerated (their constraints live in the program builder):
# a sweep simulates the CANN-like default tiling or the study's listed ``tilings``
# (WqbmmProgramTiling fields), across cases and options such as inner_precise / kernel.

def _wq_case(case: dict[str, Any]) -> dict[str, Any]:
    from npusim.spec import spec

    m, k, n = int(case["m"]), int(case["k"]), int(case["n"])
    dt = case.get("dtype", "float16")
    wdt = case.get("weight_dtype", "int4")
    g = int(case.get("group_size", 128 if wdt == "int4" else 0))
    weight = spec((k, n // 8), "int32") if wdt == "int4" else spec((k, n), "int8")
    scale = spec((k // g, n), dt) if g else spec((n,), dt)
    args = {"x": spec((m, k), dt), "weight": weight, "antiquant_scale": scale,
            "antiquant_group_size": g, "inner_precise": int(case.get("inner_precise", 0))}
    if case.get("kernel"):
        args["kernel"] = case["kernel"]
    return args


def _wq_enumerate(soc: Any, case: dict[str, Any]) -> Iterator[Any]:
    yield {"tiling": "default"}


def _wq_bound_us(soc: Any, case: dict[str, Any], t: Any) -> float:
    """Lower bound: the weight, activation and scale bytes once through HBM."""
    m, k, n = int(case["m"]), int(case["k"]), int(case["n"])
    wbits = 4 if case.get("weight_dtype", "int4") == "int4" else 8
    nbytes = k * n * wbits / 8 + 2 * (m * k + m * n + n * max(1, k // 128))
    return nbytes / soc.bytes_per_cycle(soc.memory.hbm.bandwidth_gb_per_s) / soc.aicore_freq_mhz


def _wq_tiling_from_dict(soc: Any, case: dict[str, Any], d: dict[str, Any]) -> Any:
    from npusim.ops.weight_quant_program import WqbmmProgramTiling

    return d if d == {"tiling": "default"} else asdict(WqbmmProgramTiling(**d))


def _wq_simulate(soc_entry: dict[str, Any], case: dict[str, Any], tiling: dict[str, Any]):
    import npusim
    from npusim.ops.weight_quant_program import WqbmmProgramTiling

    t = None if tiling == {"tiling": "default"} else WqbmmProgramTiling(**tiling)
    return npusim.simulate("weight_quant_batchmatmul", soc_entry["name"], t,
                           overrides=soc_entry.get("overrides", ()), check_races=False,
                           **_wq_case(case))


WQBMM_ADAPTER = SimpleNamespace(enumerate_tilings=_wq_enumerate, bound_us=_wq_bound_us,
                                tiling_from_dict=_wq_tiling_from_dict, simulate_case=_wq_simulate)


def sweep_adapter(op: str) -> Any:
    """The object implementing ``enumerate_tilings``, ``bound_us``, ``tiling_from_dict`` and
    ``simulate_case`` for ``op``."""
    if op == "weight_quant_batchmatmul":
        return WQBMM_ADAPTER
    mods = {"matmul": "npusim.ops.matmul_sweep", "quant_matmul": "npusim.ops.matmul_sweep"}
    if op not in mods:
        raise NotImplementedError(f"sweep: operator {op!r} has no sweep adapter; available: "
                                  f"{', '.join(sorted([*mods, 'weight_quant_batchmatmul']))}")
    return importlib.import_module(mods[op])


def _num(v: Any) -> Any:
    """Integers as integers, floats rounded to 3 decimals (stable text in the CSV)."""
    if isinstance(v, float):
        return round(v, 3) if math.isfinite(v) else str(v)
    return v


def run_point(p: Point) -> dict[str, Any]:
    """Simulate one point; never raises (errors are recorded in the row)."""
    row: dict[str, Any] = {"key": p.key, "op": p.op, "soc": p.soc["name"],
                           "variant": p.soc.get("label", BASELINE),
                           "overrides": ";".join(p.soc.get("overrides", [])),
                           "case": json.dumps(p.case, sort_keys=True),
                           "tiling": json.dumps(p.tiling, sort_keys=True, default=str),
                           "rank": p.rank, "bound_us": p.bound_us}
    try:
        res = sweep_adapter(p.op).simulate_case(p.soc, p.case, p.tiling)
        summ = res.summary()
        keep = {k: _num(v) for k, v in summ.items()
                if k.endswith("busy_pct") or k in SUMMARY_KEYS}
        row.update(status="ok", kernel=res.kernel_name, cycles=int(res.cycles),
                   us=round(res.microseconds, 3), error="",
                   summary=json.dumps(keep, sort_keys=True))
    except Exception as exc:  # a failing point is data, not a fatal error
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        row.update(status="error", kernel="", cycles="", us="", error=msg[:500], summary="")
    return row


def _done_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames and list(reader.fieldnames) != RESULT_COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} differ from this version's "
                             f"{RESULT_COLUMNS}; write to a new --out file")
        return {r["key"] for r in reader}


def run_sweep(study: Study, out: str | Path, *, workers: int | None = None, use_ray: bool = False,
              ray_address: str | None = None, progress: bool = True) -> Path:
    """Run (or resume) a sweep; rows are appended to ``out`` in plan order."""
    out = Path(out)
    done = _done_keys(out)
    points = [p for p in plan_points(study) if p.key not in done]
    new_file = not out.exists() or out.stat().st_size == 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        if new_file:
            w.writeheader()
            f.flush()
        for row in _execute(points, workers, use_ray, ray_address, progress):
            w.writerow(row)
            f.flush()
    return out


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
        raise RuntimeError("--ray needs the optional extra: pip install 'npusim[ray]'") from exc
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
            raise RuntimeError(f"Ray workers run npusim {remote_version}, the driver "
                               f"{_worker_version()}: install the same version on the cluster")
        remote = ray.remote(run_point)
        refs = [remote.remote(p) for p in points]
        for ref in refs:  # in point order: deterministic file
            yield ray.get(ref)
            bar.update()
    finally:
        if started:
            ray.shutdown()


def sweep_command(args: Any) -> int:
    """``npusim sweep``: a study file, or a one-operator study from flags."""
    if args.study:
        study = Study.from_yaml(args.study)
    else:
        cases = _expand_cases({"m": args.m or [16], "k": args.k or [4096], "n": args.n or [4096],
                               "dtype": [args.dtype]})
        study = Study(args.op, [{"name": s} for s in (args.soc or ["Ascend910B2"])], cases,
                      args.simulate_top, args.max_tilings,
                      what_if=[{"label": ";".join(args.what_if), "overrides": args.what_if}]
                      if getattr(args, "what_if", None) else [])
    out = run_sweep(study, args.out, workers=args.workers, use_ray=args.ray,
                    ray_address=getattr(args, "ray_address", None))
    print(f"results: {out}")
    if getattr(args, "report", None):
        from npusim.report.compare import write_report

        print(f"report: {write_report(out, args.report)}")
    return 0
