"""npu_format_cast between ND (acl_format 2) and FRACTAL_NZ (29), storage exactly as torch_npu's
(ops-semantics 1).

ND -> NZ returns a ``FormattedArray`` whose storage is (..., ceil(N/C0), ceil(M/16), 16, C0)
(C0 = 32 bytes / min(itemsize, 2), zero padded; 0-D / 1-D padded to 2-D first) and whose
``origin_shape`` is the ND shape. NZ -> ND returns the plain ND array. Casting to the format the
input already has returns the input itself, as torch_npu does. Other ACL formats (NCHW,
NC1HWC0, FRACTAL_Z, ...) are outside npusim's scope and rejected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.layouts import (
    ACL_FORMAT_FRACTAL_NZ,
    ACL_FORMAT_ND,
    FormattedArray,
    nd_to_nz,
    npu_format_of,
    nz_c0,
    nz_storage_shape,
    nz_to_nd,
    origin_shape_of,
)

# dtypes whose NZ C0 follows the documented torch_npu rule
SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "int8", "uint8", "int16", "int32",
                    "int64")


def validate_format_cast(x: Any, acl_format: Any) -> tuple[int, int]:
    """Check ``acl_format`` and ``x``; return (source format, target format)."""
    if isinstance(acl_format, bool) or not isinstance(acl_format, int | np.integer):
        raise TypeError(f"acl_format: must be an int (2 = ND, 29 = FRACTAL_NZ), got "
                        f"{acl_format!r}")
    if int(acl_format) not in (ACL_FORMAT_ND, ACL_FORMAT_FRACTAL_NZ):
        raise ValueError(f"acl_format: {acl_format!r} not supported; must be 2 (ND) or 29 "
                         "(FRACTAL_NZ)")
    arr = np.asarray(x)
    if arr.dtype.name not in SUPPORTED_DTYPES:
        raise TypeError(f"x: dtype {arr.dtype} not supported; must be one of {SUPPORTED_DTYPES}")
    src = npu_format_of(x)
    if src == ACL_FORMAT_FRACTAL_NZ:
        origin = origin_shape_of(x)
        if arr.ndim < 4 or arr.shape != nz_storage_shape(origin, arr.shape[-1]):
            raise ValueError(f"x: FRACTAL_NZ storage shape {arr.shape} does not hold its "
                             f"origin_shape {origin}")
    return src, int(acl_format)


def reference_format_cast(x: Any, acl_format: Any) -> Any:
    """``x`` in ``acl_format``: a FRACTAL_NZ FormattedArray, a plain ND array, or ``x``."""
    src, dst = validate_format_cast(x, acl_format)
    if src == dst:
        return x
    arr = np.asarray(x)
    if dst == ACL_FORMAT_FRACTAL_NZ:
        return FormattedArray(nd_to_nz(arr, nz_c0(arr.dtype)), ACL_FORMAT_FRACTAL_NZ, arr.shape)
    return nz_to_nd(arr, origin_shape_of(x))


format_cast = reference_format_cast
