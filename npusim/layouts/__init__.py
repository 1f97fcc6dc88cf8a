"""ND <-> FRACTAL_NZ layouts and format-carrying arrays."""

from npusim.layouts.formatted import (
    ACL_FORMAT_FRACTAL_NZ,
    ACL_FORMAT_ND,
    FormattedArray,
    npu_format_of,
    origin_shape_of,
)
from npusim.layouts.nz import (
    C0_INT4,
    C0_INT32_INT4,
    nd_to_nz,
    nz_c0,
    nz_index,
    nz_storage_shape,
    nz_to_nd,
)

__all__ = [
    "ACL_FORMAT_FRACTAL_NZ",
    "ACL_FORMAT_ND",
    "C0_INT4",
    "C0_INT32_INT4",
    "FormattedArray",
    "nd_to_nz",
    "npu_format_of",
    "nz_c0",
    "nz_index",
    "nz_storage_shape",
    "nz_to_nd",
    "origin_shape_of",
]
