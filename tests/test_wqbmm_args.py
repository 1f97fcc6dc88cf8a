"""Validation of npu_weight_quant_batchmatmul arguments (seed 002, ops-semantics 5.1-5.2).

Each case breaks exactly one rule of a valid call and checks the error type and that the
message names the argument."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from _wqbmm_oracle import NzArray, nz_storage, pack_int4

from npusim.ops.weight_quant_batchmatmul import (
    is_transpose_last_two_dims,
    normalize_args,
    transpose_nz,
)

BF16 = ml_dtypes.bfloat16
RNG = np.random.default_rng(1)
M, K, N = 4, 128, 64


def _call(**over):
    """A valid fp16 per-channel int8 call with every optional input, then the overrides."""
    base = dict(
        x=RNG.standard_normal((M, K)).astype(np.float16),
        weight=RNG.integers(-128, 128, (K, N), dtype=np.int8),
        antiquant_scale=RNG.random(N).astype(np.float16),
        antiquant_offset=RNG.random(N).astype(np.float16),
        quant_scale=None,
        quant_offset=None,
        bias=RNG.random(N).astype(np.float16),
        antiquant_group_size=0,
        inner_precise=0,
    )
    base.update(over)
    return base


def _raises(exc, match, **over):
    kw = _call(**over)
    with pytest.raises(exc, match=match):
        normalize_args(**kw)


def test_valid_call_normalises():
    """A valid call yields the logical (K, N) weight, (1, N) parameters and fp16 output."""
    a = normalize_args(**_call())
    assert (a.m, a.k, a.n) == (M, K, N)
    assert a.antiquant_scale.shape == (1, N) and a.out_dtype == "float16"
    assert a.quant_type == "per_channel" and not a.trans_b


def test_transposed_weight_from_strides():
    """A transposed view of a contiguous (N, K) array is trans_b; its values are read as (K, N)."""
    w_nk = RNG.integers(-128, 128, (N, K), dtype=np.int8)
    a = normalize_args(**_call(weight=w_nk.T))
    assert a.trans_b
    assert np.array_equal(a.weight, w_nk.T)
    assert not normalize_args(**_call(weight=np.ascontiguousarray(w_nk.T))).trans_b


def test_transpose_rule_matches_torch():
    """stride(-2) == itemsize and stride(-1) == size(-2)*itemsize; a (1, 1) block is not."""
    assert is_transpose_last_two_dims(np.zeros((5, 3), np.int8).T)
    assert not is_transpose_last_two_dims(np.zeros((3, 5), np.int8))
    assert not is_transpose_last_two_dims(np.zeros((1, 1), np.int8).T)
    assert is_transpose_last_two_dims(np.zeros((7, 1), np.int8).T)
    assert not is_transpose_last_two_dims(np.zeros((6, 6), np.int8)[:, ::2])


def test_int4_packed_weight_k_and_n():
    """int32 weights carry 8 int4: N = size(-1)*8, or K = size(-2)*8 when transposed."""
    vals = RNG.integers(-8, 8, (K, N), dtype=np.int8)
    a = normalize_args(**_call(weight=pack_int4(vals)))
    assert a.weight_dtype == "int4" and np.array_equal(a.weight, vals)
    a = normalize_args(**_call(weight=pack_int4(np.ascontiguousarray(vals.T)).T))
    assert a.trans_b and np.array_equal(a.weight, vals)


def test_nz_weight_and_transpose_nz():
    """FRACTAL_NZ storage is decoded through origin_shape; transpose_nz marks an (N, K) origin."""
    vals = RNG.integers(-128, 128, (K, N), dtype=np.int8)
    a = normalize_args(**_call(weight=NzArray(nz_storage(vals, 32), vals.shape)))
    assert a.weight_format == "NZ" and np.array_equal(a.weight, vals) and not a.trans_b
    t = transpose_nz(NzArray(nz_storage(np.ascontiguousarray(vals.T), 32), (N, K)))
    a = normalize_args(**_call(weight=t))
    assert a.trans_b and np.array_equal(a.weight, vals)


def test_quant_type_detection():
    """One scale element -> per-tensor; group size > 0 -> per-group; else per-channel."""
    assert (
        normalize_args(
            **_call(antiquant_scale=np.ones(1, np.float16), antiquant_offset=None)
        ).quant_type
        == "per_tensor"
    )
    g = 32
    s = np.ones((K // g, N), np.float16)
    a = normalize_args(**_call(antiquant_scale=s, antiquant_offset=s, antiquant_group_size=g))
    assert a.quant_type == "per_group" and a.n_groups == K // g


def test_float32_quant_scale_is_trans_quant_param_round_mode_0():
    """A float32 quant_scale becomes trans_quant_param(scale, offset) with truncation and
    RINT offsets; the output is int8."""
    qs = np.array([0.1] * N, np.float32)
    qo = np.array([2.5] * N, np.float32)
    a = normalize_args(**_call(quant_scale=qs, quant_offset=qo))
    assert a.out_dtype == "int8" and a.quant_scale_type == "per_channel"
    assert int(a.quant_param[0]) == 0x40403DCCC000  # ops-semantics 8.2


BAD_CASES = [
    # (exception, match, overrides)
    (TypeError, "x", dict(x=RNG.standard_normal((M, K)).astype(np.float32))),
    (TypeError, "x", dict(x=[[1.0]])),
    (ValueError, "x.ndim", dict(x=np.zeros((1, M, K), np.float16))),
    (ValueError, "empty", dict(x=np.zeros((0, K), np.float16))),
    (TypeError, "weight.dtype", dict(weight=np.zeros((K, N), np.int16))),
    (ValueError, "weight.ndim", dict(weight=np.zeros((1, K, N), np.int8))),
    (ValueError, "k of x and weight", dict(weight=np.zeros((K + 32, N), np.int8))),
    (
        ValueError,
        "65535",
        dict(
            x=np.zeros((1, 65536), np.float16),
            weight=np.zeros((65536, 2), np.int8),
            antiquant_scale=np.ones(2, np.float16),
            antiquant_offset=None,
            bias=None,
        ),
    ),
    (ValueError, "antiquant_group_size", dict(antiquant_group_size=48)),
    (ValueError, "antiquant_group_size", dict(antiquant_group_size=K)),
    (TypeError, "antiquant_group_size", dict(antiquant_group_size=32.0)),
    (ValueError, "inner_precise", dict(inner_precise=2)),
    (TypeError, "inner_precise", dict(inner_precise=True)),
    (TypeError, "antiquant_scale.dtype", dict(antiquant_scale=np.ones(N, np.float32))),
    (TypeError, "antiquant_scale.dtype", dict(antiquant_scale=np.ones(N, BF16))),
    (
        ValueError,
        "antiquant_scale.shape",
        dict(antiquant_scale=np.ones(N + 1, np.float16), antiquant_offset=None),
    ),
    (
        ValueError,
        "antiquant_scale.shape",
        dict(antiquant_scale=np.ones((N, 1), np.float16), antiquant_offset=None),
    ),
    (ValueError, "antiquant_scale.shape", dict(antiquant_group_size=32)),
    (ValueError, "antiquant_offset.shape", dict(antiquant_offset=np.ones(1, np.float16))),
    (TypeError, "antiquant_offset.dtype", dict(antiquant_offset=np.ones(N, np.float32))),
    (ValueError, "quant_offset", dict(quant_offset=np.ones(N, np.float32))),
    (TypeError, "quant_scale.dtype", dict(quant_scale=np.ones(N, np.float16))),
    (ValueError, "quant_scale.shape", dict(quant_scale=np.ones(N + 1, np.float32))),
    (
        ValueError,
        "quant_offset.shape",
        dict(quant_scale=np.ones(N, np.float32), quant_offset=np.ones(1, np.float32)),
    ),
    (
        TypeError,
        "quant_offset.dtype",
        dict(quant_scale=np.ones(N, np.float32), quant_offset=np.ones(N, np.float16)),
    ),
    (TypeError, "bias.dtype", dict(bias=np.ones(N, np.float32))),
    (ValueError, "bias.shape", dict(bias=np.ones(1, np.float16))),
    (ValueError, "empty", dict(bias=np.ones(0, np.float16))),
]


@pytest.mark.parametrize(("exc", "match", "over"), BAD_CASES)
def test_bad_input_raises(exc, match, over):
    """Every listed constraint violation raises with the argument named."""
    _raises(exc, match, **over)


def test_bf16_rules():
    """bf16 x needs bf16 antiquant parameters and a float32 bias."""
    x = RNG.standard_normal((M, K)).astype(BF16)
    s = np.ones(N, BF16)
    normalize_args(**_call(x=x, antiquant_scale=s, antiquant_offset=s, bias=np.ones(N, np.float32)))
    _raises(TypeError, "bias.dtype", x=x, antiquant_scale=s, antiquant_offset=s)
    _raises(TypeError, "antiquant_scale.dtype", x=x)


def test_int64_scale_rules():
    """int64 antiquant_scale: fp16 x, int8 ND weight, int32 offset in [-128, 127], no
    quant_scale."""
    q = np.full(N, 0x40003F800000, np.int64)
    ok = dict(antiquant_scale=q, antiquant_offset=np.zeros(N, np.int32), bias=None)
    assert normalize_args(**_call(**ok)).scale_dtype == "int64"
    _raises(TypeError, "int32", **{**ok, "antiquant_offset": np.zeros(N, np.float16)})
    _raises(ValueError, r"\[-128, 127\]", **{**ok, "antiquant_offset": np.full(N, 200, np.int32)})
    _raises(ValueError, "quant_scale", **{**ok, "quant_scale": np.ones(N, np.float32)})
    _raises(TypeError, "float16 x", **{**ok, "x": RNG.standard_normal((M, K)).astype(BF16)})
    _raises(TypeError, "int8 weight", **{**ok, "weight": pack_int4(np.zeros((K, N), np.int8))})
    nz = NzArray(nz_storage(np.zeros((K, N), np.int8), 32), (K, N))
    _raises(ValueError, "ND weight", **{**ok, "weight": nz})


def test_nz_rules():
    """int4 NZ: per-tensor rejected, per-channel needs transposed weight, per-group needs
    g in {64, 128}, K % g, N % 64 and no transposition; quant_scale needs an ND weight."""
    vals = np.zeros((K, N), np.int8)
    nz4 = NzArray(nz_storage(pack_int4(vals), 8), (K, N // 8))
    _raises(ValueError, "transposed", weight=nz4)
    _raises(
        ValueError,
        "per-tensor",
        weight=nz4,
        antiquant_scale=np.ones(1, np.float16),
        antiquant_offset=None,
    )
    s = np.ones((K // 32, N), np.float16)
    _raises(
        ValueError,
        "group",
        weight=nz4,
        antiquant_scale=s,
        antiquant_offset=None,
        antiquant_group_size=32,
    )
    nz8 = NzArray(nz_storage(vals, 32), (K, N))
    _raises(ValueError, "ND weight", weight=nz8, quant_scale=np.ones(N, np.float32))
    bad = NzArray(np.zeros((2, 2, 16, 32), np.int8), (K, N))
    _raises(ValueError, "storage", weight=bad)
    x = np.zeros((M, K), np.float16)
    _raises(ValueError, "only the weight", x=NzArray(nz_storage(x, 16), x.shape))


def test_310p_rules():
    """310P: fp16 x, int8 weight, per-channel only, no group size, no quant_scale."""
    soc = "Ascend310P3"
    kw = _call()
    normalize_args(**kw, soc=soc)
    with pytest.raises(TypeError, match=r"x\.dtype"):
        normalize_args(
            **{
                **kw,
                "x": kw["x"].astype(BF16),
                "antiquant_scale": np.ones(N, BF16),
                "antiquant_offset": None,
                "bias": None,
            },
            soc=soc,
        )
    with pytest.raises(ValueError, match="per-channel"):
        normalize_args(
            **{**kw, "antiquant_scale": np.ones(1, np.float16), "antiquant_offset": None}, soc=soc
        )
    with pytest.raises(ValueError, match="quant_scale"):
        normalize_args(**{**kw, "quant_scale": np.ones(N, np.float32)}, soc=soc)
    with pytest.raises(TypeError, match=r"weight\.dtype"):
        normalize_args(**{**kw, "weight": pack_int4(np.zeros((K, N), np.int8))}, soc=soc)
