"""The L0C -> UB DataCopy with on-the-fly dequantisation of the Atlas inference series (310P AI
Core): ``DataCopyEnhancedParams.deqScale`` = DEQ16 / VDEQ16 (int32 -> half) and DEQ8 / VDEQ8
(int32 -> int8).

Published (asc-devkit, "L0C Buffer到UB数据搬运（DataCopy）", tables 5 and 6): each 64-bit
parameter holds M in bits 0..31 read *as a whole float32* (not the 19 bits FixPipe uses), the
shift N in bits 32..35, the mode control bit (MCB) 36 (0: the int32 is converted to float
directly), a 9-bit offset in bits 37..45 added after ``src * M`` (DEQ8 / VDEQ8 only), the sign
bit 46 (1: signed int8 result; DEQ8 / VDEQ8 only) and ReLU bit 47. DEQ16 / DEQ8 take one
parameter (deqValue), VDEQ16 / VDEQ8 one per column (16 per 16-column block, from UB).

Not published: the rounding of ``float(int32)``, of the product and of the final conversion,
and (DEQ8) whether the value is clamped to 9 bits before the offset. Declared model
(``numerics.l0c_to_ub_dequant.model = fixpipe_equivalent`` in the 310P descriptor): the same
chain as the A2 FixPipe models in :mod:`npusim.numerics.fixpipe` - DEQ16: fp16(fp32(acc) * M),
both RNE, saturating; DEQ8: clip(clip(rint(fp32(acc) * M), -256, 255) + offset, -128, 127).
Parameters this model does not cover (MCB / shift set, ReLU set, bit 46 = 0 for int8 output)
raise NotImplementedError; ``npu_trans_quant_param`` never sets them.
"""

from __future__ import annotations

import numpy as np

from npusim.numerics.fixpipe import deqf16, requant_int8

#: the DataCopy deqScale modes modelled (scalar parameter / one parameter per column)
MODES = ("DEQ16", "VDEQ16", "DEQ8", "VDEQ8")
#: the only declared model (descriptor ``numerics.l0c_to_ub_dequant.model``)
MODEL = "fixpipe_equivalent"


def _fields(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M as float32, sign-extended 9-bit offset, signed flag) of int64 / uint64 parameters;
    refuses the fields the model does not cover."""
    arr = np.asarray(params)
    if arr.dtype not in (np.int64, np.uint64):
        raise TypeError(f"params: dtype {arr.dtype} is not int64 or uint64 (a deq parameter)")
    u = np.ascontiguousarray(arr).view(np.uint64)
    if np.any((u >> np.uint64(32)) & np.uint64(0x1F)):
        raise NotImplementedError(
            "L0C -> UB dequant: a parameter with a shift N (bits 32..35) or the mode control bit "
            "(bit 36) set is not modelled (npu_trans_quant_param leaves them 0)")
    if np.any((u >> np.uint64(47)) & np.uint64(1)):
        raise NotImplementedError(
            "L0C -> UB dequant: a parameter with the ReLU bit (47) set is not modelled")
    m = (u & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    off = ((u >> np.uint64(37)) & np.uint64(0x1FF)).astype(np.int32)
    off = np.where(off >= 256, off - 512, off).astype(np.int32)
    return m, off, ((u >> np.uint64(46)) & np.uint64(1)) == 1


def l0c_to_ub_dequant(acc: np.ndarray, params: np.ndarray, out_dtype: str) -> np.ndarray:
    """The UB tile a DEQ16 / VDEQ16 (``out_dtype`` float16) or DEQ8 / VDEQ8 (int8) L0C -> UB copy
    writes from the int32 tile ``acc``; ``params`` is one parameter (shape (1,) or ()) or one per
    column of ``acc`` (along the last axis). Declared model: see the module docstring."""
    a = np.asarray(acc)
    if a.dtype != np.int32:
        raise TypeError(f"acc: dtype {a.dtype} is not int32 (the L0C tile of an int8 matmul)")
    m, off, signed = _fields(params)
    if out_dtype == "float16":
        return deqf16(a, m)
    if out_dtype == "int8":
        if not np.all(signed):
            raise NotImplementedError(
                "L0C -> UB DEQ8: a parameter with bit 46 = 0 (uint8 result) is not modelled for "
                "int8 output")
        return np.asarray(requant_int8(a, m, off), dtype=np.int8)
    raise ValueError(f"out_dtype: {out_dtype!r} is not a DEQ16 / DEQ8 destination; must be "
                     "float16 or int8")
