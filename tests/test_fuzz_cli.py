"""Fuzz the command line: odd flag values for every operator, descriptor overrides and sweep
studies end in exit 0 with a result, or exit 2 with one ``npusim: error:`` line - never a
traceback, never another exit status, never a replaced value."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.cli import main
from npusim.operators import get_operator, operator_names

LIMIT = ["--max-instructions", "20000"]
ODD_NUMBERS = ["0", "-1", "1", "7", "2147483647", "1e3", "abc", "", "0x10", "16"]
ODD_WORDS = ["float16", "int2", "", "fp16", "float64", "int4", "int8", "bfloat16", "nonsense"]


def cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors exit 2 by themselves
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_clean(rc, err: str, argv) -> None:
    assert rc in (0, 2), (argv, rc, err)
    assert "Traceback" not in err, (argv, err)
    if rc == 2:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert lines, argv
        assert lines[-1].startswith("npusim: error: "), (argv, err)


def _flag_value(flag: str):
    if flag in ("--dtype", "--out-dtype", "--weight-dtype", "--kernel"):
        return st.sampled_from(ODD_WORDS)
    if flag in ("--step",):
        return st.sampled_from(["H1", "H7", "H9", "", "x"])
    return st.sampled_from(ODD_NUMBERS)


@st.composite
def run_argv(draw):
    op = draw(st.sampled_from(sorted(operator_names())))
    flags = [f for f in get_operator(op).cli.flags if f != "--compare-inner-precise"]
    argv = ["run", op, *LIMIT]
    chosen = draw(st.lists(st.sampled_from(flags), max_size=3, unique=True)) if flags else []
    for flag in chosen:
        argv += [flag, draw(_flag_value(flag))]
    if draw(st.booleans()):
        argv += ["--set", draw(st.sampled_from([
            "memory.hbm.bandwidth_gb_per_s=.inf", "memory.hbm.bandwidth_gb_per_s=0",
            "aicore_freq_mhz=-5", "no.such.field=1", "cores.aic.count=0", "=", "x",
            "memory.hbm.bandwidth_gb_per_s=!!python/object:os.system {}",
            "memory.hbm.bandwidth_gb_per_s=2000"]))]
    return argv


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(run_argv())
def test_run_with_odd_flags_is_clean(capsys, argv):
    """``npusim run OP`` with odd values for its own flags and a what-if override."""
    rc, _, err = cli(capsys, argv)
    assert_clean(rc, err, argv)


@pytest.mark.parametrize("argv", [
    ["run", "matmul", "--m", "16", "--k", "16", "--n", "16", "--set",
     "memory.hbm.bandwidth_gb_per_s=.nan"],
    ["run", "matmul", "--soc", "/dev/null"],
    ["run", "matmul", "--patch", "/dev/null"],
    ["run", "matmul", "--m", "16", "--tiling", "base_m"],
    ["run", "matmul", "--m", "16", "--tiling", "no_such_field=3"],
    ["run", "matmul", "--max-instructions", "0"],
    ["run", "matmul", "--max-instructions", "10"],
    ["run", "vector_add", "--step", "H9"],
    ["run", "tensor_copy", "--n-elements", "0"],
    ["run", "quant_matmul", "--n", "2147483647"],  # drew a 16 GiB scale array before the check
    ["run", "weight_quant_batchmatmul", "--kernel", "NoSuchKernel"],
    ["socs", "show", "NoSuchSoc"],
    ["report", "/no/such/results.csv"],
    ["sweep", "--op", "vector_add", "--m", "16"],
    ["sweep", "--what-if", "nope=1", "--m", "16", "--k", "256", "--n", "256"],
])
def test_hand_written_bad_commands_are_one_error_line(capsys, argv):
    """Bad files, fields, tilings, limits and study flags: exit 2, one error line, no
    traceback, and the message names something from the command."""
    rc, _, err = cli(capsys, argv)
    assert rc == 2, (argv, err)
    assert_clean(rc, err, argv)


STUDY_BODIES = st.sampled_from([
    "op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16], k: [256], n: [256]}\nmax_tilings: 4\n"
    "simulate_top: 1\n",
    "op: matmul\nsocs: [Ascend910B2]\ncases: {m: [-16], k: [256], n: [256]}\n",
    "op: matmul\nsocs: [NoSuchSoc]\ncases: {m: [16]}\n",
    "op: vector_add\nsocs: [Ascend910B2]\ncases: {m: [16]}\n",
    "op: matmul\nsocs: [Ascend910B2]\ncases: {m: [.nan]}\n",
    "op: matmul\nsocs: [Ascend910B2]\ncases: !!python/object:os.system {}\n",
    "op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16], k: [256], n: [256]}\n"
    "tilings: [{base_m: 7}]\n",
    "op: weight_quant_batchmatmul\nsocs: [Ascend910B2]\ncases: {m: [16], k: [512], n: [512],"
    " inner_precise: [0, 3]}\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
    "\xff\xfe",
    "",
    "[1, 2]\n",
])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(STUDY_BODIES)
def test_sweep_with_odd_studies_is_clean(tmp_path, capsys, body):
    """``npusim sweep STUDY``: good, failing, malformed, hostile and empty studies; a refused
    study writes no results file, a run one writes whole rows."""
    study = tmp_path / "study.yaml"
    study.write_bytes(body.encode("utf-8", "surrogateescape") if body != "\xff\xfe"
                      else b"\xff\xfe")
    out = tmp_path / "out.csv"
    out.unlink(missing_ok=True)
    rc, _, err = cli(capsys, ["sweep", str(study), "--out", str(out), "--workers", "1"])
    assert_clean(rc, err, body)
    if rc == 2 and "every point of the study failed" not in err:
        assert not out.exists(), (body, err)
    if out.exists():
        assert out.read_bytes().endswith(b"\n")


@pytest.mark.parametrize(("argv", "where"), [
    (["run", "matmul", "--m", "-5"], "run: argument --m: -5 must be >= 1"),
    (["run", "matmul", "--m", "0"], "run: argument --m: 0 must be >= 1"),
    (["run", "weight_quant_batchmatmul", "--weight-dtype", "int2"], "run: argument --weight"),
    (["run", "vector_add", "--n-elements", "-8"], "run: argument --n-elements: -8"),
    (["sweep", "--workers", "0", "--m", "16"], "sweep: argument --workers: 0 must be >= 1"),
    (["socs", "show"], "socs show: the following arguments are required: name"),
    (["model", "llama-2-7b", "--batch", "x"], "model: argument --batch"),
    (["no-such-command"], "argument command: invalid choice"),
])
def test_argparse_errors_have_the_one_error_form(capsys, argv, where):
    """Flag errors argparse finds (every command and subcommand) end in the same line as the
    CLI's own errors: ``npusim: error: <command>: <message>``, exit 2, no replaced value."""
    rc, _, err = cli(capsys, argv)
    assert rc == 2 and err.strip().splitlines()[-1].startswith(f"npusim: error: {where}"), err
