"""Simulated memories for functional runs: one byte array per local buffer per core, and GM tensors.

Instruction semantics read and write typed numpy views of these bytes, so aliasing, ping-pong reuse
and stale data behave as on the device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from npusim.engine.errors import ProgramError
from npusim.engine.program import Kernel
from npusim.isa.operands import Region

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
        # atomic adds not yet applied, per GM tensor: (issuing core, region, data)
        self._pending: dict[str, list[tuple[int, Region, np.ndarray]]] = {}
        self._views: dict[tuple[int, int], tuple[Region, np.ndarray]] = {}  # see _view
        # instruction id -> (instruction, its runner): npusim.isa.compiled.execute_cached
        self.runners: dict[int, tuple[Any, Any]] = {}
        self.local: list[dict[str, np.ndarray]] = [
            {b: np.zeros(spec.capacity_bytes, dtype=np.uint8) for b, spec in d.buffers.items()}
            for d in core_descs
        ]

    def _bytes(self, r: Region) -> np.ndarray:
        return self.gm[_tensor_of(r)] if r.buffer == "GM" else self.local[self.core][r.buffer]

    def view(self, r: Region) -> np.ndarray:
        """A writable typed view of region ``r`` (2-D strided windows included); pending atomic
        adds into its GM tensor are applied first."""
        if r.buffer == "GM" and r.tensor in self._pending and not self.accumulate:
            self._apply_atomics(r.tensor)  # (an atomic add itself only asks for the shape)
        return self._view(r)

    def _view(self, r: Region) -> np.ndarray:
        """The typed view of ``r``, memoised per (core, region object): programs share their
        region objects and every buffer's byte array lives as long as the run, so a region's
        view on a core never changes (the cache keeps the region, so its id stays unique)."""
        key = (self.core if r.buffer != "GM" else -1, id(r))
        got = self._views.get(key)
        if got is not None and got[0] is r:
            return got[1]
        v = self._make_view(r)
        if len(self._views) < 1 << 17:
            self._views[key] = (r, v)
        return v

    def _make_view(self, r: Region) -> np.ndarray:
        raw = self._bytes(r)
        dt = np_dtype_of(r.dtype)
        shape = r.shape
        if r.dtype == "int4":
            shape = (*shape[:-1], (shape[-1] + 1) // 2) if shape else (1,)
        if r.row_stride_bytes is None:
            n = math.prod(shape) * dt.itemsize
            return raw[r.offset : r.offset + n].view(dt).reshape(shape)
        rows = shape[0]
        cols_bytes = math.prod(shape[1:]) * dt.itemsize
        stride = r.row_stride_bytes
        if rows > 0 and cols_bytes <= stride and r.offset + rows * stride <= raw.size:
            # the same window by slicing (a few times cheaper than as_strided): rows of
            # ``stride`` bytes, each cut to its first ``cols_bytes``
            win = raw[r.offset : r.offset + rows * stride].reshape(rows, stride)[:, :cols_bytes]
        else:
            win = as_strided(raw[r.offset :], shape=(rows, cols_bytes), strides=(stride, 1))
        return win.view(dt).reshape(shape)

    def read(self, r: Region) -> np.ndarray:
        return self.view(r).copy()

    def write(self, r: Region, data: np.ndarray) -> None:
        """Store ``data`` into ``r``. While ``accumulate`` is set (an atomic-add instruction) a GM
        destination gets ``+ data`` instead, rounded once to its dtype (int32 wraps).

        Declared model (``numerics.split_k_reduction_order: core_index_ascending``; the
        hardware's atomic order is not published): atomic adds into a GM tensor are held and
        applied in ascending issuing-core order (program order within a core) when the tensor
        is next read, so the result does not depend on which add completed first."""
        if self.accumulate and r.buffer == "GM":
            self._pending.setdefault(_tensor_of(r), []).append(
                (self.core, r, np.array(data, copy=True)))
            return
        v = self.view(r)
        arr = np.asarray(data)
        if arr.dtype != v.dtype:
            raise ProgramError(
                f"write of {arr.dtype} values into {r.buffer}@{r.offset} ({r.dtype}): a buffer "
                "stores the dtype its region declares (no implicit cast or reinterpretation)")
        v[...] = arr.reshape(v.shape)

    def _apply_atomics(self, tensor: str) -> None:
        for _core, r, data in sorted(self._pending.pop(tensor), key=lambda p: p[0]):
            self._add(r, data)

    def _add(self, r: Region, data: np.ndarray) -> None:
        """``r += data`` rounded once to r's dtype (RNE; int32 wraps)."""
        v = self._view(r)
        arr = np.asarray(data)
        if arr.dtype != v.dtype:
            raise ProgramError(
                f"atomic add of {arr.dtype} values into {r.buffer}@{r.offset} ({r.dtype}): the "
                "partials must be the destination's dtype")
        arr = arr.reshape(v.shape)
        if v.dtype.kind in "iu":
            v[...] = (v.astype(np.int64) + arr.astype(np.int64)).astype(v.dtype)  # wraps
            return
        from npusim.numerics import cast_float

        # the float64 sum of two fp32 / fp16 / bf16 values is exact, or (exponents more than 29
        # apart) off only far below half a target ulp, so one exact rounding of it is the
        # correctly rounded sum
        total = v.astype(np.float64) + arr.astype(np.float64)
        name = "bfloat16" if v.dtype.name == "bfloat16" else v.dtype.name
        v[...] = cast_float(total, name, "rint", saturate=False)

    def tensor(self, name: str) -> np.ndarray:
        if name in self._pending:
            self._apply_atomics(name)
        t = self.kernel.gm[name]
        dt = np_dtype_of(t.dtype)
        shape = t.shape
        if t.dtype == "int4":
            shape = (*shape[:-1], (shape[-1] + 1) // 2)
        return self.gm[name].view(dt).reshape(shape)

    def outputs(self) -> dict[str, np.ndarray]:
        return {n: self.tensor(n).copy() for n, t in self.kernel.gm.items() if t.role == "output"}


def _tensor_of(r: Region) -> str:
    """The GM tensor a GM region names (a GM region without one is a program error)."""
    if r.tensor is None:
        raise ProgramError(f"GM region at offset {r.offset} names no tensor")
    return r.tensor
