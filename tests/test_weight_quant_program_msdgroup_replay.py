"""The MsdGroup kernel, run functionally: digit split on every AIV, per-cell exact int4 digit
matmuls, per-cell recombination atomically added into a zeroed fp32 workspace (applied in the
declared core_index_ascending order), bias and CAST_ROUND - the output is read from the
simulated GM and equals the numerics model (the oracle) bit for bit."""

import pytest
from _wqbmm_replay import check_replay, wqbmm_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _call(seed, m, k, n, xdt, g, off, bias, ip):
    return wqbmm_call(seed, m, k, n, xdt=xdt, wdt="int4", group=g, offset=off, bias=bias,
                      inner_precise=ip)


def _check(kw):
    return check_replay(kw, "MsdGroup", force=True)


@pytest.mark.parametrize(
    ("m", "k", "n", "xdt", "g", "off", "bias", "ip"),
    [
        (16, 4096, 4096, "float16", 128, True, True, 0),  # 11 K ranges: the atomic order matters
        (1, 4096, 1024, "bfloat16", 128, False, True, 0),
        (8, 2048, 2048, "bfloat16", 64, True, True, 1),  # fp16 recombination chain
        (4, 4096, 1024, "float16", 128, True, False, 1),
    ],
)  # fmt: skip
def test_msd_group_replay_equals_oracle(m, k, n, xdt, g, off, bias, ip):
    r = _check(_call(m + k + n, m, k, n, xdt, g, off, bias, ip))
    assert r.tiling.cube_block_dim_k >= 1


def test_msd_group_partials_from_many_k_ranges():
    """The decode shape splits K over 11 AICs: 11 partials per column, whose fp32 sum depends
    on the order they are added in."""
    r = _check(_call(5, 16, 4096, 4096, "float16", 128, False, False, 0))
    assert r.tiling.cube_block_dim_k >= 3


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    g=st.sampled_from([64, 128]),
    m=st.integers(1, 16),
    k_groups=st.integers(2, 24),
    n_blocks=st.integers(1, 4),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    ip=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**16),
)
def test_msd_group_replay_property(g, m, k_groups, n_blocks, xdt, off, bias, ip, seed):
    """Random legal MsdGroup calls (M <= g / 8, K a multiple of the group, N of 64)."""
    m = min(m, g // 8)
    _check(_call(seed, m, g * k_groups, 256 * n_blocks, xdt, g, off, bias, ip))


@pytest.mark.parametrize(("m", "k", "n", "g", "off", "bias"),
                         [(1, 256, 128, 128, False, False), (8, 1024, 512, 64, True, True)])
def test_msd_group_replay_with_an_nz_weight(m, k, n, g, off, bias):
    """An int4 weight packed to FRACTAL_NZ (npu_format_cast then npu_convert_weight_to_int4pack,
    as torch_npu callers do): the cube's copies read the NZ fractals as stored and the output
    still equals the oracle bit for bit."""
    import numpy as np

    from npusim.torch_npu import npu_convert_weight_to_int4pack, npu_format_cast

    kw = _call(m + k, m, k, n, "float16", g, off, bias, 0)
    rng = np.random.default_rng(k + n)
    vals = rng.integers(-8, 8, (k, n)).astype(np.int32)
    kw["weight"] = npu_convert_weight_to_int4pack(npu_format_cast(vals, 29))
    r = _check(kw)
    copies = {i.params.get("transform") for c in r.run.kernel.cores for i in c.instrs
              if i.name.startswith("B GM->L1")}
    assert copies == {"nz2nd"}
