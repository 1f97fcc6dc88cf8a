"""Numerics of the MSD ("multi-scale decomposition") kernels: Msd, MsdSplitK, MsdGroup.

x is split into integer digits on the vector cores, the digits are multiplied by the raw int8 /
int4 weight on the cube (exact int32, ``cube_matmul_int``), and the vector cores recombine the
int32 (or fp16) results in fp32 (ops-semantics 5.5, read against ops-nn ``op_kernel/
weight_quant_batch_matmul_v2_msd_{multicore,split_k,group}.h``). Every vector operation is a
float32 (or float16) operation rounded to nearest-even, in the order listed per kernel below;
Axpy / MulAddDst fusion, BlockReduceSum order and Div accuracy follow the declared models of
``vector_ops``. ``CAST_ROUND`` (fp32 -> integral fp32) rounds half away from zero, exactly.

**Msd** (per-channel int8, K <= 13696, N <= 32000), per row m:
``amax = max|x|``; ``xn = x * (1.0f/amax)`` when K >= 128 (scalar reciprocal, then Muls), else
``x / amax``; ``a1 = ROUND(xn * E1)``; ``a2 = ROUND((xn - a1 * (1/E1)) * E2)`` with
``E1 = 127.499f``, ``E2 = float(127.499 * 127.499 * 2)``; ``C_i = a_i @ W``; then
``c = (float(C1) * (1/E1) + float(C2) * (1/E2)) * amax``, ``c = rsum * off + c`` (offset),
``c = c * scale``, ``c = c + bias``, ``y = CAST_ROUND(c)``. ``rsum`` (only with an offset) adds
the row's 64-lane chunks sequentially (K < 4096) or by halving (K >= 4096), then two
BlockReduceSums. The white-listed HIGH_PRECISION shape takes ``rsum`` from the reconstructed
row ``(RowSum(a1/E1) + RowSum(a2/E2)) * amax`` instead.

**MsdSplitK** (per-channel int8 with large K/N, per-channel int4, per-group int4): digits
``t0 = xn * f1, d0 = ROUND(t0), t_i = (t_{i-1} - d_{i-1}) * f2, d_i = ROUND(t_i)`` (int8:
f1 = 127, f2 = 254, 2 digits; int4: f1 = 7.49f, f2 = 14.98f, 3 digits) with ``xn = x / amax``
(Div) and amax / rsum per (row, K block of ``v1_base_k``) per-channel, per (row, group)
per-group. Recombination, per output element, starting from ``c = 0``: per-channel, first
``c += rsum_b * (scale * off)`` for every K block b, then for every b
``cc = sum_i float(C_i[b]) * divF_i`` (Axpy from 0), ``cc *= scale``, ``c += cc * amax_b``
(MulAddDst). Per-group the same per group, the offset terms and the digit terms of each
``group_pack`` of groups in turn. ``divF = 1/f1, 1/(f1 f2), 1/(f1 f2^2)``. With inner_precise
1 (per-group int4) the cube results leave through fixpipe as fp16 (``deqf16`` with scale 1.0)
and ``cc16 = C0; cc16 += C1 * half(1/f2); cc16 += C2 * half(1/f2^2)`` in fp16 (Axpy),
``cc = float(cc16) * (1/f1)``. Then ``c += bias``, ``y = CAST_ROUND(c)``.

**MsdGroup** (per-group, M <= g/8): the same digits per (row, group). Each of
``cube_block_dim_k`` cores owns ``single_core_k`` rows of K; per group in order:
``acc = rsum * (scale*off)`` (first) / ``acc += rsum * (scale*off)`` (MulAddDst), then
``cc = float(C0) * (1/f1); cc += float(C1) * (1/(f1 f2)); cc += float(C2) * (1/(f1 f2^2))``
(or the fp16 Axpy chain of inner_precise 1), ``cc = cc * scale; cc = cc * amax``,
``acc = acc + cc`` (or ``acc = cc`` for the first group without offset). The per-core ``acc``
are atomically added into a zeroed fp32 workspace in the SoC's ``split_k_reduction_order``,
then ``+ bias`` and ``CAST_ROUND``.

Not modelled (NotImplementedError): a row / block / group of x whose amax is 0 or not finite
(the kernels then divide by 0 or inf; the hardware NaN handling is unverified).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from npusim.numerics.cube import cube_matmul_int
from npusim.ops.weight_quant_batchmatmul import vector_ops as vo
from npusim.ops.weight_quant_batchmatmul.args import PER_GROUP, WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.numerics_common import (
    F32,
    bias_f32,
    ordered_partials,
    params_f32,
    required,
    vector_round,
)
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts
from npusim.ops.weight_quant_batchmatmul.tiling import MsdGroupTiling, MsdSplitKTiling

F16 = np.float16

# Msd multicore constants (C++ float constexpr; E2 is computed in double, then stored as float)
E1 = F32(127.499)
E2 = F32(127.499 * 127.499 * 2)
INV_E1 = F32(F32(1.0) / E1)
INV_E2 = F32(F32(1.0) / E2)

#: (f1, f2, digits) of the split-K / group kernels per weight dtype
DIGIT_FACTORS = {"int8": (F32(127.0), F32(254.0), 2), "int4": (F32(7.49), F32(14.98), 3)}


def round_away(v: np.ndarray) -> np.ndarray:
    """CAST_ROUND fp32 -> integral fp32 (ties away from zero), exact."""
    from npusim.numerics import RoundMode, round_to_integral

    return np.asarray(round_to_integral(np.asarray(v, dtype=F32), RoundMode.ROUND)).astype(F32)


def digits_to_int(d: np.ndarray, weight_dtype: str) -> np.ndarray:
    """Integral fp32 digit -> half (exact) -> int8 / int4 (saturating Cast), as int8 array."""
    from npusim.numerics import RoundMode, float_to_int

    return np.asarray(float_to_int(d, weight_dtype, RoundMode.RINT, saturate=True), dtype=np.int8)


def _check_amax(amax: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(amax) | (amax == 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NotImplementedError(
            f"x: the {what} at index {idx} has max|x| = {float(amax[bad].ravel()[0])}; the MSD "
            "kernels then divide by zero or infinity and the hardware NaN handling is not "
            "modelled (ops-semantics 5.5)"
        )


def check_row_amax(x: np.ndarray) -> None:
    """Raise the not-modelled error of a row of x whose max |x| is 0 or not finite."""
    _check_amax(np.max(np.abs(np.asarray(x, dtype=F32)), axis=1, keepdims=True), "row")


def check_block_amax(x: np.ndarray, size: int, what: str) -> None:
    """Raise the not-modelled error of a block of ``size`` x elements (zero padded) whose
    max |x| is 0 or not finite."""
    _check_amax(np.max(np.abs(_blocks(np.asarray(x, dtype=F32), size)), axis=2), what)


def split_digits(xn: np.ndarray, f1: np.float32, f2: np.float32, count: int) -> list[np.ndarray]:
    """Integral fp32 digits d_0..d_{count-1} of normalised x (split-K / group recurrence)."""
    t = (xn * f1).astype(F32)
    out: list[np.ndarray] = []
    for i in range(count):
        if i:
            t = ((t - out[-1]).astype(F32) * f2).astype(F32)
        out.append(round_away(t))
    return out


def recombination_factors(
    f1: np.float32, f2: np.float32, high_performance: bool
) -> list[np.floating[Any]]:
    """divFactors of the split-K / group kernels: fp32 1/f1, 1/(f1 f2), 1/(f1 f2^2); for the
    fp16 (inner_precise 1) chain 1/f1 (fp32), half(1/f2), half(1/f2^2)."""
    one = F32(1.0)
    if high_performance:
        return [one / f1, F16(one / f2), F16(one / F32(f2 * f2))]
    f12 = F32(f1 * f2)
    return [one / f1, one / f12, one / F32(f12 * f2)]


# --------------------------------------------------------------------------------------------
# Msd (multi-core, per-channel int8)


def _row_sum_fixed(xf: np.ndarray) -> np.ndarray:
    k = xf.shape[-1]
    if k < 64:
        return vo.pairwise_sum(vo.block_reduce_sum(xf))
    return vo.reduce_repeat_to_scalar(vo.sequential_chunk_sum(xf))


def _row_sum_inplace(v: np.ndarray) -> np.ndarray:
    k = v.shape[-1]
    full = (k // 64) * 64
    t = vo.halving_chunk_sum(v[..., :full])
    if k > full:
        t[..., : k - full] = (t[..., : k - full] + v[..., full:]).astype(F32)
    return vo.reduce_repeat_to_scalar(t)


def msd_multicore(args: WqbmmArgs, facts: SocFacts, high_precision: bool = False) -> np.ndarray:
    """Output of the Msd kernel (HIGH_PRECISION variant when ``high_precision``)."""
    xf = args.x.astype(F32)
    amax = np.max(np.abs(xf), axis=1, keepdims=True).astype(F32)
    _check_amax(amax, "row")
    with np.errstate(over="ignore", invalid="ignore"):
        if args.k >= 128:
            xn = (xf * (F32(1.0) / amax).astype(F32)).astype(F32)
        else:
            xn = (xf / amax).astype(F32)
        a1f = round_away((xn * E1).astype(F32))
        u = (a1f * INV_E1).astype(F32)
        a2f = round_away(((xn - u).astype(F32) * E2).astype(F32))
    a1 = digits_to_int(a1f, "int8")
    a2 = digits_to_int(a2f, "int8")
    c1 = cube_matmul_int(a1, args.weight).astype(F32)
    c2 = cube_matmul_int(a2, args.weight).astype(F32)
    scale, offset = params_f32(args)
    c = ((c1 * INV_E1).astype(F32) + (c2 * INV_E2).astype(F32)).astype(F32)
    c = (c * amax).astype(F32)
    if offset is not None:
        if high_precision:
            rs = (_row_sum_inplace(u) + _row_sum_inplace((a2f * INV_E2).astype(F32))).astype(F32)
            rsum = (rs * amax[:, 0]).astype(F32)
        elif args.k >= 4096:
            rsum = _row_sum_inplace(xf)
        else:
            rsum = _row_sum_fixed(xf)
        c = ((rsum[:, None] * offset).astype(F32) + c).astype(F32)
    c = (c * scale).astype(F32)
    bias = bias_f32(args)
    if bias is not None:
        c = (c + bias).astype(F32)
    return vector_round(c, args.out_dtype)


# --------------------------------------------------------------------------------------------
# shared pre-processing of the split-K / group kernels


def _blocks(xf: np.ndarray, size: int) -> np.ndarray:
    """(M, K) -> (M, B, size) zero padded."""
    m, k = xf.shape
    nb = -(-k // size)
    padded = np.zeros((m, nb * size), dtype=F32)
    padded[:, :k] = xf
    return padded.reshape(m, nb, size)


def _digits_for_blocks(
    xb: np.ndarray, args: WqbmmArgs, what: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """amax (M, B), digits [(M, B, size)] as int8 arrays, for blocks of x."""
    f1, f2, count = DIGIT_FACTORS[args.weight_dtype]
    amax = np.max(np.abs(xb), axis=2).astype(F32)
    _check_amax(amax, what)
    with np.errstate(over="ignore", invalid="ignore"):
        xn = (xb / amax[..., None]).astype(F32)
        digits = split_digits(xn, f1, f2, count)
    return amax, [digits_to_int(d, args.weight_dtype) for d in digits]


def _digit_products(
    digits: list[np.ndarray], args: WqbmmArgs, size: int, high_performance: bool
) -> list[list[np.ndarray]]:
    """C[b][i] (M, N): digit i of block b times the block's weight rows (int32, or the fp16
    fixpipe output of inner_precise 1)."""
    from npusim.numerics import deqf16

    out: list[list[np.ndarray]] = []
    m = digits[0].shape[0]
    nb = digits[0].shape[1]
    for b in range(nb):
        k0, k1 = b * size, min(args.k, (b + 1) * size)
        stacked = np.concatenate([d[:, b, : k1 - k0] for d in digits], axis=0)
        c = cube_matmul_int(stacked, args.weight[k0:k1])
        c = np.asarray(deqf16(c, F32(1.0))) if high_performance else c.astype(F32)
        out.append([c[i * m : (i + 1) * m] for i in range(len(digits))])
    return out


def _recombine(
    products: list[np.ndarray], factors: list[np.floating[Any]], high_performance: bool
) -> np.ndarray:
    """cc of one block: the Axpy chain over the digits (fp32 from 0, or the fp16 chain)."""
    if high_performance:
        c16 = products[0].astype(F16)
        for i in range(1, len(products)):
            c16 = vo.mul_add(c16, products[i], factors[i])
        return cast(np.ndarray, (c16.astype(F32) * factors[0]).astype(F32))
    cc = np.zeros(products[0].shape, dtype=F32)
    for p, f in zip(products, factors[: len(products)], strict=True):
        cc = vo.mul_add(cc, p, F32(f))
    return cc


# --------------------------------------------------------------------------------------------
# MsdSplitK


def msd_split_k(args: WqbmmArgs, facts: SocFacts, tiling: MsdSplitKTiling) -> np.ndarray:
    """Output of the MsdSplitK kernel for ``tiling`` (v1_base_k, group_pack)."""
    per_group = args.quant_type == PER_GROUP
    high_perf = per_group and args.weight_dtype == "int4" and args.inner_precise == 1
    f1, f2, _ = DIGIT_FACTORS[args.weight_dtype]
    factors = recombination_factors(f1, f2, high_perf)
    size = args.group_size if per_group else tiling.v1_base_k
    xf = args.x.astype(F32)
    xb = _blocks(xf, size)
    amax, digits = _digits_for_blocks(xb, args, "group" if per_group else "K block")
    products = _digit_products(digits, args, size, high_perf)
    scale, offset = params_f32(args)
    nb = xb.shape[1]
    rsum = None
    if offset is not None:
        if per_group:
            rsum = vo.group_sum(xb)
        else:
            rsum = vo.reduce_repeat_to_scalar(vo.halving_chunk_sum(xb))
        scale_off = (scale * offset).astype(F32)
    c = np.zeros((args.m, args.n), dtype=F32)
    pack = tiling.group_pack if per_group else nb
    for p0 in range(0, nb, pack):
        group_ids = range(p0, min(nb, p0 + pack))
        if rsum is not None:
            for b in group_ids:
                so = scale_off[b if per_group else 0]
                c = vo.mul_add(c, rsum[:, b, None], so[None, :])
        for b in group_ids:
            cc = _recombine(products[b], factors, high_perf)
            cc = (cc * scale[b if per_group else 0]).astype(F32)
            c = vo.mul_add(c, cc, amax[:, b, None])
    bias = bias_f32(args)
    if bias is not None:
        c = (c + bias).astype(F32)
    return vector_round(c, args.out_dtype)


# --------------------------------------------------------------------------------------------
# MsdGroup


def msd_group(args: WqbmmArgs, facts: SocFacts, tiling: MsdGroupTiling) -> np.ndarray:
    """Output of the MsdGroup kernel for ``tiling`` (single_core_k: the per-core K ranges)."""
    g = args.group_size
    high_perf = args.inner_precise == 1
    f1, f2, _ = DIGIT_FACTORS[args.weight_dtype]
    factors = recombination_factors(f1, f2, high_perf)
    xb = _blocks(args.x.astype(F32), g)
    amax, digits = _digits_for_blocks(xb, args, "group")
    products = _digit_products(digits, args, g, high_perf)
    scale, offset = params_f32(args)
    # (rsum, scale * offset) of the offset terms
    off_terms: tuple[np.ndarray, np.ndarray] | None = None
    if offset is not None:
        off_terms = (vo.group_sum(xb), (scale * offset).astype(F32))
    groups_per_core = tiling.single_core_k // g
    n_groups = xb.shape[1]
    partials: list[np.ndarray] = []
    for c0 in range(0, n_groups, groups_per_core):
        acc: np.ndarray | None = None
        for gi in range(c0, min(n_groups, c0 + groups_per_core)):
            if off_terms is not None:
                rsum, scale_off = off_terms
                term = (rsum[:, gi, None] * scale_off[gi][None, :]).astype(F32)
                acc = (  # acc is None exactly at the core's first group
                    term
                    if acc is None
                    else vo.mul_add(acc, rsum[:, gi, None], scale_off[gi][None, :])
                )
            cc = _recombine_group(products[gi], factors, high_perf)
            cc = (cc * scale[gi]).astype(F32)
            cc = (cc * amax[:, gi, None]).astype(F32)
            acc = cc if acc is None else (acc + cc).astype(F32)
        rule = f"must hold at least one group of {g} rows"
        partials.append(required(acc, f"tiling.single_core_k={tiling.single_core_k}", rule))
    ws = np.zeros((args.m, args.n), dtype=F32)
    for part in ordered_partials(partials, facts):
        ws = (ws + part).astype(F32)
    bias = bias_f32(args)
    if bias is not None:
        ws = (ws + bias).astype(F32)
    return vector_round(ws, args.out_dtype)


def _recombine_group(
    products: list[np.ndarray], factors: list[np.floating[Any]], high_performance: bool
) -> np.ndarray:
    """MsdGroup's chain: fp32 starts with a Muls of digit 0 (not an Axpy from 0)."""
    if high_performance:
        return _recombine(products, factors, True)
    cc = (products[0] * F32(factors[0])).astype(F32)
    for p, f in zip(products[1:], factors[1 : len(products)], strict=True):
        cc = vo.mul_add(cc, p, F32(f))
    return cc
