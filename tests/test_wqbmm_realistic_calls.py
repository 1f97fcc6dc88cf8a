"""Realistic weight_quant_batchmatmul calls build (issue 16: no legal input gives an engine
error from a default tiling): hypothesis draws LLM-sized calls - M from 1 to 2048, K and N from
common model widths up to 14336 - over every x dtype, weight dtype, format, transposition,
quantisation mode, group size, offset, bias, output quantisation and inner_precise the seed docs
(002) allow, and the default-tiling program of the kernel CANN selects is built timing-only
(TensorSpec inputs, no run): no BufferOverflowError or other program error, no missing path.
Before the Msd / Custom fixes, 4 of 150 such seeded calls overflowed UB (the two explicit
examples are of those classes)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from npusim.hw import load_soc
from npusim.ops.weight_quant_program import plan_weight_quant_batchmatmul
from npusim.spec import spec

#: hidden / intermediate widths of common LLMs (Llama, Qwen, Mistral, ...)
SIZES = (1024, 1536, 2048, 2560, 3072, 4096, 5120, 6144, 7168, 8192, 11008, 12288, 13824,
         14336)
#: decode and prefill row counts, the Msd / MsdGroup bounds (48 .. 64) among them
M_CLASSES = (1, 2, 8, 16, 24, 32, 48, 60, 64, 96, 128, 256, 1024, 2048)


@st.composite
def realistic_call(draw) -> dict:
    """A legal call (seed 002): x (M, K); int8 or int32-packed int4 weight, ND or FRACTAL_NZ,
    transposed or not; per-tensor / per-channel / per-group (64, 128) scale of x's dtype or an
    int64 scale (fp16 x, int8 ND transposed weight, M <= 96); offset, bias, quant_scale
    (ND weight only)."""
    m = draw(st.one_of(st.sampled_from(M_CLASSES), st.integers(1, 2048)))
    k, n = draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))
    xd = draw(st.sampled_from(["float16", "bfloat16"]))
    wd = draw(st.sampled_from(["int8", "int4"]))
    fmt = draw(st.sampled_from(["ND", "NZ"]))
    trans = draw(st.booleans())
    quant = draw(st.sampled_from(["per_tensor", "per_channel", "per_group", "int64"]))
    outq = draw(st.sampled_from(["none", "none", "per_tensor", "per_channel"]))
    if quant == "int64":
        xd, wd, fmt, trans, outq, m = "float16", "int8", "ND", True, "none", min(m, 96)
    if outq != "none":
        fmt = "ND"
    if fmt == "NZ" and wd == "int4":  # per-channel transposed, per-group not
        quant = "per_channel" if quant == "per_tensor" else quant
        trans = quant == "per_channel"
    g = draw(st.sampled_from([64, 128])) if quant == "per_group" else 0
    packed = wd == "int4"
    shape = ((k // 8, n) if trans else (k, n // 8)) if packed else (k, n)
    w = spec(shape, "int32" if packed else "int8", transposed=trans,
             npu_format=29 if fmt == "NZ" else 2)
    pshape = {"per_tensor": (1,), "per_channel": (n,), "per_group": (k // max(g, 1), n),
              "int64": (n,)}[quant]
    sdt, odt = ("int64", "int32") if quant == "int64" else (xd, xd)
    call = {"x": spec((m, k), xd), "weight": w, "antiquant_scale": spec(pshape, sdt),
            "antiquant_group_size": g, "inner_precise": draw(st.sampled_from([0, 1]))}
    if draw(st.booleans()):
        call["antiquant_offset"] = spec(pshape, odt)
    if draw(st.booleans()):
        call["bias"] = spec((n,), "float16" if xd == "float16" else "float32")
    if outq != "none":
        qn = 1 if outq == "per_tensor" else n
        call["quant_scale"] = spec((qn,), "float32")
        if draw(st.booleans()):
            call["quant_offset"] = spec((qn,), "float32")
    return call


#: the reviewer's failing calls: Msd with M = 60, N = 11008 (UB overflow on c2); Custom with
#: bf16 x and a transposed int4 NZ weight (UB overflow on f1)
_MSD_60 = {"x": spec((60, 4096), "float16"), "weight": spec((4096, 11008), "int8"),
           "antiquant_scale": spec((11008,), "float16")}
_CUSTOM_BF16_NZ = {"x": spec((8, 14336), "bfloat16"),
                   "weight": spec((14336 // 8, 11008), "int32", transposed=True, npu_format=29),
                   "antiquant_scale": spec((11008,), "bfloat16")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=realistic_call(), soc=st.sampled_from(["Ascend910B2", "Ascend910_9391"]))
@example(call=_MSD_60, soc="Ascend910B2")
@example(call=_CUSTOM_BF16_NZ, soc="Ascend910_9391")
def test_realistic_call_builds_its_default_program(call, soc):
    """The selected kernel's default-tiling program builds for a realistic legal call."""
    plan = plan_weight_quant_batchmatmul(load_soc(soc), **call)
    assert not plan.functional and plan.kernel.instruction_count() > 0
