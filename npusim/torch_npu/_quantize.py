"""``torch_npu.npu_quantize`` where its result does not depend on unpublished rounding.

torch_npu documents ``y = round(x / scales + zero_points)`` (``div_mode=True``) or
``y = round(x * scales + zero_points)`` (``div_mode=False``), saturated to the output type;
``torch.quint4x2`` (``div_mode=False`` only, Atlas A2 / A3 only) packs 8 int4 values per int32
along the last dim. The kernel's intermediate precision and rounding mode are not published, so
npusim computes in float64 and accepts only inputs where every ``x*scale (+zp)`` (or
``x/scale (+zp)``) is exactly an integer - there every rounding chain agrees. Other inputs raise
NotImplementedError naming the first element that would need the unpublished rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.torch_npu._convert import to_numpy, to_output

_OUT = {"qint8": ("int8", -128, 127), "quint8": ("uint8", 0, 255), "int32": ("int32", -2**31,
        2**31 - 1), "quint4x2": ("int4", -8, 7), "int8": ("int8", -128, 127)}


def _dtype_key(dtype: Any) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in _OUT:
        raise TypeError(f"dtype: {dtype!r} not supported; must be one of torch.qint8, "
                        "torch.quint8, torch.int32 (div_mode=True) or torch.qint8, "
                        "torch.quint4x2 (div_mode=False)")
    return name


def _along(param: np.ndarray, x: np.ndarray, axis: int, name: str) -> np.ndarray:
    """``param`` broadcast against ``x`` along ``axis``."""
    p = np.asarray(param, dtype=np.float64)
    if p.ndim == 1:
        if p.shape[0] not in (1, x.shape[axis]):
            raise ValueError(f"{name}: shape {p.shape} must be (1,) or ({x.shape[axis]},) "
                             f"(input's dim {axis})")
        shape = [1] * x.ndim
        shape[axis] = p.shape[0]
        p = p.reshape(shape)
    try:
        return np.broadcast_to(p, x.shape)
    except ValueError:
        raise ValueError(f"{name}: shape {p.shape} does not broadcast to input "
                         f"{x.shape}") from None


def npu_quantize(input: Any, scales: Any, zero_points: Any, dtype: Any, axis: int = 1,
                 div_mode: bool = True, *, soc: Any = None) -> Any:
    """Quantise ``input`` with per-axis ``scales`` / ``zero_points`` (module docstring)."""
    from npusim.torch_npu._elementwise import soc_name

    name = soc_name(soc)
    key = _dtype_key(dtype)
    if key == "quint4x2" and (div_mode or not name.startswith(("Ascend910B", "Ascend910_93"))):
        raise ValueError(f"dtype: torch.quint4x2 needs div_mode=False on Atlas A2 / A3; got "
                         f"div_mode={div_mode} on {name}")
    if div_mode and key == "int8":
        key = "qint8"
    x, was_torch = to_numpy(input)
    x = np.asarray(x)
    if x.dtype.name not in ("float32", "float16", "bfloat16"):
        raise TypeError(f"input: dtype {x.dtype} not supported; must be float32, float16 or "
                        "bfloat16")
    if x.ndim == 0:
        raise ValueError("input: must have at least 1 dim")
    ax = (x.ndim - 2 if axis == -2 else x.ndim - 1) if not div_mode else axis % x.ndim
    s = _along(np.asarray(to_numpy(scales)[0]).astype(np.float64), x, ax, "scales")
    xf = x.astype(np.float64)
    v = xf / s if div_mode else xf * s
    if zero_points is not None:
        v = v + _along(np.asarray(to_numpy(zero_points)[0]).astype(np.float64), x, ax,
                       "zero_points")
    frac = v != np.round(v)
    if np.any(frac):
        idx = tuple(int(i[0]) for i in np.nonzero(frac))
        raise NotImplementedError(
            f"npu_quantize: input{list(idx)} gives {float(v[idx])!r}, not an integer; the "
            "kernel's rounding chain for such values is not published (npusim models only "
            "exactly-representable results)")
    out_name, lo, hi = _OUT[key]
    q = np.clip(v, lo, hi).astype(np.int64)
    if key == "quint4x2":
        from npusim.numerics import pack_int4

        if q.shape[-1] % 8:
            raise ValueError(f"input: last dim {q.shape[-1]} must be a multiple of 8 for "
                             "torch.quint4x2")
        out = np.asarray(pack_int4(q.astype(np.int32), mask_out_of_range=True), dtype=np.int32)
    else:
        out = q.astype(out_name)
    return to_output(out, was_torch)


_DYNAMIC_OUT = {"int8": "int8", "qint8": "int8", "quint4x2": "int4"}


def npu_dynamic_quant(input: Any, *, smooth_scales: Any = None, group_index: Any = None,
                      dst_type: Any = None, quant_mode: str = "pertoken",
                      dst_type_max: float = 0.0, soc: Any = None,
                      fidelity: str | None = None) -> tuple[Any, Any]:
    """``torch_npu.npu_dynamic_quant``: per-token symmetric quantisation, ``(y, scale)``.

    ``scale = rowmax(|x (* smooth_scales)|) / DTYPE_MAX`` (127 for int8, 7 for quint4x2) and
    ``y = round(x / scale)``, computed by running the typed per-token program
    (:mod:`npusim.ops.dynamic_quant_pertoken`, the public kernel's fp32 chain) on ``soc``: y is
    int8 of x's shape, or for ``dst_type=torch.quint4x2`` int32 with 8 int4 per word (last dim
    / 8); scale is float32 of x's shape without its last dim. Atlas A2 / A3 only (torch_npu
    docs). MoE ``group_index`` (cumulative int32 end rows of the flattened rows) picks each
    row's ``smooth_scales`` row. Not modelled (NotImplementedError): ``quant_mode`` other than
    "pertoken", ``dst_type_max``. The outputs are the program's at either ``fidelity``: the
    per-token chain has no separate numerics model in the package (its formula is the tests'
    oracle)."""
    return _dynamic_quant("npu_dynamic_quant", input, smooth_scales, group_index, dst_type,
                          quant_mode, dst_type_max, soc, fidelity, asymmetric=False)


def npu_dynamic_quant_asymmetric(input: Any, *, smooth_scales: Any = None,
                                 group_index: Any = None, dst_type: Any = None,
                                 quant_mode: str = "pertoken", dst_type_max: float = 0.0,
                                 soc: Any = None, fidelity: str | None = None
                                 ) -> tuple[Any, Any, Any]:
    """``torch_npu.npu_dynamic_quant_asymmetric``: per-token asymmetric quantisation,
    ``(y, scale, offset)``: ``scale = (rowmax - rowmin) / (DST_MAX - DST_MIN)``, ``offset =
    DST_MAX - rowmax / scale``, ``y = round(x / scale + offset)`` of ``x (* smooth_scales)``,
    computed by the typed program :mod:`npusim.ops.dynamic_quant_asymmetric` (the public A2
    kernel's chain); arguments, shapes, SoCs and ``fidelity`` as :func:`npu_dynamic_quant`."""
    return _dynamic_quant("npu_dynamic_quant_asymmetric", input, smooth_scales, group_index,
                          dst_type, quant_mode, dst_type_max, soc, fidelity, asymmetric=True)


def _dynamic_quant(api: str, input: Any, smooth_scales: Any, group_index: Any, dst_type: Any,
                   quant_mode: str, dst_type_max: float, soc: Any, fidelity: Any, *,
                   asymmetric: bool):
    from npusim.torch_npu._elementwise import soc_name
    from npusim.torch_npu._fidelity import program_outputs
    from npusim.torch_npu._state import resolve_fidelity

    resolve_fidelity(fidelity)  # checked; both fidelities run the program
    name = soc_name(soc)
    if not name.startswith(("Ascend910B", "Ascend910_93")):
        raise ValueError(f"soc: {api} is not supported on {name}; it runs on Atlas A2 / A3 "
                         "only (torch_npu docs)")
    if quant_mode != "pertoken":
        raise NotImplementedError(
            f"{api}: quant_mode={quant_mode!r} is not modelled (aclnnDynamicQuantV3 / V4; the "
            "torch_npu docs give only per-token quantisation on Atlas A2 / A3, and the "
            "upstream per-channel test runs on Ascend950)")
    if dst_type_max != 0.0:
        raise NotImplementedError(f"{api}: dst_type_max={dst_type_max!r} is not modelled "
                                  "(aclnnDynamicQuantV4; only the dtype's own maximum)")
    key = "int8" if dst_type is None else str(dst_type).removeprefix("torch.")
    if key not in _DYNAMIC_OUT:
        raise TypeError(f"dst_type: {dst_type!r} not supported; must be None, torch.int8 or "
                        "torch.quint4x2 (Atlas A2 / A3)")
    out = _DYNAMIC_OUT[key]
    x, was_torch = to_numpy(input)
    x = np.asarray(x)
    if x.dtype.name not in ("float16", "bfloat16"):
        raise TypeError(f"input: dtype {x.dtype} not supported; must be float16 or bfloat16")
    if x.ndim < 2:
        raise ValueError(f"input: must have more than 1 dim, got shape {x.shape}")
    if out == "int4" and x.shape[-1] % 8:
        raise ValueError(f"input: last dim {x.shape[-1]} must be a multiple of 8 for "
                         "torch.quint4x2")
    smooth = gi = None
    if smooth_scales is not None:
        smooth = np.ascontiguousarray(to_numpy(smooth_scales)[0])
        want = (x.shape[-1],) if group_index is None else (smooth.shape[0], x.shape[-1])
        if smooth.ndim != len(want) or smooth.shape != want or smooth.dtype != x.dtype:
            raise ValueError(f"smooth_scales: shape {smooth.shape} / dtype {smooth.dtype} must "
                             f"be 1-D ({x.shape[-1]},) without group_index, 2-D (groups, "
                             f"{x.shape[-1]}) with it, in input's dtype {x.dtype}")
    if group_index is not None:
        gi = np.asarray(to_numpy(group_index)[0])
        if smooth is not None and gi.shape != (smooth.shape[0],):
            raise ValueError(f"group_index: shape {gi.shape} must be ({smooth.shape[0]},) (one "
                             "end row per smooth_scales row)")
    rows = int(np.prod(x.shape[:-1]))
    if rows == 0:
        raise ValueError(f"input: shape {x.shape} has no rows")
    where = name if soc is None or isinstance(soc, str) else soc
    y, *stats = program_outputs(api, "dynamic_quant", where,
                                x=np.ascontiguousarray(x).reshape(rows, x.shape[-1]),
                                dst_type=out, smooth_scales=smooth, group_index=gi,
                                asymmetric=asymmetric)
    y = np.asarray(y).reshape(*x.shape[:-1], -1)
    stats = [to_output(np.asarray(v).reshape(x.shape[:-1]), was_torch) for v in stats]
    return (to_output(y, was_torch), *stats)
