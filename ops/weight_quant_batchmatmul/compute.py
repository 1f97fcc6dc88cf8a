"""``compute``: the output of one kernel for one validated call (pure numpy, bit-exact to the
declared models listed in ``NUMERICS_MODELS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.weight_quant_batchmatmul import vector_ops
from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.numerics_custom import custom, custom_nz_splitk
from npusim.ops.weight_quant_batchmatmul.numerics_fixpipe import fixpipe
from npusim.ops.weight_quant_batchmatmul.numerics_msd import msd_group, msd_multicore, msd_split_k
from npusim.ops.weight_quant_batchmatmul.numerics_splitk import MODEL as SPLIT_K_MODEL
from npusim.ops.weight_quant_batchmatmul.numerics_splitk import split_k, split_k_unsupported
from npusim.ops.weight_quant_batchmatmul.numerics_weight_nz import MODEL as WEIGHT_NZ_MODEL
from npusim.ops.weight_quant_batchmatmul.numerics_weight_nz import weight_nz_310p
from npusim.ops.weight_quant_batchmatmul.selection import (
    capable_kernels,
    is_msd_high_precision,
)
from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts
from npusim.ops.weight_quant_batchmatmul.tiling import (
    TILING_DEPENDENT_NUMERICS,
    default_tiling,
    validate_tiling,
)

if TYPE_CHECKING:
    from npusim.ops.weight_quant_batchmatmul.soc_facts import SocArg

_VECTOR = (
    f"vector ops IEEE RNE; Axpy/MulAddDst fused={vector_ops.AXPY_FUSED}; BlockReduceSum "
    f"order={vector_ops.BLOCK_REDUCE_ORDER}; Div={vector_ops.VECTOR_DIV}"
)

#: what each kernel's output is exact to (surfaced by explain())
NUMERICS_MODELS: dict[str, str] = {
    "Custom": "fp16: dequant Add then Mul (fp16 RNE each); bf16: dequant in fp32, one RNE to "
    "bf16; cube = SoC cube accumulation model with bias as initial value; fixpipe RNE (or int8 "
    "requant); exact to the declared cube model",
    "CustomNzSplitK": "dequant as Custom (bf16: offset via fp16, scale after the matmul); per-core "
    "K partials in the cube model, added in split_k_reduction_order; CAST_ROUND post pass; "
    "exact to the declared cube model and reduction order",
    "Msd": "digit split (E1=127.499, CAST_ROUND), exact int8 matmuls, fp32 recombination, "
    "CAST_ROUND output; " + _VECTOR,
    "MsdSplitK": "digit split per K block / group, exact integer matmuls, fp32 (inner_precise 1: "
    "fp16 fixpipe + fp16 Axpy) recombination, CAST_ROUND output; depends on tiling v1_base_k / "
    "group_pack; " + _VECTOR,
    "MsdGroup": "digit split per group, exact int4 matmuls, fp32 (inner_precise 1: fp16 fixpipe + "
    "fp16 Axpy) recombination, per-core partials added in split_k_reduction_order, CAST_ROUND "
    "output; depends on tiling single_core_k; " + _VECTOR,
    "Fixpipe": "w16 = DEQF16(w + off, M1) (declared: fp32 product RNE, fp16 RNE saturating), "
    "fp16 matmul in the cube model with fp16 bias, fixpipe RNE",
    "SplitK": SPLIT_K_MODEL + "; exact to the declared cube model and reduction order",
    "WeightNz": WEIGHT_NZ_MODEL + "; A2/A3 WeightNz (custom_weight_nz, read from ops-nn "
    "weight_quant_batch_matmul_v2_custom_weight_nz.h): the Custom chain (fp16 Add then Mul in "
    "fp16; bf16 fp32 Add / Mul, Cast RINT), bias as the cube's initial value, FixPipe RNE",
}


def compute(args: WqbmmArgs, kernel: str, soc: SocArg = None, tiling: Any = None) -> np.ndarray:
    """Output of ``kernel`` for ``args`` on ``soc``.

    ``kernel`` must be capable of the call (ignoring deterministic mode). ``tiling`` defaults to
    ``default_tiling`` and is validated; it changes the numbers only for MsdSplitK, MsdGroup and
    CustomNzSplitK.
    """
    facts = soc_facts(soc)
    capable = capable_kernels(args, soc)
    if kernel not in capable:
        raise ValueError(
            f"kernel={kernel!r}: not capable of this call; capable kernels: "
            f"{', '.join(capable) or 'none'}"
        )
    if kernel == "WeightNz":
        # A2/A3 custom_weight_nz: Custom's dequant chain (cast, offset, scale in fp16, or fp32
        # for bf16 x) and cube/FixPipe path, read from the kernel's structure
        return custom(args, facts) if facts.split else weight_nz_310p(args, facts)
    if kernel == "SplitK" and (why := split_k_unsupported(args)):
        raise NotImplementedError(f"kernel 'SplitK' (white-listed shape): {why}")
    if tiling is None:
        tiling = default_tiling(args, soc, kernel)
    validate_tiling(tiling, args, soc, kernel)
    if kernel == "Custom":
        return custom(args, facts)
    if kernel == "CustomNzSplitK":
        return custom_nz_splitk(args, facts, tiling)
    if kernel == "Msd":
        return msd_multicore(args, facts, high_precision=is_msd_high_precision(args))
    if kernel == "MsdSplitK":
        return msd_split_k(args, facts, tiling)
    if kernel == "MsdGroup":
        return msd_group(args, facts, tiling)
    if kernel == "Fixpipe":
        return fixpipe(args, facts)
    if kernel == "SplitK":
        return split_k(args, facts)
    raise NotImplementedError(f"kernel={kernel!r}: no numerics")


__all__ = ["NUMERICS_MODELS", "TILING_DEPENDENT_NUMERICS", "compute"]
