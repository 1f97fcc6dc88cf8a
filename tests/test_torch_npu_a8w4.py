"""npu_quant_matmul A8W4 (int8 x int4, group_sizes) and A4W4 with a per-token scale."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from npusim.ops.quant_matmul_a8w4 import reference_a8w4  # noqa: E402
from npusim.torch_npu import (  # noqa: E402
    npu_convert_weight_to_int4pack,
    npu_quant_matmul,
    npu_quantize,
    npu_trans_quant_param,
)


def _a8w4_inputs(m=3, k=512, n=64, g=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x1 = torch.randint(-128, 128, (m, k), dtype=torch.int8, generator=gen)
    # w in {-1, 0, 1} on the first half of each group (zero on the rest) and one power-of-two
    # scale per column: each group's digit sum has |.| <= 128 * 8 and the two-group fp16 sum
    # <= 2048, so no fp16 step rounds
    w = torch.randint(-1, 2, (k, n), dtype=torch.int32, generator=gen)
    w[(torch.arange(k) % g) >= g // 2] = 0
    exps = torch.randint(-9, -5, (1, n), generator=gen).expand(k // g, n)
    scale = torch.pow(2.0, exps.float()).contiguous()
    ptk = torch.pow(2.0, torch.randint(-3, 1, (m, 1), generator=gen).float())
    y_off = torch.randint(-64, 64, (n,), generator=gen).float()
    return x1, w, scale, ptk, y_off


def test_a8w4_equals_the_exact_digit_formula_when_every_step_is_exact():
    """With power-of-two scales and small integers no intermediate rounds, so the output is
    ((x - 8) @ dequant(w) + y_offset) * pertoken for each group-scaled column: the two-digit
    split (x = 16*hi + lo + 8) loses nothing but the +8 term the caller folds into y_offset."""
    x1, w, scale, ptk, y_off = _a8w4_inputs()
    g = 256
    packed = npu_convert_weight_to_int4pack(w)
    q = npu_trans_quant_param(scale.reshape(-1)).reshape(scale.shape)
    for out_dtype in (torch.float16, torch.bfloat16):
        y = npu_quant_matmul(x1, packed, q, offset=y_off, pertoken_scale=ptk,
                             output_dtype=out_dtype, group_sizes=[0, 0, g])
        xs = (x1.double() - 8).reshape(3, -1, g)
        ws = w.double().reshape(-1, g, 64) * scale.double()[:, None, :]
        exact = (torch.einsum("mjg,jgn->mn", xs, ws) + y_off.double()) * ptk.double()
        assert y.dtype == out_dtype and y.shape == (3, 64)
        assert torch.equal(y, exact.to(out_dtype))


def test_a8w4_sums_groups_in_fp16():
    """The kernel sums the per-group results in fp16 (FixPipe's fp16 atomic add into GM): a
    group result below half an fp16 ulp of the running sum is lost (an fp32 sum keeps it)."""
    k, g, n = 512, 256, 8
    x = np.full((1, k), 8 + 16, dtype=np.int8)  # hi = 1, lo = 0 for every element
    w = np.zeros((k, n), dtype=np.int32)
    w[:g] = 7
    w[g:g + 1] = 1  # group 1 sums to 1 * scale
    packed = np.asarray(npu_convert_weight_to_int4pack(w))
    scale = np.array([[1.0] * n, [2.0 ** -8] * n], dtype=np.float32)
    q = np.asarray(npu_trans_quant_param(scale.reshape(-1))).reshape(scale.shape)
    ptk = np.ones((1, 1), np.float32)
    y = reference_a8w4(x, packed, q, offset=np.zeros(n, np.float32), pertoken_scale=ptk,
                       output_dtype="float16", group_sizes=[0, 0, g])
    # hi digit: group 0 gives 1792, group 1 gives 2^-8 (lost in fp16 next to 1792); lo digit 0
    want = np.full((1, n), np.float16(1792 * 16))
    assert np.array_equal(y.view(np.uint16), want.view(np.uint16))


def test_a8w4_refusals_name_the_argument():
    """group_sizes length / range / a group_k other than 256, a missing y_offset, scale dtype
    and shape, missing pertoken_scale, bias, output dtype and a 310P SoC are refused with
    errors naming the rule."""
    x1, w, scale, ptk, y_off = _a8w4_inputs()
    packed = npu_convert_weight_to_int4pack(w)
    q = npu_trans_quant_param(scale.reshape(-1)).reshape(scale.shape)
    kw = dict(offset=y_off, pertoken_scale=ptk, output_dtype=torch.float16)
    with pytest.raises(ValueError, match="three elements"):
        npu_quant_matmul(x1, packed, q, group_sizes=[0, 64], **kw)
    with pytest.raises(ValueError, match=r"range \[0, 65535\]"):
        npu_quant_matmul(x1, packed, q, group_sizes=[0, 0, 70000], **kw)
    with pytest.raises(ValueError, match="group_k = 256 only"):
        npu_quant_matmul(x1, packed, q, group_sizes=[0, 0, 128], **kw)
    with pytest.raises(ValueError, match="offset: required"):
        npu_quant_matmul(x1, packed, q, pertoken_scale=ptk, output_dtype=torch.float16,
                         group_sizes=[0, 0, 256])
    with pytest.raises(ValueError, match="group_sizes"):
        npu_quant_matmul(x1, packed, q, **kw)
    with pytest.raises(TypeError, match="scale: dtype float32"):
        npu_quant_matmul(x1, packed, scale, group_sizes=[0, 0, 256], **kw)
    with pytest.raises(ValueError, match=r"scale: shape"):
        npu_quant_matmul(x1, packed, q[:1], group_sizes=[0, 0, 256], **kw)
    with pytest.raises(ValueError, match="pertoken_scale: required"):
        npu_quant_matmul(x1, packed, q, offset=y_off, output_dtype=torch.float16,
                         group_sizes=[0, 0, 256])
    with pytest.raises(ValueError, match="output_dtype: int8"):
        npu_quant_matmul(x1, packed, q, offset=y_off, pertoken_scale=ptk,
                         group_sizes=[0, 0, 256])
    with pytest.raises(ValueError, match="bias"):
        npu_quant_matmul(x1, packed, q, bias=y_off, group_sizes=[0, 0, 256], **kw)
    with pytest.raises(ValueError, match="Atlas inference"):
        npu_quant_matmul(x1, packed, q, group_sizes=[0, 0, 256], soc="Ascend310P3", **kw)


def test_a8w4_per_channel_and_nz_weight_name_what_is_missing():
    """aclnnQuantMatmulV5 allows per-channel A8W4 (a 1-D uint64 scale, group_k 0; torch_npu
    passes group 0 without group_sizes) but the public A2 kernel source has no kernel for it:
    NotImplementedError naming it, from the API and from simulate(); a 1-D scale with
    group_k 256 breaks aclnn's rule (ValueError). An NZ int32 weight: NotImplementedError."""
    import npusim
    from npusim.torch_npu import npu_format_cast

    x1, w, scale, ptk, y_off = _a8w4_inputs()
    packed = npu_convert_weight_to_int4pack(w)
    q1 = npu_trans_quant_param(scale[0].contiguous())  # (n,) per channel
    kw = dict(offset=y_off, pertoken_scale=ptk.reshape(-1), output_dtype=torch.float16)
    for gs in (None, [0, 0, 0]):
        with pytest.raises(NotImplementedError, match=r"per-channel A8W4.*no kernel"):
            npu_quant_matmul(x1, packed, q1, group_sizes=gs, **kw)
    with pytest.raises(NotImplementedError, match="per-channel A8W4"):
        npusim.simulate("quant_matmul", "Ascend910B2", x1=x1.numpy(), x2=packed.numpy(),
                        scale=q1.numpy(), offset=y_off.numpy(),
                        pertoken_scale=ptk.reshape(-1).numpy(), output_dtype="float16",
                        group_sizes=[0, 0, 0])
    with pytest.raises(ValueError, match=r"per-channel .* group_k = 0 only"):
        npu_quant_matmul(x1, packed, q1, group_sizes=[0, 0, 256], **kw)
    q = npu_trans_quant_param(scale.reshape(-1)).reshape(scale.shape)
    nz = npu_format_cast(packed, 29)
    with pytest.raises(NotImplementedError, match="FRACTAL_NZ"):
        npu_quant_matmul(x1, nz, q, offset=y_off, pertoken_scale=ptk,
                         output_dtype=torch.float16, group_sizes=[0, 0, 256])


def test_a4w4_pertoken_equals_the_int8_pertoken_path():
    """int4 x int4 with a float32 scale and a per-token scale runs the same vector epilogue as
    int8 x int8 (fp32(acc) * scale * pertoken, RINT cast): the same values give the same bits,
    for float16 and bfloat16 output; a bias is refused (not in the table's int32 row)."""
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(-8, 8, (16, 64), generator=gen)
    b = torch.randint(-8, 8, (64, 32), generator=gen)
    scale = torch.rand(1, generator=gen)
    ptk = torch.rand(16, generator=gen)
    one = torch.tensor([1.0])
    qa = npu_quantize(a.float(), one, None, torch.quint4x2, -1, False)
    qb = npu_quantize(b.float(), one, None, torch.quint4x2, -1, False)
    for out_dtype in (torch.float16, torch.bfloat16):
        y4 = npu_quant_matmul(qa, qb, scale, pertoken_scale=ptk, output_dtype=out_dtype)
        y8 = npu_quant_matmul(a.to(torch.int8), b.to(torch.int8), scale, pertoken_scale=ptk,
                              output_dtype=out_dtype)
        assert y4.shape == (16, 32) and torch.equal(y4.view(torch.int16), y8.view(torch.int16))
    with pytest.raises(ValueError, match="supported-combination table"):
        npu_quant_matmul(qa, qb, scale, pertoken_scale=ptk, bias=torch.zeros(32),
                         output_dtype=torch.float16)


def test_310p_batched_weight_quant_broadcasts_batches_of_the_2d_call():
    """On 310P a batched x / weight (op-plugin's 310P test passes 4-D operands) broadcasts
    its batch dims; each output matrix is the 2-D call on its pair (declared: batches are
    independent problems), non-transposed int8 weights included; A2 still refuses batches."""
    from npusim.torch_npu import npu_weight_quant_batchmatmul

    gen = torch.Generator().manual_seed(2)
    x = torch.randn((2, 1, 4, 32), generator=gen).half()
    w = torch.randint(-128, 128, (3, 32, 16), dtype=torch.int8, generator=gen)
    s = (torch.rand((1, 16), generator=gen) / 64).half()
    o = torch.randn((1, 16), generator=gen).half()
    y = npu_weight_quant_batchmatmul(x, w, s, o, soc="Ascend310P3")
    assert y.shape == (2, 3, 4, 16) and y.dtype == torch.float16
    for i in range(2):
        for j in range(3):
            want = npu_weight_quant_batchmatmul(x[i, 0], w[j], s, o, soc="Ascend310P3")
            assert torch.equal(y[i, j].view(torch.int16), want.view(torch.int16))
    ref = torch.matmul(x.float(), ((w.float() + o.float()) * s.float()))
    assert torch.allclose(y.float(), ref, rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="A2/A3"):
        npu_weight_quant_batchmatmul(x, w, s, o, soc="Ascend910B2")
