"""Independent reference of npu_weight_quant_batchmatmul for the tests (ops-semantics 5.4-5.6
and the kernel structure described in the npusim docstrings), written without importing any
npusim kernel helper.

Roundings are computed here from exact float64 arithmetic (power-of-two scaling, floor) and
``math.fsum``, never through numpy's or npusim's casts; element-wise float32 / float16
arithmetic uses numpy (IEEE, correctly rounded per operation). The cube's declared model
"fractal_exact_fp32_sequential" is evaluated per output element: each 16-term k-fractal is summed
exactly (``math.fsum`` plus the sign of the residual for exact fp32 ties) and rounded once to
fp32, then added to the fp32 accumulator in k order. Integer matmuls use float64 products,
exact while |sum| < 2^53 (digits and weights are at most 127 in magnitude, K <= 65535).
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
F16 = np.float16

#: (mantissa bits, minimum normal exponent, max finite) of the formats
FORMATS = {
    "float16": (10, -14, 65504.0),
    "bfloat16": (7, -126, float.fromhex("0x1.fep127")),
    "float32": (23, -126, float.fromhex("0x1.fffffep127")),
}


def round_float(v, fmt: str, mode: str) -> np.ndarray:
    """Round exact float64 values to ``fmt`` ('rne' or 'away'), saturating at the max finite;
    returns float64 values (NaN / inf pass through)."""
    mbits, emin, maxf = FORMATS[fmt]
    v = np.asarray(v, dtype=np.float64)
    a = np.abs(v)
    with np.errstate(invalid="ignore", over="ignore"):
        _, e = np.frexp(a)
        exp = np.maximum(e - 1, emin)
        q = np.ldexp(np.ones_like(a), exp - mbits)
        t = a / q
        fl = np.floor(t)
        frac = t - fl
        if mode == "rne":
            inc = (frac > 0.5) | ((frac == 0.5) & (np.fmod(fl, 2) == 1))
        elif mode == "away":
            inc = frac >= 0.5
        else:
            raise ValueError(mode)
        r = (fl + inc) * q
        r = np.where(r > maxf, maxf, r)
        out = np.copysign(r, v)
    return np.where(np.isfinite(v), out, v)


def to_f16(v, mode: str = "rne") -> np.ndarray:
    """float16 array of the rounded values (the conversion of representable values is exact)."""
    return round_float(v, "float16", mode).astype(F16)


def to_bf16(v, mode: str = "rne") -> np.ndarray:
    import ml_dtypes

    return round_float(v, "bfloat16", mode).astype(ml_dtypes.bfloat16)


def round_half_away(v) -> np.ndarray:
    """Integral float64 nearest to v, ties away from zero (v float32 values)."""
    v = np.asarray(v, dtype=np.float64)
    return np.copysign(np.floor(np.abs(v) + 0.5), v)


def round_half_even(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    fl = np.floor(v)
    frac = v - fl
    inc = (frac > 0.5) | ((frac == 0.5) & (np.fmod(fl, 2) != 0))
    return fl + inc


# ---------------------------------------------------------------------------------------------
# cube model


def fp32_of_exact_sum(terms: list[float]) -> float:
    """The exact sum of float64 ``terms`` rounded once to fp32 (RNE)."""
    s = math.fsum(terms)
    if s == 0.0 or not math.isfinite(s):
        return s
    resid = math.fsum([*terms, -s])
    mag = abs(s)
    _, e = math.frexp(mag)
    q = 2.0 ** (max(e - 1, -126) - 23)
    t = mag / q
    fl = math.floor(t)
    frac = t - fl
    if frac > 0.5:
        up = True
    elif frac < 0.5:
        up = False
    elif resid == 0.0:
        up = fl % 2 == 1
    else:
        up = (resid > 0) == (s > 0)
    return math.copysign((fl + up) * q, s)


def cube_fp32(
    a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None, k0: int = 16
) -> np.ndarray:
    """fp32 L0C of a (M, K) @ b (K, N) in the declared fractal-sequential model."""
    m, k = a.shape
    n = b.shape[1]
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    acc = np.zeros((m, n), dtype=F32)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=F32)[None, :]
    for i in range(m):
        for k_start in range(0, k, k0):
            prods = a64[i, k_start : k_start + k0, None] * b64[k_start : k_start + k0, :]
            cols = prods.T.tolist()
            sums = np.array([fp32_of_exact_sum(c) for c in cols], dtype=np.float64)
            acc[i] = (acc[i] + sums.astype(F32)).astype(F32)
    return acc


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul (|a|, |b| <= 128, K <= 65535: float64 sums stay below 2^53)."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# parameters and layouts


def trans_quant_param0(scale: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """npu_trans_quant_param round_mode 0: fp32 truncated to 19 bits, offset RINT clamped."""
    u = np.ascontiguousarray(scale, dtype=F32).view(np.uint32).astype(np.int64) & 0xFFFFE000
    out = u | (1 << 46)
    if offset is not None:
        o = np.clip(round_half_even(np.asarray(offset, dtype=F32)), -256, 255).astype(np.int64)
        out = out | ((o & 0x1FF) << 37)
    return out


def decode_param(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M1 as float32, 9-bit signed offset) of uint64 fixpipe parameters."""
    q = np.asarray(q, dtype=np.int64)
    m1 = (q & 0xFFFFE000).astype(np.uint32).view(F32)
    off = (q >> 37) & 0x1FF
    off = np.where(off >= 256, off - 512, off)
    return m1, off


def pack_int4(values: np.ndarray) -> np.ndarray:
    """(R, 8j) values in [-8, 7] -> (R, j) int32, value t of each 8 in bits 4t..4t+3."""
    v = (values.astype(np.int64) & 0xF).reshape(values.shape[0], -1, 8)
    word = np.zeros(v.shape[:2], dtype=np.int64)
    for t in range(8):
        word |= v[:, :, t] << (4 * t)
    return word.astype(np.uint32).view(np.int32)


def nz_storage(nd: np.ndarray, c0: int) -> np.ndarray:
    """FRACTAL_NZ storage: nz[j // c0, i // 16, i % 16, j % c0] = nd[i, j], zero padded."""
    rows, cols = nd.shape
    r1, c1 = -(-rows // 16), -(-cols // c0)
    pad = np.zeros((r1 * 16, c1 * c0), dtype=nd.dtype)
    pad[:rows, :cols] = nd
    return np.ascontiguousarray(pad.reshape(r1, 16, c1, c0).transpose(2, 0, 1, 3))


class NzArray(np.ndarray):
    """Minimal FRACTAL_NZ carrier: storage array with npu_format 29 and origin_shape."""

    def __new__(cls, storage: np.ndarray, origin_shape: tuple[int, int]):
        obj = np.asarray(storage).view(cls)
        obj.npu_format = 29
        obj.origin_shape = tuple(origin_shape)
        return obj

    def __array_finalize__(self, obj):
        if obj is not None:
            self.npu_format = getattr(obj, "npu_format", 29)
            self.origin_shape = getattr(obj, "origin_shape", None)


def expand_k(param: np.ndarray, k: int, g: int) -> np.ndarray:
    """(G, N) -> (K, N) rows (group g covers rows g*G ...), or (1, N) unchanged."""
    if param.shape[0] == 1:
        return param
    rows = np.arange(k) // g
    return param[rows]


def out_cast(c: np.ndarray, out_dtype: str, mode: str) -> np.ndarray:
    return to_f16(c, mode) if out_dtype == "float16" else to_bf16(c, mode)


def requant(acc: np.ndarray, q: np.ndarray) -> np.ndarray:
    m1, off = decode_param(q)
    v = (acc.astype(F32) * m1.astype(F32)).astype(F32)
    s9 = np.clip(round_half_even(v), -256, 255)
    return np.clip(s9 + off, -128, 127).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# kernels


def ref_dequant(x_dtype, w, scale, offset, g):
    k = w.shape[0]
    if x_dtype == "float16":
        w16 = w.astype(F16)
        if offset is not None:
            w16 = (w16 + expand_k(offset, k, g)).astype(F16)
        return (w16 * expand_k(scale, k, g)).astype(F16)
    w32 = w.astype(F32)
    if offset is not None:
        w32 = (w32 + expand_k(offset.astype(F32), k, g)).astype(F32)
    w32 = (w32 * expand_k(scale.astype(F32), k, g)).astype(F32)
    return to_bf16(w32, "rne")


def ref_custom(x, w, scale, offset, g, bias, quant_param=None):
    """Custom kernel: dequant, fp32 cube model with bias, RNE out (or requant)."""
    wq = ref_dequant(str(x.dtype), w, scale, offset, g)
    acc = cube_fp32(x, wq, None if bias is None else bias.astype(F32))
    if quant_param is not None:
        return requant(acc, quant_param)
    return out_cast(acc, str(x.dtype), "rne")


def ref_custom_nz_splitk(x, w, scale, offset, bias, single_core_k):
    xd = str(x.dtype)
    if xd == "float16":
        wq = ref_dequant(xd, w, scale, offset, 0)
    else:
        w16 = w.astype(F16)
        if offset is not None:
            w16 = (w16 + to_f16(offset.astype(F32), "rne")).astype(F16)
        wq = to_bf16(w16.astype(F32), "rne")
    k = w.shape[0]
    blocks = [(k0, min(k, k0 + single_core_k)) for k0 in range(0, k, single_core_k)]
    if len(blocks) == 1 and xd == "float16" and bias is None:
        return to_f16(cube_fp32(x, wq), "rne")
    ws = np.zeros((x.shape[0], w.shape[1]), dtype=F32)
    for k0, k1 in blocks:
        ws = (ws + cube_fp32(x[:, k0:k1], wq[k0:k1])).astype(F32)
    if xd == "bfloat16":
        ws = (ws * scale.astype(F32)).astype(F32)
    if bias is not None:
        ws = (ws + bias.astype(F32)).astype(F32)
    return out_cast(ws, xd, "away")


def ref_fixpipe(x, w, scale_q, offset_i32, bias):
    m1, _ = decode_param(scale_q.reshape(-1))
    wi = w.astype(np.int64)
    if offset_i32 is not None:
        wi = wi + offset_i32.reshape(1, -1).astype(np.int64)
    w16 = to_f16((wi.astype(F32) * m1.astype(F32)).astype(F32), "rne")
    acc = cube_fp32(x, w16, None if bias is None else bias.astype(F32))
    return to_f16(acc, "rne")


def _block_sum8(v: np.ndarray) -> np.ndarray:
    """Sum of 8 fp32 lanes: ((0+1)+(2+3))+((4+5)+(6+7))."""
    a = (v[..., 0] + v[..., 1]).astype(F32)
    b = (v[..., 2] + v[..., 3]).astype(F32)
    c = (v[..., 4] + v[..., 5]).astype(F32)
    d = (v[..., 6] + v[..., 7]).astype(F32)
    return ((a + b).astype(F32) + (c + d).astype(F32)).astype(F32)


def _sum64(v: np.ndarray) -> np.ndarray:
    """64 lanes -> 8 block sums -> 1."""
    blocks = _block_sum8(v.reshape(*v.shape[:-1], 8, 8))
    return _block_sum8(blocks)


def _halving(chunks: list[np.ndarray]) -> np.ndarray:
    while len(chunks) > 1:
        p = len(chunks) // 2
        new = [(chunks[i] + chunks[p + i]).astype(F32) for i in range(p)]
        if len(chunks) % 2:
            new.append(chunks[2 * p])
        chunks = new
    return chunks[0]


def msd_rsum_row(xf: np.ndarray) -> np.float32:
    """Row sum of the Msd kernel (K % 32 == 0)."""
    k = xf.shape[0]
    if k < 64:
        sums = [_block_sum8(xf[i : i + 8]) for i in range(0, k, 8)]
        while len(sums) > 1:
            sums = [(sums[i] + sums[i + 1]).astype(F32) for i in range(0, len(sums) - 1, 2)] + (
                [sums[-1]] if len(sums) % 2 else []
            )
        return sums[0]
    full = k // 64
    if k >= 4096:
        t = _halving([xf[64 * i : 64 * (i + 1)] for i in range(full)]).copy()
    else:
        t = xf[:64].copy()
        if k >= 128:
            t = (xf[:64] + xf[64:128]).astype(F32)
            for i in range(2, full):
                t = (t + xf[64 * i : 64 * (i + 1)]).astype(F32)
        elif k > 64:
            t[: k - 64] = (xf[: k - 64] + xf[64:k]).astype(F32)
    tail = k - full * 64
    if tail and k >= 128:
        t[:tail] = (t[:tail] + xf[64 * full :]).astype(F32)
    return _sum64(t)


E1 = F32(127.499)
E2 = F32(127.499 * 127.499 * 2)


def ref_msd(x, w, scale, offset, bias, high_precision=False):
    """Msd multicore (per-channel int8)."""
    m, k = x.shape
    xf = x.astype(F32)
    inv1 = F32(F32(1) / E1)
    inv2 = F32(F32(1) / E2)
    a1s, a2s, amaxs, rss = [], [], [], []
    for i in range(m):
        row = xf[i]
        amax = F32(np.max(np.abs(row)))
        xn = (row * F32(F32(1) / amax)).astype(F32) if k >= 128 else (row / amax).astype(F32)
        a1 = round_half_away((xn * E1).astype(F32)).astype(F32)
        u = (a1 * inv1).astype(F32)
        a2 = round_half_away(((xn - u).astype(F32) * E2).astype(F32)).astype(F32)
        if high_precision:
            r1 = _halving_row_sum(u)
            r2 = _halving_row_sum((a2 * inv2).astype(F32))
            rss.append(F32(F32(r1 + r2) * amax))
        else:
            rss.append(msd_rsum_row(row))
        a1s.append(a1)
        a2s.append(a2)
        amaxs.append(amax)
    c1 = int_matmul(np.array(a1s, dtype=np.int64), w).astype(F32)
    c2 = int_matmul(np.array(a2s, dtype=np.int64), w).astype(F32)
    out = np.zeros((m, w.shape[1]), dtype=F32)
    for i in range(m):
        c = ((c1[i] * inv1).astype(F32) + (c2[i] * inv2).astype(F32)).astype(F32)
        c = (c * amaxs[i]).astype(F32)
        if offset is not None:
            c = ((rss[i] * offset[0].astype(F32)).astype(F32) + c).astype(F32)
        c = (c * scale[0].astype(F32)).astype(F32)
        if bias is not None:
            c = (c + bias.astype(F32)).astype(F32)
        out[i] = c
    return out_cast(out, str(x.dtype), "away")


def _halving_row_sum(v):
    k = v.shape[0]
    full = k // 64
    t = _halving([v[64 * i : 64 * (i + 1)] for i in range(full)]).copy()
    if k > full * 64:
        t[: k - full * 64] = (t[: k - full * 64] + v[64 * full :]).astype(F32)
    return _sum64(t)


FACTORS = {"int8": (F32(127.0), F32(254.0), 2), "int4": (F32(7.49), F32(14.98), 3)}


def _digits(xn, f1, f2, count):
    t = (xn * f1).astype(F32)
    ds = [round_half_away(t).astype(F32)]
    for _ in range(1, count):
        t = ((t - ds[-1]).astype(F32) * f2).astype(F32)
        ds.append(round_half_away(t).astype(F32))
    return ds


def _group_sum(v):
    """Group of 64 or 128 fp32 values."""
    t = (v[:64] + v[64:]).astype(F32) if v.shape[0] == 128 else v
    return _sum64(t)


def _madd(dst, a, b):
    """MulAddDst / Axpy: dst + a*b with the product rounded first (declared model)."""
    dt = dst.dtype.type
    return (dst + (np.asarray(a, dtype=dt) * np.asarray(b, dtype=dt)).astype(dt)).astype(dt)


def _fp16_out(cint):
    """Fixpipe int32 -> fp16 with scale 1.0 (deqf16)."""
    return to_f16((cint.astype(F32) * F32(1.0)).astype(F32), "rne")


def _recombine_split_k(cs, f1, f2, high_perf):
    if high_perf:
        d1, d2 = F16(to_f16(F32(1) / f2)[()]), F16(to_f16(F32(1) / F32(f2 * f2))[()])
        c16 = _fp16_out(cs[0])
        c16 = _madd(c16, _fp16_out(cs[1]), d1)
        c16 = _madd(c16, _fp16_out(cs[2]), d2)
        return (c16.astype(F32) * (F32(1) / f1)).astype(F32)
    f12 = F32(f1 * f2)
    div = [F32(1) / f1, F32(1) / f12, F32(1) / F32(f12 * f2)]
    cc = np.zeros(cs[0].shape, dtype=F32)
    for c, d in zip(cs, div[: len(cs)], strict=True):
        cc = _madd(cc, c.astype(F32), d)
    return cc


def ref_msd_split_k(x, w, w_dtype, scale, offset, bias, g, v1_base_k, group_pack, inner_precise):
    """MsdSplitK: per-channel blocks of v1_base_k, or per-group with group_pack."""
    m, k = x.shape
    n = w.shape[1]
    f1, f2, count = FACTORS[w_dtype]
    per_group = g > 0
    size = g if per_group else v1_base_k
    nb = -(-k // size)
    high_perf = per_group and w_dtype == "int4" and inner_precise == 1
    xf = np.zeros((m, nb * size), dtype=F32)
    xf[:, :k] = x.astype(F32)
    amax = np.zeros((m, nb), dtype=F32)
    rsum = np.zeros((m, nb), dtype=F32)
    cs = [[None] * count for _ in range(nb)]
    for b in range(nb):
        blk = xf[:, b * size : (b + 1) * size]
        real = min(k, (b + 1) * size) - b * size
        for i in range(m):
            amax[i, b] = np.max(np.abs(blk[i]))
            if per_group:
                rsum[i, b] = _group_sum(blk[i])
            else:
                rsum[i, b] = _sum64(_halving([blk[i, j : j + 64] for j in range(0, size, 64)]))
        xn = (blk / amax[:, b : b + 1]).astype(F32)
        ds = _digits(xn, f1, f2, count)
        allc = int_matmul(
            np.concatenate([d[:, :real] for d in ds]).astype(np.int64),
            w[b * size : b * size + real],
        )
        for d in range(count):
            cs[b][d] = allc[d * m : (d + 1) * m]
    c = np.zeros((m, n), dtype=F32)
    so = None if offset is None else (scale.astype(F32) * offset.astype(F32)).astype(F32)
    pack = group_pack if per_group else nb
    for p0 in range(0, nb, pack):
        ids = list(range(p0, min(nb, p0 + pack)))
        if so is not None:
            for b in ids:
                c = _madd(c, rsum[:, b : b + 1], so[b if per_group else 0][None, :])
        for b in ids:
            cc = _recombine_split_k(cs[b], f1, f2, high_perf)
            cc = (cc * scale[b if per_group else 0].astype(F32)).astype(F32)
            c = _madd(c, cc, amax[:, b : b + 1])
    if bias is not None:
        c = (c + bias.astype(F32)).astype(F32)
    return out_cast(c, str(x.dtype), "away")


def ref_msd_group(x, w, w_dtype, scale, offset, bias, g, single_core_k, inner_precise):
    """MsdGroup: per-core K ranges of single_core_k, partials added in core order."""
    m, k = x.shape
    n = w.shape[1]
    f1, f2, count = FACTORS[w_dtype]
    groups = k // g
    xf = x.astype(F32)
    ws = np.zeros((m, n), dtype=F32)
    per_core = single_core_k // g
    for c0 in range(0, groups, per_core):
        acc = None
        for task, gi in enumerate(range(c0, min(groups, c0 + per_core))):
            blk = xf[:, gi * g : (gi + 1) * g]
            amax = np.max(np.abs(blk), axis=1).astype(F32)[:, None]
            xn = (blk / amax).astype(F32)
            ds = _digits(xn, f1, f2, count)
            allc = int_matmul(np.concatenate(ds).astype(np.int64), w[gi * g : (gi + 1) * g])
            cs = [allc[j * m : (j + 1) * m] for j in range(count)]
            if offset is not None:
                rs = np.array([_group_sum(blk[i]) for i in range(m)], dtype=F32)[:, None]
                so = (scale[gi].astype(F32) * offset[gi].astype(F32)).astype(F32)[None, :]
                acc = (rs * so).astype(F32) if task == 0 else _madd(acc, rs, so)
            if inner_precise == 1:
                cc = _recombine_split_k(cs, f1, f2, True)
            else:
                cc = (cs[0].astype(F32) * (F32(1) / f1)).astype(F32)
                mf = F32(f1 * f2)
                cc = _madd(cc, cs[1].astype(F32), F32(1) / mf)
                mf = F32(mf * f2)
                cc = _madd(cc, cs[2].astype(F32), F32(1) / mf)
            cc = (cc * scale[gi].astype(F32)).astype(F32)
            cc = (cc * amax).astype(F32)
            acc = cc if acc is None else (acc + cc).astype(F32)
        ws = (ws + acc).astype(F32)
    if bias is not None:
        ws = (ws + bias.astype(F32)).astype(F32)
    return out_cast(ws, str(x.dtype), "away")
