"""The semantics fast paths (npusim.isa.compiled) give the semantics table's bytes: random
instructions over overlapping, aliased and broadcast windows of one buffer, random bit patterns
(NaN, inf, subnormals, signed zeros) and rounding ties, compared as uint8 after both ran; where the
table raises, the fast path raises too. Also: the float32 rounding helpers against the exact
float64 ones on every float16 and on random / boundary float32 values."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.engine.buffers import FunctionalContext
from npusim.isa.compiled import runner
from npusim.isa.instructions import Cast, DataCopy, Mmad, Vector
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region, itemsize
from npusim.isa.semantics import SEMANTICS
from npusim.numerics import float_to_int, round_to_integral
from npusim.numerics.native_round import float_to_small_int, round_same_float
from npusim.numerics.rounding import RoundMode

UB = 4096
BUFS = ("UB", "L1", "L0A", "L0B", "L0C")


def _ctx(raw: dict[str, np.ndarray]) -> FunctionalContext:
    kernel = SimpleNamespace(gm={})
    desc = SimpleNamespace(buffers={b: SimpleNamespace(capacity_bytes=UB) for b in BUFS})
    ctx = FunctionalContext(kernel, [desc])  # type: ignore[arg-type]
    for b, v in raw.items():
        ctx.local[0][b][:] = v
    return ctx


def _fill(seed: int, style: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for b in BUFS:
        if style == "bits":
            out[b] = rng.integers(0, 256, UB, dtype=np.uint8)
        else:  # small values and ties: k / 2, k / 4 in float32
            v = (rng.integers(-600, 600, UB // 4) / rng.choice([1, 2, 4, 8], UB // 4))
            out[b] = v.astype(np.float32).view(np.uint8)
    return out


def _same(ins, seed: int, style: str) -> None:
    raw = _fill(seed, style)
    a, b = _ctx(raw), _ctx(raw)
    try:
        with np.errstate(all="ignore"):
            SEMANTICS[type(ins)](ins, b)
    except Exception:  # the fast path must fail too (the engine then asks the reference)
        try:
            with np.errstate(all="ignore"):
                runner(ins)(a)
        except Exception:
            return
        raise AssertionError("the table raises, the fast path does not") from None
    with np.errstate(all="ignore"):
        runner(ins)(a)
    for buf in BUFS:
        np.testing.assert_array_equal(a.local[0][buf], b.local[0][buf], err_msg=buf)


def _region(draw, dtype: str, shape: tuple[int, ...], buf: str = "UB") -> Region:
    item = itemsize(dtype)
    size = max(1, int(np.prod(shape))) * item
    align = draw(st.sampled_from([32, item]))
    off = draw(st.integers(0, (UB - size) // align)) * align
    return Region(buf, off, shape, dtype)


SHAPES = [(64,), (1, 64), (8, 16), (128,), (1,)]
ELEMWISE = [VecOp.ADD, VecOp.SUB, VecOp.MUL, VecOp.DIV, VecOp.MAX, VecOp.MIN]
SCALAR = [VecOp.ADDS, VecOp.MULS, VecOp.MAXS, VecOp.MINS, VecOp.AXPY]
UNARY = [VecOp.COPY, VecOp.ABS, VecOp.DUPLICATE, VecOp.REDUCE_MAX, VecOp.REDUCE_MIN]


@st.composite
def vector_ins(draw):
    dt = draw(st.sampled_from(["float16", "float32", "int16"]))
    op = draw(st.sampled_from(ELEMWISE + SCALAR + UNARY))
    shape = draw(st.sampled_from(SHAPES))
    dst = _region(draw, dt, shape)
    if op in ELEMWISE:
        srcs = tuple(_region(draw, draw(st.sampled_from([dt, dt, dt, "float32"])),
                             draw(st.sampled_from([shape, shape, (1,), shape[-1:]])))
                     for _ in range(2))
    elif op is VecOp.DUPLICATE:
        srcs = ()
    elif op in (VecOp.REDUCE_MAX, VecOp.REDUCE_MIN):
        srcs = (_region(draw, dt, draw(st.sampled_from([(64,), (8, 16), (1, 64)]))),)
        dst = _region(draw, dt, draw(st.sampled_from([(1,), (8,), (8, 1)])))
    else:
        srcs = (_region(draw, dt, draw(st.sampled_from([shape, shape, (1,)]))),)
    scalar = draw(st.sampled_from([0.5, -3.0, 2.0, 1e30, 7]))
    return Vector(pipe="V", name="v", reads=srcs, writes=(dst,), op=op,
                  elements=int(np.prod(shape)), dtype=dt, scalar=scalar)


@settings(max_examples=400, deadline=None)
@given(vector_ins(), st.integers(0, 2**31), st.sampled_from(["bits", "ties"]))
def test_vector_fast_paths_equal_the_table(ins, seed, style):
    _same(ins, seed, style)


@st.composite
def cast_ins(draw):
    sdt, ddt = draw(st.sampled_from([
        ("float32", "float32"), ("float16", "float16"), ("float32", "float16"),
        ("float16", "float32"), ("float32", "bfloat16"), ("float16", "int8"),
        ("float32", "int8"), ("float32", "int16"), ("float16", "int16"), ("int32", "float32"),
        ("float32", "int32"), ("float16", "bfloat16"), ("float16", "uint8"),
        ("float16", "int32")]))
    shape = draw(st.sampled_from(SHAPES))
    src = _region(draw, sdt, shape)
    dst = _region(draw, ddt, draw(st.sampled_from([shape, shape, (int(np.prod(shape)),)])))
    mode = draw(st.sampled_from([m.value for m in RoundMode]))
    return Cast(pipe="V", name="c", reads=(src,), writes=(dst,), op=VecOp.CAST,
                elements=int(np.prod(shape)), dtype=sdt, round_mode=mode,
                saturate=draw(st.booleans()))


@settings(max_examples=400, deadline=None)
@given(cast_ins(), st.integers(0, 2**31), st.sampled_from(["bits", "ties"]))
def test_cast_fast_paths_equal_the_table(ins, seed, style):
    _same(ins, seed, style)


@st.composite
def copy_or_mmad(draw):
    if draw(st.booleans()):
        dt = draw(st.sampled_from(["int8", "float16", "float32", "int4"]))
        shape = draw(st.sampled_from([(8, 16), (128,), (4, 32)]))
        src = _region(draw, dt, shape, draw(st.sampled_from(["UB", "L1"])))
        dst = _region(draw, draw(st.sampled_from([dt, dt, "int8"])),
                      draw(st.sampled_from([shape, shape, (8, 32)])),
                      draw(st.sampled_from(["UB", "L0A"])))
        return DataCopy(pipe="MTE1", name="d", reads=(src,), writes=(dst,),
                        transform=draw(st.sampled_from(["", "nd2nz"])))
    da, db = draw(st.sampled_from(["int8", "int4"])), draw(st.sampled_from(["int8", "int4"]))
    m, k, n = draw(st.sampled_from([1, 3, 16])), draw(st.sampled_from([16, 32, 64])), 16
    a = _region(draw, da, (m, k), "L0A")
    b = _region(draw, db, (k, n), "L0B")
    c = _region(draw, "int32", (m, n), "L0C")
    return Mmad(pipe="M", name="m", reads=(a, b), writes=(c,), m=m, k=k, n=n, dtype=da,
                accumulate=draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(copy_or_mmad(), st.integers(0, 2**31))
def test_copy_and_mmad_fast_paths_equal_the_table(ins, seed):
    _same(ins, seed, "bits")


ALL_F16 = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)


def _f32_cases() -> np.ndarray:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ties = (rng.integers(-2**24, 2**24, 50_000) / 2.0).astype(np.float32)
    edge = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 2**23, 2**23 + 1, -(2**23) - 1, 2**24,
                     0.49999997, -0.49999997, 127.5, -128.5, 32767.5, -32768.5, 1e-45,
                     3.4028235e38, -3.4028235e38], np.float32)
    return np.concatenate([bits, ties, edge])


@pytest.mark.parametrize("mode", list(RoundMode))
@pytest.mark.parametrize("values", ["f16", "f32"])
def test_native_rounding_equals_the_float64_path(mode, values):
    v = ALL_F16 if values == "f16" else _f32_cases()
    finite = v[np.isfinite(v)]
    got = round_same_float(finite, mode)
    want = round_to_integral(finite, mode).astype(v.dtype)
    assert got is not None and got.dtype == v.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert round_same_float(v, mode) is None  # NaN / inf present: the exact path's job
    for dt in ("int8", "int16"):
        with np.errstate(invalid="ignore"):
            want_i = float_to_int(v, dt, mode, saturate=True)
        np.testing.assert_array_equal(float_to_small_int(v, dt, mode), want_i)


@pytest.mark.parametrize("sat", [True, False])
def test_cast_to_half_at_the_overflow_boundary(sat):
    """float32 -> float16 RINT around 65504 / 65520 (ties to inf) and with a NaN or inf."""
    edge = np.array([65504, 65519.996, 65520, 65520.004, -65520, 1e9, np.inf, -np.inf, np.nan,
                     6e-8, -0.0], np.float32)
    for values in (edge, edge[:4], np.nextafter(edge[:3], np.float32(0))):
        raw = {b: np.zeros(UB, np.uint8) for b in BUFS}
        raw["UB"][: values.nbytes] = values.view(np.uint8)
        src = Region("UB", 0, values.shape, "float32")
        dst = Region("UB", 1024, values.shape, "float16")
        ins = Cast(pipe="V", name="c", reads=(src,), writes=(dst,), op=VecOp.CAST,
                   elements=values.size, dtype="float32", round_mode="rint", saturate=sat)
        a, b = _ctx(raw), _ctx(raw)
        with np.errstate(all="ignore"):
            runner(ins)(a)
            SEMANTICS[Cast](ins, b)
        np.testing.assert_array_equal(a.local[0]["UB"], b.local[0]["UB"])


def _big_ctx(values: np.ndarray, nbytes: int = 1 << 20) -> FunctionalContext:
    """A one-core context whose UB (``nbytes``) starts with ``values``' bytes."""
    kernel = SimpleNamespace(gm={})
    desc = SimpleNamespace(buffers={"UB": SimpleNamespace(capacity_bytes=nbytes)})
    ctx = FunctionalContext(kernel, [desc])  # type: ignore[arg-type]
    raw = values.view(np.uint8).reshape(-1)
    ctx.local[0]["UB"][: raw.size] = raw
    return ctx


def _cast_both(values: np.ndarray, ddt: str, mode: str, sat: bool, expect: str | None) -> None:
    """The fast path's Cast of ``values`` (fast path ``expect``, None: any) and the table's,
    compared as bytes (or both raising)."""
    n = values.size
    src = Region("UB", 0, (n,), values.dtype.name)
    dst = Region("UB", 1 << 19, (n,), ddt)
    ins = Cast(pipe="V", name="c", reads=(src,), writes=(dst,), op=VecOp.CAST, elements=n,
               dtype=values.dtype.name, round_mode=mode, saturate=sat)
    run = runner(ins)
    if expect is not None:
        assert run.__name__ == expect, run.__name__
    a, b = _big_ctx(values), _big_ctx(values)
    try:
        with np.errstate(all="ignore"):
            SEMANTICS[Cast](ins, b)
    except Exception:
        with pytest.raises(Exception), np.errstate(all="ignore"):  # noqa: B017 - the table's
            run(a)
        return
    with np.errstate(all="ignore"):
        run(a)
    np.testing.assert_array_equal(a.local[0]["UB"], b.local[0]["UB"])


@pytest.mark.parametrize("ddt", ["float16", "float32", "bfloat16", "int8", "uint8", "int16",
                                 "int32", "int64"])
@pytest.mark.parametrize("sat", [True, False])
def test_float16_casts_look_up_the_table_for_every_bit_pattern(ddt, sat):
    """A float16-source Cast is one look-up of the table's result for each of the 65536 bit
    patterns (NaNs, infs, subnormals, -0.0, ties and saturation included), for every mode; a
    non-saturating integer Cast, which raises out of range, is left to the table."""
    for mode in RoundMode:
        tabulated = sat or ddt in ("float16", "float32", "bfloat16")
        _cast_both(ALL_F16, ddt, mode.value, sat, "tabulated" if tabulated else None)


def test_float32_round_half_away_equals_the_table():
    """float32 ROUND -> float32 as trunc(|v| + pred(0.5)) with v's sign: every float16 value,
    random bit patterns, ties k + 0.5 (to 2^23), the float below and above each tie, 0.5's
    neighbours (0.49999997 + 0.5 rounds to 1 in float32: the reason for pred(0.5)), the
    2^22 / 2^23 / 2^24 steps, subnormals and -0.0; NaN or inf anywhere: the table."""
    rng = np.random.default_rng(11)
    ties = (rng.integers(-2**23, 2**23, 40_000) + 0.5).astype(np.float32)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)),
                           np.nextafter(ties, np.float32(-np.inf))])
    steps = np.array([2**22, 2**23, 2**24], np.float32)
    edge = np.concatenate([steps, np.nextafter(steps, np.float32(0)),
                           np.nextafter(steps, np.float32(np.inf)),
                           np.array([0.5, 0.49999997, 0.50000006, 1e-45, 1.1754942e-38,
                                     3.4028235e38, 0.0, 8388607.5, 4194303.5], np.float32)])
    edge = np.concatenate([edge, -edge])
    finite = _f32_cases()
    finite = finite[np.isfinite(finite)]
    values = np.concatenate([ALL_F16[np.isfinite(ALL_F16)].astype(np.float32), finite, ties,
                             near, edge])
    for chunk in np.array_split(values, 8):
        _cast_both(chunk, "float32", "round", True, "round_half_away")
    for bad in (np.nan, np.inf, -np.inf):
        _cast_both(np.array([1.5, bad, -2.5, 0.49999997], np.float32), "float32", "round",
                   True, "round_half_away")


@st.composite
def fixpipe_ins(draw):
    from npusim.isa.instructions import FixPipe

    dt = draw(st.sampled_from(["int32", "float32"]))
    rows, cols = draw(st.sampled_from([(16, 16), (3, 32), (1, 64)]))
    src = _region(draw, dt, (rows, cols), "L0C")
    out_dt = draw(st.sampled_from([dt, dt, "float16"]))
    item = itemsize(out_dt)
    stride = draw(st.sampled_from([None, cols * item, cols * item + 32]))
    span = (rows - 1) * (stride or cols * item) + cols * item
    off = draw(st.integers(0, (UB - span) // 32)) * 32
    dst = Region("L1", off, (rows, cols), out_dt, None, stride)
    mode = "NONE" if out_dt == dt else "F322F16"
    return FixPipe(pipe="FIX", name="f", reads=(src,), writes=(dst,), elements=rows * cols,
                   out_dtype=out_dt, mode=draw(st.sampled_from([mode, mode, "F322F16"])))


@settings(max_examples=200, deadline=None)
@given(fixpipe_ins(), st.integers(0, 2**31))
def test_fixpipe_fast_path_equals_the_table(ins, seed):
    """The plain FixPipe (NONE, same dtype: a copy, into contiguous or row-strided L1 windows)
    gives the table's bytes; other modes run the table."""
    if ins.mode == "NONE":
        assert runner(ins).__name__ == "copy"
    _same(ins, seed, "bits")


def _nan_patterns(dt: str) -> np.ndarray:
    """Quiet and signalling NaNs of both signs with many payloads, infs, zeros, subnormals and
    ordinary values, in ``dt``."""
    if dt == "float16":
        bits = np.concatenate([np.arange(0x7C00, 0x8000), np.arange(0xFC00, 0x10000),
                               np.arange(0, 0x400, 7), [0x3C00, 0xBC00, 0x7BFF]])
        return bits.astype(np.uint16).view(np.float16)
    rng = np.random.default_rng(5)
    pay = rng.integers(1, 1 << 23, 3000)
    bits = np.concatenate([0x7F800000 | pay, 0xFF800000 | pay, [0x7F800000, 0xFF800000, 0, 1,
                                                                0x80000001, 0x3F800000]])
    return bits.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("dt", ["float16", "float32"])
@pytest.mark.parametrize("op", [VecOp.ADDS, VecOp.MULS])
@pytest.mark.parametrize("scalar", [1.5, -0.0, float("inf"), 3e38])
def test_scalar_ops_into_dst_keep_the_tables_nan_bits(dt, op, scalar):
    """Adds / Muls computed straight into the destination give the table's bits on NaN
    payloads (quiet, signalling, both signs), infs, zeros and subnormals, with the destination
    aligned or not, in place, and overlapping the source by part of it."""
    values = _nan_patterns(dt)
    n = values.size
    item = values.itemsize
    for src_off, dst_off in ((0, n * item + 64), (0, n * item + 2 * item), (0, 0),
                             (0, 32 * item), (32 * item, 0)):
        src = Region("UB", src_off, (n,), dt)
        dst = Region("UB", dst_off, (n,), dt)
        ins = Vector(pipe="V", name="v", reads=(src,), writes=(dst,), op=op, elements=n,
                     dtype=dt, scalar=scalar)
        with np.errstate(all="ignore"):  # 3e38 overflows float16 as the table's scalar does
            assert runner(ins).__name__ == "scaled"
        raw = np.zeros(2 * n * item + 256, np.uint8)
        raw[src_off : src_off + n * item] = values.view(np.uint8)
        a, b = _big_ctx(raw), _big_ctx(raw)
        with np.errstate(all="ignore"):
            runner(ins)(a)
            SEMANTICS[Vector](ins, b)
        np.testing.assert_array_equal(a.local[0]["UB"], b.local[0]["UB"])
