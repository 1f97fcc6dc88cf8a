"""A tiling the user passes is never silently replaced or half-used: for every operator, an
object of the wrong type (an int, an object), a dict naming no field of the operator's tiling
or an empty dict is refused with a TypeError or
ValueError naming what is expected, before any program is built; a field of the wrong type in a
vector kernel's tiling dataclass is refused naming the field (it used to end in AttributeError
or a comparison TypeError, or an empty dict ran the default tiling)."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

import npusim
from npusim.cli_run import OP_FLAGS, _dest
from npusim.operators import get_operator

OPS = ["group_quant", "vector_add", "tensor_copy", "format_cast", "trans_quant_param",
       "dynamic_quant", "quant_matmul", "matmul", "weight_quant_batchmatmul"]
SOC = "Ascend910B2"


def cli_call(op: str) -> dict:
    """The operator's default CLI call (timing-only specs)."""
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    return get_operator(op).example_inputs(ns, False, np.random.default_rng(0))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("bad", [{"bogus_field": 3}, {}, 42, object()],
                         ids=["dict", "empty-dict", "int", "object"])
def test_a_tiling_of_the_wrong_type_is_refused(op, bad):
    with pytest.raises((TypeError, ValueError), match=r"tiling|Tiling") as e:
        npusim.simulate(op, SOC, tiling=bad, **cli_call(op))
    assert not isinstance(e.value, AttributeError)


@pytest.mark.parametrize("op", ["group_quant", "dynamic_quant", "format_cast",
                                "trans_quant_param"])
def test_a_tiling_field_of_the_wrong_type_is_refused_naming_it(op):
    call = cli_call(op)
    default = get_operator(op).default_tiling(npusim.runner.resolve_soc(SOC), **call)
    f = next(f for f in dataclasses.fields(default) if f.type == "int")
    bad = dataclasses.replace(default, **{f.name: "64"})
    with pytest.raises(TypeError, match=rf"{op}: tiling\.{f.name}='64': must be an integer"):
        npusim.simulate(op, SOC, tiling=bad, **call)
    flag = dataclasses.replace(default, double_buffer=1)
    with pytest.raises(TypeError, match=rf"{op}: tiling\.double_buffer=1: must be True or False"):
        npusim.simulate(op, SOC, tiling=flag, **call)
