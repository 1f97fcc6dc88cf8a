"""Custom and A2/A3 WeightNz with a FRACTAL_NZ weight read its NZ fractals as stored: every
weight GM -> UB copy is an ``nz`` / ``nz2nd`` DataCopy of one 32 B-wide run per K block (the
ops-nn custom_weight_nz WeightCopyIn: blockCount = K / C0 runs of N x 32 B), and the replayed
output still equals the numerics model bit for bit."""

import numpy as np
from _wqbmm_replay import B2, check_replay, wqbmm_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.ops.weight_quant_batchmatmul import transpose_nz
from npusim.torch_npu import npu_convert_weight_to_int4pack, npu_format_cast


def _nz_call(seed, m, k, n, *, wdt, trans, **kw):
    call = wqbmm_call(seed, m, k, n, wdt=wdt, trans=trans, **kw)
    vals = np.random.default_rng(seed + 1).integers(
        *((-8, 8) if wdt == "int4" else (-128, 128)), (k, n))
    if wdt == "int4":
        call["weight"] = npu_convert_weight_to_int4pack(npu_format_cast(vals.astype(np.int32), 29))
    elif trans:
        call["weight"] = transpose_nz(npu_format_cast(np.ascontiguousarray(vals.T, np.int8), 29))
    else:
        call["weight"] = npu_format_cast(vals.astype(np.int8), 29)
    return call


def _weight_copies(r):
    return [i for c in r.run.kernel.cores for i in c.instrs if i.name.startswith("weight GM->UB")]


def _check_nz_windows(r, n):
    copies = _weight_copies(r)
    assert copies and {i.params.get("transform") for i in copies} <= {"nz", "nz2nd"}
    n1 = -(-n // 16) * 16
    for i in copies:  # one run of the strip's width x 32 B per K block, N1 x 32 B apart
        src = i.reads[0]
        assert src.tensor == "w" and src.row_stride_bytes == n1 * 32
        assert src.shape[1] * {"int8": 1, "int4": 0.5}[src.dtype] % 32 == 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 96),
    kb=st.integers(0, 8),
    n16=st.integers(1, 24),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    wdt=st.sampled_from(["int8", "int4"]),
    trans=st.booleans(),
    g=st.sampled_from([0, 64, 128]),
    off=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_custom_reads_nz_fractals(m, kb, n16, xdt, wdt, trans, g, off, bias, seed):
    """Per-channel int8 NZ weights on Custom (either layout) and per-group int8 / int4 ones
    (non-transposed, group 64 / 128, N a multiple of 64 for int4: seed 002, Custom's rules)."""
    g = g or (64 if wdt == "int4" else 0)
    trans = trans and not g
    k, n = 128 * (kb + 2), 16 * n16 * (4 if wdt == "int4" else 1)
    kw = _nz_call(seed, m, k, n, wdt=wdt, trans=trans, xdt=xdt, offset=off, bias=bias, group=g)
    _check_nz_windows(check_replay(kw, "Custom", force=True, soc=B2), n)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 160),
    kg=st.integers(2, 6),
    g=st.sampled_from([64, 128]),
    n16=st.integers(1, 16),
    xdt=st.sampled_from(["float16", "bfloat16"]),
    off=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_weight_nz_reads_nz_fractals(m, kg, g, n16, xdt, off, bias, seed):
    """A2 WeightNz (a transposed int8 NZ per-group weight): NZ windows, bits equal."""
    k, n = g * kg, 16 * n16
    kw = _nz_call(seed, m, k, n, wdt="int8", trans=True, xdt=xdt, group=g, offset=off, bias=bias)
    r = check_replay(kw, "WeightNz", soc=B2)
    _check_nz_windows(r, n)
    assert "NZ fractals as stored" in " ".join(r.notes)
