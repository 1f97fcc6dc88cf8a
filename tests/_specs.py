"""The TensorSpec a timing-only test run uses in place of an array (shared by the spec / array
parity and legal-combination tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.ops.matmul import last_two_transposed
from npusim.spec import spec


def spec_of(a: Any) -> Any:
    """The TensorSpec standing in for array ``a`` (logical shape; ND transposed views - by the
    operators' own rule, ``last_two_transposed`` - and
    FRACTAL_NZ arrays keep their layout flags); anything that is not an array unchanged."""
    if not isinstance(a, np.ndarray):
        return a
    dt = str(a.dtype)
    if getattr(a, "npu_format", 2) == 29:
        trans = bool(getattr(a, "npu_transposed", False))
        o = tuple(a.origin_shape)
        return spec((o[1], o[0]) if trans else o, dt, transposed=trans, npu_format=29)
    trans = a.ndim == 2 and last_two_transposed(a.shape, a.strides, a.itemsize)
    return spec(a.shape, dt, transposed=trans)
