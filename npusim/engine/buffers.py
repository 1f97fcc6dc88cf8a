"""Simulated memories for functional runs: one byte array per local buffer per core, and GM tensors.

Instruction semantics read and write typed numpy views of these bytes, so aliasing, ping-pong reuse
and stale data behave as on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from npusim.engine.program import Kernel, Region

_NP = {
    "int4": np.uint8,  # packed two per byte; semantics unpack explicitly
    "int8": np.int8,
    "uint8": np.uint8,
    "float16": np.float16,
    "int16": np.int16,
    "float32": np.float32,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
}


def np_dtype_of(dtype: str) -> np.dtype:
    if dtype == "bfloat16":  # ml_dtypes is loaded only when a run needs bf16 values
        from npusim.numerics.dtypes import bf16

        return bf16()
    return np.dtype(_NP[dtype])


class FunctionalContext:
    """Byte-level storage behind every buffer; ``core`` is set by the engine before each call."""

    def __init__(self, kernel: Kernel, core_descs: list[Any]) -> None:
        self.kernel = kernel
        self.core = 0
        self.accumulate = False  # set by the engine while an atomic-add instruction completes
        self.gm: dict[str, np.ndarray] = {}
        for name, t in kernel.gm.items():
            raw = np.zeros(t.nbytes, dtype=np.uint8)
            if t.data is not None:
                src = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
                if src.size != t.nbytes:
                    raise ValueError(
                        f"GM tensor {name!r}: data has {src.size} bytes, declared {t.nbytes}"
                    )
                raw[:] = src
            self.gm[name] = raw
        self.local: list[dict[str, np.ndarray]] = [
            {b: np.zeros(spec.capacity_bytes, dtype=np.uint8) for b, spec in d.buffers.items()}
            for d in core_descs
        ]

    def _bytes(self, r: Region) -> np.ndarray:
        return self.gm[r.tensor] if r.buffer == "GM" else self.local[self.core][r.buffer]

    def view(self, r: Region) -> np.ndarray:
        """A writable typed view of region ``r`` (2-D strided windows included)."""
        raw = self._bytes(r)
        dt = np_dtype_of(r.dtype)
        shape = r.shape
        if r.dtype == "int4":
            shape = (*shape[:-1], (shape[-1] + 1) // 2) if shape else (1,)
        if r.row_stride_bytes is None:
            n = int(np.prod(shape)) * dt.itemsize
            return raw[r.offset : r.offset + n].view(dt).reshape(shape)
        rows = shape[0]
        cols_bytes = int(np.prod(shape[1:])) * dt.itemsize
        base = raw[r.offset :]
        win = as_strided(base, shape=(rows, cols_bytes), strides=(r.row_stride_bytes, 1))
        return win.view(dt).reshape(shape)

    def read(self, r: Region) -> np.ndarray:
        return self.view(r).copy()

    def write(self, r: Region, data: np.ndarray) -> None:
        """Store ``data`` into ``r``; while ``accumulate`` is set (an atomic-add instruction) a GM
        destination becomes old + data rounded once to its dtype (int32 wraps)."""
        v = self.view(r)
        arr = np.asarray(data)
        if self.accumulate and r.buffer == "GM":
            if arr.dtype != v.dtype and arr.dtype.itemsize == v.dtype.itemsize:
                arr = arr.view(v.dtype)
            if v.dtype.kind in "iu":
                total = v.astype(np.int64) + arr.reshape(v.shape).astype(np.int64)
                v[...] = total.astype(v.dtype)  # two's-complement wrap
            else:
                # float64 holds the sum of two fp32 / fp16 / bf16 values exactly, so this is one
                # rounding (bf16 goes via fp32 in ml_dtypes; an fp32 rounding of such a sum never
                # moves it across a bf16 rounding boundary)
                total = v.astype(np.float64) + arr.reshape(v.shape).astype(np.float64)
                v[...] = total.astype(v.dtype)
            return
        if arr.dtype != v.dtype:
            arr = (
                arr.view(v.dtype) if arr.dtype.itemsize == v.dtype.itemsize else arr.astype(v.dtype)
            )
        v[...] = arr.reshape(v.shape)

    def tensor(self, name: str) -> np.ndarray:
        t = self.kernel.gm[name]
        dt = np_dtype_of(t.dtype)
        shape = t.shape
        if t.dtype == "int4":
            shape = (*shape[:-1], (shape[-1] + 1) // 2)
        return self.gm[name].view(dt).reshape(shape)

    def outputs(self) -> dict[str, np.ndarray]:
        return {n: self.tensor(n).copy() for n, t in self.kernel.gm.items() if t.role == "output"}
