"""The torch_npu-named elementwise API: signatures and defaults, SoC support per seed, numpy in ->
numpy out, torch in -> torch out (torch tests skip cleanly when torch is not installed)."""

import inspect

import ml_dtypes
import numpy as np
import pytest

from npusim.layouts import FormattedArray
from npusim.ops.group_quant import HardwareTrapError
from npusim.torch_npu import (
    npu_convert_weight_to_int4pack,
    npu_format_cast,
    npu_group_quant,
    npu_trans_quant_param,
)

SEED_X = np.array([[1.0029, -1.2373, 1.0107, -0.2681], [0.5791, 0.1101, 1.0059, -0.9658],
                   [-1.7637, 1.7588, -1.3193, 0.3989], [1.3262, 0.4854, 1.9551, 0.9697],
                   [-0.8770, -1.8828, 2.1777, -0.0050], [0.4722, 0.5605, 0.8267, -0.9810]],
                  np.float16)
SEED_SCALE = np.array([[-0.2710, -0.9381, 0.2850, -1.1230], [0.5217, -0.7233, -0.1730, -0.1245],
                       [-1.5433, -0.9129, -2.2095, 1.7371], [-0.8253, 0.3973, 0.1430, 0.3885]],
                      np.float32)
SEED_Y = [[-1, 0, -1, -1], [-1, -1, -1, -1], [-2, -2, -1, -1], [0, -2, -2, -1], [0, 1, -6, -1],
          [-2, -2, -3, -3]]


def _params(fn):
    return {n: (p.kind.name, p.default) for n, p in inspect.signature(fn).parameters.items()}


def test_signatures_and_defaults_match_torch_npu():
    """torch_npu's parameter names, order, keyword-only markers and defaults, plus soc=None and
    fidelity=None."""
    empty = inspect.Parameter.empty
    assert list(_params(npu_convert_weight_to_int4pack).items())[:3] == [
        ("weight", ("POSITIONAL_OR_KEYWORD", empty)),
        ("inner_k_tiles", ("POSITIONAL_OR_KEYWORD", 0)),
        ("soc", ("KEYWORD_ONLY", None))]
    assert list(_params(npu_trans_quant_param).items()) == [
        ("scale", ("POSITIONAL_OR_KEYWORD", empty)),
        ("offset", ("POSITIONAL_OR_KEYWORD", None)),
        ("round_mode", ("POSITIONAL_OR_KEYWORD", 0)),
        ("soc", ("KEYWORD_ONLY", None)),
        ("fidelity", ("KEYWORD_ONLY", None))]
    assert list(_params(npu_group_quant).items())[:6] == [
        ("x", ("POSITIONAL_OR_KEYWORD", empty)),
        ("scale", ("POSITIONAL_OR_KEYWORD", empty)),
        ("group_index", ("POSITIONAL_OR_KEYWORD", empty)),
        ("offset", ("KEYWORD_ONLY", None)),
        ("dst_dtype", ("KEYWORD_ONLY", None)),
        ("soc", ("KEYWORD_ONLY", None))]
    assert list(_params(npu_format_cast).items()) == [
        ("x", ("POSITIONAL_OR_KEYWORD", empty)),
        ("acl_format", ("POSITIONAL_OR_KEYWORD", empty)),
        ("customize_dtype", ("KEYWORD_ONLY", None)),
        ("input_dtype", ("KEYWORD_ONLY", None)),
        ("soc", ("KEYWORD_ONLY", None)),
        ("fidelity", ("KEYWORD_ONLY", None))]


def test_numpy_in_numpy_out():
    """Each op takes numpy arrays and returns numpy arrays with the NPU's bits."""
    y = npu_group_quant(SEED_X, SEED_SCALE, np.array([1, 4, 6, 6], np.int32),
                        offset=np.array([-1.1658], np.float32), dst_dtype="torch.qint8")
    assert type(y) is np.ndarray and y.tolist() == SEED_Y
    q = npu_trans_quant_param(np.array([1.0], np.float32), np.array([1.0], np.float32))
    assert type(q) is np.ndarray and q.dtype == np.int64 and q.tolist() == [70507248484352]
    p = npu_convert_weight_to_int4pack(np.array([[0, 1, 2, 3, 4, 5, 6, 7]], np.int32))
    assert type(p) is np.ndarray and p.tolist() == [[0x76543210]]


def test_nz_results_feed_on():
    """format_cast(w, 29) -> int4pack: the NZ result carries format 29 and origin (k, n/8) and
    format_cast(., 2) of it equals packing the ND weight."""
    w = (np.arange(20 * 128, dtype=np.int32).reshape(20, 128) % 16) - 8
    packed_nz = npu_convert_weight_to_int4pack(npu_format_cast(w, 29))
    assert isinstance(packed_nz, FormattedArray) and packed_nz.npu_format == 29
    assert packed_nz.origin_shape == (20, 16) and packed_nz.shape == (2, 2, 16, 8)
    assert np.array_equal(npu_format_cast(packed_nz, 2), npu_convert_weight_to_int4pack(w))


def test_flags_pass_through():
    """emulate_hardware_masking and emulate_hardware_trap reach the references."""
    masked = npu_convert_weight_to_int4pack(np.full((1, 8), 17, np.int32),
                                            emulate_hardware_masking=True)
    assert masked.view(np.uint32).tolist() == [[0x11111111]]
    with pytest.raises(HardwareTrapError):
        npu_group_quant(np.zeros((4, 8), np.float16), np.ones((1, 8), np.float16),
                        np.array([3], np.int32), emulate_hardware_trap=True)


@pytest.mark.parametrize(
    "op,soc,ok",
    [
        ("int4pack", "Ascend910B4", True),
        ("int4pack", "Ascend910_9391", True),
        ("int4pack", "Ascend310P3", False),
        ("group_quant", "Ascend910B1", True),
        ("group_quant", "Ascend910_9362", True),
        ("group_quant", "Ascend310P1", False),
        ("trans_quant_param", "Ascend910B2", True),
        ("trans_quant_param", "Ascend910_9391", True),
        ("trans_quant_param", "Ascend310P5", True),
        ("format_cast", "Ascend310P3", True),
        ("format_cast", "Ascend910B3", True),
    ],
)
def test_soc_support_follows_the_seeds(op, soc, ok):
    """int4pack and group_quant run on Atlas A2 / A3 only (seeds 000, 004); trans_quant_param
    also on the Atlas inference series, 310P (seed 003); format_cast everywhere."""
    calls = {
        "int4pack": lambda: npu_convert_weight_to_int4pack(np.zeros((1, 8), np.int32), soc=soc),
        "group_quant": lambda: npu_group_quant(np.zeros((2, 8), np.float16),
                                               np.ones((1, 8), np.float16),
                                               np.array([2], np.int32), soc=soc),
        "trans_quant_param": lambda: npu_trans_quant_param(np.ones(2, np.float32), soc=soc),
        "format_cast": lambda: npu_format_cast(np.ones((2, 8), np.float16), 29, soc=soc),
    }
    if ok:
        calls[op]()
    else:
        with pytest.raises(ValueError, match=f"soc: .* not supported on {soc}"):
            calls[op]()


def test_soc_names_and_descriptors():
    """soc=None is the package default (an A2 part); an unknown name raises naming soc; a loaded
    descriptor is accepted by its name; other objects raise TypeError."""
    from npusim.hw.loader import load_soc

    npu_group_quant(np.zeros((2, 8), np.float16), np.ones((1, 8), np.float16),
                    np.array([2], np.int32), soc=None)
    with pytest.raises(ValueError, match="soc: 'Ascend999' is not a known SoC"):
        npu_format_cast(np.ones((2, 8), np.float16), 29, soc="Ascend999")
    with pytest.raises(ValueError, match="soc: npu_group_quant is not supported on Ascend310P3"):
        npu_group_quant(np.zeros((2, 8), np.float16), np.ones((1, 8), np.float16),
                        np.array([2], np.int32), soc=load_soc("Ascend310P3"))
    with pytest.raises(TypeError, match="soc: must be a SoC name"):
        npu_format_cast(np.ones((2, 8), np.float16), 29, soc=3)


def test_validation_errors_surface_unchanged():
    """Bad arguments raise the operators' ValueError / TypeError naming the argument."""
    with pytest.raises(TypeError, match="scale: dtype float64"):
        npu_trans_quant_param(np.ones(3))
    with pytest.raises(ValueError, match="acl_format: 3"):
        npu_format_cast(np.ones((2, 8), np.float16), 3)
    with pytest.raises(ValueError, match="dst_dtype: "):
        npu_group_quant(np.zeros((2, 8), np.float16), np.ones((1, 8), np.float16),
                        np.array([2], np.int32), dst_dtype="int16")


# ---- torch CPU tensors (skipped cleanly when torch is not installed) ------------------------
def test_torch_group_quant_in_and_out():
    """torch tensors in -> torch tensor out; the seed example through torch (qint8 dst_dtype)
    and bf16 x with quint4x2 output."""
    torch = pytest.importorskip("torch")
    y = npu_group_quant(torch.from_numpy(SEED_X), torch.from_numpy(SEED_SCALE),
                        torch.tensor([1, 4, 6, 6], dtype=torch.int32),
                        offset=torch.tensor([-1.1658], dtype=torch.float32),
                        dst_dtype=torch.qint8)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.int8 and y.tolist() == SEED_Y
    xb = torch.tensor([[0.5, 1.5, 2.5, -2.5, 7.0, 9.0, -9.0, -0.5]], dtype=torch.bfloat16)
    y4 = npu_group_quant(xb, torch.ones((1, 8), dtype=torch.bfloat16),
                         torch.tensor([1], dtype=torch.int64), dst_dtype=torch.quint4x2)
    assert y4.dtype == torch.int32 and y4.shape == (1, 1)
    want = sum((v & 0xF) << (4 * t) for t, v in enumerate([0, 2, 2, -2, 7, 7, -8, 0]))
    assert y4.view(torch.int32).numpy().view(np.uint32).tolist() == [[want]]


def test_torch_bf16_round_trip_is_bit_exact():
    """bf16 tensors cross through an int16 view: the numpy side sees the same bits."""
    torch = pytest.importorskip("torch")
    from npusim.torch_npu._convert import to_numpy, to_output

    bits = torch.tensor([0x3F80, 0x7F7F, 0x0001, -0x8000, 0x7FC1, -0x80], dtype=torch.int16)
    t = bits.view(torch.bfloat16)
    arr, was_torch = to_numpy(t)
    assert was_torch and arr.dtype == np.dtype(ml_dtypes.bfloat16)
    assert arr.view(np.int16).tolist() == bits.tolist()
    back = to_output(arr, True)
    assert back.dtype == torch.bfloat16 and back.view(torch.int16).tolist() == bits.tolist()


def test_torch_transposed_tensor_keeps_values():
    """A non-contiguous (transposed) tensor converts to the same logical values."""
    torch = pytest.importorskip("torch")
    from npusim.torch_npu._convert import to_numpy

    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    arr, _ = to_numpy(t)
    assert arr.shape == (4, 3) and arr.tolist() == t.tolist()


def test_torch_trans_quant_param_and_int4pack():
    """int64 and int32 results come back as torch tensors with the NPU's values."""
    torch = pytest.importorskip("torch")
    q = npu_trans_quant_param(torch.tensor([1.0, 0.1]), torch.tensor([1.0]), round_mode=1)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.int64
    assert q.tolist() == npu_trans_quant_param(np.array([1.0, 0.1], np.float32),
                                               np.array([1.0], np.float32), 1).tolist()
    p = npu_convert_weight_to_int4pack(torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]],
                                                    dtype=torch.int32))
    assert p.dtype == torch.int32 and p.tolist() == [[0x76543210]]


def test_torch_nz_tensor_feeds_on():
    """A FRACTAL_NZ torch result keeps the logical shape and values, reports format 29, its
    storage holds the NZ element count, and it feeds int4pack (NZ out, C0 = 8) and casts back."""
    torch = pytest.importorskip("torch")
    from npusim.layouts import nd_to_nz
    from npusim.torch_npu import get_npu_format, npu_storage_array

    w = (torch.arange(20 * 64, dtype=torch.int32).reshape(20, 64) % 16) - 8
    z = npu_format_cast(w, 29)
    assert tuple(z.shape) == (20, 64) and get_npu_format(z) == 29 and torch.equal(z, w)
    assert z.untyped_storage().nbytes() == 4 * 2 * 16 * 16 * 4
    assert np.array_equal(npu_storage_array(z), nd_to_nz(w.numpy(), 16))
    assert npu_format_cast(w, 2) is w
    back = npu_format_cast(z, 2)
    assert get_npu_format(back) == 2 and torch.equal(back, w)
    packed = npu_convert_weight_to_int4pack(z)
    assert get_npu_format(packed) == 29 and tuple(packed.shape) == (20, 8)
    assert npu_storage_array(packed).shape == (1, 2, 16, 8)
    assert torch.equal(packed, npu_convert_weight_to_int4pack(w))
