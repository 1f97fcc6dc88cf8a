"""The Msd kernel, run functionally: its output is read from the simulated GM after every typed
instruction ran through the semantics table (digit split, exact int8 cube, recombination), and
equals the numerics model (the oracle) bit for bit."""

import numpy as np
import pytest
from _wqbmm_replay import check_replay, wqbmm_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _call(seed, m, k, n, xdt, off, bias, trans, scale_x=1.0):
    return wqbmm_call(seed, m, k, n, xdt=xdt, offset=off, bias=bias, trans=trans,
                      x_scale=scale_x)


def _check(kw):
    return check_replay(kw, "Msd")


@pytest.mark.parametrize(
    ("m", "k", "n", "xdt", "off", "bias", "trans"),
    [
        (1, 256, 128, "float16", False, False, False),
        (3, 96, 64, "bfloat16", True, True, False),  # K < 128: Div by amax; sequential row sum
        (5, 32, 64, "float16", True, False, True),  # K < 64: ReduceSum
        (8, 4096, 128, "float16", True, False, False),  # K >= 4096: halving row sum
        (16, 6400, 96, "bfloat16", True, True, False),  # a tail chunk in the row sum
        (64, 160, 320, "float16", True, True, True),
    ],
)  # fmt: skip
def test_msd_replay_equals_oracle(m, k, n, xdt, off, bias, trans):
    _check(_call(m * 7 + k, m, k, n, xdt, off, bias, trans))


def test_msd_high_precision_variant_replays():
    """The white-listed HIGH_PRECISION shape takes its row sum from the reconstructed digits."""
    r = _check(_call(36, 36, 8192, 1280, "float16", True, False, True))
    assert r.run.kernel.meta["msd_variant"] == "HIGH_PRECISION"


def test_msd_replay_large_and_tiny_values():
    """x spanning the fp16 range (amax near 65504, and tiny rows) replays exactly."""
    kw = _call(11, 6, 192, 64, "float16", True, True, False, scale_x=20000.0)
    kw["x"][1] = (kw["x"][1].astype(np.float32) * 1e-7).astype(np.float16)
    kw["x"][1, 0] = np.float16(6e-5)
    _check(kw)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 64),
    k32=st.integers(1, 24),
    n32=st.integers(1, 8),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    trans=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_msd_replay_property(m, k32, n32, xdt, off, bias, trans, seed):
    """Random legal Msd shapes (M <= 64, K and N multiples of 32), both x dtypes, offset,
    bias and transposed weight: the replayed bits equal the oracle's."""
    _check(_call(seed, m, 32 * k32, 32 * n32, xdt, off, bias, trans))


@pytest.mark.parametrize(("m", "rows", "off", "bias"), [(12, 5, True, True), (9, 8, False, True),
                                                        (16, 8, True, False)])
def test_msd_recombination_in_row_passes_replays(m, rows, off, bias):
    """The recombination runs in passes of ``post_process_base_m`` rows (the last one shorter):
    each pass's products, statistics and output rows are its own, and the bits equal the
    oracle's."""
    import dataclasses

    from _wqbmm_replay import B2, args_of

    from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling
    from npusim.runner import resolve_soc

    kw = _call(m * 3 + rows, m, 256, 192, "float16", off, bias, False)
    kt = dataclasses.replace(default_tiling(args_of(kw), resolve_soc(B2), "Msd"),
                             post_process_base_m=rows)
    r = check_replay(kw, "Msd", tiling=kt)
    stores = [i for c in r.run.kernel.cores if c.kind == "aiv" for i in c.instrs
              if i.name == "y UB->GM"]
    assert {i.reads[0].shape[0] for i in stores} == {rows, m - (-(-m // rows) - 1) * rows}
