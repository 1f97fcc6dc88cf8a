"""A default tiling is legal for every legal input (issue 16), for the operators besides
weight_quant_batchmatmul (tests/test_wqbmm_default_tiling_legal.py): random legal calls up to
the documented limits (rows up to 2^31 - 1, K / N / H up to 65535; seed 004's quint4x2 rule
H % 8 == 0), on an A2, an A3 and the 310P where the operator runs there. The default tiling of
each passes the validator its program applies to a user tiling (buffer capacities, alignment,
core counts). No program is built, so the largest shapes cost nothing; small calls of each
operator are built and run by tests/test_legal_combinations.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.operators import get_operator
from npusim.runner import resolve_soc
from npusim.spec import spec

A2, A3, P310 = "Ascend910B2", "Ascend910_9391", "Ascend310P3"
MAX_ROWS, MAX_KN = 2**31 - 1, 65535
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _default(op: str, soc: str, args: dict):
    desc = resolve_soc(soc)
    return desc, get_operator(op).default_tiling(desc, **args)


@SETTINGS
@given(soc=st.sampled_from([A2, A3, P310]), m=st.integers(1, MAX_KN),
       k=st.integers(1, MAX_KN), n=st.integers(1, MAX_KN), trans_b=st.booleans(),
       bias=st.booleans(), dt=st.sampled_from(["float16", "bfloat16", "float32"]),
       out32=st.booleans())
def test_matmul_default_tiling_is_legal(soc, m, k, n, trans_b, bias, dt, out32):
    from npusim.ops.matmul import validate_matmul
    from npusim.ops.matmul_tiling import validate_matmul_tiling

    if soc == P310:
        dt, bias = "float16", False  # the 310P cube: fp16 only; its bias path is listed NIE
    args = {"a": spec((m, k), dt), "b": spec((k, n), dt,
                                             transposed=trans_b),
            "out_dtype": "float32" if out32 else None,
            "bias": spec((n,), "float32") if bias else None}
    desc, t = _default("matmul", soc, args)
    p = validate_matmul(args["a"], args["b"], out_dtype=args["out_dtype"], bias=args["bias"],
                        soc=desc)
    validate_matmul_tiling(t, m, k, n, dt, p.out_dtype, desc, with_bias=bias)


@SETTINGS
@given(soc=st.sampled_from([A2, A3]), m=st.integers(1, MAX_KN), k=st.integers(1, MAX_KN),
       n=st.integers(1, MAX_KN), trans_b=st.booleans(),
       out=st.sampled_from(["int8", "float16", "bfloat16", "int32"]), bias=st.booleans())
def test_quant_matmul_default_tiling_is_legal(soc, m, k, n, trans_b, out, bias):
    from npusim.ops.matmul_tiling import validate_matmul_tiling
    from npusim.ops.quant_matmul import validate_quant_matmul

    scale = spec((n,), "float32" if out in ("bfloat16", "int32") else "int64")
    args = {"x1": spec((m, k), "int8"), "x2": spec((k, n), "int8",
                                                   transposed=trans_b),
            "scale": scale, "output_dtype": out,
            "bias": spec((n,), "int32") if bias else None}
    desc, t = _default("quant_matmul", soc, args)
    p = validate_quant_matmul(args["x1"], args["x2"], scale, bias=args["bias"],
                              output_dtype=out, soc=desc)
    validate_matmul_tiling(t, m, k, n, "int8", p.out_dtype, desc,
                           with_bias=bias and p.bias_dtype == "int32")


@SETTINGS
@given(data=st.data(), soc=st.sampled_from([A2, A3, P310]), m=st.integers(1, MAX_KN),
       k=st.integers(1, MAX_KN), n=st.integers(1, MAX_KN), trans=st.booleans(),
       nz=st.booleans(), batch=st.integers(0, 3))
def test_quant_matmul_default_tiling_is_legal_in_every_class(data, soc, m, k, n, trans, nz,
                                                             batch):
    """Every row of torch_npu's supported-combination tables (ops/quant_matmul.py: int8 and
    int32-packed int4 inputs, every output dtype, per-token scales - the mix kernel - and the
    310P rows), scale dtype and shape, offset, bias dtype, transposed / FRACTAL_NZ x2, a batched
    x1: the default tiling passes the matmul tiling validator with the call's bias and FixPipe
    quant-vector staging."""
    from npusim.ops.matmul_plans import _fixpipe_quant_vector
    from npusim.ops.matmul_tiling import validate_matmul_tiling
    from npusim.ops.quant_matmul import (
        _TABLE_310P,
        _TABLE_A2A3,
        check_pp_matmul,
        takes_pp_matmul,
        validate_quant_matmul,
    )
    from npusim.ops.quant_matmul_pp_program import validate_pp_tiling

    inp, scales, offset_ok, biases, pertoken, out = data.draw(st.sampled_from(
        _TABLE_310P if soc == P310 else _TABLE_A2A3))
    sdt = data.draw(st.sampled_from(sorted(scales)))
    bias = data.draw(st.sampled_from(sorted(biases, key=str)))
    pt = data.draw(st.booleans()) if pertoken is None else pertoken
    qn = n if data.draw(st.booleans()) else 1
    nz = nz and inp == "int8"
    lead = (batch + 1,) if batch and not pt and inp == "int8" else ()
    if inp == "int4":  # int32 words of 8 int4: x1 (m, k/8), x2 (k, n/8) or (n, k/8).T
        k = max(8, k // 8 * 8)
        n = n if trans else max(8, n // 8 * 8)
        qn = n if qn > 1 else 1
        x1 = spec((m, k // 8), "int32")
        x2 = spec((k // 8, n), "int32", transposed=True) if trans else spec((k, n // 8), "int32")
    else:
        x1 = spec((*lead, m, k), "int8")
        x2 = spec((k, n), "int8", transposed=trans, npu_format=29 if nz else 2)
    args = {"x1": x1, "x2": x2, "scale": spec((qn,), sdt), "output_dtype": out,
            "bias": spec((n,), bias) if bias else None,
            "offset": spec((qn,), "float32") if offset_ok and data.draw(st.booleans()) else None,
            "pertoken_scale": spec((m,), "float32") if pt else None}
    desc = resolve_soc(soc)
    p = validate_quant_matmul(x1, x2, args["scale"], offset=args["offset"],
                              pertoken_scale=args["pertoken_scale"], bias=args["bias"],
                              output_dtype=out, soc=desc)
    if takes_pp_matmul(p):  # the 310P pp_matmul kernel: its own tiling, or a listed refusal
        try:
            check_pp_matmul(p, qn)
        except NotImplementedError:
            with pytest.raises(NotImplementedError, match="pp_matmul"):
                _default("quant_matmul", soc, args)
            return
        validate_pp_tiling(_default("quant_matmul", soc, args)[1], desc, p.m, p.k, p.n)
        return
    desc, t = _default("quant_matmul", soc, args)
    validate_matmul_tiling(t, p.m, p.k, p.n, p.in_dtype, p.out_dtype, desc,
                           with_bias=p.bias_dtype == "int32", quant_vector=_fixpipe_quant_vector(p))


def _small_timing_run(soc: str, tiling, args: dict) -> None:
    """The grouped kernels' tilings do not depend on M or K beyond what they hold: a timing-only
    build of a small call with the same tiling allocates every local buffer (an overflow raises
    BufferOverflowError) and runs."""
    import npusim

    res = npusim.simulate("quant_matmul", soc, tiling=tiling, **args)
    assert res.outputs is None and res.cycles > 0 and res.tiling == tiling


@SETTINGS
@given(soc=st.sampled_from([A2, A3]), m=st.integers(1, MAX_KN), k256=st.integers(1, 115),
       n8=st.integers(1, MAX_KN // 8), out=st.sampled_from(["float16", "bfloat16"]))
def test_a8w4_default_tiling_is_legal(soc, m, k256, n8, out):
    """A8W4 (aclnn: group_k 256, k <= 29576): the default tiling passes the kernel's tiling
    check and its buffers fit (a small build with it)."""
    from npusim.ops.quant_matmul_a8w4_program import check_a8w4_tiling

    def call(m: int, k: int, n: int) -> dict:
        return {"x1": spec((m, k), "int8"), "x2": spec((k, n // 8), "int32"),
                "scale": spec((k // 256, n), "int64"), "offset": spec((n,), "float32"),
                "pertoken_scale": spec((m, 1), "float32"), "output_dtype": out,
                "group_sizes": [0, 0, 256]}

    desc, t = _default("quant_matmul", soc, call(m, 256 * k256, 8 * n8))
    check_a8w4_tiling(t, desc)
    _small_timing_run(soc, t, call(min(m, 40), 256, min(8 * n8, 2 * t.base_n)))


@SETTINGS
@given(soc=st.sampled_from([A2, A3]), m=st.integers(1, MAX_KN), k1024=st.integers(1, 63),
       n256=st.integers(1, 255), out=st.sampled_from(["float16", "bfloat16"]))
def test_a4w4_pergroup_default_tiling_is_legal(soc, m, k1024, n256, out):
    """Per-group A4W4 (k % 1024, n % 256, k / 8 and n <= 65535): the default tiling is
    accepted as a user tiling and its buffers fit (a small build with it)."""
    def call(m: int, k: int, n: int) -> dict:
        g = k // 256
        return {"x1": spec((m, k // 8), "int32"), "x2": spec((k // 8, n), "int32",
                                                             transposed=True),
                "scale": spec((g, n), "float32"), "offset": spec((g, n), "float16"),
                "pertoken_scale": spec((m, 1), "float32"), "output_dtype": out,
                "group_sizes": [0, 0, 256]}

    from npusim.ops.quant_matmul_a4w4_pergroup_program import check_a4w4_group_tiling

    desc, t = _default("quant_matmul", soc, call(m, 1024 * k1024, 256 * n256))
    check_a4w4_group_tiling(t, desc)  # the plan's own check of a user tiling
    _small_timing_run(soc, t, call(min(m, 300), 1024, 256 * min(n256, 2)))


@SETTINGS
@given(soc=st.sampled_from([A2, A3, P310]), m=st.integers(1, MAX_KN), k=st.integers(1, MAX_KN),
       n=st.integers(1, MAX_KN), trans_b=st.booleans(), bias=st.booleans(),
       dt=st.sampled_from(["float16", "bfloat16", "float32"]), nz=st.booleans(),
       batch=st.sampled_from(["none", "a", "ab"]), hf32=st.booleans())
def test_matmul_default_tiling_is_legal_for_nz_and_batched_operands(soc, m, k, n, trans_b, bias,
                                                                   dt, nz, batch, hf32):
    """B in FRACTAL_NZ (plain or transposed view), a batched a against a 2-D b, both batched
    (b plain ND), allow_hf32 for fp32: the default tiling passes the validator."""
    from npusim.ops.matmul import validate_matmul
    from npusim.ops.matmul_tiling import validate_matmul_tiling

    if soc == P310:
        dt = "float16"
    if batch == "ab":
        nz = trans_b = False
    lead = () if batch == "none" else (2,)
    b = spec((*lead, k, n) if batch == "ab" else (k, n), dt, transposed=trans_b,
             npu_format=29 if nz else 2)
    args = {"a": spec((*lead, m, k), dt), "b": b,
            "bias": spec((n,), "float32") if bias else None,
            "allow_hf32": hf32 and dt == "float32"}
    desc, t = _default("matmul", soc, args)
    p = validate_matmul(args["a"], b, bias=args["bias"], allow_hf32=args["allow_hf32"],
                        soc=desc)
    validate_matmul_tiling(t, p.m, p.k, p.n, p.in_dtype, p.out_dtype, desc, with_bias=bias)


@SETTINGS
@given(soc=st.sampled_from([A2, A3]), rows=st.integers(1, MAX_ROWS), h8=st.integers(1, 8191),
       groups=st.integers(1, 64), dt=st.sampled_from(["float32", "float16", "bfloat16"]),
       dst=st.sampled_from(["int8", "quint4x2"]))
def test_group_quant_default_tiling_is_legal(soc, rows, h8, groups, dt, dst):
    from npusim.ops.group_quant_program import validate_group_quant_tiling

    h = h8 * 8
    gidx = np.linspace(0, rows, groups + 1).astype(np.int64)[1:]
    args = {"x": spec((rows, h), dt), "scale": spec((groups, h), dt), "group_index": gidx,
            "dst_dtype": dst}
    desc, t = _default("group_quant", soc, args)
    validate_group_quant_tiling(t, desc, rows, h)


@SETTINGS
@given(soc=st.sampled_from([A2, A3]), rows=st.integers(1, MAX_ROWS), h8=st.integers(1, 8191),
       dt=st.sampled_from(["float16", "bfloat16"]), dst=st.sampled_from([None, "int8", "int4"]),
       smooth=st.booleans(), asym=st.booleans())
def test_dynamic_quant_default_tiling_is_legal(soc, rows, h8, dt, dst, smooth, asym):
    """Also with smooth scales and the asymmetric program (typed dst only), whose UB working
    sets are larger."""
    from npusim.ops.dynamic_quant_pertoken import ub_bytes
    from npusim.ops.dynamic_quant_program import validate_dynamic_quant_tiling
    from npusim.ops.group_quant_program import validate_row_chunk_tiling

    h = h8 * 8
    smooth, asym = smooth and dst is not None, asym and dst is not None
    args = {"x": spec((rows, h), dt), **({"dst_type": dst} if dst else {}),
            **({"smooth_scales": spec((h,), dt)} if smooth else {}),
            **({"asymmetric": True} if asym else {})}
    desc, t = _default("dynamic_quant", soc, args)
    if dst is None:
        validate_dynamic_quant_tiling(t, desc, rows, h)
    else:
        validate_row_chunk_tiling(t, desc, rows, lambda t: ub_bytes(t, smooth, asym),
                                  "dynamic_quant")


@SETTINGS
@given(soc=st.sampled_from([A2, A3, P310]), r=st.integers(1, MAX_KN), c=st.integers(1, MAX_KN),
       dt=st.sampled_from(["float16", "bfloat16", "float32", "int8", "int32"]),
       to_nz=st.booleans())
def test_format_cast_default_tiling_is_legal(soc, r, c, dt, to_nz):
    from npusim.ops.format_cast_program import _geometry, validate_format_cast_tiling

    if soc == P310:
        dt = "float16" if dt in ("bfloat16", "float32") else ("int8" if dt == "int32" else dt)
    x = spec((r, c), dt, npu_format=2 if to_nz else 29)
    args = {"x": x, "acl_format": 29 if to_nz else 2}
    desc, t = _default("format_cast", soc, args)
    validate_format_cast_tiling(t, desc, _geometry(x, args["acl_format"])[0])


@SETTINGS
@given(soc=st.sampled_from([A2, A3, P310]), n=st.integers(1, MAX_KN), off=st.booleans(),
       mode=st.sampled_from([0, 1]))
def test_trans_quant_param_default_tiling_is_legal(soc, n, off, mode):
    from npusim.ops.trans_quant_param_program import validate_trans_quant_param_tiling

    args = {"scale": spec((n,), "float32"), "round_mode": mode,
            **({"offset": spec((n,), "float32")} if off else {})}
    desc, t = _default("trans_quant_param", soc, args)
    validate_trans_quant_param_tiling(t, desc, off)


ALL_SOCS = ("Ascend910B1", "Ascend910B2", "Ascend910B3", "Ascend910B4", "Ascend910_9362",
            "Ascend910_9391", "Ascend310P1", "Ascend310P3", "Ascend310P5")


@SETTINGS
@given(soc=st.sampled_from(ALL_SOCS), n=st.integers(1, MAX_ROWS),
       dt=st.sampled_from(["float16", "float32"]))
def test_vector_add_and_copy_default_tilings_are_legal_on_every_soc(soc, n, dt):
    """Row H7's default (48 cores) was illegal on the 910B4 / 910_9362 (40 AIVs) and every
    310P (7 or 8 vector cores): the default now uses at most the SoC's vector cores."""
    args = {"x": spec((n,), dt), "y": spec((n,), dt)}
    desc, t = _default("vector_add", soc, args)
    t.validate(desc)
    _, c = _default("tensor_copy", soc, {"n_elements": n, "dtype": dt})
    kind = "aiv" if "aiv" in desc.core_counts() else "vector_core"  # the copy's cores
    assert c.cores == desc.core_counts()[kind]  # all of them, and no more


@SETTINGS
@given(soc=st.sampled_from([A2, A3, P310]), rows=st.integers(1, MAX_ROWS),
       n=st.integers(1, MAX_KN), xdt=st.sampled_from(["float32", "float16", "bfloat16"]),
       out=st.sampled_from(["int8", "uint8", "int32", "int4"]), per_channel=st.booleans())
def test_quantize_default_tiling_is_legal(soc, rows, n, xdt, out, per_channel):
    """npu_quantize (div_mode True for int8 / uint8 / int32, False for int4 - A2 / A3 only -
    whose scale takes x's dtype; the 310P takes float32 / float16 x): the default tiling passes
    the program's tiling validator (cores, chunking, UB working set)."""
    from npusim.ops.quantize_program import validate_quantize_tiling

    if soc == P310:
        xdt = "float16" if xdt == "bfloat16" else xdt
        out = "int8" if out == "int4" else out
    div = out != "int4"
    if not div:
        n = max(8, n // 8 * 8)
    sdt = "float32" if div else xdt
    args = {"x": spec((rows, n), xdt), "scales": spec((n if per_channel else 1,), sdt),
            "dtype": out, "axis": -1, "div_mode": div}
    desc, t = _default("quantize", soc, args)
    validate_quantize_tiling(t, desc, rows, xdt, out)
