"""torch_npu-named elementwise operators: int4pack, trans_quant_param, group_quant, format_cast."""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.torch_npu._convert import to_numpy, to_output

A2A3_PREFIXES = ("Ascend910B", "Ascend910_93")


def _soc_name(soc: Any) -> str:
    if soc is None:
        from npusim.runner import DEFAULT_SOC

        return DEFAULT_SOC
    return soc if isinstance(soc, str) else str(getattr(soc, "name", soc))


def _require_a2a3(op: str, soc: Any) -> None:
    name = _soc_name(soc)
    if not name.startswith(A2A3_PREFIXES):
        raise ValueError(f"soc: {op} is supported on Atlas A2 / A3 only (seed docs), not {name}")


def npu_convert_weight_to_int4pack(weight: Any, inner_k_tiles: int = 0, *, soc: Any = None,
                                   emulate_hardware_masking: bool = False) -> Any:
    """Pack int32 values in [-8, 7] 8 per int32 (host work in torch_npu)."""
    from npusim.ops.int4pack import int4pack

    _require_a2a3("npu_convert_weight_to_int4pack", soc)
    w, t = to_numpy(weight)
    return to_output(int4pack(w, inner_k_tiles,
                              emulate_hardware_masking=emulate_hardware_masking), t)


def npu_trans_quant_param(scale: Any, offset: Any = None, round_mode: int = 0, *,
                          soc: Any = None) -> Any:
    from npusim.ops.trans_quant_param import trans_quant_param

    s, t = to_numpy(scale)
    o, _ = to_numpy(offset)
    return to_output(trans_quant_param(s, o, round_mode), t)


def npu_group_quant(x: Any, scale: Any, group_index: Any, *, offset: Any = None,
                    dst_dtype: Any = None, soc: Any = None,
                    emulate_hardware_trap: bool = False) -> Any:
    from npusim.ops.group_quant import reference_group_quant

    _require_a2a3("npu_group_quant", soc)
    xa, t = to_numpy(x)
    sa, _ = to_numpy(scale)
    gi, _ = to_numpy(group_index)
    off, _ = to_numpy(offset)
    out = reference_group_quant(np.asarray(xa), np.asarray(sa), np.asarray(gi),
                                None if off is None else np.asarray(off), dst_dtype,
                                emulate_hardware_trap=emulate_hardware_trap)
    return to_output(out, t)


def npu_format_cast(x: Any, acl_format: int, *, soc: Any = None) -> Any:
    from npusim.ops.format_cast import format_cast

    xa, t = to_numpy(x)
    if t and hasattr(x, "npu_format"):
        from npusim.layouts import FormattedArray

        xa = FormattedArray(xa, x.npu_format, x.origin_shape)
    return to_output(format_cast(xa, acl_format), t)
