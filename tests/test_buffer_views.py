"""A functional context's view of a row-strided region (FunctionalContext._make_view) is the
window numpy's as_strided gives - same bytes, shape and strides, writes landing in the buffer -
whether it is cut from a slice of whole strides (rows that fit the buffer) or built by
as_strided (the last stride past the buffer's end, rows overlapping)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

from npusim.engine.buffers import FunctionalContext, np_dtype_of
from npusim.isa.operands import Region

SIZE = 8192


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["int8", "float16", "float32", "int32", "int4"]),
       st.integers(1, 9), st.sampled_from([(1,), (2,), (4,), (16,), (2, 4), (3, 8)]),
       st.integers(0, 96), st.integers(0, 4096), st.integers(0, 2**31))
def test_strided_views_are_the_as_strided_windows(dtype, rows, cols, extra, offset, seed):
    np_dt = np_dtype_of(dtype)
    shape = (rows, *cols)
    vshape = (*shape[:-1], (shape[-1] + 1) // 2) if dtype == "int4" else shape
    cols_bytes = int(np.prod(vshape[1:])) * np_dt.itemsize
    stride = max(1, cols_bytes - 8 + extra)  # from overlapping rows to gaps
    end = offset + (rows - 1) * stride + cols_bytes
    if end > SIZE:
        return
    kernel = SimpleNamespace(gm={})
    desc = SimpleNamespace(buffers={"UB": SimpleNamespace(capacity_bytes=SIZE)})
    ctx = FunctionalContext(kernel, [desc])  # type: ignore[arg-type]
    raw = ctx.local[0]["UB"]
    raw[:] = np.random.default_rng(seed).integers(0, 256, SIZE, dtype=np.uint8)
    got = ctx.view(Region("UB", offset, shape, dtype, None, stride))
    want = as_strided(raw[offset:], shape=(rows, cols_bytes), strides=(stride, 1))
    want = want.view(np_dt).reshape(vshape)
    assert got.shape == want.shape and got.strides == want.strides
    assert got.__array_interface__["data"][0] == want.__array_interface__["data"][0]
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    got[...] = 0  # a view of the buffer, not a copy
    assert not want.view(np.uint8).any()
