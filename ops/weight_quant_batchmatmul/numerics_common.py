"""Helpers shared by the kernel numerics: parameter broadcasting, output casts, requant."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import numpy as np

from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs

T = TypeVar("T")

F32 = np.float32


def expand_rows(param: np.ndarray, k: int, group_size: int) -> np.ndarray:
    """(G, N) antiquant parameter -> per-K-row view: (1, N) for G == 1, else (K, N) with group
    g covering rows [g*G, (g+1)*G) (the last group may be partial)."""
    if param.shape[0] == 1:
        return param
    return np.repeat(param, group_size, axis=0)[:k]


def params_f32(args: WqbmmArgs) -> tuple[np.ndarray, np.ndarray | None]:
    """(G, N) antiquant scale and offset as float32 (exact casts of fp16 / bf16)."""
    scale = args.antiquant_scale.astype(F32)
    offset = None if args.antiquant_offset is None else args.antiquant_offset.astype(F32)
    return scale, offset


def bias_f32(args: WqbmmArgs) -> np.ndarray | None:
    """Bias as float32 (fp16 -> fp32 exact, as loaded into the bias table / cast on AIV)."""
    return None if args.bias is None else args.bias.astype(F32)


def fixpipe_round(acc: np.ndarray, out_dtype: str) -> np.ndarray:
    """FixPipe F322F16 / F322BF16 on A2 / A3: RNE (documented); overflow gives +-inf, the
    default Inf/NaN float-overflow mode of these SoCs (CANN ``aclrtFloatOverflowMode``; the same
    rule as ``ops.matmul.FIXPIPE_CAST_SATURATES`` and the semantics table's FixPipe)."""
    from npusim.numerics import RoundMode, cast_float

    return np.asarray(cast_float(acc, out_dtype, RoundMode.RINT, saturate=False))


def saturating_round(acc: np.ndarray, out_dtype: str) -> np.ndarray:
    """The fp32 -> fp16 / bf16 conversion on the Atlas inference series (310P), which supports
    only the saturation overflow mode: RNE, overflow to +-max (CANN runtime documentation)."""
    from npusim.numerics import RoundMode, cast_float

    return np.asarray(cast_float(acc, out_dtype, RoundMode.RINT, saturate=True))


def vector_round(acc: np.ndarray, out_dtype: str) -> np.ndarray:
    """Vector Cast fp32 -> fp16/bf16 with CAST_ROUND (ties away from zero), saturating."""
    from npusim.numerics import RoundMode, cast_float

    return np.asarray(cast_float(acc, out_dtype, RoundMode.ROUND, saturate=True))


def requant_output(acc: np.ndarray, quant_param: np.ndarray) -> np.ndarray:
    """int8 output through the fixpipe requant (QF322B8_PRE / VQF322B8_PRE, ops-semantics 5.4):
    clip(clip(rne(acc * M1), -256, 255) + offset9, -128, 127)."""
    from npusim.numerics import requant_with_params

    return requant_with_params(acc, np.asarray(quant_param, dtype=np.int64))


def required(value: T | None, name: str, rule: str) -> T:
    """``value`` narrowed to not-None; None is a ValueError naming ``name`` and ``rule`` (the
    paths that call it get the value from the argument normalisation, which always sets it)."""
    if value is None:
        raise ValueError(f"{name}: {rule}")
    return value


def ordered_partials(partials: Iterable[T], facts: object) -> list[T]:
    """Split-K partial results (one per core, core index ascending) in the order the SoC's
    declared ``split_k_reduction_order`` adds them (hardware atomics are unordered)."""
    order = getattr(facts, "split_k_order", "core_index_ascending")
    if order != "core_index_ascending":
        raise NotImplementedError(
            f"split_k_reduction_order={order!r}: only core_index_ascending is implemented"
        )
    return list(partials)
