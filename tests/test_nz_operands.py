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


def test_nz_first_operand_and_batched_nz_are_named():
    """A FRACTAL_NZ first operand, or a batched NZ B, is a NotImplementedError naming it."""
    with pytest.raises(NotImplementedError, match="first operand"):
        npusim.simulate("matmul", B2, a=spec((64, 256), "float16", npu_format=29),
                        b=spec((256, 128), "float16"))
    with pytest.raises(NotImplementedError, match="batched FRACTAL_NZ"):
        npusim.simulate("matmul", B2, a=spec((2, 64, 256), "float16"),
                        b=spec((2, 256, 128), "float16", npu_format=29))
