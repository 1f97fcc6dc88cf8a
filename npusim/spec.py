"""Shape/dtype specs: stand-ins for arrays in timing-only runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A tensor described only by shape and dtype (no data): runs on it are timing-only."""

    shape: tuple[int, ...]
    dtype: str
    transposed: bool = False  # for weights: a transposed view of a contiguous (N, K) tensor
    npu_format: int = 2  # 2 = ND, 29 = FRACTAL_NZ

    def __post_init__(self) -> None:
        for i, d in enumerate(self.shape):
            if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 0:
                raise ValueError(f"spec: shape {self.shape} dim {i} = {d!r}; every dim must be "
                                 "an integer >= 0")

    @property
    def ndim(self) -> int:
        return len(self.shape)


def spec(shape: tuple[int, ...] | list[int], dtype: str, **kw: Any) -> TensorSpec:
    """Shorthand: ``spec((16, 4096), "float16")``. NumPy integers become ints; anything else
    (16.5, True, "16") goes to TensorSpec's check as given, so it is refused rather than
    truncated (a study's ``m: [16.5]`` ran as M = 16)."""
    return TensorSpec(tuple(int(s) if isinstance(s, np.integer) else s for s in shape),
                      str(dtype), **kw)


def is_spec(x: Any) -> bool:
    return isinstance(x, TensorSpec)


def require_nd(op: str, **tensors: Any) -> None:
    """Refuse a FRACTAL_NZ tensor (array or spec, ``npu_format`` 29) where ``op`` takes ND ones
    (it would otherwise read the NZ storage as if it were the logical tensor)."""
    for name, value in tensors.items():
        if getattr(value, "npu_format", 2) == 29:
            raise ValueError(f"{name}: a FRACTAL_NZ tensor (npu_format 29); {op} takes ND "
                             "tensors only (npu_format_cast(..., 2) first)")


def shape_dtype(x: Any) -> tuple[tuple[int, ...], str]:
    """(shape, dtype name) of an array or a spec."""
    if isinstance(x, TensorSpec):
        return x.shape, x.dtype
    arr = np.asarray(x)
    return tuple(arr.shape), str(arr.dtype)
