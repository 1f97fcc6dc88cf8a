"""Canonical dtype names used by the descriptors, and the aliases callers may use.

:data:`DTYPE_BITS` is the package's one table of element sizes: buffer item sizes
(``npusim.isa.operands.ITEMSIZE``) and the cube tiling's bit widths derive from it."""

from __future__ import annotations

from typing import Literal

DtypeName = Literal[
    "float16", "bfloat16", "float32", "hfloat32", "int4", "int8", "uint8", "int16", "int32",
    "int64", "uint64",
]

#: storage bits of one element of each canonical dtype (hfloat32 is stored as float32)
DTYPE_BITS: dict[str, int] = {
    "float16": 16,
    "bfloat16": 16,
    "float32": 32,
    "hfloat32": 32,
    "int4": 4,
    "int8": 8,
    "uint8": 8,
    "int16": 16,
    "int32": 32,
    "uint32": 32,  # bit patterns (trans_quant_param reads fp32 scales as uint32)
    "int64": 64,  # data moved by DataCopy / vector copies (format_cast int64, quant parameters)
    "uint64": 64,
}

_ALIASES: dict[str, str] = {
    "fp16": "float16",
    "half": "float16",
    "f16": "float16",
    "bf16": "bfloat16",
    "fp32": "float32",
    "float": "float32",
    "f32": "float32",
    "hf32": "hfloat32",
    "s4": "int4",
    "s8": "int8",
    "u8": "uint8",
    "s16": "int16",
    "s32": "int32",
}


def canonical_dtype(dtype: object, arg: str = "dtype") -> str:
    """The canonical name of ``dtype`` (a string alias or anything whose ``str`` is a known name).

    Raises ValueError naming ``arg`` when the dtype is unknown.
    """
    name = str(getattr(dtype, "name", dtype)).lower()
    name = _ALIASES.get(name, name)
    if name not in DTYPE_BITS:
        raise ValueError(
            f"{arg}={dtype!r}: unknown dtype; known: {', '.join(DTYPE_BITS)} "
            f"(aliases: {', '.join(_ALIASES)})"
        )
    return name
