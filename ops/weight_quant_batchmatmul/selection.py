"""Kernel selection of npu_weight_quant_batchmatmul, as CANN's tiling registry picks it.

A2/A3 (split SoCs) try the templates in priority order and run the first capable one
(ops-semantics 5.3, ops-nn ``weight_quant_batch_matmul_v2_tiling_registry.cpp`` and each
template's ``IsCapable``):

====  ================  ==========================================================================
prio  kernel            capable when (abridged; see the ``_why_not_*`` functions)
====  ================  ==========================================================================
0     SplitK            non-deterministic; bf16 x int8 -> bf16, per-group ND, shape white-list
                        (M, K, N, bias, transA, transB) with an antiquant offset
1     MsdGroup          non-deterministic; per-group int4 g in {64,128} (int8: g 64 + white-list);
                        M <= g/8, K <= 13952, N <= aic*2048, K%g, N%64; no trans, no int8 out;
                        L1 fits
2     Msd / MsdSplitK   no transA, no int64 scale, no int8 out; per-channel M <= 64, K%32, N%32
                        (int4: transB, ND, N >= 2M -> MsdSplitK; int8: MsdSplitK when K > 13696
                        or N > 32000, else Msd); per-group int4 !transB g in {64,128}, M <= g/8,
                        K%g, N%64 -> MsdSplitK
3     CustomNzSplitK    non-deterministic; per-channel, !transA, transB, 65 <= M <= 256,
                        K,N <= 65535 and %64 (or white-list), FRACTAL_NZ, no int8 out
4     Custom            anything except an int64 antiquant scale (NZ per-group: g in {64,128},
                        K%g, K or N %64, !transB)
5     Fixpipe           int64 antiquant scale, fp16 out, int8 weight, K,N %64, M <= 96, transB,
                        !transA, per-channel
6     WeightNz          FRACTAL_NZ transposed weight (on 310P the only template)
====  ================  ==========================================================================

SplitK's white-list is reproduced (``SPLIT_K_WHITE_LIST``: four M = 24 shapes of ops-nn
``weight_quant_batch_matmul_v2_tiling_splitk.cpp``, matched on (M, K, N, bias, transA, transB)
whatever the AIC count, with an antiquant offset required). The other white-lists (MsdGroup for
int8, CustomNzSplitK's unaligned shapes) are not reproduced: they are treated as empty, so those
special cases are never selected. The MSD high-precision shape (M=36, K=8192,
N=1280, transB, no bias) is handled inside the ``Msd`` numerics.

Deterministic mode (``deterministic=True``) excludes SplitK, MsdGroup and CustomNzSplitK, whose
``IsCapable`` return false when the context is deterministic (their partial sums meet through
atomic adds).

On 310P (coupled SoCs) only WeightNz is registered. It is treated as capable for any validated
call: seed 002 allows ND and FRACTAL_NZ int8 weights, transposed or not, on the inference
series, and the kernel reads one layout (the (N, K) weight in FRACTAL_NZ). Declared model
(``WEIGHT_NZ_LAYOUT_MODEL``): any other layout is converted to it before the kernel (by the
aclnn layer, or the graph's use_internal_format_weight), and that conversion is not timed
[INF: the 310P host code was not read].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from npusim.ops.weight_quant_batchmatmul.args import (
    PER_CHANNEL,
    PER_GROUP,
    PER_TENSOR,
    WqbmmArgs,
)
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts, soc_facts

if TYPE_CHECKING:
    from npusim.ops.weight_quant_batchmatmul.soc_facts import SocArg

KERNELS = (
    "SplitK",
    "MsdGroup",
    "Msd",
    "MsdSplitK",
    "CustomNzSplitK",
    "Custom",
    "Fixpipe",
    "WeightNz",
)
NON_DETERMINISTIC = frozenset({"SplitK", "MsdGroup", "CustomNzSplitK"})

MSD_M_LIMIT = 64
MSD_PERCHANNEL_MAX_K = 13696
MSD_PERCHANNEL_MAX_N = 32000
MSD_GROUP_MAX_K = 13952
MSD_GROUP_CUBE_N = 2048
#: MSD_HIGH_PRECISION_LIST (ops-semantics 5.5a): (m, k, n, has_bias, trans_a, trans_b)
MSD_HIGH_PRECISION_SHAPES = frozenset({(36, 8192, 1280, False, False, True)})

WEIGHT_NZ_LAYOUT_MODEL = (
    "310P WeightNz: the weight is taken as the (N, K) FRACTAL_NZ layout the kernel reads; other "
    "layouts are converted before the kernel, untimed (declared model)"
)
_WHITE_LIST = "its shape white-list is not reproduced (treated as empty)"


def _int64_scale(a: WqbmmArgs) -> bool:
    return a.scale_dtype == "int64"


def _det(deterministic: bool) -> str | None:
    if deterministic:
        return "non-deterministic template, excluded in deterministic mode"
    return None


#: MIX_SPLIT_K_WHITE_LIST of ops-nn's SplitK tiling: (m, k, n, has_bias, trans_a, trans_b); its
#: AIC-count field is 1 in the list and in the lookup alike, so it matches on every SoC
SPLIT_K_WHITE_LIST = frozenset({
    (24, 12288, 1792, False, False, False),
    (24, 12288, 7808, False, False, False),
    (24, 3904, 12288, False, False, False),
    (24, 1536, 12288, False, False, False),
})


def _why_not_splitk(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
    if reason := _det(deterministic):
        return reason
    if (a.x_dtype, a.weight_dtype, a.out_dtype) != ("bfloat16", "int8", "bfloat16"):
        return "supports bf16 x int8 -> bf16 only"
    if _int64_scale(a):
        return "no int64 antiquant scale"
    if a.quant_type != PER_GROUP or a.weight_format != "ND":
        return "supports the per-group ND case only"
    if (a.m, a.k, a.n, a.has_bias, a.trans_a, a.trans_b) not in SPLIT_K_WHITE_LIST:
        return "per-group ND: (m, k, n, bias, transA, transB) not in its shape white-list"
    if not a.has_offset:
        return "its white-listed shapes need an antiquant offset"
    return None


def msd_group_l1_fits(a: WqbmmArgs, f: SocFacts) -> bool:
    """MsdGroup's CheckL1Size: A digits of one core's K range plus a double-buffered 2048-wide
    int4 weight group must fit in L1."""
    n_dim = math.ceil(a.n / MSD_GROUP_CUBE_N)
    k_dim = f.aic_num // max(1, n_dim)
    if k_dim == 0:
        return False
    single_k = math.ceil(math.ceil(a.k / k_dim) / a.group_size) * a.group_size
    m_align = math.ceil(4 * a.m / 32) * 32
    al1 = (single_k * m_align) >> 1
    bl1 = (2 * MSD_GROUP_CUBE_N * a.group_size) >> 1
    return al1 + bl1 <= f.l1_bytes


def _why_not_msd_group(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
    if reason := _det(deterministic):
        return reason
    if _int64_scale(a):
        return "no int64 antiquant scale"
    g = a.group_size
    if a.weight_dtype == "int4" and g not in (64, 128):
        return f"int4 needs group size 64 or 128, got {g}"
    if a.weight_dtype == "int8" and g != 64:
        return f"int8 needs group size 64, got {g}"
    max_n = f.aic_num * MSD_GROUP_CUBE_N
    if a.m > g // 8 or a.k > MSD_GROUP_MAX_K or a.n > max_n:
        return f"needs m <= {g // 8}, k <= {MSD_GROUP_MAX_K}, n <= {max_n}"
    if a.k % g != 0 or a.n % 64 != 0:
        return "needs k % group == 0 and n % 64 == 0"
    if a.trans_a or a.trans_b or a.out_dtype == "int8":
        return "no transposed x or weight, no int8 output"
    if a.weight_dtype == "int4":
        return None if msd_group_l1_fits(a, f) else "L1 cannot hold the digits and weight groups"
    return f"int8 weight: {_WHITE_LIST}"


def msd_variant(a: WqbmmArgs) -> tuple[str | None, str | None]:
    """("Msd" | "MsdSplitK", None) when the Msd template is capable, else (None, reason)."""
    if a.trans_a or _int64_scale(a) or a.out_dtype == "int8" or a.quant_type == PER_TENSOR:
        return None, "no transposed x, int64 scale, int8 output or per-tensor quantisation"
    if a.quant_type == PER_CHANNEL:
        if a.m > MSD_M_LIMIT or a.k % 32 != 0 or a.n % 32 != 0:
            return None, f"per-channel needs m <= {MSD_M_LIMIT}, k % 32 == 0, n % 32 == 0"
        if a.weight_dtype == "int4":
            if not a.trans_b or a.weight_format == "NZ":
                return None, "per-channel int4 needs a transposed ND weight"
            if a.n < 2 * a.m:
                return None, "per-channel int4 needs n >= 2m"
            return "MsdSplitK", None
        split = a.k > MSD_PERCHANNEL_MAX_K or a.n > MSD_PERCHANNEL_MAX_N
        return ("MsdSplitK" if split else "Msd"), None
    g = a.group_size
    if a.trans_b or a.weight_dtype != "int4":
        return None, "per-group needs an int4, non-transposed weight"
    if g not in (64, 128) or a.m > g // 8 or a.k % g != 0 or a.n % 64 != 0:
        return None, "per-group needs group 64/128, m <= group/8, k % group == 0, n % 64 == 0"
    return "MsdSplitK", None


def _why_not_msd(name: str) -> Callable[[WqbmmArgs, SocFacts, bool], str | None]:
    def check(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
        variant, reason = msd_variant(a)
        if variant is None:
            return reason
        if variant != name:
            return f"this shape runs the {variant} variant of the Msd template"
        return None

    return check


def _why_not_custom_nz_splitk(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
    if reason := _det(deterministic):
        return reason
    if a.out_dtype == "int8" or _int64_scale(a):
        return "no int8 output, no int64 antiquant scale"
    if a.quant_type != PER_CHANNEL:
        return "per-channel only"
    if a.trans_a or not a.trans_b:
        return "needs non-transposed x and a transposed weight"
    if not 65 <= a.m <= 256 or a.k > 65535 or a.n > 65535:
        return "needs 65 <= m <= 256"
    if a.n % 64 != 0 or a.k % 64 != 0:
        return f"needs n % 64 == 0 and k % 64 == 0 (unaligned shapes: {_WHITE_LIST})"
    if a.weight_format != "NZ":
        return "needs a FRACTAL_NZ weight"
    return None


def _why_not_custom(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
    if _int64_scale(a):
        return "no int64 antiquant scale"
    if a.weight_format == "NZ" and a.quant_type == PER_GROUP:
        g = a.group_size
        if g not in (64, 128):
            return f"NZ per-group needs group size 64 or 128, got {g}"
        if a.k % g != 0:
            return "NZ per-group needs k % group == 0"
        if a.k % 64 != 0 and a.n % 64 != 0:
            return "NZ per-group needs k or n aligned to 64"
        if a.trans_b:
            return "NZ per-group needs a non-transposed weight"
    return None


def _why_not_fixpipe(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
    if a.out_dtype != "float16":
        return "float16 output only"
    if a.weight_dtype == "int4":
        return "int8 weight only"
    if not _int64_scale(a):
        return "needs an int64 antiquant scale"
    if a.n % 64 != 0 or a.k % 64 != 0:
        return "needs n % 64 == 0 and k % 64 == 0"
    if a.m > 96:
        return "needs m <= 96"
    if not a.trans_b or a.trans_a:
        return "needs a transposed weight and non-transposed x"
    if a.quant_type != PER_CHANNEL:
        return "per-channel only"
    return None


def _why_not_weight_nz(a: WqbmmArgs, f: SocFacts, deterministic: bool) -> str | None:
    if not f.split:
        return None  # the only 310P template; layouts are converted before it (module doc)
    if not a.trans_b:
        return "needs a transposed weight"
    if a.weight_format != "NZ":
        return "needs a FRACTAL_NZ weight"
    return None


_CHECKS: dict[str, Callable[[WqbmmArgs, SocFacts, bool], str | None]] = {
    "SplitK": _why_not_splitk,
    "MsdGroup": _why_not_msd_group,
    "Msd": _why_not_msd("Msd"),
    "MsdSplitK": _why_not_msd("MsdSplitK"),
    "CustomNzSplitK": _why_not_custom_nz_splitk,
    "Custom": _why_not_custom,
    "Fixpipe": _why_not_fixpipe,
    "WeightNz": _why_not_weight_nz,
}


def kernel_reasons(args: WqbmmArgs, soc: SocArg, deterministic: bool = False
                   ) -> dict[str, str | None]:
    """For every kernel in priority order: None if capable, else why not."""
    f = soc_facts(soc)
    out: dict[str, str | None] = {}
    for name in KERNELS:
        if not f.split and name != "WeightNz":
            out[name] = f"not registered on {f.name} (only WeightNz is)"
        else:
            out[name] = _CHECKS[name](args, f, deterministic)
    return out


def capable_kernels(args: WqbmmArgs, soc: SocArg, deterministic: bool = False) -> list[str]:
    """Capable kernels in CANN's priority order (the first one is what CANN runs)."""
    return [k for k, why in kernel_reasons(args, soc, deterministic).items() if why is None]


def select_kernel(
    args: WqbmmArgs, soc: SocArg, deterministic: bool = False, kernel: str | None = None
) -> str:
    """The kernel CANN would run, or ``kernel`` if given and capable (research override)."""
    reasons = kernel_reasons(args, soc, deterministic)
    capable = [k for k, why in reasons.items() if why is None]
    if kernel is not None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r}: unknown; kernels are {', '.join(KERNELS)}")
        if kernel not in capable:
            raise ValueError(
                f"kernel={kernel!r}: not capable for this call ({reasons[kernel]}); capable "
                f"kernels: {', '.join(capable) or 'none'}"
            )
        return kernel
    if not capable:
        detail = "; ".join(f"{k}: {why}" for k, why in reasons.items())
        raise ValueError(f"no weight_quant_batchmatmul kernel is capable of this call ({detail})")
    return capable[0]


def is_msd_high_precision(a: WqbmmArgs) -> bool:
    """Whether the Msd kernel runs its HIGH_PRECISION variant (white-listed int8 per-channel
    shape, ops-semantics 5.5a)."""
    if a.weight_dtype != "int8" or a.quant_type != PER_CHANNEL:
        return False
    return (a.m, a.k, a.n, a.has_bias, a.trans_a, a.trans_b) in MSD_HIGH_PRECISION_SHAPES
