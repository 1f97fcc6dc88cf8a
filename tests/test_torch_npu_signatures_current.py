"""Current torch_npu signatures on npusim: LinearWeightQuant as a torch.nn.Module, weight_dtype=,
npu_quant_matmul with an NZ x2 / int4 (A4W4) operands / unmodelled keywords, npu_quantize
(torch needed; skipped without it)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from npusim.torch_npu import (  # noqa: E402
    npu_format_cast,
    npu_quant_matmul,
    npu_quantize,
    npu_trans_quant_param,
    npu_weight_quant_batchmatmul,
)
from npusim.torch_npu.contrib.module import LinearWeightQuant  # noqa: E402


def test_linear_weight_quant_is_a_module_with_torch_npus_parameters():
    """Parameters as torch_npu registers them (absent ones are None), state_dict lists them,
    .data assignment works, .npu() is a no-op on CPU, forward equals the operator call on the
    transposed weight."""
    mod = LinearWeightQuant(64, 32, bias=False, antiquant_offset=True, weight_dtype=torch.int8)
    assert isinstance(mod, torch.nn.Module)
    assert set(mod.state_dict()) == {"weight", "antiquant_scale", "antiquant_offset"}
    assert mod.bias is None and mod.quant_scale is None and mod.weight.shape == (32, 64)
    mod = mod.npu()
    w = torch.randint(-8, 8, (32, 64), dtype=torch.int8)
    s, o = torch.rand(32).half() / 8, torch.randint(-2, 2, (32,)).half()
    mod.weight.data, mod.antiquant_scale.data, mod.antiquant_offset.data = w, s, o
    x = torch.randn(4, 64).half()
    y = mod(x)
    want = npu_weight_quant_batchmatmul(x, w.t(), s, o)
    assert torch.equal(y.view(torch.int16), want.view(torch.int16)) and mod.kernel


def test_weight_dtype_checks():
    """weight_dtype must match the weight (int8 / int32-carrying-int4); Ascend950 weight types
    raise NotImplementedError naming the argument."""
    x, w, s = torch.randn(2, 64).half(), torch.randint(-8, 8, (64, 32), dtype=torch.int8), \
        torch.rand(32).half()
    npu_weight_quant_batchmatmul(x, w, s, weight_dtype=torch.int8)
    with pytest.raises(TypeError, match="weight_dtype"):
        npu_weight_quant_batchmatmul(x, w, s, weight_dtype=torch.quint4x2)
    with pytest.raises(NotImplementedError, match="weight_dtype"):
        npu_weight_quant_batchmatmul(x, w, s, weight_dtype="hifloat8")


def test_quant_matmul_reads_an_nz_weight_as_its_values():
    """An NZ x2 (and its transposed view) gives the same bits as the ND weight."""
    x1 = torch.randint(-5, 5, (8, 64), dtype=torch.int8)
    x2 = torch.randint(-5, 5, (64, 48), dtype=torch.int8)
    scale = torch.rand(48) / 32
    nd = npu_quant_matmul(x1, x2, scale, output_dtype=torch.bfloat16)
    nz = npu_quant_matmul(x1, npu_format_cast(x2, 29), scale, output_dtype=torch.bfloat16)
    assert torch.equal(nd.view(torch.int16), nz.view(torch.int16))
    w_nk = npu_format_cast(x2.t().contiguous(), 29)
    tr = npu_quant_matmul(x1, w_nk.t(), scale, output_dtype=torch.bfloat16)
    assert torch.equal(nd.view(torch.int16), tr.view(torch.int16))


def test_a4w4_through_npu_quantize_and_unmodelled_keywords():
    """npu_quantize packs exact int4 values (8 per int32); int4 x int4 with an int64 scale gives
    acc * M1 in float16; group_sizes makes it the per-group form (its group_k rule refuses
    32: ops-nn takes 256 only); the Ascend950 dtype keywords raise NotImplementedError naming
    them; npu_quantize rounds half to even (its program's RINT casts)."""
    a = torch.randint(-5, 5, (4, 64)).float()
    b = torch.randint(-5, 5, (48, 64)).float()
    one = torch.tensor([1.0])
    qa = npu_quantize(a, one, None, torch.quint4x2, -1, False)
    qb = npu_quantize(b, one, None, torch.quint4x2, -1, False)
    assert qa.dtype == torch.int32 and qa.shape == (4, 8)
    q = npu_trans_quant_param(torch.tensor([0.5]))
    y = npu_quant_matmul(qa, qb.t(), q, output_dtype=torch.float16)
    want = (a @ b.t() * 0.5).half()
    assert torch.equal(y, want)
    with pytest.raises(ValueError, match="group_k = 256 only"):  # ops-nn: per-group A4W4
        npu_quant_matmul(qa, qb.t(), q, output_dtype=torch.float16, group_sizes=[0, 0, 32])
    with pytest.raises(NotImplementedError, match="x1_dtype"):
        npu_quant_matmul(qa, qb.t(), q, output_dtype=torch.float16, x1_dtype=torch.int8)
    assert npu_quantize(torch.tensor([[0.5, 1.5, 2.5, -0.5, -1.5, 3.5, 0.49, -2.51]]), one,
                        None, torch.qint8, -1, False).tolist() == [[0, 2, 2, 0, -2, 4, 0, -3]]
    assert np.array_equal(npu_quantize(torch.tensor([[300.0, -300.0]]), one, None, torch.qint8,
                                       -1, False).numpy(), [[127, -128]])
