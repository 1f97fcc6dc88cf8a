"""The closing summary of ``npusim sweep``: resume status, errors, and per case the best
simulated tiling with its speed-up over the tiling ``simulate`` picks by default."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from npusim.sweep import SweepOutcome

TILING_FIELDS_SHOWN = 8


class _Group(TypedDict):
    best: Mapping[str, str] | None
    default: Mapping[str, str] | None
    points: int
    errors: int


class CaseBest(TypedDict):
    """One (soc, variant, case) of :func:`best_per_case`."""

    soc: str
    variant: str
    case: str
    best: Mapping[str, str] | None  # the fastest ok row (None: no point ran)
    default: Mapping[str, str] | None  # the default tiling's row
    speedup: float | None  # default us / best us (None when the default did not run)
    points: int
    errors: int


def _case_label(case_json: str) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(json.loads(case_json).items()))


def _tiling_label(tiling_json: str, default_json: str | None) -> str:
    """The best tiling as the fields where it differs from the default (all fields, capped,
    when the default did not run)."""
    t = json.loads(tiling_json)
    if default_json is None or json.loads(default_json) == {"tiling": "default"}:
        # no default fields to compare with (an operator whose default is named, not listed):
        # the best tiling's own fields, as the study gave them
        items = [f"{k}={v}" for k, v in t.items()]
    else:
        d = json.loads(default_json)
        if t == d:
            return "the default tiling"
        items = [f"{k}={t.get(k)} (default {d.get(k)})" for k in {**t, **d}
                 if t.get(k) != d.get(k)]
    more = len(items) - TILING_FIELDS_SHOWN
    return ", ".join(items[:TILING_FIELDS_SHOWN]) + (f", ... (+{more})" if more > 0 else "")


def best_per_case(rows: Sequence[Mapping[str, str]]) -> list[CaseBest]:
    """Per (soc, variant, case), in file order: the fastest ok row, the default-tiling row and
    the speed-up ``default us / best us`` (None when the default did not run)."""
    groups: dict[tuple[str, str, str], _Group] = {}
    for r in rows:
        g = groups.setdefault((r["soc"], r["variant"], r["case"]),
                              {"best": None, "default": None, "points": 0, "errors": 0})
        g["points"] += 1
        if r["status"] != "ok":
            g["errors"] += 1
            continue
        if g["best"] is None or float(r["us"]) < float(g["best"]["us"]):
            g["best"] = r
        if r["default"] == "1":
            g["default"] = r
    out: list[CaseBest] = []
    for (soc, variant, case), g in groups.items():
        best, default = g["best"], g["default"]
        speedup = None
        if best is not None and default is not None and float(best["us"]) > 0:
            speedup = float(default["us"]) / float(best["us"])
        out.append({"soc": soc, "variant": variant, "case": case, "best": best,
                    "default": default, "speedup": speedup, "points": g["points"],
                    "errors": g["errors"]})
    return out


def summary_lines(outcome: SweepOutcome, rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The lines ``npusim sweep`` prints after the run (only this study's points)."""
    planned = {p.key for p in outcome.points}
    mine = [r for r in rows if r["key"] in planned]
    lines = [f"results: {outcome.path}"]
    if outcome.tidy is not None:
        lines.append(f"tidy (one column per case / tiling field): {outcome.tidy}")
    if outcome.already_done or outcome.torn_tail_dropped:
        torn = "; a torn last line (an interrupted write) was cut and its point run again" \
            if outcome.torn_tail_dropped else ""
        lines.append(f"resumed: {outcome.already_done} of {len(planned)} points were already "
                     f"done, {outcome.written} run now{torn}")
    errors = [r for r in mine if r["status"] != "ok"]
    lines.append(f"points: {len(mine)} ({len(mine) - len(errors)} ok, {len(errors)} error)")
    if errors:
        lines.append(f"first error: {errors[0]['error']}")
    lines.append("best tiling per case (speed-up = default tiling us / best us):")
    for g in best_per_case(mine):
        head = f"  {g['soc']} {g['variant']} {_case_label(g['case'])}:"
        best = g["best"]
        if best is None:
            lines.append(f"{head} no point ran ({g['errors']} error rows)")
            continue
        default = g["default"]
        ref = (f"default {default['us']} us -> {g['speedup']:.2f}x" if default is not None
               else "the default tiling did not run")
        label = _tiling_label(best["tiling"], None if default is None else default["tiling"])
        lines.append(f"{head} {best['us']} us with {label}; {ref}")
    return lines
