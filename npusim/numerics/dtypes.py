"""dtype names used across npusim and the formats of the float types."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

import numpy as np


@functools.cache
def bf16() -> np.dtype:
    """numpy's bfloat16 dtype (from ml_dtypes), loaded on first use: importing ml_dtypes costs
    more CPU time than many whole timing-only simulations, which never need it."""
    import ml_dtypes

    dt: np.dtype = np.dtype(ml_dtypes.bfloat16)
    return dt


def is_bf16(dt: Any) -> bool:
    """Whether ``dt`` is the bfloat16 dtype (checked by name, so ml_dtypes is not loaded; a
    numpy dtype's ``name`` is computed in Python, its scalar type's name is not)."""
    if type(dt) is not str and isinstance(dt, np.dtype):
        return dt.type.__name__ == "bfloat16" and dt.name == "bfloat16"
    return getattr(dt, "name", None) == "bfloat16"


def __getattr__(name: str) -> Any:
    if name == "BF16":  # the bfloat16 numpy dtype, resolved lazily (see bf16)
        return bf16()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ALIASES: dict[str, Any] = {
    "float16": np.float16, "fp16": np.float16, "half": np.float16,
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": np.float32, "fp32": np.float32, "float": np.float32,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint64": np.uint64,
}


def np_dtype(name: str | np.dtype | type) -> np.dtype:
    """The numpy dtype of a name ('float16', 'fp16', 'bf16', 'int32', ...) or of a supported dtype.

    Raises ValueError for any other name or dtype (float64, int4, ...)."""
    if isinstance(name, str):
        dt = _ALIASES.get(name)
        if dt is None:
            raise ValueError(f"name: dtype {name!r} is not one of {sorted(_ALIASES)}")
        return bf16() if dt == "bfloat16" else np.dtype(dt)
    try:
        out: np.dtype = np.dtype(cast(Any, name))
    except TypeError:
        raise TypeError(f"name: {name!r} is neither a dtype name nor a numpy dtype") from None
    if out.name not in _ALIASES:
        raise ValueError(f"name: dtype {out} is not supported by npusim; use one of "
                         f"{sorted(_ALIASES)}")
    return out


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with IEEE-style subnormals: ``mantissa_bits`` excludes the
    implicit bit, ``bias`` = 2^(exponent_bits-1) - 1, the top exponent is kept for inf / NaN."""

    name: str
    mantissa_bits: int
    exponent_bits: int

    @property
    def bias(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1

    @property
    def precision(self) -> int:
        return self.mantissa_bits + 1

    @property
    def min_exponent(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def max_finite(self) -> float:
        return float((2 - 2.0**-self.mantissa_bits) * 2.0**self.bias)

    @property
    def min_normal(self) -> float:
        return float(2.0**self.min_exponent)

    @property
    def min_subnormal(self) -> float:
        return float(2.0 ** (self.min_exponent - self.mantissa_bits))


FORMATS = {
    "float16": FloatFormat("float16", 10, 5),
    "bfloat16": FloatFormat("bfloat16", 7, 8),
    "float32": FloatFormat("float32", 23, 8),
    "fp19": FloatFormat("fp19", 10, 8),
}


def float_info(name: str | np.dtype) -> FloatFormat:
    """The format of float16 / bfloat16 / float32 (any alias accepted by ``np_dtype``) or 'fp19'
    (s1 e8 m10, the FixPipe scale M1). ValueError for anything else."""
    if isinstance(name, str) and name in FORMATS:
        return FORMATS[name]
    key = np_dtype(name).name
    if key not in FORMATS:
        raise ValueError(f"name: {name!r} is not a float format; use one of {sorted(FORMATS)} "
                         "or an alias of them")
    return FORMATS[key]
