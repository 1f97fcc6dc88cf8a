"""``npusim run`` and ``npusim ops``: one operator as a tiled program.

A run prints one header line saying what ran (operator, tensors with shape / dtype / format,
quantisation mode, SoC, kernel, tiling origin, L2 start), the summary table, optional output check
and files, and ends with the verdict line (the HBM bound, which no launch can beat, vs the
simulated time, bottleneck pipe named). Each operator's :class:`~npusim.operator.CliSpec`
declares which operator flags it reads and their defaults; a flag the chosen operator does not
read is an error. Nothing here is specific to one operator.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import yaml

from npusim.cli import non_negative_int, positive_int
from npusim.operator import Operator
from npusim.operators import get_operator, operator_names
from npusim.report.summary import format_summary, hbm_roofline
from npusim.runner import resolve_soc, simulate

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import SimResult

#: the parser class of the subparsers (the CLI's NpusimParser)
_P = TypeVar("_P", bound=argparse.ArgumentParser)

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


def _cli_operators() -> dict[str, Operator]:
    return {name: get_operator(name) for name in operator_names()}


COMMON_HELP = ("common to every operator: --soc, --set, --patch, --tiling, --trace, --csv, "
               "--profile, --gantt, --functional, --seed, --l2-start")


def kernels_of(op: str) -> tuple[str, ...]:
    return get_operator(op).cli.kernel_names()


def flag_defaults(flag: str) -> str:
    """``read by matmul (default 1024), weight_quant_batchmatmul (default 16)`` for run --help."""
    parts = []
    for op, info in _cli_operators().items():
        text = info.cli.flags.get(flag)
        if text is None:
            continue
        hit = re.search(r"\(default:? ([^)]*)\)", text)
        parts.append(f"{op} ({'default ' + hit.group(1) if hit else text})")
    return "read by " + ", ".join(parts)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def tiling_fields(op: str, soc: SocDescriptor | None = None) -> list[tuple[str, Any]]:
    """(field, default value) of the operator's tiling object for its default CLI call."""
    soc = soc or resolve_soc(None)
    operator = get_operator(op)
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    args = operator.example_inputs(ns, False, np.random.default_rng(0))
    t = operator.default_tiling(soc, **args)
    if not dataclasses.is_dataclass(t):
        return []
    return [(f.name, getattr(t, f.name)) for f in dataclasses.fields(t)]


def operator_help(op: str) -> str:
    """The text of ``npusim run OP --help`` / ``npusim ops show OP``."""
    operator = get_operator(op)
    info = operator.cli
    lines = [f"npusim run {op}: {info.what}", "", "arguments:"]
    for flag, text in info.flags.items():
        lines.append(f"  {flag:<24} {text}")
    ks = kernels_of(op)
    lines += ["", "kernels: " + (", ".join(ks) if ks else "one kernel (no --kernel choice)")]
    # the operator's own tiling help lists field names (no values): the header says which it is
    values = operator.tiling_help is None
    lines.append("tiling fields (--tiling FIELD=VALUE" +
                 ("; default values for the default call):" if values else "):"))
    if info.tiling_note:
        lines.append(f"  {info.tiling_note}")
    if operator.tiling_help is not None:
        lines += [f"  {line}" for line in operator.tiling_help(resolve_soc(None))]
    else:
        try:
            fields = tiling_fields(op)
        except Exception as exc:  # an operator without a CLI tiling says why
            fields = []
            lines.append(f"  (none: {exc})")
        lines += [f"  {name} = {value}" for name, value in fields]
    lines += ["", COMMON_HELP + " (see npusim run --help)"]
    return "\n".join(lines)


class _OperatorHelp(argparse.Action):
    """``-h/--help`` of ``npusim run``: the operator's arguments when an operator was named."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        op = getattr(namespace, "op", None)
        if op in operator_names():
            print(operator_help(op))
        else:
            parser.print_help()
        parser.exit()


def run_epilog() -> str:
    lines = ["operators (npusim run OP --help lists each one's arguments, defaults, kernels and "
             "tiling fields; npusim ops lists them all):"]
    for op, info in _cli_operators().items():
        lines.append(f"  {op:<26} {', '.join(info.cli.flags) or '-'}")
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
    info = get_operator(op).cli
    given = [f for f in OP_FLAGS if getattr(args, _dest(f), None) not in (None, False)]
    bad = [f for f in given if f not in info.flags]
    if bad:
        raise SystemExit(f"npusim run {op}: {', '.join(bad)} does not apply to {op} (it reads "
                         f"{', '.join(info.flags)}; see npusim run {op} --help)")
    ks = kernels_of(op)
    if args.kernel is not None and args.kernel not in ks:
        raise SystemExit(f"npusim run {op}: --kernel {args.kernel!r} is not a kernel of {op}; "
                         f"kernels: {', '.join(ks)}")


def parse_tiling_overrides(items: list[str]) -> dict[str, Any]:
    """``["base_m=128", "double_buffer=false"]`` -> typed dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--tiling {item!r}: expected FIELD=VALUE")
        key, value = item.split("=", 1)
        if not value.strip():
            raise SystemExit(f"--tiling {item!r}: no value after '=' (expected FIELD=VALUE)")
        out[key.strip()] = yaml.safe_load(value)
    return out


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
        storage_shape: tuple[int, ...] = value.shape
        shape = tuple(getattr(value, "origin_shape", storage_shape))
        return f"{name} {shape} {value.dtype} {fmt}"
    return None


def header_line(op: str, soc: SocDescriptor, res: SimResult, op_args: dict[str, Any],
                args: argparse.Namespace,
                tiling_origin: str) -> str:
    """One line saying what ran."""
    tensors = [d for k, v in op_args.items() if (d := describe_tensor(k, v))]
    if not tensors:  # sized by scalars (n_elements, dtype): the kernel's GM inputs
        tensors = [f"{t.name} {t.shape} {t.dtype} ND" for t in res.run.kernel.gm.values()
                   if t.role == "input"]
    outs = [f"{t.name} {t.shape} {t.dtype}" for t in res.run.kernel.gm.values()
            if t.role == "output"]
    kernel = f"{res.kernel_name} ({'forced by --kernel' if args.kernel else 'selected'})"
    mode = "functional (seeded data)" if args.functional else "timing only"
    return (f"npusim run {op}: {', '.join(tensors)} -> {', '.join(outs) or '-'}; "
            f"{get_operator(op).quantisation(op_args)}; SoC {soc.name}; kernel {kernel}; "
            f"tiling {tiling_origin}; L2 start {args.l2_start}; {mode}")


# ---- the commands ---------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    op = args.op or DEFAULT_RUN
    if op not in operator_names():
        raise SystemExit(f"npusim run: unknown operator {op!r}; available: "
                         f"{', '.join(sorted(operator_names()))}")
    check_applicable(op, args)
    for flag in ("dtype", "out_dtype"):  # a name numpy knows ('bfloat16' needs ml_dtypes loaded)
        if getattr(args, flag, None):
            from npusim.numerics.dtypes import np_dtype

            try:
                np_dtype(getattr(args, flag))
            except ValueError as exc:
                raise SystemExit(f"npusim run {op}: --{flag.replace('_', '-')}: "
                                 f"{str(exc).removeprefix('name: ')}") from None
    for flag in ("trace", "csv", "gantt"):  # their folders, as --profile and sweep --out do,
        target = getattr(args, flag, None)  # before simulating (a run failed after it)
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    soc = resolve_soc(args.soc, args.overrides, args.patch)
    operator = get_operator(op)
    if args.functional:  # the size guard first: refuse before drawing data-sized inputs
        from npusim.size_guard import check_before_drawing

        specs = operator.example_inputs(args, False, np.random.default_rng(0))
        check_before_drawing(op, soc, specs, getattr(args, "max_instructions", None))
    rng = np.random.default_rng(args.seed)
    op_args = operator.example_inputs(args, args.functional, rng)
    tiling: object = None
    origin = "default"
    overrides = parse_tiling_overrides(args.tiling)
    if overrides:
        if not operator.cli.tiling_overrides:
            raise SystemExit(f"--tiling: {op}: {operator.cli.tiling_note}")
        from npusim.runner import tiling_from_fields

        try:  # the default tiling of this call with the fields replaced, as simulate() does
            tiling = tiling_from_fields(op, soc, overrides, op_args)
        except (ValueError, TypeError) as exc:
            raise SystemExit(f"--tiling: {exc}") from None
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
    check = operator.check_output if args.functional else None
    if check is not None:
        print(check(res, op_args))
    for flag, write in _output_writers(op, res, op_args, args):
        try:
            write()
        except OSError as exc:  # a full disk's message names no file: say which flag's it is
            raise SystemExit(f"npusim run {op}: --{flag} {getattr(args, flag)}: "
                             f"{exc.strerror or exc}") from None
    print(verdict)
    return 0


def _output_writers(op: str, res: SimResult, op_args: dict[str, Any], args: argparse.Namespace
                    ) -> list[tuple[str, Callable[[], None]]]:
    """(flag, write) for each file the run's flags ask for; write prints the path it wrote."""

    def trace() -> None:
        print(f"trace: {res.write_trace(args.trace)}")

    def csv() -> None:
        print(f"csv:   {res.write_csv(args.csv)}")

    def profile() -> None:
        from npusim.profile import write_profile

        written = write_profile(args.profile, op, res, op_args)
        print(f"profile: {written['opprof']} and {written['prof']} (msprof's folder layout)")

    def gantt() -> None:
        from npusim.report.plots import gantt_png

        print(f"gantt: {gantt_png(res.run, args.gantt, title=f'{op}: {res.kernel_name}')}")

    writers = {"trace": trace, "csv": csv, "profile": profile, "gantt": gantt}
    return [(flag, w) for flag, w in writers.items() if getattr(args, flag, None)]


def _compare_inner_precise(op: str, soc: SocDescriptor, tiling: object,
                           op_args: dict[str, Any], l2_start: str,
                           max_instructions: int | None = None) -> int:
    rows: dict[int, SimResult] = {}
    outs: dict[int, Any] = {}  # each run's outputs (None: timing only)
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
        print(f"outputs on the same seeded inputs: {int((a != b).sum())} of {a.size} elements "
              f"differ between the modes, max |diff| {float(diff.max()):.6g}, mean |diff| "
              f"{float(diff.mean()):.6g}")
    r0, r1 = rows[0], rows[1]
    print(f"inner_precise 1 takes {r1.microseconds:.2f} us vs {r0.microseconds:.2f} us for "
          f"inner_precise 0 ({r1.microseconds / max(r0.microseconds, 1e-12):.2f} x)")
    return 0


def add_ops_parser(sub: argparse._SubParsersAction[_P]) -> None:
    p = sub.add_parser("ops", help="list the operators, their arguments, kernels and tilings")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("name", nargs="?", default=None, help="operator (for show)")


def ops_command(args: argparse.Namespace) -> int:
    if args.action == "show":
        if args.name not in operator_names():
            raise SystemExit(f"npusim ops show: unknown operator {args.name!r}; operators: "
                             f"{', '.join(operator_names())}")
        print(operator_help(args.name))
        return 0
    operators = _cli_operators()
    width = max(len(op) for op in operators)
    for op, operator in operators.items():
        ks = kernels_of(op)
        print(f"{op:<{width}}  {operator.cli.what}")
        print(f"{'':<{width}}  arguments: {', '.join(operator.cli.flags)}; kernels: "
              f"{', '.join(ks) if ks else 'one'}")
    print(f"{len(operators)} operators; npusim ops show NAME for one operator's arguments, "
          "defaults, kernels and tiling fields")
    return 0
