"""npu_trans_quant_param (ops-semantics 3): encoding, broadcasting, errors, the seed outputs."""

import numpy as np
import pytest

from npusim.numerics import decode_quant_param
from npusim.ops.trans_quant_param import trans_quant_param

SEED_OUT = [
    70507248869376,
    70509369614336,
    70507209793536,
    140463653937152,
    140603250524160,
    140603257561088,
    140603230814208,
    70369813069824,
    70369794605056,
    140463675252736,
    70784266256384,
    70507233009664,
    140601114345472,
    70371966238720,
    140603258257408,
    140603254505472,
]


def test_seed_outputs_decode_and_reencode():
    """The 16 hardware outputs of seed 003 decode to (scale, offset) pairs with bit 46 set and
    the low 13 bits clear, and re-encode to the same integers."""
    q = np.array(SEED_OUT, np.int64)
    d = decode_quant_param(q)
    assert np.all(d.signed)
    assert np.all(d.m1.view(np.uint32) & 0x1FFF == 0)
    assert np.all(np.abs(d.offset) <= 3)
    again = trans_quant_param(d.m1, d.offset.astype(np.float32))
    assert again.tolist() == SEED_OUT


def test_broadcasting_rules():
    """1-D scale with an offset: output length = the larger length; (1, n) stays (1, n)."""
    s1 = np.array([0.5], np.float32)
    offs = np.array([1.0, -2.0, 3.0], np.float32)
    assert trans_quant_param(s1, offs).shape == (3,)
    assert trans_quant_param(np.ones((1, 4), np.float32)).shape == (1, 4)
    out = trans_quant_param(np.array([1.0, 0.1], np.float32), np.array([1.0], np.float32))
    assert out.tolist() == [70507248484352, 70507219959808]


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        ({"scale": np.ones(3, np.float16)}, TypeError, "scale: dtype float16"),
        ({"scale": np.ones((2, 3), np.float32)}, ValueError, r"scale: shape \(2, 3\)"),
        (
            {"scale": np.ones(3, np.float32), "offset": np.ones(2, np.float32)},
            ValueError,
            "lengths 3 and 2",
        ),
        ({"scale": np.ones(3, np.float32), "round_mode": 2}, ValueError, "round_mode: must be 0"),
        (
            {"scale": np.ones((1, 3), np.float32), "offset": np.ones(3, np.float32)},
            ValueError,
            "must equal scale's",
        ),
    ],
)
def test_errors_name_the_argument(kwargs, exc, msg):
    """Each rule of ops-semantics 3.1/3.2 raises naming the argument."""
    with pytest.raises(exc, match=msg):
        trans_quant_param(**kwargs)
