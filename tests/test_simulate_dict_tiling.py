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


def _pp_call(m: int, k: int, n: int) -> dict:
    """A 310P quant_matmul call on the pp_matmul path (M >= 1024 with a bias)."""
    return {"x1": TensorSpec((m, k), "int8"), "x2": TensorSpec((k, n), "int8"),
            "scale": TensorSpec((n,), "int64"), "bias": TensorSpec((n,), "int32"),
            "output_dtype": "float16"}


def test_quant_matmul_reads_dicts_itself_only_on_its_cube_arm():
    """Operator.tiling_dicts is a predicate on the call: quant_matmul's W8A8 cube arm reads a
    dict itself (Ascend C names), its 310P pp_matmul and A8W4 arms do not (simulate applies the
    fields to their default tiling); matmul reads every dict, weight_quant_batchmatmul none."""
    op = get_operator("quant_matmul")
    w8a8 = dict(x1=TensorSpec((256, 512), "int8"), x2=TensorSpec((512, 512), "int8"),
                scale=TensorSpec((512,), "float32"), output_dtype="float16")
    a8w4 = dict(w8a8, group_sizes=[0, 0, 256])  # int8 x1 with group_sizes: the A8W4 arm
    assert op.tiling_dicts(load_soc(SOC), **w8a8)
    assert not op.tiling_dicts(load_soc("Ascend310P3"), **_pp_call(1024, 64, 64))
    assert not op.tiling_dicts(load_soc(SOC), **a8w4)
    assert get_operator("matmul").tiling_dicts(load_soc(SOC), **MM)
    assert not get_operator("weight_quant_batchmatmul").tiling_dicts(load_soc(SOC), **WQ)


def test_a_pp_matmul_dict_is_the_tiling_the_size_guard_counts():
    """A dict of PpMatmulTiling fields is applied before the size guard, so the guard counts
    the tiling that would run: 16 x 16 blocks at M = 1024, K = N = 4096 are refused up front
    with the PpMatmul estimate (the guard got the raw dict, counted nothing and the build ran
    until it passed the limit)."""
    from npusim.size_guard import SizeLimitError

    with pytest.raises(SizeLimitError, match=r"needs at least .*PpMatmul program's loops"):
        npusim.simulate("quant_matmul", "Ascend310P3", tiling={"m0": 16, "n0": 16},
                        max_instructions=200_000, **_pp_call(1024, 4096, 4096))


def test_a_launch_sequence_takes_the_dict_tilings_simulate_takes():
    """simulate_sequence plans a step's tiling as simulate does (one rule, runner.plan_tiling):
    a dict of weight_quant_batchmatmul fields is the default with them replaced (it reached the
    plan as a dict, which refused it)."""
    from npusim.launch_sequence import Step, simulate_sequence

    soc = load_soc(SOC)
    default = get_operator("weight_quant_batchmatmul").default_tiling(soc, **WQ)
    new_k = 128 if default.cube.base_k != 128 else 64
    obj = dataclasses.replace(default, cube=dataclasses.replace(default.cube, base_k=new_k))
    by_dict = simulate_sequence([Step("weight_quant_batchmatmul", WQ,
                                      tiling={"cube.base_k": new_k})], soc)
    by_obj = simulate_sequence([Step("weight_quant_batchmatmul", WQ, tiling=obj)], soc)
    assert by_dict.cycles == by_obj.cycles > 0
