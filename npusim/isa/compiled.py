"""The semantics table's fast paths: per instruction object, the work that does not depend on the
values (operand dtype and shape checks, broadcast decisions, the scalar operand's conversion,
the cast's path) is done once, so that each execution only reads views and computes. A Cast of
a float16 source is a look-up in the table's results for all 65536 float16 bit patterns
(:func:`half_table`).

Each fast path computes what :mod:`npusim.isa.semantics` computes, bit for bit; an instruction
without one, or whose operands the path does not cover (int4 operands, a dtype mismatch the table
reports, an atomic add, non-finite values in a rounding cast), runs the table's function, which
also raises the table's errors. The fast engine executes through :func:`execute_cached`; the
reference engine keeps the table, so tests/test_fast_engine.py's engine comparisons (outputs as
uint8) check these paths against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from npusim.isa.instructions import Cast, DataCopy, FixPipe, Instruction, Mmad, Vector
from npusim.isa.opcodes import FixpipeMode, Transform, VecOp
from npusim.isa.operands import Region
from npusim.isa.semantics import SEMANTICS
from npusim.isa.semantics import _nothing as _table_nothing
from npusim.numerics.rounding import RoundMode

Runner = Callable[[Any], None]

#: element-wise opcodes whose fast path computes on the views directly: correctly rounded IEEE
#: operations (any loop gives the same result), written with ``out=`` (numpy computes an
#: overlapping ``out`` as if it did not overlap)
_EXACT2: dict[VecOp, np.ufunc] = {VecOp.ADD: np.add, VecOp.SUB: np.subtract,
                                  VecOp.MUL: np.multiply, VecOp.DIV: np.divide}
_SCALAR: dict[VecOp, np.ufunc] = {VecOp.ADDS: np.add, VecOp.MULS: np.multiply,
                                  VecOp.MAXS: np.maximum, VecOp.MINS: np.minimum}
_FLOATS = ("float16", "float32")


def execute_cached(ins: Instruction, ctx: Any) -> None:
    """``semantics.execute(ins, ctx)``, through ``ins``'s runner, built on its first execution
    and kept in ``ctx.runners`` (programs share instruction objects across cores and loop
    iterations; the entry keeps the instruction, so its id stays unique)."""
    memo: dict[int, tuple[Instruction, Runner]] = ctx.runners
    got = memo.get(id(ins))
    if got is None or got[0] is not ins:
        got = memo[id(ins)] = (ins, runner(ins))
    got[1](ctx)


def runner(ins: Instruction) -> Runner:
    """What executing ``ins`` does, as one call on the functional context."""
    if ins.fn is not None:
        return ins.fn
    t = type(ins)
    build = _BUILDERS.get(t)
    fast = build(ins) if build is not None else None
    if fast is not None:
        return fast
    sem = SEMANTICS[t]
    if sem is _table_nothing:
        return _nothing

    def table(ctx: Any) -> None:
        sem(ins, ctx)

    return table


def _nothing(ctx: Any) -> None:
    """Flags, barriers and scalar bookkeeping change no buffer."""


def _shaper(src: Region, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray] | None:
    """How a ufunc with an ``out`` of ``shape`` gets the table's ``_bcast`` of a source view
    (None: the table raises)."""
    s = src.shape
    if s == shape:
        return _same
    if len(s) <= len(shape) and all(a in (1, b) for a, b in zip(reversed(s), reversed(shape),
                                                                strict=False)):
        return _same  # the ufunc broadcasts it against ``out`` (of ``shape``) the same way
    if int(np.prod(s)) == int(np.prod(shape)):
        return lambda v: v.reshape(shape)
    return None


def _same(v: np.ndarray) -> np.ndarray:
    return v


def _plain(r: Region, dtype: str) -> bool:
    """A region the fast paths handle: of the instruction's dtype, one element per item."""
    return r.dtype == dtype and dtype != "int4"


def _vector(ins: Vector) -> Runner | None:
    from npusim.engine.buffers import np_dtype_of

    op, dt, dst = ins.op, ins.dtype, ins.writes[0]
    if dt not in _FLOATS or not _plain(dst, dt) or not all(_plain(r, dt) for r in ins.reads):
        return None
    shape, npdt = dst.shape, np_dtype_of(dt)
    if op in _EXACT2 and len(ins.reads) >= 2:
        uf = _EXACT2[op]
        ra, rb = ins.reads[0], ins.reads[1]
        fa, fb = _shaper(ra, shape), _shaper(rb, shape)
        if fa is None or fb is None:
            return None

        def binary(ctx: Any) -> None:
            a, b = fa(ctx.view(ra)), fb(ctx.view(rb))
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                uf(a, b, out=ctx.view(dst))

        return binary
    if op in _SCALAR and ins.reads and ins.reads[0].shape == shape:
        uf = _SCALAR[op]
        src = ins.reads[0]
        s = np.asarray(ins.scalar).astype(npdt)

        if op in (VecOp.ADDS, VecOp.MULS) and src.row_stride_bytes is None and (
                dst.row_stride_bytes is None):
            def scaled(ctx: Any) -> None:  # correctly rounded, contiguous: straight into dst
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    uf(ctx.view(src), s, out=ctx.view(dst))

            return scaled

        def with_scalar(ctx: Any) -> None:
            a = ctx.view(src).copy()  # as the table: the same loop on the same layout
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                out = uf(a, s)
            ctx.view(dst)[...] = out

        return with_scalar
    if op is VecOp.AXPY and ins.reads and _shaper(ins.reads[0], shape) is _same:
        src = ins.reads[0]
        s = np.asarray(ins.scalar).astype(npdt)

        def axpy(ctx: Any) -> None:  # the product rounded, then the sum (the table's model)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                prod = ctx.view(src) * s
                np.add(ctx.view(dst), prod, out=ctx.view(dst))

        return axpy
    if op in (VecOp.COPY, VecOp.ABS) and ins.reads and ins.reads[0].shape == shape:
        src = ins.reads[0]
        if op is VecOp.COPY:
            def copy(ctx: Any) -> None:
                ctx.view(dst)[...] = ctx.view(src)

            return copy

        def absolute(ctx: Any) -> None:
            np.abs(ctx.view(src), out=ctx.view(dst))  # clears the sign bit in any loop

        return absolute
    if op is VecOp.DUPLICATE:
        full = np.full(shape, ins.scalar, dtype=npdt)

        def duplicate(ctx: Any) -> None:
            ctx.view(dst)[...] = full

        return duplicate
    if op in (VecOp.REDUCE_MAX, VecOp.REDUCE_MIN) and ins.reads:
        src = ins.reads[0]
        red = np.max if op is VecOp.REDUCE_MAX else np.min
        rows = (-1, src.shape[-1])
        if int(np.prod(dst.shape)) != int(np.prod(src.shape[:-1])):
            return None

        def reduce(ctx: Any) -> None:
            out = red(ctx.view(src).copy().reshape(rows), axis=1)
            ctx.view(dst)[...] = out.reshape(shape)

        return reduce
    return None


def _cast(ins: Cast) -> Runner | None:
    from npusim.numerics import cast_float
    from npusim.numerics.native_round import (
        SMALL_INT_RANGES,
        float_to_small_int,
        round_same_float,
    )
    from npusim.numerics.rounding import _check_mode

    src, dst = ins.reads[0], ins.writes[0]
    sdt, ddt = src.dtype, dst.dtype
    if (sdt == ins.dtype == "int32" and ddt == "float32" and ins.round_mode == "rint"
            and src.shape == dst.shape):
        def int_to_float(ctx: Any) -> None:  # exact in float64, one RNE rounding; never inf
            ctx.view(dst)[...] = ctx.view(src).astype(np.float64).astype(np.float32)

        return int_to_float
    if sdt != ins.dtype or sdt not in _FLOATS or ddt == "int4":
        return None
    try:
        mode = _check_mode(ins.round_mode)
    except ValueError:
        return None
    table = SEMANTICS[Cast]
    shape = dst.shape
    if src.shape != shape:
        return None
    if sdt == "float16":
        lut = half_table(ins)
        if lut is not None:
            def tabulated(ctx: Any) -> None:  # every float16 bit pattern's result, looked up
                ctx.view(dst)[...] = lut.take(ctx.view(src).view(np.uint16))

            return tabulated
    if ddt == sdt == "float32" and mode is RoundMode.ROUND:
        def round_half_away(ctx: Any) -> None:
            v = ctx.view(src)
            a = np.abs(v)
            if not a.max() < np.inf:  # a NaN or an inf: the table
                table(ins, ctx)
                return
            # trunc(|v| + pred(0.5)) is floor(|v| + 0.5) for every finite float32 (see
            # _PRED_HALF), the sign put back: the table's ROUND bits, -0.0 included
            np.add(a, _PRED_HALF, out=a)
            np.trunc(a, out=a)
            np.copysign(a, v, out=ctx.view(dst))

        return round_half_away
    if ddt == sdt:
        def same(ctx: Any) -> None:
            out = round_same_float(ctx.view(src), mode)
            if out is None:
                table(ins, ctx)
                return
            ctx.view(dst)[...] = out

        return same
    if ddt in (*_FLOATS, "bfloat16"):
        sat = ins.saturate

        if ddt == "float16" and mode.value == "rint" and sat and src.elements:
            def to_half(ctx: Any) -> None:
                # below 65520 (half an ulp above fp16's max) nothing rounds to inf, so the
                # table's saturation step changes nothing (a NaN fails the test: the table)
                v = ctx.view(src)
                if np.abs(v).max() < 65520.0:
                    ctx.view(dst)[...] = v.astype(np.float64).astype(np.float16)
                else:
                    ctx.view(dst)[...] = cast_float(v, ddt, mode, saturate=True)

            return to_half

        def narrow(ctx: Any) -> None:
            ctx.view(dst)[...] = cast_float(ctx.view(src), ddt, mode, saturate=sat)

        return narrow
    if ddt in SMALL_INT_RANGES and ins.saturate:
        def to_int(ctx: Any) -> None:
            ctx.view(dst)[...] = float_to_small_int(ctx.view(src), ddt, mode)

        return to_int
    return None


#: the float32 below 0.5. For finite a >= 0 the float32 sum a + pred(0.5) rounds to an integer
#: n + 1 when a's fraction is at least 0.5 (the sum is within 2^-25 below n + 1: a quarter ulp,
#: or at 1 a tie going to the even 1.0) and stays below n + 1 otherwise (a's fraction is then at
#: most 0.5 - ulp(a), and the float below n + 1 is n + 1 - ulp(a)); from 2^23 on a is integral
#: and pred(0.5) less than half its ulp. (With 0.5 itself, 0.49999997 + 0.5 would round to 1.)
_PRED_HALF = np.float32(0.5) - np.float32(2.0**-25)

#: (destination dtype, round mode, saturate) -> the results of every float16 bit pattern, or
#: None where the table raises for some float16 value (saturate=False out of range)
_HALF_TABLES: dict[tuple[str, str, bool], np.ndarray | None] = {}


def half_table(ins: Cast) -> np.ndarray | None:
    """What the table's Cast of a float16 source stores, for each of the 65536 float16 bit
    patterns (index = the bits), as the destination's dtype; None when the table raises for
    some value or stores another dtype. The table's Cast works element by element, so looking
    each element up gives its bits exactly, NaN payloads included."""
    from npusim.engine.buffers import np_dtype_of
    from npusim.isa.semantics import cast_values
    from npusim.numerics.rounding import _check_mode

    dst = ins.writes[0]
    try:
        key = (dst.dtype, _check_mode(ins.round_mode).value, bool(ins.saturate))
    except ValueError:
        return None
    if key not in _HALF_TABLES:
        got: np.ndarray | None
        try:
            with np.errstate(all="ignore"):
                got = np.asarray(cast_values(ins, _ALL_HALF))
        except Exception:
            got = None
        if got is not None and (got.shape != _ALL_HALF.shape
                                or got.dtype != np_dtype_of(dst.dtype)):
            got = None
        _HALF_TABLES[key] = got
    return _HALF_TABLES[key]


_ALL_HALF = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


def _data_copy(ins: DataCopy) -> Runner | None:
    """The plain copy (no dequantisation, layout change, padding, widening or atomic add)."""
    src, dst = ins.reads[0], ins.writes[0]
    if ins.deq or ins.atomic or src.dtype != dst.dtype or ins.transform == Transform.DN2NZ:
        return None
    if ins.transform in (Transform.NZ2ND, Transform.NZ) and src.buffer == "GM":
        return None
    if dst.buffer in ("L0C", "BT") or len(src.shape) != len(dst.shape):
        return None
    if dst.buffer != "GM" and len(src.shape) == 2 and src.shape != dst.shape:
        return None  # DataCopyPad, or a reshape the table handles
    if src.shape != dst.shape:
        return None

    def copy(ctx: Any) -> None:
        ctx.view(dst)[...] = ctx.view(src)

    return copy


#: largest magnitude of an integer cube operand's elements
_INT_MAX = {"int8": 128, "int4": 8}


def _mmad(ins: Mmad) -> Runner | None:
    """An integer Mmad whose partial sums all stay below 2^24 by the operands' dtypes alone:
    a float32 BLAS product, exact (``cube_matmul_int`` takes that branch for them too, after
    measuring the operands), int4 unpacked straight to float32."""
    ra, rb, rc = ins.reads[0], ins.reads[1], ins.writes[0]
    if ins.hf32 or ins.has_bias or ra.dtype not in _INT_MAX or rb.dtype not in _INT_MAX:
        return None
    if rc.dtype != "int32" or len(ra.shape) != 2 or len(rb.shape) != 2:
        return None
    if ra.shape[1] != rb.shape[0] or rc.shape != (ra.shape[0], rb.shape[1]):
        return None
    if _INT_MAX[ra.dtype] * _INT_MAX[rb.dtype] * max(ra.shape[1], 1) >= 2**24:
        return None
    fa, fb = _as_f32(ra), _as_f32(rb)
    acc = ins.accumulate

    def mmad(ctx: Any) -> None:
        # the exact product fits int32; int32 addition wraps as the table's int64 sum cast
        # back to int32 does (both are the sum modulo 2^32)
        prod = (fa(ctx.view(ra)) @ fb(ctx.view(rb))).astype(np.int32)
        c = ctx.view(rc)
        if acc:
            np.add(c, prod, out=c)
        else:
            c[...] = prod

    return mmad


def _fixpipe(ins: FixPipe) -> Runner | None:
    """The plain FixPipe (mode NONE, no atomic add, same dtype and shape): a copy."""
    src, dst = ins.reads[0], ins.writes[0]
    if ins.mode != FixpipeMode.NONE.value or ins.atomic or len(ins.reads) != 1:
        return None
    if src.dtype != dst.dtype or src.dtype == "int4" or src.shape != dst.shape:
        return None

    def copy(ctx: Any) -> None:
        ctx.view(dst)[...] = ctx.view(src)

    return copy


#: byte -> its two int4 nibbles (low first, sign-extended) as float32
_NIBBLE_F32 = np.array([[((b & 0xF) ^ 8) - 8, ((b >> 4) ^ 8) - 8] for b in range(256)],
                       np.float32)


def _as_f32(r: Region) -> Callable[[np.ndarray], np.ndarray]:
    """The element values of an int8 / int4 region's view as float32 (exact)."""
    if r.dtype != "int4":
        return lambda v: v.astype(np.float32)
    shape = r.shape
    n = shape[-1]

    def unpack(v: np.ndarray) -> np.ndarray:
        pairs = np.take(_NIBBLE_F32, v, axis=0)  # (..., bytes, 2)
        return pairs.reshape(*v.shape[:-1], 2 * v.shape[-1])[..., :n].reshape(shape)

    return unpack


_BUILDERS: dict[type, Callable[[Any], Runner | None]] = {
    FixPipe: _fixpipe,
    Mmad: _mmad,
    Vector: _vector,
    Cast: _cast,
    DataCopy: _data_copy,
}
