"""``torch_npu.npu_quantize`` and ``npu_dynamic_quant`` (+ asymmetric), computed by running
their tiled vector programs (:mod:`npusim.ops.quantize_program`,
:mod:`npusim.ops.dynamic_quant_pertoken`).

``npu_quantize``: ``y = round(x / scales + zero_points)`` (``div_mode=True``, aclnnQuantize) or
``round(x * scales + zero_points)`` (``div_mode=False``, aclnnAscendQuantV3), saturated to the
output type; ``torch.quint4x2`` (``div_mode=False``, Atlas A2 / A3) packs 8 int4 values per
int32 along the last dim. The ``div_mode=False`` chain is the public AscendQuantV2 kernel's; the
``div_mode=True`` one is a declared model (its A2 / 310P kernel is not published; see the
program module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.torch_npu._convert import to_numpy, to_output

if TYPE_CHECKING:
    from npusim.torch_npu._state import SocArg

#: torch dtype name -> (the program's output kind, accepted with div_mode True / False)
_OUT = {"qint8": ("int8", True, True), "int8": ("int8", True, True),
        "quint8": ("uint8", True, False), "uint8": ("uint8", True, False),
        "qint32": ("int32", True, False), "int32": ("int32", True, False),
        "quint4x2": ("int4", False, True)}


def _dtype_key(dtype: Any, div_mode: bool) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in _OUT or not _OUT[name][1 if div_mode else 2]:
        raise TypeError(f"dtype: {dtype!r} not supported with div_mode={div_mode}; must be one "
                        "of torch.qint8, torch.quint8, torch.int32 (div_mode=True) or "
                        "torch.qint8, torch.quint4x2 (div_mode=False)")
    return _OUT[name][0]


def _flat_param(p: Any, x_ndim: int, ax: int, name: str, div_mode: bool) -> np.ndarray:
    """A 1-D parameter: div_mode=False also takes x's rank with every dim 1 but ``ax``."""
    arr = np.asarray(to_numpy(p)[0])
    if arr.ndim == 1:
        return np.ascontiguousarray(arr)
    if not div_mode and arr.ndim == x_ndim and all(
            d == 1 for i, d in enumerate(arr.shape) if i != ax):
        return np.ascontiguousarray(arr.reshape(-1))
    raise ValueError(f"{name}: shape {arr.shape} must be 1-D" + (
        "" if div_mode else f", or {x_ndim}-D with every dim but {ax} equal to 1"))


def npu_quantize(input: Any, scales: Any, zero_points: Any, dtype: Any, axis: int = 1,
                 div_mode: bool = True, *, soc: SocArg = None, fidelity: str | None = None) -> Any:
    """Quantise ``input`` with per-tensor / per-axis ``scales`` and ``zero_points`` by running
    the ``quantize`` program on ``soc`` (module docstring): int8 (``torch.qint8`` /
    ``torch.int8``), uint8 (``torch.quint8``), int32 (``torch.int32`` / ``torch.qint32``) or
    int4 packed 8 per int32 (``torch.quint4x2``). The output is the program's at either
    ``fidelity`` (the chain has no separate numerics model; the tests' oracle is its formula).
    A FRACTAL_NZ input raises NotImplementedError."""
    from npusim.torch_npu._elementwise import soc_name
    from npusim.torch_npu._fidelity import program_outputs
    from npusim.torch_npu._state import resolve_fidelity

    resolve_fidelity(fidelity)  # checked; both fidelities run the program
    if not isinstance(div_mode, bool):
        raise TypeError(f"div_mode: {div_mode!r} must be a bool")
    name = soc_name(soc)
    out = _dtype_key(dtype, div_mode)
    x, was_torch = to_numpy(input)
    if getattr(x, "npu_format", 2) == 29:
        raise NotImplementedError("npu_quantize: a FRACTAL_NZ input (the (e, k, n) float32 "
                                  "quint4x2 weight path) is not modelled")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("input: must have at least 1 dim")
    ax = (x.ndim - 2 if axis == -2 else x.ndim - 1) if not div_mode else axis % x.ndim
    s = _flat_param(scales, x.ndim, ax, "scales", div_mode)
    z = None if zero_points is None else _flat_param(zero_points, x.ndim, ax, "zero_points",
                                                     div_mode)
    out_shape = (*x.shape[:-1], x.shape[-1] // 8) if out == "int4" else x.shape
    ydt = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32, "int4": np.int32}[out]
    if x.size == 0:
        if out == "int4" and x.shape[-1] % 8:
            raise ValueError(f"input: last dim {x.shape[-1]} must be a multiple of 8 for "
                             "torch.quint4x2")
        return to_output(np.zeros(out_shape, ydt), was_torch)
    where = name if soc is None or isinstance(soc, str) else soc
    y = program_outputs("npu_quantize", "quantize", where, x=np.ascontiguousarray(x), scales=s,
                        zero_points=z, dtype=out, axis=int(axis), div_mode=div_mode)
    return to_output(np.asarray(y, dtype=ydt).reshape(out_shape), was_torch)


_DYNAMIC_OUT = {"int8": "int8", "qint8": "int8", "quint4x2": "int4"}


def npu_dynamic_quant(input: Any, *, smooth_scales: Any = None, group_index: Any = None,
                      dst_type: Any = None, quant_mode: str = "pertoken",
                      dst_type_max: float = 0.0, soc: SocArg = None,
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
    y, scale = _dynamic_quant("npu_dynamic_quant", input, smooth_scales, group_index, dst_type,
                              quant_mode, dst_type_max, soc, fidelity, asymmetric=False)
    return y, scale


def npu_dynamic_quant_asymmetric(input: Any, *, smooth_scales: Any = None,
                                 group_index: Any = None, dst_type: Any = None,
                                 quant_mode: str = "pertoken", dst_type_max: float = 0.0,
                                 soc: SocArg = None, fidelity: str | None = None
                                 ) -> tuple[Any, Any, Any]:
    """``torch_npu.npu_dynamic_quant_asymmetric``: per-token asymmetric quantisation,
    ``(y, scale, offset)``: ``scale = (rowmax - rowmin) / (DST_MAX - DST_MIN)``, ``offset =
    DST_MAX - rowmax / scale``, ``y = round(x / scale + offset)`` of ``x (* smooth_scales)``,
    computed by the typed program :mod:`npusim.ops.dynamic_quant_asymmetric` (the public A2
    kernel's chain); arguments, shapes, SoCs and ``fidelity`` as :func:`npu_dynamic_quant`."""
    y, scale, offset = _dynamic_quant(
        "npu_dynamic_quant_asymmetric", input, smooth_scales, group_index, dst_type,
        quant_mode, dst_type_max, soc, fidelity, asymmetric=True)
    return y, scale, offset


def _dynamic_quant(api: str, input: Any, smooth_scales: Any, group_index: Any, dst_type: Any,
                   quant_mode: str, dst_type_max: float, soc: SocArg, fidelity: Any, *,
                   asymmetric: bool) -> tuple[Any, ...]:
    """(y, scale) or, ``asymmetric``, (y, scale, offset): numpy arrays, or tensors for a
    tensor input."""
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
