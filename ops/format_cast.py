"""npu_format_cast between ND (2) and FRACTAL_NZ (29), storage exactly as torch_npu's."""

from __future__ import annotations

import numpy as np

from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, FormattedArray, npu_format_of
from npusim.layouts.nz import nd_to_nz, nz_c0, nz_to_nd


def format_cast(x: np.ndarray, acl_format: int) -> np.ndarray:
    if acl_format not in (ACL_FORMAT_ND, ACL_FORMAT_FRACTAL_NZ):
        raise ValueError(f"acl_format: {acl_format!r} not supported; must be 2 (ND) or 29 "
                         "(FRACTAL_NZ)")
    src = npu_format_of(x)
    if src == acl_format:
        return x
    if acl_format == ACL_FORMAT_FRACTAL_NZ:
        arr = np.asarray(x)
        return FormattedArray(nd_to_nz(arr, nz_c0(arr.dtype)), ACL_FORMAT_FRACTAL_NZ, arr.shape)
    return nz_to_nd(np.asarray(x), x.origin_shape)
