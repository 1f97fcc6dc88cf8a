"""Numerics of the dequantise-then-matmul kernels: ``Custom`` and ``CustomNzSplitK``.

``Custom`` (ops-semantics 5.4; ``weight_quant_batch_matmul_v2_custom.h``):

- fp16 x: ``w16 = half(w)`` (exact), ``w16 = fp16(w16 + offset)`` if an offset is given, then
  ``w16 = fp16(w16 * scale)`` - two vector fp16 operations, each RNE;
- bf16 x: in fp32, ``w32 = (float(w) + offset) * scale`` (each op RNE), then one RNE cast to
  bf16 (saturating);
- per-tensor / per-channel / per-group parameters broadcast along K (group g covers rows
  [g*G, (g+1)*G), the last group may be partial);
- cube: ``acc = bias + x @ w`` in fp32 in the SoC's declared cube accumulation model (bias,
  fp16 or fp32, is the accumulator's initial value from the bias table);
- output: fixpipe F322F16 / F322BF16 (RNE), or int8 through the fixpipe requant.

``CustomNzSplitK`` (``weight_quant_batch_matmul_v2_custom_nz_splitk.h``, per-channel, FRACTAL_NZ
transposed weight, 65 <= M <= 256):

- fp16 x: the weight is dequantised as in Custom; bf16 x: the bf16 offset goes fp32 -> fp16
  (RNE, saturating), ``w16 = fp16(half(w) + off16)`` and ``wbf16 = bf16_rne(float(w16))`` -
  the scale is *not* applied to the weight but to the fp32 result;
- each of ``cube_block_dim_k`` AICs multiplies x by its ``single_core_k`` rows of weight (cube
  model within the block); when a post-processing pass is needed (more than one K block, bf16
  x, or a bias) the fp32 partials are added (atomic add into a zeroed workspace, in the SoC's
  ``split_k_reduction_order``), then (bf16) ``* scale``, ``+ bias`` and the vector Cast with
  CAST_ROUND; otherwise the single partial leaves through fixpipe F322F16 (RNE).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from npusim.numerics.cube import cube_matmul_float
from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.numerics_common import (
    F32,
    bias_f32,
    expand_rows,
    fixpipe_round,
    ordered_partials,
    params_f32,
    requant_output,
    required,
    vector_round,
)
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts
from npusim.ops.weight_quant_batchmatmul.tiling import CustomNzSplitKTiling

F16 = np.float16


def dequant_weight_fp16(args: WqbmmArgs) -> np.ndarray:
    """fp16 x: (K, N) float16 weight, Add then Mul, each RNE in fp16."""
    g = args.group_size
    w16 = args.weight.astype(F16)
    with np.errstate(over="ignore"):
        if args.antiquant_offset is not None:
            w16 = (w16 + expand_rows(args.antiquant_offset, args.k, g)).astype(F16)
        return cast(np.ndarray, (w16 * expand_rows(args.antiquant_scale, args.k, g)).astype(F16))


def dequant_weight_bf16(args: WqbmmArgs) -> np.ndarray:
    """bf16 x: (K, N) bfloat16 weight, (w + off) * scale in fp32, one RNE cast to bf16."""
    from npusim.numerics import RoundMode, cast_float

    g = args.group_size
    scale, offset = params_f32(args)
    w32 = args.weight.astype(F32)
    with np.errstate(over="ignore"):
        if offset is not None:
            w32 = (w32 + expand_rows(offset, args.k, g)).astype(F32)
        w32 = (w32 * expand_rows(scale, args.k, g)).astype(F32)
    return np.asarray(cast_float(w32, "bfloat16", RoundMode.RINT, saturate=True))


def dequant_weight_custom(args: WqbmmArgs) -> np.ndarray:
    """The dequantised weight the Custom kernel writes to its GM workspace."""
    return dequant_weight_fp16(args) if args.x_dtype == "float16" else dequant_weight_bf16(args)


def custom(args: WqbmmArgs, facts: SocFacts) -> np.ndarray:
    """Output of the Custom kernel (fp16/bf16, or int8 with a quant_scale)."""
    w = dequant_weight_custom(args)
    acc = cube_matmul_float(args.x, w, model=facts.cube_model, bias=bias_f32(args))
    if args.out_dtype == "int8":
        rule = "an int8 output needs the fixpipe quant parameters (quant_scale)"
        return requant_output(acc, required(args.quant_param, "quant_param", rule))
    return fixpipe_round(acc, args.out_dtype)


def dequant_weight_nz_splitk(args: WqbmmArgs) -> np.ndarray:
    """The dequantised weight of CustomNzSplitK (bf16: offset only, via fp16)."""
    if args.x_dtype == "float16":
        return dequant_weight_fp16(args)
    from npusim.numerics import RoundMode, cast_float

    w16 = args.weight.astype(F16)
    if args.antiquant_offset is not None:
        off16 = np.asarray(
            cast_float(args.antiquant_offset.astype(F32), "float16", RoundMode.RINT, saturate=True)
        )
        with np.errstate(over="ignore"):
            w16 = (w16 + off16).astype(F16)
    return np.asarray(cast_float(w16.astype(F32), "bfloat16", RoundMode.RINT, saturate=True))


def k_blocks(k: int, single_core_k: int) -> list[tuple[int, int]]:
    """[start, end) K ranges of consecutive cores of ``single_core_k`` rows."""
    return [(k0, min(k, k0 + single_core_k)) for k0 in range(0, k, single_core_k)]


def custom_nz_splitk(args: WqbmmArgs, facts: SocFacts, tiling: CustomNzSplitKTiling) -> np.ndarray:
    """Output of the CustomNzSplitK kernel for ``tiling``."""
    w = dequant_weight_nz_splitk(args)
    blocks = k_blocks(args.k, tiling.single_core_k)
    bias = bias_f32(args)
    post = len(blocks) > 1 or args.x_dtype == "bfloat16" or bias is not None
    model = facts.cube_model
    if not post:
        return fixpipe_round(cube_matmul_float(args.x, w, model=model), args.out_dtype)
    ws = np.zeros((args.m, args.n), dtype=F32)
    for k0, k1 in ordered_partials(blocks, facts):
        part = cube_matmul_float(args.x[:, k0:k1], w[k0:k1], model=model)
        ws = (ws + part).astype(F32)
    if args.x_dtype == "bfloat16":
        ws = (ws * args.antiquant_scale.astype(F32)).astype(F32)
    if bias is not None:
        ws = (ws + bias).astype(F32)
    return vector_round(ws, args.out_dtype)
