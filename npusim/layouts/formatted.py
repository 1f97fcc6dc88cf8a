"""Arrays that carry torch_npu's storage format, so an NZ result can be fed to the next op.

A ``FormattedArray`` is the storage (what the device memory holds) plus ``npu_format`` and
``origin_shape`` (the logical ND shape torch_npu reports as ``.shape``). For ND the two shapes
agree; for FRACTAL_NZ the storage is (..., N1, M1, 16, C0) and must hold ``origin_shape``.
A slice or reshape that changes the storage shape is no longer a whole tensor: it comes out as a
plain ND-tagged array of its own shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACL_FORMAT_ND = 2
ACL_FORMAT_FRACTAL_NZ = 29
FORMAT_NAMES = {ACL_FORMAT_ND: "ND", ACL_FORMAT_FRACTAL_NZ: "FRACTAL_NZ"}


def check_npu_format(npu_format: Any, name: str = "npu_format") -> int:
    """``npu_format`` as an int, which must be 2 (ND) or 29 (FRACTAL_NZ)."""
    if isinstance(npu_format, bool) or not isinstance(npu_format, int | np.integer):
        raise TypeError(f"{name}: must be an int (2 = ND, 29 = FRACTAL_NZ), got {npu_format!r}")
    if int(npu_format) not in FORMAT_NAMES:
        raise ValueError(f"{name}: {npu_format!r} not supported; must be 2 (ND) or 29 "
                         "(FRACTAL_NZ)")
    return int(npu_format)


class FormattedArray(np.ndarray):
    """A numpy array (the storage) with ``npu_format`` (2 = ND, 29 = FRACTAL_NZ) and
    ``origin_shape`` (the logical ND shape)."""

    npu_format: int
    origin_shape: tuple[int, ...]

    def __new__(cls, storage: Any, npu_format: int, origin_shape: Any) -> FormattedArray:
        from npusim.layouts.nz import nz_storage_shape

        fmt = check_npu_format(npu_format)
        arr = np.asarray(storage)
        origin = tuple(int(s) for s in origin_shape)
        if fmt == ACL_FORMAT_ND and arr.shape != origin:
            raise ValueError(f"origin_shape: {origin} must equal the storage shape {arr.shape} "
                             "for ND")
        if fmt == ACL_FORMAT_FRACTAL_NZ and (
                arr.ndim < 4 or arr.shape != nz_storage_shape(origin, arr.shape[-1])):
            raise ValueError(f"origin_shape: {origin} is not held by the FRACTAL_NZ storage "
                             f"shape {arr.shape}")
        obj = arr.view(cls)
        obj.npu_format = fmt
        obj.origin_shape = origin
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        same = isinstance(obj, FormattedArray) and obj.shape == self.shape
        self.npu_format = obj.npu_format if same else ACL_FORMAT_ND
        self.origin_shape = obj.origin_shape if same else tuple(self.shape)

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self), separator=", ")
        return (f"FormattedArray({body}, npu_format={self.npu_format} "
                f"({FORMAT_NAMES[self.npu_format]}), origin_shape={self.origin_shape})")


def npu_format_of(x: Any) -> int:
    """The npu format of ``x``: its ``npu_format`` attribute, else 2 (ND)."""
    fmt = getattr(x, "npu_format", ACL_FORMAT_ND)
    return check_npu_format(fmt, "x.npu_format")


def origin_shape_of(x: Any) -> tuple[int, ...]:
    """The logical ND shape of ``x``: its ``origin_shape`` attribute, else its shape."""
    shape = getattr(x, "origin_shape", None)
    return tuple(int(s) for s in (np.shape(x) if shape is None else shape))
