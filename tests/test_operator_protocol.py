"""The operator protocol: every operator is one ``Operator`` object, and the code that drives
operators (runner, sweep, report) names none of them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest

import npusim
from npusim.cli_run import OP_FLAGS, _dest
from npusim.operator import Operator
from npusim.operators import OPERATOR_MODULES, get_operator, operator_names
from npusim.runner import resolve_soc
from npusim.spec import spec

SOC = resolve_soc("Ascend910B2")

#: one call per operator that breaks a documented rule
BAD_CALLS = {
    "vector_add": dict(x=spec((8,), "float16"), y=spec((4,), "float16")),
    "tensor_copy": dict(n_elements=0),
    "matmul": dict(a=spec((16, 32), "float16"), b=spec((16, 32), "float16")),
    "quant_matmul": dict(x1=spec((16, 32), "float16"), x2=spec((32, 32), "int8"),
                         scale=np.ones(32, np.float32)),
    "group_quant": dict(x=spec((16, 32), "float16"), scale=spec((2, 32), "float32"),
                        group_index=np.array([8, 16]), dst_dtype="float32"),
    "dynamic_quant": dict(x=spec((16, 32), "float16"), smooth_scales=spec((32,), "float16")),
    "quantize": dict(x=spec((16, 32), "float16"), scales=spec((32,), "float32"), dtype="int4"),
    "trans_quant_param": dict(scale=spec((2, 3), "float32")),
    "format_cast": dict(x=spec((16, 32), "float16"), acl_format=3),
    "int4pack": dict(weight=spec((16, 32), "int8")),
    "weight_quant_batchmatmul": dict(x=spec((4, 256), "float16"),
                                     weight=spec((256, 256), "int8"),
                                     antiquant_scale=spec((256,), "float16"),
                                     antiquant_group_size=7),
}


def _small_call(op: str) -> dict:
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    ns.m, ns.k, ns.n, ns.n_elements = 16, 256, 256, 4096
    return get_operator(op).example_inputs(ns, False, np.random.default_rng(0))


def test_registry_resolves_every_operator_to_its_object():
    assert set(BAD_CALLS) == set(operator_names())
    for name, module in OPERATOR_MODULES.items():
        op = get_operator(name)
        assert isinstance(op, Operator) and op.name == name, module
        assert op.cann_op_type or name == "int4pack", name  # int4pack is host work
    with pytest.raises(ValueError, match=r"unknown operator; available: .*matmul"):
        get_operator("matmull")


@pytest.mark.parametrize("op", sorted(BAD_CALLS))
def test_validate_refuses_what_simulate_refuses_with_the_same_message(op):
    with pytest.raises(Exception) as by_validate:
        get_operator(op).validate(SOC, **BAD_CALLS[op])
    with pytest.raises(Exception) as by_simulate:
        npusim.simulate(op, SOC, **BAD_CALLS[op])
    assert type(by_validate.value) is type(by_simulate.value)
    assert str(by_validate.value) == str(by_simulate.value)


@pytest.mark.parametrize("op", [o for o in sorted(BAD_CALLS) if o != "int4pack"])
def test_default_tiling_is_the_tiling_simulate_uses(op):
    call = _small_call(op)
    get_operator(op).validate(SOC, **call)  # the CLI's call is legal
    want = get_operator(op).default_tiling(SOC, **call)
    res = npusim.simulate(op, SOC, **call)
    assert repr(res.tiling) == repr(want)


def test_drivers_name_no_operator():
    """The runner, sweep and report reach operators only through the protocol."""
    root = Path(npusim.__file__).parent
    names = "|".join(map(re.escape, operator_names()))
    pattern = re.compile(rf"[\"']({names})[\"']")
    for rel in ("runner.py", "sweep.py", "sweep_study.py", "sweep_file.py", "report/compare.py",
                "report/summary.py"):
        hits = pattern.findall((root / rel).read_text(encoding="utf-8"))
        assert not hits, f"{rel} names {hits}"


@pytest.mark.parametrize("op", [o for o in sorted(BAD_CALLS) if o != "int4pack"])
def test_functional_outputs_come_from_the_semantics_table(op):
    """No operator's program supplies its values through a closure: every instruction of a
    functional run of the CLI's call (small sizes) takes its values from the table."""
    from npusim.isa.semantics import supplied_semantics

    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    ns.m, ns.k, ns.n, ns.n_elements = 16, 256, 256, 4096
    if op == "dynamic_quant":  # the CLI's E1 program is timing-only; the typed per-token one
        call = {"x": np.random.default_rng(0).standard_normal((16, 256)).astype(np.float16),
                "dst_type": "int8"}
    else:
        call = get_operator(op).example_inputs(ns, True, np.random.default_rng(0))
    res = npusim.simulate(op, SOC, **call)
    assert res.outputs is not None
    assert supplied_semantics(res.run.kernel) == {}


ND_ONLY_CALLS = {  # operators that take ND tensors only, each called with a FRACTAL_NZ one
    "vector_add": dict(x=spec((64, 64), "float16", npu_format=29),
                       y=spec((64, 64), "float16", npu_format=29)),
    "tensor_copy": dict(x=spec((64, 64), "float32", npu_format=29)),
    "group_quant": dict(x=spec((32, 64), "float16", npu_format=29),
                        scale=spec((1, 64), "float32"), group_index=np.array([32])),
    "dynamic_quant": dict(x=spec((32, 64), "float16", npu_format=29), dst_type="int8"),
    "quantize": dict(x=spec((32, 64), "float16"), scales=spec((64,), "float32", npu_format=29)),
    "trans_quant_param": dict(scale=spec((64,), "float32", npu_format=29)),
}


@pytest.mark.parametrize("op", sorted(ND_ONLY_CALLS))
def test_an_nz_tensor_is_refused_where_only_nd_is_taken(op):
    """A FRACTAL_NZ input to an ND-only operator is refused naming the argument (it was read as
    if its storage were the logical tensor)."""
    for run in (lambda kw: get_operator(op).validate(SOC, **kw),
                lambda kw: npusim.simulate(op, SOC, **kw)):
        with pytest.raises(ValueError, match=r"FRACTAL_NZ tensor \(npu_format 29\); " + op):
            run(ND_ONLY_CALLS[op])
