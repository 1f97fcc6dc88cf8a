"""npu_trans_quant_param (seed 003, ops-semantics 3): float32 scale (+ offset) -> the uint64
FixPipe quant parameter, returned as int64.

Per element (3.2): bits 31..13 = the scale's top 19 bits (round_mode 0 truncates, 1 rounds to
nearest even), bit 46 = 1 (signed int8 output), bits 45..37 = the offset rounded half-to-even and
clamped to [-256, 255] (0 without offset); every other bit 0.

Shapes (3.1 and the seed): scale (n,) or (1, n); offset (n,) or (1, n). Without offset the output
has scale's shape. With a 2-D scale the offset must have the same shape. With a 1-D scale the
output is op-plugin's ``scale.shape if scale.size(0) > offset.size(0) else offset.shape`` and a
length-1 side broadcasts; two lengths > 1 must be equal. Empty tensors and NaN / Inf values are
rejected (the aclnn doc: "users must ensure there is no NaN or Inf").
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np


def _check_round_mode(round_mode: Any) -> int:
    if round_mode is None:  # yaml: int? round_mode=0
        return 0
    try:
        mode = operator.index(round_mode)
    except TypeError:
        raise TypeError(f"round_mode: must be an int (0 or 1), got {round_mode!r}") from None
    if isinstance(round_mode, bool) or mode not in (0, 1):
        raise ValueError(f"round_mode: must be 0 or 1, got {round_mode!r} (0 = truncate the "
                         "scale to 19 bits, 1 = round to nearest even)")
    return mode


def check_shape_dtype(name: str, shape: tuple[int, ...], dtype: Any) -> None:
    """The dtype and shape rules of ``scale`` / ``offset``, shared by array and spec calls."""
    if str(dtype) != "float32":
        raise TypeError(f"{name}: dtype {dtype} not supported; must be float32")
    if len(shape) == 2 and shape[0] != 1:
        raise ValueError(f"{name}: shape {shape} not supported; must be (n,) or (1, n) "
                         "((g, n) exists only on Ascend950)")
    if len(shape) not in (1, 2):
        raise ValueError(f"{name}: shape {shape} not supported; must be (n,) or (1, n)")
    if 0 in shape:
        raise ValueError(f"{name}: shape {shape} is empty; empty tensors are not supported")


def _check_tensor(name: str, value: Any) -> np.ndarray:
    a = np.asarray(value)
    check_shape_dtype(name, a.shape, a.dtype)
    bad = ~np.isfinite(a)
    if np.any(bad):
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise ValueError(f"{name}: value {a[idx]} at index {idx} is not finite; the aclnn "
                         "contract requires no NaN or Inf")
    return a


def validate_trans_quant_param(scale: Any, offset: Any = None, round_mode: Any = 0
                               ) -> tuple[np.ndarray, np.ndarray | None, int, tuple[int, ...]]:
    """Check dtypes, shapes, values and round_mode; return (scale, offset, round_mode, output
    shape)."""
    mode = _check_round_mode(round_mode)
    s = _check_tensor("scale", scale)
    if offset is None:
        return s, None, mode, s.shape
    o = _check_tensor("offset", offset)
    if s.ndim == 2:
        if o.shape != s.shape:
            raise ValueError(f"offset: shape {o.shape} must equal scale's {s.shape} when scale "
                             "is 2-D (seed 003)")
        return s, o, mode, s.shape
    if s.size > 1 and o.size > 1 and s.size != o.size:
        raise ValueError(f"offset: scale and offset lengths {s.size} and {o.size} must be "
                         "equal when both are greater than 1")
    return s, o, mode, (s.shape if s.shape[0] > o.shape[0] else o.shape)


def reference_trans_quant_param(scale: Any, offset: Any = None, round_mode: Any = 0
                                ) -> np.ndarray:
    """The NPU's int64 output of ``npu_trans_quant_param`` (bit-exact, ops-semantics 3.2)."""
    from npusim.numerics import encode_quant_param

    s, o, mode, shape = validate_trans_quant_param(scale, offset, round_mode)
    count = max(s.size, 1 if o is None else o.size)
    s_flat = np.broadcast_to(s.reshape(-1), (count,))
    o_flat = None if o is None else np.broadcast_to(o.reshape(-1), (count,))
    return encode_quant_param(s_flat, o_flat, mode).reshape(shape)


trans_quant_param = reference_trans_quant_param
