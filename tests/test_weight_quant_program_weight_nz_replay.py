"""The 310P WeightNz kernel (coupled AI Core), run functionally: the NZ weight tiles dequantised
in fp16 on the vector unit, the bias broadcast UB -> L0C before the first Mmad, the fp16 cube in
the declared model and the saturating Cast out of L0C give the output, read from the simulated
GM; it equals the declared 310P oracle (``numerics_weight_nz``) bit for bit."""

from _wqbmm_replay import check_replay, wqbmm_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SOC = "Ascend310P3"


def test_weight_nz_replay_large_bias_values():
    """A bias large enough to dominate the sum: it is the accumulator's initial value."""
    kw = wqbmm_call(3, 40, 512, 192, offset=True, bias=True, trans=True)
    kw["bias"] = kw["bias"] * 1000
    r = check_replay(kw, "WeightNz", soc=SOC)
    names = {i.name for c in r.run.kernel.cores for i in c.instrs}
    assert "bias UB->L0C broadcast" in names and "Add bias" not in names


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 200),
    k32=st.integers(1, 12),
    n16=st.integers(1, 24),
    off=st.booleans(),
    bias=st.booleans(),
    trans=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_weight_nz_replay_property(m, k32, n16, off, bias, trans, seed):
    """Random legal 310P calls (fp16 x, int8 per-channel weight in either stored layout, taken as
    the (N, K) NZ weight as declared; offset, bias): every vector instruction but the Brcb (kept
    for its time) is typed and the replayed bits equal the oracle's."""
    kw = wqbmm_call(seed, m, 32 * k32, 16 * n16, offset=off, bias=bias, trans=trans)
    check_replay(kw, "WeightNz", soc=SOC)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 160),
    kg=st.integers(2, 6),
    g=st.sampled_from([32, 64, 96, 128]),
    n16=st.integers(1, 16),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_a2_weight_nz_replay_property(m, kg, g, n16, xdt, off, bias, seed):
    """A2 (Ascend910B2) WeightNz - ops-nn's custom_weight_nz kernel, whose dequant chain is
    Custom's (fp16: Add then Mul in fp16; bf16: fp32 Add / Mul, one Cast RINT to bf16) and whose
    cube takes the bias as its initial value - selected for an int8 FRACTAL_NZ transposed
    per-group weight (Custom refuses a transposed NZ per-group weight): the program's replayed
    bits equal the oracle's, no vector value closure."""
    import numpy as np
    from _wqbmm_replay import B2

    from npusim.ops.weight_quant_batchmatmul import transpose_nz
    from npusim.torch_npu import npu_format_cast

    k, n = g * kg, 16 * n16
    kw = wqbmm_call(seed, m, k, n, xdt=xdt, group=g, offset=off, bias=bias, trans=True)
    w_nk = np.ascontiguousarray(np.asarray(kw["weight"]).T)  # the stored (N, K) weight
    kw["weight"] = transpose_nz(npu_format_cast(w_nk, 29))
    r = check_replay(kw, "WeightNz", soc=B2)
    assert "A2/A3 WeightNz" in " ".join(r.notes)
