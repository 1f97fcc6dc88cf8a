"""npu_group_quant (seed 004, ops-semantics 4): validation and the bit-exact reference.

x (S, H) is quantised row by row with the scale row of the row's group; ``group_index`` (E,)
holds cumulative end rows (row r belongs to group e where group_index[e-1] <= r <
group_index[e], group_index[-1] = 0; empty groups allowed). Per element (4.2):

    v = fp32(x) * fp32(scale[e])        fp32 multiply, round to nearest even
    v = v + fp32(offset)                (if offset; one scalar, same dtype as scale)
    i = Cast(v -> int32, RINT)          saturating, NaN -> 0
    h = Cast(i -> half)                 exact for |i| <= 2048
    y = Cast(h -> int8 | int4, RINT)    saturating

int8 output has x's shape; quint4x2 output is int32 (S, H/8) with y[8j+t] in bits [4t, 4t+3].

Bad ``group_index`` values (negative, above S, decreasing, last != S) are caught on the device
by the kernel, which traps (an AI-core exception with no message). By default they raise
ValueError here with the rule; ``emulate_hardware_trap=True`` raises ``HardwareTrapError``
instead, as the device would. E == 0 is rejected by aclnn on the host (before any kernel), so
it is a ValueError in both modes; an empty x returns at once on the device (no kernel runs), so
with ``emulate_hardware_trap=True`` it never traps.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np

FLOAT_DTYPES = ("float16", "bfloat16", "float32")
INDEX_DTYPES = ("int32", "int64")


class HardwareTrapError(RuntimeError):
    """The device's answer to a bad group_index: the group_quant kernel traps (AI-core
    exception, the stream fails without a message). Raised only with emulate_hardware_trap."""


def _dtype_name(dtype: Any) -> str | None:
    """'int8' / 'qint8' / 'quint4x2' ... for a string, numpy dtype or torch dtype."""
    if isinstance(dtype, str):
        return dtype.removeprefix("torch.")
    if type(dtype).__module__.startswith("torch"):
        return str(dtype).removeprefix("torch.")
    try:
        return cast(str, np.dtype(dtype).name)
    except TypeError:
        return None


def dst_dtype_kind(dst_dtype: Any) -> Literal["int8", "int4"]:
    """op-plugin's ``npu_group_quant_dst_type``: None, int8 and qint8 -> int8; quint4x2 (also
    spelled 'int4') -> int4 packed in int32. Anything else raises."""
    if dst_dtype is None:
        return "int8"
    name = _dtype_name(dst_dtype)
    if name in ("int8", "qint8"):
        return "int8"
    if name in ("quint4x2", "int4"):
        return "int4"
    raise ValueError(f"dst_dtype: {dst_dtype!r} not supported; must be int8 (torch.int8 / "
                     "torch.qint8) or torch.quint4x2")


dst_name = dst_dtype_kind


def _float_tensor(name: str, value: Any) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.name not in FLOAT_DTYPES:
        raise TypeError(f"{name}: dtype {a.dtype} not supported; must be one of {FLOAT_DTYPES}")
    return a


def _group_index_problem(gi: np.ndarray, rows: int) -> str | None:
    """The first kernel-time rule that ``gi`` breaks, or None (CheckGrpIdx* in the kernel)."""
    neg = np.nonzero(gi < 0)[0]
    if neg.size:
        return f"has a negative value {int(gi[neg[0]])} at index {int(neg[0])} (must be >= 0)"
    big = np.nonzero(gi > rows)[0]
    if big.size:
        return (f"has a value {int(gi[big[0]])} at index {int(big[0])} greater than the row "
                f"count {rows}")
    down = np.nonzero(np.diff(gi) < 0)[0]
    if down.size:
        i = int(down[0])
        return (f"is not non-decreasing: {int(gi[i])} at index {i} is followed by "
                f"{int(gi[i + 1])}")
    if int(gi[-1]) != rows:
        return f"ends at {int(gi[-1])}, not at the row count {rows} (last value must equal S)"
    return None


def validate_group_quant(x: Any, scale: Any, group_index: Any, offset: Any = None,
                         dst_dtype: Any = None, *, emulate_hardware_trap: bool = False
                         ) -> Literal["int8", "int4"]:
    """Check every seed 004 / ops-semantics 4.1 and 4.4 rule; return the output kind."""
    if not isinstance(emulate_hardware_trap, bool | np.bool_):
        raise TypeError(f"emulate_hardware_trap: must be a bool, got {emulate_hardware_trap!r}")
    kind = dst_dtype_kind(dst_dtype)
    xa = _float_tensor("x", x)
    sa = _float_tensor("scale", scale)
    gi = np.asarray(group_index)
    if gi.dtype.name not in INDEX_DTYPES:
        raise TypeError(f"group_index: dtype {gi.dtype} not supported; must be int32 or int64")
    if offset is not None:
        oa = _float_tensor("offset", offset)
        if oa.dtype != sa.dtype:
            raise TypeError(f"offset: dtype {oa.dtype} must equal scale's dtype {sa.dtype}")
        if oa.size != 1 or oa.ndim > 1:
            raise ValueError(f"offset: must be a scalar or shape (1,), got shape {oa.shape}")
    if xa.ndim != 2:
        raise ValueError(f"x: must be 2-D (S, H), got shape {xa.shape}")
    if sa.ndim != 2:
        raise ValueError(f"scale: must be 2-D (E, H), got shape {sa.shape}")
    if gi.ndim != 1:
        raise ValueError(f"group_index: must be 1-D (E,), got shape {gi.shape}")
    if sa.shape[1] != xa.shape[1]:
        raise ValueError(f"scale: dim 1 ({sa.shape[1]}) must equal x dim 1 ({xa.shape[1]})")
    if gi.shape[0] != sa.shape[0]:
        raise ValueError(f"group_index: length {gi.shape[0]} must equal scale dim 0 "
                         f"({sa.shape[0]})")
    if sa.shape[0] == 0:
        raise ValueError(f"scale: shape {sa.shape} has dim 0 = 0; there must be at least one "
                         "group (E >= 1)")
    if kind == "int4" and xa.shape[1] % 8:
        raise ValueError(f"x: last dim {xa.shape[1]} must be divisible by 8 for quint4x2 "
                         "output")
    problem = _group_index_problem(gi.astype(np.int64), xa.shape[0])
    if problem is None:
        return kind
    if emulate_hardware_trap:
        if xa.size == 0:
            return kind  # aclnn returns before launching the kernel: nothing traps
        raise HardwareTrapError(
            f"AI-core exception: the group_quant kernel traps on group_index "
            f"{gi.tolist()} (it {problem}); the device reports no message")
    raise ValueError(f"group_index: {gi.tolist()} {problem}; must be non-decreasing cumulative "
                     "end rows, >= 0, ending at the row count of x")


def reference_group_quant(x: Any, scale: Any, group_index: Any, offset: Any = None,
                          dst_dtype: Any = None, *, emulate_hardware_trap: bool = False
                          ) -> np.ndarray:
    """The NPU's output bits: int8 (S, H), or int32 (S, H/8) with 8 int4 values per word."""
    from npusim.numerics import RoundMode, cast_float, float_to_int, pack_int4

    kind = validate_group_quant(x, scale, group_index, offset, dst_dtype,
                                emulate_hardware_trap=emulate_hardware_trap)
    xa, sa = np.asarray(x), np.asarray(scale)
    rows = xa.shape[0]
    ends = np.asarray(group_index).astype(np.int64)
    group = np.searchsorted(ends, np.arange(rows), side="right")
    with np.errstate(over="ignore", invalid="ignore"):
        v = xa.astype(np.float32) * sa.astype(np.float32)[np.minimum(group, len(ends) - 1)]
        if offset is not None:
            v = v + np.asarray(offset).astype(np.float32).reshape(())
    i32 = float_to_int(v, "int32", RoundMode.RINT)
    h16 = cast_float(i32, "float16", RoundMode.RINT, saturate=True)
    y = float_to_int(h16, "int4" if kind == "int4" else "int8", RoundMode.RINT)
    return pack_int4(y) if kind == "int4" else y
