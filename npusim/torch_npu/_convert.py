"""numpy <-> torch conversion for the torch_npu-named API.

torch is optional: it is never imported at module import time, only inside the functions that
meet a tensor. A tensor is recognised by its type's module, so numpy-only installs never import
torch at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FORMAT_ATTRS = ("npu_format", "origin_shape")


def is_torch_tensor(x: Any) -> bool:
    """True for torch.Tensor instances (checked without importing torch)."""
    return any(c.__module__.startswith("torch") and c.__name__ == "Tensor"
               for c in type(x).__mro__)


def to_numpy(x: Any) -> tuple[Any, bool]:
    """(numpy array, was_torch) for a torch CPU tensor; anything else passes through unchanged
    with False.

    bf16 tensors come through an int16 view into ``ml_dtypes.bfloat16`` (bit-exact); strides are
    kept (a transposed tensor gives a transposed numpy view). A tensor tagged with
    ``npu_format`` / ``origin_shape`` (a FRACTAL_NZ result of this API) becomes a
    ``FormattedArray`` so it can be fed on."""
    if not is_torch_tensor(x):
        return x, False
    import torch

    t = x.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_quantized or t.dtype in (torch.quint4x2, torch.qint8, torch.quint8, torch.qint32):
        raise TypeError(f"tensor dtype {t.dtype} has no numpy equivalent; pass plain integer "
                        "tensors")
    if t.dtype == torch.bfloat16:
        from npusim.numerics import BF16

        arr = t.view(torch.int16).numpy().view(BF16)
    else:
        arr = t.resolve_conj().resolve_neg().numpy()
    if all(hasattr(x, a) for a in FORMAT_ATTRS):
        from npusim.layouts import FormattedArray

        arr = FormattedArray(np.ascontiguousarray(arr), x.npu_format, x.origin_shape)
    return arr, True


def to_output(arr: Any, as_torch: bool) -> Any:
    """``arr`` as is when ``as_torch`` is False, else a torch tensor (bf16 through an int16
    view) that carries ``npu_format`` / ``origin_shape`` when ``arr`` does."""
    if not as_torch or arr is None:
        return arr
    import torch

    from npusim.numerics import BF16

    a = np.ascontiguousarray(arr)
    if a.dtype == BF16:
        out = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    else:
        out = torch.from_numpy(a.copy())
    if all(hasattr(arr, name) for name in FORMAT_ATTRS):
        for attr in FORMAT_ATTRS:
            setattr(out, attr, getattr(arr, attr))
    return out
