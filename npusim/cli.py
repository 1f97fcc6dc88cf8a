"""The ``npusim`` command line: SoCs, single operator runs, H-series / calibration validation,
sweeps and their comparison reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn, TypeVar

#: the parser class of the subparsers (NpusimParser for the CLI's own)
_P = TypeVar("_P", bound=argparse.ArgumentParser)


class NpusimParser(argparse.ArgumentParser):
    """argparse with the CLI's one error form for every command and subcommand (subparsers
    inherit the class): the usage line, then ``npusim: error: <command>: <message>``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        where = self.prog.removeprefix("npusim").strip()
        self.exit(2, f"npusim: error: {where + ': ' if where else ''}{message}\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a size or count; 0 and negatives are refused, never
    replaced by a default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def _add_run_parser(sub: argparse._SubParsersAction[_P]) -> None:
    from npusim.cli_run import add_run_arguments

    p = sub.add_parser("run", add_help=False,
                       help="run one operator as a tiled program and print its summary")
    add_run_arguments(p)


def _cmd_run(args: argparse.Namespace) -> int:
    from npusim.cli_run import run_command

    return run_command(args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from npusim.validate import validate_command

    return validate_command(args)


#: the options of a study from flags (``npusim sweep --op ...``) and their defaults; each is
#: refused beside a study file, which holds all of them itself (here, not in npusim.sweep:
#: the sweep driver names no operator)
SWEEP_FLAGS_DEFAULTS: dict[str, Any] = {
    "--op": "matmul", "--soc": ["Ascend910B2"], "--m": [16], "--k": [4096], "--n": [4096],
    "--dtype": "float16", "--simulate-top": 8, "--max-tilings": None, "--what-if": None}


def main(argv: list[str] | None = None) -> int:
    parser = NpusimParser(
        prog="npusim", description="Cycle-approximate, bit-exact Ascend NPU simulator"
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of a user error (default: one line)")
    parser.add_argument("--engine", choices=("fast", "reference", "jit"),
                        default=None,
                        help="engine of every run (timing-only, functional, race-checked): fast "
                             "(default), the simpy reference or jit (fast with a numba-compiled "
                             "loop where it applies, extra 'jit'; same results; $NPUSIM_ENGINE)")
    sub = parser.add_subparsers(dest="command")
    try:
        from npusim.hw.cli_socs import add_socs_parser
    except ImportError:  # pragma: no cover - only while the descriptor package is incomplete
        pass
    else:
        add_socs_parser(sub)
    _add_run_parser(sub)
    from npusim.cli_run import add_ops_parser

    add_ops_parser(sub)
    v = sub.add_parser("validate", help="compare predictions with the calibration measurements")
    v.add_argument("--rows", default=None,
                   help="row id prefix filter, e.g. H (H-series) or A,B (comma separated)")
    v.add_argument("--measurements", default=None, type=Path,
                   help="measurements CSV (default: the calibration rows shipped with npusim)")
    v.add_argument("--workers", type=positive_int, default=None,
                   help="rows predicted in parallel processes (default: the CPUs available)")
    v.add_argument("--out", default=None, type=Path,
                   help="directory for the report (markdown and CSV)")
    v.add_argument("--l2-start", default="repeat", choices=("cold", "repeat"),
                   help="L2 at kernel start (default repeat: the rows were measured in loops)")
    v.add_argument("--lofo", action="store_true",
                   help="also print the fitted numbers, their sensitivity and the "
                   "leave-one-family-out error (npusim.calibration_fit)")
    sw = sub.add_parser("sweep", help="sweep tilings x shapes x SoCs (study YAML or flags)")
    sw.add_argument("study", nargs="?", default=None, help="study YAML (op, socs, cases, ...)")
    # the flags study's options default to None: with a study file each one is an error
    # (SWEEP_FLAGS_DEFAULTS holds their defaults), never silently unread
    sw.add_argument("--op", default=None, help="flags study: the operator (default matmul)")
    sw.add_argument("--soc", action="append", default=None,
                    help="flags study: SoC (repeatable; default Ascend910B2)")
    sw.add_argument("--m", type=positive_int, action="append", default=None,
                    help="flags study: M (repeatable; default 16)")
    sw.add_argument("--k", type=positive_int, action="append", default=None,
                    help="flags study: K (repeatable; default 4096)")
    sw.add_argument("--n", type=positive_int, action="append", default=None,
                    help="flags study: N (repeatable; default 4096)")
    sw.add_argument("--dtype", default=None, help="flags study: dtype (default float16)")
    sw.add_argument("--simulate-top", type=positive_int, default=None,
                    help="flags study: simulate this many best-bound tilings per case "
                         "(default 8)")
    sw.add_argument("--max-tilings", type=positive_int, default=None,
                    help="flags study: rank at most this many legal tilings by the bound "
                         "(default all)")
    sw.add_argument("--out", type=Path, default=Path("sweep.csv"),
                    help="results CSV (appended; an interrupted sweep resumes)")
    sw.add_argument("--workers", type=positive_int, default=None,
                    help="local processes (default: cores)")
    sw.add_argument("--ray", action="store_true", help="run the points on Ray (RAY_ADDRESS)")
    sw.add_argument("--ray-address", default=None,
                    help="Ray cluster address, e.g. ray://head:10001 (default: $RAY_ADDRESS, "
                         "else a local Ray with --workers CPUs)")
    sw.add_argument("--what-if", action="append", default=None, metavar="PATH=VALUE",
                    help="flags study: a what-if variant compared with the baseline "
                         "(repeatable, one variant; PATH*=F scales the SoC's value)")
    sw.add_argument("--report", type=Path, default=None,
                    help="also write the comparison report (markdown + PNG) to this directory")
    rp = sub.add_parser("report", help="comparison report of a sweep CSV: tables and plots")
    rp.add_argument("results", type=Path, help="results CSV written by npusim sweep")
    rp.add_argument("--out", type=Path, default=Path("report"), help="output directory")
    rp.add_argument("--heatmap", default=None, metavar="X,Y",
                    help="the two tiling fields of the heatmap (default: the two that vary most)")
    from npusim.model import add_model_parser

    add_model_parser(sub)
    args = parser.parse_args(argv)
    from npusim.engine.fast import engine_environment

    try:
        with engine_environment(args.engine):
            return _dispatch(parser, args)
    except SystemExit as exc:
        if isinstance(exc.code, str) and not args.debug:
            return _user_error(exc.code)
        raise
    except BrokenPipeError:  # `npusim run ... | head`: the reader left; stop quietly
        return _reader_left()
    except USER_ERRORS as exc:
        if args.debug:
            raise
        return _user_error(_error_text(exc))


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (or an unmodelled request), not a simulator bug."""
    import yaml

    return (ValueError, TypeError, KeyError, OSError, NotImplementedError, yaml.YAMLError,
            RecursionError)


USER_ERRORS = _user_errors()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, ValueError | TypeError) else f"{type(exc).__name__}: {text}"


def _reader_left() -> int:
    """The reader of stdout closed the pipe: no error line (the output was not wanted), stdout
    pointed at /dev/null so the interpreter's final flush cannot fail again, exit status 1."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError, AttributeError):  # a stdout without an fd
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


def _user_error(message: str) -> int:
    """argparse's convention: ``npusim: error: <message>`` on stderr, exit status 2."""
    message = message.removeprefix("npusim: error: ").removeprefix("npusim run: ")
    print(f"npusim: error: {message}", file=sys.stderr)
    return 2


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.version:
        from npusim import __version__

        print(__version__)
        return 0
    if args.command == "socs":
        from npusim.hw.cli_socs import run_socs

        return run_socs(args)
    if args.command == "run":
        return _cmd_run(args)
    if args.command == "ops":
        from npusim.cli_run import ops_command

        return ops_command(args)
    if args.command == "validate":
        return _cmd_validate(args)
    if args.command == "sweep":
        from npusim.sweep import sweep_command

        return sweep_command(args)
    if args.command == "model":
        from npusim.model import model_command

        return model_command(args)
    if args.command == "report":
        from npusim.report.compare import report_command

        return report_command(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
