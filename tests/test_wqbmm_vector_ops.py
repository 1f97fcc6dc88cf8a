"""The declared vector-unit model of the weight_quant_batchmatmul kernels: exact fused
multiply-add (for AXPY_FUSED = True), the unfused default, and the pinned BlockReduceSum and
halving orders. Oracles use fractions.Fraction."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.ops.weight_quant_batchmatmul import vector_ops as vo

F32_MAX = float(np.finfo(np.float32).max)


def _round(q: Fraction, mbits: int, emin: int, maxf: float) -> float:
    """Exact rational -> nearest binary float with ``mbits`` fraction bits, ties to even."""
    if q == 0:
        return 0.0
    sign = -1 if q < 0 else 1
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    e = max(e, emin)
    quantum = Fraction(2) ** (e - mbits)
    n, r = divmod(a, quantum)
    if r * 2 > quantum or (r * 2 == quantum and n % 2 == 1):
        n += 1
    v = float(n * quantum)
    return sign * (math.inf if v > maxf else v)


f32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
f16s = st.floats(width=16, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(f32s, f32s, f32s)
def test_fused_mul_add_float32_is_one_rounding(a, b, c):
    """fused_mul_add(a, b, c) == RNE_fp32(a*b + c) exactly (when finite)."""
    want = _round(Fraction(a) * Fraction(b) + Fraction(c), 23, -126, F32_MAX)
    got = float(vo.fused_mul_add(np.float32(a), np.float32(b), np.float32(c), np.float32))
    if math.isfinite(want):
        assert got == want or (got == 0.0 and want == 0.0)


@settings(max_examples=150, deadline=None)
@given(f16s, f16s, f16s)
def test_fused_mul_add_float16_is_one_rounding(a, b, c):
    """The fp16 Axpy of inner_precise 1 under a fused model: one RNE rounding to fp16."""
    want = _round(Fraction(a) * Fraction(b) + Fraction(c), 10, -14, 65504.0)
    got = float(vo.fused_mul_add(np.float16(a), np.float16(b), np.float16(c), np.float16))
    if math.isfinite(want):
        assert got == want or (got == 0.0 and want == 0.0)


@settings(max_examples=150, deadline=None)
@given(f16s, f16s, f16s)
def test_default_mul_add_rounds_twice(a, b, c):
    """AXPY_FUSED is False: MulAddDst/Axpy round the product, then the sum (fp16 here)."""
    assert vo.AXPY_FUSED is False
    p = _round(Fraction(a) * Fraction(b), 10, -14, 65504.0)
    if not math.isfinite(p):
        return
    want = _round(Fraction(p) + Fraction(c), 10, -14, 65504.0)
    got = vo.mul_add(np.array([c], np.float16), np.array([a], np.float16), np.float16(b))
    if math.isfinite(want):
        assert float(got[0]) == want or (float(got[0]) == 0.0 and want == 0.0)


def test_block_reduce_sum_is_pairwise():
    """BlockReduceSum adds ((e0+e1)+(e2+e3))+((e4+e5)+(e6+e7)) in fp32: on this vector the
    pairwise tree gives 0 where a left-to-right sum would give -1."""
    v = np.array([2**25, 1, 1, 1, -(2**25), 1, -1, -1], np.float32)
    # pairs: 2^25, 2, -2^25, -2 -> (2^25 + 2 -> 2^25, tie to even) + (-2^25) = 0
    assert float(vo.block_reduce_sum(v)[0]) == 0.0
    v = np.array([1, 1, 2**24, 0, 0, 0, 0, 0], np.float32)
    assert float(vo.block_reduce_sum(v)[0]) == 2**24 + 2  # (1+1) + 2^24 exact
    assert vo.BLOCK_REDUCE_ORDER == "pairwise"


def test_halving_pairs_chunk_i_with_chunk_half_plus_i():
    """RowSumInplace: chunk i is added to chunk P+i (P = R // 2); an odd last chunk is
    carried to the next round."""
    r = 5
    chunks = [np.full(64, 10.0**i, np.float32) for i in range(r)]
    got = vo.halving_chunk_sum(np.concatenate(chunks))
    # R = 5, P = 2: [c0+c2, c1+c3, c4]; R = 3, P = 1: [(c0+c2)+(c1+c3), c4]; then the sum
    a = (chunks[0] + chunks[2]).astype(np.float32)
    b = (chunks[1] + chunks[3]).astype(np.float32)
    first = (a + b).astype(np.float32)
    want = (first + chunks[4]).astype(np.float32)
    assert np.array_equal(got, want)
