"""Runner entries for ``matmul`` and ``quant_matmul``: validate, pick the tiling, build the cube
program (``npusim.ops.matmul_program``) with the operator's epilogue semantics.

The epilogue functions are the operators' own (``convert_l0c``, ``make_epilogue``), so the tiled
program and the reference share one definition of the output path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.cube_epilogue import Epilogue, QuantParams
from npusim.ops.matmul_program import BatchLayout, build_matmul_kernel

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.ops.matmul_mix import AivStage
    from npusim.ops.matmul_tiling import MatmulTiling
    from npusim.ops.quant_matmul import QuantMatmulPlan
    from npusim.runner import Plan


def stored_tensor(x: Any, transposed: bool) -> np.ndarray | None:
    """The contiguous stored tensor behind an array (a transposed view -> its base layout; a
    FRACTAL_NZ array -> its NZ storage)."""
    if not isinstance(x, np.ndarray):
        return None
    if getattr(x, "npu_format", 2) == 29:
        return np.ascontiguousarray(x.view(np.ndarray))
    return np.ascontiguousarray(np.swapaxes(x, -1, -2) if transposed else x)


def _n_unit(x: Any, dtype: str, nz_along_n: bool) -> int:
    """Base N unit of the default tiling: 16, or a B stored NZ along N's C0 (its windows start
    on C0-column strips)."""
    return max(16, nz_c0(x, dtype)) if nz_along_n else 16


def nz_c0(x: Any, dtype: str) -> int:
    """C0 of a FRACTAL_NZ operand: its storage's last dim, or for a spec torch_npu's rule
    (32 bytes / min(itemsize, 2): 16 for fp16 / bf16 / fp32, 32 for int8)."""
    if isinstance(x, np.ndarray):
        return int(x.shape[-1])
    from npusim.numerics import np_dtype

    return 32 // min(np_dtype(dtype).itemsize, 2)


def _x2_nz_c0(x2: Any, p: Any) -> int:
    """C0 of an NZ x2 in the cube's elements: int8 32; int32-packed int4 8 words = 64 int4."""
    return 64 if p.in_dtype == "int4" else nz_c0(x2, "int8")


def _batch_layout(shape_a: tuple[int, ...], shape_b: tuple[int, ...], batch: tuple[int, ...],
                  bias_batched: bool = False) -> BatchLayout | None:
    """Flat stored-matrix indices of each output matrix (broadcast batch dims -> index 0)."""
    if not batch:
        return None

    def index(shape: tuple[int, ...]) -> tuple[int, ...]:
        bshape = shape[:-2]
        ar = np.arange(int(np.prod(bshape, dtype=np.int64))).reshape(bshape)
        return tuple(int(v) for v in np.broadcast_to(ar, batch).reshape(-1))

    return BatchLayout(index(shape_a), index(shape_b), bias_batched)


def _shape(x: Any) -> tuple[int, ...]:
    """The logical shape (a FRACTAL_NZ array's ``logical_shape``, not its storage's)."""
    return tuple(getattr(x, "logical_shape", x.shape))


def _check_program_scope(trans_a: bool, op: str) -> None:
    if trans_a:
        raise NotImplementedError(f"{op} program: a transposed first operand is not tiled yet")


def _tiling(tiling: Any, m: int, k: int, n: int, in_dtype: str, out_dtype: str, soc: SocDescriptor,
            trans_b: bool, with_bias: bool, split_k: bool = False, quant_vector: bool = False,
            n_unit: int = 16) -> MatmulTiling:
    from npusim.ops.matmul_tiling import (
        default_matmul_tiling,
        tiling_from_dict,
        validate_matmul_tiling,
    )

    def default() -> MatmulTiling:
        return default_matmul_tiling(m, k, n, in_dtype, out_dtype, soc, trans_b,
                                     with_bias=with_bias, split_k=split_k,
                                     quant_vector=quant_vector, n_unit=n_unit)

    if tiling is None:
        return default()
    t: MatmulTiling = tiling_from_dict(tiling, default) if isinstance(tiling, dict) else tiling
    validate_matmul_tiling(t, m, k, n, in_dtype, out_dtype, soc, with_bias=with_bias,
                           quant_vector=quant_vector)
    if hasattr(t, "for_dtypes"):
        t = t.for_dtypes(in_dtype, out_dtype)  # in_bits / out_bits from the operands
    return t


def _split_order(soc: SocDescriptor) -> str:
    from npusim.ops.matmul import split_k_order_of

    return split_k_order_of(soc)


def _kernel_label(op: str, t: Any, path: str) -> str:
    """e.g. ``quant_matmul (VECTOR, split-K x4 + AIV reduction)``."""
    split = f", split-K x{t.k_dim} + AIV reduction" if t.k_dim > 1 else ""
    return f"{op} ({path}{split})"


def checked_matmul(soc: SocDescriptor, *, a: Any, b: Any, bias: Any = None, out_dtype: Any = None,
                   allow_hf32: bool = False) -> Any:
    """``matmul``'s argument rules and the program's scope: the validated call or an error."""
    from npusim.ops.matmul import validate_matmul

    p = validate_matmul(a, b, out_dtype=out_dtype, bias=bias, allow_hf32=allow_hf32, soc=soc)
    _check_program_scope(p.trans_a, "matmul")
    return p


def checked_quant_matmul(soc: SocDescriptor, *, x1: Any, x2: Any, scale: Any, offset: Any = None,
                         pertoken_scale: Any = None, bias: Any = None,
                         output_dtype: Any = None) -> Any:
    """``quant_matmul``'s argument rules and the program's scope: the validated call or an
    error."""
    from npusim.ops.quant_matmul import validate_quant_matmul

    p = validate_quant_matmul(x1, x2, scale, offset=offset, pertoken_scale=pertoken_scale,
                              bias=bias, output_dtype=output_dtype, soc=soc)
    _check_program_scope(p.trans_x1, "quant_matmul")
    return p


def plan_matmul(soc: SocDescriptor, tiling: Any = None, *, a: Any, b: Any, bias: Any = None,
                out_dtype: Any = None, allow_hf32: bool = False) -> Plan:
    """``matmul``: fp16 / bf16 / fp32 in, fp16 / bf16 / fp32 out, ND or transposed B, batched
    (batches spread over the cube cores); split-K over cores with an AIV reduction."""
    from npusim.runner import Plan

    p = checked_matmul(soc, a=a, b=b, bias=bias, out_dtype=out_dtype, allow_hf32=allow_hf32)
    t = _tiling(tiling, p.m, p.k, p.n, p.in_dtype, p.out_dtype, soc, p.trans_b, bias is not None,
                split_k=not p.coupled, n_unit=_n_unit(b, p.in_dtype, p.b_nz and not p.trans_b))
    functional = isinstance(a, np.ndarray)
    mode = {"float16": "F322F16", "bfloat16": "F322BF16", "float32": "NONE"}[p.out_dtype]
    # values from the semantics table: FixPipe F322F16 / F322BF16 (RNE, overflow to inf), the
    # split-K AIV Cast with the same rule, the coupled 310P vector Cast (RINT, saturating)
    epi = Epilogue(mode, p.out_dtype)
    fbias = np.asarray(bias).astype(np.float32) if isinstance(bias, np.ndarray) else None
    if bias is not None and fbias is None:
        fbias = np.zeros(p.n, np.float32)  # timing-only: the bias path is still exercised
    kernel = build_matmul_kernel(soc, p.m, p.k, p.n, p.in_dtype, t, epi, trans_b=p.trans_b,
                                 a=stored_tensor(a, False), b=stored_tensor(b, p.trans_b),
                                 bias=fbias,
                                 cube_model=p.cube_model, name="matmul",
                                 batch=_batch_layout(_shape(a), _shape(b), p.batch),
                                 split_k_order=_split_order(soc),
                                 b_nz_c0=nz_c0(b, p.in_dtype) if p.b_nz else 0,
                                 a_nz_c0=nz_c0(a, p.in_dtype) if p.a_nz else 0,
                                 hf32=p.hf32)
    if not functional:
        kernel.gm["a"].data = kernel.gm["b"].data = None
    path = "coupled" if p.coupled else ("cube" if t.k_dim > 1 else "cube, FixPipe")
    notes = []
    if p.hf32:
        model = soc.numerics.hf32
        assert model is not None  # p.hf32: validate_matmul found it (hf32_of)
        kernel.meta["hf32_model"] = (
            f"declared numerics.hf32: {model.mantissa_bits} mantissa bits, {model.rounding}")
        notes.append(f"HF32 (allow_hf32): a declared model, numerics.hf32 = {model.mantissa_bits} "
                     f"stored mantissa bits, rounding {model.rounding} (the HF32 width is not "
                     "published): exact to this model, not claimed bit-exact to a device")
    return Plan(kernel, _kernel_label("matmul", t, path), t, functional,
                finish=lambda out: out["c"].reshape(p.out_shape), notes=notes)


def _data(x: Any, functional: bool) -> np.ndarray | None:
    return np.asarray(x) if functional and isinstance(x, np.ndarray) else None


def plan_quant_matmul(soc: SocDescriptor, tiling: Any = None, *, x1: Any, x2: Any, scale: Any,
                      offset: Any = None, pertoken_scale: Any = None, bias: Any = None,
                      output_dtype: Any = None) -> Plan:
    """``quant_matmul`` (W8A8): exact int8 cube matmul with the int32 bias in L0C, then the
    FixPipe requant / dequant (REQ8, DEQF16), int32 output, or (bf16 output / per-token scale)
    the AIV dequant epilogue fed through a GM workspace; batched inputs; split-K (int32 and AIV
    epilogues: the integer partials add exactly)."""
    from npusim.ops.matmul_mix import AivStage
    from npusim.runner import Plan

    p = checked_quant_matmul(soc, x1=x1, x2=x2, scale=scale, offset=offset,
                             pertoken_scale=pertoken_scale, bias=bias, output_dtype=output_dtype)
    fixpipe_quant = p.epilogue in ("REQ8", "DEQF16")
    t = _tiling(tiling, p.m, p.k, p.n, p.in_dtype, p.out_dtype, soc, p.trans_x2,
                bias is not None and p.bias_dtype == "int32",
                split_k=not p.coupled and not fixpipe_quant,
                quant_vector=_fixpipe_quant_vector(p),
                n_unit=max(16, _x2_nz_c0(x2, p)) if p.x2_nz and not p.trans_x2 else 16)
    functional = isinstance(x1, np.ndarray)
    nb = int(np.prod(p.batch, dtype=np.int64)) if p.batch else 1
    aiv = None
    deq = None
    meta: dict[str, Any] = {"epilogue": p.epilogue}
    if t.k_dim > 1 and fixpipe_quant:
        # the int32 partials are reduced on the AIVs, so the conversion runs there too
        aiv = _split_k_requant_stage(p, scale, offset, functional)
        meta["declared_split_k_requant"] = SPLIT_K_REQUANT_MODEL
        epi = Epilogue("NONE", "int32")
    elif p.coupled or p.epilogue in ("REQ8", "DEQF16"):
        # the uint64 quant parameters, one or one per column: 310P dequantises on the L0C -> UB
        # DataCopy (DEQ16 / VDEQ16, DEQ8 / VDEQ8; the descriptor's declared rounding model), a
        # split SoC in FixPipe (REQ8 / DEQF16, VREQ8 / VDEQF16 from FB); values from the table
        from npusim.ops.quant_matmul import coupled_deq_params

        if p.coupled:
            from npusim.ops.quant_matmul import coupled_deq_model

            meta["declared_l0c_to_ub_dequant_model"] = coupled_deq_model(soc)
        params = coupled_deq_params(scale, offset, p) if functional else None
        per_channel = p.per_channel
        value = (int(np.asarray(params).view(np.uint64).reshape(-1)[0])
                 if params is not None and not per_channel else None)
        deq = (QuantParams(per_channel, value), params if per_channel else None)
        mode = p.epilogue if p.coupled or not per_channel else "V" + p.epilogue
        epi = Epilogue(mode, p.out_dtype)
    elif p.epilogue == "VECTOR":
        float_bias = p.bias_dtype not in (None, "int32")
        aiv = AivStage(
            p.out_dtype, dequant=True, scale=_data(scale, functional),
            scale_dtype=p.scale_dtype, has_pertoken=p.pertoken,
            pertoken=_data(pertoken_scale, functional),
            bias_dtype=p.bias_dtype if float_bias else None,
            bias=_data(bias, functional) if float_bias else None,
            bias_rows=nb if p.bias_batched else 1,
            cast=True, saturate=True, label="dequant",  # vector Cast CAST_RINT, saturating
        )
        epi = Epilogue("NONE", "int32")
    else:  # INT32: the accumulator as it is (FixPipe NONE, the table's copy)
        epi = Epilogue("NONE", p.out_dtype)
    ibias = None
    if bias is not None and p.bias_dtype == "int32":
        ibias = (np.asarray(bias).reshape(-1, p.n).astype(np.int32) if functional
                 else np.zeros((nb if p.bias_batched else 1, p.n), np.int32))
    # int4: the int32-packed words are the cube's int4 bytes (value j of a word in bits 4j..4j+3,
    # little-endian: element 2i in the low nibble of byte i), so the GM tensors hold them as is
    kernel = build_matmul_kernel(
        soc, p.m, p.k, p.n, p.in_dtype, t, epi, trans_b=p.trans_x2,
        a=stored_tensor(x1, False), b=stored_tensor(x2, p.trans_x2), bias=ibias,
        name="quant_matmul",
        meta=meta, deq=deq,
        batch=_batch_layout(_shape(x1), _shape(x2), p.batch, p.bias_batched),
        aiv=aiv, split_k_order=_split_order(soc),
        b_nz_c0=_x2_nz_c0(x2, p) if p.x2_nz else 0,
    )
    return Plan(kernel, _kernel_label("quant_matmul", t, p.epilogue), t, functional,
                finish=lambda out: out["c"].reshape(p.out_shape))


#: the declared model of REQ8 / DEQF16 after a multi-core split-K (no CANN QuantBatchMatmulV3
#: kernel splits K for these outputs; npusim runs FixPipe's formula on the vector unit)
SPLIT_K_REQUANT_MODEL = (
    "aiv_fixpipe_formula: the exact int32 sum of the K-slice partials, then on the AIVs "
    "Cast int32->fp32 (RINT), Mul m1 (the parameter's fp32 M1); REQ8: Cast fp32->int32 (RINT, "
    "saturating, NaN -> 0), clamp to [-256, 255], Add the column offset, saturating Cast to "
    "int8 - FixPipe's REQ8 bits; DEQF16: saturating Cast to fp16 - FixPipe's DEQF16 bits "
    "except a product past the fp32 range from finite operands, which is +-inf here, +-65504 "
    "there")


def _split_k_requant_stage(p: QuantMatmulPlan, scale: Any, offset: Any,
                           functional: bool) -> AivStage:
    """The AIV stage of REQ8 / DEQF16 after a split-K reduction (:data:`SPLIT_K_REQUANT_MODEL`);
    m1 and the offsets decoded on the host from npu_trans_quant_param's parameters."""
    from npusim.numerics import decode_quant_param, requant_params
    from npusim.ops.matmul_mix import AivStage
    from npusim.ops.quant_matmul import coupled_deq_params

    m1 = off = None
    if functional:
        params = np.asarray(coupled_deq_params(scale, offset, p)).view(np.int64).reshape(-1)
        if p.epilogue == "REQ8":
            m1, off = requant_params(params)
        else:
            m1 = np.asarray(decode_quant_param(params).m1, dtype=np.float32)
    return AivStage(p.out_dtype, dequant=True, scale=m1, scale_dtype="float32",
                    requant=p.epilogue == "REQ8", offset=off, cast=True, saturate=True,
                    label=f"{p.epilogue} on the AIVs after split-K (declared)")


def default_tiling_matmul(soc: SocDescriptor, **op_args: Any) -> MatmulTiling:
    from npusim.ops.matmul import validate_matmul

    p = validate_matmul(op_args["a"], op_args["b"], out_dtype=op_args.get("out_dtype"),
                        bias=op_args.get("bias"), soc=soc)
    return _tiling(None, p.m, p.k, p.n, p.in_dtype, p.out_dtype, soc, p.trans_b,
                   op_args.get("bias") is not None, split_k=not p.coupled,
                   n_unit=_n_unit(op_args["b"], p.in_dtype, p.b_nz and not p.trans_b))


def default_tiling_quant_matmul(soc: SocDescriptor, **op_args: Any) -> MatmulTiling:
    from npusim.ops.quant_matmul import validate_quant_matmul

    p = validate_quant_matmul(op_args["x1"], op_args["x2"], op_args["scale"],
                              offset=op_args.get("offset"),
                              pertoken_scale=op_args.get("pertoken_scale"),
                              bias=op_args.get("bias"), output_dtype=op_args.get("output_dtype"),
                              soc=soc)
    return _tiling(None, p.m, p.k, p.n, p.in_dtype, p.out_dtype, soc, p.trans_x2,
                   p.bias_dtype == "int32",
                   split_k=not p.coupled and p.epilogue not in ("REQ8", "DEQF16"),
                   quant_vector=_fixpipe_quant_vector(p),
                   n_unit=(max(16, _x2_nz_c0(op_args["x2"], p)) if p.x2_nz and not p.trans_x2
                           else 16))


def _fixpipe_quant_vector(p: Any) -> bool:
    """FixPipe reads per-column quant parameters (VREQ8 / VDEQF16), staged through L1."""
    return not p.coupled and p.epilogue in ("REQ8", "DEQF16") and p.per_channel
