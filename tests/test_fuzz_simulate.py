"""Fuzz ``simulate()``: every device operator's default call, mutated one way at a time (a
negative, zero or huge dim, another dtype, a junk value, a dropped or unknown argument, another
rank), either runs with a sane result or raises a clear error - never a crash (an exception
outside ValueError / TypeError / NotImplementedError), never a hang (a small instruction limit),
never silent acceptance of an input that is surely wrong."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.cli_run import OP_FLAGS, _dest
from npusim.operators import get_operator, operator_names
from npusim.spec import TensorSpec, spec

CLEAR_ERRORS = (ValueError, TypeError, NotImplementedError)
DEVICE_OPS = sorted(op for op in operator_names() if op != "int4pack")  # int4pack is host work
SMALL = {"m": 32, "k": 256, "n": 256, "n_elements": 4096}
LIMIT = 20_000  # instructions: keeps every drawn run to seconds
#: dtype names no operator accepts ("fp16" is a documented alias, so not here)
NO_SUCH_DTYPES = ("int2", "", "complex64", "float8_x")
ODD_DTYPES = ("float64", "int64", "bool", "float32", "int8", "int32", "bfloat16", "uint8",
              "int4", "float16")
JUNK = ("abc", [1, 2], None, 3.5, {"a": 1}, b"\x00")


#: operators whose program is timing-only (no functional run to fuzz)
TIMING_ONLY = ("dynamic_quant",)


def default_call(op: str, functional: bool) -> dict:
    """The operator's ``npusim run`` call at small sizes (arrays when functional, else specs)."""
    functional = functional and op not in TIMING_ONLY
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    for k, v in SMALL.items():
        setattr(ns, k, v)
    return get_operator(op).example_inputs(ns, functional, np.random.default_rng(0))


def run(op: str, args: dict):
    """simulate() with the fuzz limit: a result, or the clear error it raised."""
    try:
        return npusim.simulate(op, "Ascend910B2", max_instructions=LIMIT, check_races=False,
                               **args)
    except CLEAR_ERRORS as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return exc


def assert_sane(op: str, out, must_fail: bool, what: str) -> None:
    if isinstance(out, Exception):
        return
    assert not must_fail, f"{op}: {what} was accepted ({out.cycles} cycles)"
    assert out.cycles > 0 and math.isfinite(out.microseconds), f"{op}: {what}: {out.cycles}"


def _mutated(draw, op: str, functional: bool) -> tuple[dict, str, bool]:
    args = dict(default_call(op, functional))
    key = draw(st.sampled_from(sorted(args)))
    value = args[key]
    kind = draw(st.sampled_from(["negdim", "zerodim", "bigdim", "dtype", "badtype", "junk",
                                 "drop", "extra", "rank"]))
    if kind == "extra":
        args["no_such_argument"] = 1
        return args, "an unknown argument", True
    if kind == "drop":
        del args[key]
        return args, f"{key} dropped", False
    if kind == "junk":
        args[key] = draw(st.sampled_from(JUNK))
        return args, f"{key}={args[key]!r}", False
    if isinstance(value, TensorSpec) and value.shape:
        shape = list(value.shape)
        i = draw(st.integers(0, len(shape) - 1))
        if kind == "negdim":  # a spec cannot even hold it: refused at construction
            with pytest.raises(ValueError, match="every dim must be an integer >= 0"):
                TensorSpec((*shape[:i], -draw(st.integers(1, 2**40)), *shape[i + 1:]),
                           value.dtype)
            return args, "unchanged", False
        if kind in ("zerodim", "bigdim"):
            shape[i] = 0 if kind == "zerodim" else draw(st.sampled_from([2**20, 3**13, 2**31 - 1]))
            args[key] = TensorSpec(tuple(shape), value.dtype, value.transposed, value.npu_format)
            return args, f"{key} shape {tuple(shape)}", False
        if kind in ("dtype", "badtype"):
            dt = draw(st.sampled_from(NO_SUCH_DTYPES if kind == "badtype" else ODD_DTYPES))
            args[key] = TensorSpec(value.shape, dt, value.transposed, value.npu_format)
            return args, f"{key} dtype {dt!r}", kind == "badtype"
        args[key] = spec(shape[:-1] or [1, 1, *shape], value.dtype)
        return args, f"{key} of another rank", False
    if isinstance(value, np.ndarray):
        if kind in ("dtype", "badtype"):
            dt = draw(st.sampled_from(["float64", "int64", "bool", "complex64", "int8",
                                       "uint8"]))
            args[key] = value.astype(dt)
            return args, f"{key} as {dt}", False
        if kind == "zerodim":
            args[key] = value[:0]
            return args, f"{key} empty", False
        return args, "unchanged", False
    if isinstance(value, str) and kind in ("dtype", "badtype"):
        args[key] = draw(st.sampled_from(NO_SUCH_DTYPES))
        return args, f"{key}={args[key]!r}", True
    if isinstance(value, int) and not isinstance(value, bool) and kind in ("negdim", "zerodim"):
        args[key] = -5 if kind == "negdim" else 0
        return args, f"{key}={args[key]}", key == "n_elements"
    return args, "unchanged", False


@st.composite
def mutated_calls(draw):
    op = draw(st.sampled_from(DEVICE_OPS))
    functional = draw(st.booleans())
    args, what, must_fail = _mutated(draw, op, functional)
    return op, args, what, must_fail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_calls())
def test_mutated_default_calls_never_crash_hang_or_lie(call):
    """One mutation of one operator's default call: a sane result or a clear error."""
    op, args, what, must_fail = call
    assert_sane(op, run(op, args), must_fail, what)


@pytest.mark.parametrize("op", DEVICE_OPS)
@pytest.mark.parametrize("functional", [False, True])
def test_default_calls_run(op, functional):
    """The unmutated small calls run (so the mutations above start from a working call)."""
    out = run(op, default_call(op, functional))
    assert not isinstance(out, Exception), out
    assert out.cycles > 0
    assert (out.outputs is not None) == (functional and op not in TIMING_ONLY)


@pytest.mark.parametrize(("op", "args", "needle"), [
    ("tensor_copy", {"n_elements": 0}, "n_elements=0 must be an integer >= 1"),
    ("tensor_copy", {"n_elements": -8}, "n_elements=-8"),
    ("tensor_copy", {"x": np.zeros(0, np.float32)}, "empty"),
    ("vector_add", {"x": spec((64,), "float16"), "y": [1, 2]}, "x and y must have one shape"),
    ("vector_add", {"x": spec((64,), "float16"), "y": spec((64,), "float32")}, "x and y"),
    ("matmul", {"a": spec((16, 32), "float16"), "b": spec((64, 16), "float16")}, ""),
    ("matmul", {"a": spec((16, 32), "int2"), "b": spec((32, 16), "int2")}, ""),
    ("group_quant", {"x": spec((16, 64), "float16"), "scale": spec((2, 64), "float32"),
                     "group_index": np.array([8, 16], np.int64), "dst_dtype": "float32"}, ""),
    ("weight_quant_batchmatmul", {"x": spec((16, 512), "float16"),
                                  "weight": spec((512, 64), "int32"),
                                  "antiquant_scale": spec((4, 512), "float16"),
                                  "antiquant_group_size": 7}, ""),
])
def test_hand_written_bad_calls_are_refused(op, args, needle):
    """Calls the issue and the fuzzer found accepted or crashing: each is a clear error now."""
    out = run(op, args)
    assert isinstance(out, Exception), f"{op} accepted {args}"
    assert needle in str(out)


@pytest.mark.parametrize("tiling", ["no_such_step", 42, 3.5, {"cores": 0}, object()])
@pytest.mark.parametrize("op", ["vector_add", "matmul", "tensor_copy"])
def test_junk_tilings_are_clear_errors(op, tiling):
    """A tiling of the wrong type or with a zero field is a clear error, not a crash."""
    out = None
    try:
        out = npusim.simulate(op, "Ascend910B2", tiling, max_instructions=LIMIT,
                              **default_call(op, False))
    except CLEAR_ERRORS as exc:
        assert str(exc).strip()
        return
    pytest.fail(f"{op} accepted tiling {tiling!r} ({out.cycles} cycles)")


WQ_ARGS = {"x": spec((16, 512), "float16"), "weight": spec((512, 512), "int8"),
           "antiquant_scale": spec((512,), "float16")}
WQ_FIELDS = {"cube_cores": 2, "strip_n": 256, "slots": 2, "vec_rows": 128, "base_m": 16,
             "base_n": 256, "base_k": 128, "step_k": 4}


@pytest.mark.parametrize(("field", "value"), [
    ("slots", 0), ("step_k", 0), ("base_m", 0), ("vec_rows", 0), ("base_n", -16),
    ("base_k", 7), ("strip_n", 3),
])
def test_user_wqbmm_program_tiling_errors_name_field_value_and_limit(field, value):
    """A user WqbmmProgramTiling with a bad field is a ValueError naming field and value."""
    from npusim.ops.weight_quant_common import WqbmmProgramTiling

    t = WqbmmProgramTiling(**{**WQ_FIELDS, field: value})
    with pytest.raises(ValueError, match=f"{field}={value}"):
        npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", t, **WQ_ARGS)


def test_the_wqbmm_program_tiling_above_is_legal():
    """The unmutated tiling of the xfail cases runs (they fail for their field, not the rest)."""
    from npusim.ops.weight_quant_common import WqbmmProgramTiling

    res = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2",
                          WqbmmProgramTiling(**WQ_FIELDS), **WQ_ARGS)
    assert res.cycles > 0
