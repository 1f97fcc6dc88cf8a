"""``npusim run`` and ``npusim ops``: one operator as a tiled program.

A run prints one header line saying what ran (operator, tensors with shape / dtype / format,
quantisation mode, SoC, kernel, tiling origin, L2 start), the summary table, optional output check
and files, and ends with the verdict line (the HBM bound, which no launch can beat, vs the
simulated time, bottleneck pipe named). ``OPERATOR_CLI`` declares which operator flags each
operator reads and their defaults; a flag the chosen operator does not read is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from npusim.cli import non_negative_int, positive_int
from npusim.report.summary import format_summary, hbm_roofline
from npusim.runner import OPERATORS, operator_module, resolve_soc, simulate

# The main job `npusim run` runs with no arguments: the mission's central case, a W4A16 decode
# layer on an Atlas A2 part.
DEFAULT_RUN = "weight_quant_batchmatmul"

#: Operator flags: flag -> (argparse keywords, generic help). Defaults are per operator.
OP_FLAGS: dict[str, dict[str, Any]] = {
    "--m": {"type": positive_int, "metavar": "M", "help": "rows M (tokens / rows of x or a)"},
    "--k": {"type": positive_int, "metavar": "K", "help": "reduction size K (or the row length H)"},
    "--n": {"type": positive_int, "metavar": "N", "help": "columns N (output channels)"},
    "--n-elements": {"type": positive_int, "metavar": "COUNT", "help": "elements of a 1-D tensor"},
    "--dtype": {"metavar": "DTYPE", "help": "activation / input dtype"},
    "--out-dtype": {"metavar": "DTYPE", "help": "output dtype"},
    "--weight-dtype": {"choices": ("int8", "int4"), "help": "weight dtype: int8 or int4"},
    "--group-size": {"type": non_negative_int, "metavar": "G",
                     "help": "antiquant group size along K (0 = per-channel)"},
    "--inner-precise": {"type": int, "choices": (0, 1), "help": "inner_precise mode"},
    "--kernel": {"metavar": "NAME", "help": "force a kernel the operator has"},
    "--step": {"metavar": "H1..H7", "help": "vector_add: the tiling of calibration step H1..H7"},
    "--compare-inner-precise": {"action": "store_true",
                                "help": "weight_quant_batchmatmul: run inner_precise 0 and 1 and "
                                "report time and output difference"},
}


@dataclass(frozen=True)
class OperatorCli:
    """What ``npusim run OP`` reads: per flag its meaning and default for this operator."""

    what: str
    flags: dict[str, str]  # flag -> "meaning (default ...)"
    kernels: tuple[str, ...] = ()  # --kernel choices ("" = no choice: one kernel)
    kernel_note: str = ""
    tiling_note: str = ""


def _wqbmm_kernels() -> tuple[str, ...]:
    from npusim.ops.weight_quant_batchmatmul import KERNELS

    return tuple(KERNELS)


OPERATOR_CLI: dict[str, OperatorCli] = {
    "vector_add": OperatorCli(
        "z = x + y, elementwise (the H-series calibration kernel)",
        {"--n-elements": "elements of x, y and z (default 67108864 = 8192 x 8192)",
         "--dtype": "dtype of x, y, z (default float16)",
         "--step": "use the tiling of calibration step H1..H7 (default: the H7 tiling)"},
        tiling_note="--step H1..H7 or --tiling FIELD=VALUE"),
    "tensor_copy": OperatorCli(
        "GM-to-GM copy (calibration rows F1-F2c)",
        {"--n-elements": "elements copied (default 33554432, row F1)",
         "--dtype": "dtype (default float32)"}),
    "matmul": OperatorCli(
        "c = a @ b on the cube unit (fp16 / bf16)",
        {"--m": "rows of a (default 1024)", "--k": "columns of a = rows of b (default 1024)",
         "--n": "columns of b (default 1024)", "--dtype": "dtype of a and b (default float16)",
         "--out-dtype": "dtype of c (default: the input dtype)"}),
    "quant_matmul": OperatorCli(
        "W8A8 npu_quant_matmul: int8 x int8 with a per-channel scale",
        {"--m": "rows of x1 (default 1024)", "--k": "reduction size (default 1024)",
         "--n": "columns of x2 (default 1024)",
         "--out-dtype": "int8 | float16 | bfloat16 | int32 (default int8)"}),
    "group_quant": OperatorCli(
        "npu_group_quant: rows x H quantised to int8 with 8 equal row groups' scales",
        {"--m": "rows (default 4096)", "--k": "row length H (default 512)",
         "--dtype": "dtype of x (default float16)"}),
    "dynamic_quant": OperatorCli(
        "per-token dynamic quant to int4 (timing only; rows E1a-E1h)",
        {"--m": "tokens (default 4096)", "--k": "row length H (default 512)",
         "--dtype": "dtype of x (default float16)"}),
    "trans_quant_param": OperatorCli(
        "npu_trans_quant_param: fp32 scale + offset -> uint64 quant parameter",
        {"--n": "channels (default 4096)",
         "--kernel": "rne = round_mode 1 (default: round_mode 0)"},
        kernels=("rne",)),
    "format_cast": OperatorCli(
        "npu_format_cast ND <-> FRACTAL_NZ (TransData-like)",
        {"--m": "rows (default 4096)", "--k": "columns (default 4096)",
         "--dtype": "dtype (default float16)",
         "--kernel": "nd2nz (default) or nz2nd"},
        kernels=("nd2nz", "nz2nd")),
    "int4pack": OperatorCli(
        "npu_convert_weight_to_int4pack (host work: prints the host cost model, exits 1)",
        {"--k": "weight rows (default 4096)", "--n": "weight columns, a multiple of 8 "
         "(default 4096)"}),
    "weight_quant_batchmatmul": OperatorCli(
        "npu_weight_quant_batchmatmul: fp16 / bf16 x int8 / int4 weight with antiquant scale",
        {"--m": "rows of x (default 16)", "--k": "reduction size (default 4096)",
         "--n": "output channels (default 4096)",
         "--dtype": "dtype of x, scale and y: float16 | bfloat16 (default float16)",
         "--weight-dtype": "int4 | int8 (default int4)",
         "--group-size": "antiquant group size (default 128 for int4, 0 = per-channel for int8)",
         "--inner-precise": "0 | 1 (default 0)",
         "--kernel": "force one of the capable kernels (default: CANN's choice)",
         "--compare-inner-precise": "run inner_precise 0 and 1, compare time and outputs"},
        kernels=("<wqbmm>",),
        tiling_note="kernel tilings are set through the Python API "
                    "(npusim.ops.weight_quant_batchmatmul.tiling); --tiling is not accepted"),
}

COMMON_HELP = ("common to every operator: --soc, --set, --patch, --tiling, --trace, --csv, "
               "--profile, --gantt, --functional, --seed, --l2-start")


def kernels_of(op: str) -> tuple[str, ...]:
    ks = OPERATOR_CLI[op].kernels
    return _wqbmm_kernels() if ks == ("<wqbmm>",) else ks


def flag_defaults(flag: str) -> str:
    """``read by matmul (default 1024), weight_quant_batchmatmul (default 16)`` for run --help."""
    parts = []
    for op, info in OPERATOR_CLI.items():
        text = info.flags.get(flag)
        if text is None:
            continue
        hit = re.search(r"\(default:? ([^)]*)\)", text)
        parts.append(f"{op} ({'default ' + hit.group(1) if hit else text})")
    return "read by " + ", ".join(parts)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def tiling_fields(op: str, soc: Any = None) -> list[tuple[str, Any]]:
    """(field, default value) of the operator's tiling object for its default call."""
    if op == "weight_quant_batchmatmul":
        from npusim.ops.weight_quant_batchmatmul import TILING_TYPES

        out = []
        for kern, cls in sorted(TILING_TYPES.items()):
            names = [f.name for f in dataclasses.fields(cls)]
            out.append((kern, ", ".join(names)))
        return out
    if op == "int4pack":
        return []
    soc = soc or resolve_soc(None)
    mod = operator_module(op)
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    args = mod.cli_op_args(ns, functional=False, rng=np.random.default_rng(0))
    t = mod.default_tiling_for(soc, **args)
    if not dataclasses.is_dataclass(t):
        return []
    return [(f.name, getattr(t, f.name)) for f in dataclasses.fields(t)]


def operator_help(op: str) -> str:
    """The text of ``npusim run OP --help`` / ``npusim ops show OP``."""
    info = OPERATOR_CLI[op]
    lines = [f"npusim run {op}: {info.what}", "", "arguments:"]
    for flag, text in info.flags.items():
        lines.append(f"  {flag:<24} {text}")
    ks = kernels_of(op)
    lines += ["", "kernels: " + (", ".join(ks) if ks else "one kernel (no --kernel choice)")]
    lines.append("tiling fields (--tiling FIELD=VALUE; default values for the default call):")
    if info.tiling_note:
        lines.append(f"  {info.tiling_note}")
    try:
        fields = tiling_fields(op)
    except (SystemExit, Exception) as exc:  # an operator without a CLI tiling says why
        fields = []
        lines.append(f"  (none: {exc})")
    for name, value in fields:
        lines.append(f"  {name} = {value}" if op != "weight_quant_batchmatmul"
                     else f"  {name}: {value}")
    if not fields and op == "int4pack":
        lines.append("  (none: host work)")
    lines += ["", COMMON_HELP + " (see npusim run --help)"]
    return "\n".join(lines)


class _OperatorHelp(argparse.Action):
    """``-h/--help`` of ``npusim run``: the operator's arguments when an operator was named."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        op = getattr(namespace, "op", None)
        if op in OPERATOR_CLI:
            print(operator_help(op))
        else:
            parser.print_help()
        parser.exit()


def run_epilog() -> str:
    lines = ["operators (npusim run OP --help lists each one's arguments, defaults, kernels and "
             "tiling fields; npusim ops lists them all):"]
    for op, info in OPERATOR_CLI.items():
        lines.append(f"  {op:<26} {', '.join(info.flags) or '-'}")
    return "\n".join(lines)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Every ``npusim run`` argument (the parser is made with ``add_help=False``)."""
    p.add_argument("-h", "--help", action=_OperatorHelp,
                   help="show this help; after an operator, that operator's arguments")
    p.add_argument("op", nargs="?", default=None,
                   help=f"operator (default: {DEFAULT_RUN}, a W4A16 decode layer)")
    p.add_argument("--soc", default=None, help="SoC name or descriptor file (default Ascend910B2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a descriptor field, e.g. memory.hbm.bandwidth_gb_per_s=3200")
    p.add_argument("--patch", default=None, help="YAML patch deep-merged into the descriptor")
    p.add_argument("--tiling", dest="tiling", action="append", default=[], metavar="FIELD=VALUE",
                   help="tiling field override (repeatable); unspecified fields keep the default")
    p.add_argument("--trace", default=None, help="write a Chrome trace JSON here")
    p.add_argument("--csv", default=None,
                   help="write msprof op's PipeUtilization.csv (one row per sub-block) here")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="write msprof-shaped output under DIR: OPPROF_*/PipeUtilization.csv, "
                   "OpBasicInfo.csv; PROF_*/mindstudio_profiler_output/op_summary_*.csv, "
                   "msprof_*.json timeline, gantt_*.png")
    p.add_argument("--gantt", default=None, metavar="FILE.png",
                   help="write a PNG timeline of the pipes per core (needs matplotlib)")
    p.add_argument("--functional", action="store_true",
                   help="run on random data (seeded) and report output checks, not only timing")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of --functional data (default 0)")
    p.add_argument("--l2-start", default="cold", choices=("cold", "repeat"),
                   help="L2 at kernel start: cold (a layer in a model; default) or repeat (the "
                   "steady state of a benchmark loop of this kernel)")
    p.add_argument("--max-instructions", type=positive_int, default=None, metavar="N",
                   help="refuse a run needing more instructions, with its estimate (default "
                   "$NPUSIM_MAX_INSTRUCTIONS, else 2000000)")
    for flag, kw in OP_FLAGS.items():
        kw = dict(kw)
        kw["help"] = f"{kw['help']}; {flag_defaults(flag)}"
        kw.setdefault("default", None)
        p.add_argument(flag, **kw)
    p.epilog = run_epilog()
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def check_applicable(op: str, args: argparse.Namespace) -> None:
    """A flag the operator does not read, or an unknown --kernel name, is an error."""
    info = OPERATOR_CLI[op]
    given = [f for f in OP_FLAGS if getattr(args, _dest(f), None) not in (None, False)]
    bad = [f for f in given if f not in info.flags]
    if bad:
        raise SystemExit(f"npusim run {op}: {', '.join(bad)} does not apply to {op} (it reads "
                         f"{', '.join(info.flags)}; see npusim run {op} --help)")
    ks = kernels_of(op)
    if args.kernel is not None and args.kernel not in ks:
        raise SystemExit(f"npusim run {op}: --kernel {args.kernel!r} is not a kernel of {op}; "
                         f"kernels: {', '.join(ks)}")


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


# ---- the header line ------------------------------------------------------------------------

_FORMATS = {2: "ND", 29: "FRACTAL_NZ"}


def describe_tensor(name: str, value: Any) -> str | None:
    """``x (16, 4096) float16 ND`` for an array or spec; None for a non-tensor argument."""
    from npusim.spec import TensorSpec

    if isinstance(value, TensorSpec):
        fmt = _FORMATS.get(value.npu_format, value.npu_format)
        return f"{name} {value.shape} {value.dtype} {fmt}"
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.size > 1:
        fmt = _FORMATS.get(getattr(value, "npu_format", 2), "?")
        shape = tuple(getattr(value, "origin_shape", value.shape))
        return f"{name} {shape} {value.dtype} {fmt}"
    return None


def quantisation_mode(op: str, op_args: dict) -> str:
    """The quantisation the call performs, in words."""
    if op == "weight_quant_batchmatmul":
        w = op_args["weight"]
        wdt = "int4" if str(getattr(w, "dtype", "")) == "int32" else "int8"
        g = op_args.get("antiquant_group_size", 0)
        mode = f"per-group {g}" if g else "per-channel"
        return (f"W{wdt[3:]}A16 antiquant {mode}, inner_precise "
                f"{op_args.get('inner_precise', 0)}")
    if op == "quant_matmul":
        return f"W8A8 per-channel scale, {op_args.get('output_dtype')} out"
    if op == "group_quant":
        return f"int8 per row group ({len(op_args['group_index'])} groups)"
    if op == "dynamic_quant":
        return "per-token int4 out"
    if op == "trans_quant_param":
        return f"quant parameter, round_mode {op_args.get('round_mode', 0)}"
    if op == "format_cast":
        return f"no quantisation (cast to {_FORMATS.get(op_args['acl_format'])})"
    return "no quantisation"


def header_line(op: str, soc: Any, res: Any, op_args: dict, args: argparse.Namespace,
                tiling_origin: str) -> str:
    """One line saying what ran."""
    tensors = [d for k, v in op_args.items() if (d := describe_tensor(k, v))]
    if op in ("vector_add", "tensor_copy") and not tensors:
        tensors = [f"{op_args.get('n_elements')} x {op_args.get('dtype')}"]
    outs = [f"{t.name} {t.shape} {t.dtype}" for t in res.run.kernel.gm.values()
            if t.role == "output"]
    kernel = f"{res.kernel_name} ({'forced by --kernel' if args.kernel else 'selected'})"
    mode = "functional (seeded data)" if args.functional else "timing only"
    return (f"npusim run {op}: {', '.join(tensors)} -> {', '.join(outs) or '-'}; "
            f"{quantisation_mode(op, op_args)}; SoC {soc.name}; kernel {kernel}; "
            f"tiling {tiling_origin}; L2 start {args.l2_start}; {mode}")


# ---- the functional check of weight_quant_batchmatmul ----------------------------------------


def check_weight_quant_batchmatmul(res: Any, op_args: dict) -> str:
    """Compare the output with an independent float64 dequantise-then-matmul reference (the
    kernels' roundings differ from it, so the figure is an error size, not an equality)."""
    from npusim.ops.weight_quant_batchmatmul.args import normalize_args
    from npusim.ops.weight_quant_batchmatmul.numerics_common import expand_rows

    call = {k: v for k, v in op_args.items() if k not in ("kernel",)}
    a = normalize_args(**call, soc=res.soc)
    w = a.weight.astype(np.float64)
    scale = expand_rows(a.antiquant_scale.astype(np.float64), a.k, a.group_size)
    if a.antiquant_offset is not None:
        w = w + expand_rows(a.antiquant_offset.astype(np.float64), a.k, a.group_size)
    ref = a.x.astype(np.float64) @ (w * scale)
    got = np.asarray(res.outputs, dtype=np.float64).reshape(ref.shape)
    err = np.abs(got - ref)
    rel = float(err.max() / max(np.abs(ref).max(), 1e-30))
    return (f"output vs float64 dequantise-then-matmul reference ({res.kernel_name}): max abs "
            f"error {float(err.max()):.3g}, {rel:.2e} of max |reference|; finite: "
            f"{bool(np.isfinite(got).all())}")


# ---- the commands ---------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    op = args.op or DEFAULT_RUN
    if op not in OPERATORS:
        raise SystemExit(f"npusim run: unknown operator {op!r}; available: "
                         f"{', '.join(sorted(OPERATORS))}")
    check_applicable(op, args)
    soc = resolve_soc(args.soc, args.overrides, args.patch)
    mod = operator_module(op)
    if args.functional:  # the size guard first: refuse before drawing data-sized inputs
        from npusim.size_guard import check_before_drawing

        specs = mod.cli_op_args(args, functional=False, rng=np.random.default_rng(0))
        check_before_drawing(op, soc, specs, getattr(args, "max_instructions", None))
    rng = np.random.default_rng(args.seed)
    op_args = mod.cli_op_args(args, functional=args.functional, rng=rng)
    tiling = None
    origin = "default"
    overrides = parse_tiling_overrides(args.tiling)
    if overrides:
        tiling = apply_tiling_overrides(mod.default_tiling_for(soc, **op_args), overrides)
        origin = "user (" + ", ".join(args.tiling) + ")"
    elif getattr(args, "step", None):
        tiling = args.step
        origin = f"of calibration step {args.step}"
    if getattr(args, "compare_inner_precise", False):
        files = [f for f in ("trace", "csv", "profile", "gantt") if getattr(args, f, None)]
        if files:
            raise SystemExit(f"npusim run {op}: --compare-inner-precise runs two launches and "
                             f"writes no files; drop --{', --'.join(files)} (or run each "
                             "inner_precise separately)")
        return _compare_inner_precise(op, soc, tiling, op_args, args.l2_start,
                                      getattr(args, "max_instructions", None))
    res = simulate(op, soc, tiling, l2_start=args.l2_start,
                   max_instructions=getattr(args, "max_instructions", None), **op_args)
    print(header_line(op, soc, res, op_args, args, origin))
    summary = res.summary()
    verdict = summary.pop("hbm_roofline")
    print(format_summary(summary))
    check = _output_check(op, mod) if args.functional else None
    if check is not None:
        print(check(res, op_args))
    if args.trace:
        print(f"trace: {res.write_trace(args.trace)}")
    if args.csv:
        print(f"csv:   {res.write_csv(args.csv)}")
    if args.profile:
        from npusim.profile import write_profile

        files = write_profile(args.profile, op, res, op_args)
        print(f"profile: {files['opprof']} and {files['prof']} (msprof's folder layout)")
    if args.gantt:
        from npusim.report.plots import gantt_png

        print(f"gantt: {gantt_png(res.run, args.gantt, title=f'{op}: {res.kernel_name}')}")
    print(verdict)
    return 0


def _output_check(op: str, mod: Any):
    if op == "weight_quant_batchmatmul":
        return check_weight_quant_batchmatmul
    return getattr(mod, "cli_check", None)


def _compare_inner_precise(op: str, soc, tiling, op_args: dict, l2_start: str,
                           max_instructions: int | None = None) -> int:
    rows = {}
    outs = {}
    for ip in (0, 1):
        res = simulate(op, soc, tiling, l2_start=l2_start, max_instructions=max_instructions,
                       **{**op_args, "inner_precise": ip})
        rows[ip] = res
        outs[ip] = res.outputs
    print(f"npusim run {op} --compare-inner-precise: "
          f"{', '.join(d for k, v in op_args.items() if (d := describe_tensor(k, v)))}; "
          f"SoC {soc.name}; L2 start {l2_start}")
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
    r0, r1 = rows[0], rows[1]
    print(f"inner_precise 1 takes {r1.microseconds:.2f} us vs {r0.microseconds:.2f} us for "
          f"inner_precise 0 ({r1.microseconds / max(r0.microseconds, 1e-12):.2f} x)")
    return 0


def add_ops_parser(sub) -> None:
    p = sub.add_parser("ops", help="list the operators, their arguments, kernels and tilings")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("name", nargs="?", default=None, help="operator (for show)")


def ops_command(args: argparse.Namespace) -> int:
    if args.action == "show":
        if args.name not in OPERATOR_CLI:
            raise SystemExit(f"npusim ops show: unknown operator {args.name!r}; operators: "
                             f"{', '.join(OPERATOR_CLI)}")
        print(operator_help(args.name))
        return 0
    width = max(len(op) for op in OPERATOR_CLI)
    for op, info in OPERATOR_CLI.items():
        ks = kernels_of(op)
        print(f"{op:<{width}}  {info.what}")
        print(f"{'':<{width}}  arguments: {', '.join(info.flags)}; kernels: "
              f"{', '.join(ks) if ks else 'one'}")
    print(f"{len(OPERATOR_CLI)} operators; npusim ops show NAME for one operator's arguments, "
          "defaults, kernels and tiling fields")
    return 0
