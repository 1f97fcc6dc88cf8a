"""FRACTAL_NZ layout (ops-semantics 1): C0 per dtype, storage shapes, element mapping, padding."""

import itertools
import math

import ml_dtypes
import numpy as np
import pytest

from npusim.layouts import nd_to_nz, nz_c0, nz_index, nz_storage_shape, nz_to_nd


def _expected_storage(nd: np.ndarray, c0: int) -> np.ndarray:
    """Oracle: place every element by the documented formula in a pure-Python loop
    (nz[..., n // C0, m // 16, m % 16, n % C0] = nd[..., m, n], zeros elsewhere)."""
    *batch, m_size, n_size = nd.shape
    out = np.zeros((*batch, math.ceil(n_size / c0), math.ceil(m_size / 16), 16, c0), nd.dtype)
    for b in itertools.product(*(range(d) for d in batch)):
        for m in range(m_size):
            for n in range(n_size):
                out[(*b, n // c0, m // 16, m % 16, n % c0)] = nd[(*b, m, n)]
    return out


@pytest.mark.parametrize(
    "dtype,c0",
    [
        (np.float16, 16),
        (ml_dtypes.bfloat16, 16),
        (np.float32, 16),
        (np.int32, 16),
        (np.int8, 32),
        ("float16", 16),
        ("bf16", 16),
        ("int8", 32),
        ("int4", 64),
        ("int32_int4", 8),
    ],
)
def test_c0_per_dtype(dtype, c0):
    """C0 = 32 bytes / min(itemsize, 2) (fp32 is tiled like fp16); int4 values 64; int32 words
    carrying int4 8."""
    assert nz_c0(dtype) == c0


@pytest.mark.parametrize(
    "shape,c0,storage",
    [
        ((40, 24), 16, (2, 3, 16, 16)),
        ((16, 16), 16, (1, 1, 16, 16)),
        ((17, 33), 32, (2, 2, 16, 32)),
        ((3, 5, 40, 24), 16, (3, 5, 2, 3, 16, 16)),
        ((20, 16), 8, (2, 2, 16, 8)),
        ((5,), 16, (1, 1, 16, 16)),  # 1-D (n,) is padded to (n, 1)
        ((40,), 16, (1, 3, 16, 16)),
        ((), 16, (1, 1, 16, 16)),  # 0-D is padded to (1, 1)
        ((0, 8), 16, (1, 0, 16, 16)),
    ],
)
def test_storage_shape(shape, c0, storage):
    """(..., M, N) -> (..., ceil(N/C0), ceil(M/16), 16, C0); 0-D / 1-D padded like torch_npu."""
    assert nz_storage_shape(shape, c0) == storage


@pytest.mark.parametrize(
    "dtype,c0,shape",
    [
        (np.float16, 16, (2, 35, 70)),
        (ml_dtypes.bfloat16, 16, (19, 16)),
        (np.float32, 16, (3, 2, 17, 20)),
        (np.int8, 32, (2, 33, 65)),
        (np.int8, 64, (2, 18, 130)),  # int4 values, one per int8
        (np.int32, 8, (21, 9)),  # int32 words carrying int4
        (np.int32, 16, (16, 16)),
    ],
)
def test_round_trip_mapping_and_padding_every_c0(dtype, c0, shape):
    """For every C0 (16, 32, 64 for int4, 8 for int32-int4), with batch dims and ragged edges:
    the storage equals the formula's placement (so padding is zero), ND -> NZ -> ND is the
    identity, and nz_index gives each element's flat offset inside its matrix and batch."""
    size = math.prod(shape)
    nd = (np.arange(size) % 113 + 1).astype(dtype).reshape(shape)
    z = nd_to_nz(nd, c0)
    want = _expected_storage(nd, c0)
    assert z.shape == want.shape == nz_storage_shape(shape, c0)
    assert z.tobytes() == want.tobytes()
    assert nz_to_nd(z, shape).tobytes() == nd.tobytes()
    *batch, rows, cols = shape
    flat = z.reshape(-1)
    batch_ix = list(itertools.product(*(range(d) for d in batch)))
    for k, b in enumerate(batch_ix):
        for m, n in ((0, 0), (rows - 1, cols - 1), (rows // 2, cols // 3), (min(15, rows - 1), 0)):
            off = nz_index(m, n, rows, c0, cols=cols, batch=k)
            assert flat[off] == nd[(*b, m, n)]


def test_nz_index_formula_values():
    """flat = ((n // C0) * M1 + m // 16) * 16 * C0 + (m % 16) * C0 + n % C0, M1 = ceil(M/16)."""
    assert nz_index(0, 0, 35, 16) == 0
    assert nz_index(0, 1, 35, 16) == 1
    assert nz_index(1, 0, 35, 16) == 16
    assert nz_index(16, 0, 35, 16) == 256
    assert nz_index(0, 16, 35, 16) == 3 * 256
    assert nz_index(34, 69, 35, 32) == ((69 // 32) * 3 + 2) * 512 + 2 * 32 + 69 % 32
    assert nz_index(5, 3, 20, 8, cols=16, batch=2) == 2 * (2 * 2 * 16 * 8) + 5 * 8 + 3


def test_default_c0_comes_from_dtype():
    """nd_to_nz without c0 uses the dtype's C0: int8 -> 32 columns per strip."""
    assert nd_to_nz(np.ones((3, 40), np.int8)).shape == (2, 1, 16, 32)
    assert nd_to_nz(np.ones((3, 40), np.float32)).shape == (3, 1, 16, 16)


def test_one_d_and_zero_d_round_trip():
    """A 1-D (n,) array is stored as the column (n, 1); 0-D as (1, 1); both come back."""
    v = np.arange(1, 21, dtype=np.float16)
    z = nd_to_nz(v)
    assert z.shape == (1, 2, 16, 16)
    assert z[0, 1, 3, 0] == v[19] and np.count_nonzero(z) == 20
    assert np.array_equal(nz_to_nd(z, (20,)), v)
    s = np.array(7, np.int32)
    assert nz_to_nd(nd_to_nz(s), ()).shape == () and int(nz_to_nd(nd_to_nz(s), ())) == 7


@pytest.mark.parametrize(
    "call,exc,msg",
    [
        (lambda: nz_c0(np.float64), TypeError, "dtype: "),
        (lambda: nz_c0(np.bool_), TypeError, "dtype: "),
        (lambda: nz_storage_shape((4, -1), 16), ValueError, "shape: "),
        (lambda: nz_storage_shape((4, 4), 0), ValueError, "c0: "),
        (lambda: nz_storage_shape((4, 4), 2.5), TypeError, "c0: "),
        (lambda: nz_to_nd(np.zeros((1, 1, 16, 16)), (20, 16)), ValueError, "nz: storage shape"),
        (lambda: nz_to_nd(np.zeros((16, 16)), (16, 16)), ValueError, "nz: storage shape"),
        (lambda: nz_index(16, 0, 16, 16), ValueError, "m: 16"),
        (lambda: nz_index(0, 20, 16, 16, cols=20), ValueError, "n: 20"),
        (lambda: nz_index(0, 0, 16, 16, batch=1), ValueError, "cols: "),
    ],
)
def test_errors_name_the_argument(call, exc, msg):
    """Bad dtypes, shapes, C0s, storage shapes and indices raise naming the argument."""
    with pytest.raises(exc, match=msg):
        call()
