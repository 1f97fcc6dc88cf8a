"""Bit-exact outputs of every npu_weight_quant_batchmatmul kernel against the independent
oracle in ``_wqbmm_oracle`` (ops-semantics 5.4-5.6; floating kernels exact to the declared cube
model "fractal_exact_fp32_sequential", integer-cube kernels exact).

Outputs are compared as integers (``.view(np.uint16)`` / int8)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from _wqbmm_oracle import (
    NzArray,
    nz_storage,
    pack_int4,
    ref_custom,
    ref_custom_nz_splitk,
    ref_fixpipe,
    ref_msd,
    ref_msd_group,
    ref_msd_split_k,
    trans_quant_param0,
)

from npusim.ops.weight_quant_batchmatmul import (
    default_tiling,
    normalize_args,
    select_kernel,
)
from npusim.torch_npu._weight_quant import (
    explain_weight_quant_batchmatmul,
    npu_weight_quant_batchmatmul,
)

BF16 = ml_dtypes.bfloat16


def bits(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.view(np.uint16) if a.dtype.itemsize == 2 else a.view(np.uint8)


def assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    g, w = bits(got), bits(want)
    bad = np.argwhere(g != w)
    if bad.size:
        first = tuple(bad[0])
        raise AssertionError(
            f"{len(bad)} of {g.size} differ; at {first}: {got[first]} vs {want[first]}"
        )


class Case:
    """One random call: logical values plus the arrays handed to the operator."""

    def __init__(self, seed, m, k, n, *, xdt="float16", wdt="int8", quant="channel", g=0,
                 offset=True, bias=True, trans=False, nz=False, int8_out=False, qs_int64=False,
                 inner_precise=0, x=None, w=None, scale_int64=False):  # fmt: skip
        rng = np.random.default_rng(seed)
        xd = np.float16 if xdt == "float16" else BF16
        self.x = x if x is not None else rng.standard_normal((m, k)).astype(xd)
        lo, hi = (-8, 8) if wdt == "int4" else (-128, 128)
        self.w = w if w is not None else rng.integers(lo, hi, (k, n)).astype(np.int8)
        groups = -(-k // g) if quant == "group" else 1
        cols = 1 if quant == "tensor" else n
        pd = xd
        self.scale = (rng.random((groups, cols)) * 0.05 + 0.01).astype(pd)
        self.offset = (rng.standard_normal((groups, cols)) * 3).astype(pd) if offset else None
        self.g = g if quant == "group" else 0
        bd = np.float16 if xdt == "float16" else np.float32
        self.bias = rng.standard_normal(n).astype(bd) if bias else None
        self.quant_param = self.quant_scale = self.quant_offset = None
        if int8_out:
            qs = (rng.random(n) * 0.5 + 0.1).astype(np.float32)
            qo = (rng.standard_normal(n) * 4).astype(np.float32)
            self.quant_param = trans_quant_param0(qs, qo)
            self.quant_scale = self.quant_param.copy() if qs_int64 else qs
            self.quant_offset = None if qs_int64 else qo
        self.inner_precise = inner_precise
        self.weight = self._weight(wdt, trans, nz)
        self.scale_arg = self._param(self.scale, quant, trans)
        self.offset_arg = None if self.offset is None else self._param(self.offset, quant, trans)
        if scale_int64:  # Fixpipe path: uint64 parameters and int32 offsets
            self.scale = trans_quant_param0((rng.random(n) * 0.02 + 0.001).astype(np.float32), None)
            self.offset = rng.integers(-128, 128, n).astype(np.int32) if offset else None
            self.scale_arg, self.offset_arg = self.scale, self.offset

    def _weight(self, wdt, trans, nz):
        from npusim.ops.weight_quant_batchmatmul import transpose_nz

        mat = np.ascontiguousarray(self.w.T if trans else self.w)
        if wdt == "int4":
            mat = pack_int4(mat)
        if nz:
            arr = NzArray(nz_storage(mat, 8 if wdt == "int4" else 32), mat.shape)
            return transpose_nz(arr) if trans else arr
        return mat.T if trans else mat

    @staticmethod
    def _param(p, quant, trans):
        if quant == "group":
            return np.ascontiguousarray(p.T).T if trans else p
        return p.reshape(-1)

    def call(self, **kw):
        return npu_weight_quant_batchmatmul(
            self.x, self.weight, self.scale_arg, self.offset_arg, self.quant_scale,
            self.quant_offset, self.bias, self.g, self.inner_precise, **kw,
        )  # fmt: skip

    def explain(self, **kw):
        return explain_weight_quant_batchmatmul(
            self.x, self.weight, self.scale_arg, self.offset_arg, self.quant_scale,
            self.quant_offset, self.bias, self.g, self.inner_precise, **kw,
        )  # fmt: skip


def oracle(c: Case, kernel: str, tiling: dict | None, wdt: str):
    if kernel == "Custom":
        return ref_custom(c.x, c.w, c.scale, c.offset, c.g, c.bias, c.quant_param)
    if kernel == "Msd":
        hp = (c.x.shape[0], c.x.shape[1], c.w.shape[1], c.bias is None) == (36, 8192, 1280, True)
        return ref_msd(c.x, c.w, c.scale, c.offset, c.bias, high_precision=hp)
    if kernel == "MsdSplitK":
        v1, pack = tiling["v1_base_k"], tiling["group_pack"]
        return ref_msd_split_k(
            c.x, c.w, wdt, c.scale, c.offset, c.bias, c.g, v1, pack, c.inner_precise
        )
    if kernel == "MsdGroup":
        return ref_msd_group(c.x, c.w, wdt, c.scale, c.offset, c.bias, c.g,
                             tiling["single_core_k"], c.inner_precise)  # fmt: skip
    if kernel == "CustomNzSplitK":
        return ref_custom_nz_splitk(c.x, c.w, c.scale, c.offset, c.bias, tiling["single_core_k"])
    if kernel == "Fixpipe":
        return ref_fixpipe(c.x, c.w, c.scale, c.offset, c.bias)
    raise AssertionError(kernel)


def run(case: Case, want_kernel: str, wdt: str = "int8", **kw):
    info = case.explain(**kw)
    assert info["kernel"] == want_kernel, info["not_capable"]
    got = case.call(**kw)
    assert_same_bits(got, oracle(case, want_kernel, info["tiling"], wdt))
    return got


# ---------------------------------------------------------------------------------------------
# Custom


@pytest.mark.parametrize(
    ("seed", "m", "k", "n", "opts"),
    [
        (1, 65, 64, 64, dict()),
        (2, 16, 160, 64, dict(xdt="bfloat16", quant="group", g=64)),  # partial last group
        (3, 1, 128, 64, dict(wdt="int4", quant="tensor", offset=False, trans=True)),
        (4, 16, 64, 64, dict(int8_out=True)),
        (5, 16, 64, 64, dict(xdt="bfloat16", int8_out=True, qs_int64=True, quant="tensor")),
        (6, 256, 64, 64, dict(quant="group", g=32, bias=False)),
        (7, 96, 128, 64, dict(nz=True, quant="group", g=64)),
        (8, 1, 4096, 64, dict(quant="group", g=128)),
        (9, 1, 64, 4096, dict(xdt="bfloat16", wdt="int4", offset=False)),
    ],
)
def test_custom_kernel(seed, m, k, n, opts):
    """Custom: fp16 dequant Add then Mul (RNE each) / bf16 dequant in fp32 with one RNE;
    fp32 cube with bias as initial value; RNE output or the clamp-before-offset requant."""
    run(Case(seed, m, k, n, **opts), "Custom", opts.get("wdt", "int8"))


# ---------------------------------------------------------------------------------------------
# MSD


@pytest.mark.parametrize(
    ("seed", "m", "k", "n", "opts"),
    [
        (11, 16, 256, 128, dict()),  # reciprocal path, sequential rsum
        (12, 1, 64, 64, dict(xdt="bfloat16")),  # Div path (K < 128)
        (13, 64, 32, 32, dict()),  # K < 64 rsum model
        (14, 4, 4128, 64, dict()),  # halving rsum with a 32-lane tail
        (15, 16, 4096, 1024, dict(offset=False)),
        (16, 65 - 1, 96, 64, dict(bias=False, trans=True, nz=True)),
    ],
)
def test_msd_kernel(seed, m, k, n, opts):
    """Msd: E1/E2 digits with half-away rounding, exact int8 matmuls, fp32 recombination in
    the kernel's order, half-away output."""
    run(Case(seed, m, k, n, **opts), "Msd")


def test_msd_high_precision_shape():
    """The white-listed shape (36, 8192, 1280, transB, no bias) takes rsum from the
    reconstructed digits."""
    run(Case(17, 36, 8192, 1280, trans=True, bias=False), "Msd")


@pytest.mark.parametrize(
    ("seed", "m", "k", "n", "opts", "det"),
    [
        (21, 2, 256, 64, dict(wdt="int4", trans=True), False),  # per-channel int4
        (22, 1, 13728, 32, dict(), False),  # per-channel int8 with K > 13696: two K blocks
        (23, 16, 256, 64, dict(wdt="int4", quant="group", g=128), True),
        (24, 16, 256, 64, dict(wdt="int4", quant="group", g=128, inner_precise=1), True),
        (25, 8, 2048, 64, dict(wdt="int4", quant="group", g=64, xdt="bfloat16"), True),
        (26, 8, 2048, 128, dict(wdt="int4", quant="group", g=64, nz=True, inner_precise=1), True),
    ],
)
def test_msd_split_k_kernel(seed, m, k, n, opts, det):
    """MsdSplitK: per-block / per-group digits (127/254 or 7.49/14.98), exact integer matmuls,
    offset terms then digit terms per group pack, fp16 Axpy chain for inner_precise 1."""
    run(Case(seed, m, k, n, **opts), "MsdSplitK", opts.get("wdt", "int8"), deterministic=det)


def test_msd_split_k_user_tiling_changes_blocks():
    """A user v1_base_k changes where amax and digits are taken; the output follows it."""
    c = Case(27, 1, 13728, 32, offset=True)
    args = normalize_args(c.x, c.weight, c.scale_arg, c.offset_arg, bias=c.bias)
    t = default_tiling(args, None, "MsdSplitK")
    import dataclasses

    t2 = dataclasses.replace(t, v1_base_k=4096, v1_base_m=3)
    got = c.call(tiling=t2)
    assert_same_bits(
        got, ref_msd_split_k(c.x, c.w, "int8", c.scale, c.offset, c.bias, 0, 4096, 1, 0)
    )
    assert not np.array_equal(bits(got), bits(c.call()))


@pytest.mark.parametrize(
    ("seed", "m", "k", "n", "opts"),
    [
        (31, 1, 4096, 512, dict(wdt="int4", quant="group", g=128, nz=True, offset=False)),
        (32, 1, 4096, 4096, dict(wdt="int4", quant="group", g=128, nz=True, inner_precise=1)),
        (33, 16, 512, 128, dict(wdt="int4", quant="group", g=128, xdt="bfloat16")),
        (34, 8, 1024, 64, dict(wdt="int4", quant="group", g=64, bias=False)),
    ],
)
def test_msd_group_kernel(seed, m, k, n, opts):
    """MsdGroup: per-group digits, exact int4 matmuls, per-core fp32 accumulation (fp16 chain
    for inner_precise 1), partials added in core order, half-away output."""
    run(Case(seed, m, k, n, **opts), "MsdGroup", "int4")


def test_msd_group_user_tiling():
    """single_core_k decides which groups share a core's fp32 accumulator."""
    import dataclasses

    c = Case(35, 16, 512, 128, wdt="int4", quant="group", g=128)
    args = normalize_args(
        c.x, c.weight, c.scale_arg, c.offset_arg, bias=c.bias, antiquant_group_size=128
    )
    t = dataclasses.replace(default_tiling(args, None, "MsdGroup"), single_core_k=256,
                            single_core_group=2, cube_block_dim_k=2)  # fmt: skip
    got = c.call(tiling=t)
    assert_same_bits(got, ref_msd_group(c.x, c.w, "int4", c.scale, c.offset, c.bias, 128, 256, 0))


def test_inner_precise_1_loses_precision():
    """inner_precise 1 rounds each digit product to fp16 (11 significant bits) and recombines
    in fp16; on positive x and non-negative weights the products of every group reach several
    thousand, so its error against the exact x @ w exceeds inner_precise 0's (fp32)."""
    rng = np.random.default_rng(5)
    k, n = 1024, 256
    x = rng.uniform(0.5, 1.0, (1, k)).astype(np.float16)
    w = rng.integers(0, 8, (k, n)).astype(np.int8)
    exact = x.astype(np.float64) @ w.astype(np.float64)
    errs = []
    for ip in (0, 1):
        c = Case(41, 1, k, n, wdt="int4", quant="group", g=128, nz=True, offset=False,
                 bias=False, inner_precise=ip, x=x, w=w)  # fmt: skip
        c.scale[:] = np.float16(1.0)
        c.scale_arg = c.scale
        got = run(c, "MsdGroup", "int4")
        errs.append(np.abs(got.astype(np.float64) - exact))
    assert errs[1].max() > errs[0].max()
    assert errs[1].sum() > 1.1 * errs[0].sum()


# ---------------------------------------------------------------------------------------------
# Fixpipe and CustomNzSplitK


@pytest.mark.parametrize(
    ("seed", "m", "k", "n", "off", "bias"),
    [(51, 96, 128, 64, True, True), (52, 1, 64, 128, False, False)],
)
def test_fixpipe_kernel(seed, m, k, n, off, bias):
    """Fixpipe: w16 = DEQF16(w + off, M1) before the matmul, fp16 cube, RNE output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    q = trans_quant_param0((rng.random(n) * 0.02 + 0.001).astype(np.float32), None)
    o = rng.integers(-128, 128, n).astype(np.int32) if off else None
    b = rng.standard_normal(n).astype(np.float16) if bias else None
    wt = np.ascontiguousarray(w.T).T
    assert select_kernel(normalize_args(x, wt, q, o, bias=b), None) == "Fixpipe"
    got = npu_weight_quant_batchmatmul(x, wt, q, o, bias=b)
    assert_same_bits(got, ref_fixpipe(x, w, q, o, b))


@pytest.mark.parametrize(
    ("seed", "k", "opts", "single_k"),
    [
        (61, 256, dict(bias=False), 128),  # two K blocks -> atomic sum + CAST_ROUND
        (62, 64, dict(xdt="bfloat16"), None),  # bf16: scale after the matmul
        (63, 64, dict(bias=False), None),  # one block, no bias: fixpipe RNE
    ],
)
def test_custom_nz_split_k_kernel(seed, k, opts, single_k):
    """CustomNzSplitK: per-core K partials in the cube model summed in core order, then
    (bf16) * scale, + bias, CAST_ROUND; or fixpipe RNE when there is one fp16 block and no
    bias."""
    import dataclasses

    c = Case(seed, 65, k, 64, trans=True, nz=True, **opts)
    kw = {}
    want_k = 1024
    if single_k:
        args = normalize_args(c.x, c.weight, c.scale_arg, c.offset_arg, bias=c.bias)
        t = default_tiling(args, None, "CustomNzSplitK")
        kw["tiling"] = dataclasses.replace(
            t, single_core_k=single_k, single_k=single_k, cube_block_dim_k=k // single_k
        )
        want_k = single_k
    got = c.call(**kw)
    assert c.explain()["kernel"] == "CustomNzSplitK"
    assert_same_bits(got, ref_custom_nz_splitk(c.x, c.w, c.scale, c.offset, c.bias, want_k))


# ---------------------------------------------------------------------------------------------
# randomised matrix

_MS = (1, 16, 64, 65, 96, 256)


def _random_case(i: int) -> tuple[Case, str, str]:
    rng = np.random.default_rng(1000 + i)
    m = int(rng.choice(_MS))
    wdt = str(rng.choice(["int8", "int4"]))
    quant = str(rng.choice(["tensor", "channel", "group"]))
    g = int(rng.choice([64, 128])) if quant == "group" else 0
    xdt = str(rng.choice(["float16", "bfloat16"]))
    nz = bool(rng.random() < 0.3) and quant != "tensor"
    trans = bool(rng.random() < 0.5) and not (nz and quant == "group")
    if nz and wdt == "int4" and quant == "channel":
        trans = True
    int8_out = bool(rng.random() < 0.15) and not nz
    qs_int64 = bool(rng.random() < 0.5)
    i64 = xdt == "float16" and wdt == "int8" and quant == "channel" and m <= 96 and not int8_out
    i64 = i64 and bool(rng.random() < 0.4)
    if i64:
        trans, nz = True, False
    if m >= 64:  # dequant-then-matmul kernels: keep the exact cube oracle cheap
        g = min(g, 64)
        k, n = (2 * g if g else 64), 64
    else:
        k = int(rng.choice([256, 512] if g == 128 else [128, 256, 512]))
        n = int(rng.choice([64, 128]))
    offset, bias = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    c = Case(2000 + i, m, k, n, xdt=xdt, wdt=wdt, quant=quant, g=g, trans=trans, nz=nz,
             int8_out=int8_out, qs_int64=qs_int64, offset=offset, bias=bias,
             scale_int64=i64)  # fmt: skip
    return c, wdt, c.explain()["kernel"]


@pytest.mark.parametrize("i", range(16))
def test_random_matrix(i):
    """Seeded random calls over M, K, N, weight dtype, quantisation type, offset, bias, x dtype,
    int8 output (float32 or int64 quant_scale), the int64 antiquant-scale path, ND/NZ and
    transposition: whichever kernel is selected matches the oracle."""
    c, wdt, kernel = _random_case(i)
    info = c.explain()
    assert_same_bits(c.call(), oracle(c, kernel, info["tiling"], wdt))


def test_custom_int8_output_without_quant_param_names_it():
    """normalize_args gives an int8 output only with a quant_param; the numerics model called
    with args that break that says what is missing instead of failing on None."""
    import dataclasses

    from _wqbmm_replay import B2, args_of, wqbmm_call

    from npusim.ops.weight_quant_batchmatmul.numerics_custom import custom
    from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts
    from npusim.runner import resolve_soc

    args = dataclasses.replace(args_of(wqbmm_call(4, 16, 64, 64)), out_dtype="int8")
    with pytest.raises(ValueError, match="quant_param: an int8 output needs"):
        custom(args, soc_facts(resolve_soc(B2)))
