"""Mix matmul programs (AIC + 2 AIV): the quant_matmul AIV dequant epilogue, split-K with its
declared reduction order, and batched inputs. Outputs are compared bit for bit (uint views)."""

from __future__ import annotations

from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.hw import load_soc
from npusim.ops.matmul import reference_matmul
from npusim.ops.matmul_tiling import (
    MatmulTiling,
    default_matmul_tiling,
    enumerate_matmul_tilings,
    validate_matmul_tiling,
)
from npusim.ops.quant_matmul import reference_quant_matmul
from npusim.spec import spec

B2 = load_soc("Ascend910B2")


def _bits(x: np.ndarray) -> list:
    x = np.asarray(x)
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize]).tolist()


def _qargs(rng, m, k, n, out, *, pertoken=False, bias=None, scale_dtype=np.float32,
           scale_len=None):
    x1 = rng.integers(-128, 128, (m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    scale = rng.uniform(1e-4, 3e-3, scale_len or n).astype(scale_dtype)
    kw = {"x1": x1, "x2": x2, "scale": scale, "output_dtype": out}
    if pertoken:
        kw["pertoken_scale"] = rng.uniform(0.25, 4.0, m).astype(np.float32)
    if bias == "int32":
        kw["bias"] = rng.integers(-50000, 50000, n).astype(np.int32)
    elif bias is not None:
        kw["bias"] = (rng.standard_normal(n) * 30).astype(bias)
    return kw


# -- AIV dequant epilogue -------------------------------------------------------------------------

_VECTOR_CASES = [
    ("bfloat16", False, None, np.float32, None),
    ("bfloat16", False, "int32", ml_dtypes.bfloat16, None),
    ("bfloat16", True, np.float32, np.float32, None),
    ("bfloat16", False, ml_dtypes.bfloat16, np.float32, 1),
    ("float16", True, None, np.float32, None),
    ("float16", True, np.float32, np.float32, 1),
    ("float16", True, "int32", np.float32, None),
]


@pytest.mark.parametrize(("out", "pertoken", "bias", "sdt", "slen"), _VECTOR_CASES)
def test_vector_epilogue_program_equals_reference(out, pertoken, bias, sdt, slen):
    """bf16 output / per-token scale: the AIC's int32 tiles go through the GM workspace to the
    AIVs (Cast, Mul scale, Mul pertoken, Add bias, Cast RINT) and equal the reference bit for
    bit, under the default tiling and one with several tiles per core (ring slots reused)."""
    rng = np.random.default_rng(11)
    m, k, n = 150, 192, 176
    kw = _qargs(rng, m, k, n, out, pertoken=pertoken, bias=bias, scale_dtype=sdt,
                scale_len=slen)
    want = reference_quant_matmul(**kw)
    many = MatmulTiling(base_m=32, base_n=64, base_k=128, single_core_m=96, single_core_n=128,
                        single_core_k=k, m_dim=2, n_dim=2, in_bits=8, out_bits=16)
    for t in (None, many):
        r = npusim.simulate("quant_matmul", B2, t, **kw)
        assert r.kernel_name.startswith("quant_matmul (VECTOR")
        assert _bits(r.outputs) == _bits(want)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 90), k=st.integers(1, 300), n=st.integers(1, 90),
       pick=st.floats(0, 1), pertoken=st.booleans(), seed=st.integers(0, 2**16))
def test_vector_epilogue_property(m, k, n, pick, pertoken, seed):
    """Any shape, any legal tiling: the AIV epilogue program equals the reference."""
    rng = np.random.default_rng(seed)
    kw = _qargs(rng, m, k, n, "bfloat16", pertoken=pertoken, bias=np.float32)
    tilings = list(enumerate_matmul_tilings(m, k, n, "int8", "bfloat16", B2,
                                            bases=((16, 16), (32, 32), (16, 64), (64, 32))))
    t = tilings[min(len(tilings) - 1, int(pick * len(tilings)))]
    r = npusim.simulate("quant_matmul", B2, t, **kw)
    assert _bits(r.outputs) == _bits(reference_quant_matmul(**kw))


def test_vector_epilogue_timing_only_uses_the_aivs():
    """A timing-only run builds the same mix kernel: AIV vector time appears and the AIVs'
    ring handshake (more tiles per core than the cross-core counter limit) does not deadlock."""
    t = MatmulTiling(base_m=16, base_n=16, base_k=128, single_core_m=96, single_core_n=64,
                     single_core_k=256, m_dim=1, n_dim=1, in_bits=8, out_bits=16)
    r = npusim.simulate("quant_matmul", B2, t, x1=spec((96, 256), "int8"),
                        x2=spec((256, 64), "int8"), scale=spec((64,), "float32"),
                        pertoken_scale=spec((96,), "float32"), output_dtype="float16")
    assert not r.run.functional
    busy = r.pipe_busy()
    assert busy[("aiv0", "V")] > 0 and busy[("aiv1", "V")] > 0
    assert r.run.kernel.meta["workspace_slots"] == 2


# -- split-K --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "out"), [("float16", "float16"), ("bfloat16", "float32"),
                                            ("bfloat16", "bfloat16")])
def test_split_k_matmul_equals_the_declared_model(dtype, out):
    """fp16 / bf16 split-K: the AIV reduction of the K-slice partials equals reference_matmul
    with the same single_core_k (declared order) bit for bit; that model is not the unsplit
    fp32 sum."""
    from npusim.numerics import np_dtype

    rng = np.random.default_rng(2)
    m, k, n = 40, 480, 72
    a = rng.standard_normal((m, k)).astype(np.float32).astype(np_dtype(dtype))
    b = rng.standard_normal((k, n)).astype(np.float32).astype(np_dtype(dtype))
    bias = rng.standard_normal(n).astype(np.float32)
    t = MatmulTiling(base_m=32, base_n=48, base_k=64, single_core_m=32, single_core_n=48,
                     single_core_k=192, m_dim=2, n_dim=2, k_dim=3, in_bits=16,
                     out_bits=16 if out != "float32" else 32)
    r = npusim.simulate("matmul", B2, t, a=a, b=b, bias=bias, out_dtype=out)
    want = reference_matmul(a, b, bias=bias, out_dtype=out, single_core_k=192)
    assert _bits(r.outputs) == _bits(want)
    # the split model is a different fp32 sum from the unsplit one (seen before any rounding)
    split32 = reference_matmul(a, b, bias=bias, out_dtype="float32", single_core_k=192)
    assert _bits(split32) != _bits(reference_matmul(a, b, bias=bias, out_dtype="float32"))
    sk = r.run.kernel.meta["split_k"]
    assert sk["reduction_order"] == B2.numerics.split_k_reduction_order == "core_index_ascending"
    assert (sk["k_dim"], sk["single_core_k"]) == (3, 192)


def test_split_k_adds_partials_in_ascending_core_order():
    """Partials 2^24, 1, 1 (slices 0, 1, 2): ascending order gives (2^24 + 1) + 1 = 2^24 in fp32
    (both adds tie to even); adding the small partials first would give 2^24 + 2."""
    m = k0 = 16
    a = np.zeros((m, 3 * k0), np.float16)
    b = np.zeros((3 * k0, 16), np.float16)
    a[:, 0] = b[0, :] = 4096
    a[:, k0] = b[k0, :] = 1
    a[:, 2 * k0] = b[2 * k0, :] = 1
    t = MatmulTiling(base_m=16, base_n=16, base_k=16, single_core_m=16, single_core_n=16,
                     single_core_k=16, k_dim=3, out_bits=32)
    r = npusim.simulate("matmul", B2, t, a=a, b=b, out_dtype="float32")
    assert np.all(r.outputs == np.float32(2**24))
    assert np.float32(np.float32(2**24) + np.float32(2)) == 2**24 + 2  # the other order differs


@pytest.mark.parametrize("out", ["int32", "bfloat16"])
def test_split_k_quant_matmul_is_exact(out):
    """Integer partials add exactly: split-K quant_matmul (int32 output, or the AIV dequant after
    the reduction) equals the unsplit reference."""
    rng = np.random.default_rng(4)
    m, k, n = 48, 1024, 40
    kw = _qargs(rng, m, k, n, out, pertoken=out != "int32", bias="int32")
    if out == "int32":
        kw["scale"] = kw["scale"].astype(np.float32)
    t = MatmulTiling(base_m=48, base_n=48, base_k=128, single_core_m=48, single_core_n=48,
                     single_core_k=256, k_dim=4, in_bits=8, out_bits=32 if out == "int32" else 16)
    r = npusim.simulate("quant_matmul", B2, t, **kw)
    assert "split-K x4" in r.kernel_name
    assert _bits(r.outputs) == _bits(reference_quant_matmul(**kw))


@pytest.mark.parametrize("out", ["int8", "float16"])
def test_split_k_with_fixpipe_requant_runs_on_the_aivs(out):
    """REQ8 / DEQF16 after a split-K reduction (a float32 scale here; the uint64 parameters in
    tests/test_quant_matmul_split_k_requant.py): the AIVs apply FixPipe's formula, same bits."""
    from npusim.ops.quant_matmul import reference_quant_matmul

    rng = np.random.default_rng(0)
    kw = _qargs(rng, 32, 512, 32, out)
    t = MatmulTiling(base_m=32, base_n=32, base_k=128, single_core_m=32, single_core_n=32,
                     single_core_k=256, k_dim=2, in_bits=8, out_bits=8 if out == "int8" else 16)
    res = npusim.simulate("quant_matmul", B2, t, **kw)
    want = reference_quant_matmul(kw["x1"], kw["x2"], kw["scale"], output_dtype=out, soc=B2)
    u = np.uint8 if out == "int8" else np.uint16
    assert "split-K" in res.kernel_name
    assert np.array_equal(np.asarray(res.outputs).view(u), want.view(u))


def test_default_heuristic_splits_k_only_when_cores_would_idle():
    """Small M x N with a long K splits K over the idle cube cores; the calibration shapes, the
    coupled 310P and operators that cannot reduce on the AIVs keep k_dim = 1."""
    t = default_matmul_tiling(16, 8192, 64, "float16", "float16", B2, split_k=True)
    assert t.k_dim > 1 and t.m_dim * t.n_dim * t.k_dim <= 24
    assert t.single_core_k % t.base_k == 0 and t.k_dim * t.single_core_k >= 8192
    validate_matmul_tiling(t, 16, 8192, 64, "float16", "float16", B2)
    assert default_matmul_tiling(16, 8192, 64, "float16", "float16", B2).k_dim == 1
    assert default_matmul_tiling(2048, 2048, 2048, "float16", "float16", B2,
                                 split_k=True).k_dim == 1
    assert default_matmul_tiling(16, 1024, 64, "float16", "float16", B2, split_k=True).k_dim == 1
    p310 = load_soc("Ascend310P3")
    assert default_matmul_tiling(16, 8192, 64, "float16", "float16", p310,
                                 split_k=True).k_dim == 1
    r = npusim.simulate("matmul", B2, a=spec((16, 8192), "float16"), b=spec((8192, 64),
                        "float16"))
    assert r.tiling.k_dim > 1
    r8 = npusim.simulate("quant_matmul", B2, x1=spec((16, 8192), "int8"),
                         x2=spec((8192, 64), "int8"), scale=spec((64,), "float32"))
    assert r8.tiling.k_dim == 1  # REQ8 stays in FixPipe


def test_split_k_tiling_rules_name_the_field():
    t = MatmulTiling(base_m=16, base_n=16, base_k=16, single_core_m=16, single_core_n=16,
                     single_core_k=24, k_dim=2)
    with pytest.raises(ValueError, match="single_core_k"):
        validate_matmul_tiling(t, 16, 48, 16, "float16", "float16", B2)
    ok = replace(t, single_core_k=32)
    validate_matmul_tiling(ok, 16, 48, 16, "float16", "float16", B2)
    with pytest.raises(ValueError, match="k_dim"):
        validate_matmul_tiling(ok, 16, 48, 16, "float16", "float16", load_soc("Ascend310P3"))


# -- batched inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("sa", "sb"), [((3, 40, 64), (3, 64, 48)), ((2, 1, 40, 64), (3, 64, 48)),
                                        ((40, 64), (2, 64, 48))])
def test_batched_matmul_program(sa, sb):
    """Batched fp16 matmul (broadcast batch dims, transposed B): each output matrix equals the
    reference; batches are spread over the cube cores."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal(sa).astype(np.float16)
    bl = rng.standard_normal(sb).astype(np.float16)
    b = np.swapaxes(np.ascontiguousarray(np.swapaxes(bl, -1, -2)), -1, -2)
    r = npusim.simulate("matmul", B2, a=a, b=b)
    want = reference_matmul(a, b)
    assert r.outputs.shape == want.shape
    assert _bits(r.outputs) == _bits(want)


@pytest.mark.parametrize("out", ["int8", "bfloat16"])
def test_batched_quant_matmul_program(out):
    """Batched W8A8 with a (batch, 1, n) bias: FixPipe REQ8 (int32 bias per batch in BT) and the
    AIV epilogue (float bias per batch) equal the reference."""
    rng = np.random.default_rng(9)
    bsz, m, k, n = 3, 24, 128, 40
    x1 = rng.integers(-128, 128, (bsz, m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    scale = rng.uniform(1e-4, 3e-3, n).astype(np.float32)
    kw = {"x1": x1, "x2": x2, "scale": scale, "output_dtype": out}
    if out == "int8":
        kw["bias"] = rng.integers(-5000, 5000, (bsz, 1, n)).astype(np.int32)
        kw["offset"] = rng.uniform(-5, 5, n).astype(np.float32)
    else:
        kw["bias"] = (rng.standard_normal((bsz, 1, n)) * 10).astype(ml_dtypes.bfloat16)
    r = npusim.simulate("quant_matmul", B2, **kw)
    assert r.run.kernel.meta["batch"] == bsz
    assert _bits(r.outputs) == _bits(reference_quant_matmul(**kw))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 40), k=st.integers(17, 400), n=st.integers(1, 40),
       nbatch=st.integers(1, 3), pick=st.floats(0, 1), dtype=st.sampled_from(["float16",
                                                                              "bfloat16"]),
       seed=st.integers(0, 2**16))
def test_split_k_batched_matmul_property(m, k, n, nbatch, pick, dtype, seed):
    """Any shape, batch count and legal split-K tiling (from the enumeration): the program equals
    reference_matmul under the declared split-K model with the tiling's single_core_k."""
    from npusim.numerics import np_dtype

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((nbatch, m, k)).astype(np.float32).astype(np_dtype(dtype))
    b = rng.standard_normal((k, n)).astype(np.float32).astype(np_dtype(dtype))
    tilings = [t for t in enumerate_matmul_tilings(m, k, n, dtype, dtype, B2, k_dims=(2, 3, 5),
                                                   bases=((16, 16), (32, 32)))
               if t.k_dim > 1]
    if not tilings:  # K too short to give every slice a base K
        return
    t = tilings[min(len(tilings) - 1, int(pick * len(tilings)))]
    r = npusim.simulate("matmul", B2, t, a=a, b=b)
    want = reference_matmul(a, b, single_core_k=t.single_core_k)
    assert _bits(r.outputs) == _bits(want)


def test_vector_epilogue_single_row_batched_split_k():
    """m = 1 (the second AIV of each pair gets no rows but still frees the slot), a batch of 2
    with a per-batch fp32 bias, with and without split-K."""
    rng = np.random.default_rng(3)
    x1 = rng.integers(-128, 128, (2, 1, 512), dtype=np.int8)
    x2 = rng.integers(-128, 128, (2, 512, 40), dtype=np.int8)
    kw = {"x1": x1, "x2": x2, "scale": rng.uniform(1e-4, 1e-3, 40).astype(np.float32),
          "pertoken_scale": rng.uniform(0.5, 2, 1).astype(np.float32), "output_dtype": "float16",
          "bias": rng.standard_normal((2, 1, 40)).astype(np.float32)}
    want = reference_quant_matmul(**kw)
    split = MatmulTiling(base_m=16, base_n=32, base_k=128, single_core_m=1, single_core_n=40,
                         single_core_k=256, k_dim=2, in_bits=8, out_bits=16)
    for t in (None, split):
        assert _bits(npusim.simulate("quant_matmul", B2, t, **kw).outputs) == _bits(want)


def test_batched_matmul_on_the_coupled_310p():
    """Batches loop over the 310P AI Cores through the coupled (L0C -> UB) epilogue."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 40, 64)).astype(np.float16)
    b = rng.standard_normal((64, 48)).astype(np.float16)
    r = npusim.simulate("matmul", "Ascend310P3", a=a, b=b)
    assert r.kernel_name == "matmul (coupled)"
    assert _bits(r.outputs) == _bits(reference_matmul(a, b, soc="Ascend310P3"))
