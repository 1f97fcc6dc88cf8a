"""ND <-> FRACTAL_NZ as torch_npu stores it (ops-semantics 1).

storage = (..., ceil(N / C0), ceil(M / 16), 16, C0) for an ND (..., M, N);
nz[..., n // C0, m // 16, m % 16, n % C0] = nd[..., m, n], zero padded elsewhere.
C0 = 32 B / min(itemsize, 2): 16 for fp16 / bf16 / fp32 / int32, 32 for int8; explicit 64 for
int4 values and 8 for int32 carrying int4 (int4pack).
"""

from __future__ import annotations

import math

import numpy as np

C0_INT4 = 64
C0_INT32_INT4 = 8


def nz_c0(dtype: np.dtype | str) -> int:
    """torch_npu's C0 for a dtype (``"int4"`` and ``"int32_int4"`` name the packed cases)."""
    if dtype == "int4":
        return C0_INT4
    if dtype == "int32_int4":
        return C0_INT32_INT4
    from npusim.numerics import np_dtype

    size = np_dtype(dtype).itemsize if isinstance(dtype, str) else np.dtype(dtype).itemsize
    return 32 // min(size, 2)


def _as_2d(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape) if len(shape) >= 2 else ((*shape, 1) if shape else (1, 1))


def nz_storage_shape(shape: tuple[int, ...], c0: int) -> tuple[int, ...]:
    s = _as_2d(tuple(shape))
    *batch, m, n = s
    return (*batch, math.ceil(n / c0), math.ceil(m / 16), 16, c0)


def nz_index(m: int, n: int, rows: int, c0: int) -> int:
    """Flat offset of element (m, n) of a (rows, .) matrix in its NZ storage."""
    m1 = math.ceil(rows / 16)
    return (((n // c0) * m1 + m // 16) * 16 + m % 16) * c0 + n % c0


def nd_to_nz(x: np.ndarray, c0: int | None = None) -> np.ndarray:
    """The NZ storage array of ``x`` (zero padded)."""
    x = np.asarray(x)
    c0 = c0 or nz_c0(x.dtype)
    s = _as_2d(x.shape)
    x = x.reshape(s)
    *batch, m, n = s
    m1, n1 = math.ceil(m / 16), math.ceil(n / c0)
    pad = np.zeros((*batch, m1 * 16, n1 * c0), dtype=x.dtype)
    pad[..., :m, :n] = x
    t = pad.reshape(*batch, m1, 16, n1, c0)
    nb = len(batch)
    return np.ascontiguousarray(np.moveaxis(t, nb + 2, nb))


def nz_to_nd(nz: np.ndarray, origin_shape: tuple[int, ...]) -> np.ndarray:
    """The ND array of shape ``origin_shape`` stored in ``nz``."""
    nz = np.asarray(nz)
    s = _as_2d(tuple(origin_shape))
    *batch, m, n = s
    n1, m1, _, c0 = nz.shape[-4:]
    if nz.shape[-4:] != (math.ceil(n / c0), math.ceil(m / 16), 16, c0):
        raise ValueError(f"nz: storage shape {nz.shape} does not hold an ND {tuple(origin_shape)}"
                         f" with C0 = {c0}")
    nb = len(batch)
    t = np.moveaxis(nz, nb, nb + 2).reshape(*batch, m1 * 16, n1 * c0)
    return np.ascontiguousarray(t[..., :m, :n]).reshape(origin_shape)
