"""`npusim run` says what ran and ends with its verdict; `npusim ops` / `run OP --help` list each
operator's arguments, defaults, kernels and tiling fields; flags an operator does not read are
errors."""

import argparse
import re

import numpy as np
import pytest

from npusim.cli import main
from npusim.cli_run import OP_FLAGS, _dest
from npusim.operators import get_operator, operator_names

VERDICT = re.compile(r"^HBM bound [0-9.]+ us \(no launch is faster: .*\); simulated [0-9.]+ us "
                     r"(= [0-9.]+ x bound|\(no HBM traffic is unavoidable: the inputs and the "
                     r"outputs each fit in the L2\)); bottleneck pipe \S+ \(busy [0-9.]+%\)$")


def _out(capsys, argv):
    rc = main(argv)
    return rc, capsys.readouterr().out.strip().splitlines()


def test_run_starts_with_what_ran_and_ends_with_the_verdict(capsys):
    """Rule: line 1 names op, tensors (shape dtype format), quantisation, SoC, kernel, tiling
    origin and L2 start; the last line is the HBM-bound verdict."""
    rc, out = _out(capsys, ["run", "vector_add", "--n-elements", "65536", "--step", "H6",
                            "--l2-start", "repeat"])
    assert rc == 0
    assert out[0].startswith("npusim run vector_add: x (65536,) float16 ND, y (65536,) float16 "
                             "ND -> z (65536,) float16; no quantisation; SoC Ascend910B2; kernel ")
    assert "tiling of calibration step H6; L2 start repeat; timing only" in out[0]
    assert VERDICT.match(out[-1]), out[-1]
    rc, out = _out(capsys, ["run", "weight_quant_batchmatmul", "--m", "1", "--k", "256", "--n",
                            "256", "--weight-dtype", "int8"])
    assert "W8A16 antiquant per-channel, inner_precise 0; SoC Ascend910B2" in out[0]
    assert VERDICT.match(out[-1])


def test_user_tiling_origin_is_named(capsys):
    """Rule: --tiling makes the header say the tiling is the user's, with the fields given."""
    rc, out = _out(capsys, ["run", "tensor_copy", "--n-elements", "65536", "--tiling", "cores=4"])
    assert rc == 0 and "tiling user (cores=4)" in out[0]


def test_wqbmm_kernel_tiling_fields_from_the_cli(capsys):
    """Rule: --tiling FIELD=VALUE (and cube.FIELD=VALUE for the nested cube block) overrides the
    selected kernel's default tiling; the run uses it (fewer AICs here), an illegal value is an
    error naming the field, an unknown nested field lists the fields."""
    base = ["run", "weight_quant_batchmatmul", "--m", "12", "--k", "1024", "--n", "1024",
            "--weight-dtype", "int8"]
    rc, out = _out(capsys, base)
    cores = next(x for x in out if x.startswith("cores"))
    rc, out = _out(capsys, [*base, "--tiling", "cube_block_dim_n=8", "--tiling",
                            "single_core_n=128", "--tiling", "cube.base_k=64"])
    assert rc == 0
    assert "tiling user (cube_block_dim_n=8, single_core_n=128, cube.base_k=64)" in out[0]
    mine = next(x for x in out if x.startswith("cores"))
    assert "'aic': 8" in mine and mine != cores
    assert main([*base, "--tiling", "cube_block_dim_n=0"]) == 2
    assert "cube_block_dim_n=0: must be a positive int" in capsys.readouterr().err
    assert main([*base, "--tiling", "cube.nope=3"]) == 2
    assert "unknown field(s) cube.nope; fields are cube, cube.base_k" in capsys.readouterr().err


def test_functional_wqbmm_prints_an_output_check(capsys):
    """Rule: --functional on weight_quant_batchmatmul prints an output check (against an
    independent float64 reference) like the other operators, before the verdict."""
    rc, out = _out(capsys, ["run", "weight_quant_batchmatmul", "--m", "2", "--k", "256", "--n",
                            "128", "--functional"])
    assert rc == 0
    check = [x for x in out if x.startswith("output vs float64 dequantise-then-matmul")]
    assert len(check) == 1 and "finite: True" in check[0]
    err = float(re.search(r"max abs error ([0-9.e+-]+)", check[0]).group(1))
    assert 0 <= err < 0.05
    assert VERDICT.match(out[-1])


@pytest.mark.parametrize("argv, flag", [
    (["run", "matmul", "--weight-dtype", "int4"], "--weight-dtype"),
    (["run", "vector_add", "--m", "16"], "--m"),
    (["run", "tensor_copy", "--step", "H6"], "--step"),
    (["run", "matmul", "--compare-inner-precise"], "--compare-inner-precise"),
])
def test_flags_that_do_not_apply_are_errors(argv, flag, capsys):
    """Rule: a flag the chosen operator does not read stops the run naming the flag
    (``npusim: error:`` line, exit 2)."""
    assert main(argv) == 2
    assert f"{flag} does not apply to {argv[1]}" in capsys.readouterr().err


def test_unknown_kernel_is_an_error(capsys):
    """Rule: --kernel must name one of the operator's kernels (exit 2)."""
    assert main(["run", "format_cast", "--kernel", "nz2xx"]) == 2
    err = capsys.readouterr().err
    assert "not a kernel of format_cast; kernels: nd2nz, nz2nd" in err


def test_every_registered_operator_is_described():
    """Rule: every registered operator declares only flags `npusim run` has."""
    for op in operator_names():
        assert set(get_operator(op).cli.flags) <= set(OP_FLAGS), op


def _ns(**given):
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    for k, v in given.items():
        setattr(ns, k, v)
    return ns


def _describe(args):
    return {k: (tuple(getattr(v, "shape", ())), str(getattr(v, "dtype", v))) for k, v in
            args.items()}


@pytest.mark.parametrize("op", [o for o in operator_names() if o != "int4pack"])
def test_documented_defaults_are_the_defaults(op):
    """Rule: each '(default V)' in an operator's flag help is what the operator uses when the
    flag is absent (the call with the flag set to V equals the call without it)."""
    mod = get_operator(op)
    base = _describe(mod.example_inputs(_ns(), functional=False, rng=np.random.default_rng(0)))
    checked = 0
    for flag, text in get_operator(op).cli.flags.items():
        hit = re.search(r"\(default ([0-9a-z]+)\b", text)
        if not hit or flag in ("--kernel", "--step"):
            continue
        kw = OP_FLAGS[flag]
        value = kw.get("type", str)(hit.group(1))
        got = mod.example_inputs(_ns(**{_dest(flag): value}), functional=False,
                                 rng=np.random.default_rng(0))
        assert _describe(got) == base, (flag, value)
        checked += 1
    assert checked >= 1


def test_ops_list_and_show(capsys):
    """Rule: `npusim ops` lists every operator with its arguments and kernels; `ops show NAME`
    and `run NAME --help` give its arguments with defaults, kernels and tiling fields."""
    rc, out = _out(capsys, ["ops"])
    assert rc == 0 and out[-1].startswith(f"{len(operator_names())} operators;")
    text = "\n".join(out)
    assert "weight_quant_batchmatmul" in text and "MsdGroup" in text
    rc, out = _out(capsys, ["ops", "show", "matmul"])
    text = "\n".join(out)
    assert "--m" in text and "(default 1024)" in text and "base_m = " in text
    with pytest.raises(SystemExit) as e:
        main(["run", "vector_add", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--step" in text and "cores = " in text and "(default float16)" in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    assert "read by matmul (default 1024)" in flat
    assert "weight_quant_batchmatmul (default 16)" in flat


def test_ops_show_claims_default_values_only_where_it_lists_them(capsys):
    """Rule: an operator's tiling-fields header says "default values" only when values follow
    (``FIELD = VALUE`` lines); weight_quant_batchmatmul lists each kernel's field names, and its
    header claimed values it did not print."""
    for op in operator_names():
        rc, out = _out(capsys, ["ops", "show", op])
        assert rc == 0
        (i,) = [j for j, line in enumerate(out) if line.startswith("tiling fields")]
        body = out[i + 1:out.index("", i) if "" in out[i:] else len(out)]
        if "default values" in out[i]:
            assert any(re.match(r"  \w+ = ", line) for line in body), (op, out[i], body)
    rc, out = _out(capsys, ["ops", "show", "weight_quant_batchmatmul"])
    header = next(line for line in out if line.startswith("tiling fields"))
    assert "default values" not in header and any("MsdGroup: " in line for line in out)


def test_a_reader_that_leaves_early_gets_no_error_line(tmp_path):
    """Rule: ``npusim ... | head`` - stdout's reader closes the pipe before the output is written
    - ends without a traceback or ``npusim: error`` line (it printed BrokenPipeError before)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "npusim.cli", "socs"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the interpreter has imported npusim: every write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert err == "", err


def test_tensor_copy_header_names_its_tensor_and_functional_checks_the_copy(capsys):
    """Rule: a run sized by --n-elements names its input like every other tensor
    (``x (N,) dtype ND``, was ``N x dtype``), and --functional prints the copy's check."""
    rc, out = _out(capsys, ["run", "tensor_copy", "--n-elements", "4096", "--functional"])
    assert rc == 0
    assert out[0].startswith("npusim run tensor_copy: x (4096,) float32 ND -> y (4096,) "
                             "float32; no quantisation;"), out[0]
    assert "output equals x byte for byte: True" in out


@pytest.mark.parametrize("argv", [["quantize", "--m", "33", "--k", "1000"],
                                  ["group_quant", "--m", "32", "--k", "256"],
                                  ["vector_add", "--n-elements", "4096"],
                                  ["tensor_copy", "--n-elements", "4096"]])
def test_bfloat16_runs_and_functional_runs_print_their_check(capsys, argv):
    """Rule: --dtype bfloat16 works for every operator that takes it (these four failed with
    "data type 'bfloat16' not understood": numpy knows the name only once ml_dtypes is loaded),
    and each functional run prints its bit-exact check, quantize's included (it printed none)."""
    rc, out = _out(capsys, ["run", *argv, "--dtype", "bfloat16", "--functional"])
    assert rc == 0 and " bfloat16 ND" in out[0]
    checks = [x for x in out if x.endswith(": True")]
    assert len(checks) == 1, out
    if argv[0] == "quantize":
        assert checks[0].startswith("output equals numpy's fp32 rint(x / scale)")
    if argv[0] == "vector_add":
        assert "vs bfloat16 RNE reference" in checks[0]


def test_an_unknown_dtype_is_one_line_naming_the_flag(capsys):
    assert main(["run", "matmul", "--dtype", "fp8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--dtype: dtype 'fp8' is not one of" in err[0], err


def test_compare_inner_precise_says_how_the_outputs_differ_in_words(capsys):
    """Rule: --compare-inner-precise --functional states the output difference as a sentence
    (it printed a JSON object between the table and the closing line)."""
    rc, out = _out(capsys, ["run", "weight_quant_batchmatmul", "--m", "2", "--k", "256", "--n",
                            "128", "--compare-inner-precise", "--functional"])
    assert rc == 0
    diff = [x for x in out if x.startswith("outputs on the same seeded inputs: ")]
    assert len(diff) == 1 and re.search(r": \d+ of 256 elements differ between the modes, "
                                        r"max \|diff\| \S+, mean \|diff\| \S+$", diff[0]), out
    assert not [x for x in out if x.startswith("{")]
    assert out[-1].startswith("inner_precise 1 takes ")


def test_output_files_in_new_folders_are_written(capsys, tmp_path):
    """Rule: --trace / --csv / --gantt create their folders before the run, as --profile and
    sweep --out do (a missing folder failed after the simulation: 't.json.tmp: no such file')."""
    trace, csv = tmp_path / "a" / "b" / "t.json", tmp_path / "c" / "p.csv"
    rc, _ = _out(capsys, ["run", "vector_add", "--n-elements", "4096", "--trace", str(trace),
                            "--csv", str(csv)])
    assert rc == 0 and trace.is_file() and csv.is_file()
