"""A default tiling is legal for every legal input (issue 16), for the operators besides
weight_quant_batchmatmul (tests/test_wqbmm_default_tiling_legal.py): random legal calls up to
the documented limits (rows up to 2^31 - 1, K / N / H up to 65535; seed 004's quint4x2 rule
H % 8 == 0), on an A2, an A3 and the 310P where the operator runs there. The default tiling of
each passes the validator its program applies to a user tiling (buffer capacities, alignment,
core counts). No program is built, so the largest shapes cost nothing; small calls of each
operator are built and run by tests/test_legal_combinations.py."""

from __future__ import annotations

import numpy as np
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
       dt=st.sampled_from(["float16", "bfloat16"]), dst=st.sampled_from([None, "int8", "int4"]))
def test_dynamic_quant_default_tiling_is_legal(soc, rows, h8, dt, dst):
    from npusim.ops.dynamic_quant_pertoken import ub_bytes
    from npusim.ops.dynamic_quant_program import validate_dynamic_quant_tiling
    from npusim.ops.group_quant_program import validate_row_chunk_tiling

    h = h8 * 8
    args = {"x": spec((rows, h), dt), **({"dst_type": dst} if dst else {})}
    desc, t = _default("dynamic_quant", soc, args)
    if dst is None:
        validate_dynamic_quant_tiling(t, desc, rows, h)
    else:
        validate_row_chunk_tiling(t, desc, rows, ub_bytes, "dynamic_quant")


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
