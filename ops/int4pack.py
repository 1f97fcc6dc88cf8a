"""npu_convert_weight_to_int4pack (ops-semantics 2): host-side packing of int32 values in [-8, 7].

ND (k, n) int32 -> (k, n/8) int32; FRACTAL_NZ input -> converted to ND, packed, re-tiled as NZ
storage (ceil(n/64), ceil(k/16), 16, 8) (C0 = 8 int32 = 64 int4). torch_npu runs this on the
host CPU (device -> host copy, loop, host -> device copy): there is no NPU kernel to time.
"""

from __future__ import annotations

import numpy as np

from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, FormattedArray, npu_format_of
from npusim.layouts.nz import C0_INT32_INT4, nd_to_nz, nz_to_nd

# Stated assumptions (not calibrated): PCIe-class copies and a simple host loop.
HOST_COPY_GB_PER_S = 20.0
HOST_PACK_VALUES_PER_S = 5e8


def int4pack(weight: np.ndarray, inner_k_tiles: int = 0, *,
             emulate_hardware_masking: bool = False) -> np.ndarray:
    """The packed weight (numpy int32, or a FormattedArray in FRACTAL_NZ for NZ input)."""
    w = np.asarray(weight)
    if not isinstance(inner_k_tiles, int) or isinstance(inner_k_tiles, bool):
        raise TypeError(f"inner_k_tiles: must be an int, got {inner_k_tiles!r}")
    if w.dtype != np.int32:
        raise TypeError(f"weight: dtype {w.dtype} not supported; must be int32")
    nz = npu_format_of(weight) == ACL_FORMAT_FRACTAL_NZ
    if nz:
        w = nz_to_nd(np.asarray(weight), weight.origin_shape)
    if w.ndim != 2:
        raise ValueError(f"weight: must be 2-D, got shape {w.shape}")
    if min(w.shape) <= 0:
        raise ValueError(f"weight: every dim must be > 0, got shape {w.shape}")
    if w.shape[-1] % 8:
        raise ValueError(f"weight: last dim {w.shape[-1]} must be a multiple of 8")
    if not nz and not w.flags.c_contiguous:
        raise ValueError("weight: must be contiguous")
    from npusim.numerics import pack_int4

    packed = pack_int4(w, mask_out_of_range=emulate_hardware_masking)
    if nz:
        return FormattedArray(nd_to_nz(packed, C0_INT32_INT4), ACL_FORMAT_FRACTAL_NZ,
                              packed.shape)
    return packed


def host_cost_model(k: int, n: int) -> dict[str, float | str]:
    """Host work, not NPU time: copy k*n int32 down, pack, copy k*n/8 int32 up (assumptions)."""
    down = k * n * 4 / (HOST_COPY_GB_PER_S * 1e9)
    pack = k * n / HOST_PACK_VALUES_PER_S
    up = k * n / 2 / (HOST_COPY_GB_PER_S * 1e9)
    return {"where": "host CPU (torch_npu op-plugin), no NPU kernel",
            "seconds": down + pack + up,
            "assumptions": f"{HOST_COPY_GB_PER_S} GB/s host<->device copies, "
                           f"{HOST_PACK_VALUES_PER_S:.0e} values/s host packing (not calibrated)"}
