"""npu_group_quant: validation (seed 004, ops-semantics 4.1/4.4) and bit-exact reference (4.2/4.3).

y = saturate(RINT(fp32(x) * fp32(scale[group(row)]) (+ fp32 offset))), int8 or int4 packed 8 per
int32; group_index holds cumulative end rows (non-decreasing, last = rows; empty groups allowed).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class HardwareTrapError(RuntimeError):
    """What the device does with a bad group_index: an AI-core exception (trap), no message."""


FLOATS = ("float16", "bfloat16", "float32")


def dst_name(dst_dtype: Any) -> str:
    """int8 (default, also torch.qint8) or int4 (torch.quint4x2 / 'quint4x2' / 'int4')."""
    if dst_dtype is None:
        return "int8"
    s = str(dst_dtype).replace("torch.", "")
    if s in ("int8", "qint8"):
        return "int8"
    if s in ("quint4x2", "int4"):
        return "int4"
    raise ValueError(f"dst_dtype: {dst_dtype!r} must be int8 or quint4x2 (int4)")


def validate_group_quant(x: np.ndarray, scale: np.ndarray, group_index: np.ndarray,
                         offset: np.ndarray | None = None, dst_dtype: Any = None, *,
                         emulate_hardware_trap: bool = False) -> str:
    """Check every constraint; return the output kind ('int8' | 'int4')."""
    out = dst_name(dst_dtype)
    for name, a in (("x", x), ("scale", scale)):
        if a.dtype.name not in FLOATS:
            raise TypeError(f"{name}: dtype {a.dtype} must be one of {FLOATS}")
    if x.ndim != 2:
        raise ValueError(f"x: must be 2-D, got shape {x.shape}")
    if scale.ndim != 2 or scale.shape[0] == 0:
        raise ValueError(f"scale: must be 2-D with dim 0 >= 1, got shape {scale.shape}")
    if scale.shape[1] != x.shape[1]:
        raise ValueError(f"scale: dim 1 ({scale.shape[1]}) must equal x dim 1 ({x.shape[1]})")
    if group_index.dtype.name not in ("int32", "int64"):
        raise TypeError(f"group_index: dtype {group_index.dtype} must be int32 or int64")
    if group_index.ndim != 1 or group_index.shape[0] != scale.shape[0]:
        raise ValueError(f"group_index: must be 1-D of length scale.shape[0] = {scale.shape[0]}, "
                         f"got shape {group_index.shape}")
    if offset is not None:
        if offset.dtype != scale.dtype:
            raise TypeError(f"offset: dtype {offset.dtype} must equal scale's {scale.dtype}")
        if offset.size != 1 or offset.ndim > 1:
            raise ValueError(f"offset: must be a scalar or shape (1,), got shape {offset.shape}")
    if out == "int4" and x.shape[1] % 8:
        raise ValueError(f"x: last dim {x.shape[1]} must be divisible by 8 for quint4x2 output")
    gi = group_index.astype(np.int64)
    problem = None
    if np.any(gi < 0):
        problem = "has a negative value"
    elif np.any(gi > x.shape[0]):
        problem = f"has a value greater than the row count {x.shape[0]}"
    elif np.any(np.diff(gi) < 0):
        problem = "is not non-decreasing"
    elif gi[-1] != x.shape[0]:
        problem = f"ends at {gi[-1]}, not at the row count {x.shape[0]}"
    if problem:
        msg = f"group_index {gi.tolist()} {problem}"
        if emulate_hardware_trap:
            raise HardwareTrapError(f"AI-core exception (kernel trap) on the device: {msg}")
        raise ValueError(msg + " (must be non-decreasing cumulative end rows, >= 0, last = rows)")
    return out


def reference_group_quant(x: np.ndarray, scale: np.ndarray, group_index: np.ndarray,
                          offset: np.ndarray | None = None, dst_dtype: Any = None, *,
                          emulate_hardware_trap: bool = False) -> np.ndarray:
    """The NPU's output bits (int8, or int32 with 8 int4 values per word)."""
    from npusim.numerics import RoundMode, float_to_int, pack_int4

    out = validate_group_quant(x, scale, group_index, offset, dst_dtype,
                               emulate_hardware_trap=emulate_hardware_trap)
    grp = np.searchsorted(group_index.astype(np.int64), np.arange(x.shape[0]), side="right")
    v = x.astype(np.float32) * scale.astype(np.float32)[grp]
    if offset is not None:
        v = (v + offset.astype(np.float32).reshape(())).astype(np.float32)
    i32 = float_to_int(v, "int32", RoundMode.RINT)
    q = float_to_int(i32.astype(np.float16), out, RoundMode.RINT)  # exact below 2048, saturates
    return pack_int4(q) if out == "int4" else q
