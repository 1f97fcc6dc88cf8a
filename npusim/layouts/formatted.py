"""Arrays that carry torch_npu's storage format, so an NZ result can be fed to the next op."""

from __future__ import annotations

import numpy as np

ACL_FORMAT_ND = 2
ACL_FORMAT_FRACTAL_NZ = 29


class FormattedArray(np.ndarray):
    """A numpy array (the storage) with ``npu_format`` (2 = ND, 29 = FRACTAL_NZ) and
    ``origin_shape`` (the logical ND shape)."""

    npu_format: int
    origin_shape: tuple[int, ...]

    def __new__(cls, storage: np.ndarray, npu_format: int, origin_shape: tuple[int, ...]
                ) -> FormattedArray:
        obj = np.asarray(storage).view(cls)
        obj.npu_format = int(npu_format)
        obj.origin_shape = tuple(int(s) for s in origin_shape)
        return obj

    def __array_finalize__(self, obj) -> None:
        self.npu_format = getattr(obj, "npu_format", ACL_FORMAT_ND)
        self.origin_shape = getattr(obj, "origin_shape", tuple(getattr(obj, "shape", ())))


def npu_format_of(x: object) -> int:
    return int(getattr(x, "npu_format", ACL_FORMAT_ND))
