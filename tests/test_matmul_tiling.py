"""MatmulTiling: the default heuristic, validation against SoC buffers, enumeration."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from npusim.hw import list_socs, load_soc
from npusim.ops.matmul_tiling import (
    MatmulTiling,
    default_matmul_tiling,
    enumerate_matmul_tilings,
    tiling_for_tiles,
    tiling_from_dict,
    validate_matmul_tiling,
)

SOCS = list_socs()
SHAPES = [
    (1, 4096, 4096),
    (7, 33, 5),
    (16, 8192, 128),
    (1024, 1024, 1024),
    (1536, 1536, 1536),
    (4096, 128, 11008),
    (10240, 10240, 10240),
]
BITS = {"int8": 8, "float16": 16, "bfloat16": 16, "float32": 32, "int32": 32}


def _soc(name):
    return load_soc(name)


def _cube_kind(soc):
    return "aic" if "aic" in soc.core_counts() else "aicore"


def _pairs(soc):
    """(in, out) dtype pairs the SoC's cube supports."""
    out = [("float16", "float16"), ("float16", "float32"), ("int8", "int8"), ("int8", "int32")]
    if soc.supports("bf16_cube"):
        out.append(("bfloat16", "bfloat16"))
    if soc.supports("fp32_cube"):
        out.append(("float32", "float32"))
    return out


def _needs(t: MatmulTiling, in_bits: int, bias: bool) -> dict[str, int]:
    """Buffer bytes a tiling occupies, computed here from the tiling's definition."""
    a1 = t.step_m * t.base_m * t.step_ka * t.base_k * in_bits // 8
    b1 = t.step_kb * t.base_k * t.step_n * t.base_n * in_bits // 8
    return {
        "L1": t.depth_a1 * a1 + t.depth_b1 * b1 + (4 * t.base_n if bias else 0),
        "L0A": t.base_m * t.base_k * in_bits // 8 * (2 if t.db_l0a else 1),
        "L0B": t.base_k * t.base_n * in_bits // 8 * (2 if t.db_l0b else 1),
        "L0C": t.base_m * t.base_n * 4 * (2 if t.db_l0c else 1),
    }


def _assert_fits(t, m, k, n, in_dtype, soc, bias=False):
    core = soc.core(_cube_kind(soc))
    for buf, need in _needs(t, BITS[in_dtype], bias).items():
        assert need <= core.buffers[buf].capacity_bytes, (buf, need, t)
    k0 = 32 * 8 // BITS[in_dtype]
    assert t.base_m % 16 == 0 and t.base_n % 16 == 0 and t.base_k % k0 == 0
    assert t.m_dim * t.single_core_m >= m and t.n_dim * t.single_core_n >= n
    assert t.k_dim * t.single_core_k >= k
    assert t.m_dim * t.n_dim * t.k_dim <= soc.core_counts()[_cube_kind(soc)]


def test_socs_are_listed():
    """The tiling tests run against every shipped SoC descriptor (there are several)."""
    assert len(SOCS) >= 3


@pytest.mark.parametrize("name", SOCS)
def test_default_tiling_is_valid_everywhere(name):
    """The default heuristic returns a tiling that passes validation and fits every buffer, for
    every SoC, a range of shapes and each cube dtype pair, with and without bias."""
    soc = _soc(name)
    for (m, k, n), (din, dout), bias in itertools.product(SHAPES, _pairs(soc), (False, True)):
        if bias and "BT" not in soc.core(_cube_kind(soc)).buffers:
            continue
        t = default_matmul_tiling(m, k, n, din, dout, soc, with_bias=bias)
        validate_matmul_tiling(t, m, k, n, din, dout, soc, with_bias=bias)
        _assert_fits(t, m, k, n, din, soc, bias)


def test_default_reproduces_calibration_b3_tiling():
    """Row B3 (6144^3 fp16 -> fp32 on 910_9391): baseM/N/K 128/256/64, stepKa = stepKb = 4,
    double-buffered L1, singleCore 1536 x 1024 on a 4 x 6 grid."""
    soc = _soc("Ascend910_9391")
    t = default_matmul_tiling(6144, 6144, 6144, "float16", "float32", soc, trans_b=True)
    got = (t.base_m, t.base_n, t.base_k, t.step_ka, t.step_kb, t.depth_a1, t.depth_b1)
    assert got == (128, 256, 64, 4, 4, 2, 2)
    assert (t.m_dim, t.n_dim, t.single_core_m, t.single_core_n, t.single_core_k) == (
        4, 6, 1536, 1024, 6144)


def test_default_int8_base_k_is_128_bytes():
    """baseK is 128 B of input: 64 for fp16, 128 for int8 (when K allows)."""
    soc = _soc("Ascend910B2")
    assert default_matmul_tiling(2048, 2048, 2048, "int8", "int8", soc).base_k == 128
    assert default_matmul_tiling(2048, 2048, 2048, "float16", "float16", soc).base_k == 64


def test_default_uses_l2_swizzle_only_for_large_shapes():
    """Operands larger than half the L2 get the L2-aware block order; small ones row-major."""
    soc = _soc("Ascend910B2")
    big = default_matmul_tiling(10240, 10240, 10240, "float16", "float16", soc)
    small = default_matmul_tiling(1024, 1024, 1024, "float16", "float16", soc)
    assert big.block_order == "l2_swizzle" and big.swizzle >= 1
    assert small.block_order == "row_major"


def _b_row() -> MatmulTiling:
    return MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=1536,
                        single_core_n=1024, single_core_k=6144, m_dim=4, n_dim=6, step_ka=4,
                        step_kb=4, in_bits=16, out_bits=32)


def test_b_row_tiling_is_valid():
    """The tiling given in calibration rows B* is legal on 910_9391."""
    validate_matmul_tiling(_b_row(), 6144, 6144, 6144, "float16", "float32",
                           _soc("Ascend910_9391"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"base_m": 120}, "tiling.base_m"),
        ({"base_n": 250}, "tiling.base_n"),
        ({"base_k": 40}, "tiling.base_k"),
        ({"base_m": 0}, "tiling.base_m"),
        ({"db_l0c": True}, "tiling.db_l0c"),
        ({"base_m": 256, "base_n": 256}, "tiling.base_n"),
        ({"base_m": 512, "single_core_m": 1536}, "tiling.db_l0a"),
        ({"step_ka": 8, "step_kb": 8}, "tiling.step_ka"),
        ({"step_ka": 4, "step_kb": 3}, "tiling.step_ka"),
        ({"m_dim": 5}, "tiling.m_dim"),
        ({"single_core_m": 1024}, "tiling.single_core_m"),
        ({"m_dim": 5, "single_core_m": 1280}, "tiling.m_dim"),
        ({"in_bits": 8}, "tiling.in_bits"),
        ({"out_bits": 16}, "tiling.out_bits"),
        ({"block_order": "diagonal"}, "tiling.block_order"),
        ({"db_l0a": 1}, "tiling.db_l0a"),
        ({"base_m": 2048, "single_core_m": 1536}, "tiling.base_m"),
    ],
)
def test_invalid_tilings_name_the_field(change, field):
    """Each broken rule raises ValueError naming the offending tiling field."""
    t = replace(_b_row(), **change)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        validate_matmul_tiling(t, 6144, 6144, 6144, "float16", "float32", _soc("Ascend910_9391"))


def test_grid_larger_than_cores_is_rejected():
    """m_dim x n_dim may not exceed the cube cores of the SoC (20 AIC on 910B4)."""
    t = MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=1024, single_core_n=1024,
                     single_core_k=6144, m_dim=6, n_dim=6, step_ka=4, step_kb=4, in_bits=16,
                     out_bits=32)
    with pytest.raises(ValueError, match=r"tiling\.m_dim=6: .*20"):
        validate_matmul_tiling(t, 6144, 6144, 6144, "float16", "float32", _soc("Ascend910B4"))


def test_bias_table_limits_base_n():
    """With a bias the base N columns of fp32 must fit the 1 KiB bias table (base_n <= 256)."""
    soc = _soc("Ascend910B2")
    t = MatmulTiling(base_m=64, base_n=512, base_k=64, single_core_m=64, single_core_n=512,
                     single_core_k=64, in_bits=16, out_bits=16, db_l0a=False, db_l0b=False)
    validate_matmul_tiling(t, 64, 64, 512, "float16", "float16", soc)
    with pytest.raises(ValueError, match=r"tiling\.base_n=512: bias table"):
        validate_matmul_tiling(t, 64, 64, 512, "float16", "float16", soc, with_bias=True)


def test_validation_rejects_bad_arguments():
    """Non-tiling objects are TypeErrors; unknown dtypes and non-positive sizes ValueErrors."""
    soc = _soc("Ascend910B2")
    with pytest.raises(TypeError, match="tiling"):
        validate_matmul_tiling({"base_m": 16}, 16, 16, 16, "float16", "float16", soc)
    with pytest.raises(ValueError, match="in_dtype='float64'"):
        validate_matmul_tiling(_b_row(), 16, 16, 16, "float64", "float16", soc)
    with pytest.raises(ValueError, match="k=0"):
        default_matmul_tiling(16, 0, 16, "float16", "float16", soc)


@pytest.mark.parametrize("name", SOCS)
def test_enumeration_yields_only_valid_tilings(name):
    """Every enumerated tiling validates and fits the buffers; the space is not empty."""
    soc = _soc(name)
    for m, k, n in ((256, 512, 384), (40, 100, 24)):
        got = list(itertools.islice(
            enumerate_matmul_tilings(m, k, n, "float16", "float16", soc, with_bias=False), 400))
        assert got
        assert len(set(got)) == len(got)
        for t in got:
            validate_matmul_tiling(t, m, k, n, "float16", "float16", soc)
            _assert_fits(t, m, k, n, "float16", soc)


def test_enumeration_contains_the_b_row_tiling():
    """The legal space for 6144^3 contains the hand-tuned B-row tiling; ``bases`` restricts the
    base (M, N) pairs."""
    soc = _soc("Ascend910_9391")
    got = list(enumerate_matmul_tilings(6144, 6144, 6144, "float16", "float32", soc,
                                        bases=((128, 256),)))
    assert _b_row() in got
    assert {(t.base_m, t.base_n) for t in got} == {(128, 256)}


@pytest.mark.parametrize("order", ["row_major", "col_major", "l2_swizzle"])
def test_block_sequence_visits_each_block_once(order):
    """Every base block of a single-core block is visited exactly once, in the stated order."""
    t = replace(_b_row(), block_order=order, swizzle=3)
    seq = t.block_sequence(1000, 700)
    rows = list(range(0, 1000, 128))
    cols = list(range(0, 700, 256))
    assert sorted(seq) == sorted(itertools.product(rows, cols))
    if order == "row_major":
        assert seq[:3] == [(0, 0), (0, 256), (0, 512)]
    elif order == "col_major":
        assert seq[:3] == [(0, 0), (128, 0), (256, 0)]
    else:  # panels of 3 base rows, each column by column
        assert seq[:6] == [(0, 0), (128, 0), (256, 0), (0, 256), (128, 256), (256, 256)]


def test_ascendc_names_round_trip():
    """ascendc_fields uses Ascend C names (depthA1 counted in base blocks) and converts back."""
    t = replace(_b_row(), block_order="col_major")
    f = t.ascendc_fields()
    assert f["depthA1"] == 8 and f["depthB1"] == 8 and f["iterateOrder"] == 0
    assert f["usedCoreNum"] == 24
    back = tiling_from_dict({**f, "in_bits": 16, "out_bits": 32})
    assert back == t
    with pytest.raises(ValueError, match="unknown field 'bogus'"):
        tiling_from_dict({"bogus": 1})


def test_bits_are_derived_from_the_operand_dtypes_when_not_given():
    """in_bits / out_bits left None are filled from the call (int8 -> 8, fp32 out -> 32); a
    value given by hand must still agree with the dtypes."""
    import numpy as np

    from npusim import simulate

    soc = load_soc("Ascend910B2")
    t = MatmulTiling(base_m=64, base_n=64, base_k=64, single_core_m=64, single_core_n=64,
                     single_core_k=128)
    assert (t.in_bits, t.out_bits) == (None, None)
    validate_matmul_tiling(t, 64, 128, 64, "float16", "float32", soc)
    assert t.for_dtypes("int8", "float32").in_bits == 8
    a = np.ones((64, 128), np.float16)
    res = simulate("matmul", soc="Ascend910B2", tiling=t, a=a, b=np.ones((128, 64), np.float16),
                   out_dtype="float32")
    assert (res.tiling.in_bits, res.tiling.out_bits) == (16, 32)
    with pytest.raises(ValueError, match=r"tiling\.out_bits=16"):
        validate_matmul_tiling(replace(t, out_bits=16), 64, 128, 64, "float16",
                               "float32", soc)


def test_tiling_for_tiles_derives_the_grid_from_the_callers_tile_sizes():
    """My tiles (128 x 128 x 64), your grid: 1024 x 1024 has 8 x 8 base blocks; on 24 cube cores
    the fewest blocks per core is 3 (e.g. 8 x 3 cores, 1 x 3 blocks each); the result is legal
    and keeps the caller's base block and extra fields."""
    soc = load_soc("Ascend910B2")
    t = tiling_for_tiles(1024, 512, 1024, "float16", "float16", soc, base_m=128, base_n=128,
                         base_k=64, block_order="col_major")
    assert (t.base_m, t.base_n, t.base_k, t.block_order) == (128, 128, 64, "col_major")
    per_core = (-(-t.single_core_m // 128)) * (-(-t.single_core_n // 128))
    assert per_core == 3 and t.m_dim * t.n_dim <= 24
    assert t.m_dim * t.single_core_m >= 1024 and t.n_dim * t.single_core_n >= 1024
    validate_matmul_tiling(t, 1024, 512, 1024, "float16", "float16", soc)
    with pytest.raises(ValueError, match="base_m"):
        tiling_for_tiles(64, 64, 64, "float16", "float16", soc, base_m=24, base_n=64, base_k=64)
