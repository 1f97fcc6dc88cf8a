"""Tiled programs run functionally give the operators' reference bits, for every legal tiling
tried; functional and timing-only runs agree on cycles."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npusim
from npusim.ops.group_quant_program import GroupQuantTiling
from npusim.spec import spec

SEED_X = np.array(
    [
        [1.0029, -1.2373, 1.0107, -0.2681],
        [0.5791, 0.1101, 1.0059, -0.9658],
        [-1.7637, 1.7588, -1.3193, 0.3989],
        [1.3262, 0.4854, 1.9551, 0.9697],
        [-0.8770, -1.8828, 2.1777, -0.0050],
        [0.4722, 0.5605, 0.8267, -0.9810],
    ],
    np.float16,
)
SEED_SCALE = np.array(
    [
        [-0.2710, -0.9381, 0.2850, -1.1230],
        [0.5217, -0.7233, -0.1730, -0.1245],
        [-1.5433, -0.9129, -2.2095, 1.7371],
        [-0.8253, 0.3973, 0.1430, 0.3885],
    ],
    np.float32,
)
SEED_Y = [
    [-1, 0, -1, -1],
    [-1, -1, -1, -1],
    [-2, -2, -1, -1],
    [0, -2, -2, -1],
    [0, 1, -6, -1],
    [-2, -2, -3, -3],
]


def test_group_quant_seed_example_through_the_program():
    """The seed 004 example: all 24 outputs, computed by the AIV tiled program."""
    r = npusim.simulate(
        "group_quant",
        "Ascend910B2",
        x=SEED_X,
        scale=SEED_SCALE,
        group_index=np.array([1, 4, 6, 6]),
        offset=np.array([-1.1658], np.float32),
    )
    assert r.outputs.tolist() == SEED_Y
    t = npusim.simulate(
        "group_quant",
        "Ascend910B2",
        x=spec((6, 4), "float16"),
        scale=spec((4, 4), "float32"),
        group_index=np.array([1, 4, 6, 6]),
        offset=np.array([-1.1658], np.float32),
    )
    assert t.outputs is None and t.cycles == r.cycles


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1, 40),
    hb=st.integers(1, 5),
    cores=st.integers(1, 8),
    chunk=st.sampled_from([64, 128]),
    per_pass=st.integers(1, 9),
)
def test_group_quant_program_equals_formula_for_any_tiling(seed, rows, hb, cores, chunk, per_pass):
    """Every legal (cores, H chunk, rows per pass) gives clip(rint(fp32(x) * scale)) exactly."""
    rng = np.random.default_rng(seed)
    h = 8 * hb * 3
    e = 3
    gi = np.sort(rng.integers(0, rows + 1, e))
    gi[-1] = rows
    x = (rng.standard_normal((rows, h)) * 40).astype(np.float16)
    scale = rng.uniform(-3, 3, (e, h)).astype(np.float32)
    t = GroupQuantTiling(cores=min(cores, rows), h_chunk=chunk, rows_per_pass=per_pass)
    r = npusim.simulate("group_quant", "Ascend910B2", t, x=x, scale=scale, group_index=gi)
    grp = np.searchsorted(gi, np.arange(rows), side="right")
    want = np.clip(np.rint(x.astype(np.float32) * scale[grp]), -128, 127).astype(np.int8)
    assert r.outputs.view(np.uint8).tolist() == want.view(np.uint8).tolist()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_program_equals_reference(dtype, trans_b):
    """The cube program's fp16 / bf16 output equals reference_matmul bit for bit (declared cube
    model), with and without bias, ND and transposed B, under several legal tilings."""
    from npusim.hw import load_soc
    from npusim.numerics import np_dtype
    from npusim.ops.matmul import reference_matmul
    from npusim.ops.matmul_tiling import enumerate_matmul_tilings

    soc = load_soc("Ascend910B2")
    rng = np.random.default_rng(3)
    m, k, n = 70, 96, 80
    a = rng.standard_normal((m, k)).astype(np.float32).astype(np_dtype(dtype))
    b_logical = rng.standard_normal((k, n)).astype(np.float32).astype(np_dtype(dtype))
    b = np.ascontiguousarray(b_logical.T).T if trans_b else b_logical
    bias = rng.standard_normal(n).astype(np.float32 if dtype == "bfloat16" else np.float16)
    want = reference_matmul(a, b, bias=bias, soc=soc)
    tilings = list(enumerate_matmul_tilings(m, k, n, dtype, dtype, soc, trans_b, with_bias=True))
    picks = [tilings[0], tilings[len(tilings) // 2], tilings[-1]]
    for t in [None, *picks]:
        r = npusim.simulate("matmul", soc, t, a=a, b=b, bias=bias)
        assert r.outputs.view(np.uint16).tolist() == want.view(np.uint16).tolist()


@pytest.mark.parametrize("out", ["int8", "float16", "int32"])
def test_quant_matmul_program_equals_reference(out):
    """W8A8 through the cube program: int32 bias in L0C, REQ8 / DEQF16 / int32 - bit exact."""
    from npusim.ops.quant_matmul import reference_quant_matmul

    rng = np.random.default_rng(5)
    m, k, n = 40, 160, 72
    x1 = rng.integers(-128, 128, (m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    scale = rng.uniform(1e-4, 3e-3, n).astype(np.float32)
    bias = rng.integers(-5000, 5000, n).astype(np.int32)
    kw = {"bias": bias, "output_dtype": out}
    if out == "int8":
        kw["offset"] = rng.uniform(-20, 20, n).astype(np.float32)
    r = npusim.simulate("quant_matmul", "Ascend910B2", x1=x1, x2=x2, scale=scale, **kw)
    want = reference_quant_matmul(x1, x2, scale, **kw)
    assert np.asarray(r.outputs).view(np.uint8).tolist() == want.view(np.uint8).tolist()


def test_w4a16_decode_selects_msdgroup_and_inner_precise_changes_vector_time():
    """M=16 W4A16 per-group 128: CANN picks MsdGroup; inner_precise 1 (fp16 recombination)
    needs less vector time than 0 in the traces."""
    from npusim.report.summary import pipe_busy_by_kind

    base = {
        "x": spec((16, 1024), "float16"),
        "weight": spec((1024, 512 // 8), "int32"),
        "antiquant_scale": spec((8, 512), "float16"),
        "antiquant_group_size": 128,
    }
    res = {
        ip: npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", inner_precise=ip, **base)
        for ip in (0, 1)
    }
    assert res[0].kernel_name == res[1].kernel_name == "MsdGroup"
    v0 = pipe_busy_by_kind(res[0].run)["aiv"]["V"]
    v1 = pipe_busy_by_kind(res[1].run)["aiv"]["V"]
    assert v1 < v0
