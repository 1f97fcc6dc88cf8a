"""FRACTAL_NZ second operands in simulate() (issue 16 / 13 item 4): a matmul B or quant_matmul
x2 pre-cast with npu_format_cast(..., 29) - seen as (k, n), or transposed when the NZ matrix
is the (n, k) weight - is stored in GM as its NZ storage and read with plain copies of its
fractal runs (a GM FRACTAL_NZ window delivered to L1 in logical order, the declared local-tile
model). Outputs equal the torch_npu API bit for bit (uint views), a TensorSpec with
npu_format=29 gives the same cycles, and on an A2 the NZ loads cost less than the ND2NZ ones."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu as tn
from npusim.ops.weight_quant_batchmatmul import transpose_nz
from npusim.spec import spec

B2 = "Ascend910B2"
_NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


def _u(a):
    a = np.asarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.itemsize])


def _nz(stored: np.ndarray, trans: bool):
    nz = tn.npu_format_cast(np.ascontiguousarray(stored), 29)
    return transpose_nz(nz) if trans else nz


def _b_loads(r) -> list:
    return [i for c in r.run.kernel.cores for i in c.instrs
            if i.kind == "dma" and i.reads[0].tensor == "b"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dt=st.sampled_from(["float16", "bfloat16", "float32"]), m=st.integers(1, 300),
       k=st.integers(1, 400), n=st.integers(1, 300), trans=st.booleans(), bias=st.booleans(),
       soc=st.sampled_from([B2, "Ascend310P3"]), seed=st.integers(0, 2**16))
def test_matmul_nz_b_property(dt, m, k, n, trans, bias, soc, seed):
    """matmul with an NZ B: bits = API, spec cycles = functional cycles, B read only by plain
    NZ copies (transform nz / nz2nd) of the b tensor."""
    if soc != B2:
        dt = "float16"  # the 310P cube takes fp16 only
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32).astype(_NP[dt])
    stored = rng.standard_normal((n, k) if trans else (k, n)).astype(np.float32).astype(_NP[dt])
    b = _nz(stored, trans)
    kw = {"bias": rng.standard_normal(n).astype(np.float32)} if bias else {}
    r = npusim.simulate("matmul", soc, a=a, b=b, **kw)
    assert np.array_equal(_u(r.outputs), _u(tn.matmul(a, b, soc=soc, **kw)))
    t = npusim.simulate("matmul", soc, a=spec(a.shape, dt),
                        b=spec((k, n), dt, npu_format=29, transposed=trans),
                        **{k2: spec(v.shape, "float32") for k2, v in kw.items()})
    assert t.cycles == r.cycles
    loads = _b_loads(r)
    assert loads and {i.transform for i in loads} == {"nz2nd" if trans else "nz"}


@pytest.mark.parametrize("out", ["float16", "int8", "bfloat16", "int32"])
@pytest.mark.parametrize("trans", [False, True])
def test_quant_matmul_nz_x2(out, trans):
    """quant_matmul with an int8 NZ x2 (the README's W8A8 drop-in weight): bits = API for every
    output path (FixPipe DEQF16 / REQ8, the AIV per-token dequant, int32), spec cycles =
    functional cycles."""
    rng = np.random.default_rng(7)
    m, k, n = 17, 320, 200
    x1 = rng.integers(-5, 5, (m, k)).astype(np.int8)
    w = rng.integers(-5, 5, (n, k) if trans else (k, n)).astype(np.int8)
    x2 = _nz(w, trans)
    kw = {}
    if out in ("float16", "int8"):
        scale = tn.npu_trans_quant_param((rng.random(n) / 64).astype(np.float32))
    else:
        scale = (rng.random(n) / 64).astype(np.float32)
        if out == "bfloat16":
            kw["pertoken_scale"] = rng.random(m).astype(np.float32)
    r = npusim.simulate("quant_matmul", B2, x1=x1, x2=x2, scale=scale, output_dtype=out, **kw)
    api = tn.npu_quant_matmul(x1, x2, scale, output_dtype=out, soc=B2, **kw)
    assert np.array_equal(_u(r.outputs), _u(api))
    t = npusim.simulate("quant_matmul", B2, x1=spec(x1.shape, "int8"),
                        x2=spec((k, n), "int8", npu_format=29, transposed=trans),
                        scale=spec(scale.shape, str(scale.dtype)), output_dtype=out,
                        **{k2: spec(v.shape, "float32") for k2, v in kw.items()})
    assert t.cycles == r.cycles


def test_nz_b_loads_cost_less_than_nd2nz_on_a2():
    """The same fp16 matmul (M=64, K=256, N=128 and a ragged 17 x 300 x 200) with B stored NZ
    runs faster than with B in ND (plain copies of 512 B fractal rows instead of ND2NZ)."""
    for m, k, n in ((64, 256, 128), (17, 300, 200)):
        a, b = spec((m, k), "float16"), spec((k, n), "float16")
        nd = npusim.simulate("matmul", B2, a=a, b=b).cycles
        nz = npusim.simulate("matmul", B2, a=a, b=spec((k, n), "float16", npu_format=29)).cycles
        assert nz < nd, (m, k, n, nz, nd)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dt=st.sampled_from(["float16", "bfloat16", "float32"]), m=st.integers(1, 200),
       k=st.integers(1, 300), n=st.integers(1, 200), a_nz=st.booleans(), b_nz=st.booleans(),
       trans=st.booleans(), batch=st.sampled_from([(), (2,), (3, 1), (2, 2)]),
       b_batch=st.sampled_from([(), (1,), (2,)]), soc=st.sampled_from([B2, "Ascend310P3"]),
       seed=st.integers(0, 2**16))
def test_matmul_nz_first_operand_and_batched_nz(dt, m, k, n, a_nz, b_nz, trans, batch, b_batch,
                                                soc, seed):
    """An NZ first operand (torch.matmul takes any NZ tensor) and batched NZ operands: each
    batch's NZ storage after the previous one's in GM, A read by plain ``nz`` copies of its
    fractal runs; bits = API, spec cycles = functional cycles."""
    a_nz = a_nz or not b_nz
    if soc != B2:
        dt = "float16"
    if b_batch == (2,) and batch[-1:] not in ((2,), ()):
        b_batch = (1,)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch, m, k)).astype(np.float32).astype(_NP[dt])
    st_b = rng.standard_normal((*b_batch, *((n, k) if trans else (k, n))))
    st_b = st_b.astype(np.float32).astype(_NP[dt])
    A = tn.npu_format_cast(a, 29) if a_nz else a
    B = _nz(st_b, trans) if b_nz else (np.swapaxes(st_b, -1, -2) if trans else st_b)
    r = npusim.simulate("matmul", soc, a=A, b=B)
    assert np.array_equal(_u(r.outputs), _u(tn.matmul(A, B, soc=soc)))
    t = npusim.simulate("matmul", soc, a=spec(a.shape, dt, npu_format=29 if a_nz else 2),
                        b=spec((*b_batch, k, n), dt, npu_format=29 if b_nz else 2,
                               transposed=trans))
    assert t.cycles == r.cycles
    a_loads = {i.transform for c in r.run.kernel.cores for i in c.instrs
               if i.kind == "dma" and i.reads[0].tensor == "a"}
    assert a_loads == ({"nz"} if a_nz else {"nd2nz"})


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(out=st.sampled_from(["float16", "int8", "bfloat16", "int32"]), m=st.integers(1, 100),
       k=st.integers(1, 200), n=st.integers(1, 150), trans=st.booleans(),
       batch=st.sampled_from([(2,), (3, 1), (2, 2)]), b_batch=st.sampled_from([(1,), (2,)]),
       soc=st.sampled_from([B2, "Ascend910_9391"]), seed=st.integers(0, 2**16))
def test_quant_matmul_batched_nz_x2(out, m, k, n, trans, batch, b_batch, soc, seed):
    """A batched int8 NZ x2 (aclnnQuantMatmulWeightNz takes batch dims as the ND x2 does):
    bits = API for every output path, spec cycles = functional cycles."""
    if batch[-1] != b_batch[-1]:
        b_batch = (1,)
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-5, 5, (*batch, m, k)).astype(np.int8)
    x2 = _nz(rng.integers(-5, 5, (*b_batch, *((n, k) if trans else (k, n)))).astype(np.int8),
             trans)
    kw = {}
    if out in ("float16", "int8"):
        scale = tn.npu_trans_quant_param((rng.random(n) / 64).astype(np.float32))
    else:
        scale = (rng.random(n) / 64).astype(np.float32)
    r = npusim.simulate("quant_matmul", soc, x1=x1, x2=x2, scale=scale, output_dtype=out, **kw)
    api = tn.npu_quant_matmul(x1, x2, scale, output_dtype=out, soc=soc, **kw)
    assert np.array_equal(_u(r.outputs), _u(api))
    t = npusim.simulate("quant_matmul", soc, x1=spec(x1.shape, "int8"),
                        x2=spec((*b_batch, k, n), "int8", npu_format=29, transposed=trans),
                        scale=spec(scale.shape, str(scale.dtype)), output_dtype=out)
    assert t.cycles == r.cycles


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(out=st.sampled_from(["float16", "float16 pertoken", "bfloat16"]), m=st.integers(1, 100),
       k8=st.integers(1, 40), n8=st.integers(1, 30), bias=st.booleans(),
       soc=st.sampled_from([B2, "Ascend910_9391"]), seed=st.integers(0, 2**16))
def test_quant_matmul_int4_nz_x2(out, m, k8, n8, bias, soc, seed):
    """An int4 x2 packed to FRACTAL_NZ (npu_convert_weight_to_int4pack of an NZ int32 (k, n):
    storage (n/64, k/16, 16, 8) int32, C0 = 64 int4), every int4 row of the combination table:
    the cube's int4 NZ windows read as stored; bits = API, spec cycles = functional cycles."""
    k, n = 8 * k8, 8 * n8
    rng = np.random.default_rng(seed)
    x1 = tn.npu_convert_weight_to_int4pack(rng.integers(-8, 8, (m, k)).astype(np.int32))
    x2 = tn.npu_convert_weight_to_int4pack(
        tn.npu_format_cast(rng.integers(-8, 8, (k, n)).astype(np.int32), 29))
    scale = (rng.random(n) / 64).astype(np.float32)
    kw = {}
    if out == "float16":  # FixPipe DEQF16 (an int32 bias in L0C); else the AIV per-token path
        scale = tn.npu_trans_quant_param(scale)
        if bias:
            kw["bias"] = rng.integers(-50, 50, n).astype(np.int32)
    else:
        kw["pertoken_scale"] = rng.random(m).astype(np.float32)
    out = out.split()[0]
    r = npusim.simulate("quant_matmul", soc, x1=x1, x2=x2, scale=scale, output_dtype=out, **kw)
    api = tn.npu_quant_matmul(x1, x2, scale, output_dtype=out, soc=soc, **kw)
    assert np.array_equal(_u(r.outputs), _u(api))
    loads = _b_loads_of(r, "b")
    assert loads == {"nz"}
    t = npusim.simulate("quant_matmul", soc, x1=spec(x1.shape, "int32"),
                        x2=spec((k, n // 8), "int32", npu_format=29),
                        scale=spec(scale.shape, str(scale.dtype)), output_dtype=out,
                        **{k2: spec(v.shape, str(v.dtype)) for k2, v in kw.items()})
    assert t.cycles == r.cycles


def _b_loads_of(r, tensor):
    return {i.transform for c in r.run.kernel.cores for i in c.instrs
            if i.kind == "dma" and i.reads[0].tensor == tensor}


def test_quant_matmul_nz_x1_is_refused_naming_the_rule():
    """torch_npu's npu_quant_matmul takes x1 in ND only: an NZ x1 is a ValueError naming x1."""
    with pytest.raises(ValueError, match=r"x1: .*ND"):
        npusim.simulate("quant_matmul", B2, x1=spec((64, 256), "int8", npu_format=29),
                        x2=spec((256, 128), "int8"), scale=spec((128,), "int64"),
                        output_dtype="float16")
