"""torch_npu-named ``npu_quant_matmul`` and the plain ``matmul`` baseline.

numpy arrays in -> numpy arrays out; torch CPU tensors in -> torch tensors out (when torch is
installed). ``soc=`` picks the SoC (default ``Ascend910B2``). The values are the bit-exact
references of :mod:`npusim.ops.quant_matmul` and :mod:`npusim.ops.matmul`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.matmul import dtype_name, reference_matmul
from npusim.ops.quant_matmul import (
    check_pp_matmul,
    reference_quant_matmul,
    takes_pp_matmul,
    validate_quant_matmul,
)

if TYPE_CHECKING:
    from npusim.torch_npu._state import SocArg


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
    soc: SocArg = None,
    fidelity: str | None = None,
) -> Any:
    """W8A8 (and int32-packed int4, A4W4) quantised matmul, as ``torch_npu.npu_quant_matmul``.

    ``output_dtype`` None means int8; a float32 ``scale`` is encoded with
    ``npu_trans_quant_param`` exactly when torch_npu does so (no ``pertoken_scale``, output
    neither bfloat16 nor int32). ``x2`` may be FRACTAL_NZ (A2/A3 weight-NZ path). See
    :mod:`npusim.ops.quant_matmul` for the formulas. ``fidelity`` (default
    :func:`npusim.torch_npu.current_fidelity`): "program" returns the output of the functional
    run of the ``quant_matmul`` tiled program (``simulate``), "reference" computes
    :func:`~npusim.ops.quant_matmul.reference_quant_matmul`; int8 x1 with int32 x2 and
    ``group_sizes`` is A8W4 (:mod:`npusim.ops.quant_matmul_a8w4_program`, its values
    :mod:`npusim.ops.quant_matmul_a8w4`), int32 x1 and x2 with ``group_sizes`` per-group A4W4
    (:mod:`npusim.ops.quant_matmul_a4w4_pergroup_program`, group_k 256; values
    :mod:`npusim.ops.quant_matmul_a4w4_pergroup`). A transposed x1 has no program and raises
    NotImplementedError at "program" naming the switch. Not modelled (NotImplementedError):
    the Ascend950 dtype overrides ``x1_dtype`` / ``x2_dtype`` / ``scale_dtype`` /
    ``pertoken_scale_dtype`` and ``y_scale``.
    """
    from npusim.torch_npu._fidelity import no_program, program_outputs, use_program
    from npusim.torch_npu._state import resolve

    soc = resolve(soc)
    program = use_program(fidelity)
    for name, value in (("x1_dtype", x1_dtype), ("x2_dtype", x2_dtype),
                        ("pertoken_scale_dtype", pertoken_scale_dtype),
                        ("scale_dtype", scale_dtype), ("y_scale", y_scale)):
        if value is not None:
            raise NotImplementedError(f"npu_quant_matmul: {name}= (Ascend950 fp8 / hifloat8 / "
                                      "mx formats) is not modelled")
    (a1, torch_in), (a2, _), (sc, _) = _np(x1, "x1"), _np(x2, "x2"), _np(scale, "scale")
    if getattr(a1, "npu_format", 2) == 29:
        raise ValueError("x1: only ND format is supported (torch_npu: x1 must be ND)")
    rest = {"offset": _np(offset, "offset")[0],
            "pertoken_scale": _np(pertoken_scale, "pertoken_scale")[0],
            "bias": _np(bias, "bias")[0],
            "output_dtype": None if output_dtype is None else dtype_name(output_dtype)}
    b2 = _logical(a2)  # the values; the program reads a2 as stored
    path = _grouped_path(a1, b2, group_sizes)
    if path is not None:
        validate, reference, name = path
        nz_a8w4 = name.startswith("A8W4") and getattr(a2, "npu_format", 2) == 29
        validate(a1, a2 if nz_a8w4 else b2, sc, **rest, group_sizes=group_sizes, soc=soc)
        if program:  # the A8W4 / per-group A4W4 programs
            out = program_outputs("npu_quant_matmul", "quant_matmul", soc, x1=a1, x2=b2,
                                  scale=sc, **rest, group_sizes=group_sizes)
            return _out(np.asarray(out), torch_in)
        return _out(reference(a1, b2, sc, **rest, group_sizes=group_sizes, soc=soc), torch_in)
    p = validate_quant_matmul(a1, b2, sc, **rest, soc=soc)
    pp = replace(p, x2_nz=getattr(a2, "npu_format", 2) == 29)  # the format as passed
    if takes_pp_matmul(pp):
        check_pp_matmul(pp, int(np.asarray(sc).size))
    if not program:
        return _out(reference_quant_matmul(a1, b2, sc, **rest, soc=soc), torch_in)
    if p.trans_x1:
        raise no_program("npu_quant_matmul", "a transposed x1")
    out = program_outputs("npu_quant_matmul", "quant_matmul", soc, x1=a1, x2=a2, scale=sc,
                          **rest)
    return _out(np.asarray(out), torch_in)


def _grouped_path(a1: Any, a2: Any, group_sizes: Any) -> tuple[Any, Any, str] | None:
    """(validate, reference, path name) of an A8W4 / per-group A4W4 call, else None."""
    if getattr(a1, "dtype", None) == np.int8 and getattr(a2, "dtype", None) == np.int32:
        from npusim.ops.quant_matmul_a8w4 import reference_a8w4, validate_a8w4

        return validate_a8w4, reference_a8w4, "A8W4 (int8 x1, int32-packed int4 x2)"
    if group_sizes is None:
        return None
    from npusim.ops.quant_matmul_a8w4 import check_group_sizes

    if not any(check_group_sizes(group_sizes)):
        return None
    if getattr(a1, "dtype", None) != np.int32 or getattr(a2, "dtype", None) != np.int32:
        raise NotImplementedError(
            f"npu_quant_matmul: group_sizes={list(group_sizes)} with x1 {a1.dtype} / "
            f"x2 {a2.dtype} is not modelled (only A8W4 and per-group A4W4)")
    from npusim.ops.quant_matmul_a4w4_pergroup import (
        reference_a4w4_pergroup,
        validate_a4w4_pergroup,
    )

    return (validate_a4w4_pergroup, reference_a4w4_pergroup,
            f"per-group A4W4 (int32-packed int4 x1 and x2, group_sizes={list(group_sizes)})")


def matmul(
    a: Any,
    b: Any,
    *,
    out_dtype: Any = None,
    bias: Any = None,
    allow_hf32: bool = False,
    soc: SocArg = None,
    fidelity: str | None = None,
) -> Any:
    """``a @ b (+ bias)`` on the cube (fp16 / bf16 / fp32 in; same dtype or fp32 out), bit-exact
    to the SoC's declared cube accumulation model. B may be a transposed view (recognised from
    its strides); either operand may be FRACTAL_NZ. ``allow_hf32`` mirrors
    ``torch.npu.matmul.allow_hf32``. ``fidelity``: "program" (default) returns the output of the
    ``matmul`` program's functional run, "reference" computes
    :func:`~npusim.ops.matmul.reference_matmul`; a transposed ``a`` has no program yet."""
    from npusim.ops.matmul import validate_matmul
    from npusim.torch_npu._fidelity import no_program, program_outputs, use_program
    from npusim.torch_npu._state import resolve

    soc = resolve(soc)
    program = use_program(fidelity)
    (aa, torch_in), (bb, _) = _np(a, "a"), _np(b, "b")
    la, lb = _logical(aa), _logical(bb)
    rest = {"out_dtype": None if out_dtype is None else dtype_name(out_dtype),
            "bias": _np(bias, "bias")[0], "allow_hf32": allow_hf32}
    p = validate_matmul(la, lb, **rest, soc=soc)
    if not program:
        return _out(reference_matmul(la, lb, **rest, soc=soc), torch_in)
    if p.trans_a:
        raise no_program("matmul", "a transposed a")
    return _out(np.asarray(program_outputs("matmul", "matmul", soc, a=aa, b=bb, **rest)),
                torch_in)
