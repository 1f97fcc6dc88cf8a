"""The format_cast (TransData-like) tiled program: ND -> FRACTAL_NZ and back equal
``npusim.layouts.nd_to_nz`` / ``nz_to_nd`` bit for bit (byte views) for every C0 size, padding
case, batch, and legal tiling; a timing-only run costs the same cycles."""

import ml_dtypes
import numpy as np
import pytest

from npusim.layouts import ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_ND, FormattedArray, nd_to_nz, nz_to_nd
from npusim.ops.format_cast_program import FormatCastTiling
from npusim.runner import simulate
from npusim.spec import spec

SOC = "Ascend910B4"
DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "int8": np.int8,
          "float32": np.float32, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
          "int16": np.int16}


def _rand(rng: np.random.Generator, shape, dt: str) -> np.ndarray:
    bits = rng.integers(0, 256, int(np.prod(shape)) * np.dtype(DTYPES[dt]).itemsize,
                        dtype=np.uint8)
    return bits.view(DTYPES[dt]).reshape(shape)  # any bit pattern: the op only moves bytes


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a.reshape(-1).view(np.uint8),
                                                 b.reshape(-1).view(np.uint8))


@pytest.mark.parametrize("shape,dt", [
    ((48, 64), "float16"),       # no padding
    ((37, 50), "float16"),       # row and column padding
    ((21, 45), "bfloat16"),
    ((33, 70), "int8"),          # C0 = 32
    ((19, 23), "float32"),       # C0 = 16 for fp32: 64 B fractal rows
    ((2, 3, 17, 9), "int32"),    # batch dims
    ((7,), "float16"),           # 1-D -> (7, 1)
    ((), "float32"),             # 0-D -> (1, 1)
])
def test_round_trip_equals_layouts(shape, dt):
    """Rule: ND -> NZ gives nd_to_nz's storage (zero padded, origin shape kept) and NZ -> ND
    gives back the ND bytes, with the default tiling."""
    rng = np.random.default_rng(len(shape) * 1000 + sum(shape))
    x = _rand(rng, shape, dt)
    nz = simulate("format_cast", SOC, x=x, acl_format=ACL_FORMAT_FRACTAL_NZ).outputs
    assert isinstance(nz, FormattedArray) and nz.npu_format == ACL_FORMAT_FRACTAL_NZ
    assert nz.origin_shape == tuple(shape)
    assert _same(nz, nd_to_nz(x))
    back = simulate("format_cast", SOC, x=nz, acl_format=ACL_FORMAT_ND).outputs
    assert _same(back, x)


def test_nz_to_nd_ignores_padding_bytes():
    """Rule: NZ -> ND reads only the valid elements; garbage in the NZ padding never leaks."""
    rng = np.random.default_rng(5)
    x = _rand(rng, (30, 20), "float16")
    storage = nd_to_nz(x)
    junk = storage.copy()
    valid = nd_to_nz(np.ones(x.shape, np.float16)) != 0
    junk[~valid] = np.float16(7.0)
    nz = FormattedArray(junk, ACL_FORMAT_FRACTAL_NZ, x.shape)
    out = simulate("format_cast", SOC, x=nz, acl_format=ACL_FORMAT_ND).outputs
    assert _same(out, nz_to_nd(junk, x.shape)) and _same(out, x)


@pytest.mark.parametrize("seed", range(6))
def test_every_legal_tiling_gives_the_same_bits(seed):
    """Rule: cores, rows per tile, strips per tile and buffering change timing, never bits."""
    rng = np.random.default_rng(seed)
    dt = list(DTYPES)[seed % len(DTYPES)]
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 90)), int(rng.integers(1, 150)))
    x = _rand(rng, shape, dt)
    c0 = 32 if dt == "int8" else 16
    m1, n1 = -(-shape[1] // 16), -(-shape[2] // c0)
    m_tile = 16 * int(rng.integers(1, m1 + 1))
    n_strips = int(rng.integers(1, n1 + 1))
    tiles = shape[0] * -(-m1 * 16 // m_tile) * -(-n1 // n_strips)
    t = FormatCastTiling(int(rng.integers(1, tiles + 1)), m_tile, n_strips, bool(seed % 2))
    nz = simulate("format_cast", SOC, t, x=x, acl_format=ACL_FORMAT_FRACTAL_NZ).outputs
    assert _same(nz, nd_to_nz(x))
    back = simulate("format_cast", SOC, t, x=nz, acl_format=ACL_FORMAT_ND).outputs
    assert _same(back, x)


def test_timing_only_same_cycles_and_cores_used():
    """Rule: a spec (shape = the logical shape, npu_format = its format) schedules the same
    program as the array, and the default tiling spreads tiles over the AIVs."""
    x = np.zeros((500, 300), np.float16)
    fun = simulate("format_cast", SOC, x=x, acl_format=ACL_FORMAT_FRACTAL_NZ)
    tim = simulate("format_cast", SOC, x=spec((500, 300), "float16"),
                   acl_format=ACL_FORMAT_FRACTAL_NZ)
    assert tim.outputs is None and tim.cycles == fun.cycles
    assert tim.tiling.cores > 1 and all(c.kind == "aiv" for c in tim.run.kernel.cores)
    nz = spec((500, 300), "float16", npu_format=ACL_FORMAT_FRACTAL_NZ)
    back = simulate("format_cast", SOC, x=nz, acl_format=ACL_FORMAT_ND)
    assert back.run.kernel.meta["direction"] == "NZ->ND" and back.cycles > 0


def test_bigger_tensor_takes_longer():
    """Rule: the cast is memory bound, so 16x the bytes takes several times longer."""
    def us(m):
        return simulate("format_cast", SOC, x=spec((m, 2048), "float16"),
                        acl_format=ACL_FORMAT_FRACTAL_NZ).microseconds

    assert us(4096) > 3 * us(256)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"x": np.zeros((4, 4), np.float16), "acl_format": ACL_FORMAT_ND}, ValueError,
     "already in format"),
    ({"x": np.zeros((4, 4), np.float16), "acl_format": 3}, ValueError, "acl_format"),
    ({"x": np.zeros((4, 4), np.complex64), "acl_format": 29}, TypeError, "x: dtype"),
    ({"x": spec((0, 4), "float16"), "acl_format": 29}, ValueError, "empty"),
])
def test_bad_arguments(kwargs, exc, msg):
    """Rule: a bad format, dtype, empty tensor or a no-op cast raises naming the argument."""
    with pytest.raises(exc, match=msg):
        simulate("format_cast", SOC, **kwargs)


@pytest.mark.parametrize("t,msg", [
    (FormatCastTiling(1, 24, 1), "m_tile"),
    (FormatCastTiling(1, 16, 0), "n_strips"),
    (FormatCastTiling(99, 16, 1), "cores"),
    (FormatCastTiling(1, 4096, 64), "UB"),
])
def test_bad_tiling(t, msg):
    """Rule: illegal tilings are rejected before any instruction runs."""
    with pytest.raises(ValueError, match=msg):
        simulate("format_cast", SOC, t, x=spec((4096, 4096), "float16"), acl_format=29)


@pytest.mark.parametrize("dt", ["int64", "uint8", "int16"])
@pytest.mark.parametrize("soc", ["Ascend910B2", "Ascend310P3"])
def test_every_supported_dtype_round_trips(dt, soc):
    """The 8-, 16- and 64-bit integer dtypes npu_format_cast accepts run through the program
    (int64 moves 16-element C0 blocks) and give nd_to_nz's storage bit for bit, and back."""
    x = _rand(np.random.default_rng(5), (5, 37), dt)
    nz = simulate("format_cast", soc, x=x, acl_format=ACL_FORMAT_FRACTAL_NZ).outputs
    assert _same(nz, nd_to_nz(x))
    back = simulate("format_cast", soc, x=nz, acl_format=ACL_FORMAT_ND).outputs
    assert _same(back, x)
