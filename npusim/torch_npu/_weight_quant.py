"""torch_npu-named ``npu_weight_quant_batchmatmul`` and ``explain_weight_quant_batchmatmul``.

numpy arrays in -> numpy array out; torch CPU tensors in -> torch tensor out (when torch is
installed). The result is the bit-exact output of the kernel CANN would run on ``soc``
(default ``Ascend910B2``; see :mod:`npusim.ops.weight_quant_batchmatmul`). Keywords beyond
torch_npu's signature: ``soc``, ``kernel`` (force any capable kernel, for research),
``deterministic`` (CANN's deterministic mode, which excludes the atomic-add templates) and
``tiling`` (a user tiling for the chosen kernel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.ops.weight_quant_batchmatmul import (
    NUMERICS_MODELS,
    TILING_DEPENDENT_NUMERICS,
    WqbmmArgs,
    compute,
    default_tiling,
    kernel_reasons,
    normalize_args,
    select_kernel,
    tiling_as_dict,
)

if TYPE_CHECKING:
    from npusim.torch_npu._state import SocArg

_ARG_NAMES = (
    "x",
    "weight",
    "antiquant_scale",
    "antiquant_offset",
    "quant_scale",
    "quant_offset",
    "bias",
)


def _to_numpy(value: Any, name: str) -> tuple[Any, bool]:
    """(numpy array or None, was_torch). Strides of a torch view are kept (transposition)."""
    if value is None or isinstance(value, np.ndarray):
        return value, False
    from npusim.torch_npu._convert import to_numpy

    arr, was_torch = to_numpy(value)
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name}={type(value).__name__}: not convertible to a numpy array")
    return arr, bool(was_torch)


_INT4_NAMES = ("quint4x2", "int4", "int32")


def _check_weight_dtype(weight_dtype: Any, weight: Any) -> None:
    """torch_npu's ``weight_dtype=``: None infers from the weight; torch.int8 needs an int8
    weight, torch.quint4x2 (or an int4 name) an int32 weight carrying 8 int4 values. The
    Ascend950 formats (hifloat8, float8, float4) are not modelled."""
    if weight_dtype is None:
        return
    name = str(weight_dtype).removeprefix("torch.").removeprefix("torch_npu.")
    w_dtype = str(getattr(weight, "dtype", "")).removeprefix("torch.")
    if name == "int8" and w_dtype == "int8":
        return
    if name in _INT4_NAMES and w_dtype == "int32":
        return
    if name in ("int8", *_INT4_NAMES):
        raise TypeError(f"weight_dtype={weight_dtype!r} does not match weight.dtype={w_dtype} "
                        "(int8 weight for int8; int32 carrying int4 for quint4x2)")
    raise NotImplementedError(f"weight_dtype={weight_dtype!r}: only int8 and int4 weights are "
                              "modelled (hifloat8 / float8 / float4 weights are Ascend950-only)")


def _normalize(
    x: Any,
    weight: Any,
    antiquant_scale: Any,
    antiquant_offset: Any,
    quant_scale: Any,
    quant_offset: Any,
    bias: Any,
    antiquant_group_size: int,
    inner_precise: int,
    soc: SocArg,
    weight_dtype: Any = None,
) -> tuple[WqbmmArgs, bool]:
    _check_weight_dtype(weight_dtype, weight)
    values = (x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias)
    arrays = []
    torch_in = False
    for name, value in zip(_ARG_NAMES, values, strict=True):
        arr, was_torch = _to_numpy(value, name)
        arrays.append(arr)
        torch_in = torch_in or (name == "x" and was_torch)
    xa, wa, scale, offset, qscale, qoffset, bias_a = arrays  # the seven _ARG_NAMES
    args = normalize_args(
        xa, wa, scale, offset, qscale, qoffset, bias_a,
        antiquant_group_size=antiquant_group_size,
        inner_precise=inner_precise,
        soc=soc,
    )
    return args, torch_in


def npu_weight_quant_batchmatmul(
    x: Any,
    weight: Any,
    antiquant_scale: Any,
    antiquant_offset: Any = None,
    quant_scale: Any = None,
    quant_offset: Any = None,
    bias: Any = None,
    antiquant_group_size: int = 0,
    inner_precise: int = 0,
    *,
    soc: SocArg = None,
    kernel: str | None = None,
    deterministic: bool = False,
    tiling: Any = None,
    weight_dtype: Any = None,
    fidelity: str | None = None,
) -> Any:
    """``y = x @ dequant(weight)`` as ``torch_npu.npu_weight_quant_batchmatmul`` computes it.

    x (M, K) fp16/bf16; weight (K, N) int8 or int32-packed int4, ND or FRACTAL_NZ, possibly a
    transposed view of an (N, K) array; antiquant_scale / antiquant_offset per-tensor,
    per-channel or per-group (antiquant_group_size); quant_scale / quant_offset give int8
    output. Returns (M, N) in x's dtype, or int8. ``fidelity`` (default
    :func:`npusim.torch_npu.current_fidelity`): "program" reads y from the functional run of the
    selected kernel's tiled program, "reference" computes its numerics model directly.
    """
    from npusim.torch_npu._state import resolve, resolve_fidelity

    soc = resolve(soc)
    fidelity = resolve_fidelity(fidelity)
    if _batched_on_coupled(x, weight, soc):
        return _batched_310p(
            x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
            antiquant_group_size, inner_precise, soc=soc, kernel=kernel,
            deterministic=deterministic, tiling=tiling, weight_dtype=weight_dtype,
            fidelity=fidelity)
    args, torch_in = _normalize(
        x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
        antiquant_group_size, inner_precise, soc, weight_dtype,
    )  # fmt: skip
    chosen = select_kernel(args, soc, deterministic=deterministic, kernel=kernel)
    if fidelity == "program":
        out = _program_output(
            (x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias),
            antiquant_group_size, inner_precise, soc, chosen, deterministic, tiling)
    else:
        out = compute(args, chosen, soc, tiling=tiling)
    if not torch_in:
        return out
    from npusim.torch_npu._convert import to_output

    return to_output(out, True)


def _program_output(values: tuple[Any, ...], antiquant_group_size: int, inner_precise: int,
                    soc: SocArg, kernel: str, deterministic: bool, tiling: Any) -> np.ndarray:
    """y read from the simulated GM of a functional run of ``kernel``'s tiled program."""
    from npusim.torch_npu._fidelity import program_outputs

    arrays = {n: _to_numpy(v, n)[0] for n, v in zip(_ARG_NAMES, values, strict=True)}
    return np.asarray(program_outputs(
        "npu_weight_quant_batchmatmul", "weight_quant_batchmatmul", soc, tiling=tiling,
        kernel=kernel, deterministic=deterministic, antiquant_group_size=antiquant_group_size,
        inner_precise=inner_precise, **arrays))


def _batched_on_coupled(x: Any, weight: Any, soc: SocArg) -> bool:
    """True for an x or weight with batch dims on a coupled (310P) SoC."""
    from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts

    def logical_ndim(a: Any) -> int:  # a numpy NZ array's shape is its storage shape
        if getattr(a, "npu_format", 2) == 29 and getattr(a, "origin_shape", None) is not None:
            return len(a.origin_shape)
        return len(getattr(a, "shape", ()))

    return max(logical_ndim(x), logical_ndim(weight)) > 2 and not soc_facts(soc).split


def _batched_310p(x: Any, weight: Any, antiquant_scale: Any, antiquant_offset: Any,
                  quant_scale: Any, quant_offset: Any, bias: Any, antiquant_group_size: int,
                  inner_precise: int, **kw: Any) -> Any:
    """Batched x / weight on 310P (op-plugin's 310P test passes 4-D operands): the batch dims
    broadcast, each (M, K) x (K, N) matrix pair is the 2-D call on the same kernel, stacked.

    Declared model: batches are independent 2-D problems (same kernel, same per-matrix
    numerics); the kernel's batch loop order cannot change a value. A FRACTAL_NZ batched
    weight is not modelled."""
    from npusim.ops.matmul import broadcast_batch
    from npusim.torch_npu._tensor import ACL_FORMAT_FRACTAL_NZ, get_npu_format

    if get_npu_format(weight) == ACL_FORMAT_FRACTAL_NZ:
        raise NotImplementedError("weight: a batched FRACTAL_NZ weight on 310P is not modelled")
    (xa, torch_in), (wa, _) = _to_numpy(x, "x"), _to_numpy(weight, "weight")
    for name, a in (("x", xa), ("weight", wa)):
        if not 2 <= a.ndim <= 6:
            raise ValueError(f"{name}.ndim={a.ndim}: must be in range [2, 6]")
    batch = broadcast_batch(xa.shape[:-2], wa.shape[:-2], "x/weight")
    xb = np.broadcast_to(xa, (*batch, *xa.shape[-2:]))
    wb = np.broadcast_to(wa, (*batch, *wa.shape[-2:]))
    scale, offset, qscale, qoffset, bias_a = [_to_numpy(v, n)[0] for v, n in zip(
        (antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias), _ARG_NAMES[2:],
        strict=True)]
    outs = [npu_weight_quant_batchmatmul(xb[i], wb[i], scale, offset, qscale, qoffset, bias_a,
                                         antiquant_group_size, inner_precise, **kw)
            for i in np.ndindex(*batch)]
    out = np.stack(outs).reshape(*batch, *outs[0].shape)
    if not torch_in:
        return out
    from npusim.torch_npu._convert import to_output

    return to_output(out, True)


def explain_weight_quant_batchmatmul(
    x: Any,
    weight: Any,
    antiquant_scale: Any,
    antiquant_offset: Any = None,
    quant_scale: Any = None,
    quant_offset: Any = None,
    bias: Any = None,
    antiquant_group_size: int = 0,
    inner_precise: int = 0,
    *,
    soc: SocArg = None,
    kernel: str | None = None,
    deterministic: bool = False,
    weight_dtype: Any = None,
) -> dict[str, Any]:
    """Which kernel runs and why: ``kernel`` (selected), ``capable`` (priority order),
    ``not_capable`` (kernel -> reason), ``quant_type``, the call's shape facts, the default
    tiling of the kernel (when modelled) and the numerics model the output is exact to."""
    from npusim.torch_npu._state import resolve

    soc = resolve(soc)
    args, _ = _normalize(
        x, weight, antiquant_scale, antiquant_offset, quant_scale, quant_offset, bias,
        antiquant_group_size, inner_precise, soc, weight_dtype,
    )  # fmt: skip
    reasons = kernel_reasons(args, soc, deterministic)
    chosen = select_kernel(args, soc, deterministic=deterministic, kernel=kernel)
    try:
        tiling = tiling_as_dict(default_tiling(args, soc, chosen))
    except NotImplementedError:
        tiling = None
    return {
        "kernel": chosen,
        "capable": [k for k, why in reasons.items() if why is None],
        "not_capable": {k: why for k, why in reasons.items() if why is not None},
        "quant_type": args.quant_type,
        "deterministic": deterministic,
        **args.summary(),
        "tiling": tiling,
        "tiling_changes_numerics": chosen in TILING_DEPENDENT_NUMERICS,
        "numerics_model": NUMERICS_MODELS.get(chosen, ""),
    }
