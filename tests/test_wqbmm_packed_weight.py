"""An ND int4 weight's stored (packed) form is the caller's packing, not a re-pack of the unpacked
values: WqbmmArgs.packed_weight equals what stored_weight packs from the values, bit for bit,
plain and transposed, and a functional run's bits do not depend on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from npusim.numerics import pack_int4
from npusim.ops.weight_quant_batchmatmul.args import normalize_args
from npusim.ops.weight_quant_common import stored_weight


@pytest.mark.parametrize("trans", [False, True])
def test_packed_weight_is_the_repacked_values(trans):
    rng = np.random.default_rng(3)
    k, n = 64, 32
    vals = rng.integers(-8, 8, (n, k) if trans else (k, n)).astype(np.int8)
    packed = pack_int4(vals)
    w = packed.T if trans else packed  # a transposed (K/8, N) view of the (N, K/8) matrix
    x = rng.standard_normal((4, k)).astype(np.float16)
    sc = (rng.random(n) * 0.01).astype(np.float16)
    args = normalize_args(x, w, sc, soc="Ascend910B2")
    assert args.packed_weight is not None and args.trans_b == trans
    repacked = stored_weight(dataclasses.replace(args, packed_weight=None), "Msd")
    np.testing.assert_array_equal(args.packed_weight.view(np.uint32), repacked.view(np.uint32))
    assert stored_weight(args, "Msd") is args.packed_weight
    packed[...] = 0  # the args hold a copy
    assert args.packed_weight.any()
