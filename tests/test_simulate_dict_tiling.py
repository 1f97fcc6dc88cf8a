"""simulate(..., tiling={field: value}) applies the fields to the call's default tiling, as
``npusim run --tiling`` does; unknown fields and illegal values are refused naming them."""

from __future__ import annotations

import dataclasses

import pytest

import npusim
from npusim.hw import load_soc
from npusim.operators import get_operator
from npusim.spec import TensorSpec

SOC = "Ascend910B2"
MM = dict(a=TensorSpec((256, 512), "float16"), b=TensorSpec((512, 512), "float16"))
WQ = dict(x=TensorSpec((16, 4096), "float16"), weight=TensorSpec((4096, 4096), "int8"),
          antiquant_scale=TensorSpec((4096,), "float16"))


def test_matmul_fields_replace_the_default_and_run_as_that_tiling():
    soc = load_soc(SOC)
    default = get_operator("matmul").default_tiling(soc, **MM)
    step = 4 if default.step_ka != 4 else 2
    want = dataclasses.replace(default, step_ka=step, step_kb=step)
    by_dict = npusim.simulate("matmul", SOC, tiling={"step_ka": step, "stepKb": step}, **MM)
    by_obj = npusim.simulate("matmul", SOC, tiling=want, **MM)
    assert by_dict.tiling == want != default
    assert by_dict.run.cycles == by_obj.run.cycles


def test_nested_wqbmm_field():
    soc = load_soc(SOC)
    default = get_operator("weight_quant_batchmatmul").default_tiling(soc, **WQ)
    new_k = 128 if default.cube.base_k != 128 else 64
    r = npusim.simulate("weight_quant_batchmatmul", SOC, tiling={"cube.base_k": new_k}, **WQ)
    assert r.tiling.cube.base_k == new_k
    assert r.tiling == dataclasses.replace(
        default, cube=dataclasses.replace(default.cube, base_k=new_k))


@pytest.mark.parametrize("op,args,fields,words", [
    ("matmul", MM, {"base_q": 1}, ["base_q", "fields are"]),
    ("matmul", MM, {"base_m": 7}, ["base_m=7", "multiple"]),
    ("weight_quant_batchmatmul", WQ, {"cube.base_k": 7}, ["base_k=7"]),
    ("weight_quant_batchmatmul", WQ, {"nope": 1}, ["nope", "cube.base_k"]),
])
def test_bad_fields_are_refused_naming_them(op, args, fields, words):
    with pytest.raises(ValueError) as exc:
        npusim.simulate(op, SOC, tiling=fields, **args)
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_non_string_field_name():
    with pytest.raises(TypeError, match="field names must be strings"):
        npusim.simulate("weight_quant_batchmatmul", SOC, tiling={1: 64}, **WQ)
    with pytest.raises(ValueError, match="unknown field 1"):
        npusim.simulate("matmul", SOC, tiling={1: 64}, **MM)


def test_a_whole_ascend_c_dict_is_still_a_whole_tiling():
    """A dict with every required field (Ascend C names) is read as before: the fields it
    leaves out take the class defaults, not the call's default tiling."""
    from npusim.ops.matmul_tiling import MatmulTiling

    d = {"baseM": 128, "baseN": 128, "baseK": 64, "singleCoreM": 128, "singleCoreN": 128,
         "singleCoreK": 512, "mDim": 2, "nDim": 4, "kDim": 1}
    r = npusim.simulate("matmul", SOC, tiling=d, **MM)
    want = MatmulTiling(base_m=128, base_n=128, base_k=64, single_core_m=128,
                        single_core_n=128, single_core_k=512, m_dim=2, n_dim=4, k_dim=1)
    assert r.tiling == want.for_dtypes("float16", "float16")
