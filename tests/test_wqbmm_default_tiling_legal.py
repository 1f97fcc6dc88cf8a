"""A default tiling is legal for every legal input (issue 16): for random legal
weight_quant_batchmatmul calls up to the documented limits (seed 002: K, N in [1, 65535],
antiquant_group_size a multiple of 32 in [32, K-1], M up to 2^31-1 for non-transposed x; here M
<= 65535), the default tiling of every capable kernel on every A2/A3 part passes
``validate_tiling``, whose capacity rules are the programs' own UB / L1 layouts
(``custom_vector_buffers``, ``custom_nz_splitk_vector_buffers``, the bias row in L1). Small
cases are also built and run timing-only, so an allocation the validator misses still fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import npusim
from npusim.ops.weight_quant_batchmatmul import (
    WqbmmArgs,
    capable_kernels,
    default_tiling,
    validate_tiling,
)
from npusim.spec import spec

SOCS = ["Ascend910B2", "Ascend910B4", "Ascend910_9391"]
_BASE = WqbmmArgs(
    x=np.zeros((1, 1), np.float16), weight=np.zeros((1, 1), np.int8),
    antiquant_scale=np.zeros((1, 1), np.float16), antiquant_offset=None, quant_param=None,
    bias=None, x_dtype="float16", weight_dtype="int8", weight_format="ND",
    scale_dtype="float16", out_dtype="float16", trans_a=False, trans_b=False, group_size=0,
    inner_precise=0, quant_type="per_channel", quant_scale_type=None, m=1, k=64, n=64,
)
_DUMMY = np.zeros((1,), np.float32)


@st.composite
def legal_args(draw, max_m: int = 65535, max_kn: int = 65535) -> WqbmmArgs:
    """A legal call (the seed-002 rules plus the argument checks of ``normalize_args``)."""
    xd = draw(st.sampled_from(["float16", "bfloat16"]))
    wd = draw(st.sampled_from(["int8", "int4"]))
    m = draw(st.integers(1, max_m))
    k = draw(st.integers(1, max_kn))
    n = draw(st.integers(1, max_kn))
    fmt = draw(st.sampled_from(["ND", "NZ"]))
    trans_b = draw(st.booleans())
    qt = draw(st.sampled_from(["per_tensor", "per_channel", "per_group"]))
    if fmt == "NZ" and wd == "int4":  # seed 002: NZ int4 rules
        qt = "per_channel" if qt == "per_tensor" else qt
        trans_b = qt == "per_channel"
        n = max(n, 2)  # one column would make a per-channel scale per-tensor
    if wd == "int4":  # int32 packing: the stored last dimension is a multiple of 8
        if trans_b:
            k = max(8, k // 8 * 8)
        else:
            n = max(8, n // 8 * 8)
    g = 0
    if qt == "per_group" and fmt == "NZ" and not trans_b:
        # seed 002 (int4) and CANN's templates (int8: Custom is the only NZ per-group template
        # for a non-transposed weight): group 64 or 128, k % group == 0, n % 64 == 0
        g = draw(st.sampled_from([64, 128]))
        k, n = max(2 * g, k // g * g), max(64, n // 64 * 64)  # group <= k - 1
    elif qt == "per_group":
        if k <= 32:
            qt = "per_channel"
        else:
            g = 32 * draw(st.integers(1, (k - 1) // 32))
    quant = fmt == "ND" and draw(st.booleans())  # quant_scale only with an ND weight
    return dataclasses.replace(
        _BASE, x_dtype=xd, scale_dtype=xd, weight_dtype=wd, weight_format=fmt,
        trans_b=trans_b, quant_type=qt, group_size=g, m=m, k=k, n=n,
        antiquant_offset=_DUMMY if draw(st.booleans()) else None,
        bias=_DUMMY if draw(st.booleans()) else None,
        out_dtype="int8" if quant else xd,
        quant_param=_DUMMY if quant else None,
        quant_scale_type="per_channel" if quant else None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=legal_args(), soc=st.sampled_from(SOCS))
def test_default_tiling_of_every_capable_kernel_validates(a, soc):
    """Every capable kernel's default tiling passes validation for a legal call."""
    for kernel in capable_kernels(a, soc):
        if kernel == "WeightNz":
            continue  # no tiling object (310P program tiling)
        validate_tiling(default_tiling(a, soc, kernel), a, soc, kernel)


def _specs_of(a: WqbmmArgs) -> dict:
    """TensorSpec inputs of the call ``a`` describes (weights in their stored layout)."""
    packed = a.weight_dtype == "int4"
    wdt = "int32" if packed else "int8"
    kk, nn = (a.k // 8 if packed and a.trans_b else a.k), (a.n // 8 if packed and not a.trans_b
                                                          else a.n)
    w = spec((kk, nn), wdt, transposed=a.trans_b, npu_format=29 if a.weight_format == "NZ" else 2)
    g = a.group_size
    pshape = {"per_tensor": (1,), "per_channel": (a.n,), "per_group": (-(-a.k // g) if g else 1,
                                                                       a.n)}[a.quant_type]
    out = {"x": spec((a.m, a.k), a.x_dtype), "weight": w,
           "antiquant_scale": spec(pshape, a.x_dtype), "antiquant_group_size": g}
    if a.antiquant_offset is not None:
        out["antiquant_offset"] = spec(pshape, a.x_dtype)
    if a.bias is not None:
        out["bias"] = spec((a.n,), "float16" if a.x_dtype == "float16" else "float32")
    if a.quant_param is not None:
        out["quant_scale"] = spec((a.n,), "float32")
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=legal_args(max_m=300, max_kn=1024), soc=st.sampled_from(SOCS))
def test_default_tiling_builds_and_runs_timing_only(a, soc):
    """For small legal calls the selected kernel's default program builds (no buffer overflow)
    and runs timing-only."""
    # a transposed int4 weight whose stored block is (1, 1) int32 (K = 8, N = 1) cannot be
    # passed as transposed: torch_npu's rule reads a (1, 1) block as not transposed
    assume(not (a.weight_dtype == "int4" and a.trans_b and a.k // 8 == 1 and a.n == 1))
    res = npusim.simulate("weight_quant_batchmatmul", soc=soc, **_specs_of(a))
    assert res.outputs is None and res.cycles > 0


_KERNEL_CASES = [  # the three program bugs of issue 16, each a legal input
    *[("Custom", m, 1024, 1024, "float16", True) for m in (49, 56, 64)],
    ("CustomNzSplitK", 128, 2048, 1024, "bfloat16", False),
    ("CustomNzSplitK", 65, 1024, 512, "bfloat16", True),
]


@pytest.mark.parametrize(("kernel", "m", "k", "n", "xd", "bias"), _KERNEL_CASES)
def test_named_program_bugs_run(kernel, m, k, n, xd, bias):
    """Custom with a bias and 49 <= M <= 64 fits L1; CustomNzSplitK with bf16 x fits UB: the
    default tiling builds and runs timing-only."""
    nz = kernel == "CustomNzSplitK"
    w = spec((k, n), "int8", transposed=True, npu_format=29) if nz else spec((k, n), "int8")
    args = dict(x=spec((m, k), xd), weight=w, antiquant_scale=spec((n,), xd))
    if bias:
        args["bias"] = spec((n,), "float16" if xd == "float16" else "float32")
    res = npusim.simulate("weight_quant_batchmatmul", soc="Ascend910B2", kernel=kernel, **args)
    assert res.kernel_name == kernel and res.cycles > 0


def test_k_n_65535_default_tiling_fits_ub():
    """K = N = 65535 (the documented maximum) selects Custom; its default vector tile is
    the largest that fits UB in the program's layout."""
    a = dataclasses.replace(_BASE, m=1, k=65535, n=65535)
    assert capable_kernels(a, "Ascend910B2")[0] == "Custom"
    t = default_tiling(a, "Ascend910B2", "Custom")
    validate_tiling(t, a, "Ascend910B2", "Custom")
    bigger = dataclasses.replace(t, vec_single_k=t.vec_single_k + 32)
    with pytest.raises(ValueError, match="UB"):
        validate_tiling(bigger, a, "Ascend910B2", "Custom")


_NZ_CASES = [  # (weight spec, antiquant_scale spec, group size): FRACTAL_NZ weights
    (spec((512, 256), "int8", transposed=True, npu_format=29), spec((256,), "float16"), 0),
    (spec((64, 256), "int32", transposed=True, npu_format=29), spec((256,), "float16"), 0),
    (spec((512, 32), "int32", npu_format=29), spec((4, 256), "float16"), 128),
]


@pytest.mark.parametrize(("w", "scale", "g"), _NZ_CASES)
def test_timing_only_with_fractal_nz_spec(w, scale, g):
    """A FRACTAL_NZ weight spec (logical shape, as ND specs) runs timing-only and gives the
    same kernel and cycles as the functional run on zero NZ storage."""
    from npusim.ops.weight_quant_program import _materialize

    x = spec((16, 512), "float16")
    kw = dict(antiquant_scale=scale, antiquant_group_size=g)
    t = npusim.simulate("weight_quant_batchmatmul", soc="Ascend910B2", x=x, weight=w, **kw)
    f = npusim.simulate(
        "weight_quant_batchmatmul", soc="Ascend910B2", x=np.ones((16, 512), np.float16),
        weight=_materialize(w, "weight"), antiquant_scale=_materialize(scale, "s"),
        antiquant_group_size=g,
    )
    assert t.outputs is None and f.outputs is not None
    assert (t.kernel_name, t.cycles) == (f.kernel_name, f.cycles)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(soc=st.sampled_from(["Ascend310P1", "Ascend310P3", "Ascend310P5"]),
       m=st.integers(1, 65535), k=st.integers(1, 65535), n=st.integers(1, 65535),
       offset=st.booleans(), bias=st.booleans())
def test_310p_weight_nz_default_tiling_validates(soc, m, k, n, offset, bias):
    """The 310P WeightNz program (seed 002: fp16 x, int8 per-channel weight, the only 310P
    kernel): its default tiling passes ``validate_weight_nz_tiling`` (core count, fractal
    alignment, every local buffer within capacity) for legal calls up to K = N = 65535."""
    from npusim.ops.weight_quant_common import WqbmmShape
    from npusim.ops.weight_quant_program_weight_nz import (
        default_weight_nz_tiling,
        validate_weight_nz_tiling,
    )
    from npusim.runner import resolve_soc

    desc = resolve_soc(soc)
    s = WqbmmShape(m, k, n, "float16", "int8", has_offset=offset, has_bias=bias, trans_w=True,
                   weight_nz=True)
    validate_weight_nz_tiling(default_weight_nz_tiling(desc, s), desc, s)
