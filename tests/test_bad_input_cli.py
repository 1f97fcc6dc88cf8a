"""Bad input never crashes, hangs or lies (issue 17): the CLI reports user errors as one
``npusim: error:`` line with exit status 2 and never replaces a value the user gave; simulate()
refuses on specs what the operator refuses on arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.cli import main
from npusim.runner import simulate
from npusim.spec import spec


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize("argv", [
    ["run", "matmul", "--m", "0"],
    ["run", "matmul", "--m", "-5"],
    ["run", "weight_quant_batchmatmul", "--weight-dtype", "int2"],
    ["run", "weight_quant_batchmatmul", "--inner-precise", "3"],
    ["run", "vector_add", "--n-elements", "-8"],
    ["run", "vector_add", "--n-elements", "0"],
    ["sweep", "--workers", "0"],
    ["validate", "--workers", "0"],
    ["validate", "--workers", "-2"],
    ["sweep", "--simulate-top", "0"],
    ["run", "matmul", "--seed", "-1"],
])
def test_flag_values_are_refused_not_replaced(capsys, argv):
    """A zero, negative or unknown flag value is an error (exit 2), never a default."""
    rc, err = _run(capsys, argv)
    assert rc == 2
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["run", "matmul", "--soc", "/no/such/soc.yaml"], "/no/such/soc.yaml"),
    (["run", "matmul", "--patch", "/no/such/patch.yaml"], "/no/such/patch.yaml"),
    (["sweep", "/no/such/study.yaml"], "/no/such/study.yaml"),
    (["run", "no_such_op"], "no_such_op"),
    (["run", "matmul", "--m", "16", "--k", "16", "--n", "16", "--tiling", "base_m=7"],
     "base_m=7"),
    (["validate", "--rows", "ZZ"], "--rows 'ZZ': matches no calibration row id"),
])
def test_user_errors_are_one_line_exit_2(capsys, argv, needle):
    """Missing files, unknown operators and bad tilings print ``npusim: error: <message>``
    naming the culprit and exit 2, with no traceback."""
    rc, err = _run(capsys, argv)
    assert rc == 2
    assert err.startswith("npusim: error: ") and needle in err
    assert "Traceback" not in err


def test_debug_shows_the_exception(capsys):
    """``--debug`` lets the exception through (for bug reports)."""
    with pytest.raises(FileNotFoundError):
        main(["--debug", "sweep", "/no/such/study.yaml"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=-(2**40), max_value=0), min_size=1, max_size=3))
def test_spec_dims_must_be_non_negative_or_refused(dims):
    """A spec with a negative dim is refused at construction, naming the dim."""
    if all(d >= 0 for d in dims):
        assert spec(dims, "float16").shape == tuple(dims)
    else:
        with pytest.raises(ValueError, match="dim"):
            spec(dims, "float16")


def _gq(**kw):
    args = {"x": spec((64, 512), "float16"), "scale": spec((1, 512), "float32"),
            "group_index": np.array([64], dtype=np.int64)}
    args.update(kw)
    return simulate("group_quant", **args)


@pytest.mark.parametrize("kw, exc, needle", [
    ({"dst_dtype": "float32"}, ValueError, "dst_dtype"),
    ({"dst_dtype": "int64"}, ValueError, "dst_dtype"),
    ({"group_index": np.array([64.0], dtype=np.float32)}, TypeError, "group_index"),
    ({"offset": np.array([1.0], dtype=np.float16)}, TypeError, "offset"),
])
def test_group_quant_spec_run_rejects_what_the_api_rejects(kw, exc, needle):
    """simulate("group_quant") on specs refuses the dst_dtype / group_index / offset dtypes the
    torch_npu API refuses."""
    with pytest.raises(exc, match=needle):
        _gq(**kw)


@pytest.mark.parametrize("kw", [
    {"x": spec((64,), "float16"), "y": spec((128,), "float16")},
    {"x": spec((64,), "float16"), "y": spec((64,), "float32")},
    {"x": spec((0,), "float16"), "y": spec((0,), "float16")},
    {"n_elements": -8},
    {"n_elements": 0},
])
def test_vector_add_refuses_mismatched_or_empty_inputs(kw):
    """vector_add needs x and y of one shape and dtype and at least one element (no 0-cycle
    result)."""
    with pytest.raises(ValueError):
        simulate("vector_add", **kw)

