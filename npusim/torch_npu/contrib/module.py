"""``torch_npu.contrib.module.LinearWeightQuant``: a ``torch.nn.Module`` when torch is installed,
else the numpy class below (always available as ``NumpyLinearWeightQuant``).

The torch module registers what torch_npu's does: ``weight`` (out, in), ``antiquant_scale``
(out,), and ``antiquant_offset`` / ``quant_scale`` / ``quant_offset`` / ``bias`` (out,) or
``None`` - all ``Parameter(requires_grad=False)`` of torch's default dtype, to be replaced by
assigning ``.data`` (``model.weight.data = w_int8``); ``state_dict`` lists them. ``forward``
calls ``npu_weight_quant_batchmatmul(x, weight.T, scale[.T], offset[.T], quant_scale,
quant_offset, bias, antiquant_group_size, inner_precise, weight_dtype=)`` on the current SoC.
``.npu()`` registers the parameters as NPU tensors (a CPU no-op).

The numpy class:

Parameters have the seed's shapes (seed 002 / ops-semantics 5.1): ``weight`` (N, K) int8 (or
int32 (N, K/8) carrying int4), ``antiquant_scale`` / ``antiquant_offset`` (N,) or
(N, ceil(K/g)) per-group, ``quant_scale`` / ``quant_offset`` (N,) float32 (quant_scale may be
replaced by the int64 output of npu_trans_quant_param), ``bias`` (N,). They start as zeros
(torch leaves them uninitialised); assign real values before calling. ``forward`` passes the
transposed view of the weight (so the operator sees trans_weight = True) and of 2-D antiquant
parameters, and the rest unchanged, as torch_npu's module does.

``dtype`` is x's dtype (float16 or bfloat16); None means float16 (torch's float32 default would
not pass the operator's dtype checks). ``bias`` is float16 for float16 x and float32 for bfloat16
x. After a forward, ``kernel`` names the kernel that ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from npusim.torch_npu._state import SocArg

__all__ = ["LinearWeightQuant", "NumpyLinearWeightQuant"]


def _x_dtype(dtype: Any) -> np.dtype:
    """float16 / bfloat16 from a numpy dtype, a name or a torch dtype; None -> float16."""
    if dtype is None:
        return np.dtype(np.float16)
    text = str(dtype)
    if text.startswith("torch."):
        name = text[len("torch.") :]
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = text
    if name in ("float16", "half", "fp16"):
        return np.dtype(np.float16)
    if name in ("bfloat16", "bf16"):
        from npusim.numerics import bf16

        return bf16()
    raise TypeError(f"dtype={dtype!r}: LinearWeightQuant supports float16 or bfloat16 x")


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name}={value!r}: must be a positive int")
    return int(value)


class NumpyLinearWeightQuant:
    """Weight-quantised linear layer: ``y = x @ dequant(weight).T (+ bias)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        antiquant_offset: bool = False,
        quant_scale: bool = False,
        quant_offset: bool = False,
        antiquant_group_size: int = 0,
        inner_precise: int = 0,
        *,
        soc: SocArg = None,
    ) -> None:
        self.in_features = _positive("in_features", in_features)
        self.out_features = _positive("out_features", out_features)
        self.device = device  # accepted for signature compatibility; unused
        self.dtype = _x_dtype(dtype)
        self.antiquant_group_size = antiquant_group_size
        self.inner_precise = inner_precise
        self.soc = soc
        self.kernel: str | None = None
        n, k = self.out_features, self.in_features
        g = antiquant_group_size
        param_shape: tuple[int, ...] = (n, math.ceil(k / g)) if g else (n,)
        self.weight = np.zeros((n, k), dtype=np.int8)
        self.antiquant_scale = np.zeros(param_shape, dtype=self.dtype)
        self.antiquant_offset = (
            np.zeros(param_shape, dtype=self.dtype) if antiquant_offset else None
        )
        self.quant_scale = np.zeros((n,), dtype=np.float32) if quant_scale else None
        self.quant_offset = np.zeros((n,), dtype=np.float32) if quant_offset else None
        bias_dtype = np.float16 if self.dtype == np.float16 else np.float32
        self.bias = np.zeros((n,), dtype=bias_dtype) if bias else None

    @staticmethod
    def _t(param: Any) -> Any:
        """Transposed view of a 2-D parameter (torch's ``transpose(-1, -2)``; a FRACTAL_NZ
        weight through ``transpose_nz``); others as is."""
        if getattr(param, "npu_format", None) == 29:
            from npusim.ops.weight_quant_batchmatmul import transpose_nz

            return transpose_nz(param)
        if param is not None and getattr(param, "ndim", 0) == 2:
            return param.transpose(-1, -2) if hasattr(param, "transpose") else param.T
        return param

    def forward(self, x: Any) -> Any:
        from npusim.torch_npu._weight_quant import (
            explain_weight_quant_batchmatmul,
            npu_weight_quant_batchmatmul,
        )

        call = (
            x,
            self._t(self.weight),
            self._t(self.antiquant_scale),
            self._t(self.antiquant_offset),
            self.quant_scale,
            self.quant_offset,
            self.bias,
            self.antiquant_group_size,
            self.inner_precise,
        )
        self.kernel = explain_weight_quant_batchmatmul(*call, soc=self.soc)["kernel"]
        return npu_weight_quant_batchmatmul(*call, soc=self.soc, kernel=self.kernel)

    __call__ = forward

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"dtype={self.dtype}, antiquant_group_size={self.antiquant_group_size}, "
            f"inner_precise={self.inner_precise}"
        )


def _torch_class() -> Any:
    import torch
    from torch import nn

    class TorchLinearWeightQuant(nn.Module):
        """torch_npu's LinearWeightQuant module on npusim (module docstring)."""

        # set in __init__ (the optional ones by setattr / register_parameter)
        weight: nn.Parameter
        antiquant_scale: nn.Parameter
        antiquant_offset: nn.Parameter | None
        quant_scale: nn.Parameter | None
        quant_offset: nn.Parameter | None
        bias: nn.Parameter | None

        def __init__(self, in_features: int, out_features: int, bias: bool = True,
                     device: Any = None, dtype: Any = None, antiquant_offset: bool = False,
                     quant_scale: bool = False, quant_offset: bool = False,
                     antiquant_group_size: int = 0, inner_precise: int = 0,
                     weight_dtype: Any = None, *, soc: SocArg = None) -> None:
            super().__init__()
            self.in_features = _positive("in_features", in_features)
            self.out_features = _positive("out_features", out_features)
            n, k = self.out_features, self.in_features

            def param() -> Any:
                return nn.Parameter(torch.zeros(n), requires_grad=False)

            self.weight = nn.Parameter(torch.zeros(n, k), requires_grad=False)
            self.antiquant_scale = param()
            for name, wanted in (("antiquant_offset", antiquant_offset),
                                 ("quant_scale", quant_scale), ("quant_offset", quant_offset),
                                 ("bias", bias)):
                if wanted:
                    setattr(self, name, param())
                else:
                    self.register_parameter(name, None)
            self.antiquant_group_size = antiquant_group_size
            self.inner_precise = inner_precise
            self.weight_dtype = weight_dtype
            self.soc = soc
            self.kernel: str | None = None

        def npu(self, device: Any = None) -> Any:
            from npusim.dropin import as_npu

            # nn.Module._apply has no annotations in torch's stubs
            return cast(Callable[[Callable[..., Any]], Any], self._apply)(as_npu)

        def forward(self, x: Any) -> Any:
            from npusim.torch_npu._weight_quant import (
                explain_weight_quant_batchmatmul,
                npu_weight_quant_batchmatmul,
            )

            scale: torch.Tensor = self.antiquant_scale
            offset: torch.Tensor | None = self.antiquant_offset
            if scale.dim() == 2:
                scale = scale.transpose(-1, -2)
            if offset is not None and offset.dim() == 2:
                offset = offset.transpose(-1, -2)
            call = (x, self.weight.transpose(-1, -2), scale, offset, self.quant_scale,
                    self.quant_offset, self.bias, self.antiquant_group_size,
                    self.inner_precise)
            self.kernel = explain_weight_quant_batchmatmul(
                *call, soc=self.soc, weight_dtype=self.weight_dtype)["kernel"]
            return npu_weight_quant_batchmatmul(*call, soc=self.soc, kernel=self.kernel,
                                                weight_dtype=self.weight_dtype)

        def extra_repr(self) -> str:
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"antiquant_group_size={self.antiquant_group_size}, "
                    f"inner_precise={self.inner_precise}, weight_dtype={self.weight_dtype}")

    TorchLinearWeightQuant.__name__ = TorchLinearWeightQuant.__qualname__ = "LinearWeightQuant"
    return TorchLinearWeightQuant


try:
    import torch as _torch  # noqa: F401
except ImportError:
    LinearWeightQuant: Any = NumpyLinearWeightQuant
else:
    LinearWeightQuant = _torch_class()
