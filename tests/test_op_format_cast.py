"""npu_format_cast ND (2) <-> FRACTAL_NZ (29) semantics (ops-semantics 1)."""

import ml_dtypes
import numpy as np
import pytest

from npusim.layouts import FormattedArray
from npusim.ops.format_cast import format_cast, reference_format_cast, validate_format_cast


@pytest.mark.parametrize(
    "dtype,shape,storage",
    [
        (np.float16, (40, 24), (2, 3, 16, 16)),
        (ml_dtypes.bfloat16, (17, 16), (1, 2, 16, 16)),
        (np.float32, (3, 20, 20), (3, 2, 2, 16, 16)),
        (np.int8, (16, 40), (2, 1, 16, 32)),
        (np.int32, (5,), (1, 1, 16, 16)),
    ],
)
def test_nd_to_nz_and_back(dtype, shape, storage):
    """ND -> NZ gives the torch_npu storage shape, format 29 and the origin shape; the element
    at (m, n) sits at [n // C0, m // 16, m % 16, n % C0]; NZ -> ND restores the bits."""
    x = (np.arange(int(np.prod(shape))) % 251 - 125).astype(dtype).reshape(shape)
    z = reference_format_cast(x, 29)
    assert isinstance(z, FormattedArray) and z.shape == storage
    assert z.npu_format == 29 and z.origin_shape == shape
    c0 = storage[-1]
    x2 = x.reshape(-1, 1) if x.ndim == 1 else x
    m, n = x2.shape[-2] - 1, x2.shape[-1] - 1
    assert z[(..., n // c0, m // 16, m % 16, n % c0)].tobytes() == x2[..., m, n].tobytes()
    back = reference_format_cast(z, 2)
    assert type(back) is np.ndarray and back.shape == shape
    assert back.tobytes() == x.tobytes()


def test_same_format_returns_the_input():
    """Casting to the format the tensor already has returns it unchanged (the same object)."""
    x = np.ones((4, 4), np.float16)
    assert format_cast(x, 2) is x
    z = format_cast(x, 29)
    assert format_cast(z, 29) is z


def test_validate_reports_source_and_target():
    """validate_format_cast returns (source format, target format)."""
    z = format_cast(np.ones((4, 4), np.float16), 29)
    assert validate_format_cast(z, 2) == (29, 2)
    assert validate_format_cast(np.ones(3, np.int8), np.int64(29)) == (2, 29)


@pytest.mark.parametrize(
    "x,fmt,exc,msg",
    [
        (np.ones((4, 4), np.float16), 3, ValueError, "acl_format: 3 not supported"),
        (np.ones((4, 4), np.float16), 0, ValueError, "acl_format: 0 not supported"),
        (np.ones((4, 4), np.float16), "29", TypeError, "acl_format: must be an int"),
        (np.ones((4, 4), np.float16), True, TypeError, "acl_format: must be an int"),
        (np.ones((4, 4), np.float64), 29, TypeError, "x: dtype float64"),
        (np.ones((4, 4), bool), 29, TypeError, "x: dtype bool"),
    ],
)
def test_errors_name_the_argument(x, fmt, exc, msg):
    """Only ND and FRACTAL_NZ, and only dtypes with a documented C0, are accepted."""
    with pytest.raises(exc, match=msg):
        reference_format_cast(x, fmt)


def test_tagged_storage_must_hold_origin():
    """An object tagged NZ whose storage cannot hold its origin shape is rejected."""

    class Tagged(np.ndarray):
        npu_format = 29
        origin_shape = (40, 16)

    bad = np.zeros((1, 1, 16, 16), np.float16).view(Tagged)
    with pytest.raises(ValueError, match="x: FRACTAL_NZ storage shape"):
        reference_format_cast(bad, 2)
