"""The MsdSplitK kernel, run functionally: its output is read from the simulated GM after every
typed instruction ran (block digit split, exact integer cube, per-block recombination), and
equals the numerics model (the oracle) bit for bit - per-channel int8 / int4 K blocks,
per-group int4 with both inner_precise modes, offset, bias, fp16 / bf16 x."""

import pytest
from _wqbmm_replay import check_replay, wqbmm_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _call(seed, m, k, n, xdt, wdt, g, off, bias, trans, ip=0):
    return wqbmm_call(seed, m, k, n, xdt=xdt, wdt=wdt, group=g, offset=off, bias=bias,
                      trans=trans, inner_precise=ip)


def _check(kw):
    return check_replay(kw, "MsdSplitK", force=True)


@pytest.mark.parametrize(
    ("m", "k", "n", "xdt", "wdt", "g", "off", "bias", "trans", "ip"),
    [
        (4, 512, 128, "float16", "int4", 0, True, True, True, 0),  # per-channel int4
        (3, 14336, 64, "bfloat16", "int8", 0, True, True, False, 0),  # int8, K > 13696: blocks
        (3, 1024, 256, "bfloat16", "int4", 128, True, True, False, 0),
        (3, 1024, 256, "float16", "int4", 64, True, False, False, 1),  # fp16 recombination
        (8, 8192, 128, "bfloat16", "int4", 128, False, True, False, 1),  # several passes, packs
    ],
)  # fmt: skip
def test_msd_split_k_replay_equals_oracle(m, k, n, xdt, wdt, g, off, bias, trans, ip):
    _check(_call(m + k + n, m, k, n, xdt, wdt, g, off, bias, trans, ip))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    per_group=st.booleans(),
    m=st.integers(1, 16),
    k_units=st.integers(1, 6),
    n64=st.integers(1, 3),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    ip=st.sampled_from([0, 1]),
    g=st.sampled_from([64, 128]),
    seed=st.integers(0, 2**16),
)
def test_msd_split_k_replay_property(per_group, m, k_units, n64, xdt, off, bias, ip, g, seed):
    """Random legal MsdSplitK calls (per-group int4 !transB, M <= g / 8; per-channel int4
    transB with N >= 2M): the replayed bits equal the oracle's."""
    if per_group:
        m = min(m, g // 8)
        kw = _call(seed, m, g * (k_units + 1), 64 * n64, xdt, "int4", g, off, bias, False, ip)
    else:
        kw = _call(seed, m, 128 * k_units, max(64 * n64, 2 * m), xdt, "int4", 0, off, bias,
                   True)
    _check(kw)
