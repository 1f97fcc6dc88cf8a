"""npu_quant_matmul A8W4 (int8 activations x int4 weights, per-group scales): checks and values.

torch_npu routes ``npu_quant_matmul(x1 int8, x2 int32, ..., group_sizes=[gm, gn, gk])`` to
aclnnQuantMatmulV5 with ``offset`` passed as the output offset ``y_offset`` (op-plugin
``QuantMatmulKernelNpuOpApi.cpp``: ``is_a8W4_int``; output shape ``(m, x2.size(1) * 8)``).

Declared numerics model (``A8W4_NUMERICS_MODEL``): the kernel's accumulation order is not
published; npusim computes what op-plugin's own A8W4 golden (``test_npu_quant_matmul.py:
a8w4_quant_golden``) describes, bit for bit:

1. each int8 activation splits into two int4 digits, ``hi = x >> 4`` and ``lo = (x & 15) - 8``
   (so ``x = 16*hi + lo + 8``; the ``+8`` term is the caller's, folded into ``y_offset``);
2. per k-group ``j``: exact int32 products ``hi @ w_j`` and ``lo @ w_j``, each times the fp32
   scale ``scale[j, n]`` (the low 32 bits of the int64 parameter, i.e. the 19-bit M1 that
   ``npu_trans_quant_param`` keeps) rounded to fp32, then to fp16 (RINT);
3. the group results summed in fp16 (each add correctly rounded, RINT; overflow gives inf);
4. ``(16*hi_sum + lo_sum) + y_offset`` in fp32, times ``pertoken_scale[m]``, cast to the output
   dtype (RINT, saturating).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from npusim.ops.matmul import describe, dtype_name, resolve_soc

A8W4_NUMERICS_MODEL = ("declared: op-plugin A8W4 golden order - int8 split into two int4 digits, "
                       "per-k-group int32 product x fp32 scale -> fp16, fp16 sum over groups, "
                       "fp32 recombine + y_offset, x pertoken, RINT cast")
GROUP_MAX = 65535
_OUTPUTS = ("float16", "bfloat16")


@dataclass(frozen=True)
class A8W4Plan:
    """Sizes and options of one A8W4 call."""

    m: int
    k: int
    n: int
    group_k: int
    out_dtype: str
    offset: bool


def check_group_sizes(group_sizes: Any) -> tuple[int, int, int]:
    """``group_sizes`` as op-plugin checks it: exactly three ints in [0, 65535]."""
    try:
        groups = [int(g) for g in group_sizes]
    except TypeError:
        raise TypeError(f"group_sizes: must be a list of 3 ints, got {group_sizes!r}") from None
    if len(groups) != 3:
        raise ValueError(f"group_sizes: only support input with three elements, but got "
                         f"{len(groups)}")
    if any(not 0 <= g <= GROUP_MAX for g in groups):
        raise ValueError(f"group_sizes: {groups}: group param value must conform to range "
                         f"[0, {GROUP_MAX}]")
    return groups[0], groups[1], groups[2]


def validate_a8w4(x1: Any, x2: Any, scale: Any, *, offset: Any = None,
                  pertoken_scale: Any = None, bias: Any = None, output_dtype: Any = None,
                  group_sizes: Any = None, soc: Any = None) -> A8W4Plan:
    """Check an A8W4 call (module docstring); raise naming the argument and the rule."""
    soc = resolve_soc(soc)
    if getattr(soc, "organisation", "split") != "split":
        raise ValueError(f"x2: int8 x1 with int32 (int4) x2 (A8W4) is not supported on "
                         f"{soc.name} (Atlas inference series: x1 and x2 int8 only)")
    gm, gn, gk = check_group_sizes(group_sizes)
    d1, d2, ds = describe(x1, "x1"), describe(x2, "x2"), describe(scale, "scale")
    if len(d1.shape) != 2 or len(d2.shape) != 2:
        raise ValueError(f"x1/x2: A8W4 needs 2-D x1 (m, k) and x2 (k, n//8), got {d1.shape} "
                         f"and {d2.shape}")
    if d1.transposed or d2.transposed or d1.nz or d2.nz:
        raise ValueError("x1/x2: A8W4 needs contiguous ND x1 (m, k) and x2 (k, n//8)")
    m, k = d1.shape
    if d2.shape[0] != k:
        raise ValueError(f"x2: k={d2.shape[0]} (shape {d2.shape}) must equal x1's k={k}")
    n = d2.shape[1] * 8
    if gm not in (0, 1) or gn not in (0, 1) or gk == 0 or k % gk:
        raise ValueError(f"group_sizes: {[gm, gn, gk]} must be [0 or 1, 0 or 1, group_k] with "
                         f"group_k > 0 dividing k={k}")
    if ds.dtype not in ("int64", "uint64"):
        raise TypeError(f"scale: dtype {ds.dtype} not supported for A8W4; must be int64 "
                        "(npu_trans_quant_param of the float32 per-group scale)")
    if ds.shape != (k // gk, n):
        raise ValueError(f"scale: shape {ds.shape} must be (k // group_k, n) = "
                         f"({k // gk}, {n})")
    if offset is not None:
        do = describe(offset, "offset")
        if do.dtype != "float32" or do.shape not in ((n,), (1, n)):
            raise ValueError(f"offset: A8W4 y_offset must be float32 of shape ({n},), got "
                             f"{do.dtype} {do.shape}")
    if pertoken_scale is None:
        raise ValueError("pertoken_scale: required for A8W4 (float32, (m,) or (m, 1))")
    dp = describe(pertoken_scale, "pertoken_scale")
    if dp.dtype != "float32" or dp.shape not in ((m,), (m, 1)):
        raise ValueError(f"pertoken_scale: must be float32 of shape ({m},) or ({m}, 1), got "
                         f"{dp.dtype} {dp.shape}")
    if bias is not None:
        raise ValueError("bias: not supported for A8W4 (pass the output offset as offset=)")
    out = "int8" if output_dtype is None else dtype_name(output_dtype)
    if out not in _OUTPUTS:
        raise ValueError(f"output_dtype: {out} not supported for A8W4; must be one of "
                         f"{_OUTPUTS}")
    return A8W4Plan(m=m, k=k, n=n, group_k=gk, out_dtype=out, offset=offset is not None)


def _fp16_round(v: np.ndarray) -> np.ndarray:
    """float64 values rounded once to fp16 (RINT; numpy's double -> half is round-to-even)."""
    with np.errstate(over="ignore"):
        return np.asarray(v, dtype=np.float64).astype(np.float16)


def reference_a8w4(x1: np.ndarray, x2: np.ndarray, scale: np.ndarray, *,
                   offset: np.ndarray | None = None, pertoken_scale: np.ndarray | None = None,
                   bias: np.ndarray | None = None, output_dtype: Any = None,
                   group_sizes: Any = None, soc: Any = None) -> np.ndarray:
    """The output of an A8W4 ``npu_quant_matmul`` under ``A8W4_NUMERICS_MODEL``."""
    from npusim.numerics import decode_quant_param, unpack_int4
    from npusim.ops.quant_matmul import vector_out_cast

    p = validate_a8w4(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale, bias=bias,
                      output_dtype=output_dtype, group_sizes=group_sizes, soc=soc)
    w = unpack_int4(x2).astype(np.int64)  # (k, n)
    x = np.asarray(x1).astype(np.int64)
    digits = (x >> 4, (x & 15) - 8)  # hi, lo
    s = np.asarray(decode_quant_param(np.asarray(scale).view(np.int64).reshape(-1)).m1,
                   dtype=np.float32).reshape(p.k // p.group_k, p.n)
    sums = []
    for d in digits:
        acc = np.zeros((p.m, p.n), dtype=np.float16)
        for j in range(p.k // p.group_k):
            ks = slice(j * p.group_k, (j + 1) * p.group_k)
            part = (d[:, ks] @ w[ks]).astype(np.int32)  # exact on the cube
            scaled = part.astype(np.float32) * s[j][None, :]
            acc = _fp16_round(acc.astype(np.float64) + _fp16_round(scaled).astype(np.float64))
        sums.append(acc.astype(np.float32))
    f = sums[0] * np.float32(16) + sums[1]
    if offset is not None:
        f = f + np.asarray(offset, dtype=np.float32).reshape(1, p.n)
    f = f * np.asarray(pertoken_scale, dtype=np.float32).reshape(p.m, 1)
    return vector_out_cast(f, p.out_dtype)
