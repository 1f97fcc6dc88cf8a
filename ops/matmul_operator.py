"""``matmul`` as an :class:`~npusim.operator.Operator`: its CLI call, its output check and its
sweep adapter beside the plan of :mod:`npusim.ops.matmul_plans`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.operator import CliSpec, Operator, reads_dict_tilings
from npusim.ops import matmul_sweep
from npusim.ops.matmul_plans import checked_matmul, default_tiling_matmul, plan_matmul

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor


def example_inputs(ns: Any, functional: bool, rng: np.random.Generator) -> dict[str, Any]:
    """``npusim run matmul``: --m --k --n (default 1024), --dtype (float16), --out-dtype."""
    from npusim.spec import spec

    m, k, n = ns.m or 1024, ns.k or 1024, ns.n or 1024
    dt = ns.dtype or "float16"
    out = {"out_dtype": ns.out_dtype} if ns.out_dtype else {}
    if functional:
        from npusim.numerics import np_dtype

        a = rng.standard_normal((m, k)).astype(np.float32).astype(np_dtype(dt))
        b = rng.standard_normal((k, n)).astype(np.float32).astype(np_dtype(dt))
        return {"a": a, "b": b, **out}
    return {"a": spec((m, k), dt), "b": spec((k, n), dt), **out}


def check_output(res: Any, op_args: dict[str, Any]) -> str:
    from npusim.ops.matmul import reference_matmul

    want = reference_matmul(op_args["a"], op_args["b"], out_dtype=op_args.get("out_dtype"),
                            soc=res.soc)
    same = np.array_equal(np.asarray(res.outputs).view(np.uint8), want.view(np.uint8))
    return f"tiled program output bit-identical to the reference (declared cube model): {same}"


def validate(soc: SocDescriptor, **op_args: Any) -> None:
    checked_matmul(soc, **op_args)


OPERATOR = Operator(
    name="matmul",
    plan=plan_matmul,
    validate=validate,
    default_tiling=default_tiling_matmul,
    example_inputs=example_inputs,
    cli=CliSpec(
        "c = a @ b on the cube unit (fp16 / bf16)",
        {"--m": "rows of a (default 1024)", "--k": "columns of a = rows of b (default 1024)",
         "--n": "columns of b (default 1024)", "--dtype": "dtype of a and b (default float16)",
         "--out-dtype": "dtype of c (default: the input dtype)"}),
    cann_op_type="MatMulV2",
    check_output=check_output,
    sweep=matmul_sweep,
    tiling_dicts=reads_dict_tilings,
)
