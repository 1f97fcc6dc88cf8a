"""The torch NPU tensor model: the format lives on the storage, so views, ``Parameter.data``
assignment and in-place casts keep it; new storages start from torch_npu's default for their
shape; casts keep the logical shape, values and autograd (torch needed; skipped without it)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from npusim.layouts import nd_to_nz  # noqa: E402
from npusim.torch_npu import (  # noqa: E402
    get_npu_format,
    npu_format_cast,
    npu_format_cast_,
    npu_storage_array,
)
from npusim.torch_npu._tensor import register  # noqa: E402


def test_views_share_the_storage_format_and_new_storages_do_not():
    """.t(), slicing, .view and Parameter.data keep NZ; .contiguous() of a view and .clone() are
    new storages with the default format (ND; NCHW for 4-D)."""
    z = npu_format_cast(torch.arange(32 * 48, dtype=torch.float16).reshape(32, 48), 29)
    for view in (z.t(), z[3:], z.view(-1), z.transpose(0, 1)[1]):
        assert get_npu_format(view) == 29
    assert get_npu_format(z.t().contiguous()) == 2
    assert get_npu_format(z.clone()) == 2
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float16), requires_grad=False)
    p.data = z
    assert get_npu_format(p) == 29 and torch.equal(p, z)
    assert get_npu_format(torch.zeros(2, 3, 4, 5)) == 0


def test_nz_storage_size_and_bytes_follow_c0():
    """Storage elements are the padded fractal count: C0 = 32 B / min(itemsize, 2) by default,
    32 B / itemsize of customize_dtype (int32 -> 8); npu_storage_array gives the NZ order."""
    x = torch.randint(0, 100, (15, 17), dtype=torch.int32)
    default = npu_format_cast(x, 29)
    c8 = npu_format_cast(x, 29, customize_dtype=torch.int32)
    assert default.untyped_storage().nbytes() == 2 * 1 * 16 * 16 * 4
    assert c8.untyped_storage().nbytes() == 3 * 1 * 16 * 8 * 4
    assert npu_format_cast(x, 29, customize_dtype=3).untyped_storage().nbytes() == 1536
    want = nd_to_nz(x.numpy(), 8)
    assert np.array_equal(npu_storage_array(c8).view(np.uint32), want.view(np.uint32))
    assert np.array_equal(npu_storage_array(c8.t()), want)  # the view's storage


def test_one_d_and_scalar_stay_nd_and_view_casts_keep_the_view():
    """NZ of a 1-D base is ND (torch_npu's fallback); a 1-D view of a 2-D base becomes NZ of
    that base, still viewed 1-D, values unchanged."""
    v = torch.rand(7)
    out = npu_format_cast(v, 29)
    assert get_npu_format(out) == 2 and out is v
    base = register(torch.rand(32, 64).half())  # what .npu() does in the drop-in mode
    flat = base.reshape(-1)
    nz = npu_format_cast(flat, 29)
    assert get_npu_format(nz) == 29 and nz.shape == (2048,) and torch.equal(nz, flat)


def test_base_format_relabel_and_private_to_base_groups():
    """Between base formats the storage is relabelled in place (the same tensor); a private
    format cast to ND on 4-D lands on NCHW, on 5-D on ND; a tensor is accepted as format."""
    x = torch.rand(2, 2, 4, 4).half()
    seq = [(2, 2), (3, 3), (0, 0), (3, 3), (2, 0), (29, 29), (0, 0)]
    for asked, got in seq:
        y = npu_format_cast(x, asked)
        assert get_npu_format(y) == got and torch.equal(y, x)
        x = y
    five = torch.rand(2, 2, 2, 2, 4)
    assert get_npu_format(npu_format_cast(npu_format_cast(five, 33), 2)) == 2
    assert npu_format_cast(x, 2) is x or get_npu_format(x) == 0
    ref = npu_format_cast(torch.rand(16, 16).half(), 29)
    assert get_npu_format(npu_format_cast(torch.rand(8, 16).half(), ref)) == 29


def test_in_place_cast_and_errors():
    """npu_format_cast_ moves the tensor itself; same format is a no-op on the same storage;
    unknown formats and non-int formats raise naming acl_format."""
    t = torch.rand(15, 17).half()
    expected = t.clone()
    ptr = t.untyped_storage().data_ptr()
    assert npu_format_cast_(t, 2) is t and t.untyped_storage().data_ptr() == ptr
    npu_format_cast_(t, 29)
    assert get_npu_format(t) == 29 and t.untyped_storage().nbytes() == 2 * 1 * 256 * 2
    npu_format_cast_(t, 2)
    assert get_npu_format(t) == 2 and torch.equal(t, expected)
    with pytest.raises(ValueError, match="acl_format: 5"):
        npu_format_cast(t, 5)
    with pytest.raises(TypeError, match="acl_format"):
        npu_format_cast(t, "29")


def test_cast_keeps_requires_grad_and_passes_gradients():
    """A cast output requires grad when its input does; the gradient passes through."""
    a = torch.rand(2, 3, requires_grad=True)
    b = npu_format_cast(a, 29)
    assert b.requires_grad
    (b * 2).sum().backward()
    assert torch.equal(a.grad, torch.full((2, 3), 2.0))
