"""quant_matmul with int32-packed int4 inputs as a tiled program (issue 16): the packed words are
the cube's int4 bytes (value j of a word in bits 4j..4j+3, element 2i in the low nibble of
byte i), the cube multiplies int4 x int4 into exact int32, and the epilogues are the int8
ones (FixPipe DEQF16 with the uint64 parameters, or the AIV dequant for bf16 / per-token).
Outputs equal the torch_npu API bit for bit (uint views); a TensorSpec run gives the same
cycles; the cube's Mmads are int4."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu as tn
from npusim.spec import spec


def _u(a):
    a = np.asarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.itemsize])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 300), k8=st.integers(1, 64), n8=st.integers(1, 64),
       path=st.sampled_from(["deqf16", "float32_scale", "pertoken_fp16", "pertoken_bf16"]),
       trans=st.booleans(), bias=st.booleans(),
       soc=st.sampled_from(["Ascend910B2", "Ascend910_9391"]), seed=st.integers(0, 2**16))
def test_int4_quant_matmul_program_property(m, k8, n8, path, trans, bias, soc, seed):
    """Random shapes (K, N multiples of 8), every int4 row of the supported-combination table,
    a transposed x2, an int32 bias where the row allows one."""
    rng = np.random.default_rng(seed)
    k, n = 8 * k8, 8 * n8
    x1 = tn.npu_convert_weight_to_int4pack(rng.integers(-8, 8, (m, k), dtype=np.int32))
    w = tn.npu_convert_weight_to_int4pack(
        rng.integers(-8, 8, (n, k) if trans else (k, n), dtype=np.int32))
    x2 = w.T if trans else w
    s = (rng.random(n) / 64 + 1e-3).astype(np.float32)
    kw: dict = {}
    out = "bfloat16" if path == "pertoken_bf16" else "float16"
    scale = tn.npu_trans_quant_param(s) if path == "deqf16" else s
    if path.startswith("pertoken"):
        kw["pertoken_scale"] = rng.random(m).astype(np.float32)
    elif bias:
        kw["bias"] = rng.integers(-1000, 1000, n, dtype=np.int32)
    api = tn.npu_quant_matmul(x1, x2, scale, output_dtype=out, soc=soc, **kw)
    r = npusim.simulate("quant_matmul", soc, x1=x1, x2=x2, scale=scale, output_dtype=out, **kw)
    assert np.array_equal(_u(r.outputs), _u(api))
    assert {i.params["dtype"] for c in r.run.kernel.cores for i in c.instrs
            if i.kind == "mmad"} == {"int4"}
    specs = {k2: spec(v.shape, str(v.dtype)) for k2, v in kw.items()}
    x2s = spec((k // 8, n), "int32", transposed=True) if trans else spec(x2.shape, "int32")
    t = npusim.simulate("quant_matmul", soc, x1=spec(x1.shape, "int32"), x2=x2s,
                        scale=spec(scale.shape, str(scale.dtype)), output_dtype=out, **specs)
    assert t.cycles == r.cycles
