"""numpy <-> torch conversion for the torch_npu-named API.

torch is optional: it is never imported at module import time, only inside the functions that
meet a tensor. A tensor is recognised by its type's module, so numpy-only installs never import
torch at all.

A torch tensor whose storage is FRACTAL_NZ (see :mod:`npusim.torch_npu._tensor`) reaches the
numpy operators as the ``FormattedArray`` storage they read: the whole base tensor as is, or its
last-two-dims transpose (``w_nz.t()``) through ``transpose_nz``. Any other view of an NZ storage
is handed over as its logical ND values (what torch_npu's implicit contiguous copy gives).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

if TYPE_CHECKING:
    import torch

FORMAT_ATTRS = ("npu_format", "origin_shape")


def is_torch_tensor(x: object) -> TypeGuard[torch.Tensor]:
    """True for torch.Tensor instances (checked without importing torch)."""
    return any(c.__module__.startswith("torch") and c.__name__ == "Tensor"
               for c in type(x).__mro__)


def plain_numpy(t: torch.Tensor) -> np.ndarray:
    """The logical values of a torch CPU tensor as numpy (bf16 bit-exact through int16; strides
    kept, so a transposed tensor gives a transposed numpy view)."""
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_quantized or t.dtype in (torch.quint4x2, torch.qint8, torch.quint8, torch.qint32):
        raise TypeError(f"tensor dtype {t.dtype} has no numpy equivalent; pass plain integer "
                        "tensors")
    if t.dtype == torch.bfloat16:
        from npusim.numerics import BF16

        return t.view(torch.int16).numpy().view(BF16)
    return t.resolve_conj().resolve_neg().numpy()


def _nz_array(x: torch.Tensor) -> Any:
    """The FormattedArray an NZ torch tensor stands for, or None when ``x`` is a view that is
    neither its base nor the base's last-two-dims transpose."""
    from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, FormattedArray
    from npusim.torch_npu._tensor import base_tensor, nz_storage, registered_desc

    desc = registered_desc(x)  # an NZ tensor's storage is registered
    base = base_tensor(x)
    if x.data_ptr() != base.data_ptr():
        return None
    whole = FormattedArray(nz_storage(x), ACL_FORMAT_FRACTAL_NZ, desc.base_sizes)
    if tuple(x.shape) == desc.base_sizes and x.is_contiguous():
        return whole
    if x.dim() >= 2 and tuple(x.transpose(-1, -2).shape) == desc.base_sizes and \
            x.transpose(-1, -2).is_contiguous():
        from npusim.ops.weight_quant_batchmatmul import transpose_nz

        return transpose_nz(whole)
    return None


def to_numpy(x: Any) -> tuple[Any, bool]:
    """(numpy array, was_torch) for a torch CPU tensor; anything else passes through unchanged
    with False. A FRACTAL_NZ tensor becomes its ``FormattedArray`` storage (module docstring)."""
    if not is_torch_tensor(x):
        return x, False
    from npusim.torch_npu._tensor import ACL_FORMAT_FRACTAL_NZ, get_npu_format

    if get_npu_format(x) == ACL_FORMAT_FRACTAL_NZ:
        arr = _nz_array(x)
        if arr is not None:
            return arr, True
    return plain_numpy(x), True


def to_output(arr: Any, as_torch: bool) -> Any:
    """``arr`` as is when ``as_torch`` is False, else a torch tensor on the (simulated) NPU: its
    storage carries a descriptor; a FRACTAL_NZ ``FormattedArray`` becomes a tensor of its logical
    shape whose storage is NZ."""
    if not as_torch or arr is None:
        return arr
    return to_tensor(arr)


def to_tensor(arr: Any) -> torch.Tensor:
    """``arr`` (an array, or a FRACTAL_NZ ``FormattedArray``) as a torch tensor on the
    (simulated) NPU (:func:`to_output` with ``as_torch``)."""
    import torch

    from npusim.numerics import BF16
    from npusim.torch_npu._tensor import ACL_FORMAT_FRACTAL_NZ, new_formatted, register

    nz = getattr(arr, "npu_format", None) == ACL_FORMAT_FRACTAL_NZ
    c0 = storage = None
    if nz:
        from npusim.layouts import nz_to_nd

        c0 = int(arr.shape[-1])
        storage = np.asarray(arr).view(np.ndarray)
        arr = nz_to_nd(storage, arr.origin_shape)
    a = np.ascontiguousarray(arr)
    if a.dtype == BF16:
        out = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    else:
        out = torch.from_numpy(a.copy())
    if nz:  # the storage as the operator wrote it, kept with the values it holds
        from npusim.torch_npu._tensor import registered_desc

        t = new_formatted(out, ACL_FORMAT_FRACTAL_NZ, c0)
        desc = registered_desc(t)
        desc.storage, desc.storage_of = storage, a.copy()
        return t
    return register(out)
