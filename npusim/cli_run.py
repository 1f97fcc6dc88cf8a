"""``npusim run``: one operator, a summary table (ending with the HBM-bound line: compulsory bytes
/ HBM bandwidth vs the simulated time, bottleneck pipe named), optional trace and CSV files."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import yaml

from npusim.report.summary import format_summary, hbm_roofline
from npusim.runner import OPERATORS, operator_module, resolve_soc, simulate


def parse_tiling_overrides(items: list[str]) -> dict:
    """``["base_m=128", "double_buffer=false"]`` -> typed dict (values parsed as YAML scalars)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--tiling {item!r}: expected FIELD=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def apply_tiling_overrides(default, overrides: dict):
    if not overrides:
        return default
    if default is None or not dataclasses.is_dataclass(default):
        raise SystemExit("--tiling: this operator has no tiling object to override")
    names = {f.name for f in dataclasses.fields(default)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise SystemExit(f"--tiling: unknown field(s) {', '.join(bad)}; fields are "
                         f"{', '.join(sorted(names))}")
    return dataclasses.replace(default, **overrides)


def run_command(args: argparse.Namespace) -> int:
    from npusim.cli import DEFAULT_RUN

    op = args.op
    if op is None:
        op = next((o for o in DEFAULT_RUN if o in OPERATORS), "vector_add")
    if op not in OPERATORS:
        raise SystemExit(f"npusim run: unknown operator {op!r}; available: "
                         f"{', '.join(sorted(OPERATORS))}")
    soc = resolve_soc(args.soc, args.overrides, args.patch)
    mod = operator_module(op)
    rng = np.random.default_rng(args.seed)
    op_args = mod.cli_op_args(args, functional=args.functional, rng=rng)
    tiling = None
    overrides = parse_tiling_overrides(args.tiling)
    if overrides:
        tiling = apply_tiling_overrides(mod.default_tiling_for(soc, **op_args), overrides)
    elif getattr(args, "step", None):
        tiling = args.step
    if getattr(args, "compare_inner_precise", False):
        return _compare_inner_precise(op, soc, tiling, op_args, args.l2_start)
    res = simulate(op, soc, tiling, l2_start=args.l2_start, **op_args)
    print(format_summary(res.summary()))
    check = getattr(mod, "cli_check", None) if args.functional else None
    if check is not None:
        print(check(res, op_args))
    if args.trace:
        print(f"trace: {res.write_trace(args.trace)}")
    if args.csv:
        print(f"csv:   {res.write_csv(args.csv)}")
    return 0


def _compare_inner_precise(op: str, soc, tiling, op_args: dict, l2_start: str) -> int:
    rows = {}
    outs = {}
    for ip in (0, 1):
        res = simulate(op, soc, tiling, l2_start=l2_start, **{**op_args, "inner_precise": ip})
        rows[ip] = res
        outs[ip] = res.outputs
    print(f"{'inner_precise':>14} {'kernel':>16} {'cycles':>10} {'us':>10}  HBM bound")
    for ip, res in rows.items():
        line = hbm_roofline(res.run)["hbm_roofline"]
        print(f"{ip:>14} {res.kernel_name:>16} {res.cycles:>10} {res.microseconds:>10.3f}  {line}")
    if outs[0] is not None and outs[1] is not None:
        a = np.asarray(outs[0], dtype=np.float64)
        b = np.asarray(outs[1], dtype=np.float64)
        diff = np.abs(a - b)
        print(json.dumps({"elements_differing": int((a != b).sum()),
                          "max_abs_diff": float(diff.max()),
                          "mean_abs_diff": float(diff.mean())}))
    return 0
