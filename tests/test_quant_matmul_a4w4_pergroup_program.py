"""The per-group A4W4 quant_matmul program (int4 x int4 per group of 256, fp16 zero points,
per-token scale; the ops-nn pergroup kernel's dataflow): its functional run is the reference
chain bit for bit and its timing-only run has the same cycles."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import npusim
from npusim.numerics import pack_int4
from npusim.ops.quant_matmul_a4w4_pergroup import reference_a4w4_pergroup
from npusim.ops.quant_matmul_a4w4_pergroup_program import ub_calc_m
from npusim.spec import spec

SOC = "Ascend910B2"


def _call(seed: int, m: int, k: int, n: int, out: str, gk: int = 256) -> dict:
    rng = np.random.default_rng(seed)
    g = k // gk
    return {"x1": np.asarray(pack_int4(rng.integers(-8, 8, (m, k)).astype(np.int32))),
            "x2": np.asarray(pack_int4(rng.integers(-8, 8, (n, k)).astype(np.int32))).T,
            "scale": (rng.uniform(-1, 1, (g, n)) * 2.0 ** rng.integers(-12, 2, (g, n))
                      ).astype(np.float32),
            "offset": rng.uniform(-8, 8, (g, n)).astype(np.float16),
            "pertoken_scale": rng.uniform(-1, 1, (m, 1)).astype(np.float32),
            "output_dtype": out, "group_sizes": [1, 1, gk]}


def _specs(kw: dict) -> dict:
    out = {a: spec(v.shape, str(v.dtype)) if isinstance(v, np.ndarray) else v
           for a, v in kw.items()}
    out["x2"] = spec(kw["x2"].shape, "int32", transposed=True)
    return out


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), m=st.integers(1, 200), k1024=st.integers(1, 2),
       n256=st.integers(1, 3), out=st.sampled_from(["float16", "bfloat16"]))
@example(seed=1, m=130, k1024=1, n256=2, out="float16")  # two block rows, two columns, chunks
def test_program_bits_are_the_reference_chain(seed, m, k1024, n256, out):
    """Race-checked functional run on random legal shapes (k a multiple of 1024, n of 256):
    output bits equal the reference's; the same call as specs (timing only) has the same
    cycles."""
    kw = _call(seed, m, 1024 * k1024, 256 * n256, out)
    res = npusim.simulate("quant_matmul", SOC, check_races=True, **kw)
    want = reference_a4w4_pergroup(**kw, soc=SOC)
    assert np.array_equal(np.asarray(res.outputs).view(np.uint16), want.view(np.uint16))
    timing = npusim.simulate("quant_matmul", SOC, **_specs(kw))
    assert timing.outputs is None and timing.cycles == res.cycles


def test_chunk_rows_follow_the_kernel_rule_and_trace(tmp_path):
    """ub_calc_m is CalcDequantTiling's (192 KB UB, 128 x 256 blocks, gk 256: 22 rows); the
    trace of a timing-only run holds the AIC's Mmad and the AIV's zero-point chain."""
    assert ub_calc_m(192 * 1024, 128, 256, 256) == 22
    res = npusim.simulate("quant_matmul", SOC, **_specs(_call(2, 64, 1024, 256, "bfloat16")))
    assert res.tiling.ub_calc_m == 22 and res.tiling.core_num == 1
    trace = json.loads(res.write_trace(tmp_path / "t.json").read_text(encoding="utf-8"))
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"Mmad", "ReduceSum rows", "Sub", "Mul x2_scale", "Add (accumulate)"} <= names
    assert res.run.kernel.meta["declared"]


@pytest.mark.parametrize(("gs", "k", "n", "match"), [
    ([1, 1, 128], 1024, 256, "group_k = 256 only"), ([0, 0, 0], 1024, 256, "group_k = 256"),
    ([2, 1, 256], 1024, 256, "group_sizes"), ([1, 1, 256], 512, 256, "multiple of 1024"),
    ([1, 1, 256], 1024, 96, "multiple of 256")])
def test_illegal_group_sizes_and_shapes_are_refused_everywhere(gs, k, n, match):
    """ops-nn's A2 / A3 rules (aclnnQuantMatmulV5 K-G: [gsM, gsN, gsK] = [0, 0, 256], k % 1024,
    n % 256; the pergroup tiling refuses the rest): simulate (arrays and specs), the reference
    and the torch_npu API all raise the same ValueError."""
    import npusim.torch_npu as tn

    kw = _call(3, 8, k, n, "float16", gk=gs[2] or 256)
    kw["group_sizes"] = gs
    calls = [lambda: npusim.simulate("quant_matmul", SOC, **kw),
             lambda: npusim.simulate("quant_matmul", SOC, **_specs(kw)),
             lambda: reference_a4w4_pergroup(**kw, soc=SOC)]
    calls += [lambda f=f: tn.npu_quant_matmul(kw["x1"], kw["x2"], kw["scale"], soc=SOC,
                                              fidelity=f, **{a: kw[a] for a in (
                                                  "offset", "pertoken_scale", "output_dtype",
                                                  "group_sizes")})
              for f in ("program", "reference")]
    for call in calls:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("core_num,ub_calc_m", [(0, 8), (25, 8), (4, 0)])
def test_a_user_tiling_outside_the_rules_is_refused(core_num, ub_calc_m):
    from npusim.hw import load_soc
    from npusim.ops.quant_matmul_a4w4_pergroup_program import (
        A4W4GroupTiling,
        check_a4w4_group_tiling,
    )

    bad = A4W4GroupTiling(core_num=core_num, ub_calc_m=ub_calc_m)
    with pytest.raises(ValueError, match=r"core_num in \[1, 24\] and ub_calc_m >= 1"):
        check_a4w4_group_tiling(bad, load_soc(SOC))
    check_a4w4_group_tiling(A4W4GroupTiling(core_num=24, ub_calc_m=1), load_soc(SOC))
