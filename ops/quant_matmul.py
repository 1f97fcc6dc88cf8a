"""npu_quant_matmul (W8A8, and int4 packed in int32): validation and bit-exact reference.

Semantics (ops-semantics.md 6, 0.2, 3): ``acc = x1 @ x2`` exact in int32 on the cube; an int32 bias
is added in L0C before any scaling. The output path depends on dtypes (6.2):

* ``int8``: FixPipe REQ8 / VREQ8 with the uint64 quant parameter: the product is clamped to the
  9-bit range *before* the 9-bit offset is added, then saturated to int8;
* ``float16`` without per-token scale: FixPipe DEQF16 / VDEQF16 (the 19-bit M1 of the parameter);
* ``bfloat16``, or any per-token scale: the vector epilogue ``fp32(acc) * fp32(scale)
  [* pertoken[m]] [+ fp32(bias)]`` then Cast RINT (saturating) - the scale is *not* truncated;
* ``int32``: ``acc + bias`` (scale ignored).

torch_npu (op-plugin ``QuantMatmulKernelNpuOpApi.cpp``) turns a float32 ``scale`` into the uint64
parameter with ``npu_trans_quant_param(scale, offset)`` (round_mode 0: 19-bit truncation, offset
RINT and clamped into bits 37..45) exactly when there is no ``pertoken_scale`` and the output is
neither bfloat16 nor int32; otherwise the scale goes to the kernel as given. With an int64 scale
the offset lives only in the parameter's bits: an ``offset`` tensor passed next to an int64 scale
is validated but does not change the result (the kernel reads the parameter).

The Atlas inference series (310P) validates against its own, smaller table (int8 / float16
output, no per-token scale). It has no FixPipe: its kernels (ops-nn QuantBatchMatmulV3 on
dav-m200) dequantise on the L0C -> UB DataCopy (DEQ16 / VDEQ16 for float16, DEQ8 / VDEQ8 for
int8), whose parameter layout and order of steps are published (asc-devkit) but whose roundings
are not: the outputs follow the descriptor's declared model
(``numerics.l0c_to_ub_dequant``, :mod:`npusim.numerics.l0c_dequant`). Unlike FixPipe, that copy
reads the whole low 32 bits of each parameter as the float32 scale (npu_trans_quant_param's
parameters have the low 13 bits zero, so both read the same scale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.matmul import broadcast_batch, describe, dtype_name, resolve_soc

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.ops.matmul import SocRef

LAST_DIM_LIMIT = 65535
OUTPUT_DTYPES = ("int8", "float16", "bfloat16", "int32")
_INT64 = ("int64", "uint64")

# Supported combinations (torch_npu-npu_quant_matmul.md tables 1 and 2, intersected with the
# aclnnQuantMatmul dtype checks): (inputs, scale dtypes, offset allowed, bias dtypes, pertoken,
# output). ``None`` in a set means "may be absent"; pertoken True = required, False = forbidden.
_INT64_F32 = frozenset({"int64", "float32"})
_TABLE_A2A3 = (
    ("int8", _INT64_F32, False, frozenset({"int32", None}), False, "float16"),
    ("int8", _INT64_F32, True, frozenset({"int32", None}), False, "int8"),
    ("int8", frozenset({"float32", "bfloat16"}), False,
     frozenset({"int32", "bfloat16", "float32", None}), None, "bfloat16"),
    ("int8", frozenset({"float32"}), False, frozenset({"int32", "float32", None}), True,
     "float16"),
    ("int4", _INT64_F32, False, frozenset({"int32", None}), False, "float16"),
    # A4W4 with per-token scale: table 2's int32 row; its float16 offset belongs to the
    # per-group form (group_sizes; ops/quant_matmul_a4w4_pergroup.py)
    ("int4", frozenset({"float32"}), False, frozenset({None}), True, "float16"),
    ("int4", frozenset({"float32"}), False, frozenset({None}), True, "bfloat16"),
    ("int8", frozenset({"float32", "bfloat16"}), False, frozenset({"int32", None}), False,
     "int32"),
)
_TABLE_310P = _TABLE_A2A3[:2]


@dataclass(frozen=True)
class QuantMatmulPlan:
    """What validation learned about one call: sizes, layouts, dtypes and the output path.

    ``epilogue`` is ``REQ8`` / ``DEQF16`` (FixPipe), ``VECTOR`` (AIV dequant) or ``INT32``.
    ``scale_route`` is ``trans_quant_param`` when a float32 scale is encoded by torch_npu first.
    """

    m: int
    k: int
    n: int
    batch: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: str
    trans_x1: bool
    trans_x2: bool
    out_dtype: str
    scale_dtype: str
    scale_route: str
    epilogue: str
    per_channel: bool
    pertoken: bool
    offset: bool
    bias_dtype: str | None
    bias_batched: bool
    coupled: bool
    x2_nz: bool = False  # x2 stored FRACTAL_NZ (aclnnQuantMatmulWeightNz): int8, 2-D


def _is_coupled(soc: SocDescriptor) -> bool:
    return getattr(soc, "organisation", "split") != "split"


# -- validation ---------------------------------------------------------------------------------


def _check_pairings(out: str, scale: str, bias: str | None, pertoken: bool, soc: str) -> None:
    """The pairwise rules of the aclnn checks, each naming the argument it constrains (the
    supported-combination table is checked afterwards as a whole)."""
    if pertoken and out not in ("float16", "bfloat16"):
        raise ValueError(f"pertoken_scale: only with float16 or bfloat16 output, output_dtype "
                         f"is {out}")
    need = {"int8": _INT64_F32, "float16": _INT64_F32 if not pertoken else {"float32"},
            "bfloat16": {"float32", "bfloat16"}, "int32": {"float32", "bfloat16"}}[out]
    if scale not in need:
        raise ValueError(f"scale: dtype {scale} cannot produce {out} output"
                         f"{' with pertoken_scale' if pertoken else ''}; must be one of "
                         f"{sorted(need)}")
    if bias is None or bias == "int32":
        return
    if bias == "float16":
        raise ValueError(f"bias: float16 bias is not in the supported combinations of {soc}")
    if bias == "bfloat16" and out != "bfloat16":
        raise ValueError(f"bias: bfloat16 bias needs bfloat16 output, output_dtype is {out}")
    if bias == "float32" and not (out == "bfloat16" or (pertoken and out == "float16")):
        raise ValueError(f"bias: float32 bias needs bfloat16 output or per-token float16 output, "
                         f"output_dtype is {out}")


def validate_quant_matmul(
    x1: Any,
    x2: Any,
    scale: Any,
    *,
    offset: Any = None,
    pertoken_scale: Any = None,
    bias: Any = None,
    output_dtype: Any = None,
    soc: SocRef = None,
) -> QuantMatmulPlan:
    """Check every constraint of ops-semantics 6.1 / 6.2 and the supported-combination table;
    return the :class:`QuantMatmulPlan` or raise ValueError / TypeError naming the argument."""
    soc = resolve_soc(soc)
    coupled = _is_coupled(soc)
    d1, d2, ds = describe(x1, "x1"), describe(x2, "x2"), describe(scale, "scale")
    do = None if offset is None else describe(offset, "offset")
    dp = None if pertoken_scale is None else describe(pertoken_scale, "pertoken_scale")
    db = None if bias is None else describe(bias, "bias")
    out_dtype = "int8" if output_dtype is None else dtype_name(output_dtype)

    # int32 = int4 packed 8 per word on A2 and A3 alike (torch_npu npu_quant_matmul, x1 / x2:
    # "Atlas A3 训练系列产品: 数据类型支持INT8和INT32"; Ascend PyTorch 6.0.0 / 7.0.0 API lists)
    in_ok = ("int8",) if coupled else ("int8", "int32")
    if d1.dtype not in in_ok:
        raise TypeError(f"x1: dtype {d1.dtype} not supported on {soc.name}; must be one of {in_ok}")
    if d2.dtype != d1.dtype:
        raise TypeError(f"x2: dtype {d2.dtype} must equal x1's dtype {d1.dtype}")
    int4 = d1.dtype == "int32"
    in_dtype = "int4" if int4 else "int8"
    if d1.nz:
        raise ValueError("x1: only ND format is supported (torch_npu: x1 must be ND)")
    for d, arg in ((d1, "x1"), (d2, "x2")):
        if not 2 <= len(d.shape) <= 6:
            raise ValueError(f"{arg}: shape {d.shape} has {len(d.shape)} dims; must have 2 to 6")
        if 0 in d.shape:
            raise ValueError(f"{arg}: shape {d.shape} is empty; empty tensors are not supported")
    if int4:
        if d1.transposed:
            raise ValueError("x1: int4 (int32-packed) x1 must be contiguous (m, k//8), not a "
                             "transposed view")
        if len(d2.shape) != 2:
            raise ValueError(f"x2: int4 (int32-packed) x2 must be 2-D, got shape {d2.shape}")
    # Logical sizes come from the view shapes; a transposed view only changes the storage.
    m, k1 = d1.shape[-2], d1.shape[-1]
    k2, n = d2.shape[-2], d2.shape[-1]
    if int4:
        k1 *= 8
        if d2.transposed:
            k2 *= 8  # (k//8, n) view of a contiguous (n, k//8)
        else:
            n *= 8
    if k1 != k2:
        raise ValueError(f"x2: k={k2} (shape {d2.shape}) must equal x1's k={k1} (shape {d1.shape})")
    inner1 = m if d1.transposed else k1
    inner2 = k2 if d2.transposed else n
    for arg, v, shape in (("x1", inner1, d1.shape), ("x2", inner2, d2.shape)):
        if v > LAST_DIM_LIMIT:
            raise ValueError(f"{arg}: last dim of the stored layout is {v} (shape {shape}); must "
                             f"be <= {LAST_DIM_LIMIT}")
    batch = broadcast_batch(d1.shape[:-2], d2.shape[:-2])
    out_shape = (*batch, m, n)

    # scale
    if ds.dtype not in ("int64", "uint64", "float32", "bfloat16"):
        raise TypeError(f"scale: dtype {ds.dtype} not supported; must be int64, float32 or "
                        "bfloat16")
    if len(ds.shape) == 2 and int4:
        raise ValueError("scale: a 2-D (k / 256, n) scale is per-group A4W4, which needs "
                         "group_sizes = [0 or 1, 0 or 1, 256] (group_k = 256 only; ops-nn "
                         "aclnnQuantMatmulV5 K-G table)")
    if len(ds.shape) != 1 or ds.shape[0] not in (1, n):
        raise ValueError(f"scale: shape {ds.shape} must be (1,) or (n,) = ({n},)")
    scale_dtype = "int64" if ds.dtype in _INT64 else ds.dtype
    if do is not None:
        if do.dtype != "float32":
            raise TypeError(f"offset: dtype {do.dtype} must be float32")
        if len(do.shape) != 1 or do.shape[0] not in (1, n):
            raise ValueError(f"offset: shape {do.shape} must be (1,) or (n,) = ({n},)")
        if out_dtype != "int8":
            raise ValueError(f"offset: only allowed with int8 output, output_dtype is {out_dtype}")
    if dp is not None:
        if coupled:
            raise ValueError(f"pertoken_scale: not supported on {soc.name} (Atlas inference "
                             "series)")
        if dp.dtype != "float32":
            raise TypeError(f"pertoken_scale: dtype {dp.dtype} must be float32")
        if len(dp.shape) != 1 or dp.shape[0] != m:
            raise ValueError(f"pertoken_scale: shape {dp.shape} must be (m,) = ({m},)")
    bias_batched = False
    if db is not None:
        if db.dtype not in ("int32", "bfloat16", "float16", "float32"):
            raise TypeError(f"bias: dtype {db.dtype} not supported; must be int32, bfloat16, "
                            "float16 or float32")
        if len(db.shape) == 1:
            if db.shape[0] != n:
                raise ValueError(f"bias: shape {db.shape} must be (n,) = ({n},)")
        elif len(db.shape) == 3:
            if len(out_shape) != 3:
                raise ValueError(f"bias: 3-D shape {db.shape} only allowed with a 3-D output; "
                                 f"output shape is {out_shape}")
            if int4:
                raise ValueError(f"bias: must be 1-D (n,) with int4 inputs, got {db.shape}")
            if db.shape != (batch[0], 1, n):
                raise ValueError(f"bias: shape {db.shape} must be (batch, 1, n) = "
                                 f"({batch[0]}, 1, {n})")
            bias_batched = True
        else:
            raise ValueError(f"bias: shape {db.shape} must be (n,) or (batch, 1, n)")
    if out_dtype not in OUTPUT_DTYPES:
        raise TypeError(f"output_dtype: {out_dtype} not supported; must be one of "
                        f"{OUTPUT_DTYPES}")
    if coupled and out_dtype not in ("int8", "float16"):
        raise ValueError(f"output_dtype: {out_dtype} not supported on {soc.name} (Atlas "
                         "inference series): must be int8 or float16")

    bias_dtype = None if db is None else db.dtype
    _check_pairings(out_dtype, scale_dtype, bias_dtype, dp is not None, soc.name)
    table = _TABLE_310P if coupled else _TABLE_A2A3
    ok = False
    for ins, scales, off_ok, biases, ptk, out in table:
        if (ins == in_dtype and scale_dtype in scales and (do is None or off_ok)
                and bias_dtype in biases and (ptk is None or ptk == (dp is not None))
                and out == out_dtype):
            ok = True
            break
    if not ok:
        raise ValueError(
            f"output_dtype: the combination x1/x2={d1.dtype}, scale={scale_dtype}, "
            f"offset={'float32' if do is not None else None}, bias={bias_dtype}, "
            f"pertoken_scale={'float32' if dp is not None else None}, output_dtype={out_dtype} "
            f"is not in the supported-combination table of {soc.name} "
            "(torch_npu-npu_quant_matmul.md)"
        )
    route = ("trans_quant_param" if scale_dtype == "float32" and dp is None
             and out_dtype not in ("bfloat16", "int32") else "as_given")
    if out_dtype == "int32":
        epilogue = "INT32"
    elif dp is not None or out_dtype == "bfloat16":
        epilogue = "VECTOR"
    elif out_dtype == "int8":
        epilogue = "REQ8"
    else:
        epilogue = "DEQF16"
    per_channel = ds.shape[0] > 1 or (do is not None and do.shape[0] > 1)
    plan = QuantMatmulPlan(
        m=m, k=k1, n=n, batch=batch, out_shape=out_shape, in_dtype=in_dtype,
        trans_x1=d1.transposed, trans_x2=d2.transposed, out_dtype=out_dtype,
        scale_dtype=scale_dtype, scale_route=route, epilogue=epilogue, per_channel=per_channel,
        pertoken=dp is not None, offset=do is not None, bias_dtype=bias_dtype,
        bias_batched=bias_batched, coupled=coupled, x2_nz=d2.nz,
    )
    return plan


PP_MATMUL_MIN_M = 1024  # ops-nn quant_matmul_v3.cpp / pp_matmul_int8_tiling.cpp PPMATMUL_PRIORITY_M


def takes_pp_matmul(plan: QuantMatmulPlan) -> bool:
    """True when the 310P's aclnn runs the pp_matmul kernel (ops-nn aclnn_quant_matmul_v4.cpp
    ``isPpMatmul``, arch20 pp_matmul_int8_tiling.cpp ``IsCapable``): M >= 1024 with a bias, x1
    not transposed and x2 transposed after aclnn's own transposes (it transposes a transposed x1,
    and an ND x2 into a transposed NZ one; an NZ x2 stays as passed), output not bfloat16."""
    return (plan.coupled and plan.m >= PP_MATMUL_MIN_M and plan.bias_dtype is not None
            and (not plan.x2_nz or plan.trans_x2))


def check_pp_matmul(plan: QuantMatmulPlan, scale_len: int) -> None:
    """The pp_matmul kernel (ops-nn arch20/pp_matmul_kernel.h, ``PpMatmul<..., int8_t, uint64_t,
    int32_t, half>``) reads n_round scale and bias values at ``b * n + column`` and writes
    float16: its values are the L0C-bias + dequantising-copy chain of the other 310P kernels only
    for one matrix with a per-column scale and float16 output; the rest is not defined by the
    tensors torch_npu passes, so the API refuses it (``scale_len``: the scale's element count)."""
    where = (f"on the 310P pp_matmul kernel (M = {plan.m} >= {PP_MATMUL_MIN_M} with a bias, "
             "ops-nn arch20/pp_matmul_kernel.h)")
    if int(np.prod(plan.batch, dtype=np.int64)) > 1:
        raise NotImplementedError(
            f"x1: batch {plan.batch} {where}: the kernel reads scale and bias at batch * n + "
            "column, past an (n,) scale / bias for every batch after the first; not modelled")
    if scale_len == 1 and plan.n > 1:
        raise NotImplementedError(
            f"scale: a per-tensor (1,) scale {where}: the kernel reads one scale per column, "
            "values past the tensor's one element; not modelled (pass an (n,) scale)")
    if plan.out_dtype != "float16":
        raise NotImplementedError(
            f"output_dtype: {plan.out_dtype} {where}: the kernel writes float16 only; what the "
            "device returns for another output dtype is not modelled")


# -- reference ----------------------------------------------------------------------------------


def _logical_operands(x1: np.ndarray, x2: np.ndarray, plan: QuantMatmulPlan
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(.., m, k) and (.., k, n) int8 arrays of the logical values."""
    if plan.in_dtype == "int4":
        from npusim.numerics import unpack_int4

        a = unpack_int4(x1)
        if plan.trans_x2:
            b = unpack_int4(np.swapaxes(x2, -1, -2)).swapaxes(-1, -2)  # (n, k) -> (k, n)
        else:
            b = unpack_int4(x2)
        return a, b
    return x1, x2


def quant_params(scale: np.ndarray, offset: np.ndarray | None, plan: QuantMatmulPlan) -> Any:
    """The uint64 FixPipe parameters (int64 array) the kernel reads for REQ8 / DEQF16."""
    if plan.scale_route == "trans_quant_param":
        from npusim.ops.trans_quant_param import trans_quant_param

        return np.asarray(trans_quant_param(scale, offset, round_mode=0)).astype(np.int64)
    return np.asarray(scale).view(np.int64) if scale.dtype == np.uint64 else scale


def vector_out_cast(f: np.ndarray, out_dtype: str) -> np.ndarray:
    """The vector epilogue's last step: Cast fp32 -> bf16 / fp16 with CAST_RINT, saturating
    (ops-semantics 0.2 and 6.2); the reference's (the AIV program issues the same Cast)."""
    from npusim.numerics import RoundMode, cast_float

    return cast_float(np.asarray(f, dtype=np.float32), out_dtype, RoundMode.RINT, saturate=True)


def coupled_deq_model(soc: SocRef) -> str:
    """The SoC's declared L0C -> UB dequant model (``numerics.l0c_to_ub_dequant.model``);
    NotImplementedError when its descriptor declares none."""
    spec = getattr(getattr(resolve_soc(soc), "numerics", None), "l0c_to_ub_dequant", None)
    if spec is None:
        raise NotImplementedError(
            f"quant_matmul on {resolve_soc(soc).name}: its descriptor declares no "
            "numerics.l0c_to_ub_dequant model for the dequantising L0C -> UB copy")
    return str(spec.model)


def coupled_deq_params(scale: np.ndarray, offset: np.ndarray | None,
                       plan: QuantMatmulPlan) -> np.ndarray:
    """The uint64 parameters (as int64, shape (1,) or (n,)) the 310P L0C -> UB copy reads."""
    q = np.asarray(quant_params(np.asarray(scale), offset, plan)).reshape(-1)
    return np.ascontiguousarray(np.broadcast_to(q, (plan.n,)) if plan.per_channel else q)


def make_epilogue(
    plan: QuantMatmulPlan,
    scale: np.ndarray,
    *,
    offset: np.ndarray | None = None,
    pertoken_scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> Callable[[np.ndarray, int, int, int], np.ndarray]:
    """``fn(acc, row0, col0, batch_index) -> output tile``: the output path applied to an int32
    accumulator tile (``acc`` already includes an int32 bias) whose top-left element is
    (row0, col0) of the matrix with flat batch index ``batch_index``.

    Shared by the reference and the tiled program, so the value semantics live in one place.
    """
    from npusim.numerics import decode_quant_param, deqf16, requant_int8

    n = plan.n
    if plan.epilogue in ("REQ8", "DEQF16"):
        q = np.broadcast_to(np.asarray(quant_params(scale, offset, plan)).reshape(-1), (n,))
        qp = decode_quant_param(q)
        m1 = np.broadcast_to(np.asarray(qp.m1, dtype=np.float32), (n,))
        off9 = np.broadcast_to(np.asarray(qp.offset), (n,))
        if plan.epilogue == "REQ8" and not np.all(np.asarray(qp.signed)):
            raise NotImplementedError(
                "scale: a quant parameter with bit 46 = 0 (uint8 saturation) is not modelled"
            )

        def fixpipe(acc: np.ndarray, row0: int, col0: int, bidx: int) -> np.ndarray:
            cols = slice(col0, col0 + acc.shape[1])
            if plan.epilogue == "REQ8":
                return requant_int8(acc, m1[None, cols], off9[None, cols])
            return deqf16(acc, m1[None, cols])

        return fixpipe
    if plan.epilogue == "INT32":
        return lambda acc, row0, col0, bidx: np.asarray(acc, dtype=np.int32)
    s32 = np.broadcast_to(np.asarray(scale).astype(np.float32).reshape(-1), (n,))
    ptk = None if pertoken_scale is None else np.asarray(pertoken_scale, dtype=np.float32)
    fbias = None
    if bias is not None and plan.bias_dtype != "int32":
        fbias = np.asarray(bias).astype(np.float32)  # bf16 / fp16 -> fp32 is exact
        fbias = fbias.reshape(-1, n) if plan.bias_batched else fbias.reshape(1, n)

    def vector(acc: np.ndarray, row0: int, col0: int, bidx: int) -> np.ndarray:
        rows = slice(row0, row0 + acc.shape[0])
        cols = slice(col0, col0 + acc.shape[1])
        f = np.asarray(acc, dtype=np.int32).astype(np.float32) * s32[None, cols]
        if ptk is not None:
            f = f * ptk[rows, None]
        if fbias is not None:
            f = f + fbias[bidx if plan.bias_batched else 0, cols][None, :]
        return vector_out_cast(f, plan.out_dtype)

    return vector


def reference_quant_matmul(
    x1: np.ndarray,
    x2: np.ndarray,
    scale: np.ndarray,
    *,
    offset: np.ndarray | None = None,
    pertoken_scale: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    output_dtype: Any = None,
    soc: SocRef = None,
) -> np.ndarray:
    """The NPU's output of ``npu_quant_matmul`` on numpy arrays (bit-exact to ops-semantics 6)."""
    plan = validate_quant_matmul(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale,
                                 bias=bias, output_dtype=output_dtype, soc=soc)
    for arg, v in (("x1", x1), ("x2", x2), ("scale", scale), ("offset", offset),
                   ("pertoken_scale", pertoken_scale), ("bias", bias)):
        if v is not None and not isinstance(v, np.ndarray):
            raise TypeError(f"{arg}: the reference needs data (a numpy array), got "
                            f"{type(v).__name__}")
    from npusim.numerics import np_dtype
    from npusim.numerics.cube import cube_matmul_int

    a, b = _logical_operands(x1, x2, plan)
    if plan.coupled:
        from npusim.numerics.l0c_dequant import l0c_to_ub_dequant

        coupled_deq_model(soc)
        params = coupled_deq_params(scale, offset, plan)

        def coupled_epi(acc: np.ndarray, row0: int, col0: int, bidx: int) -> np.ndarray:
            return l0c_to_ub_dequant(acc, params, plan.out_dtype)

        epi: Callable[[np.ndarray, int, int, int], np.ndarray] = coupled_epi
    else:
        epi = make_epilogue(plan, scale, offset=offset, pertoken_scale=pertoken_scale,
                            bias=bias)
    nb = len(plan.batch)
    a = np.broadcast_to(a, (*plan.batch, plan.m, plan.k)) if nb else a
    b = np.broadcast_to(b, (*plan.batch, plan.k, plan.n)) if nb else b
    out = np.empty(plan.out_shape, dtype=np_dtype(plan.out_dtype))
    ibias = None
    if bias is not None and plan.bias_dtype == "int32":
        ibias = bias.astype(np.int64).reshape(-1, plan.n) if plan.bias_batched else \
            bias.astype(np.int64).reshape(1, plan.n)
    for bidx, idx in enumerate(np.ndindex(*plan.batch)):
        acc = cube_matmul_int(a[idx], b[idx])
        if ibias is not None:
            row = ibias[bidx if plan.bias_batched else 0]
            acc = (acc.astype(np.int64) + row[None, :]).astype(np.int32)  # L0C int32 wraps
        out[idx] = epi(acc, 0, 0, bidx)
    return out
