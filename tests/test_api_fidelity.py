"""Where the torch_npu-named API's outputs come from: by default (``program``) the functional run
of the selected kernel's tiled program; ``reference`` (opt-in: a call's ``fidelity=``,
``set_fidelity`` or ``NPUSIM_FIDELITY``) the kernel's numerics model."""

from __future__ import annotations

import numpy as np
import pytest

import npusim
import npusim.torch_npu as tn
from npusim.numerics import pack_int4
from npusim.torch_npu import _state


def _call(seed: int, m: int, k: int, n: int, int4: bool) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float16)
    lo, hi = (-8, 8) if int4 else (-128, 128)
    w = rng.integers(lo, hi, (k, n)).astype(np.int32)
    w = pack_int4(w) if int4 else w.astype(np.int8)
    g = 128 if int4 else 0
    scale = (rng.random((k // g, n) if g else (n,)) * 0.02 + 0.005).astype(np.float16)
    return x, w, scale, g


def test_default_fidelity_is_the_program(monkeypatch):
    monkeypatch.delenv("NPUSIM_FIDELITY", raising=False)
    monkeypatch.setattr(_state, "_fidelity", None)
    assert tn.current_fidelity() == "program"
    monkeypatch.setenv("NPUSIM_FIDELITY", "reference")
    assert tn.current_fidelity() == "reference"
    assert tn.set_fidelity("program") == "program"  # a call beats the environment
    assert tn.set_fidelity(None) == "reference"  # back to the environment's choice
    monkeypatch.setenv("NPUSIM_FIDELITY", "exact")
    with pytest.raises(ValueError, match="NPUSIM_FIDELITY: 'exact' is not a fidelity"):
        tn.current_fidelity()
    with pytest.raises(ValueError, match="fidelity: 'fast' is not a fidelity"):
        tn.npu_weight_quant_batchmatmul(*_call(0, 2, 256, 64, False)[:3], fidelity="fast")


@pytest.mark.parametrize(("m", "k", "n", "int4"), [(1, 512, 256, True), (16, 256, 128, False)])
def test_program_fidelity_reads_the_simulated_output(m, k, n, int4):
    """At ``program`` fidelity the API returns what simulate()'s functional run of the same
    kernel wrote into GM, and it equals the numerics model bit for bit (uint views)."""
    x, w, scale, g = _call(m + k, m, k, n, int4)
    got = tn.npu_weight_quant_batchmatmul(x, w, scale, antiquant_group_size=g,
                                          fidelity="program")
    res = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", x=x, weight=w,
                          antiquant_scale=scale, antiquant_group_size=g)
    ref = tn.npu_weight_quant_batchmatmul(x, w, scale, antiquant_group_size=g,
                                          fidelity="reference")
    assert got.view(np.uint16).tolist() == np.asarray(res.outputs).view(np.uint16).tolist()
    assert got.view(np.uint16).tolist() == ref.view(np.uint16).tolist()


def test_a_program_too_large_to_run_names_the_reference_fidelity(monkeypatch):
    x, w, scale, g = _call(1, 16, 512, 256, True)
    monkeypatch.setenv("NPUSIM_MAX_INSTRUCTIONS", "10")
    with pytest.raises(ValueError, match="fidelity='reference'"):
        tn.npu_weight_quant_batchmatmul(x, w, scale, antiquant_group_size=g, fidelity="program")


# -- every other operator of the API: the default is the program's output ----------------------


@pytest.fixture
def default_fidelity(monkeypatch):
    """Calls without ``fidelity=`` at the package default (the suite runs at ``reference``)."""
    monkeypatch.delenv("NPUSIM_FIDELITY", raising=False)
    monkeypatch.setattr(_state, "_fidelity", None)
    assert tn.current_fidelity() == "program"


def _u(a) -> list:
    a = np.asarray(a)
    return [a.shape, a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[
        a.dtype.itemsize]).tolist()]


def _int8(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


QMM_CASES = [  # soc, m, k, n, output_dtype, x2 layout, extras
    ("Ascend910B2", 40, 96, 80, "float16", "nd", ()),
    ("Ascend910B2", 17, 64, 48, "int8", "t", ("offset",)),
    ("Ascend910B2", 33, 128, 64, "bfloat16", "nz", ("pertoken", "bias_f32")),
    ("Ascend910B2", 8, 64, 32, "int32", "nd", ("bias_i32",)),
    ("Ascend910B2", 24, 256, 48, "float16", "int4", ()),
    ("Ascend310P3", 40, 96, 80, "float16", "t", ("bias_i32",)),
    ("Ascend310P3", 19, 64, 32, "int8", "nd", ("offset",)),
]


def _qmm_args(seed, m, k, n, out, layout, extras):
    rng = np.random.default_rng(seed)
    if layout == "int4":
        x1 = np.asarray(pack_int4(rng.integers(-8, 8, (m, k)).astype(np.int32)))
        x2 = np.asarray(pack_int4(rng.integers(-8, 8, (k, n)).astype(np.int32)))
    else:
        x1, x2 = _int8(rng, (m, k)), _int8(rng, (k, n))
        if layout == "t":
            x2 = np.ascontiguousarray(x2.T).T
        elif layout == "nz":
            x2 = tn.npu_format_cast(x2, 29, fidelity="reference")
    kw = {"output_dtype": out}
    per_channel = (rng.random(n) * 1e-3 + 1e-4).astype(np.float32)
    scale = per_channel[:1] if "pertoken" in extras else per_channel
    if "offset" in extras:
        kw["offset"] = rng.uniform(-20, 20, n).astype(np.float32)
    if "pertoken" in extras:
        kw["pertoken_scale"] = rng.uniform(0.5, 2, m).astype(np.float32)
    if "bias_f32" in extras:
        kw["bias"] = rng.uniform(-3, 3, n).astype(np.float32)
    if "bias_i32" in extras:
        kw["bias"] = rng.integers(-5000, 5000, n).astype(np.int32)
    return x1, x2, scale, kw


@pytest.mark.parametrize("case", QMM_CASES, ids=[f"{c[0]}-{c[4]}-{c[5]}" for c in QMM_CASES])
def test_quant_matmul_default_is_the_programs_output(default_fidelity, case):
    soc, m, k, n, out, layout, extras = case
    x1, x2, scale, kw = _qmm_args(m * n, m, k, n, out, layout, extras)
    got = tn.npu_quant_matmul(x1, x2, scale, soc=soc, **kw)
    res = npusim.simulate("quant_matmul", soc, x1=x1, x2=x2, scale=scale, **kw)
    ref = tn.npu_quant_matmul(x1, x2, scale, soc=soc, fidelity="reference", **kw)
    assert _u(got) == _u(res.outputs)
    assert _u(got) == _u(ref)


def _a8w4_call(seed=0, m=3, k=512, n=48, g=256):
    rng = np.random.default_rng(seed)
    x1 = _int8(rng, (m, k))
    x2 = np.asarray(pack_int4(rng.integers(-8, 8, (k, n)).astype(np.int32)))
    q = tn.npu_trans_quant_param(rng.uniform(0, 1, k // g * n).astype(np.float32),
                                 fidelity="reference").reshape(k // g, n)
    kw = {"offset": rng.standard_normal(n).astype(np.float32),
          "pertoken_scale": rng.uniform(0.001, 0.01, (m, 1)).astype(np.float32),
          "output_dtype": "float16", "group_sizes": [0, 0, g]}
    return x1, x2, q, kw


def test_a8w4_default_is_the_programs_output(default_fidelity):
    """A8W4 at the default fidelity is the A8W4 program's functional output, equal to the
    numerics model."""
    x1, x2, q, kw = _a8w4_call()
    got = tn.npu_quant_matmul(x1, x2, q, **kw)
    res = npusim.simulate("quant_matmul", "Ascend910B2", x1=x1, x2=x2, scale=q, **kw)
    assert "A8W4" in res.kernel_name
    assert _u(got) == _u(res.outputs)
    assert _u(got) == _u(tn.npu_quant_matmul(x1, x2, q, fidelity="reference", **kw))


def _a4w4_group_call(seed=0, m=4, k=1024, n=256, gk=256):
    rng = np.random.default_rng(seed)
    x1 = np.asarray(pack_int4(rng.integers(-8, 8, (m, k)).astype(np.int32)))
    x2 = np.asarray(pack_int4(rng.integers(-8, 8, (n, k)).astype(np.int32))).T
    kw = {"offset": np.ones((k // gk, n), np.float16),
          "pertoken_scale": np.ones((m, 1), np.float32), "output_dtype": "bfloat16",
          "group_sizes": [1, 1, gk]}
    return x1, x2, np.full((k // gk, n), 0.01, np.float32), kw


def test_a4w4_pergroup_default_is_the_programs_output(default_fidelity):
    """Per-group A4W4 (group_k 256) at the default fidelity is its program's output, equal to
    the reference chain; a group_k other than 256 is refused by both fidelities (ops-nn's
    pergroup tiling takes group_k 256 only)."""
    x1, x2, scale, kw = _a4w4_group_call()
    got = tn.npu_quant_matmul(x1, x2, scale, **kw)
    res = npusim.simulate("quant_matmul", "Ascend910B2", x1=x1, x2=x2, scale=scale, **kw)
    assert "A4W4" in res.kernel_name
    assert _u(got) == _u(res.outputs)
    assert _u(got) == _u(tn.npu_quant_matmul(x1, x2, scale, fidelity="reference", **kw))
    x1, x2, scale, kw = _a4w4_group_call(gk=128)
    for fidelity in (None, "reference"):
        with pytest.raises(ValueError, match=r"group_k = 256 only"):
            tn.npu_quant_matmul(x1, x2, scale, fidelity=fidelity, **kw)


def test_quant_matmul_transposed_x1_refuses_the_default(default_fidelity):
    rng = np.random.default_rng(3)
    x1 = np.ascontiguousarray(_int8(rng, (64, 16))).T  # (16, 64) transposed view
    x2, scale = _int8(rng, (64, 32)), np.full(32, 1e-3, np.float32)
    with pytest.raises(NotImplementedError, match=r"transposed x1.*fidelity='reference'"):
        tn.npu_quant_matmul(x1, x2, scale, output_dtype="float16")
    want = tn.npu_quant_matmul(np.ascontiguousarray(x1), x2, scale, output_dtype="float16",
                               fidelity="reference")
    got = tn.npu_quant_matmul(x1, x2, scale, output_dtype="float16", fidelity="reference")
    assert _u(got) == _u(want)


@pytest.mark.parametrize(("soc", "n", "offset", "mode"), [
    ("Ascend910B2", 64, True, 0), ("Ascend910B2", 1, False, 1), ("Ascend310P3", 40, True, 1)])
def test_trans_quant_param_default_is_the_programs_output(default_fidelity, soc, n, offset,
                                                          mode):
    rng = np.random.default_rng(n)
    s = (rng.random(n) * 2.0 ** rng.integers(-20, 5, n)).astype(np.float32)
    o = rng.uniform(-300, 300, n).astype(np.float32) if offset else None
    got = tn.npu_trans_quant_param(s, o, mode, soc=soc)
    res = npusim.simulate("trans_quant_param", soc, scale=s, offset=o, round_mode=mode)
    assert _u(got) == _u(res.outputs)
    assert _u(got) == _u(tn.npu_trans_quant_param(s, o, mode, soc=soc, fidelity="reference"))


@pytest.mark.parametrize(("rows", "h", "ends", "dst", "offset"), [
    (20, 64, [7, 20], None, False), (33, 96, [0, 10, 33], "torch.quint4x2", True),
    (5, 16, [5], "torch.qint8", True)])
def test_group_quant_default_is_the_programs_output(default_fidelity, rows, h, ends, dst,
                                                    offset):
    rng = np.random.default_rng(rows)
    x = (rng.standard_normal((rows, h)) * 3).astype(np.float16)
    scale = rng.uniform(-2, 2, (len(ends), h)).astype(np.float32)
    gi = np.array(ends, np.int64)
    off = np.array([0.75], np.float32) if offset else None
    got = tn.npu_group_quant(x, scale, gi, offset=off, dst_dtype=dst)
    kind = "int4" if dst == "torch.quint4x2" else "int8"
    res = npusim.simulate("group_quant", x=x, scale=scale, group_index=gi, offset=off,
                          dst_dtype=kind)
    assert _u(got) == _u(res.outputs)
    assert _u(got) == _u(tn.npu_group_quant(x, scale, gi, offset=off, dst_dtype=dst,
                                            fidelity="reference"))


@pytest.mark.parametrize(("soc", "shape", "dtype"), [
    ("Ascend910B2", (37, 70), np.float16), ("Ascend910B2", (2, 20, 40), np.int8),
    ("Ascend310P3", (16, 33), np.float32)])
def test_format_cast_default_is_the_programs_output(default_fidelity, soc, shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 50).astype(dtype)
    nz = tn.npu_format_cast(x, 29, soc=soc)
    res = npusim.simulate("format_cast", soc, x=x, acl_format=29)
    ref = tn.npu_format_cast(x, 29, soc=soc, fidelity="reference")
    assert _u(nz) == _u(res.outputs) == _u(ref) and nz.origin_shape == shape
    back = tn.npu_format_cast(nz, 2, soc=soc)
    assert _u(back) == _u(npusim.simulate("format_cast", soc, x=nz, acl_format=2).outputs)
    assert _u(back) == _u(x)


def test_torch_format_cast_storage_is_the_programs_output(default_fidelity):
    """A torch tensor's NZ storage comes from the cast's program run; an in-place write into
    the NZ tensor makes the next read run the program again (as a device's TransData would)."""
    torch = pytest.importorskip("torch")
    from npusim.torch_npu._tensor import desc_of

    x = torch.randn(33, 50, dtype=torch.float16)
    nz = tn.npu_format_cast(x, 29)
    res = npusim.simulate("format_cast", x=x.numpy(), acl_format=29)
    assert desc_of(nz).storage is not None
    assert _u(tn.npu_storage_array(nz)) == _u(res.outputs)
    with torch.no_grad():
        nz[0, 0] = 7.0
    x2 = x.clone()
    x2[0, 0] = 7.0
    res2 = npusim.simulate("format_cast", x=x2.numpy(), acl_format=29)
    assert _u(tn.npu_storage_array(nz)) == _u(res2.outputs) != _u(res.outputs)
    back = tn.npu_format_cast(nz, 2)
    assert tn.get_npu_format(back) == 2 and torch.equal(back.view(torch.int16),
                                                        x2.view(torch.int16))


def test_torch_format_cast_customize_dtype(default_fidelity):
    """int32 with customize_dtype=int32 (C0 = 8, 32 B rows) runs the program; int8 data with
    C0 = 8 (8 B rows) has no program: the default refuses and names the switch."""
    torch = pytest.importorskip("torch")

    w = torch.randint(-2**31, 2**31 - 1, (17, 15), dtype=torch.int32)
    nz = tn.npu_format_cast(w, 29, customize_dtype=torch.int32)
    ref = tn.npu_format_cast(w, 29, customize_dtype=torch.int32, fidelity="reference")
    assert tn.npu_storage_array(nz).shape == (2, 2, 16, 8)  # (ceil(15 / 8), ceil(17 / 16))
    assert _u(tn.npu_storage_array(nz)) == _u(tn.npu_storage_array(ref))
    assert torch.equal(tn.npu_format_cast(nz, 2), w)  # NZ -> ND reads C0 = 8 storage
    w8 = torch.randint(-128, 128, (17, 15), dtype=torch.int8)
    with pytest.raises(NotImplementedError, match=r"c0=8.*fidelity='reference'"):
        tn.npu_format_cast(w8, 29, customize_dtype=torch.int32)
    assert tn.get_npu_format(tn.npu_format_cast(w8, 29, customize_dtype=torch.int32,
                                                fidelity="reference")) == 29


@pytest.mark.parametrize("asymmetric", [False, True])
def test_dynamic_quant_default_is_the_programs_output(default_fidelity, asymmetric):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 64)).astype(np.float16)
    api = tn.npu_dynamic_quant_asymmetric if asymmetric else tn.npu_dynamic_quant
    got = api(x)
    res = npusim.simulate("dynamic_quant", x=x.reshape(15, 64), dst_type="int8",
                          asymmetric=asymmetric)
    assert len(got) == len(res.outputs)
    for g, r in zip(got, res.outputs, strict=True):
        assert _u(np.asarray(g).reshape(np.asarray(r).shape)) == _u(r)
    with pytest.raises(ValueError, match="fidelity: 'exact' is not a fidelity"):
        api(x, fidelity="exact")


@pytest.mark.parametrize(("soc", "dtype", "trans_b"), [
    ("Ascend910B2", np.float16, False), ("Ascend910B2", "bfloat16", True),
    ("Ascend310P3", np.float16, True)])
def test_matmul_default_is_the_programs_output(default_fidelity, soc, dtype, trans_b):
    from npusim.numerics import np_dtype

    rng = np.random.default_rng(7)
    dt = np_dtype(dtype) if isinstance(dtype, str) else dtype
    a = rng.standard_normal((33, 64)).astype(np.float32).astype(dt)
    b = rng.standard_normal((48, 64) if trans_b else (64, 48)).astype(np.float32).astype(dt)
    b = b.T if trans_b else b
    got = tn.matmul(a, b, soc=soc)
    res = npusim.simulate("matmul", soc, a=a, b=b)
    assert _u(got) == _u(res.outputs)
    assert _u(got) == _u(tn.matmul(a, b, soc=soc, fidelity="reference"))


def _small_calls():
    rng = np.random.default_rng(11)
    x1, x2, scale, kw = _qmm_args(1, 16, 64, 32, "float16", "nd", ())
    x = rng.standard_normal((8, 32)).astype(np.float16)
    return {
        "npu_quant_matmul": lambda **f: tn.npu_quant_matmul(x1, x2, scale, **kw, **f),
        "npu_trans_quant_param": lambda **f: tn.npu_trans_quant_param(scale, **f),
        "npu_group_quant": lambda **f: tn.npu_group_quant(
            x, np.ones((1, 32), np.float32), np.array([8], np.int64), **f),
        "npu_format_cast": lambda **f: tn.npu_format_cast(x, 29, **f),
        "matmul": lambda **f: tn.matmul(x, x.T, **f),
    }


@pytest.mark.parametrize("api", sorted(_small_calls()))
def test_a_program_too_large_names_the_switch_for_every_operator(default_fidelity, monkeypatch,
                                                                 api):
    """The default runs the program (refused here by a 10-instruction limit, naming the
    switch); ``fidelity='reference'`` does not run it."""
    call = _small_calls()[api]
    monkeypatch.setenv("NPUSIM_MAX_INSTRUCTIONS", "10")
    with pytest.raises(ValueError, match="fidelity='reference'"):
        call()
    assert np.asarray(call(fidelity="reference")).size


def test_an_nz_result_keeps_the_storage_its_operator_wrote(default_fidelity, monkeypatch):
    """int4pack of an NZ torch weight (host work in torch_npu) returns an NZ tensor whose storage
    is the one the packing wrote: reading it runs no format_cast program."""
    torch = pytest.importorskip("torch")
    w = torch.from_numpy((np.arange(20 * 128, dtype=np.int32).reshape(20, 128) % 16) - 8)
    w_nz = tn.npu_format_cast(w, 29)
    packed = tn.npu_convert_weight_to_int4pack(w_nz)
    want = tn.npu_convert_weight_to_int4pack(tn.npu_format_cast(w.numpy(), 29))
    monkeypatch.setattr(npusim.runner, "simulate", None)  # any program run would fail here
    assert tn.get_npu_format(packed) == 29 and tuple(packed.shape) == (20, 16)
    assert _u(tn.npu_storage_array(packed)) == _u(want)
