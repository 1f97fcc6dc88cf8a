"""numpy <-> torch conversion for the torch_npu-named API (torch is optional, imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(x: Any) -> tuple[Any, bool]:
    """(numpy array, was_torch). bf16 tensors come through an int16 view into ml_dtypes.bfloat16;
    None and non-tensors pass through unchanged."""
    if x is None or not _is_torch(x):
        return x, False
    import torch

    t = x.detach().cpu()
    if t.dtype == torch.bfloat16:
        from npusim.numerics import BF16

        # same element size: the int16 view keeps the strides (a transposed view stays one)
        return t.view(torch.int16).numpy().view(BF16), True
    return t.numpy(), True  # numpy shares the tensor's strides


def to_output(arr: Any, as_torch: bool) -> Any:
    """Return numpy as is, or a torch tensor when the inputs were torch tensors."""
    if not as_torch or arr is None:
        return arr
    import torch

    a = np.ascontiguousarray(arr)
    from npusim.numerics import BF16

    if a.dtype == BF16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    out = torch.from_numpy(a.copy())
    for attr in ("npu_format", "origin_shape"):
        if hasattr(arr, attr):
            setattr(out, attr, getattr(arr, attr))
    return out
