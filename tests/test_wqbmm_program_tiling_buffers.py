"""A user's WqbmmProgramTiling is checked against every buffer its program allocates (the AIC's
L1 / L0A / L0B / L0C / BT / FB and the AIVs' UB) before anything runs: for random calls and
program tilings of the kernels it drives (Custom, Msd, MsdSplitK), ``validate_program_tiling``
refuses a capacity exactly when building the program with that tiling overflows a buffer
(BufferOverflowError), and the layouts it sizes are the programs' allocations, name for name and
offset for offset. The other kernels (MsdGroup, CustomNzSplitK, SplitK, Fixpipe) take their own
kernel tiling; a WqbmmProgramTiling is refused for them (TypeError) before any sizing."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from _layouts import placed
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from npusim.engine.errors import BufferOverflowError
from npusim.ops.cube_emitter import cube_emitter_buffers
from npusim.ops.weight_quant_batchmatmul.tiling import (
    default_tiling,
    msd_split_k_prepare_buffers,
    msd_split_k_recombine_buffers,
)
from npusim.ops.weight_quant_common import (
    cube_tiling_for_rows,
    cube_tiling_of,
    digit_count,
    msd_split_k_blocks,
    program_tiling_from,
    validate_program_tiling,
)
from npusim.ops.weight_quant_program import checked_call, kernel_program
from npusim.runner import resolve_soc
from npusim.spec import spec

SOC = "Ascend910B2"
#: a capacity refusal of validate_program_tiling: "... need(s) N B > BUFFER C B"
CAPACITY = re.compile(r"needs? \d+ B > (UB|L1|L0A|L0B|L0C|BT|FB) \d+ B")


def _call(kernel: str, m: int, k: int, n: int, xd: str, off: bool, bias: bool,
          per_group: bool, quant: bool, *, group: int = 64, int8: bool = False
          ) -> dict[str, Any]:
    """A call that selects ``kernel``: Msd per-channel int8 (M <= 64), MsdSplitK int4 (per-group
    ``group`` ND, or per-channel transposed; ``int8``: per-channel int8, which needs K > 13696),
    Custom int8 (int8 output with a per-column quant scale when ``quant``)."""
    if kernel == "MsdSplitK" and not int8:
        g = group if per_group else 0
        w = spec((k, n // 8), "int32") if g else spec((k // 8, n), "int32", transposed=True)
    else:
        g = 0
        w = spec((k, n), "int8")
    p = (k // g, n) if g else (n,)
    call: dict[str, Any] = {"x": spec((m, k), xd), "weight": w, "antiquant_scale": spec(p, xd)}
    if g:
        call["antiquant_group_size"] = g
    if off:
        call["antiquant_offset"] = spec(p, xd)
    if bias:
        call["bias"] = spec((n,), "float16" if xd == "float16" else "float32")
    if kernel == "Custom" and quant:
        call["quant_scale"] = spec((n,), "int64")
    return call


def _shape_and_default(kernel: str, call: dict[str, Any]) -> tuple[Any, Any]:
    soc = resolve_soc(SOC)
    args, _name, s, _ = checked_call(soc, kernel=kernel, **call)
    return s, program_tiling_from(default_tiling(args, soc, kernel), soc, s, kernel)


def _verdicts(kernel: str, s: Any, pt: Any) -> tuple[str, str] | None:
    """(the buffer validate_program_tiling refuses, "" if none; the buffer the build overflows,
    "" if none), or None when the validator refuses the tiling for a rule other than capacity."""
    soc = resolve_soc(SOC)
    try:
        validate_program_tiling(pt, soc, s, kernel)
        refused = ""
    except ValueError as e:
        found = CAPACITY.search(str(e))
        if found is None:
            return None
        refused = found.group(1)
    try:
        kernel_program(kernel, soc)(soc, s, pt)
        overflow = ""
    except BufferOverflowError as e:
        overflow = re.search(r" in (\w+) at offset", str(e)).group(1)  # type: ignore[union-attr]
    return refused, overflow


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), kernel=st.sampled_from(["Custom", "Msd", "MsdSplitK"]),
       m=st.integers(1, 64), k64=st.integers(1, 96), n64=st.integers(1, 48),
       xd=st.sampled_from(["float16", "bfloat16"]), off=st.booleans(), bias=st.booleans(),
       per_group=st.booleans(), quant=st.booleans(), group=st.sampled_from([64, 128]),
       int8=st.booleans())
def test_program_tiling_capacity_check_is_the_build(data, kernel, m, k64, n64, xd, off, bias,
                                                    per_group, quant, group, int8):
    """Random cube blocks (base_m / base_n / base_k, step_k), strips, vector rows, recombination
    rows, K blocks and group packs: the validator refuses a capacity iff the build overflows
    (found: Msd base_n = 112 on the default base_k = 320 passed the validator and overflowed L0B
    at build, naming no field; MsdSplitK had no UB check). MsdSplitK: int4 per-group 64 / 128
    and per-channel, int8 per-channel (K > 13696)."""
    k, n = 64 * k64, 64 * n64
    if kernel == "Custom":
        m = max(m, 17)
    int8 = int8 and kernel == "MsdSplitK"
    if int8:
        per_group, k = False, 13696 + k
    if kernel == "MsdSplitK" and per_group:
        m = min(m, group // 8)  # MsdSplitK per-group: M <= g / 8
        k = -(-k // group) * group
    call = _call(kernel, m, k, n, xd, off, bias, per_group, quant and kernel == "Custom",
                 group=group, int8=int8)
    try:
        s, pt = _shape_and_default(kernel, call)
    except ValueError:
        assume(False)  # the kernel does not take this call
    unit = 16 if kernel == "Custom" else 32 if s.w_dtype == "int8" else 64
    strip = 16 * data.draw(st.integers(1, 40), label="strip_n / 16")
    changes: dict[str, Any] = {
        "strip_n": strip,
        "base_n": 16 * data.draw(st.integers(1, min(strip, 320) // 16), label="base_n / 16"),
        "base_k": unit * data.draw(st.integers(1, 640 // unit), label="base_k / unit"),
        "step_k": data.draw(st.integers(1, 4), label="step_k"),
        "base_m": 16 * data.draw(st.integers(1, 12), label="base_m / 16"),
    }
    if kernel == "Custom":
        changes["vec_rows"] = 16 * data.draw(st.integers(1, 32), label="vec_rows / 16")
    elif kernel == "Msd":
        changes["post_m"] = data.draw(st.integers(0, m), label="post_m")
    elif s.group_size:
        changes["group_pack"] = data.draw(st.sampled_from([1, 2, 4, 8, 16, 64]), label="pack")
    else:
        changes["k_block"] = 64 * data.draw(st.integers(0, 2 * k64), label="k_block / 64")
    v = _verdicts(kernel, s, dataclasses.replace(pt, **changes))
    assume(v is not None)
    assert v is not None
    event(f"{kernel} refused: {v[0] or '-'}, overflow: {v[1] or '-'}")
    event(f"{kernel} {s.w_dtype} group {s.group_size}")
    assert bool(v[0]) == bool(v[1]), v
    if v[0] in ("UB",) or v[1] == "UB":
        return  # the validator sizes UB first, the build the AIC first: both named
    assert v[0] == v[1]


@pytest.mark.parametrize(("kernel", "xd", "bias", "quant", "per_group"), [
    ("Custom", "float16", True, True, False), ("Custom", "bfloat16", False, False, False),
    ("Msd", "float16", True, False, False), ("MsdSplitK", "bfloat16", True, False, True),
    ("MsdSplitK", "float16", False, False, False)])
def test_sized_layouts_are_the_allocations(kernel, xd, bias, quant, per_group):
    """The layouts the validator sizes are what the program allocates: every AIC's local
    buffers (cube_emitter_buffers, the core's alignment) and, for MsdSplitK, every AIV's UB in
    its two phases (digit split, then recombination from offset 0), name, offset and size."""
    soc = resolve_soc(SOC)
    m = 4 if kernel == "MsdSplitK" else 24
    s, pt = _shape_and_default(kernel, _call(kernel, m, 1024, 512, xd, True, bias, per_group,
                                             quant))
    pt = dataclasses.replace(pt, strip_n=96, base_n=96, vec_rows=64,
                             base_k=128 if kernel != "Custom" else 64)
    kern = kernel_program(kernel, soc)(soc, s, pt)
    aic = soc.core("aic")
    if kernel == "Custom":
        want = cube_emitter_buffers(cube_tiling_of(pt), xd, aic, bias=bias, quant_vector=quant)
    else:
        ct = cube_tiling_for_rows(pt, digit_count(s.w_dtype) * s.m)
        want = cube_emitter_buffers(ct, s.w_dtype, aic, bias=False)
    for core in (c for c in kern.cores if c.kind == "aic"):
        assert core.allocations == {
            buf: placed(layout, aic.buffers[buf].alignment_bytes)
            for buf, layout in want.items() if layout}
    if kernel == "MsdSplitK":
        blk, nb, per, pack = msd_split_k_blocks(s, pt)
        d = digit_count(s.w_dtype)
        ub = (placed(msd_split_k_prepare_buffers(blk, per, d, xd, s.w_dtype), 32)
              + placed(msd_split_k_recombine_buffers(s.m, 48, nb, pack, d, xd, s.out_dtype),
                        32))
        for core in (c for c in kern.cores if c.kind == "aiv"):
            assert core.allocations == {"UB": ub}


def test_msd_base_n_over_l0b_is_refused_naming_the_fields():
    """The random-test find: Msd's default base_k = 320 with base_n = 112 needs two int8 L0B
    buffers of 320 x 112 (71680 B > 65536 B); it passed the validator and overflowed L0B at
    build (naming no field). simulate now refuses it naming base_k, base_n and L0B's capacity;
    base_n = 96 runs."""
    import npusim

    call = _call("Msd", 16, 320, 512, "float16", True, True, False, False)
    s, pt = _shape_and_default("Msd", call)
    assert pt.base_k == 320
    bad = dataclasses.replace(pt, strip_n=128, base_n=112)
    with pytest.raises(ValueError, match=r"tiling\.base_k=320, tiling\.base_n=112: the Msd AIC's "
                       r"L0B buffers .* need 71680 B > L0B 65536 B"):
        npusim.simulate("weight_quant_batchmatmul", SOC, bad, kernel="Msd", **call)
    with pytest.raises(BufferOverflowError, match="in L0B"):
        kernel_program("Msd", resolve_soc(SOC))(resolve_soc(SOC), s, bad)
    ok = dataclasses.replace(pt, strip_n=128, base_n=96)
    assert npusim.simulate("weight_quant_batchmatmul", SOC, ok, kernel="Msd", **call).cycles > 0


def test_msd_split_k_whole_k_block_over_ub_is_refused_naming_k_block():
    """MsdSplitK per-channel with K > 4096 splits one K block per pass: k_block = 0 (the whole
    K = 20480 as one block) needs its x, fp32, work and three int4 digit rows in UB (235 KiB >
    192 KiB); the validator had no MsdSplitK UB model and passed it, the build overflowed UB.
    Now refused naming k_block; the default block passes."""
    call = _call("MsdSplitK", 4, 20480, 1024, "float16", True, False, False, False)
    s, pt = _shape_and_default("MsdSplitK", call)
    soc = resolve_soc(SOC)
    validate_program_tiling(pt, soc, s, "MsdSplitK")
    bad = dataclasses.replace(pt, k_block=0)
    with pytest.raises(ValueError, match=r"tiling\.k_block=0 \(whole K\): the MsdSplitK digit "
                       r"split of 1 K block\(s\) of 20480 elements needs \d+ B > UB 196608 B"):
        validate_program_tiling(bad, soc, s, "MsdSplitK")
    with pytest.raises(BufferOverflowError, match="in UB"):
        kernel_program("MsdSplitK", soc)(soc, s, bad)


@pytest.mark.parametrize("kernel", ["Custom", "Msd", "MsdSplitK"])
def test_default_program_tilings_pass(kernel):
    """The program tilings derived from the kernels' default tilings pass the capacity checks
    (a default the validator refused would be a refusal of a call that runs today)."""
    soc = resolve_soc(SOC)
    for m in (1, 8, 17, 64):
        for k, n in ((4096, 11008), (11008, 4096), (13696, 5120), (1024, 512)):
            for xd in ("float16", "bfloat16"):
                for per_group in (False, True):
                    try:
                        s, pt = _shape_and_default(
                            kernel, _call(kernel, m, k, n, xd, True, True, per_group, False))
                    except ValueError:
                        continue
                    validate_program_tiling(pt, soc, s, kernel)


def test_custom_bias_row_over_the_bias_table_is_refused():
    """Custom with a bias stages one fp32 bias row of base_n in the BiasTable (1 KiB): base_n =
    272 (1088 B) is refused naming base_n and BT's capacity, as the build overflows BT; 256
    fits."""
    soc = resolve_soc(SOC)
    s, pt = _shape_and_default("Custom", _call("Custom", 32, 256, 1024, "float16", False, True,
                                               False, False))
    small = {"strip_n": 272, "base_m": 32, "base_k": 16, "step_k": 1, "vec_rows": 32}
    bad = dataclasses.replace(pt, base_n=272, **small)
    with pytest.raises(ValueError, match=r"tiling\.base_n=272: the Custom AIC's BT buffers "
                       r"\(bias \[272\] float32\) need 1088 B > BT 1024 B"):
        validate_program_tiling(bad, soc, s, "Custom")
    assert _verdicts("Custom", s, bad) == ("BT", "BT")
    assert _verdicts("Custom", s, dataclasses.replace(pt, base_n=256, **small)) == ("", "")
