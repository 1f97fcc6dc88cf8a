"""The Fixpipe kernel (int64 antiquant scale), run functionally: the identity matmul with the
offset in the bias table, FixPipe VDEQF16 with the per-column parameters in FB, the fp16 matmul
with the bias as initial value and FixPipe F322F16 give the output, read from the simulated GM;
it equals the numerics model (the oracle) bit for bit."""

from _wqbmm_replay import check_replay, fixpipe_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _run(seed, m, k, n, off, bias):
    return check_replay(fixpipe_call(seed, m, k, n, off, bias), "Fixpipe", typed_kind="fix")


def test_fixpipe_replay_partial_n_tile():
    """Tiles narrower than base_n (the identity read as a window, strided L1 rows)."""
    r = _run(1, 24, 384, 320, True, True)
    t = r.tiling
    assert t.single_core_n < t.base_n or t.single_core_n % t.base_n


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 96), k64=st.integers(1, 12), n64=st.integers(1, 8),
       off=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_fixpipe_replay_property(m, k64, n64, off, bias, seed):
    _run(seed, m, 64 * k64, 64 * n64, off, bias)
