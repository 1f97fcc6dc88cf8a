"""npu_weight_quant_batchmatmul: argument validation, kernel selection, per-kernel numerics and
tilings (ops-semantics 5).

Pipeline: ``normalize_args`` (validate, undo layouts) -> ``select_kernel`` (CANN's template
priority) -> ``compute`` (bit-exact numerics of that kernel) with a ``default_tiling`` /
user tiling checked by ``validate_tiling``.
"""

from npusim.ops.weight_quant_batchmatmul.args import (
    PER_CHANNEL,
    PER_GROUP,
    PER_TENSOR,
    WqbmmArgs,
    is_transpose_last_two_dims,
    normalize_args,
    transpose_nz,
)
from npusim.ops.weight_quant_batchmatmul.compute import NUMERICS_MODELS, compute
from npusim.ops.weight_quant_batchmatmul.selection import (
    KERNELS,
    NON_DETERMINISTIC,
    capable_kernels,
    kernel_reasons,
    select_kernel,
)
from npusim.ops.weight_quant_batchmatmul.tiling import (
    TILING_DEPENDENT_NUMERICS,
    TILING_TYPES,
    CubeBlock,
    CustomNzSplitKTiling,
    CustomTiling,
    FixpipeTiling,
    MsdGroupTiling,
    MsdSplitKTiling,
    MsdTiling,
    default_tiling,
    tiling_as_dict,
    validate_tiling,
)

__all__ = [
    "KERNELS",
    "NON_DETERMINISTIC",
    "NUMERICS_MODELS",
    "PER_CHANNEL",
    "PER_GROUP",
    "PER_TENSOR",
    "TILING_DEPENDENT_NUMERICS",
    "TILING_TYPES",
    "CubeBlock",
    "CustomNzSplitKTiling",
    "CustomTiling",
    "FixpipeTiling",
    "MsdGroupTiling",
    "MsdSplitKTiling",
    "MsdTiling",
    "WqbmmArgs",
    "capable_kernels",
    "compute",
    "default_tiling",
    "is_transpose_last_two_dims",
    "kernel_reasons",
    "normalize_args",
    "select_kernel",
    "tiling_as_dict",
    "transpose_nz",
    "validate_tiling",
]
