"""npu_trans_quant_param: float32 scale (+ offset) -> the uint64 FixPipe quant parameter (as int64).

Semantics (ops-semantics 3.1-3.2): per element, M1 = the scale's top 19 bits (round_mode 0
truncates, 1 rounds to nearest even), bit 46 set, offset rounded half-to-even, clamped to
[-256, 255] into bits 37..45. Shapes: scale (n,) or (1, n); offset (n,) or (1, n); with a 1-D
scale and an offset the output length is the larger of the two (a length-1 side broadcasts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.numerics import encode_quant_param


def _check_shape(name: str, a: np.ndarray) -> None:
    if not (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1)):
        raise ValueError(f"{name}: shape {a.shape} not supported; must be (n,) or (1, n)")
    if a.size == 0:
        raise ValueError(f"{name}: must not be empty")


def validate_trans_quant_param(scale: Any, offset: Any = None, round_mode: Any = 0
                               ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """Check dtypes, shapes and round_mode; return (scale, offset, output shape)."""
    if isinstance(round_mode, bool) or round_mode not in (0, 1):
        raise ValueError(f"round_mode: must be 0 or 1, got {round_mode!r}")
    s = np.asarray(scale)
    if s.dtype != np.float32:
        raise TypeError(f"scale: dtype {s.dtype} not supported; must be float32")
    _check_shape("scale", s)
    if offset is None:
        return s, None, s.shape
    o = np.asarray(offset)
    if o.dtype != np.float32:
        raise TypeError(f"offset: dtype {o.dtype} not supported; must be float32")
    _check_shape("offset", o)
    if s.ndim == 2:
        if o.shape != s.shape:
            raise ValueError(f"offset: shape {o.shape} must equal scale's {s.shape} when scale "
                             "is 2-D")
        return s, o, s.shape
    if s.size > 1 and o.size > 1 and s.size != o.size:
        raise ValueError(f"scale and offset: lengths {s.size} and {o.size} must be equal when "
                         "both are greater than 1")
    return s, o, (max(s.size, o.size),)


def trans_quant_param(scale: Any, offset: Any = None, round_mode: int = 0) -> np.ndarray:
    """The NPU's int64 output of ``npu_trans_quant_param`` (bit-exact, ops-semantics 3.2)."""
    s, o, shape = validate_trans_quant_param(scale, offset, round_mode)
    n = int(np.prod(shape))
    sf = np.broadcast_to(s.reshape(-1), (n,)) if s.size == 1 else s.reshape(-1)
    of = None
    if o is not None:
        of = np.broadcast_to(o.reshape(-1), (n,)) if o.size == 1 else o.reshape(-1)
        if sf.size == 1:
            sf = np.broadcast_to(sf, (n,))
    return encode_quant_param(sf, of, round_mode).reshape(shape)
