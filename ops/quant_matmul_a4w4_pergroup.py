"""npu_quant_matmul per-group A4W4 (int4 x int4, per-token x1 scale, per-group asymmetric x2):
checks and values.

torch_npu: ``npu_quant_matmul(x1, x2, scale, offset=..., pertoken_scale=..., output_dtype=...,
group_sizes=[gm, gn, gk])`` with int32-packed int4 ``x1`` (m, k/8) and ``x2`` the (k/8, n)
transposed view of a contiguous (n, k/8), ``scale`` float32 (k/gk, n), ``offset`` float16
(k/gk, n) (the weight zero points, x2_offset), ``pertoken_scale`` float32 (m, 1), no bias,
float16 / bfloat16 output (torch_npu-npu_quant_matmul.md table 2, int32 row with a float16
offset; ops-nn ``QuantMatmulChecker::IsA4W4PergroupNonSymmetric``: bias must be null,
transposeX2 true). The A2 / A3 kernel takes ``group_sizes`` [0 or 1, 0 or 1, 256] only, k a
multiple of 1024 and n a multiple of 256 (ops-nn ``aclnnQuantMatmulV5.md``, K-G constraints:
[gsM, gsN, gsK] = [0, 0, 256], "k需与1024对齐，n需与256对齐"; the pergroup tiling's
``AnalyzeAttrs`` refuses a group_k other than 256 and ``AnalyzeInputs`` a k or n off those
alignments); other calls are refused with a ValueError naming the rule, on every path (API,
reference and ``simulate``).

Values: the chain of the public A2 kernel (ops-nn ``quant_batch_matmul_v4_pergroup.h``, read,
not copied), one fp32 operation per step, each rounded to nearest even:

1. per k-group g: the exact int32 product ``acc_g = x1_g @ x2_g`` (cube) and
   ``rowsum_g[m]`` of the group's int4 activations (exact: integers of at most 8 * gk);
2. ``v = float(acc_g) - float(offset[g, n]) * rowsum_g[m]``, ``v = scale[g, n] * v``;
3. ``accu = v + accu`` over g in increasing order, starting from 0;
4. ``y = Cast(pertoken[m] * accu)`` to the output dtype (CAST_RINT, saturating).

No step depends on an unpublished order: float(acc_g) and the row sums are exact, every other
step is element-wise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.matmul import describe, dtype_name, resolve_soc
from npusim.ops.quant_matmul_a8w4 import check_group_sizes

if TYPE_CHECKING:
    from npusim.ops.matmul import SocRef

_OUTPUTS = ("float16", "bfloat16")
A4W4_GROUP_K = 256  # ops-nn pergroup tiling AnalyzeAttrs: group k 256 only on A4W4
A4W4_K_ALIGN, A4W4_N_ALIGN = 1024, 256  # ops-nn pergroup tiling AnalyzeInputs


@dataclass(frozen=True)
class A4W4GroupPlan:
    """Sizes of one per-group A4W4 call."""

    m: int
    k: int
    n: int
    group_k: int
    out_dtype: str


def validate_a4w4_pergroup(x1: Any, x2: Any, scale: Any, *, offset: Any = None,
                           pertoken_scale: Any = None, bias: Any = None,
                           output_dtype: Any = None, group_sizes: Any = None,
                           soc: SocRef = None) -> A4W4GroupPlan:
    """Check a per-group A4W4 call (module docstring); raise naming the argument and rule."""
    soc = resolve_soc(soc)
    if getattr(soc, "organisation", "split") != "split":
        raise ValueError(f"x1: int32 (int4) inputs are not supported on {soc.name} (Atlas "
                         "inference series: x1 and x2 int8 only)")
    gm, gn, gk = check_group_sizes(group_sizes)
    if gm not in (0, 1) or gn not in (0, 1) or gk != A4W4_GROUP_K:
        raise ValueError(f"group_sizes: {[gm, gn, gk]} must be [0 or 1, 0 or 1, {A4W4_GROUP_K}]: "
                         f"per-group A4W4 supports group_k = {A4W4_GROUP_K} only (ops-nn "
                         "aclnnQuantMatmulV5 K-G table; the pergroup tiling refuses any other)")
    d1, d2 = describe(x1, "x1"), describe(x2, "x2")
    if d1.dtype != "int32" or d2.dtype != "int32":
        raise TypeError(f"x1, x2: per-group A4W4 needs int32-packed int4 for both, got "
                        f"{d1.dtype} / {d2.dtype}")
    if len(d1.shape) != 2 or len(d2.shape) != 2:
        raise ValueError(f"x1, x2: must be 2-D, got {d1.shape} and {d2.shape}")
    if d1.transposed:
        raise ValueError("x1: must be a contiguous (m, k//8) int32 tensor, not a transposed view")
    if not d2.transposed:
        raise ValueError(f"x2: per-group A4W4 needs transposeX2: the (k//8, n) transposed view of "
                         f"a contiguous (n, k//8) int32 tensor, got a contiguous {d2.shape}")
    m, k = d1.shape[0], d1.shape[1] * 8
    if d2.shape[0] * 8 != k:
        raise ValueError(f"x2: k={d2.shape[0] * 8} (shape {d2.shape}) must equal x1's k={k}")
    n = d2.shape[1]
    if k % A4W4_K_ALIGN or n % A4W4_N_ALIGN:
        raise ValueError(f"x1, x2: per-group A4W4 needs k a multiple of {A4W4_K_ALIGN} and n a "
                         f"multiple of {A4W4_N_ALIGN}, got k={k}, n={n} (ops-nn "
                         "aclnnQuantMatmulV5 K-G constraints; the pergroup tiling refuses them)")
    groups = k // gk
    if bias is not None:
        raise ValueError("bias: must be None in the per-group A4W4 (non-symmetric) scenario")
    for arg, v, dt, shape in (("scale", scale, "float32", (groups, n)),
                              ("offset", offset, "float16", (groups, n)),
                              ("pertoken_scale", pertoken_scale, "float32", (m, 1))):
        if v is None:
            raise ValueError(f"{arg}: required in the per-group A4W4 scenario ({dt} {shape})")
        d = describe(v, arg)
        if d.dtype != dt or tuple(d.shape) != shape:
            raise ValueError(f"{arg}: {d.dtype} {tuple(d.shape)} must be {dt} {shape} (k/group_k "
                             f"= {groups} groups, n = {n}, m = {m})")
    out = "float16" if output_dtype is None else dtype_name(output_dtype)
    if out not in _OUTPUTS:
        raise ValueError(f"output_dtype: {out} not supported for per-group A4W4; must be one of "
                         f"{_OUTPUTS}")
    return A4W4GroupPlan(m, k, n, gk, out)


def reference_a4w4_pergroup(x1: np.ndarray, x2: np.ndarray, scale: np.ndarray, *,
                            offset: np.ndarray, pertoken_scale: np.ndarray, bias: Any = None,
                            output_dtype: Any = None, group_sizes: Any = None,
                            soc: SocRef = None) -> np.ndarray:
    """The kernel's chain (module docstring) on numpy arrays."""
    from npusim.numerics import unpack_int4
    from npusim.numerics.cube import cube_matmul_int
    from npusim.ops.quant_matmul import vector_out_cast

    p = validate_a4w4_pergroup(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale,
                               bias=bias, output_dtype=output_dtype, group_sizes=group_sizes,
                               soc=soc)
    a = unpack_int4(np.asarray(x1))  # (m, k)
    b = unpack_int4(np.swapaxes(np.asarray(x2), -1, -2)).T  # (k, n)
    sc = np.asarray(scale, dtype=np.float32)
    off = np.asarray(offset).astype(np.float32)  # fp16 -> fp32, exact
    accu = np.zeros((p.m, p.n), np.float32)
    for g in range(p.k // p.group_k):
        cols = slice(g * p.group_k, (g + 1) * p.group_k)
        acc = cube_matmul_int(a[:, cols], b[cols]).astype(np.float32)  # exact
        rowsum = a[:, cols].astype(np.int64).sum(axis=1).astype(np.float32)  # exact
        v = acc - off[g][None, :] * rowsum[:, None]
        v = sc[g][None, :] * v
        accu = v + accu
    return vector_out_cast(np.asarray(pertoken_scale, np.float32).reshape(p.m, 1) * accu,
                           p.out_dtype)
