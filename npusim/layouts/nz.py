"""ND <-> FRACTAL_NZ exactly as torch_npu stores it (ops-semantics 1).

An ND array (..., M, N) is stored as (..., ceil(N / C0), ceil(M / 16), 16, C0):
``nz[..., n // C0, m // 16, m % 16, n % C0] = nd[..., m, n]``, zero padded elsewhere. The last
dim is cut into C0-wide column strips (outermost), each strip is a stack of 16 x C0 fractals along
M, and a fractal is row-major (one 32-byte row of C0 elements per m).

C0 follows torch_npu's ``InferShapeNDToNZ``: 32 bytes / min(itemsize, 2) ("float32 will cast to
float16"), so 16 for fp16 / bf16 / fp32 / int32 and 32 for int8. Packed int4 data has explicit C0s:
64 int4 values per fractal row, or 8 int32 words carrying them (npu_convert_weight_to_int4pack).
0-D and 1-D shapes are first padded to 2-D as torch_npu does: () -> (1, 1), (n,) -> (n, 1).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

FRACTAL_ROWS = 16
BLOCK_BYTES = 32
C0_INT4 = 64
C0_INT32_INT4 = 8

# names of the packed-int4 cases, which numpy has no dtype for
_PACKED_C0 = {"int4": C0_INT4, "int32_int4": C0_INT32_INT4}


def _dtype_of(dtype: Any) -> np.dtype:
    """numpy dtype of a numpy dtype / type, a name ('float16', 'bf16', ...) or a torch dtype."""
    from npusim.numerics import np_dtype

    if isinstance(dtype, str) or type(dtype).__module__.startswith("torch"):
        name = str(dtype).removeprefix("torch.")
        return np_dtype(name)
    return np_dtype(dtype)


def nz_c0(dtype: Any) -> int:
    """torch_npu's C0 (elements per fractal row) for ``dtype``.

    ``dtype`` is a numpy dtype, a dtype name or a torch dtype; the strings ``"int4"`` (C0 = 64)
    and ``"int32_int4"`` (int32 words carrying int4, C0 = 8) name the packed cases."""
    if isinstance(dtype, str) and dtype in _PACKED_C0:
        return _PACKED_C0[dtype]
    try:
        dt = _dtype_of(dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"dtype: {dtype!r} has no FRACTAL_NZ C0 rule ({exc}); use a numeric "
                        f"dtype or one of {sorted(_PACKED_C0)}") from None
    return BLOCK_BYTES // min(dt.itemsize, 2)


def _check_c0(c0: Any) -> int:
    try:
        value = operator.index(c0)
    except TypeError:
        raise TypeError(f"c0: must be an int, got {c0!r}") from None
    if isinstance(c0, bool) or value <= 0:
        raise ValueError(f"c0: must be a positive int, got {c0!r}")
    return value


def _check_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"{name}: must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{name}: {dims} has a negative dim; dims must be >= 0")
    return dims


def _as_2d(shape: tuple[int, ...]) -> tuple[int, ...]:
    """torch_npu pads 0-D to (1, 1) and 1-D (n,) to (n, 1) before tiling."""
    if len(shape) >= 2:
        return shape
    return (*shape, 1) if shape else (1, 1)


def nz_storage_shape(shape: Any, c0: int) -> tuple[int, ...]:
    """Storage shape (..., ceil(N / c0), ceil(M / 16), 16, c0) of an ND ``shape`` (..., M, N)."""
    *batch, m, n = _as_2d(_check_shape(shape))
    c0 = _check_c0(c0)
    return (*batch, math.ceil(n / c0), math.ceil(m / FRACTAL_ROWS), FRACTAL_ROWS, c0)


def nz_index(m: int, n: int, rows: int, c0: int, *, cols: int | None = None,
             batch: int = 0) -> int:
    """Flat storage offset of element (m, n) of a (rows, cols) matrix stored FRACTAL_NZ.

    ``((n // c0) * M1 + m // 16) * 16 * c0 + (m % 16) * c0 + n % c0`` with M1 = ceil(rows / 16);
    for a batch of matrices, ``batch`` selects the matrix and ``cols`` (needed then) gives N."""
    m, n, rows, c0 = (operator.index(v) for v in (m, n, rows, _check_c0(c0)))
    if not 0 <= m < rows:
        raise ValueError(f"m: {m} must be in [0, rows={rows})")
    if n < 0 or (cols is not None and n >= cols):
        raise ValueError(f"n: {n} must be in [0, cols={cols})")
    m1 = math.ceil(rows / FRACTAL_ROWS)
    offset = ((n // c0) * m1 + m // FRACTAL_ROWS) * FRACTAL_ROWS * c0 + (m % FRACTAL_ROWS) * c0
    offset += n % c0
    if batch:
        if cols is None:
            raise ValueError(f"cols: needed with batch={batch} (the matrix stride depends on N)")
        offset += operator.index(batch) * math.ceil(cols / c0) * m1 * FRACTAL_ROWS * c0
    return offset


def nd_to_nz(x: Any, c0: int | None = None) -> np.ndarray:
    """The zero-padded FRACTAL_NZ storage of ``x`` (C0 from its dtype unless given)."""
    x = np.asarray(x)
    c0 = nz_c0(x.dtype) if c0 is None else _check_c0(c0)
    shape = _as_2d(x.shape)
    x = x.reshape(shape)
    *batch, m, n = shape
    m1, n1 = math.ceil(m / FRACTAL_ROWS), math.ceil(n / c0)
    padded = np.zeros((*batch, m1 * FRACTAL_ROWS, n1 * c0), dtype=x.dtype)
    padded[..., :m, :n] = x
    tiles = padded.reshape(*batch, m1, FRACTAL_ROWS, n1, c0)
    nb = len(batch)
    return np.ascontiguousarray(np.moveaxis(tiles, nb + 2, nb))


def nz_to_nd(nz: Any, origin_shape: Any) -> np.ndarray:
    """The ND array of shape ``origin_shape`` held in the FRACTAL_NZ storage ``nz``."""
    nz = np.asarray(nz)
    origin = _check_shape(origin_shape, "origin_shape")
    if nz.ndim < 4:
        raise ValueError(f"nz: storage shape {nz.shape} is not FRACTAL_NZ (needs >= 4 dims)")
    c0 = nz.shape[-1]
    want = nz_storage_shape(origin, c0)
    if nz.shape != want:
        raise ValueError(f"nz: storage shape {nz.shape} does not hold an ND {origin} with "
                         f"C0 = {c0}; expected {want}")
    *batch, m, n = _as_2d(origin)
    nb = len(batch)
    n1, m1 = nz.shape[nb], nz.shape[nb + 1]
    rows = np.moveaxis(nz, nb, nb + 2).reshape(*batch, m1 * FRACTAL_ROWS, n1 * c0)
    return np.ascontiguousarray(rows[..., :m, :n]).reshape(origin)
