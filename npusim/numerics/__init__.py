"""Numerics: casts in every rounding mode, the FixPipe quant parameter, int4 packing, and the
cube accumulation models (``npusim.numerics.cube``)."""

from npusim.numerics.dtypes import BF16, FORMATS, FloatFormat, float_info, np_dtype
from npusim.numerics.fixpipe import (
    QuantParam,
    decode_quant_param,
    deqf16,
    encode_quant_param,
    fp19_bits,
    requant_int8,
)
from npusim.numerics.int4 import pack_int4, unpack_int4
from npusim.numerics.rounding import (
    INT_RANGES,
    RoundMode,
    cast_float,
    float_to_int,
    round_to_integral,
)

__all__ = [
    "BF16",
    "FORMATS",
    "INT_RANGES",
    "FloatFormat",
    "QuantParam",
    "RoundMode",
    "cast_float",
    "decode_quant_param",
    "deqf16",
    "encode_quant_param",
    "float_info",
    "float_to_int",
    "fp19_bits",
    "np_dtype",
    "pack_int4",
    "requant_int8",
    "round_to_integral",
    "unpack_int4",
]
