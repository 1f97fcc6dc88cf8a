"""torch_npu-named ``npu_quant_matmul`` and the plain ``matmul`` baseline.

numpy arrays in -> numpy arrays out; torch CPU tensors in -> torch tensors out (when torch is
installed). ``soc=`` picks the SoC (default ``Ascend910B2``). The values are the bit-exact
references of :mod:`npusim.ops.quant_matmul` and :mod:`npusim.ops.matmul`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.ops.matmul import dtype_name, reference_matmul
from npusim.ops.quant_matmul import reference_quant_matmul


def _np(x: Any, arg: str) -> tuple[Any, bool]:
    """(numpy array or None, was_torch); a torch view keeps its strides (transposition)."""
    if x is None or isinstance(x, np.ndarray):
        return x, False
    from npusim.torch_npu._convert import to_numpy

    arr, was_torch = to_numpy(x)
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{arg}: {type(x).__name__} is not convertible to a numpy array")
    return arr, bool(was_torch)


def _logical(a: Any) -> Any:
    """A FRACTAL_NZ operand as its logical ND values (a transposed NZ view as the transposed
    view of its origin matrix); anything else unchanged.

    Declared model: the cube multiplies the same values whatever the weight's storage layout;
    NZ changes how the matrix is loaded (timing), not the products or their accumulation."""
    if getattr(a, "npu_format", 2) != 29:
        return a
    from npusim.layouts import nz_to_nd

    nd = nz_to_nd(np.asarray(a).view(np.ndarray), a.origin_shape)
    return np.swapaxes(nd, -1, -2) if getattr(a, "npu_transposed", False) else nd


def _out(out: np.ndarray, was_torch: bool) -> Any:
    if not was_torch:
        return out
    from npusim.torch_npu._convert import to_output

    return to_output(out, True)


def npu_quant_matmul(
    x1: Any,
    x2: Any,
    scale: Any,
    *,
    offset: Any = None,
    pertoken_scale: Any = None,
    bias: Any = None,
    output_dtype: Any = None,
    x1_dtype: Any = None,
    x2_dtype: Any = None,
    pertoken_scale_dtype: Any = None,
    scale_dtype: Any = None,
    group_sizes: Any = None,
    y_scale: Any = None,
    soc: Any = None,
) -> Any:
    """W8A8 (and int32-packed int4, A4W4) quantised matmul, as ``torch_npu.npu_quant_matmul``.

    ``output_dtype`` None means int8; a float32 ``scale`` is encoded with
    ``npu_trans_quant_param`` exactly when torch_npu does so (no ``pertoken_scale``, output
    neither bfloat16 nor int32). ``x2`` may be FRACTAL_NZ (A2/A3 weight-NZ path: read as its
    logical values). See :mod:`npusim.ops.quant_matmul` for the formulas; int8 ``x1`` with
    int32 ``x2`` and ``group_sizes`` is A8W4 (:mod:`npusim.ops.quant_matmul_a8w4`, a declared
    numerics model); int32 x1 and x2 with ``group_sizes`` is per-group A4W4
    (:mod:`npusim.ops.quant_matmul_a4w4_pergroup`, the public kernel's chain). Not modelled
    (raise NotImplementedError naming them): the Ascend950 dtype overrides ``x1_dtype`` /
    ``x2_dtype`` / ``scale_dtype`` / ``pertoken_scale_dtype`` and ``y_scale``.
    """
    from npusim.torch_npu._state import resolve

    soc = resolve(soc)
    for name, value in (("x1_dtype", x1_dtype), ("x2_dtype", x2_dtype),
                        ("pertoken_scale_dtype", pertoken_scale_dtype),
                        ("scale_dtype", scale_dtype), ("y_scale", y_scale)):
        if value is not None:
            raise NotImplementedError(f"npu_quant_matmul: {name}= (Ascend950 fp8 / hifloat8 / "
                                      "mx formats) is not modelled")
    (a1, torch_in), (a2, _), (sc, _) = _np(x1, "x1"), _np(x2, "x2"), _np(scale, "scale")
    if getattr(a1, "npu_format", 2) == 29:
        raise ValueError("x1: only ND format is supported (torch_npu: x1 must be ND)")
    a2 = _logical(a2)
    if getattr(a1, "dtype", None) == np.int8 and getattr(a2, "dtype", None) == np.int32:
        from npusim.ops.quant_matmul_a8w4 import reference_a8w4

        if group_sizes is None:
            raise ValueError("group_sizes: int8 x1 with int32 (int4) x2 is A8W4 and needs "
                             "group_sizes=[0, 0, group_k]")
        out = reference_a8w4(
            a1, a2, sc, offset=_np(offset, "offset")[0],
            pertoken_scale=_np(pertoken_scale, "pertoken_scale")[0], bias=_np(bias, "bias")[0],
            output_dtype=None if output_dtype is None else dtype_name(output_dtype),
            group_sizes=group_sizes, soc=soc)
        return _out(out, torch_in)
    if group_sizes is not None:
        from npusim.ops.quant_matmul_a8w4 import check_group_sizes

        if any(check_group_sizes(group_sizes)):
            if getattr(a1, "dtype", None) != np.int32 or getattr(a2, "dtype", None) != np.int32:
                raise NotImplementedError(
                    f"npu_quant_matmul: group_sizes={list(group_sizes)} with x1 {a1.dtype} / "
                    f"x2 {a2.dtype} is not modelled (only A8W4 and per-group A4W4)")
            from npusim.ops.quant_matmul_a4w4_pergroup import reference_a4w4_pergroup

            out = reference_a4w4_pergroup(
                a1, a2, sc, offset=_np(offset, "offset")[0],
                pertoken_scale=_np(pertoken_scale, "pertoken_scale")[0],
                bias=_np(bias, "bias")[0],
                output_dtype=None if output_dtype is None else dtype_name(output_dtype),
                group_sizes=group_sizes, soc=soc)
            return _out(out, torch_in)
    out = reference_quant_matmul(
        a1, a2, sc,
        offset=_np(offset, "offset")[0], pertoken_scale=_np(pertoken_scale, "pertoken_scale")[0],
        bias=_np(bias, "bias")[0],
        output_dtype=None if output_dtype is None else dtype_name(output_dtype), soc=soc,
    )
    return _out(out, torch_in)


def matmul(
    a: Any,
    b: Any,
    *,
    out_dtype: Any = None,
    bias: Any = None,
    allow_hf32: bool = False,
    soc: Any = None,
) -> Any:
    """``a @ b (+ bias)`` on the cube (fp16 / bf16 / fp32 in; same dtype or fp32 out), bit-exact
    to the SoC's declared cube accumulation model. B may be a transposed view (recognised from
    its strides); either operand may be FRACTAL_NZ (read as its logical values).
    ``allow_hf32`` mirrors ``torch.npu.matmul.allow_hf32``."""
    from npusim.torch_npu._state import resolve

    soc = resolve(soc)
    (aa, torch_in), (bb, _) = _np(a, "a"), _np(b, "b")
    aa, bb = _logical(aa), _logical(bb)
    out = reference_matmul(
        aa, bb, out_dtype=None if out_dtype is None else dtype_name(out_dtype),
        bias=_np(bias, "bias")[0], allow_hf32=allow_hf32, soc=soc,
    )
    return _out(out, torch_in)
