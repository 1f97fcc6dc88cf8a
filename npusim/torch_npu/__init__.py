"""torch_npu-named operator API on numpy arrays (torch CPU tensors in -> torch tensors out).

Each function mirrors the torch_npu signature and defaults and adds ``soc=`` (default
``Ascend910B2``) and, where a program exists, ``fidelity=`` (default ``program``: the output of
the operator's tiled program run; ``reference``: its reference model; see
:mod:`npusim.torch_npu._fidelity`). Names resolve lazily so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "npu_convert_weight_to_int4pack": "npusim.torch_npu._elementwise",
    "npu_trans_quant_param": "npusim.torch_npu._elementwise",
    "npu_group_quant": "npusim.torch_npu._elementwise",
    "npu_format_cast": "npusim.torch_npu._elementwise",
    "npu_format_cast_": "npusim.torch_npu._elementwise",
    "get_npu_format": "npusim.torch_npu._elementwise",
    "npu_storage_array": "npusim.torch_npu._tensor",
    "set_soc": "npusim.torch_npu._state",
    "current_soc": "npusim.torch_npu._state",
    "set_fidelity": "npusim.torch_npu._state",
    "current_fidelity": "npusim.torch_npu._state",
    "npu_weight_quant_batchmatmul": "npusim.torch_npu._weight_quant",
    "explain_weight_quant_batchmatmul": "npusim.torch_npu._weight_quant",
    "npu_quant_matmul": "npusim.torch_npu._quant_matmul",
    "npu_quantize": "npusim.torch_npu._quantize",
    "npu_dynamic_quant": "npusim.torch_npu._quantize",
    "npu_dynamic_quant_asymmetric": "npusim.torch_npu._quantize",
    "matmul": "npusim.torch_npu._quant_matmul",
}

__all__ = sorted(_EXPORTS)


_SUBMODULES = ("npu", "contrib", "testing")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"npusim.torch_npu.{name}")
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(
            f"torch_npu.{name} is not modelled by npusim (module 'npusim.torch_npu' has no "
            f"attribute {name!r}); npusim provides: {', '.join(__all__)}")
    return getattr(importlib.import_module(mod), name)


def __dir__() -> list[str]:
    return __all__
