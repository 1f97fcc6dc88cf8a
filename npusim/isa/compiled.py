"""The semantics table's fast paths: per instruction object, the work that does not depend on the
values (operand dtype and shape checks, broadcast decisions, the scalar operand's conversion,
the cast's path) is done once, so that each execution only reads views and computes.

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

from npusim.isa.instructions import Cast, DataCopy, Instruction, Mmad, Vector
from npusim.isa.opcodes import Transform, VecOp
from npusim.isa.operands import Region
from npusim.isa.semantics import SEMANTICS
from npusim.isa.semantics import _nothing as _table_nothing

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

        if sdt == "float16" and mode.value == "rint":  # widening: exact
            def widen(ctx: Any) -> None:
                out = ctx.view(src).astype(np.float32)
                if not np.isfinite(out).all():
                    table(ins, ctx)
                    return
                ctx.view(dst)[...] = out

            return widen

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
        prod = (fa(ctx.view(ra)) @ fb(ctx.view(rb))).astype(np.int64)
        c = ctx.view(rc)
        if acc:
            prod += c
        c[...] = prod.astype(np.int32)

    return mmad


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
    Mmad: _mmad,
    Vector: _vector,
    Cast: _cast,
    DataCopy: _data_copy,
}
