"""The tiling validators' UB models are the programs' allocations (issue 16): for random legal
calls and tilings, ``validate_tiling`` reports a UB overflow exactly when building the program
with that tiling overflows UB (BufferOverflowError), so a default tiling the validator accepts
always builds and a tiling it refuses for UB could not have run."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from npusim.engine.errors import BufferOverflowError
from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling, validate_tiling
from npusim.ops.weight_quant_common import program_tiling_from
from npusim.ops.weight_quant_program import checked_call, kernel_program
from npusim.runner import resolve_soc
from npusim.spec import spec

SOC = "Ascend910B2"


def _ub_verdicts(kernel: str, call: dict, **changes) -> tuple[bool, bool] | None:
    """(the validator reports a UB problem, the build overflows UB) for ``call`` with the
    default tiling of ``kernel`` changed by ``changes``; None when the validator refuses it for
    another reason."""
    soc = resolve_soc(SOC)
    args, _name, s, _ = checked_call(soc, kernel=kernel, **call)
    kt = dataclasses.replace(default_tiling(args, soc, kernel), **changes)
    try:
        validate_tiling(kt, args, soc, kernel)
        refused = False
    except ValueError as e:
        problems = str(e).split(": ", 1)[1].split("; ")
        if not all(p.startswith("UB") for p in problems):
            return None
        refused = True
    try:
        kernel_program(kernel, soc)(soc, s, program_tiling_from(kt, soc, s, kernel))
        overflow = False
    except BufferOverflowError as e:
        assert " in UB " in str(e), e
        overflow = True
    return refused, overflow


def _msd_call(m: int, k: int, n: int, xd: str, off: bool, bias: bool, trans: bool) -> dict:
    call = {"x": spec((m, k), xd), "weight": spec((k, n), "int8", transposed=trans),
            "antiquant_scale": spec((n,), xd)}
    if off:
        call["antiquant_offset"] = spec((n,), xd)
    if bias:
        call["bias"] = spec((n,), "float16" if xd == "float16" else "float32")
    return call


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), m=st.integers(1, 64), k32=st.integers(1, 13696 // 32),
       n32=st.integers(1, 32000 // 32), xd=st.sampled_from(["float16", "bfloat16"]),
       off=st.booleans(), bias=st.booleans(), trans=st.booleans())
def test_msd_validator_ub_is_the_program_allocation(data, m, k32, n32, xd, off, bias, trans):
    """Msd (per-channel int8, M <= 64, K <= 13696, N <= 32000): random N per AIC and rows per
    recombination pass; the validator's UB verdict equals the build's."""
    n = 32 * n32
    single_n = 64 * data.draw(st.integers(1, -(-n // 64)))
    dim_n = -(-n // single_n)
    assume(dim_n <= 24)
    v = _ub_verdicts(
        "Msd", _msd_call(m, 32 * k32, n, xd, off, bias, trans), single_core_n=single_n,
        cube_block_dim_n=dim_n, post_process_base_m=data.draw(st.integers(1, m)))
    assume(v is not None)
    event(f"UB refused: {v[0]}")
    assert v[0] == v[1]


@pytest.mark.parametrize(("m", "n", "rows", "fits"), [(60, 11008, 41, True),
                                                      (60, 11008, 42, False),
                                                      (64, 32000, 15, True),
                                                      (64, 32000, 16, False)])
def test_msd_recombination_rows_at_the_ub_limit(m, n, rows, fits):
    """At the limit: N = 11008 over 24 AICs leaves 256 columns per AIV, 41 rows of whose
    recombination fit UB and 42 do not (N = 32000: 672 columns, 15 rows); both sides agree, and
    the default is the largest that fits."""
    soc = resolve_soc(SOC)
    args = checked_call(soc, kernel="Msd", **_msd_call(m, 4096, n, "float16", True, True,
                                                        False))[0]
    assert default_tiling(args, soc, "Msd").post_process_base_m == {11008: 41, 32000: 15}[n]
    v = _ub_verdicts("Msd", _msd_call(m, 4096, n, "float16", True, True, False),
                     post_process_base_m=rows)
    assert v == (not fits, not fits)


def _custom_call(m: int, k: int, n: int, xd: str, wd: str, fmt: str, trans: bool,
                 g: int) -> dict:
    packed = wd == "int4"
    shape = ((k // 8, n) if trans else (k, n // 8)) if packed else (k, n)
    w = spec(shape, "int32" if packed else "int8", transposed=trans,
             npu_format=29 if fmt == "NZ" else 2)
    return {"x": spec((m, k), xd), "weight": w,
            "antiquant_scale": spec((k // g, n) if g else (n,), xd), "antiquant_group_size": g}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), m=st.integers(17, 300), k64=st.integers(2, 32), n64=st.integers(1, 64),
       xd=st.sampled_from(["float16", "bfloat16"]), wd=st.sampled_from(["int8", "int4"]),
       fmt=st.sampled_from(["ND", "NZ"]), trans=st.booleans(), group=st.booleans())
def test_custom_validator_ub_is_the_program_allocation(data, m, k64, n64, xd, wd, fmt, trans,
                                                       group):
    """Custom (ND and FRACTAL_NZ weights, int8 / int4, per-channel / per-group 64): random
    strip width and K rows per vector tile; the validator's UB verdict equals the build's."""
    k, n = 64 * k64, 64 * n64
    if fmt == "NZ" and wd == "int4":  # seed 002: per-channel transposed, per-group not
        trans = not group
    if fmt == "NZ" and group and trans:
        trans = False  # Custom takes no transposed NZ per-group weight (WeightNz does)
    g = 64 if group else 0
    strip = 16 * data.draw(st.integers(1, 24))
    unit = 64 if fmt == "NZ" and wd == "int4" else 32
    rows = unit * data.draw(st.integers(1, 8))
    v = _ub_verdicts("Custom", _custom_call(m, k, n, xd, wd, fmt, trans, g), cube_single_n=strip,
                     vec_single_n=strip, vec_single_k=rows,
                     vec_single_k_group_num=rows // g if g else 0)
    assume(v is not None)
    assert v is not None
    event(f"UB refused: {v[0]}")
    assert v[0] == v[1]


@pytest.mark.parametrize("group", [0, 128])
def test_custom_bf16_int4_nz_default_fits(group):
    """bf16 x with an int4 FRACTAL_NZ weight (per-channel transposed, per-group not): the tiles
    are whole 64-row K blocks, so the default strip narrows until one fits UB (it took 256
    columns, 229 KiB of tiles, and overflowed on f1); M = 8 / 64, K = 14336, N = 11008."""
    soc = resolve_soc(SOC)
    call = _custom_call(8 if not group else 64, 14336, 11008, "bfloat16", "int4", "NZ",
                        not group, group)
    args = checked_call(soc, kernel="Custom", **call)[0]
    t = default_tiling(args, soc, "Custom")
    assert (t.cube_single_n, t.vec_single_k) == (208, 64)  # 256 x 64 needs 229 KiB
    assert _ub_verdicts("Custom", call) == (False, False)


def _program_ub_verdicts(kernel: str, call: dict, **changes) -> tuple[bool, bool] | None:
    """(validate_program_tiling refuses the UB, the build overflows UB) for ``call`` with the
    program tiling derived from ``kernel``'s default changed by ``changes``; None when it is
    refused for another reason."""
    from npusim.ops.weight_quant_common import validate_program_tiling

    soc = resolve_soc(SOC)
    args, _name, s, _ = checked_call(soc, kernel=kernel, **call)
    pt = program_tiling_from(default_tiling(args, soc, kernel), soc, s, kernel)
    pt = dataclasses.replace(pt, **changes)
    try:
        validate_program_tiling(pt, soc, s, kernel)
        refused = False
    except ValueError as e:
        if " > UB " not in str(e):
            return None
        refused = True
    try:
        kernel_program(kernel, soc)(soc, s, pt)
        overflow = False
    except BufferOverflowError as e:
        if " in UB " not in str(e):  # an L0 / L1 overflow: not this check's (the cube's)
            return None
        overflow = True
    return refused, overflow


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), kernel=st.sampled_from(["Msd", "Custom"]), m=st.integers(1, 64),
       k64=st.integers(1, 64), n64=st.integers(1, 172),
       xd=st.sampled_from(["float16", "bfloat16"]))
def test_program_tiling_ub_check_is_the_program_allocation(data, kernel, m, k64, n64, xd):
    """A user's WqbmmProgramTiling (Msd: rows per recombination pass ``post_m``, 0 = all M
    rows, and the strip; Custom: K rows per vector tile and the strip): the program-tiling
    validator reports a UB overflow exactly when the build overflows UB (it had no UB model:
    post_m = 0 at M = 64, N = 11008 overflowed at build, BufferOverflowError on c2)."""
    k, n = 64 * k64, 64 * n64
    strip = 16 * data.draw(st.integers(1, 64), label="strip / 16")
    if kernel == "Msd":
        call = _msd_call(m, k, n, xd, True, True, False)
        changes = {"post_m": data.draw(st.integers(0, m), label="post_m"), "strip_n": strip}
    else:
        call = _custom_call(max(m, 17), k, n, xd, "int8", "ND", False, 0)
        changes = {"vec_rows": 16 * data.draw(st.integers(1, 32), label="vec_rows / 16"),
                   "strip_n": strip}
    changes["base_n"] = min(strip, 256)
    v = _program_ub_verdicts(kernel, call, **changes)
    assume(v is not None)
    assert v is not None
    event(f"UB refused: {v[0]}")
    assert v[0] == v[1]


def test_msd_program_tiling_with_all_rows_is_refused_naming_post_m():
    """post_m = 0 (all 64 rows in one recombination pass) with N = 11008's 512-column strips
    needs more UB than the AIV has: simulate refuses it naming the field and the rows that fit
    (it raised BufferOverflowError on c2 while building); post_m = 41 runs."""
    import npusim

    soc = resolve_soc(SOC)
    call = _msd_call(64, 4096, 11008, "float16", True, True, False)
    args, _name, s, _ = checked_call(soc, kernel="Msd", **call)
    pt = program_tiling_from(default_tiling(args, soc, "Msd"), soc, s, "Msd")
    assert pt.post_m == 41
    with pytest.raises(ValueError, match=r"tiling\.post_m=0 \(all rows\).*post_m <= 41 fits"):
        npusim.simulate("weight_quant_batchmatmul", SOC, dataclasses.replace(pt, post_m=0),
                        kernel="Msd", **call)
    assert npusim.simulate("weight_quant_batchmatmul", SOC, pt, kernel="Msd", **call).cycles > 0


@pytest.mark.parametrize("g", [32 * i for i in range(1, 9)])
def test_an_int4_nz_group_is_whole_k_blocks(g):
    """custom_k_unit is 64 rows for an int4 FRACTAL_NZ weight (one 32 B K block) whatever the
    group: sound only because every per-group call that reaches Custom with that weight has a
    group of whole blocks (aclnn: 64 or 128), so no vector tile or K split cuts a block across
    two groups. The other multiples of 32 are refused before any tiling exists; for the
    accepted ones the default tiling is legal and its tiles are whole groups."""
    from npusim.ops.weight_quant_batchmatmul.tiling import custom_k_unit

    soc = resolve_soc(SOC)
    call = _custom_call(64, 8 * g, 1024, "bfloat16", "int4", "NZ", False, g)
    if g not in (64, 128):
        with pytest.raises(ValueError, match="group size 64 or 128"):
            checked_call(soc, kernel="Custom", **call)
        return
    args = checked_call(soc, kernel="Custom", **call)[0]
    assert g % custom_k_unit(args) == 0
    t = default_tiling(args, soc, "Custom")
    validate_tiling(t, args, soc, "Custom")
    assert t.vec_single_k % g == 0
