"""int4 packing (ops-semantics 2.2, 4.3, 8.2): value t of each group of 8 in bits [4t, 4t+3]."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.numerics import pack_int4, unpack_int4


def test_worked_values():
    """8.2: [0..7] -> 0x76543210, [-8..-1] -> 0xFEDCBA98, -1 first -> 15, -8 last -> 0x80000000."""
    rows = np.array(
        [list(range(8)), list(range(-8, 0)), [-1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, -8]]
    )
    assert pack_int4(rows).reshape(-1).tolist() == [1985229328, -19088744, 15, -2147483648]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.data())
def test_round_trip_and_bit_positions(rows, words, data):
    """unpack(pack(v)) == v for any shape (..., 8j); word j of a row holds value 8j + t in bits
    4t..4t+3 as a two's complement nibble."""
    values = data.draw(st.lists(st.integers(-8, 7), min_size=rows * words * 8,
                                max_size=rows * words * 8))
    v = np.array(values, np.int8).reshape(rows, words * 8)
    p = pack_int4(v)
    assert p.dtype == np.int32 and p.shape == (rows, words)
    assert np.array_equal(unpack_int4(p), v)
    for r in range(rows):
        for j in range(words):
            word = int(p[r, j]) & 0xFFFFFFFF
            assert [(word >> (4 * t)) & 0xF for t in range(8)] == [
                int(x) & 0xF for x in v[r, 8 * j: 8 * j + 8]]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8))
def test_unpack_sign_extends_every_word(words):
    """Any int32 word unpacks to its 8 nibbles, low nibble first, each sign-extended to int8."""
    got = unpack_int4(np.array(words, np.int32))
    assert got.dtype == np.int8
    want = []
    for w in words:
        for t in range(8):
            nib = ((w & 0xFFFFFFFF) >> (4 * t)) & 0xF
            want.append(nib - 16 if nib >= 8 else nib)
    assert got.tolist() == want


def test_out_of_range_raises_unless_masked():
    """Values outside [-8, 7] raise naming the first index and value; the mask flag emulates the
    host's value & 0xF (9 packs as the nibble 9, i.e. -7; 16 as 0)."""
    v = np.array([0, 0, 0, 0, 0, 9, 0, 16])
    with pytest.raises(ValueError, match=r"values: 9 at index \(5,\) is outside the int4 range"):
        pack_int4(v)
    masked = pack_int4(v, mask_out_of_range=True)
    assert masked.tolist() == [9 << 20]
    assert unpack_int4(masked).tolist() == [0, 0, 0, 0, 0, -7, 0, 0]
    with pytest.raises(ValueError, match=r"values: 4294967295 at index \(0,\)"):
        pack_int4(np.full(8, 2**32 - 1, np.uint32))


def test_bad_shapes_and_dtypes():
    """Last dim not a multiple of 8 -> ValueError; float values or a non-int32 packed array ->
    TypeError; a 0-d packed array -> ValueError."""
    with pytest.raises(ValueError, match="last dimension 12 must be a multiple of 8"):
        pack_int4(np.zeros((2, 12), np.int8))
    with pytest.raises(TypeError, match="values: dtype float32"):
        pack_int4(np.zeros(8, np.float32))
    with pytest.raises(TypeError, match="packed: dtype int64"):
        unpack_int4(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="packed: a 0-d array"):
        unpack_int4(np.int32(5))


def test_unpack_bytes_on_every_byte_pair_and_odd_rows():
    """unpack_int4_bytes (two bytes per look-up on rows of even length, one otherwise) gives
    each byte's low nibble, then its high nibble, sign-extended: every pair of byte values,
    rows of odd length, an empty row, a 0-d byte and a strided (non-contiguous) view."""
    from npusim.numerics.int4 import unpack_int4_bytes

    every = np.arange(1 << 16, dtype="<u2").view(np.uint8).reshape(-1, 2)  # (65536, 2)

    def want(b):
        b = np.asarray(b, np.int16)
        lo, hi = ((b & 0xF) ^ 8) - 8, ((b >> 4) ^ 8) - 8
        return np.stack([lo, hi], axis=-1).reshape(*b.shape[:-1], 2 * b.shape[-1]).astype(np.int8)

    for b in (every, every.reshape(-1, 8), every[:, :1], every.reshape(-1)[:9999],
              every.reshape(-1, 4)[:, ::2], every[:0]):
        got = unpack_int4_bytes(np.asarray(b))
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, want(b))
    np.testing.assert_array_equal(unpack_int4_bytes(np.uint8(0x9F)), np.int8([-1, -7]))
