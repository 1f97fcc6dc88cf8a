"""``quant_matmul`` (W8A8) as an :class:`~npusim.operator.Operator`: its CLI call, output check
and sweep adapter beside the plan of :mod:`npusim.ops.matmul_plans`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.operator import CliSpec, Operator
from npusim.ops import matmul_sweep
from npusim.ops.matmul_plans import (
    checked_quant_matmul,
    default_tiling_quant_matmul,
    plan_quant_matmul,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor


def example_inputs(ns: Any, functional: bool, rng: np.random.Generator) -> dict[str, Any]:
    """``npusim run quant_matmul``: W8A8 --m --k --n (default 1024), --out-dtype (int8)."""
    from npusim.ops.quant_matmul import LAST_DIM_LIMIT
    from npusim.spec import spec

    m, k, n = ns.m or 1024, ns.k or 1024, ns.n or 1024
    out = ns.out_dtype or "int8"
    if n > LAST_DIM_LIMIT:  # checked before the scale array of n values is drawn
        raise ValueError(f"--n {n}: x2's last dim must be <= {LAST_DIM_LIMIT} "
                         "(npu_quant_matmul)")
    scale = rng.uniform(1e-4, 2e-3, n).astype(np.float32)
    x1: Any  # arrays (functional) or specs
    x2: Any
    if functional:
        x1 = rng.integers(-128, 128, (m, k), dtype=np.int8)
        x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    else:
        x1, x2 = spec((m, k), "int8"), spec((k, n), "int8")
    return {"x1": x1, "x2": x2, "scale": scale, "output_dtype": out}


def check_output(res: Any, op_args: dict[str, Any]) -> str:
    reference: Callable[..., np.ndarray]
    if op_args.get("group_sizes") is not None and str(op_args["x1"].dtype) == "int8":
        from npusim.ops.quant_matmul_a8w4 import reference_a8w4 as reference
    elif op_args.get("group_sizes") is not None:
        from npusim.ops.quant_matmul_a4w4_pergroup import reference_a4w4_pergroup as reference
    else:
        from npusim.ops.quant_matmul import reference_quant_matmul as reference

    want = reference(**op_args, soc=res.soc)
    same = np.array_equal(np.asarray(res.outputs).view(np.uint8), want.view(np.uint8))
    return f"tiled program output bit-identical to the reference: {same}"


def _grouped(op_args: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """(validate, plan, default tiling) of a call with ``group_sizes``: A8W4 (int8 x1) or
    per-group A4W4 (int32-packed int4 x1); None for the W8A8 / A4W4 calls."""
    if op_args.get("group_sizes") is None:
        return None
    if str(getattr(op_args.get("x1"), "dtype", "")) == "int8":
        from npusim.ops.quant_matmul_a8w4 import validate_a8w4
        from npusim.ops.quant_matmul_a8w4_program import default_a8w4_tiling, plan_a8w4

        return validate_a8w4, plan_a8w4, default_a8w4_tiling
    from npusim.ops.quant_matmul_a4w4_pergroup import validate_a4w4_pergroup
    from npusim.ops.quant_matmul_a4w4_pergroup_program import (
        default_a4w4_group_tiling,
        plan_a4w4_pergroup,
    )

    return validate_a4w4_pergroup, plan_a4w4_pergroup, default_a4w4_group_tiling


def validate(soc: SocDescriptor, **op_args: Any) -> None:
    grouped = _grouped(op_args)
    if grouped is not None:
        grouped[0](**op_args, soc=soc)
        return
    _check_pp_matmul(checked_quant_matmul(soc, **op_args), op_args)


def _check_pp_matmul(p: Any, op_args: dict[str, Any]) -> bool:
    """True when the call takes the 310P pp_matmul kernel (M >= 1024 with a bias, x2 transposed
    after aclnn's transpose; :mod:`npusim.ops.quant_matmul_pp_program`); the values that kernel
    does not define (a batch, a per-tensor scale, a non-float16 output) raise
    NotImplementedError (:func:`~npusim.ops.quant_matmul.check_pp_matmul`)."""
    from npusim.ops.quant_matmul import check_pp_matmul, takes_pp_matmul

    if not takes_pp_matmul(p):
        return False
    check_pp_matmul(p, int(np.prod(getattr(op_args["scale"], "shape", (1,)), dtype=np.int64)))
    return True


def plan(soc: SocDescriptor, tiling: Any = None, **op_args: Any) -> Any:
    grouped = _grouped(op_args)
    if grouped is not None:
        grouped[0](**op_args, soc=soc)
        return grouped[1](soc, tiling, **op_args)
    p = checked_quant_matmul(soc, **op_args)
    if _check_pp_matmul(p, op_args):
        from npusim.ops.quant_matmul_pp_program import plan_pp_matmul

        return plan_pp_matmul(soc, tiling, p, x1=op_args["x1"], x2=op_args["x2"],
                              scale=op_args["scale"], offset=op_args.get("offset"),
                              bias=op_args.get("bias"))
    return plan_quant_matmul(soc, tiling, **op_args)


def default_tiling(soc: SocDescriptor, **op_args: Any) -> Any:
    grouped = _grouped(op_args)
    if grouped is not None:
        p = grouped[0](**op_args, soc=soc)
        return grouped[2](soc, p.m, p.n)
    p = checked_quant_matmul(soc, **op_args)
    if _check_pp_matmul(p, op_args):
        from npusim.ops.quant_matmul_pp_program import default_pp_tiling

        return default_pp_tiling(soc, p.m, p.k, p.n)
    return default_tiling_quant_matmul(soc, **op_args)


def tiling_dicts(soc: SocDescriptor, **op_args: Any) -> bool:
    """Only the W8A8 / A4W4 cube arm's plan reads a dict tiling itself (``tiling_from_dict``:
    Ascend C names, a whole dict a whole MatmulTiling); the A8W4 / A4W4 per-group and 310P
    pp_matmul arms take their tiling objects, so ``simulate`` applies a dict's fields to their
    default tiling first. A call the rules refuse raises as ``plan`` would."""
    if _grouped(op_args) is not None:
        return False
    return not _check_pp_matmul(checked_quant_matmul(soc, **op_args), op_args)


def quantisation(op_args: dict[str, Any]) -> str:
    return f"W8A8 per-channel scale, {op_args.get('output_dtype')} out"


OPERATOR = Operator(
    name="quant_matmul",
    plan=plan,
    validate=validate,
    default_tiling=default_tiling,
    example_inputs=example_inputs,
    cli=CliSpec(
        "W8A8 npu_quant_matmul: int8 x int8 with a per-channel scale",
        {"--m": "rows of x1 (default 1024)", "--k": "reduction size (default 1024)",
         "--n": "columns of x2 (default 1024)",
         "--out-dtype": "int8 | float16 | bfloat16 | int32 (default int8)"}),
    cann_op_type="QuantBatchMatmulV3",
    quantisation=quantisation,
    check_output=check_output,
    sweep=matmul_sweep,
    peak_dtype=lambda case: "int8",
    tiling_dicts=tiling_dicts,
)
