"""npu_quant_matmul A8W4 (int8 activations x int4 weights, per-group scales): checks and values.

torch_npu routes ``npu_quant_matmul(x1 int8, x2 int32, ..., group_sizes=[gm, gn, gk])`` to
aclnnQuantMatmulV5 with ``offset`` passed as the output offset ``y_offset`` (op-plugin
``QuantMatmulKernelNpuOpApi.cpp``: ``is_a8W4_int``; output shape ``(m, x2.size(1) * 8)``). On A2 /
A3 aclnn accepts the per-group form only with ``group_k`` = 256, k <= 29576, a float32
``y_offset`` (required) and a float32 per-token scale (ops-nn ``aclnn_quant_matmul_v5.cpp``:
``CheckA8W4IntGroupSize``, ``CheckDtypeA8W4Int``, ``CheckKDimAndBasicShape``).

Values (``A8W4_NUMERICS_MODEL``) follow the A2 kernel's dataflow (ops-nn
``quant_batch_matmul_v4_msd.h``, read for behaviour, not copied; the tiled program is
:mod:`npusim.ops.quant_matmul_a8w4_program`):

1. each int8 activation splits into two int4 digits, ``hi = x >> 4`` and ``lo = (x & 15) - 8``
   (so ``x = 16*hi + lo + 8``; the ``+8`` term is the caller's, folded into ``y_offset``);
2. per k-group ``j``: exact int32 products ``hi @ w_j`` and ``lo @ w_j`` (the int4 cube), then
   FixPipe VDEQF16 with the group's uint64 parameters: fp16 of fp32(acc) x M1 (the 19-bit scale
   ``npu_trans_quant_param`` keeps), the declared DEQF16 model (RNE, saturating);
3. group 0's fp16 tile is written to the GM workspace, each later group's is atomically added in
   fp16 in group order (each add RNE, overflow to inf: the GM fp16 atomic add);
4. ``(16*hi_sum + lo_sum) + y_offset`` in fp32, times ``pertoken_scale[m]``, cast to the output
   dtype (CAST_RINT, saturating).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.matmul import describe, dtype_name, resolve_soc

if TYPE_CHECKING:
    from npusim.ops.matmul import SocRef

A8W4_NUMERICS_MODEL = ("ops-nn A8W4 MSD kernel order - int8 split into two int4 digits, "
                       "per-k-group int32 product -> FixPipe VDEQF16 (declared DEQF16 model), "
                       "group 0 written and later groups fp16-atomic-added in group order, "
                       "fp32 recombine + y_offset, x pertoken, RINT cast")
GROUP_MAX = 65535
A8W4_GROUP_K = 256  # aclnn CheckA8W4IntGroupSize: per-group A8W4 only with group_k 256
A8W4_MAX_K = 29576  # aclnn CheckKDimAndBasicShape on DAV_2201 (A2 / A3)
_OUTPUTS = ("float16", "bfloat16")


@dataclass(frozen=True)
class A8W4Plan:
    """Sizes and options of one A8W4 call."""

    m: int
    k: int
    n: int
    group_k: int
    out_dtype: str


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
                  group_sizes: Any = None, soc: SocRef = None) -> A8W4Plan:
    """Check an A8W4 call (module docstring); raise naming the argument and the rule."""
    soc = resolve_soc(soc)
    if getattr(soc, "organisation", "split") != "split":
        raise ValueError(f"x2: int8 x1 with int32 (int4) x2 (A8W4) is not supported on "
                         f"{soc.name} (Atlas inference series: x1 and x2 int8 only)")
    # torch_npu passes groupSize 0 without group_sizes (check_and_get_groups)
    gm, gn, gk = (0, 0, 0) if group_sizes is None else check_group_sizes(group_sizes)
    d1, d2, ds = describe(x1, "x1"), describe(x2, "x2"), describe(scale, "scale")
    if d2.nz:
        raise NotImplementedError(
            "x2: an A8W4 weight in FRACTAL_NZ is not modelled: aclnnQuantMatmulV5 documents an "
            "int32 (int4) x2 as 2-D ND only, and the public ops-nn A2 / A3 kernel "
            "(quant_batch_matmul_v4.cpp) instantiates its MSD kernel for an ND weight only "
            "(the NZ branch of its tiling has no kernel there); pass the (k, n // 8) ND weight")
    if len(d1.shape) != 2 or len(d2.shape) != 2:
        raise ValueError(f"x1/x2: A8W4 needs 2-D x1 (m, k) and x2 (k, n//8), got {d1.shape} "
                         f"and {d2.shape}")
    if d1.transposed or d2.transposed or d1.nz:
        raise ValueError("x1/x2: A8W4 needs contiguous ND x1 (m, k) and x2 (k, n//8)")
    m, k = d1.shape
    if d2.shape[0] != k:
        raise ValueError(f"x2: k={d2.shape[0]} (shape {d2.shape}) must equal x1's k={k}")
    n = d2.shape[1] * 8
    if len(ds.shape) == 1:  # aclnn CheckA8W4IntGroupSize: a 1-D x2Scale is per-channel
        if gk != 0:
            raise ValueError(f"group_sizes: {[gm, gn, gk]}: A8W4 [int8/4] per-channel (a 1-D "
                             "scale) supports group_k = 0 only")
        raise NotImplementedError(
            "npu_quant_matmul: per-channel A8W4 (int8 x1, int32-packed int4 x2, a 1-D uint64 "
            "scale, group_k 0: aclnnQuantMatmulV5's K-C row) is not modelled: the public "
            "ops-nn source has its host tiling (the MSD tiling's K_C branch) but no kernel "
            "for it (quant_batch_matmul_v4.cpp instantiates only the per-group MSD kernel, "
            "whose Init divides k by the group size), so npusim has no program; the per-group "
            f"form group_sizes=[0, 0, {A8W4_GROUP_K}] with a (k // {A8W4_GROUP_K}, n) scale "
            "is modelled")
    if gm not in (0, 1) or gn not in (0, 1) or gk != A8W4_GROUP_K:
        raise ValueError(f"group_sizes: {[gm, gn, gk]} must be [0 or 1, 0 or 1, "
                         f"{A8W4_GROUP_K}]: A8W4 [int8/4] per-group supports group_k = "
                         f"{A8W4_GROUP_K} only")
    if k % gk or not 0 < k <= A8W4_MAX_K:
        raise ValueError(f"x1: k={k} must be a multiple of {gk} in [1, {A8W4_MAX_K}] for A8W4")
    if ds.dtype not in ("int64", "uint64"):
        raise TypeError(f"scale: dtype {ds.dtype} not supported for A8W4; must be int64 "
                        "(npu_trans_quant_param of the float32 per-group scale)")
    if ds.shape != (k // gk, n):
        raise ValueError(f"scale: shape {ds.shape} must be (k // group_k, n) = "
                         f"({k // gk}, {n})")
    if offset is None:
        raise ValueError(f"offset: required for A8W4 (the float32 y_offset of shape ({n},))")
    do = describe(offset, "offset")
    if do.dtype != "float32" or do.shape != (n,):
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
    return A8W4Plan(m=m, k=k, n=n, group_k=gk, out_dtype=out)


def fp16_atomic_add(acc: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``acc + v`` of two fp16 arrays rounded once to fp16 (RNE, overflow to inf): the GM fp16
    atomic add (the float64 sum of two fp16 values is exact)."""
    with np.errstate(over="ignore"):
        return (acc.astype(np.float64) + v.astype(np.float64)).astype(np.float16)


def reference_a8w4(x1: np.ndarray, x2: np.ndarray, scale: np.ndarray, *,
                   offset: np.ndarray | None = None, pertoken_scale: np.ndarray | None = None,
                   bias: np.ndarray | None = None, output_dtype: Any = None,
                   group_sizes: Any = None, soc: SocRef = None) -> np.ndarray:
    """The output of an A8W4 ``npu_quant_matmul`` under ``A8W4_NUMERICS_MODEL``."""
    from npusim.numerics import decode_quant_param, deqf16, unpack_int4
    from npusim.numerics.cube import cube_matmul_int
    from npusim.ops.quant_matmul import vector_out_cast

    p = validate_a8w4(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale, bias=bias,
                      output_dtype=output_dtype, group_sizes=group_sizes, soc=soc)
    w = unpack_int4(x2)  # (k, n)
    x = np.asarray(x1).astype(np.int16)
    digits = ((x >> 4).astype(np.int8), ((x & 15) - 8).astype(np.int8))  # hi, lo
    m1 = np.asarray(decode_quant_param(np.asarray(scale).view(np.int64).reshape(-1)).m1,
                    dtype=np.float32).reshape(p.k // p.group_k, p.n)
    sums = []
    for d in digits:
        acc = np.zeros((p.m, p.n), np.float16)
        for j in range(p.k // p.group_k):
            ks = slice(j * p.group_k, (j + 1) * p.group_k)
            tile = deqf16(cube_matmul_int(d[:, ks], w[ks]), m1[j][None, :])
            acc = tile if j == 0 else fp16_atomic_add(acc, tile)
        sums.append(acc.astype(np.float32))
    with np.errstate(over="ignore", invalid="ignore"):  # inf digit sums: inf / NaN, as the AIV
        f = sums[0] * np.float32(16) + sums[1]
        f = f + np.asarray(offset, dtype=np.float32).reshape(1, p.n)
        f = f * np.asarray(pertoken_scale, dtype=np.float32).reshape(p.m, 1)
    return vector_out_cast(f, p.out_dtype)
