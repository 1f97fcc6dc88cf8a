"""One validation path for arrays and specs (issue 17): a call mutated one way (dtype, empty or
sliced dim, another rank, transposition, a dropped or unknown argument) is refused by a
timing-only run (its inputs as TensorSpecs) exactly when the functional run (the arrays) is
refused, with the same exception type. Rules on values cannot be checked on a spec
(``VALUE_RULES``: an int64 quant scale's bits; group_index's contents, which stay an array)."""

from __future__ import annotations

import numpy as np
import pytest
from _specs import spec_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_simulate import CLEAR_ERRORS, DEVICE_OPS, TIMING_ONLY, default_call

import npusim
from npusim.spec import TensorSpec, spec

LIMIT = 20_000
PARITY_OPS = [op for op in DEVICE_OPS if op not in TIMING_ONLY]
KEEP_DATA = {"group_quant": ("group_index",)}  # decides the work: data in both runs
#: refusals that depend on an array's values (a spec has none): message fragment -> the rule
VALUE_RULES = {"bit 46 = 0": "quant_matmul: an int64 scale's bit 46 (its values) selects uint8 "
                             "saturation, not modelled"}


def outcome(op: str, args: dict) -> tuple[str, str] | None:
    """None if the run works, else (exception type, message)."""
    try:
        npusim.simulate(op, "Ascend910B2", max_instructions=LIMIT, check_races=False, **args)
    except CLEAR_ERRORS as exc:
        return type(exc).__name__, str(exc)
    return None


def specs_of(op: str, args: dict) -> dict:
    keep = KEEP_DATA.get(op, ())
    return {k: v if k in keep else spec_of(v) for k, v in args.items()}


def _mutate(draw, op: str) -> tuple[dict, str]:
    args = dict(default_call(op, True))
    arrays = sorted(k for k, v in args.items() if isinstance(v, np.ndarray)
                    and k not in KEEP_DATA.get(op, ()))
    kind = draw(st.sampled_from(["dtype", "empty", "slice", "rank", "transpose", "drop",
                                 "extra"]))
    if kind == "extra":
        return {**args, "no_such_argument": 1}, "extra"
    key = draw(st.sampled_from(arrays if kind != "drop" else sorted(args)))
    if kind == "drop":
        del args[key]
        return args, f"drop {key}"
    a = args[key]
    if getattr(a, "npu_format", 2) != 2:
        return args, "unchanged (FRACTAL_NZ)"
    if kind == "dtype":
        dt = draw(st.sampled_from(["float16", "float32", "int8", "int32", "int64", "float64",
                                   "bool", "uint8"]))
        args[key] = a.astype(dt)
    elif kind == "empty" and a.ndim:
        args[key] = a[:0]
    elif kind == "slice" and a.ndim and a.shape[-1] > 1:
        args[key] = a[..., : a.shape[-1] // 2]
    elif kind == "rank":
        args[key] = a.reshape(1, *a.shape) if draw(st.booleans()) or a.ndim < 2 else a.ravel()
    elif kind == "transpose" and a.ndim == 2:
        args[key] = np.ascontiguousarray(a.T).T if a.shape[0] > 1 < a.shape[1] else a
    return args, f"{kind} {key}"


@st.composite
def mutated(draw):
    op = draw(st.sampled_from(PARITY_OPS))
    args, what = _mutate(draw, op)
    return op, args, what


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_spec_run_refuses_exactly_what_the_array_run_refuses(call):
    op, args, what = call
    arrays, specs = outcome(op, args), outcome(op, specs_of(op, args))
    if arrays and specs is None and any(f in arrays[1] for f in VALUE_RULES):
        return
    kinds = (arrays and arrays[0], specs and specs[0])  # None: the run worked
    assert kinds[0] == kinds[1], f"{op} ({what}): arrays -> {arrays}, specs -> {specs}"


@pytest.mark.parametrize("op", PARITY_OPS)
def test_unmutated_calls_agree(op):
    """The starting calls run both ways (the mutations start from working calls)."""
    args = default_call(op, True)
    assert outcome(op, args) is None and outcome(op, specs_of(op, args)) is None
    assert any(isinstance(v, TensorSpec) for v in specs_of(op, args).values())


@pytest.mark.parametrize(("op", "arrays"), [
    ("trans_quant_param", {"scale": np.zeros(0, np.float32)}),
    ("trans_quant_param", {"scale": np.ones(4, np.float32), "offset": np.zeros(0, np.float32)}),
    ("trans_quant_param", {"scale": np.ones((2, 4), np.float32)}),
    ("vector_add", {"x": np.ones(1024, np.float16)}),
])
def test_spec_and_array_refusals_share_their_message(op, arrays):
    """The refusals that used to be worded differently for a spec: now one message."""
    def message(kw: dict) -> str:
        with pytest.raises(ValueError) as err:
            npusim.simulate(op, "Ascend910B2", **kw)
        return str(err.value)

    specs = {k: spec(v.shape, str(v.dtype)) for k, v in arrays.items()}
    assert message(arrays) == message(specs)


def test_group_index_as_a_spec_is_refused_with_the_reason():
    """group_index decides the program (the row-to-group mapping), so a spec of it - which has
    no values - is refused naming the argument and what to pass, not read as one element."""
    with pytest.raises(TypeError, match="group_index: a spec has no values"):
        npusim.simulate("group_quant", "Ascend910B2", x=spec((64, 512), "float16"),
                        scale=spec((4, 512), "float32"), group_index=spec((4,), "int64"))
