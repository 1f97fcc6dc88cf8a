"""The CustomNzSplitK kernel (FRACTAL_NZ transposed int8 weight), run functionally: the NZ
weight windows land in UB in logical order, the typed dequant, the fp16 / bf16 cube blocks and
the core-ordered reduction of the K partials (scale for bf16, bias, CAST_ROUND) give the output,
read from the simulated GM; it equals the numerics model (the oracle) bit for bit."""

import dataclasses

from _wqbmm_replay import B2, args_of, check_replay, nz_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(65, 160),
    k64=st.integers(1, 4),
    n64=st.integers(1, 4),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    split=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_custom_nz_split_k_replay_property(m, k64, n64, xdt, off, bias, split, seed):
    k, n = 256 * k64, 64 * n64
    kw = nz_call(seed, m, k, n, xdt, offset=off, bias=bias)
    args = args_of(kw)
    kt = default_tiling(args, B2, "CustomNzSplitK")
    if split:  # two K blocks on two AICs: the post pass adds the partials in core order
        kt = dataclasses.replace(kt, single_core_k=k // 2, single_k=kt.cube_base_k,
                                 cube_block_dim_k=2)
    check_replay(kw, "CustomNzSplitK", tiling=kt)
