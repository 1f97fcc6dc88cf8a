"""Numerics: casts in every rounding mode, the FixPipe quant parameter, int4 packing, and the
cube accumulation models (``npusim.numerics.cube``)."""

from typing import Any

from npusim.numerics.dtypes import FORMATS, FloatFormat, bf16, float_info, is_bf16, np_dtype
from npusim.numerics.fixpipe import (
    QuantParam,
    decode_quant_param,
    deqf16,
    encode_quant_param,
    fp19_bits,
    requant_int8,
    requant_params,
    requant_with_params,
)
from npusim.numerics.int4 import pack_int4, unpack_int4
from npusim.numerics.rounding import (
    INT_RANGES,
    RoundMode,
    cast_float,
    float_to_int,
    round_to_integral,
)


def __getattr__(name: str) -> Any:
    if name == "BF16":  # the bfloat16 numpy dtype; ml_dtypes is loaded on first use
        return bf16()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BF16",
    "FORMATS",
    "INT_RANGES",
    "FloatFormat",
    "QuantParam",
    "RoundMode",
    "bf16",
    "cast_float",
    "decode_quant_param",
    "deqf16",
    "encode_quant_param",
    "float_info",
    "float_to_int",
    "fp19_bits",
    "is_bf16",
    "np_dtype",
    "pack_int4",
    "requant_int8",
    "requant_params",
    "requant_with_params",
    "round_to_integral",
    "unpack_int4",
]
