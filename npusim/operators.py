"""The operators npusim simulates: name -> the module exporting its :class:`Operator`.

Modules are imported on first use (a CLI call on one operator does not import the others).
"""

from __future__ import annotations

import importlib

from npusim.operator import Operator

#: operator name -> module whose ``OPERATOR`` is that operator (in ``npusim ops`` order)
OPERATOR_MODULES: dict[str, str] = {
    "vector_add": "npusim.ops.vector_add",
    "tensor_copy": "npusim.ops.tensor_copy",
    "matmul": "npusim.ops.matmul_operator",
    "quant_matmul": "npusim.ops.quant_matmul_operator",
    "group_quant": "npusim.ops.group_quant_program",
    "dynamic_quant": "npusim.ops.dynamic_quant_program",
    "quantize": "npusim.ops.quantize_program",
    "trans_quant_param": "npusim.ops.trans_quant_param_program",
    "format_cast": "npusim.ops.format_cast_program",
    "int4pack": "npusim.ops.int4pack",
    "weight_quant_batchmatmul": "npusim.ops.weight_quant_operator",
}


def operator_names() -> tuple[str, ...]:
    return tuple(OPERATOR_MODULES)


def get_operator(name: str) -> Operator:
    """The operator called ``name``; an unknown name is a ValueError listing the known ones."""
    modname = OPERATOR_MODULES.get(name)
    if modname is None:
        raise ValueError(f"op={name!r}: unknown operator; available: "
                         f"{', '.join(sorted(OPERATOR_MODULES))}")
    op = importlib.import_module(modname).OPERATOR
    if not isinstance(op, Operator) or op.name != name:
        raise TypeError(f"{modname}.OPERATOR is not the Operator {name!r}")
    return op
