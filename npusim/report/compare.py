"""``npusim report``: the what-if comparison report of a sweep CSV (markdown tables + PNG plots).

Sections: best time per case and variant with the speed-up over the SoC's baseline (table and
bar chart); per-pipe busy time of those best points; a roofline (descriptor peak compute of the
case's dtype and HBM bandwidth per variant, points at flop / simulated HBM byte); heatmaps of
time over two tiling fields; and, when the study varies ``inner_precise``, the time per mode plus
the output difference between the modes. Times, cycles and busy percentages are copied from the
CSV text unchanged, so the tables can be checked against it; derived columns (speed-up,
intensity, TFLOPS) say so.

Output difference: the sweep runs timing-only, so the report asks the operator
(``Operator.compare_modes``; weight_quant_batchmatmul: its torch_npu-named API) for both modes'
outputs on seeded random inputs (``OUTPUT_SEED``) for the row's SoC variant - the selected
kernel's bits as npusim computes them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUTPUT_SEED = 0
BASELINE = "baseline"
# Tiling fields preferred for the heatmap axes when several vary equally.
HEATMAP_ORDER = ("base_m", "base_n", "base_k", "step_ka", "step_kb", "m_dim", "n_dim", "k_dim",
                 "depth_a1", "depth_b1", "strip_n", "slots", "step_k")
MAX_HEATMAPS = 12


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """The CSV rows (strings) with parsed ``_case``, ``_tiling`` and ``_summary`` added."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); not a results CSV") \
            from None
    if rows and not {"variant", "case", "tiling", "us", "summary"} <= set(rows[0]):
        raise ValueError(f"{path}: not a results CSV of this npusim version (columns "
                         f"{list(rows[0])})")
    for i, r in enumerate(rows):
        try:
            r["_case"] = json.loads(r["case"])
            r["_tiling"] = json.loads(r["tiling"])
            r["_summary"] = json.loads(r["summary"]) if r["summary"] else {}
        except (TypeError, ValueError) as exc:  # a cut or edited row: name it
            raise ValueError(f"{path}: row {i + 1}: its case / tiling / summary is not JSON "
                             f"({exc}); a torn or edited results file") from None
    return rows


def case_label(case: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(case.items()))


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _is_pipe(key: str) -> bool:
    """``<core>_<pipe>_busy_pct`` (not aggregates such as ``bottleneck_busy_pct``)."""
    return key.endswith("_busy_pct") and "_" in key.removesuffix("_busy_pct")


def best_points(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(soc, variant, case JSON) -> the ok row with the least simulated time (first on ties)."""
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        key = (r["soc"], r["variant"], r["case"])
        if key not in best or float(r["us"]) < float(best[key]["us"]):
            best[key] = r
    return best


def _baseline_of(best: dict[tuple[str, str, str], dict[str, Any]], soc: str,
                 case: str) -> dict[str, Any] | None:
    keys = [k for k in best if k[0] == soc and k[2] == case]
    base = [k for k in keys if k[1] == BASELINE] or keys[:1]
    return best[base[0]] if base else None


def _flops(case: dict[str, Any]) -> float:
    try:
        return 2.0 * int(case["m"]) * int(case["k"]) * int(case["n"])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def _peak_dtype(op: str, case: dict[str, Any]) -> str:
    from npusim.operators import get_operator

    return get_operator(op).peak_dtype(case)


def _roofs(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(soc, variant, peak dtype) -> (peak TFLOPS, HBM GB/s) of the variant's descriptor."""
    from npusim.hw import load_soc

    roofs: dict[tuple[str, str, str], tuple[float, float]] = {}
    descs: dict[tuple[str, str], Any] = {}
    for r in rows:
        dk = (r["soc"], r["overrides"])
        if dk not in descs:
            ov = [o for o in r["overrides"].split(";") if o]
            descs[dk] = load_soc(r["soc"], overrides=ov)
        d = descs[dk]
        key = (r["soc"], r["variant"], _peak_dtype(r["op"], r["_case"]))
        if key not in roofs:
            try:
                peak = float(d.peak_tflops(key[2]))
            except Exception:  # a dtype the cube lacks: no compute roof
                peak = float("nan")
            roofs[key] = (peak, float(d.memory.hbm.bandwidth_gb_per_s))
    return roofs


def _heatmap_axes(group: list[dict[str, Any]], want: tuple[str, str] | None
                  ) -> tuple[str, str] | None:
    fields = {k for r in group for k in r["_tiling"]}
    if want:
        missing = [w for w in want if w not in fields]
        if missing:
            raise ValueError(f"--heatmap: tiling field(s) {missing} not in the results; "
                             f"fields: {', '.join(sorted(fields))}")
        return want
    distinct = {f: len({json.dumps(r["_tiling"].get(f)) for r in group}) for f in fields}
    order = {f: i for i, f in enumerate(HEATMAP_ORDER)}
    cands = sorted((f for f in fields if distinct[f] > 1),
                   key=lambda f: (f not in order, -distinct[f], order.get(f, 0), f))
    return (cands[0], cands[1]) if len(cands) >= 2 else None


def _sort_vals(vals: set[Any]) -> list[Any]:
    return sorted(vals, key=lambda v: (not isinstance(v, int | float), v if isinstance(
        v, int | float) else str(v)))


def heatmap_grid(group: list[dict[str, Any]], x: str, y: str
                 ) -> tuple[list[Any], list[Any], list[list[str]]]:
    """Axis values and, per cell, the least CSV ``us`` text over rows at that (x, y) ('' when
    nothing was simulated there)."""
    xs = _sort_vals({r["_tiling"].get(x) for r in group})
    ys = _sort_vals({r["_tiling"].get(y) for r in group})
    cells: list[list[str]] = [["" for _ in xs] for _ in ys]
    for r in group:
        ix, iy = xs.index(r["_tiling"].get(x)), ys.index(r["_tiling"].get(y))
        if cells[iy][ix] == "" or float(r["us"]) < float(cells[iy][ix]):
            cells[iy][ix] = r["us"]
    return xs, ys, cells


def inner_precise_outputs(op: str, soc: str, overrides: str, case: dict[str, Any],
                          modes: Sequence[int]) -> dict[str, Any]:
    """The operator's output difference between the first two inner_precise modes on seeded
    inputs (``OUTPUT_SEED``); {} when the operator has no such modes."""
    from npusim.hw import load_soc
    from npusim.operators import get_operator

    compare = get_operator(op).compare_modes
    if compare is None or len(modes) < 2:
        return {}
    desc = load_soc(soc, overrides=[o for o in overrides.split(";") if o])
    return compare(desc, case, (int(modes[0]), int(modes[1])), OUTPUT_SEED)


def write_report(results: str | Path, out_dir: str | Path,
                 heatmap: tuple[str, str] | None = None) -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir``; returns the markdown path."""
    from npusim.report import plots

    plots.require_matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = load_results(results)
    ok = [r for r in rows if r["status"] == "ok"]
    best = best_points(rows)
    md = [f"# Sweep report: {Path(results).name}", "",
          f"{len(rows)} points: {len(ok)} simulated, {len(rows) - len(ok)} failed. Times, cycles "
          "and busy % are the CSV's values; speed-up = baseline us / us of the same SoC and "
          "case. Estimate rank: the tiling's place in the sweep's analytical estimate "
          "(`bound_us`), which ranks tilings before simulation but is not a lower bound (a "
          "simulated time can be below it).", ""]

    md += ["## Best time per case and variant", ""]
    table = []
    for (soc, var, case), r in best.items():
        base = _baseline_of(best, soc, case)
        speed = float(base["us"]) / float(r["us"]) if base and float(r["us"]) > 0 else math.nan
        table.append([case_label(r["_case"]), soc, var, r["overrides"] or "-", r["us"],
                      r["cycles"], r["kernel"], r["rank"], _fmt(speed)])
    md += _table(["case", "soc", "variant", "overrides", "us", "cycles", "kernel", "estimate rank",
                  "speed-up"], table)
    if table:
        plots.best_time_bars([(f"{t[1]} {t[0]}", t[2], float(t[4]),
                               float(t[8]) if t[8] != "-" else math.nan) for t in table],
                             out / "best.png")
        md += ["", "![best time per case](best.png)"]
    errors = [r for r in rows if r["status"] != "ok"]
    if errors:
        md += ["", f"{len(errors)} failed point(s), first errors:", ""]
        md += _table(["soc", "variant", "case", "error"],
                     [[r["soc"], r["variant"], case_label(r["_case"]),
                       r["error"].replace("|", "/")[:160]] for r in errors[:10]])

    md += ["", "## Per-pipe busy time (best point)", ""]
    groups: dict[str, dict[str, float]] = {}
    pipes = sorted({k for r in best.values() for k in r["_summary"] if _is_pipe(k)})
    ptable = []
    for (soc, var, _), r in best.items():
        label = f"{soc} {var} {case_label(r['_case'])}"
        s = r["_summary"]
        groups[label] = {p.removesuffix("_busy_pct"): float(s.get(p, 0.0)) for p in pipes}
        ptable.append([case_label(r["_case"]), soc, var, *[s.get(p, "-") for p in pipes]])
    md += _table(["case", "soc", "variant", *[p.removesuffix("_busy_pct") for p in pipes]],
                 ptable)
    if groups:
        plots.pipe_bars(groups, out / "pipes.png")
        md += ["", "![per-pipe busy](pipes.png)"]

    md += ["", "## Roofline", "",
           "Roofs: the variant descriptor's dense cube peak for the case dtype and its HBM "
           "bandwidth. Points (best tiling): flops = 2 m k n, bytes = simulated HBM reads + "
           "write-backs (derived columns).", ""]
    roofs = _roofs(ok)
    rtable, rpoints, rused = [], [], {}
    for (soc, var, _), r in best.items():
        rk = (soc, var, _peak_dtype(r["op"], r["_case"]))
        peak, bw = roofs[rk]
        flops = _flops(r["_case"])
        hbm = float(r["_summary"].get("hbm_read_bytes", 0)) + float(
            r["_summary"].get("hbm_write_bytes", 0))
        inten = flops / hbm if hbm > 0 else math.nan
        tflops = flops / (float(r["us"]) * 1e-6) / 1e12 if float(r["us"]) > 0 else math.nan
        roof_label = f"{soc} {var} ({rk[2]})"
        rused[roof_label] = (peak, bw)
        if math.isfinite(inten) and math.isfinite(tflops) and tflops > 0:
            rpoints.append((roof_label, inten, tflops))
        bound = min(peak, bw * 1e9 * inten / 1e12) if math.isfinite(inten) else math.nan
        rtable.append([case_label(r["_case"]), soc, var, r["us"], f"{flops:.0f}", f"{hbm:.0f}",
                       _fmt(inten, 2), _fmt(tflops), _fmt(peak, 1), _fmt(bw, 1),
                       _fmt(bound)])
    md += _table(["case", "soc", "variant", "us", "flops", "HBM bytes", "flop/B",
                  "TFLOPS", "peak TFLOPS", "HBM GB/s", "roof TFLOPS"], rtable)
    if rused:
        plots.roofline(rpoints, rused, out / "roofline.png")
        md += ["", "![roofline](roofline.png)"]

    md += ["", "## Time over two tiling fields", "",
           "Each cell: the least simulated us over the tilings at that pair (blank: not "
           "simulated - the sweep's analytical estimate ranked it below simulate_top).", ""]
    by_group: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        by_group[(r["soc"], r["variant"], r["case"])].append(r)
    n_maps = 0
    for (soc, var, _), group in by_group.items():
        axes = _heatmap_axes(group, heatmap)
        title = f"{soc} {var} {case_label(group[0]['_case'])}"
        if axes is None:
            md += [f"{title}: fewer than two tiling fields vary; no heatmap.", ""]
            continue
        if n_maps >= MAX_HEATMAPS:
            md += [f"(further heatmaps omitted: at most {MAX_HEATMAPS})", ""]
            break
        xs, ys, cells = heatmap_grid(group, *axes)
        name = f"heatmap_{n_maps}.png"
        plots.heatmap(xs, ys, [[float(c) if c else math.nan for c in row] for row in cells],
                      axes[0], axes[1], title, out / name)
        n_maps += 1
        md += [f"### {title}", ""]
        md += _table([f"{axes[1]} \\ {axes[0]}", *map(str, xs)],
                     [[str(yv), *[c or " " for c in cells[i]]] for i, yv in enumerate(ys)])
        md += ["", f"![heatmap]({name})", ""]

    md += _inner_precise_section(best, out)
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return path


def _inner_precise_section(best: dict[tuple[str, str, str], dict[str, Any]],
                           out: Path) -> list[str]:
    modes = sorted({int(r["_case"]["inner_precise"]) for r in best.values()
                    if "inner_precise" in r["_case"]})
    if len(modes) < 2:
        return []
    from npusim.report import plots

    paired: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for (soc, var, _), r in best.items():
        if "inner_precise" in r["_case"]:
            rest = {k: v for k, v in r["_case"].items() if k != "inner_precise"}
            paired[(soc, var, json.dumps(rest, sort_keys=True))][
                int(r["_case"]["inner_precise"])] = r
    md = ["", "## inner_precise comparison", "",
          f"Best simulated time per mode; output difference between modes {modes[0]} and "
          f"{modes[1]} from the kernel numerics on seeded random inputs (seed {OUTPUT_SEED}).",
          ""]
    table, labels = [], []
    times: dict[int, list[float]] = {m: [] for m in modes}
    for (soc, var, rest_json), by_mode in paired.items():
        if not all(m in by_mode for m in modes):
            continue
        first = by_mode[modes[0]]
        diff = inner_precise_outputs(first["op"], soc, first["overrides"], first["_case"],
                                     modes)
        labels.append(f"{soc} {var} {case_label(json.loads(rest_json))}")
        for m in modes:
            times[m].append(float(by_mode[m]["us"]))
        ratio = float(by_mode[modes[1]]["us"]) / float(first["us"])
        table.append([case_label(json.loads(rest_json)), soc, var,
                      *[by_mode[m]["us"] for m in modes], *[by_mode[m]["kernel"] for m in modes],
                      _fmt(ratio),
                      f"{diff['differing']}/{diff['elements']}" if diff else "-",
                      f"{diff['max_abs_diff']:.6g}" if diff else "-"])
    md += _table(["case", "soc", "variant", *[f"us ip={m}" for m in modes],
                  *[f"kernel ip={m}" for m in modes], f"time ip={modes[1]}/ip={modes[0]}",
                  "differing outputs", "max abs diff"], table)
    if labels:
        plots.inner_precise_bars(labels, times, out / "inner_precise.png")
        md += ["", "![inner_precise](inner_precise.png)"]
    return md


def report_command(args: argparse.Namespace) -> int:
    """``npusim report RESULTS.csv --out DIR [--heatmap X,Y]``."""
    heat = None
    if args.heatmap:
        parts = [p.strip() for p in args.heatmap.split(",")]
        if len(parts) != 2 or not all(parts):
            raise SystemExit(f"--heatmap {args.heatmap!r}: give two tiling fields, e.g. "
                             "base_n,base_k")
        heat = (parts[0], parts[1])
    try:
        path = write_report(args.results, args.out, heat)
    except (RuntimeError, ValueError) as exc:  # matplotlib missing, bad CSV or --heatmap
        raise SystemExit(f"npusim report: {exc}") from exc
    print(report_sentence(path))
    return 0


def report_sentence(path: Path) -> str:
    """The closing line of ``npusim report`` / ``npusim sweep --report``."""
    return (f"report written to {path} (best time per case, per-pipe busy, roofline and heatmap "
            "tables, with their PNGs beside it)")
