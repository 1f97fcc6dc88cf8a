"""Every weight_quant_batchmatmul kernel replays bit-exactly under random legal tilings, not only
its default one: the kernel's tiling object is drawn around the default (core splits, tile
sizes, workspace slots, cube blocks, the numeric K blocks), kept when ``validate_tiling``
accepts it, and the functional run's output bits must equal the numerics model's for that
same tiling. (SplitK draws its K split in its own replay test.)"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from _wqbmm_replay import B2, args_of, check_replay, fixpipe_call, nz_call, wqbmm_call
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling, validate_tiling
from npusim.runner import resolve_soc

SETTINGS = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


def legal(kw: dict[str, Any], kernel: str, **changes: Any) -> Any:
    """The default tiling of ``kernel`` for the call with ``changes`` applied (``cube`` takes a
    dict of CubeBlock changes); hypothesis discards the draw when the result is illegal."""
    args = args_of(kw)
    kt = default_tiling(args, resolve_soc(B2), kernel)
    cube = changes.pop("cube", None)
    if cube:
        changes["cube"] = dataclasses.replace(kt.cube, **cube)
    kt = dataclasses.replace(kt, **changes)
    try:
        validate_tiling(kt, args, resolve_soc(B2), kernel)
    except ValueError:
        assume(False)
    return kt


def cube_changes(draw: Any, k_unit: int) -> dict[str, int]:
    """Random cube base_k (a multiple of the K fractal) and L1 steps."""
    step = draw(st.sampled_from([1, 2, 4]))
    return {"base_k": k_unit * draw(st.integers(1, 4)), "step_ka": step, "step_kb": step}


def run(kw: dict[str, Any], kernel: str, kt: Any) -> None:
    typed = "fix" if kernel == "Fixpipe" else "vec"  # Fixpipe runs on the AICs alone
    r = check_replay(kw, kernel, force=True, tiling=kt, typed_kind=typed)
    assert r.tiling == kt, "the program ran the tiling it was given"


@SETTINGS
@given(data=st.data(), wdt=st.sampled_from(["int8", "int4"]), g=st.sampled_from([-1, 0, 64]),
       xdt=st.sampled_from(["float16", "bfloat16"]), seed=st.integers(0, 2**16))
def test_custom_random_tilings(data, wdt, g, xdt, seed):
    """Custom (per-tensor g = -1, per-channel g = 0, per-group): AICs over N and M, workspace
    strip width, K rows per vector tile, ring slots, cube block."""
    m, k, n = 80, 256, 192
    kw = wqbmm_call(seed, m, k, n, xdt=xdt, wdt=wdt, group=max(g, 0), offset=True, bias=True,
                    per_tensor=g < 0)
    g = max(g, 0)
    dim_n = data.draw(st.integers(1, 4))
    dim_m = data.draw(st.integers(1, 2))
    single_n = _align(-(-n // dim_n), 16)
    strip = 16 * data.draw(st.integers(1, single_n // 16))
    rows = data.draw(st.sampled_from([32, 64, 128, 256]))
    kt = legal(kw, "Custom", cube_block_dim_n=-(-n // single_n), single_core_n=single_n,
               cube_block_dim_m=dim_m, single_core_m=-(-m // dim_m), cube_single_n=strip,
               vec_single_n=strip, vec_single_k=rows,
               vec_single_k_group_num=rows // g if g else 0,
               weight_cache_count=data.draw(st.integers(1, 3)),
               cube=cube_changes(data.draw, 16))
    run(kw, "Custom", kt)


@SETTINGS
@given(data=st.data(), trans=st.booleans(), seed=st.integers(0, 2**16))
def test_msd_random_tilings(data, trans, seed):
    """Msd: AICs over N, rows per recombination pass, weight preloads, cube block."""
    m, k, n = 12, 256, 256
    kw = wqbmm_call(seed, m, k, n, offset=True, bias=True, trans=trans)
    single_n = 64 * data.draw(st.integers(1, 4))
    kt = legal(kw, "Msd", cube_block_dim_n=-(-n // single_n), single_core_n=single_n,
               post_process_base_m=data.draw(st.integers(1, m)),
               preload_times=data.draw(st.integers(0, 3)), cube=cube_changes(data.draw, 32))
    run(kw, "Msd", kt)


@SETTINGS
@given(data=st.data(), per_group=st.booleans(), ip=st.sampled_from([0, 1]),
       seed=st.integers(0, 2**16))
def test_msd_split_k_random_tilings(data, per_group, ip, seed):
    """MsdSplitK (int4; per-group with M <= g / 8, per-channel with a transposed weight): the
    numeric K block (per-channel) or groups per pass (per-group), cube block."""
    m, k, n, g = 4, 1024, 256, 64
    kw = wqbmm_call(seed, m, k, n, wdt="int4", group=g if per_group else 0, offset=True,
                    bias=True, trans=not per_group, inner_precise=ip if per_group else None)
    if per_group:
        pack = data.draw(st.sampled_from([1, 2, 4, 8, 16]))
        changes: dict[str, Any] = {"group_pack": pack, "v1_base_k": _align(k, pack * g)}
    else:
        changes = {"v1_base_k": 64 * data.draw(st.integers(1, k // 64))}
    kt = legal(kw, "MsdSplitK", **changes, cube=cube_changes(data.draw, 64))
    run(kw, "MsdSplitK", kt)


@SETTINGS
@given(data=st.data(), ip=st.sampled_from([0, 1]), xdt=st.sampled_from(["float16", "bfloat16"]),
       seed=st.integers(0, 2**16))
def test_msd_group_random_tilings(data, ip, xdt, seed):
    """MsdGroup: K split over the AICs (the declared order of their fp32 partial sums), rows
    per AIV in the digit split."""
    m, g = 6, 64
    k, n = 12 * g, 256
    kw = wqbmm_call(seed, m, k, n, xdt=xdt, wdt="int4", group=g, offset=True, bias=True,
                    inner_precise=ip)
    groups = data.draw(st.integers(1, 12))
    single_k = groups * g
    kt = legal(kw, "MsdGroup", cube_block_dim_k=-(-k // single_k), single_core_k=single_k,
               single_core_group=groups, vec1_single_core_m=data.draw(st.integers(1, m)))
    run(kw, "MsdGroup", kt)


@SETTINGS
@given(data=st.data(), xdt=st.sampled_from(["float16", "bfloat16"]), seed=st.integers(0, 2**16))
def test_custom_nz_split_k_random_tilings(data, xdt, seed):
    """CustomNzSplitK: K split over the AICs (post pass and reduction order follow), K per
    vector pass and per Mmad, Mmad width."""
    m, k, n = 72, 1024, 128
    kw = nz_call(seed, m, k, n, xdt=xdt)
    base_k = 16 * data.draw(st.sampled_from([2, 4, 8]))
    single_k = base_k * data.draw(st.sampled_from([1, 2, 4]))
    core_k = single_k * data.draw(st.integers(1, max(1, k // single_k)))
    kt = legal(kw, "CustomNzSplitK", cube_base_k=base_k, single_k=single_k,
               single_core_k=core_k, cube_block_dim_k=-(-k // core_k),
               vec_block_dim_k=-(-k // core_k),
               cube_single_n=data.draw(st.sampled_from([64, 128])))
    run(kw, "CustomNzSplitK", kt)


@SETTINGS
@given(data=st.data(), off=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_fixpipe_random_tilings(data, off, bias, seed):
    """Fixpipe: base block, A fully loaded or per K block, AICs over N."""
    m, k, n = 32, 512, 256
    kw = fixpipe_call(seed, m, k, n, off, bias)
    single_n = 32 * data.draw(st.integers(1, 8))
    base_n = 16 * data.draw(st.integers(1, single_n // 16))
    kt = legal(kw, "Fixpipe", n_block_num=-(-n // single_n), single_core_n=single_n,
               base_n=base_n, base_k=32 * data.draw(st.integers(1, k // 32)),
               a_full_load=data.draw(st.booleans()))
    run(kw, "Fixpipe", kt)


@pytest.mark.parametrize("kernel", ["Custom", "Msd", "MsdGroup", "Fixpipe"])
def test_an_illegal_tiling_is_refused_naming_the_rule(kernel):
    """The other side: a tiling that breaks a rule is refused before anything runs."""
    kw = {"Custom": lambda: wqbmm_call(1, 80, 256, 192),
          "Msd": lambda: wqbmm_call(1, 12, 256, 256),
          "MsdGroup": lambda: wqbmm_call(1, 6, 768, 256, wdt="int4", group=64),
          "Fixpipe": lambda: fixpipe_call(1, 32, 512, 256, False, False)}[kernel]()
    kt = default_tiling(args_of(kw), resolve_soc(B2), kernel)
    field = {"Custom": "cube_block_dim_n", "Msd": "cube_block_dim_n",
             "MsdGroup": "cube_block_dim_k", "Fixpipe": "n_block_num"}[kernel]
    bad = dataclasses.replace(kt, **{field: 0})
    import npusim

    with pytest.raises(ValueError, match=field):
        npusim.simulate("weight_quant_batchmatmul", B2, tiling=bad, kernel=kernel, **kw)


def test_fixpipe_tiling_whose_local_buffers_overflow_is_refused():
    """Found by the random-tiling test: base_n = 160 passed validation, then the program's
    L0B (the int8 identity plus two fp16 weight slices, 66560 B) overflowed at build time; the
    validator now sums the program's declared local buffers (fixpipe_core_buffers)."""
    kw = fixpipe_call(0, 32, 512, 256, False, False)
    kt = default_tiling(args_of(kw), resolve_soc(B2), "Fixpipe")
    bad = dataclasses.replace(kt, n_block_num=2, single_core_n=160, base_n=160, base_k=32,
                              a_full_load=False)
    with pytest.raises(ValueError, match=r"L0B: base_m=32, base_n=160, base_k=32 need 66560 B"):
        validate_tiling(bad, args_of(kw), resolve_soc(B2), "Fixpipe")


WEIGHT_NZ_SOC = "Ascend310P3"


@SETTINGS
@given(data=st.data(), off=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_weight_nz_310p_random_tilings(data, off, bias, seed):
    """310P WeightNz: its program tiling (M x N core grid, L1 blocks of M, N and K) drawn at
    random, kept when validate_weight_nz_tiling accepts it; the bits equal the oracle's."""
    from npusim.ops.weight_quant_program import checked_call
    from npusim.ops.weight_quant_program_weight_nz import (
        WeightNzProgramTiling,
        validate_weight_nz_tiling,
    )

    m, k, n = 40, 256, 96
    kw = wqbmm_call(seed, m, k, n, offset=off, bias=bias, trans=True)  # 310P: per-channel
    kt = WeightNzProgramTiling(
        m_block_num=data.draw(st.integers(1, 3)), n_block_num=data.draw(st.integers(1, 4)),
        m_l1=16 * data.draw(st.integers(1, 4)), n_l1=16 * data.draw(st.integers(1, 8)),
        k_l1=32 * data.draw(st.integers(1, 8)))
    soc = resolve_soc(WEIGHT_NZ_SOC)
    _, _, s, _ = checked_call(soc, **kw)
    try:
        validate_weight_nz_tiling(kt, soc, s)
    except ValueError:
        assume(False)
    r = check_replay(kw, "WeightNz", soc=WEIGHT_NZ_SOC, tiling=kt)
    assert r.tiling == kt, "the program ran the tiling it was given"


@pytest.mark.parametrize("change, rule", [
    ({"m_l1": 24}, "m_l1=24 must be a multiple of 16"),
    ({"k_l1": 48}, "k_l1=48 must be a multiple of 32"),
    ({"n_block_num": 0}, "n_block_num=0 must be a positive integer"),
    ({"m_block_num": 9}, "m_block_num x n_block_num = 9 cores"),
    ({"m_l1": 512, "n_l1": 512, "k_l1": 512}, "UB needs"),
])
def test_weight_nz_310p_illegal_tiling_is_refused_naming_the_rule(change, rule):
    """A user's 310P WeightNz tiling is validated (it was silently replaced by the default
    when of the wrong type, and ran into a buffer overflow when too large)."""
    import npusim
    from npusim.ops.weight_quant_program_weight_nz import WeightNzProgramTiling

    kw = wqbmm_call(1, 40, 256, 96, offset=True, bias=True, trans=True)
    kt = dataclasses.replace(WeightNzProgramTiling(1, 1, 32, 64, 128), **change)
    with pytest.raises(ValueError, match=rule.replace("(", r"\(")):
        npusim.simulate("weight_quant_batchmatmul", WEIGHT_NZ_SOC, tiling=kt, **kw)
    with pytest.raises(TypeError, match="needs a WeightNzProgramTiling"):
        npusim.simulate("weight_quant_batchmatmul", WEIGHT_NZ_SOC, tiling=(1, 1, 32), **kw)
    with pytest.raises(ValueError, match=rule.replace("(", r"\(")):  # the same fields as a dict
        npusim.simulate("weight_quant_batchmatmul", WEIGHT_NZ_SOC, tiling={
            f.name: getattr(kt, f.name) for f in dataclasses.fields(kt)}, **kw)
