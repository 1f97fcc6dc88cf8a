"""Numerics of the ``SplitK`` kernel (ops-nn ``weight_quant_batch_matmul_v2_custom_mix_splitk.h``,
``WeightQuantBatchMatmulV2MixSplitKKernel``: bf16 x, int8 ND weight, per-group with offset, bf16
out; selected only for the white-listed shapes of ``selection.SPLIT_K_WHITE_LIST``).

Read from the kernel (behaviour, no code copied):

- offset: bf16 -> fp32 (exact) -> fp16 (CAST_NONE, i.e. RNE; saturating); scale: bf16 -> fp32;
- weight: ``h = half(w)`` (exact), ``h = fp16(h + off16)`` (vector Add in fp16, RNE),
  ``f = float(h) * scale`` (fp32 Mul, RNE), ``wbf16 = Cast(f, CAST_RINT)`` - unlike Custom's
  bf16 chain, the offset is added in fp16;
- cube: every group's product ``x[:, g] @ wbf16[g]`` in the SoC's declared cube accumulation
  model, FixPipe'd as fp32 with atomic add into a zeroed (M, N) fp32 workspace; the device's
  order of those adds is not published: the declared model ``split_k_reduction_order``
  (``core_index_ascending``: core by core, each core's groups in K order, i.e. all groups in
  K order) is used;
- output: vector Cast fp32 -> bf16 with CAST_RINT (saturating). No bias, no post-scale.

The numbers do not depend on the tiling (whatever the K blocks, the groups meet in K order).
"""

from __future__ import annotations

import numpy as np

from npusim.numerics import RoundMode, cast_float
from npusim.numerics.cube import cube_matmul_float
from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.numerics_common import (
    F32,
    expand_rows,
    ordered_partials,
)
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts

MODEL = (
    "offset bf16 -> fp32 -> fp16 (RNE), Add in fp16, Mul scale in fp32, Cast RINT to bf16; "
    "per-group fp32 products in the cube model atomically added into a zeroed fp32 workspace "
    "in split_k_reduction_order (all groups in K order); Cast RINT to bf16"
)


def split_k_unsupported(args: WqbmmArgs) -> str | None:
    """Why the SplitK kernel, as published, does not compute this call (None if it does): its
    fixed buffers and loops hold 32 <= group <= 64, whole groups, 128-element column repeats and
    one 32-row M block."""
    g = args.group_size
    if not 32 <= g <= 64 or g % 32:
        return (f"group size {g}: its 128 KiB L1 buffer holds a dequantised group of at most 64 "
                "rows x 1024 bf16 columns (ops-nn SplitK kernel: CopyInBL1 loads a whole group, "
                "unsplit); larger groups overflow it. CANN's host tiling still selects SplitK "
                "for the white-listed shape (its IsCapable checks no group size), so no other "
                "kernel computes this call")
    if args.k % g:
        return (f"k={args.k} is not whole groups of {g}: the kernel loops over k / group groups "
                "and drops a partial last one")
    if args.n % 128:
        return (f"n={args.n}: the kernel's fp16 Add covers whole 128-element repeats of each "
                "512-column tile, so a tail that is not a multiple of 128 is left unprocessed")
    last = args.n - (args.n - 1) // 1024 * 1024
    if last <= 512:
        return (f"n={args.n}: its last 1024-column chunk has {last} <= 512 columns, so the "
                "second AIV of that chunk's AIC has no task while the AIC waits for both "
                "(the kernel's mode-2 flag would never arrive)")
    if args.m > 32:
        return (f"m={args.m}: one 32-row M block with a double-buffered 32 x 512 fp32 L0C is "
                "modelled (the white-listed M is 24)")
    return None


def dequant_weight_split_k(args: WqbmmArgs) -> np.ndarray:
    """The (K, N) bf16 weight the SplitK AIVs write to the workspace."""
    g = args.group_size
    if args.antiquant_offset is None:  # selection requires it; a direct call must say so
        raise ValueError("antiquant_offset: the SplitK kernel needs a per-group antiquant "
                         "offset (its white-list entries all carry one)")
    off32 = args.antiquant_offset.astype(F32)
    off16 = np.asarray(cast_float(off32, "float16", RoundMode.RINT, saturate=True))
    with np.errstate(over="ignore", invalid="ignore"):
        h = (args.weight.astype(np.float16) + expand_rows(off16, args.k, g)).astype(np.float16)
        f = (h.astype(F32) * expand_rows(args.antiquant_scale.astype(F32), args.k, g)).astype(F32)
    return np.asarray(cast_float(f, "bfloat16", RoundMode.RINT, saturate=True))


def split_k(args: WqbmmArgs, facts: SocFacts) -> np.ndarray:
    """Output of the SplitK kernel."""
    w = dequant_weight_split_k(args)
    g = args.group_size
    groups = [(k0, min(args.k, k0 + g)) for k0 in range(0, args.k, g)]
    acc = np.zeros((args.m, args.n), dtype=F32)
    for k0, k1 in ordered_partials(groups, facts):
        part = cube_matmul_float(args.x[:, k0:k1], w[k0:k1], model=facts.cube_model)
        acc = (acc + part).astype(F32)
    return np.asarray(cast_float(acc, "bfloat16", RoundMode.RINT, saturate=True))
