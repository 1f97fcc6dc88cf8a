"""npu_convert_weight_to_int4pack (seed 000, ops-semantics 2): packing, NZ input, masking,
errors and the host cost model."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.layouts import FormattedArray, nd_to_nz
from npusim.ops.int4pack import host_cost_model, int4pack, reference_int4pack, validate_int4pack


def _pack_oracle(rows: list[list[int]]) -> list[list[int]]:
    """Pure Python: word j of a row = sum of (v[8j+t] & 0xF) << 4t, as unsigned 32-bit."""
    return [[sum((r[8 * j + t] & 0xF) << (4 * t) for t in range(8)) for j in range(len(r) // 8)]
            for r in rows]


@pytest.mark.parametrize(
    "values,word",
    [
        ([0, 1, 2, 3, 4, 5, 6, 7], 1985229328),
        ([-8, -7, -6, -5, -4, -3, -2, -1], -19088744),
        ([-1, 0, 0, 0, 0, 0, 0, 0], 15),
        ([0, 0, 0, 0, 0, 0, 0, -8], -2147483648),
    ],
)
def test_worked_values_of_8_2(values, word):
    """ops-semantics 8.2: value t of each group of 8 in bits [4t, 4t+3], no interleave."""
    out = reference_int4pack(np.array([values], np.int32))
    assert out.dtype == np.int32 and out.tolist() == [[word]]


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 5), n8=st.integers(1, 4), data=st.data())
def test_nd_property(k, n8, data):
    """ND (k, n) int32 in [-8, 7] -> (k, n/8) int32 equal to the pure-Python packing."""
    rows = data.draw(st.lists(st.lists(st.integers(-8, 7), min_size=8 * n8, max_size=8 * n8),
                              min_size=k, max_size=k))
    out = reference_int4pack(np.array(rows, np.int32))
    assert out.shape == (k, n8) and out.view(np.uint32).tolist() == _pack_oracle(rows)


def test_transposed_weight_shape():
    """An (n, k) weight packs along its last dim: (n, k/8), as the seed documents."""
    w = np.arange(24 * 16, dtype=np.int32).reshape(24, 16) % 16 - 8
    assert int4pack(w).shape == (24, 2)


@pytest.mark.parametrize("k,n", [(20, 128), (16, 64), (33, 72), (7, 8)])
def test_nz_input_gives_nz_storage(k, n):
    """FRACTAL_NZ input is cast to ND, packed to (k, n/8) and re-tiled to NZ storage
    (ceil(n/64), ceil(k/16), 16, 8): packed[i, j] sits at [j // 8, i // 16, i % 16, j % 8] and
    the padding is zero; the result carries format 29 and origin (k, n/8)."""
    rng = np.random.default_rng(k * n)
    w = rng.integers(-8, 8, (k, n), dtype=np.int32)
    nz_in = FormattedArray(nd_to_nz(w), 29, (k, n))
    out = reference_int4pack(nz_in)
    assert isinstance(out, FormattedArray) and out.npu_format == 29
    assert out.origin_shape == (k, n // 8)
    assert out.shape == (math.ceil(n / 64), math.ceil(k / 16), 16, 8)
    packed = _pack_oracle(w.tolist())
    want = np.zeros(out.shape, np.uint32)
    for i in range(k):
        for j in range(n // 8):
            want[j // 8, i // 16, i % 16, j % 8] = packed[i][j]
    assert np.asarray(out).view(np.uint32).tobytes() == want.tobytes()


def test_out_of_range_raises_by_default():
    """Values outside [-8, 7] raise naming weight, the value and its index."""
    w = np.zeros((2, 8), np.int32)
    w[1, 3] = 9
    with pytest.raises(ValueError, match=r"weight: value 9 at index \(1, 3\) is outside"):
        reference_int4pack(w)


def test_emulated_masking_keeps_low_nibble():
    """emulate_hardware_masking=True reproduces the host loop's silent value & 0xF."""
    vals = [9, -9, 16, 255, -16, 7, 100, -100]
    out = reference_int4pack(np.array([vals], np.int32), emulate_hardware_masking=True)
    assert out.view(np.uint32).tolist() == _pack_oracle([vals])


def test_inner_k_tiles_is_ignored():
    """inner_k_tiles is reserved: any int gives the same result."""
    w = np.arange(16, dtype=np.int32).reshape(2, 8) - 8
    assert np.array_equal(int4pack(w, 0), int4pack(w, 8))


def test_inconsistent_nz_input_names_weight():
    """An NZ-tagged weight whose storage cannot hold its origin shape raises naming weight."""

    class Tagged(np.ndarray):
        npu_format = 29
        origin_shape = (40, 16)

    bad = np.zeros((1, 1, 16, 16), np.int32).view(Tagged)
    with pytest.raises(ValueError, match="weight: FRACTAL_NZ input is inconsistent"):
        reference_int4pack(bad)


def test_validate_returns_nd_weight():
    """validate_int4pack returns the ND weight and whether the input was NZ."""
    w = np.zeros((16, 8), np.int32)
    nd, was_nz = validate_int4pack(FormattedArray(nd_to_nz(w), 29, (16, 8)))
    assert nd.shape == (16, 8) and was_nz


@pytest.mark.parametrize(
    "weight,kwargs,exc,msg",
    [
        (np.zeros((2, 8), np.int64), {}, TypeError, "weight: dtype int64"),
        (np.zeros((2, 8), np.float32), {}, TypeError, "weight: dtype float32 .*Ascend950"),
        (np.zeros((2, 16), np.int32)[:, ::2], {}, ValueError, "weight: must be contiguous"),
        (np.zeros((2, 2, 8), np.int32), {}, ValueError, "weight: .* is 3-D"),
        (np.zeros(8, np.int32), {}, ValueError, "weight: .* must be 2-D"),
        (np.zeros((0, 8), np.int32), {}, ValueError, "weight: .* every dim must be > 0"),
        (np.zeros((2, 12), np.int32), {}, ValueError, "weight: last dim 12 must be a multiple"),
        (np.zeros((2, 8), np.int32), {"inner_k_tiles": 1.5}, TypeError, "inner_k_tiles: "),
        (np.zeros((2, 8), np.int32), {"inner_k_tiles": True}, TypeError, "inner_k_tiles: "),
        (np.zeros((2, 8), np.int32), {"emulate_hardware_masking": 1}, TypeError,
         "emulate_hardware_masking: must be a bool"),
    ],
)
def test_errors_name_the_argument(weight, kwargs, exc, msg):
    """Each seed 000 / ops-semantics 2.3 rule raises naming the argument and the rule."""
    with pytest.raises(exc, match=msg):
        reference_int4pack(weight, **kwargs)


def test_host_cost_model_is_host_work_with_stated_assumptions():
    """int4pack is host work: zero NPU time, copies of 4kn bytes down and kn/2 up, and a
    seconds figure labelled as uncalibrated assumptions."""
    c = host_cost_model(4096, 4096)
    assert c["npu_seconds"] == 0.0 and "host" in c["runs_on"]
    assert c["device_to_host_bytes"] == 4 * 4096 * 4096
    assert c["host_to_device_bytes"] == 4096 * 4096 // 2
    assert c["calibrated"] is False and "ASSUMPTIONS" in c["assumptions"]
    assert c["seconds"] == pytest.approx(c["copy_seconds"] + c["host_pack_seconds"])
    nz = host_cost_model(20, 128, nz_input=True)
    assert nz["host_to_device_bytes"] == 4 * 2 * 2 * 16 * 8 and nz["host_retile_seconds"] > 0
    assert "TransData" in nz["assumptions"]
    with pytest.raises(ValueError, match="n: 12 must be a multiple of 8"):
        host_cost_model(4, 12)
    with pytest.raises(ValueError, match="k: must be a positive int"):
        host_cost_model(0, 8)
