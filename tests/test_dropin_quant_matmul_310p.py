"""npu_quant_matmul on the Atlas inference series (310P): the dequantising L0C -> UB DataCopy.

The 310P kernels (ops-nn QuantBatchMatmulV3 on dav-m200) have no FixPipe: the int32 L0C tile is
dequantised on its way to UB (DEQ16 / VDEQ16 -> float16, DEQ8 / VDEQ8 -> int8). The published
parts (asc-devkit DataCopy L0C -> UB tables 5 / 6: M = the parameter's low 32 bits as float32,
offset added after src * M, sign bit 46) are pinned exactly; the roundings are the descriptor's
declared model ``numerics.l0c_to_ub_dequant = fixpipe_equivalent``, checked here against an
independent float64 oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
from _specs import spec_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu as tn
from npusim.isa.semantics import supplied_semantics
from npusim.numerics.l0c_dequant import l0c_to_ub_dequant
from npusim.ops.quant_matmul import reference_quant_matmul
from npusim.ops.trans_quant_param import reference_trans_quant_param

SOC = "Ascend310P3"


def _oracle(acc: np.ndarray, params: np.ndarray, out: str) -> np.ndarray:
    """Independent model: float64 arithmetic, numpy's RNE casts, explicit saturation."""
    u = np.asarray(params).view(np.uint64)
    m = (u & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32).astype(np.float64)
    prod = np.clip(acc.astype(np.float32).astype(np.float64) * m, -3.4028234663852886e38,
                   3.4028234663852886e38).astype(np.float32)
    if out == "float16":
        return np.clip(prod, -65504, 65504).astype(np.float16)
    off = ((u >> np.uint64(37)) & np.uint64(0x1FF)).astype(np.int64)
    off = np.where(off >= 256, off - 512, off)
    s9 = np.clip(np.rint(prod.astype(np.float64)), -256, 255)
    return np.clip(s9 + off, -128, 127).astype(np.int8)


def _view(y: np.ndarray) -> np.ndarray:
    return y.view(np.uint16 if y.dtype == np.float16 else np.uint8)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["float16", "int8"]),
       st.integers(-8, 14))
def test_dequant_copy_matches_an_independent_oracle(seed, out, exp):
    """DEQ16 / DEQ8 of int32 tiles spanning the full range (float(acc) rounds above 2^24, fp16
    saturates, the s9 clamp comes before the offset) equal the float64 oracle bit for bit."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2**31, 2**31, (4, 16), dtype=np.int64).astype(np.int32)
    acc[0, :4] = (0, 1, -1, 2**24 + 1)
    scale = (rng.uniform(0.5, 2.0, 16) * 2.0 ** (-exp - 16)).astype(np.float32)
    offset = rng.uniform(-300, 300, 16).astype(np.float32) if out == "int8" else None
    params = reference_trans_quant_param(scale, offset, 0)
    got = l0c_to_ub_dequant(acc, params, out)
    assert np.array_equal(_view(got), _view(_oracle(acc, params, out)))


def test_m_is_the_whole_low_32_bits_unlike_fixpipe():
    """Published: the copy reads bits 0..31 as the float32 M (FixPipe on A2 keeps bits 13..31),
    so an int64 scale with low mantissa bits set gives different bits on 310P and on A2."""
    m = np.float32(1.0009765)  # low 13 mantissa bits non-zero
    q = np.array([int(m.view(np.uint32)) | (1 << 46)], np.uint64).view(np.int64)
    x1 = np.full((1, 1), 127, np.int8)
    x2 = np.full((1, 16), 127, np.int8)
    acc = np.full((1, 16), 127 * 127, np.int32)
    p310 = reference_quant_matmul(x1, x2, q, output_dtype="float16", soc=SOC)
    a2 = reference_quant_matmul(x1, x2, q, output_dtype="float16", soc="Ascend910B2")
    assert np.array_equal(_view(p310), _view(np.float16(np.float32(acc) * m)))
    assert not np.array_equal(_view(p310), _view(a2))


@pytest.mark.parametrize("bits, what", [(1 << 32, "shift"), (1 << 36, "mode control"),
                                        (1 << 47, "ReLU")])
def test_parameter_fields_outside_the_model_are_refused(bits, what):
    q = np.array([0x3F800000 | (1 << 46) | bits], np.uint64).view(np.int64)
    with pytest.raises(NotImplementedError, match=r"bit|shift"):
        l0c_to_ub_dequant(np.ones((1, 16), np.int32), q, "float16")


def test_unsigned_int8_result_is_refused():
    q = np.array([0x3F800000], np.uint64).view(np.int64)  # bit 46 = 0: uint8 saturation
    with pytest.raises(NotImplementedError, match="bit 46"):
        l0c_to_ub_dequant(np.ones((1, 16), np.int32), q, "int8")


_CASE = st.tuples(
    st.integers(1, 70), st.integers(1, 200), st.integers(1, 90),
    st.sampled_from(["float16", "int8"]), st.booleans(), st.booleans(), st.booleans(),
    st.sampled_from(["float32", "int64"]), st.integers(0, 2**32 - 1))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CASE)
def test_program_replays_the_reference_bit_for_bit(case):
    """simulate('quant_matmul') on 310P: the typed program (DEQ / VDEQ copy, parameters staged
    GM -> UB) gives the reference's bits, supplies no value semantics of its own, names the
    declared model and has the cycles of the timing-only run."""
    m, k, n, out, per_channel, with_bias, trans, sdt, seed = case
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, (m, k)).astype(np.int8)
    x2 = rng.integers(-128, 128, (k, n)).astype(np.int8)
    if trans:
        x2 = np.ascontiguousarray(x2.T).T
    cnt = n if per_channel else 1
    scale = rng.uniform(1e-5, 1e-2, cnt).astype(np.float32)
    offset = rng.uniform(-20, 20, cnt).astype(np.float32) if out == "int8" else None
    if sdt == "int64":
        scale, offset = reference_trans_quant_param(scale, offset, 0), None
    bias = rng.integers(-5000, 5000, n).astype(np.int32) if with_bias else None
    kw = dict(offset=offset, bias=bias, output_dtype=out)
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    res = npusim.simulate("quant_matmul", soc=SOC, x1=x1, x2=x2, scale=scale, **kw)
    assert np.array_equal(_view(res.outputs), _view(want))
    assert not supplied_semantics(res.run.kernel)
    assert res.run.kernel.meta["declared_l0c_to_ub_dequant_model"] == "fixpipe_equivalent"
    specs = {name: spec_of(v) for name, v in (("x1", x1), ("x2", x2), ("scale", scale),
                                              ("offset", offset), ("bias", bias))}
    timing = npusim.simulate("quant_matmul", soc=SOC, output_dtype=out, **specs)
    assert timing.cycles == res.cycles


def test_torch_npu_api_gives_the_program_bits_batched():
    """The torch_npu-named API on 310P returns the same bits as simulate for a batched call."""
    rng = np.random.default_rng(11)
    x1 = rng.integers(-128, 128, (3, 17, 64)).astype(np.int8)
    x2 = rng.integers(-128, 128, (3, 64, 40)).astype(np.int8)
    scale = rng.uniform(1e-4, 1e-2, 40).astype(np.float32)
    offset = np.float32([1.5])
    api = tn.npu_quant_matmul(x1, x2, scale, offset=offset, soc=SOC)
    res = npusim.simulate("quant_matmul", soc=SOC, x1=x1, x2=x2, scale=scale, offset=offset)
    assert api.dtype == np.int8 and np.array_equal(_view(res.outputs), _view(api))


def test_batched_transposed_nz_weight_as_the_310p_docs_pass_it():
    """The 310P docs' layout: x2 (batch, k, n) transposed to (batch, n, k), cast to NZ, passed
    transposed back; the result equals the ND call's bits (the NZ view's last two dims swap,
    not all three)."""
    rng = np.random.default_rng(2)
    x1 = rng.integers(-4, 4, (3, 5, 64)).astype(np.int8)
    x2 = rng.integers(-4, 4, (3, 64, 48)).astype(np.int8)
    nz = tn.npu_format_cast(np.ascontiguousarray(np.swapaxes(x2, 1, 2)), 29)
    q = reference_trans_quant_param(rng.uniform(1e-3, 1e-1, 48).astype(np.float32), None, 0)
    got = tn.npu_quant_matmul(x1, np.swapaxes(nz, 1, 2), q, output_dtype="float16", soc=SOC)
    want = tn.npu_quant_matmul(x1, x2, q, output_dtype="float16", soc=SOC)
    assert got.shape == (3, 5, 48) and np.array_equal(_view(got), _view(want))


def _pp_call(m=1024, k=64, n=48, batch=(), per_channel=True, out="float16", seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, (*batch, m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    scale = (rng.random(n if per_channel else 1) * 1e-3).astype(np.float32)
    kw = {"bias": rng.integers(-3000, 3000, n, dtype=np.int32), "output_dtype": out}
    if out == "int8":
        kw["offset"] = np.zeros(n if per_channel else 1, np.float32)
    return x1, x2, scale, kw


def test_pp_matmul_path_runs_its_program_at_the_default_fidelity(monkeypatch):
    """M >= 1024 with a bias runs the pp_matmul kernel on 310P (ops-nn aclnn isPpMatmul):
    simulate() runs its program (ops/quant_matmul_pp_program.py) and the default API fidelity
    returns that program's bits, equal to the reference's bias-in-L0C + dequantising-copy chain
    (one matrix, an (n,) scale, float16 output); without a bias the BmmDequant program runs."""
    from npusim.torch_npu import _state

    x1, x2, scale, kw = _pp_call()
    res = npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, scale=scale, **kw)
    assert "PpMatmul" in res.kernel_name and res.run.kernel.name == "quant_matmul_pp"
    monkeypatch.delenv("NPUSIM_FIDELITY", raising=False)
    monkeypatch.setattr(_state, "_fidelity", None)
    api = tn.npu_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    got = tn.npu_quant_matmul(x1, x2, scale, soc=SOC, fidelity="reference", **kw)
    assert _view(api).tolist() == _view(got).tolist() == _view(np.asarray(res.outputs)).tolist()
    ok = npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, scale=scale,
                         output_dtype="float16")  # no bias: not the pp_matmul path
    assert ok.outputs.shape == (1024, 48) and ok.run.kernel.name == "quant_matmul"


@pytest.mark.parametrize(("kw", "arg"), [({"batch": (2,)}, "x1"),
                                         ({"per_channel": False}, "scale"),
                                         ({"out": "int8"}, "output_dtype")])
def test_pp_matmul_values_it_does_not_define_are_refused(kw, arg):
    """The kernel reads scale and bias at batch * n + column and writes float16 only."""
    x1, x2, scale, call = _pp_call(**kw)
    with pytest.raises(NotImplementedError, match=f"^{arg}: .*pp_matmul"):
        tn.npu_quant_matmul(x1, x2, scale, soc=SOC, fidelity="reference", **call)
    with pytest.raises(NotImplementedError, match=f"^{arg}: .*pp_matmul"):
        npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, scale=scale, **call)


def test_an_nz_x2_passed_untransposed_is_not_the_pp_matmul_path(monkeypatch):
    """aclnn transposes an ND x2 (so it always meets pp_matmul's transposed-x2 condition) but
    keeps an NZ x2 as passed: an untransposed NZ x2 with M >= 1024 and a bias takes the other
    kernel, which the program runs (a per-tensor scale is fine there)."""
    from npusim.torch_npu import _state

    x1, x2, scale, kw = _pp_call(per_channel=False)
    nz = tn.npu_format_cast(x2, 29, soc=SOC, fidelity="reference")
    monkeypatch.delenv("NPUSIM_FIDELITY", raising=False)
    monkeypatch.setattr(_state, "_fidelity", None)
    got = tn.npu_quant_matmul(x1, nz, scale, soc=SOC, **kw)
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)  # the chain, no API dispatch
    assert _view(got).tolist() == _view(want).tolist()
