"""Every legal combination works (issue 16): a generator of legal calls from the seed docs'
constraints, run on each SoC family (A2 = Ascend910B2, A3 = Ascend910_9391, 310P =
Ascend310P3) through the torch_npu-named API, a timing-only run (TensorSpec inputs), a
functional run whose outputs equal the API's bit for bit (unsigned-int views) and a trace.

The full legal cross product of every operator's fields is enumerated and its size printed;
per operator and family one combination of every feature class (``CLASS_FIELDS``: the fields
that choose the path) is run, plus seeded draws until every value of every field is present,
so the CI time stays near two minutes (measured: 1 min 35 s of CPU, 2 to 4 min wall on the
shared, loaded 2-core machine; the earlier sample took 54 s of CPU). A combination whose path
is not implemented must raise NotImplementedError with a message naming the path; such messages
are listed explicitly in ``EXPECTED_NOT_IMPLEMENTED`` (a new one, or a listed one no longer
seen, fails the test).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _specs import spec_of

import npusim
import npusim.torch_npu as tn
from npusim.ops.weight_quant_batchmatmul import transpose_nz

FAMILIES = {"A2": "Ascend910B2", "A3": "Ascend910_9391", "310P": "Ascend310P3"}
SAMPLE_PER_FAMILY = {"weight_quant_batchmatmul": 40, "trans_quant_param": 6, "group_quant": 6,
                     "int4pack": 3, "matmul": 10, "format_cast": 6, "quant_matmul": 16,
                     "dynamic_quant": 6, "vector_add": 4, "quantize": 6}
#: message fragment -> the unimplemented path it names (issue 16 items still open)
EXPECTED_NOT_IMPLEMENTED: dict[str, str] = {}
#: the README operator-table row of each generator (its first cell starts with this) and a note
README_ROWS = {
    "int4pack": ("`npu_convert_weight_to_int4pack`", "seed 000: A2 / A3 only; the API packs, "
                 "`simulate` names the host path"),
    "trans_quant_param": ("`npu_trans_quant_param`", ""),
    "group_quant": ("`npu_group_quant`", "seed 004: A2 / A3 only"),
    "format_cast": ("`npu_format_cast`", ""),
    "dynamic_quant": ("`npu_dynamic_quant`", "torch_npu docs: A2 / A3 only"),
    "weight_quant_batchmatmul": ("`npu_weight_quant_batchmatmul`", ""),
    "quant_matmul": ("`npu_quant_matmul`", ""),
    "matmul": ("`matmul`", ""),
    "vector_add": ("`vector_add`", "no torch_npu API: numpy's x + y / copy is the reference"),
    "quantize": ("`npu_quantize`", "its bits against an independent oracle: "
                 "`tests/test_quantize_program.py`"),
}
README = Path(__file__).resolve().parents[1] / "README.md"
M_CLASSES = (1, 16, 56, 100, 300, 2048)  # 1; <=16; 49..64; 65..256; >256; the upper sample


def _uint(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


# -- weight_quant_batchmatmul ------------------------------------------------------------------


@dataclass(frozen=True)
class WqCase:
    x: str  # float16 | bfloat16
    w: str  # int8 | int4
    fmt: str  # ND | NZ
    trans: bool
    quant: str  # per_tensor | per_channel | per_group | int64 (int64 antiquant scale)
    offset: bool
    bias: bool
    out_quant: str  # none | per_tensor | per_channel (quant_scale -> int8 output)
    inner_precise: int
    m: int
    k: int = 256
    n: int = 128
    g: int = 64


def wq_legal(c: WqCase, family: str) -> bool:
    """The seed-002 rules (plus normalize_args' int4 packing rule)."""
    if family == "310P":  # seed 002: fp16 x, int8 weight, per-channel only, no quant_scale
        return (c.x == "float16" and c.w == "int8" and c.quant == "per_channel"
                and c.out_quant == "none")
    if c.quant == "int64":  # fp16 x, int8 ND transposed weight, per-channel, M <= 96, no quant
        return (c.x == "float16" and c.w == "int8" and c.fmt == "ND" and c.trans
                and c.out_quant == "none" and c.m <= 96)
    if c.out_quant != "none" and c.fmt != "ND":
        return False
    # inner_precise 1 (high performance) is legal everywhere; seed 002 advises it only for int4
    # NZ per-group M <= 16 and advises against it elsewhere (not a refusal)
    if c.fmt == "NZ" and c.w == "int4":
        if c.quant == "per_tensor":
            return False
        if c.quant == "per_channel" and not c.trans:
            return False
        if c.quant == "per_group" and c.trans:
            return False
    return True


def wq_cases(family: str) -> list[WqCase]:
    dims = itertools.product(
        ("float16", "bfloat16"), ("int8", "int4"), ("ND", "NZ"), (False, True),
        ("per_tensor", "per_channel", "per_group", "int64"), (False, True), (False, True),
        ("none", "per_tensor", "per_channel"), (0, 1), M_CLASSES,
    )
    cases = [c for c in (WqCase(*d) for d in dims) if wq_legal(c, family)]
    if family != "310P":  # the smallest of the SplitK template's white-listed shapes
        cases += [WqCase("bfloat16", "int8", "ND", False, "per_group", True, False, "none", ip,
                         24, 1536, 12288) for ip in (0, 1)]
    return cases


#: one legal call per weight_quant_batchmatmul kernel, run on A2 and A3 besides the sample: the
#: kernel CANN selects is a feature class (selection.py's rules: Msd for per-channel int8 M <=
#: 64; MsdSplitK for int4 per-channel with a transposed weight; MsdGroup for int4 per-group
#: M <= g / 8; CustomNzSplitK for a transposed NZ weight with 65 <= M <= 256; Fixpipe for an
#: int64 scale; WeightNz (A2 / A3) for a transposed NZ per-group weight, which Custom refuses;
#: SplitK for its white-listed shape)
WQ_KERNEL_CASES = {
    "Custom": WqCase("float16", "int8", "ND", False, "per_channel", True, True, "none", 0, 300),
    "Msd": WqCase("float16", "int8", "ND", False, "per_channel", True, False, "none", 0, 16),
    "MsdSplitK": WqCase("bfloat16", "int4", "ND", True, "per_channel", True, True, "none", 0,
                        16),
    "MsdGroup": WqCase("float16", "int4", "ND", False, "per_group", True, False, "none", 1, 1),
    "CustomNzSplitK": WqCase("float16", "int8", "NZ", True, "per_channel", True, True, "none", 0,
                             100),
    "Fixpipe": WqCase("float16", "int8", "ND", True, "int64", True, True, "none", 0, 16),
    "WeightNz": WqCase("float16", "int8", "NZ", True, "per_group", True, False, "none", 0, 16),
    "SplitK": WqCase("bfloat16", "int8", "ND", False, "per_group", True, False, "none", 0, 24,
                     1536, 12288),
}


def wq_arrays(c: WqCase, rng: np.random.Generator) -> dict[str, Any]:
    """Arrays of a legal call (weights stored as the case says)."""
    from npusim.numerics import np_dtype

    xd = np_dtype(c.x)
    lo, hi = (-8, 8) if c.w == "int4" else (-128, 128)
    w = rng.integers(lo, hi, (c.k, c.n), dtype=np.int32)  # logical (K, N)
    stored = w.T.copy() if c.trans else w  # (N, K) when transposed
    if c.fmt == "NZ":  # torch_npu: format-cast the values, then pack (int4) the NZ tensor
        weight = tn.npu_format_cast(stored if c.w == "int4" else stored.astype(np.int8), 29)
        if c.w == "int4":
            weight = tn.npu_convert_weight_to_int4pack(weight)
        weight = transpose_nz(weight) if c.trans else weight
    else:
        stored = tn.npu_convert_weight_to_int4pack(stored) if c.w == "int4" else stored.astype(
            np.int8)
        weight = stored.T if c.trans else stored
    ng = c.k // c.g
    pshape = {"per_tensor": (1,), "per_channel": (c.n,), "per_group": (ng, c.n),
              "int64": (c.n,)}[c.quant]
    scale = (rng.uniform(0.5, 1.5, pshape) * 0.01).astype(np.float32)
    out: dict[str, Any] = {"x": rng.standard_normal((c.m, c.k)).astype(np.float32).astype(xd),
                           "weight": weight, "antiquant_group_size": c.g if c.quant ==
                           "per_group" else 0, "inner_precise": c.inner_precise}
    if c.quant == "int64":
        out["antiquant_scale"] = tn.npu_trans_quant_param(scale)
        if c.offset:
            out["antiquant_offset"] = rng.integers(-8, 8, pshape, dtype=np.int32)
    else:
        out["antiquant_scale"] = scale.astype(xd)
        if c.offset:
            out["antiquant_offset"] = rng.uniform(-4, 4, pshape).astype(np.float32).astype(xd)
    if c.bias:
        out["bias"] = rng.standard_normal(c.n).astype(np.float16 if c.x == "float16"
                                                      else np.float32)
    if c.out_quant != "none":
        qn = 1 if c.out_quant == "per_tensor" else c.n
        out["quant_scale"] = rng.uniform(0.5, 2.0, (qn,)).astype(np.float32)
        out["quant_offset"] = rng.uniform(-3, 3, (qn,)).astype(np.float32).round()
    return out


# -- the other seed operators --------------------------------------------------------------------


def tqp_cases(family: str) -> list[tuple]:
    return list(itertools.product(((1,), (96,), (1, 96)), (None, "same", "one"), (0, 1)))


def tqp_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    shape, off, mode = c
    scale = rng.uniform(1e-4, 1.0, shape).astype(np.float32)
    out = {"scale": scale, "round_mode": mode}
    if off == "same":
        out["offset"] = rng.uniform(-300, 300, shape).astype(np.float32)
    elif off == "one":
        out["offset"] = rng.uniform(-300, 300, (1,) if len(shape) == 1 else shape).astype(
            np.float32)
    return out


def gq_cases(family: str) -> list[tuple]:
    if family == "310P":
        return []  # seed 004 lists A2 / A3 only
    return list(itertools.product(("float32", "float16", "bfloat16"), ("int32", "int64"),
                                  (False, True), ("int8", "quint4x2")))


def gq_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    from npusim.numerics import np_dtype

    xd, gidx, off, dst = c
    s, h, e = 24, 64, 3
    x = rng.standard_normal((s, h)).astype(np.float32).astype(np_dtype(xd))
    scale = rng.uniform(0.5, 2.0, (e, h)).astype(np.float32).astype(np_dtype(xd))
    out = {"x": x, "scale": scale, "group_index": np.array([5, 16, s], dtype=gidx),
           "dst_dtype": dst}
    if off:
        out["offset"] = np.array([0.5], dtype=np_dtype(xd))
    return out


def i4_cases(family: str) -> list[tuple]:
    if family == "310P":
        return []  # seed 000 lists A2 / A3 only
    return list(itertools.product(("ND", "NZ"), ((64, 32), (32, 64))))


def mm_cases(family: str) -> list[tuple]:
    """matmul: a / b dtype (the 310P cube takes fp16 only), fp32 output or not, transposed b,
    bias, M class, allow_hf32 (fp32 inputs only; the declared numerics.hf32 model), b's
    format (ND, or FRACTAL_NZ as npu_format_cast(b, 29) stores it), batch (none; a batched
    (2, m, k) against a 2-D b; both batched (2, k, n), b plain ND)."""
    dts = ("float16",) if family == "310P" else ("float16", "bfloat16", "float32")
    return [c for c in itertools.product(dts, (False, True), (False, True), (False, True),
                                         (1, 16, 100, 300), (False, True), ("ND", "NZ"),
                                         ("none", "a", "ab"))
            if (c[0] == "float32" or not c[5]) and (c[7] != "ab" or (c[6] == "ND" and not c[2]))]


def mm_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    from npusim.numerics import np_dtype

    dt, out32, trans, bias, m, hf32, fmt, batch = c
    k, n = 192, 96
    lead = () if batch == "none" else (2,)
    a = rng.standard_normal((*lead, m, k)).astype(np.float32).astype(np_dtype(dt))
    if batch == "ab":
        bv = rng.standard_normal((2, k, n)).astype(np.float32).astype(np_dtype(dt))
    else:
        b = rng.standard_normal((n, k) if trans else (k, n)).astype(np.float32).astype(
            np_dtype(dt))
        bv = _weight_view(b, trans, fmt)
    out = {"a": a, "b": bv, "out_dtype": "float32" if out32 else None}
    if hf32:
        out["allow_hf32"] = True
    if bias:
        out["bias"] = rng.standard_normal(n).astype(np.float32)
    return out


def fc_cases(family: str) -> list[tuple]:
    """format_cast: dtype, direction (ND -> NZ, NZ -> ND), shape class (aligned / ragged)."""
    dts = ("float16", "int8") if family == "310P" else ("float16", "bfloat16", "float32",
                                                        "int8", "int32")
    return list(itertools.product(dts, (29, 2), ((64, 96), (37, 50))))


def fc_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    from npusim.numerics import np_dtype

    dt, dst, shape = c
    x = rng.integers(-100, 100, shape).astype(np_dtype(dt))
    if dst == 2:  # NZ source
        x = tn.npu_format_cast(x, 29)
    return {"x": x, "acl_format": dst}


def _weight_view(stored: np.ndarray, trans: bool, fmt: str) -> Any:
    """The (k, n) operand of a stored matrix ((n, k) when ``trans``): ND, or its FRACTAL_NZ
    storage (``npu_format_cast(stored, 29)``, seen transposed when ``trans``)."""
    if fmt == "NZ":
        nz = tn.npu_format_cast(stored, 29)
        return transpose_nz(nz) if trans else nz
    return stored.T if trans else stored


def qm_cases(family: str) -> list[tuple]:
    """quant_matmul (W8A8; int32-packed int4 rows too): the supported-combination table of
    torch_npu's npu_quant_matmul doc (tables 1 / 2, as npusim.ops.quant_matmul records it with
    its citations) expanded over its scale dtypes, scale shape (1,) / (n,), offset where
    allowed, bias dtypes, transposed x2, M class, x2's format (ND; FRACTAL_NZ for int8 x2,
    aclnnQuantMatmulWeightNz) and a batched int8 x1 (2, m, k) without a per-token scale. The
    310P takes table 1's int8 / fp16 rows, and M = 1024: with a bias and x2 transposed after
    aclnn's transposes (any ND x2, a transposed NZ one) that is the pp_matmul path (the last
    field, its own class), defined for one matrix, an (n,) scale and float16 output only
    (ops/quant_matmul.py check_pp_matmul; the other pp combinations are refused by design, so
    they are not legal combinations here). A8W4 (group_sizes) on A2 / A3."""
    from npusim.ops.quant_matmul import _TABLE_310P, _TABLE_A2A3

    out = []
    ms = (1, 16, 100, 300, 1024) if family == "310P" else (1, 16, 100, 300)
    for inp, scales, offset_ok, biases, pertoken, odt in (
            _TABLE_310P if family == "310P" else _TABLE_A2A3):
        for sdt, per_ch, off, bias, trans, m, fmt, batch in itertools.product(
                sorted(scales), (False, True), (False, True), sorted(biases, key=str),
                (False, True), ms, ("ND", "NZ"), (False, True)):
            if (off and not offset_ok) or (fmt == "NZ" and inp != "int8") or (
                    batch and (pertoken or inp != "int8")):
                continue
            pp = m >= 1024 and bias is not None and (fmt == "ND" or trans)
            if pp and (not per_ch or odt != "float16" or batch):
                continue
            out.append((inp, sdt, per_ch, off, bias, bool(pertoken), odt, trans, m, fmt,
                        batch, "pp_matmul" if pp else ""))
    if family != "310P":  # A8W4 (int8 x1, int32-packed int4 x2, group_sizes [0, 0, 256]):
        # int64 per-group scale, float32 y_offset and pertoken_scale required, no bias
        from npusim.ops.quant_matmul_a4w4_pergroup import _OUTPUTS as A4W4G_OUTPUTS
        from npusim.ops.quant_matmul_a8w4 import _OUTPUTS

        out += [("a8w4", "int64", True, True, None, True, odt, False, m, "ND", False, "")
                for odt in _OUTPUTS for m in (1, 16, 100, 300)]
        # per-group A4W4 (aclnnQuantMatmulV5 K-G: int4 x1 and transposed x2, float32 (k/256, n)
        # scale, float16 (k/256, n) zero points, float32 (m, 1) per-token scale, no bias,
        # group_sizes [0, 0, 256], k % 1024 == 0, n % 256 == 0)
        out += [("a4w4g", "float32", True, True, None, True, odt, True, m, "ND", False, "")
                for odt in A4W4G_OUTPUTS for m in (1, 16, 100, 300)]
    return out


def qm_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    from npusim.numerics import np_dtype

    inp, sdt, per_ch, off, bias, pertoken, odt, trans, m, fmt, batch, _path = c
    k, n = 256, 96
    if inp == "a8w4":
        return _a8w4_arrays(m, odt, rng)
    if inp == "a4w4g":
        return _a4w4_pergroup_arrays(m, odt, rng)
    lo, hi = (-8, 8) if inp == "int4" else (-128, 128)
    x1 = rng.integers(lo, hi, (2, m, k) if batch else (m, k), dtype=np.int32)
    w = rng.integers(lo, hi, (n, k) if trans else (k, n), dtype=np.int32)
    if inp == "int4":
        x1, w = tn.npu_convert_weight_to_int4pack(x1), tn.npu_convert_weight_to_int4pack(w)
    else:
        x1, w = x1.astype(np.int8), w.astype(np.int8)
    qn = n if per_ch else 1
    scale = rng.uniform(1e-3, 1e-2, qn).astype(np.float32)
    out: dict[str, Any] = {"x1": x1, "x2": _weight_view(w, trans, fmt), "output_dtype": odt}
    out["scale"] = (tn.npu_trans_quant_param(scale) if sdt == "int64" else
                    scale.astype(np_dtype(sdt)))
    if off:
        out["offset"] = rng.uniform(-3, 3, qn).astype(np.float32).round()
    if bias == "int32":
        out["bias"] = rng.integers(-1000, 1000, n, dtype=np.int32)
    elif bias is not None:
        out["bias"] = rng.standard_normal(n).astype(np.float32).astype(np_dtype(bias))
    if pertoken:
        out["pertoken_scale"] = rng.uniform(0.5, 1.5, m).astype(np.float32)
    return out


def _a8w4_arrays(m: int, odt: str, rng: np.random.Generator) -> dict[str, Any]:
    """An A8W4 call: K = 512 (two groups of 256), N = 96 (the scale encoded as the upstream
    test does: npu_trans_quant_param of the flattened (groups, n) float32 scale)."""
    k, n, g = 512, 96, 256
    w = rng.integers(-8, 8, (k, n), dtype=np.int32)
    scale = rng.uniform(1e-3, 1e-2, (k // g, n)).astype(np.float32)
    return {"x1": rng.integers(-128, 128, (m, k), dtype=np.int32).astype(np.int8),
            "x2": tn.npu_convert_weight_to_int4pack(w),
            # the API takes (n,) scales: each group's row through it, as the upstream test does
            "scale": np.asarray(tn.npu_trans_quant_param(scale.reshape(-1))).reshape(
                scale.shape).astype(np.int64),
            "offset": rng.uniform(-3, 3, n).astype(np.float32),
            "pertoken_scale": rng.uniform(0.5, 1.5, m).astype(np.float32),
            "output_dtype": odt, "group_sizes": [0, 0, g]}


def _a4w4_pergroup_arrays(m: int, odt: str, rng: np.random.Generator) -> dict[str, Any]:
    """A per-group A4W4 call at the smallest legal K and N: K = 1024 (four groups of 256),
    N = 256; x2 the (k/8, n) transposed view of the packed (n, k) weight."""
    k, n, g = 1024, 256, 256
    w = rng.integers(-8, 8, (n, k), dtype=np.int32)
    return {"x1": tn.npu_convert_weight_to_int4pack(rng.integers(-8, 8, (m, k), dtype=np.int32)),
            "x2": tn.npu_convert_weight_to_int4pack(w).T,
            "scale": rng.uniform(1e-3, 1e-2, (k // g, n)).astype(np.float32),
            "offset": rng.integers(-7, 8, (k // g, n)).astype(np.float16),
            "pertoken_scale": rng.uniform(0.5, 1.5, (m, 1)).astype(np.float32),
            "output_dtype": odt, "group_sizes": [0, 0, g]}


def dq_cases(family: str) -> list[tuple]:
    """npu_dynamic_quant (per-token; A2 / A3 only, torch_npu docs): x dtype, dst_type, smooth
    scales, M class; H 512 (a multiple of 8 for quint4x2)."""
    if family == "310P":
        return []
    return list(itertools.product(("float16", "bfloat16"), ("int8", "quint4x2"), (False, True),
                                  (1, 16, 100), (False, True)))


def dq_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    from npusim.numerics import np_dtype

    dt, _dst, smooth, m, _asym = c
    out: dict[str, Any] = {"x": rng.standard_normal((m, 512)).astype(np.float32).astype(
        np_dtype(dt))}
    if smooth:
        out["smooth_scales"] = rng.uniform(0.5, 2, 512).astype(np.float32).astype(np_dtype(dt))
    return out


def va_cases(family: str) -> list[tuple]:
    """vector_add / tensor_copy (the calibration kernels; no torch_npu API: the definition is
    numpy's x + y / a copy): dtype, size class (one tile, ragged, many tiles)."""
    return list(itertools.product(("vector_add", "tensor_copy"), ("float16", "float32"),
                                  (64, 1000, 1 << 17)))


def qz_cases(family: str) -> list[tuple]:
    """npu_quantize (its program's documented rules, ops/quantize_program.py): x dtype (bf16 not
    on 310P), div_mode (True: aclnnQuantize, int8 / uint8 / int32 out, float32 / float16 scale
    with an int8 / uint8 / int32 / no zero point, or a bfloat16 x, scale and (optional) zero
    point; False: aclnnAscendQuantV3, int8 or int4 (not 310P) out, scale and zero
    point in x's dtype), zero-point dtype, per-tensor or per-axis parameters, the axis (-1, 0;
    -2 with div_mode False, not 310P), the x shape (a 3-D head layout or 2-D rows)."""
    p310 = family == "310P"
    out = []
    for xdt in ("float32", "float16") if p310 else ("float32", "float16", "bfloat16"):
        for div in (True, False):
            if div:
                outs, sdts = ("int8", "uint8", "int32"), ["float32", "float16"]
                if xdt == "bfloat16":
                    sdts.append("bfloat16")
            else:
                outs, sdts = ("int8",) if p310 else ("int8", "int4"), [xdt]
            for o, sdt in itertools.product(outs, sdts):
                # a bfloat16 scale or zero point needs all three bfloat16 (aclnnQuantize)
                zdts = ((None, "bfloat16") if sdt == "bfloat16" else
                        (None, "int8", "uint8", "int32")) if div else (None, xdt)
                axes = (-1, 0) if div or p310 else (-1, 0, -2)
                out += [(xdt, div, o, sdt, z, per, ax, shape)
                        for z, per, ax, shape in itertools.product(
                            zdts, (False, True), axes, ((6, 5, 64), (300, 96)))]
    return out


_QZ_TORCH_DTYPE = {"int8": "qint8", "uint8": "quint8", "int32": "int32", "int4": "quint4x2"}


def qz_arrays(c: tuple, rng: np.random.Generator) -> dict[str, Any]:
    from npusim.numerics import np_dtype

    xdt, div, o, sdt, zdt, per, axis, shape = c
    x = rng.uniform(-60, 60, shape).astype(np.float32).astype(np_dtype(xdt))
    nd = len(shape)
    ax = (nd - 2 if axis == -2 else nd - 1) if not div else axis % nd
    nparam = shape[ax] if per else 1
    scales = rng.uniform(0.25, 4, nparam).astype(np.float32).astype(np_dtype(sdt))
    z = None
    if zdt in ("int8", "int32"):
        z = rng.integers(-20, 20, nparam).astype(zdt)
    elif zdt == "uint8":
        z = rng.integers(0, 40, nparam).astype(np.uint8)
    elif zdt is not None:
        z = rng.uniform(-5, 5, nparam).astype(np.float32).astype(np_dtype(zdt))
    return {"x": x, "scales": scales, "zero_points": z, "dtype": o, "axis": axis,
            "div_mode": div}


# -- running one combination ---------------------------------------------------------------------


@dataclass
class Tally:
    tried: Counter = field(default_factory=Counter)
    working: Counter = field(default_factory=Counter)
    not_implemented: dict = field(default_factory=dict)  # (op, family, case) -> message
    failed: list = field(default_factory=list)
    kernels: dict = field(default_factory=dict)  # (op, family) -> kernels the runs selected


def _check_trace(res: Any, tmp_path: Any) -> None:
    path = res.write_trace(tmp_path / "trace.json")
    events = json.loads(path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert len(events) > 0


def _run_sim(op: str, soc: str, arrays: dict[str, Any], api: Any, tmp_path: Any,
             extra: dict[str, Any] | None = None) -> Any:
    # group_quant's group_index decides the work and its offset is a scalar: they stay data
    specs = {k: v if k in ("group_index", "offset") and op == "group_quant" else spec_of(v)
             for k, v in arrays.items()}
    t = npusim.simulate(op, soc=soc, **specs, **(extra or {}))
    assert t.outputs is None and t.cycles > 0
    f = npusim.simulate(op, soc=soc, **arrays, **(extra or {}))
    assert f.cycles == t.cycles, f"functional cycles {f.cycles} != timing-only {t.cycles}"
    outs, apis = (f.outputs, api) if isinstance(api, tuple) else ((f.outputs,), (api,))
    assert len(outs) == len(apis)
    for out, want in zip(outs, apis, strict=True):
        out, want = np.asarray(out), np.asarray(want)
        assert out.shape == want.shape and out.dtype == want.dtype, (out.shape, want.shape)
        assert np.array_equal(_uint(out), _uint(want)), "functional output != API bits"
    _check_trace(f, tmp_path)
    return f


def _one(op: str, family: str, case: Any, tmp_path: Any, tally: Tally) -> None:
    soc = FAMILIES[family]
    rng = np.random.default_rng(zlib.crc32(repr((op, family, case)).encode()))
    key = (op, family, repr(case))
    tally.tried[(op, family)] += 1
    try:
        if op == "weight_quant_batchmatmul":
            arrays = wq_arrays(case, rng)
            api = tn.npu_weight_quant_batchmatmul(**arrays, soc=soc)
            res = _run_sim(op, soc, arrays, api, tmp_path)
            tally.kernels.setdefault((op, family), set()).add(res.kernel_name)
        elif op == "trans_quant_param":
            arrays = tqp_arrays(case, rng)
            api = tn.npu_trans_quant_param(**arrays, soc=soc)
            _run_sim(op, soc, arrays, api, tmp_path)
        elif op == "group_quant":
            arrays = gq_arrays(case, rng)
            api = tn.npu_group_quant(**arrays, soc=soc)
            _run_sim(op, soc, {**arrays, "dst_dtype": case[3]}, api, tmp_path)
        elif op == "matmul":
            arrays = mm_arrays(case, rng)
            api = tn.matmul(**arrays, soc=soc)
            _run_sim(op, soc, arrays, api, tmp_path)
        elif op == "format_cast":
            arrays = fc_arrays(case, rng)
            api = tn.npu_format_cast(**arrays, soc=soc)
            _run_sim(op, soc, arrays, api, tmp_path)
        elif op == "quant_matmul":
            arrays = qm_arrays(case, rng)
            api = tn.npu_quant_matmul(**arrays, soc=soc)
            _run_sim(op, soc, arrays, api, tmp_path)
        elif op == "dynamic_quant":
            arrays = dq_arrays(case, rng)
            fn = tn.npu_dynamic_quant_asymmetric if case[4] else tn.npu_dynamic_quant
            api = fn(arrays["x"], smooth_scales=arrays.get("smooth_scales"), dst_type=case[1],
                     soc=soc)
            _run_sim(op, soc, arrays, api, tmp_path,
                     {"dst_type": "int4" if case[1] == "quint4x2" else "int8",
                      **({"asymmetric": True} if case[4] else {})})
        elif op == "quantize":
            arrays = qz_arrays(case, rng)
            api = tn.npu_quantize(arrays["x"], arrays["scales"], arrays["zero_points"],
                                  _QZ_TORCH_DTYPE[case[2]], arrays["axis"], case[1], soc=soc)
            _run_sim(op, soc, arrays, api, tmp_path)
        elif op == "vector_add":  # vector_add / tensor_copy: numpy's definition is the API
            kind, dt, size = case
            x = rng.standard_normal(size).astype(dt)
            if kind == "vector_add":
                y = rng.standard_normal(size).astype(dt)
                _run_sim(kind, soc, {"x": x, "y": y}, x + y, tmp_path)
            else:
                _run_sim(kind, soc, {"x": x}, x.copy(), tmp_path)
        else:  # int4pack: host work in torch_npu; the API packs, simulate names the host path
            fmt, shape = case
            w = rng.integers(-8, 8, shape, dtype=np.int32)
            if fmt == "NZ":
                w = tn.npu_format_cast(w, 29)
            from npusim.ops.int4pack import HostOperatorError

            packed = tn.npu_convert_weight_to_int4pack(w, soc=soc)
            assert packed.dtype == np.int32
            with pytest.raises(HostOperatorError, match="host work"):  # by design, not missing
                npusim.simulate("int4pack", soc=soc, weight=spec_of(w))
        tally.working[(op, family)] += 1
    except NotImplementedError as e:
        tally.not_implemented[key] = str(e).splitlines()[0]
    except Exception as e:  # recorded, reported by the test below
        tally.failed.append((key, f"{type(e).__name__}: {str(e)[:300]}"))


GENERATORS = {"weight_quant_batchmatmul": wq_cases, "trans_quant_param": tqp_cases,
              "group_quant": gq_cases, "int4pack": i4_cases, "matmul": mm_cases,
              "format_cast": fc_cases, "quant_matmul": qm_cases, "dynamic_quant": dq_cases,
              "vector_add": va_cases, "quantize": qz_cases}


#: the fields of each operator's cases whose value combination is its feature class (the path
#: the call takes: dtypes, format, quant mode, epilogue, layout); the remaining fields (M class,
#: transposition, offset, bias, ... ) are sampled within the classes so that every value of
#: every field is still drawn (``sample``). Names for WqCase, tuple indices otherwise.
CLASS_FIELDS: dict[str, tuple] = {
    "weight_quant_batchmatmul": ("x", "w", "fmt", "quant", "out_quant"),
    # (inputs, output dtype, per-token, scale dtype, x2 format, batched x1, 310P pp_matmul)
    "quant_matmul": (0, 6, 5, 1, 9, 10, 11),
    # (dtype, fp32 out, transposed b, allow_hf32, b format, batch)
    "matmul": (0, 1, 2, 5, 6, 7),
    "trans_quant_param": (0, 1, 2), "group_quant": (0, 1, 2, 3), "int4pack": (0, 1),
    "format_cast": (0, 1, 2), "dynamic_quant": (0, 1, 2, 4), "vector_add": (0, 1, 2),
    # (x dtype, div_mode, output, scale dtype)
    "quantize": (0, 1, 2, 3),
}


def _field(c: Any, f: Any) -> Any:
    return getattr(c, f) if isinstance(f, str) else c[f]


def class_of(op: str, case: Any) -> tuple:
    """The feature class of ``case`` (``CLASS_FIELDS``)."""
    return tuple(_field(case, f) for f in CLASS_FIELDS[op])


def expensive(op: str, case: Any) -> bool:
    """A case whose functional run is slow for a reason outside its class: HF32 matmuls above
    16 rows (numerics.cube's certified fp32 rounding falls back to exact rational sums on the
    HF32-rounded operands: about 17 s at M = 300 against 0.4 s without HF32, measured) and the
    SplitK template's white-listed K = 1536, N = 12288 shape (about 6 s; it also runs as a
    WQ_KERNEL_CASES case). A class draws such a case only when it has no other."""
    if op == "matmul":
        return bool(case[5]) and case[4] > 16
    if op == "weight_quant_batchmatmul":
        return case.n > 4096
    return False


def sample(op: str, cases: list, n: int, seed: int) -> list:
    """One case of every feature class, then cases adding field values not yet drawn until
    every value of every field is (a seeded greedy draw: the case adding the most values, cheap
    cases first), then cheap cases at random up to ``n`` in all."""
    rnd = random.Random(seed)
    pool = list(cases)
    rnd.shuffle(pool)

    def values(c: Any) -> set:
        fields_ = c.__dict__.items() if hasattr(c, "__dict__") else enumerate(c)
        return {(k, repr(v)) for k, v in fields_}

    chosen: list = []
    missing = set().union(*(values(c) for c in pool)) if pool else set()
    by_class: dict[tuple, list] = {}
    for c in pool:
        by_class.setdefault(class_of(op, c), []).append(c)
    for key in sorted(by_class, key=repr):
        best = min(by_class[key], key=lambda c: (expensive(op, c), -len(values(c) & missing)))
        chosen.append(best)
        pool.remove(best)
        missing -= values(best)
    while gain := [c for c in pool if values(c) & missing]:
        best = min(gain, key=lambda c: (expensive(op, c), -len(values(c) & missing)))
        chosen.append(best)
        pool.remove(best)
        missing -= values(best)
    chosen += [c for c in pool if not expensive(op, c)][: max(0, n - len(chosen))]
    return chosen


def run_all(tmp_path: Any, per_family: dict[str, int] | None = None
            ) -> tuple[Tally, Counter, dict]:
    """Run every operator's sample on every family; also returns, per (op, family), the legal
    feature classes and those of the cases tried."""
    tally, legal, classes = Tally(), Counter(), {}
    for op, gen in GENERATORS.items():
        for fi, family in enumerate(FAMILIES):
            cases = gen(family)
            legal[(op, family)] = len(cases)
            n = (per_family or SAMPLE_PER_FAMILY)[op]
            extra = list(WQ_KERNEL_CASES.values()) if (
                op == "weight_quant_batchmatmul" and family != "310P") else []
            drawn = sample(op, cases, n, seed=fi)
            classes[(op, family)] = ({class_of(op, c) for c in cases},
                                     {class_of(op, c) for c in drawn})
            for case in drawn + extra:
                _one(op, family, case, tmp_path, tally)
    return tally, legal, classes


def table_cell(op: str, tally: Tally, legal: Counter, classes: dict) -> str:
    """The README cell of ``op``: per family tried / working of the legal count (and its
    feature classes, each tried), then the listed NotImplementedErrors met, then the row's
    note."""
    parts = [f"{fam} -" if not legal[(op, fam)] else
             f"{fam} {tally.tried[(op, fam)]} / {tally.working[(op, fam)]} of {legal[(op, fam)]}"
             f" ({len(classes[(op, fam)][0])} classes)" for fam in FAMILIES]
    text = ", ".join(parts)
    nie = sorted({why for k, msg in tally.not_implemented.items() if k[0] == op
                  for frag, why in EXPECTED_NOT_IMPLEMENTED.items() if frag in msg})
    if nie:
        text += "; not working, each a listed `NotImplementedError`: " + "; ".join(nie)
    note = README_ROWS[op][1]
    return f"{text}; {note}" if note else text


def render_readme(text: str, cells: dict[str, str]) -> str:
    """``text`` with the last cell of each generator's operator-table row replaced."""
    lines = text.splitlines(keepends=True)
    start = lines.index("## Operators\n")
    for i in range(start, len(lines)):
        if lines[i].startswith("## ") and i > start:
            break
        cols = lines[i].split(" | ")
        if not lines[i].startswith("| ") or len(cols) < 5:
            continue
        first = cols[0].removeprefix("| ")
        for op, (marker, _) in README_ROWS.items():
            if first.startswith(marker) and op in cells:
                lines[i] = " | ".join([*cols[:-1], cells[op]]) + " |\n"
    return "".join(lines)


@pytest.mark.filterwarnings("ignore")
def test_legal_combinations(tmp_path, capsys):
    """Every sampled legal combination gives API = functional bits, timing-only cycles =
    functional cycles and a trace; or raises a listed NotImplementedError naming its path."""
    tally, legal, classes = run_all(tmp_path)
    with capsys.disabled():
        print("\nlegal combinations (full count) / feature classes / tried / working / not "
              "implemented:")
        for key in legal:
            nie = sum(1 for k in tally.not_implemented if k[:2] == key)
            print(f"  {key[0]:26s} {key[1]:5s} {legal[key]:6d} {len(classes[key][0]):4d} "
                  f"{tally.tried[key]:4d} {tally.working[key]:4d} {nie:4d}")
        for k, msg in sorted(tally.not_implemented.items()):
            print(f"  not implemented: {k}: {msg[:160]}")
    assert not tally.failed, "\n".join(f"{k}: {m}" for k, m in tally.failed)
    for key, (legal_classes, tried_classes) in classes.items():  # every class drawn
        assert legal_classes == tried_classes, (key, sorted(legal_classes - tried_classes))
    seen = set()
    for k, msg in tally.not_implemented.items():
        hit = [frag for frag in EXPECTED_NOT_IMPLEMENTED if frag in msg]
        assert hit, f"{k}: unexpected NotImplementedError: {msg}"
        seen.update(hit)
    # every weight_quant_batchmatmul kernel ran on A2 and A3 (310P registers WeightNz only)
    for fam in FAMILIES:
        want_k = {"WeightNz"} if fam == "310P" else set(WQ_KERNEL_CASES)
        got = tally.kernels.get(("weight_quant_batchmatmul", fam), set())
        assert got == want_k, (fam, sorted(got), sorted(want_k))
    assert seen == set(EXPECTED_NOT_IMPLEMENTED), (
        f"listed as not implemented but never raised: {set(EXPECTED_NOT_IMPLEMENTED) - seen}")
    # the README's operator table carries these counts, generated (not typed): a run that
    # changes them rewrites the README with NPUSIM_UPDATE_README=1, else fails here
    cells = {op: table_cell(op, tally, legal, classes) for op in GENERATORS}
    text = README.read_text()
    want = render_readme(text, cells)
    if want != text and os.environ.get("NPUSIM_UPDATE_README") == "1":
        README.write_text(want)
    else:
        assert want == text, ("README operator table out of date: rerun this test with "
                              "NPUSIM_UPDATE_README=1")


def _refusal(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        fn(*args, **kwargs)
    except Exception as e:  # the refusal compared below
        return type(e).__name__, str(e)
    return "no error", ""


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("soc", ["Ascend310P1", "Ascend310P3", "Ascend310P5"])
def test_families_the_docs_do_not_list_are_refused_alike(soc):
    """Where the docs list an operator class on A2 / A3 only (A8W4 and per-group A4W4
    quant_matmul: aclnnQuantMatmulV5, torch_npu's int32 x1 rows; group_quant: seed 004;
    dynamic_quant, npu_quantize's int4 output and bfloat16 x: torch_npu docs), the Atlas
    inference SoCs refuse it with a ValueError (a TypeError for a dtype), the same one from the
    torch_npu API (both fidelities), ``simulate`` with arrays and with specs.
    (npu_convert_weight_to_int4pack is host work: ``simulate`` names the host path on every SoC.)
    """
    rng = np.random.default_rng(16)
    calls: list[tuple[str, Any, Any, dict[str, Any]]] = []  # (op, api, arrays, simulate extras)
    for inp in ("a8w4", "a4w4g"):
        case = next(c for c in qm_cases("A2") if c[0] == inp)
        calls.append(("quant_matmul", tn.npu_quant_matmul, qm_arrays(case, rng), {}))
    gq = gq_arrays(gq_cases("A2")[-1], rng)
    calls.append(("group_quant", tn.npu_group_quant, gq, {}))
    x = dq_arrays(dq_cases("A2")[0], rng)
    for fn, asym in ((tn.npu_dynamic_quant, False), (tn.npu_dynamic_quant_asymmetric, True)):
        calls.append(("dynamic_quant", lambda x, fn=fn, **kw: fn(x, **kw), x,
                      {"dst_type": "int8", **({"asymmetric": True} if asym else {})}))
    def quantize(x: Any, scales: Any, zero_points: Any, dtype: str, axis: int, div_mode: bool,
                 **kw: Any) -> Any:
        return tn.npu_quantize(x, scales, zero_points, _QZ_TORCH_DTYPE[dtype], axis, div_mode,
                               **kw)

    for pick in (lambda c: c[2] == "int4", lambda c: c[0] == "bfloat16"):  # A2 / A3 only
        calls.append(("quantize", quantize,
                      qz_arrays(next(c for c in qz_cases("A2") if pick(c)), rng), {}))
    for op, api, arrays, extra in calls:
        specs = {k: v if k in ("group_index", "offset") and op == "group_quant" else spec_of(v)
                 for k, v in arrays.items()}
        got = {
            "api": _refusal(api, **arrays, soc=soc),
            "reference": _refusal(api, **arrays, soc=soc, fidelity="reference"),
            "simulate": _refusal(npusim.simulate, op, soc=soc, **arrays, **extra),
            "timing-only": _refusal(npusim.simulate, op, soc=soc, **specs, **extra),
        }
        kinds = set(got.values())
        assert len(kinds) == 1, (op, got)
        kind, msg = kinds.pop()
        assert kind in ("ValueError", "TypeError") and f"not supported on {soc}" in msg, got
