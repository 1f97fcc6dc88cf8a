"""The A8W4 quant_matmul program (int8 x, int4 weight, per-group scales; the ops-nn MSD kernel's
dataflow): its functional run is the numerics model bit for bit, its timing-only run has the
same cycles, its tiling follows the kernel's rule, and bad calls are refused by name."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import npusim
from npusim.numerics import pack_int4
from npusim.ops.quant_matmul_a8w4 import A8W4_NUMERICS_MODEL, reference_a8w4
from npusim.ops.quant_matmul_a8w4_program import A8W4Tiling, default_a8w4_tiling
from npusim.ops.trans_quant_param import trans_quant_param
from npusim.runner import resolve_soc
from npusim.spec import spec

SOC = "Ascend910B2"


def _call(seed: int, m: int, k: int, n: int, out: str, scale_exp: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, (m, k)).astype(np.int8)
    x1[0, :256] = 8  # hi = 0, lo = 0: an all-zero digit row (signed zeros through the chain)
    w = rng.integers(-8, 8, (k, n)).astype(np.int32)
    s = (rng.uniform(-1, 1, (k // 256, n)) * 2.0 ** scale_exp).astype(np.float32)
    q = np.asarray(trans_quant_param(s.reshape(-1))).reshape(s.shape).astype(np.int64)
    return {"x1": x1, "x2": np.asarray(pack_int4(w)), "scale": q,
            "offset": rng.standard_normal(n).astype(np.float32),
            "pertoken_scale": rng.uniform(-0.02, 0.02, (m, 1)).astype(np.float32),
            "output_dtype": out, "group_sizes": [0, 0, 256]}


def _u16(a) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), m=st.integers(1, 40), groups=st.integers(1, 3),
       n8=st.integers(1, 80), out=st.sampled_from(["float16", "bfloat16"]),
       scale_exp=st.integers(-8, 8))
@example(seed=1, m=1, groups=2, n8=128, out="float16", scale_exp=0)  # the upstream test's N
@example(seed=2, m=17, groups=2, n8=25, out="bfloat16", scale_exp=8)  # saturation, inf
def test_program_bits_are_the_numerics_model(seed, m, groups, n8, out, scale_exp):
    """Race-checked functional run on random shapes (k = 256 per group, n any multiple of 8,
    a tail block narrower than base_n): output bits equal the model; the timing-only run of
    the same call as specs has the same cycles."""
    kw = _call(seed, m, 256 * groups, 8 * n8, out, scale_exp)
    res = npusim.simulate("quant_matmul", SOC, check_races=True, **kw)
    want = reference_a8w4(**kw, soc=SOC)
    assert res.outputs.shape == want.shape == (m, 8 * n8)
    assert np.array_equal(_u16(res.outputs), _u16(want))
    specs = {a: spec(v.shape, str(v.dtype)) if isinstance(v, np.ndarray) else v
             for a, v in kw.items()}
    timing = npusim.simulate("quant_matmul", SOC, **specs)
    assert timing.outputs is None and timing.cycles == res.cycles


def test_saturation_and_fp16_sum_are_exercised():
    """The pinned saturating example really reaches the model's edge cases (so they are
    tested, not skipped): a DEQF16 group tile of the hi digits saturates to +-65504 and the
    fp16 atomic add of the two groups overflows to inf somewhere."""
    from npusim.numerics import decode_quant_param, deqf16, unpack_int4
    from npusim.numerics.cube import cube_matmul_int
    from npusim.ops.quant_matmul_a8w4 import fp16_atomic_add

    kw = _call(2, 17, 512, 200, "bfloat16", 8)
    hi = (kw["x1"].astype(np.int16) >> 4).astype(np.int8)
    w = unpack_int4(kw["x2"])
    m1 = np.asarray(decode_quant_param(kw["scale"].reshape(-1)).m1, np.float32).reshape(2, -1)
    t0, t1 = (deqf16(cube_matmul_int(hi[:, g * 256:(g + 1) * 256], w[g * 256:(g + 1) * 256]),
                     m1[g][None, :]) for g in range(2))
    assert np.any(np.abs(t0.astype(np.float32)) == 65504)
    assert np.any(np.isinf(fp16_atomic_add(t0, t1)))


def test_trace_names_both_core_kinds_and_the_kernel(tmp_path):
    """The trace of a timing-only run holds the AIV split (And), the cube's Mmad and FixPipe,
    the AIV recombine, and metadata naming the kernel, the model and the cross-core flags."""
    kw = _call(3, 4, 512, 128, "float16")
    specs = {a: spec(v.shape, str(v.dtype)) if isinstance(v, np.ndarray) else v
             for a, v in kw.items()}
    res = npusim.simulate("quant_matmul", SOC, **specs)
    trace = json.loads(res.write_trace(tmp_path / "a8w4.json").read_text(encoding="utf-8"))
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"And 0x0F0F", "Mmad", "Muls 16 (hi)", "y UB->GM"} <= names
    assert any("VDEQF16" in nm or "FixPipe" in nm for nm in names)
    meta = res.run.kernel.meta
    assert "A8W4" in meta["kernel"] and "VDEQF16" in meta["numerics_model"]
    assert any("ready" in v for v in meta["cross_core_flags"].values())
    assert "overwritten" in meta["in_place"] and meta["declared"]
    assert any(A8W4_NUMERICS_MODEL in n for n in res.notes)  # the run says it is a model


@pytest.mark.parametrize(("m", "n", "base_n"), [
    (1, 1024, 64),    # 24 cores for one block row: ceil(1024 / 24) = 43 -> 64
    (1, 1536, 128),   # 64 is not above 64: the next choice
    (8, 2048, 128),   # one block row (16 int4 rows) of 24 cores: 86 -> 128
    (200, 4096, 512),  # 25 block rows: one core per row, the largest choice
])
def test_default_tiling_follows_the_kernel_rule(m, n, base_n):
    """base_n is the first of 64 / 128 / 256 / 512 strictly above ceil(n / ceil(aicNum /
    ceil(2m / 16))), else 512 (ops-nn SetMatmulTilingPerGroup); every AIC of the SoC runs."""
    t = default_a8w4_tiling(resolve_soc(SOC), m, n)
    assert (t.base_n, t.core_num, t.base_m, t.base_k, t.parall_num) == (base_n, 24, 16, 128, 4)


def test_a_given_tiling_changes_cycles_not_bits():
    """Another base_n / core count gives the same output bits (every block's K order is the
    same) and other cycles."""
    kw = _call(4, 6, 512, 256, "float16")
    a = npusim.simulate("quant_matmul", SOC, **kw)
    b = npusim.simulate("quant_matmul", SOC, tiling=A8W4Tiling(base_n=256, core_num=3), **kw)
    assert np.array_equal(_u16(a.outputs), _u16(b.outputs))
    assert a.cycles != b.cycles


def test_bad_calls_are_refused_by_name():
    kw = _call(5, 2, 512, 64, "float16")
    with pytest.raises(ValueError, match=r"tiling\.base_n"):
        npusim.simulate("quant_matmul", SOC, tiling=A8W4Tiling(base_n=96, core_num=4), **kw)
    with pytest.raises(ValueError, match=r"tiling\.core_num"):
        npusim.simulate("quant_matmul", SOC, tiling=A8W4Tiling(base_n=64, core_num=25), **kw)
    with pytest.raises(ValueError, match=r"tiling\.base_n"):  # a dict: fields onto the default
        npusim.simulate("quant_matmul", SOC, tiling={"base_n": 96}, **kw)
    with pytest.raises(ValueError, match="unknown field"):
        npusim.simulate("quant_matmul", SOC, tiling={"base_q": 64}, **kw)
    with pytest.raises(ValueError, match="group_k = 256 only"):
        npusim.simulate("quant_matmul", SOC, **{**kw, "group_sizes": [0, 0, 128]})
    with pytest.raises(ValueError, match="offset: required"):
        npusim.simulate("quant_matmul", SOC, **{**kw, "offset": None})
    big = {**kw, "x1": spec((1, 29696), "int8"), "x2": spec((29696, 8), "int32"),
           "scale": spec((116, 64), "int64")}
    with pytest.raises(ValueError, match="29576"):
        npusim.simulate("quant_matmul", SOC, **big)
    with pytest.raises(ValueError, match="Atlas inference"):
        npusim.simulate("quant_matmul", "Ascend310P3", **kw)
    a4 = {**kw, "x1": np.zeros((2, 64), np.int32)}  # int32 x1: the per-group A4W4 rules
    with pytest.raises(ValueError, match="per-group A4W4 needs transposeX2"):
        npusim.simulate("quant_matmul", SOC, **a4)
