"""dtype names and float formats (float16, bfloat16, float32 and the FixPipe fp19)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from npusim.numerics import BF16, float_info, np_dtype


@pytest.mark.parametrize("names,want", [
    (("float16", "fp16", np.float16), np.float16),
    (("bfloat16", "bf16", ml_dtypes.bfloat16), ml_dtypes.bfloat16),
    (("float32", "fp32", np.dtype(np.float32)), np.float32),
    (("int8",), np.int8), (("int16",), np.int16), (("int32",), np.int32),
    (("int64",), np.int64), (("uint64",), np.uint64),
])
def test_np_dtype_names(names, want):
    """Every accepted spelling maps to its numpy dtype; bf16 is ml_dtypes.bfloat16."""
    for name in names:
        assert np_dtype(name) == np.dtype(want)
    assert np.dtype(ml_dtypes.bfloat16) == BF16


@pytest.mark.parametrize("bad", ["float64", "int4", "fp8", np.float64, np.complex64])
def test_np_dtype_rejects(bad):
    """Names and dtypes outside the supported set raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="name: dtype"):
        np_dtype(bad)


@pytest.mark.parametrize("name,m,e,bias,max_finite,min_normal,min_sub", [
    ("fp16", 10, 5, 15, 65504.0, 2.0**-14, 2.0**-24),
    ("bf16", 7, 8, 127, (2**8 - 1) * 2.0**120, 2.0**-126, 2.0**-133),
    ("float32", 23, 8, 127, (2**24 - 1) * 2.0**104, 2.0**-126, 2.0**-149),
    ("fp19", 10, 8, 127, (2**11 - 1) * 2.0**117, 2.0**-126, 2.0**-136),
])
def test_float_info(name, m, e, bias, max_finite, min_normal, min_sub):
    """Mantissa / exponent widths, bias and the extreme values, derived from the bit layout."""
    f = float_info(name)
    assert (f.mantissa_bits, f.exponent_bits, f.bias) == (m, e, bias)
    assert (f.max_finite, f.min_normal, f.min_subnormal) == (max_finite, min_normal, min_sub)


def test_float_info_rejects_non_floats():
    """Integer or unknown formats raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="name: 'int8' is not a float format"):
        float_info("int8")
    with pytest.raises(ValueError, match="name: dtype 'fp8'"):
        float_info("fp8")
