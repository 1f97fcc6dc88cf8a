"""npu_quantize's tiled program (``simulate("quantize", ...)``): bit-exact (uint views) to an
independent numpy oracle of the fp32 chain over layouts, dtypes, both div modes, both SoC
families and tilings; race-free schedules; the documented argument rules; the torch API's
outputs are the program's."""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from npusim.ops.group_quant_program import RowChunkTiling
from npusim.runner import simulate
from npusim.spec import spec

A2, P310 = "Ascend910B2", "Ascend310P3"
_NP = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
       "int8": np.int8, "uint8": np.uint8, "int32": np.int32}
_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-2**31, 2**31 - 1), "int4": (-8, 7)}


def oracle(x, s, z, out, axis, div_mode):
    """numpy float32 arithmetic (each op correctly rounded): x / s or x * s, + z, round half
    to even, NaN -> 0, saturate; int4 packed 8 per int32, element 0 in the low nibble."""
    xf = np.asarray(x).astype(np.float32)
    nd = xf.ndim
    if s.size == 1:
        shape = [1] * nd
    else:
        ax = (nd - 2 if axis == -2 else nd - 1) if not div_mode else axis % nd
        shape = [1] * nd
        shape[ax] = s.size
    sf = s.astype(np.float32).reshape(shape)
    with np.errstate(all="ignore"):
        v = (xf / sf) if div_mode else (xf * sf)
        if z is not None:
            v = (v + z.astype(np.float32).reshape(shape)).astype(np.float32)
        r = np.rint(v.astype(np.float64))
    lo, hi = _RANGE[out]
    r = np.where(np.isnan(r), 0.0, np.clip(r, lo, hi)).astype(np.int64)
    if out != "int4":
        return r.astype({"int8": np.int8, "uint8": np.uint8, "int32": np.int32}[out])
    nib = (r & 0xF).astype(np.uint32).reshape(*r.shape[:-1], -1, 8)
    words = np.zeros(nib.shape[:-1], np.uint32)
    for j in range(8):
        words |= nib[..., j] << np.uint32(4 * j)
    return words.view(np.int32)


def _u(a):
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


@st.composite
def cases(draw):
    soc = draw(st.sampled_from([A2, P310]))
    a2 = soc == A2
    div = draw(st.booleans())
    ndim = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 6)) for _ in range(ndim)]
    xdts = ["float32", "float16", "bfloat16"] if a2 else ["float32", "float16"]
    xdt = draw(st.sampled_from(xdts))
    if div:
        out = draw(st.sampled_from(["int8", "uint8", "int32"]))
        axis = draw(st.integers(-ndim, ndim - 1))
        sdt = draw(st.sampled_from(["bfloat16"] if xdt == "bfloat16" and a2 and draw(
            st.booleans()) else ["float32", "float16"]))
        # aclnnQuantize: a bfloat16 scale takes no zero point or a bfloat16 one
        zdts = [None, "bfloat16"] if sdt == "bfloat16" else ["int8", "uint8", "int32", None]
        zdt = draw(st.sampled_from(zdts))
    else:
        out = draw(st.sampled_from(["int8", "int4"] if a2 else ["int8"]))
        axis = draw(st.sampled_from([-2, -1, 0] if a2 and ndim >= 2 else [-1, 0]))
        sdt = xdt
        zdt = draw(st.sampled_from([xdt, None]))
        if out == "int4":
            shape[-1] = 8 * draw(st.integers(1, 3))
    per = draw(st.booleans())
    if per:
        ax = (ndim - 2 if axis == -2 else ndim - 1) if not div else axis % ndim
        nparam = shape[ax]
    else:
        nparam = 1
    big = draw(st.sampled_from([1.0, 100.0, 1e6]))
    x = draw(st.lists(st.floats(-big, big, width=32) | st.sampled_from(
        [0.5, 1.5, 2.5, -0.5, -2.5, 127.5, -128.5, float("inf"), float("nan")]),
        min_size=math.prod(shape), max_size=math.prod(shape)))
    with np.errstate(over="ignore"):  # a float32 beyond fp16's range is inf there
        x = np.asarray(x, np.float32).reshape(shape).astype(_NP[xdt])
    sv = draw(st.lists(st.sampled_from([1.0, 0.5, 0.25, 3.0, 0.1, 7.3, -2.0, 1e-3]) |
                       st.floats(0.0625, 50, width=32), min_size=nparam, max_size=nparam))
    s = np.asarray(sv, np.float32).astype(_NP[sdt])
    z = None
    if zdt is not None:
        lo, hi = (-100, 100) if zdt in ("int8", "int32") else (0, 200)
        zv = draw(st.lists(st.integers(lo, hi) if zdt in ("int8", "uint8", "int32")
                           else st.floats(-20, 20, width=32), min_size=nparam, max_size=nparam))
        z = np.asarray(zv).astype(_NP[zdt])
    return soc, x, s, z, out, axis, div


@settings(max_examples=60, deadline=None)
@given(cases())
@example((A2, np.array([[0.5, 1.5, 2.5, -0.5, -2.5, 300.0, -300.0, np.nan]], np.float32),
          np.array([1.0], np.float32), None, "int8", -1, False))
@example((A2, np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], np.float16),
          np.array([0.3, 0.7], np.float32), np.array([3, -4], np.int32), "uint8", 0, True))
def test_program_bits_equal_the_oracle(case):
    """Rule: y = saturate(rint(x / s + z)) (div_mode) or saturate(rint(x * s + z)) in fp32,
    per tensor, per last-dim channel or per earlier axis (per head), bit-exact as uint."""
    soc, x, s, z, out, axis, div = case
    res = simulate("quantize", soc, x=x, scales=s, zero_points=z, dtype=out, axis=axis,
                   div_mode=div)
    want = oracle(x, s, z, out, axis, div)
    assert res.outputs.shape == want.shape and res.outputs.dtype == want.dtype
    assert np.array_equal(_u(res.outputs), _u(want))


@pytest.mark.parametrize("soc,shape,axis,nparam,div,t", [
    (A2, (37, 200), -1, 200, True, RowChunkTiling(3, 64, 5, True)),    # column chunks, ping-pong
    (A2, (6, 5, 130), -2, 5, False, RowChunkTiling(4, 64, 3, False)),  # per head, periods of 5
    (A2, (9, 70), 0, 1, False, RowChunkTiling(2, 64, 2, True)),        # per tensor
    (P310, (7, 3, 40), 1, 3, True, RowChunkTiling(3, 64, 2, False)),   # per head on the 310P
])
def test_tilings_are_race_free_and_stream_every_byte(soc, shape, axis, nparam, div, t):
    """Rule: with race checks on, every tiling gives the oracle's bits; x is read and y written
    exactly once."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-40, 40, shape).astype(np.float16)
    s = rng.uniform(0.1, 3, (nparam,)).astype(np.float16 if not div else np.float32)
    res = simulate("quantize", soc, t, x=x, scales=s, dtype="int8", axis=axis, div_mode=div,
                   check_races=True)
    assert np.array_equal(_u(res.outputs), _u(oracle(x, s, None, "int8", axis, div)))
    assert len(res.run.kernel.cores) == t.cores
    n = math.prod(shape)
    assert res.traffic["path_UB->GM"] == n


def test_timing_only_run_and_cycles_grow_with_rows():
    small = simulate("quantize", A2, x=spec((48, 4096), "float16"), scales=spec((4096,),
                                                                                   "float32"))
    big = simulate("quantize", A2, x=spec((48 * 8, 4096), "float16"),
                   scales=spec((4096,), "float32"))
    assert small.outputs is None and big.cycles > small.cycles
    assert big.run.kernel.meta["declared"]["quantize_div_chain"]


@pytest.mark.parametrize("soc,kw,exc,msg", [
    (A2, dict(dtype="int4", div_mode=True), TypeError, "needs div_mode=False"),
    (A2, dict(dtype="uint8", div_mode=False), TypeError, "needs div_mode=True"),
    (P310, dict(dtype="int4", div_mode=False), ValueError, "not supported on Ascend310P3"),
    (P310, dict(axis=-2, div_mode=False), ValueError, "axis=-2"),
    (A2, dict(scales=spec((3,), "float32")), ValueError, "scales: size 3"),
    (A2, dict(scales=spec((64,), "float32"), div_mode=False), TypeError, "must equal x's"),
    (A2, dict(zero_points=spec((1,), "float16")), TypeError, "zero_points: dtype"),
    (A2, dict(x=spec((4, 64), "int8")), TypeError, "x: dtype"),
    (P310, dict(x=spec((4, 64), "bfloat16")), TypeError, "x: dtype"),
    (A2, dict(x=spec((4, 12), "float16"), scales=spec((1,), "float16"), dtype="int4",
              div_mode=False), ValueError, "multiple of 8"),
])
def test_documented_rules(soc, kw, exc, msg):
    args = dict(x=spec((4, 64), "float16"), scales=spec((1,), "float16"), dtype="int8",
                axis=-1, div_mode=True)
    args.update(kw)
    with pytest.raises(exc, match=msg):
        simulate("quantize", soc, **args)


def test_torch_api_returns_the_program_bits():
    """Rule: npu_quantize (torch tensors, torch dtypes, a (n, 1) div_mode=False scale) returns
    the program's output in torch_npu's dtype and shape; rounding is half to even."""
    torch = pytest.importorskip("torch")
    from npusim.torch_npu import npu_quantize

    x = torch.tensor([[0.5, 1.5, 2.5, -2.5] * 4] * 3, dtype=torch.float16)
    s = torch.tensor([[1.0], [2.0], [0.5]], dtype=torch.float16)
    y = npu_quantize(x, s, None, torch.qint8, -2, False)
    want = oracle(x.numpy(), s.numpy().reshape(-1), None, "int8", -2, False)
    assert y.dtype == torch.int8 and np.array_equal(y.numpy(), want)
    assert y[0, :4].tolist() == [0, 2, 2, -2]
    q = npu_quantize(torch.randn(2, 3, 4), torch.rand(3) + 0.5,
                     torch.tensor([1, 2, 3], dtype=torch.int32), torch.quint8, 1)
    assert q.dtype == torch.uint8 and q.shape == (2, 3, 4)
    packed = npu_quantize(torch.arange(-8, 8).float().reshape(2, 8), torch.tensor([1.0]), None,
                          torch.quint4x2, -1, False)
    assert packed.dtype == torch.int32 and packed.shape == (2, 1)
    assert np.array_equal(_u(packed.numpy()), _u(oracle(
        np.arange(-8, 8, dtype=np.float32).reshape(2, 8), np.ones(1, np.float32), None, "int4",
        -1, False)))
    empty = npu_quantize(torch.zeros(0, 8), torch.tensor([1.0]), None, torch.qint8, -1, False)
    assert empty.shape == (0, 8) and empty.dtype == torch.int8
