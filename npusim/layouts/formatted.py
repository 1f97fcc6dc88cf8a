"""Arrays that carry torch_npu's storage format, so an NZ result can be fed to the next op.

A ``FormattedArray`` is the storage (what the device memory holds) plus ``npu_format`` and
``origin_shape`` (the logical ND shape torch_npu reports as ``.shape``). For ND the two shapes
agree; for FRACTAL_NZ the storage is (..., N1, M1, 16, C0) and must hold ``origin_shape``.
A slice or reshape that changes the storage shape is no longer a whole tensor: it comes out as a
plain ND-tagged array of its own shape. As in torch_npu, transposes of NZ storage are logical:
``.T`` / ``.mT`` / ``transpose`` / ``swapaxes`` of the last two logical dims give the same
storage flagged ``npu_transposed`` (``logical_shape`` swaps its last two dims) - what the
operators read as a transposed NZ operand; other permutations raise NotImplementedError.
"""

from __future__ import annotations

from typing import Any, SupportsIndex

import numpy as np

ACL_FORMAT_ND = 2
ACL_FORMAT_FRACTAL_NZ = 29
NZ_TRANSPOSED_ATTR = "npu_transposed"  # an NZ view of the origin matrix's transpose
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
        if same and getattr(obj, NZ_TRANSPOSED_ATTR, False):
            setattr(self, NZ_TRANSPOSED_ATTR, True)

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self), separator=", ")
        flag = ", transposed view" if getattr(self, NZ_TRANSPOSED_ATTR, False) else ""
        return (f"FormattedArray({body}, npu_format={self.npu_format} "
                f"({FORMAT_NAMES[self.npu_format]}), origin_shape={self.origin_shape}{flag})")

    # -- torch_npu's view rules for NZ: the logical shape, and transposes that keep the format --
    def _is_nz(self) -> bool:
        return self.npu_format == ACL_FORMAT_FRACTAL_NZ

    @property
    def logical_shape(self) -> tuple[int, ...]:
        """The shape torch_npu reports: ``origin_shape``, its last two dims swapped for a
        transposed view of NZ storage."""
        shape = self.origin_shape
        if self._is_nz() and getattr(self, NZ_TRANSPOSED_ATTR, False):
            return (*shape[:-2], shape[-1], shape[-2])
        return shape

    def _swapped_last_two(self) -> FormattedArray:
        """The same NZ storage seen as its logical last-two-dims transpose (torch_npu:
        ``w_nz.transpose(-1, -2)`` keeps the storage and its format)."""
        view = self.view(FormattedArray)
        setattr(view, NZ_TRANSPOSED_ATTR, not getattr(self, NZ_TRANSPOSED_ATTR, False))
        return view

    def _logical_permutation(self, axes: tuple[int, ...]) -> FormattedArray:
        n = len(self.origin_shape)
        if axes in ((None,), ()):
            axes = ()
        try:
            perm = tuple(range(n))[::-1] if not axes else tuple(
                int(a) % n for a in (axes[0] if len(axes) == 1 and
                                     not isinstance(axes[0], int | np.integer) else axes))
        except TypeError:
            raise TypeError(f"axes: {axes!r} must be ints") from None
        if sorted(perm) != list(range(n)):
            raise ValueError(f"axes: {axes!r} is not a permutation of {n} logical dims")
        if perm == tuple(range(n)):
            return self.view(FormattedArray)
        if n >= 2 and perm == (*range(n - 2), n - 1, n - 2):
            return self._swapped_last_two()
        raise NotImplementedError(
            f"transpose{axes!r} of a FRACTAL_NZ array: only the last-two-dims transpose keeps "
            "the NZ storage (as torch_npu); convert to ND first (npu_format_cast(x, 2))")

    def transpose(self, *axes: Any) -> Any:
        """NZ: a transposed view in logical dims (last two only); ND: numpy's transpose."""
        if not self._is_nz():  # numpy permutes a same-shape view in place: re-tag it
            return _nd_retagged(super().transpose(*axes))
        return self._logical_permutation(tuple(axes))

    @property
    def T(self) -> Any:
        return self.transpose()

    @property
    def mT(self) -> Any:
        """NZ: the last-two-dims transposed view; ND: numpy's ``mT``."""
        if not self._is_nz():
            return self.swapaxes(-1, -2)
        return self._swapped_last_two()

    def swapaxes(self, axis1: SupportsIndex, axis2: SupportsIndex) -> Any:
        if not self._is_nz():
            return _nd_retagged(super().swapaxes(axis1, axis2))
        n = len(self.origin_shape)
        perm = list(range(n))
        a, b = int(axis1) % n, int(axis2) % n
        perm[a], perm[b] = perm[b], perm[a]
        return self._logical_permutation(tuple(perm))


def _nd_retagged(out: Any) -> Any:
    """An ND FormattedArray view whose shape numpy changed in place, its origin its shape."""
    if isinstance(out, FormattedArray):
        out.origin_shape = tuple(out.shape)
    return out


def npu_format_of(x: Any) -> int:
    """The npu format of ``x``: its ``npu_format`` attribute, else 2 (ND)."""
    fmt = getattr(x, "npu_format", ACL_FORMAT_ND)
    return check_npu_format(fmt, "x.npu_format")


def origin_shape_of(x: Any) -> tuple[int, ...]:
    """The logical ND shape of ``x``: its ``origin_shape`` attribute, else its shape."""
    shape = getattr(x, "origin_shape", None)
    return tuple(int(s) for s in (np.shape(x) if shape is None else shape))
