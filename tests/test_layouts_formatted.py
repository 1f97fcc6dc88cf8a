"""FormattedArray: numpy storage that carries torch_npu's npu_format and origin shape."""

import numpy as np
import pytest

from npusim.layouts import (
    ACL_FORMAT_FRACTAL_NZ,
    ACL_FORMAT_ND,
    FormattedArray,
    nd_to_nz,
    npu_format_of,
    origin_shape_of,
)


def test_constants():
    """ACL format ids: ND = 2, FRACTAL_NZ = 29 (torch_npu's npu_format_cast codes)."""
    assert (ACL_FORMAT_ND, ACL_FORMAT_FRACTAL_NZ) == (2, 29)


def test_nz_array_carries_format_and_origin():
    """An NZ FormattedArray is its storage with npu_format 29 and the ND origin shape."""
    nd = np.arange(40 * 24, dtype=np.float16).reshape(40, 24)
    z = FormattedArray(nd_to_nz(nd), 29, (40, 24))
    assert isinstance(z, np.ndarray) and z.shape == (2, 3, 16, 16)
    assert z.npu_format == 29 and z.origin_shape == (40, 24)
    assert npu_format_of(z) == 29 and origin_shape_of(z) == (40, 24)
    assert "FRACTAL_NZ" in repr(z)


def test_same_shape_results_keep_the_format():
    """Whole-array copies and elementwise results keep the format; np.asarray drops it."""
    z = FormattedArray(nd_to_nz(np.ones((20, 16), np.int32)), 29, (20, 16))
    assert z.copy().npu_format == 29 and (z + 1).origin_shape == (20, 16)
    assert type(np.asarray(z)) is np.ndarray and npu_format_of(np.asarray(z)) == 2


def test_slices_are_plain_nd():
    """A slice or reshape of NZ storage is no longer a whole tensor: it is tagged ND with its
    own shape, so it can never be mistaken for NZ data of the old origin."""
    z = FormattedArray(nd_to_nz(np.ones((20, 16), np.int32)), 29, (20, 16))
    part = z[0]
    assert part.npu_format == 2 and part.origin_shape == part.shape
    flat = z.reshape(-1)
    assert flat.npu_format == 2 and flat.origin_shape == flat.shape


def test_plain_arrays_are_nd():
    """Arrays and lists without a format are ND with their own shape."""
    assert npu_format_of(np.zeros((3, 4))) == 2
    assert origin_shape_of(np.zeros((3, 4))) == (3, 4)
    assert FormattedArray(np.zeros((3, 4)), 2, (3, 4)).npu_format == 2


@pytest.mark.parametrize(
    "args,exc,msg",
    [
        ((np.zeros((3, 4)), 3, (3, 4)), ValueError, "npu_format: 3"),
        ((np.zeros((3, 4)), "29", (3, 4)), TypeError, "npu_format: must be an int"),
        ((np.zeros((3, 4)), 2, (4, 3)), ValueError, "origin_shape: "),
        ((np.zeros((1, 1, 16, 16)), 29, (20, 16)), ValueError, "origin_shape: "),
        ((np.zeros((16, 16)), 29, (16, 16)), ValueError, "origin_shape: "),
    ],
)
def test_construction_errors(args, exc, msg):
    """An unknown format, or storage that cannot hold origin_shape, raises naming the argument."""
    with pytest.raises(exc, match=msg):
        FormattedArray(*args)


def test_npu_format_of_rejects_bad_attribute():
    """An object tagged with an unknown format is reported, not silently treated as ND."""

    class Tagged:
        npu_format = 3

    with pytest.raises(ValueError, match=r"x\.npu_format: 3"):
        npu_format_of(Tagged())


def test_nz_transposes_are_logical_views():
    """torch_npu's rule: a transpose of NZ storage keeps the storage and its format; only the
    logical shape swaps. .T / .mT / transpose / swapaxes (methods and numpy functions) agree,
    a second transpose undoes the first, copies keep the flag; other permutations raise."""
    nd = np.arange(40 * 24, dtype=np.float16).reshape(40, 24)
    z = FormattedArray(nd_to_nz(nd), 29, (40, 24))
    views = [z.T, z.mT, z.transpose(), z.transpose(1, 0), z.transpose((-1, -2)),
             z.swapaxes(0, 1), np.transpose(z), np.swapaxes(z, -1, -2)]
    for t in views:
        assert t.npu_format == 29 and t.shape == z.shape and np.shares_memory(t, z)
        assert t.logical_shape == (24, 40) and t.npu_transposed and t.origin_shape == (40, 24)
        assert t.copy().logical_shape == (24, 40)
    back = z.T.T
    assert back.logical_shape == (40, 24) and not getattr(back, "npu_transposed", False)
    assert z.transpose(0, 1).logical_shape == (40, 24)
    b = FormattedArray(nd_to_nz(np.ones((2, 40, 24), np.float16)), 29, (2, 40, 24))
    assert b.mT.logical_shape == (2, 24, 40)
    with pytest.raises(NotImplementedError, match="last-two-dims"):
        b.transpose(1, 0, 2)
    with pytest.raises(ValueError, match="permutation"):
        z.transpose(0, 0)


def test_nd_formatted_arrays_transpose_as_numpy():
    """An ND FormattedArray's transposes are numpy's (its storage is its logical array)."""
    a = FormattedArray(np.arange(6).reshape(2, 3), 2, (2, 3))
    assert a.T.shape == (3, 2) and a.T.npu_format == 2 and a.T.origin_shape == (3, 2)


def test_transposed_nz_weight_is_read_as_its_logical_transpose():
    """The operators read ``w_nz.T`` as the transposed NZ operand (same bits as the explicit
    transpose_nz view, and as the ND transposed weight)."""
    from npusim.ops.weight_quant_batchmatmul import transpose_nz
    from npusim.torch_npu import npu_weight_quant_batchmatmul

    rng = np.random.default_rng(0)
    w_nk = rng.integers(-8, 8, (64, 128)).astype(np.int8)  # (N, K) stored NZ
    z = FormattedArray(nd_to_nz(w_nk), 29, (64, 128))
    x = rng.standard_normal((4, 128)).astype(np.float16)
    s = (rng.random(64) / 16).astype(np.float16)
    got = npu_weight_quant_batchmatmul(x, z.T, s)
    want = npu_weight_quant_batchmatmul(x, transpose_nz(z), s)
    nd = npu_weight_quant_batchmatmul(x, w_nk.T, s)
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))
    assert np.array_equal(got.view(np.uint16), nd.view(np.uint16))
