"""The semantics table: instruction class -> its effect on the functional buffers.

Written only with ``npusim.numerics`` and IEEE element-wise numpy arithmetic in the instruction's
own dtype (numpy's float32 / float16 and ml_dtypes' bfloat16 operations are correctly rounded per
operation, RNE). Nothing here casts implicitly: an operand whose dtype differs from what the
instruction declares is a :class:`ProgramError`.

Declared models (the hardware behaviour is not published; named in ``DECLARED_MODELS``):

- addressing: a vector source whose region shape broadcasts to the destination's stands for a
  repeat / block stride of 0 (one row or one scalar block reused), elements in row-major order;
- local buffers hold tiles in logical row-major order; ``nd2nz`` / ``nz2nd`` DataCopies change the
  cost, not the element order inside L1 / L0 (``dn2nz`` transposes a column-major source; an
  ``nz2nd`` copy of a GM FRACTAL_NZ window into a local buffer delivers the logical order of the
  window's transpose - an (N, K) NZ weight read as its (K, N) tile - and an ``nz`` copy, the
  plain copy of a window of C0-column strips of the tile's own matrix, its logical order);
- ``Axpy`` / ``MulAddDst``: the product is rounded to the working dtype, then the sum (not fused),
  as ``npusim.ops.weight_quant_batchmatmul.vector_ops``;
- ``BlockReduceSum`` / ``WholeReduceSum``: a pairwise tree inside each 32 B block / repeat;
  ``ReduceSum`` (each row of the source region -> one element): the row's 32 B block sums, then
  a pairwise tree over them (an odd last value carried to the next level); ``ReduceMax`` /
  ``ReduceMin`` (each row -> its maximum / minimum) are exact in any order;
- a float -> same-float ``Cast`` rounds to an integral value in its mode (Ascend C Cast with
  CAST_ROUND / CAST_FLOOR ... on fp32 -> fp32), exactly;
- a DataCopy of (rows, n) elements into a local (rows, n') tile with n' > n pads each row with
  zeros (DataCopyPad with padding value 0); ``TransposeBlocks`` moves C0-element blocks between
  ND rows and NZ strips, keeping the destination's other blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.isa.instructions import (
    Cast,
    CrossCoreSetFlag,
    CrossCoreWaitFlag,
    DataCopy,
    FixPipe,
    Instruction,
    Mmad,
    PipeBarrier,
    Scalar,
    ScalarStep,
    SetFlag,
    Vector,
    WaitFlag,
)
from npusim.isa.opcodes import BINARY, FixpipeMode, Transform, VecOp
from npusim.isa.operands import Region

if TYPE_CHECKING:
    from npusim.engine.errors import ProgramError

DECLARED_MODELS = {
    "vector_addressing": "broadcast_region_shape",
    "local_tile_order": "logical_row_major",
    "axpy": "product_rounded_then_sum",
    "reduce_sum_order": "pairwise_tree",
    "data_copy_pad": "zero_padding",
}


class SemanticsError(Exception):
    """An instruction's operands do not fit its semantics (a program bug)."""


def _err(ins: Instruction, msg: str) -> ProgramError:
    from npusim.engine.errors import ProgramError

    return ProgramError(f"'{ins.name}': {msg}")


def _np(dtype: str) -> np.dtype:
    from npusim.engine.buffers import np_dtype_of

    return np_dtype_of(dtype)


def _logical(ctx: Any, r: Region) -> np.ndarray:
    """Element values of ``r`` (int4 unpacked to int8)."""
    v: np.ndarray = ctx.read(r)
    if r.dtype == "int4":  # two per byte, low nibble first, two's complement
        from npusim.numerics.int4 import unpack_int4_bytes

        v = unpack_int4_bytes(v.astype(np.uint8))[..., : r.shape[-1]].reshape(r.shape)
    return v


def _store(ctx: Any, r: Region, values: np.ndarray) -> None:
    """Store element values into ``r`` (int4 packed); values must already be ``r``'s dtype."""
    if r.dtype == "int4":  # values in [-8, 7], packed two per byte, low nibble first
        v = np.asarray(values).reshape(r.shape).astype(np.int16) & 0xF
        if v.shape[-1] % 2:
            v = np.concatenate([v, np.zeros((*v.shape[:-1], 1), v.dtype)], axis=-1)
        packed = (v[..., 0::2] | (v[..., 1::2] << 4)).astype(np.uint8)
        ctx.write(r, packed.reshape(ctx.view(r).shape))
        return
    ctx.write(r, values)


def _typed(ins: Instruction, ctx: Any, r: Region, dtype: str) -> np.ndarray:
    if r.dtype != dtype:
        raise _err(ins, f"operand {r.buffer}@{r.offset} is {r.dtype}, the instruction computes "
                        f"in {dtype} (no implicit casts)")
    values: np.ndarray = ctx.read(r)
    return values


def _bcast(ins: Instruction, v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    try:
        return np.broadcast_to(v.reshape(v.shape), shape)
    except ValueError:
        if v.size == int(np.prod(shape)):
            return v.reshape(shape)
        raise _err(ins, f"source of shape {v.shape} does not broadcast to {shape}") from None


# -- data movement -----------------------------------------------------------------------------
def _deq_copy(ins: DataCopy, ctx: Any) -> None:
    """The coupled core's dequantising L0C -> UB copy (DEQ16 / VDEQ16 / DEQ8 / VDEQ8)."""
    from npusim.numerics.l0c_dequant import MODES, l0c_to_ub_dequant

    src, dst = ins.reads[0], ins.writes[0]
    if ins.deq not in MODES or src.buffer != "L0C" or dst.buffer != "UB":
        raise _err(ins, f"deq={ins.deq!r} needs an L0C -> UB copy with a mode in {MODES}")
    tile = _typed(ins, ctx, src, "int32")
    if ins.deq.startswith("V"):
        if len(ins.reads) < 2 or ins.reads[1].buffer != "UB":
            raise _err(ins, f"{ins.deq} reads its per-column parameters from UB (reads[1])")
        params = ctx.read(ins.reads[1]).view(np.int64).reshape(-1)[: tile.shape[-1]]
    elif ins.deq_value is None:
        raise _err(ins, f"{ins.deq} needs its scalar parameter deq_value")
    else:
        params = np.array([ins.deq_value], np.uint64).view(np.int64)
    out = l0c_to_ub_dequant(tile, params, dst.dtype)
    ctx.write(dst, out.reshape(ctx.view(dst).shape))


def data_copy(ins: DataCopy, ctx: Any) -> None:
    if ins.deq:
        _deq_copy(ins, ctx)
        return
    src, dst = ins.reads[0], ins.writes[0]
    if ins.transform == Transform.DN2NZ and src.dtype == "int4":
        # a transposed int4 source: transpose the elements, not the packed bytes
        if dst.dtype != "int4":
            raise _err(ins, f"copy int4 -> {dst.dtype}: a DataCopy moves bytes")
        _store(ctx, dst, _logical(ctx, src).T.reshape(dst.shape))
        return
    if ins.transform == Transform.NZ2ND and src.buffer == "GM" and dst.buffer != "GM":
        # a GM FRACTAL_NZ window (runs of cols x c0 elements) into a local tile, which holds
        # the logical (rows, cols) order (the declared local-tile model)
        rows, cols = dst.shape
        v = _logical(ctx, src)
        c0 = v.shape[-1] // cols
        tile = v.reshape(-1, cols, c0).transpose(0, 2, 1).reshape(-1, cols)[:rows]
        _store(ctx, dst, np.ascontiguousarray(tile))
        return
    if ins.transform == Transform.NZ and src.buffer == "GM" and dst.buffer != "GM":
        # a GM FRACTAL_NZ window of the tile's own (rows, cols) matrix: one run per C0-column
        # strip, each rows x C0 row-major; the local tile holds the logical order
        rows, cols = dst.shape
        v = _logical(ctx, src)
        c0 = v.shape[-1] // rows
        tile = v.reshape(-1, rows, c0).transpose(1, 0, 2).reshape(rows, -1)[:, :cols]
        _store(ctx, dst, np.ascontiguousarray(tile))
        return
    data = ctx.read(src)
    if dst.buffer == "L0C" and src.buffer == "UB" and len(src.shape) == 1:
        # broadcast_ub_to_cc: one row (the bias) into every row of the L0C tile
        ctx.write(dst, np.broadcast_to(data, ctx.view(dst).shape))
        return
    if ins.transform == Transform.DN2NZ:
        data = data.T
    if dst.buffer == "BT" and src.dtype in ("float16", "bfloat16") and dst.dtype == "float32":
        # the bias-table load widens fp16 / bf16 to fp32 (exact)
        ctx.write(dst, data.astype(np.float32).reshape(ctx.view(dst).shape))
        return
    if (dst.buffer != "GM" and len(src.shape) == len(dst.shape) == 2 and src.dtype == dst.dtype
            and src.shape[0] == dst.shape[0] and src.shape[1] < dst.shape[1]):
        # DataCopyPad: each row's valid elements, then zeros up to the local row's end
        padded = np.zeros(dst.shape, dtype=data.dtype)
        padded[:, : src.shape[1]] = data
        ctx.write(dst, padded)
        return
    if src.dtype != dst.dtype:
        if src.nbytes != dst.nbytes:
            raise _err(ins, f"copy {src.dtype}{src.shape} -> {dst.dtype}{dst.shape}: a DataCopy "
                            "moves bytes; sizes differ")
        data = np.ascontiguousarray(data).view(np.uint8).view(_np(dst.dtype))
    ctx.write(dst, data.reshape(ctx.view(dst).shape))


# -- cube --------------------------------------------------------------------------------------
def mmad(ins: Mmad, ctx: Any) -> None:
    from npusim.numerics.cube import cube_matmul_float, cube_matmul_int

    a = _logical(ctx, ins.reads[0])
    b = _logical(ctx, ins.reads[1])
    c = ins.writes[0]
    if ins.hf32:  # HF32 mode: the fp32 L0A / L0B data rounded to HF32 (declared format)
        from npusim.numerics.hf32 import parse_hf32_mode, round_to_hf32

        if ins.dtype != "float32":
            raise _err(ins, f"hf32={ins.hf32!r} needs float32 operands, got {ins.dtype}")
        a, b = (round_to_hf32(v, *parse_hf32_mode(ins.hf32)) for v in (a, b))
    integer = ins.dtype in ("int8", "int4")
    init: np.ndarray | None = None
    if ins.accumulate:
        init = ctx.read(c)
    elif ins.has_bias:
        init = np.broadcast_to(ctx.read(ins.reads[-1]), c.shape).astype(
            np.int32 if integer else np.float32)
    if integer:
        acc = np.zeros(c.shape, np.int64) if init is None else init.astype(np.int64)
        ctx.write(c, (acc + cube_matmul_int(a, b)).astype(np.int32))
        return
    if not ins.accumulation:
        raise _err(ins, "a floating-point Mmad needs its declared accumulation model")
    k0 = 32 // np.dtype(a.dtype).itemsize  # one 32 B fractal row: 16 fp16 / bf16, 8 fp32
    ctx.write(c, cube_matmul_float(a, b, model=ins.accumulation, bias=init, k0=k0))


def fixpipe(ins: FixPipe, ctx: Any) -> None:
    """The parameter-free FixPipe conversions, DEQF16 with a scalar scale or one uint64
    parameter, VDEQF16 with its per-column parameters in FB, and the int8 requant REQ8 /
    QF322B8_PRE with one uint64 parameter or VREQ8 / VQF322B8_PRE with per-column parameters in
    FB."""
    from npusim.numerics import RoundMode, cast_float

    src, dst = ins.reads[0], ins.writes[0]
    tile = ctx.read(src)
    mode = FixpipeMode(ins.mode)
    if mode is FixpipeMode.NONE:
        out = tile
    elif mode in (FixpipeMode.F322F16, FixpipeMode.F322BF16):
        out = cast_float(tile, dst.dtype, RoundMode.RINT, saturate=False)
    elif mode is FixpipeMode.DEQF16 and ins.deq_scale is not None:
        from npusim.numerics import deqf16

        out = deqf16(tile, np.float32(ins.deq_scale))
    elif mode is FixpipeMode.DEQF16 and ins.quant_param is not None:
        # the scalar quant register holds the uint64 parameter; DEQF16 uses its M1 (bits 13..31)
        from npusim.numerics import decode_quant_param, deqf16

        qp = np.array([ins.quant_param], np.uint64).view(np.int64)
        out = deqf16(tile, np.asarray(decode_quant_param(qp).m1, dtype=np.float32)[0])
    elif mode is FixpipeMode.VDEQF16 and len(ins.reads) > 1 and ins.reads[1].buffer == "FB":
        # per-column quant parameters (npu_trans_quant_param's uint64 encoding) in FB
        from npusim.numerics import decode_quant_param, deqf16

        params = ctx.read(ins.reads[1]).view(np.int64).reshape(-1)[: tile.shape[-1]]
        out = deqf16(tile, np.asarray(decode_quant_param(params).m1, dtype=np.float32))
    elif mode in (FixpipeMode.REQ8, FixpipeMode.QF322B8_PRE) and ins.quant_param is not None:
        from npusim.numerics import requant_with_params

        out = requant_with_params(tile, np.array([ins.quant_param], np.uint64).view(np.int64))
    elif (mode in (FixpipeMode.VREQ8, FixpipeMode.VQF322B8_PRE) and len(ins.reads) > 1
          and ins.reads[1].buffer == "FB"):
        from npusim.numerics import requant_with_params

        params = ctx.read(ins.reads[1]).view(np.int64).reshape(-1)[: tile.shape[-1]]
        out = requant_with_params(tile, params)
    else:
        raise NotImplementedError(
            f"'{ins.name}': FixPipe {mode} reads per-channel quant parameters, which the "
            "semantics table does not model yet; the program must supply them")
    ctx.write(dst, np.asarray(out).astype(_np(dst.dtype), copy=False))


# -- vector ------------------------------------------------------------------------------------
def _transpose_blocks(ins: Vector, ctx: Any, dt: str) -> np.ndarray:
    """Block-strided copy between ND rows and NZ strips (the TransData move): the source seen as
    (A, B) blocks of C0 elements (FRACTAL_NZ's C0: 32 B, 16 elements for 4-byte types) goes to
    the destination seen as (B, A) blocks, ``dst[b, a] = src[a, b]``, over the part both cover;
    the rest of the destination is kept (its padding). ``scalar``, when set, is a C0 other than
    the dtype's (torch_npu's ``customize_dtype``, e.g. 8 for int32)."""
    src, dst = ins.reads[0], ins.writes[0]
    c0 = int(ins.scalar) if ins.scalar else 32 // min(_np(dt).itemsize, 2)
    a = _typed(ins, ctx, src, dt)
    out = ctx.read(dst)
    if a.ndim != 2 or out.ndim != 2:
        raise _err(ins, f"TransposeBlocks moves 2-D tiles, got {a.shape} -> {out.shape}")

    def blocks(v: np.ndarray, fill: Any) -> np.ndarray:  # (rows, cols) -> (rows, nb, c0)
        w = -(-v.shape[1] // c0) * c0
        full = np.full((v.shape[0], w), fill, dtype=v.dtype)
        full[:, : v.shape[1]] = v
        return full.reshape(v.shape[0], -1, c0)

    sa = blocks(a, 0)
    valid = blocks(np.ones(a.shape, bool), False)  # a partial last block moves its valid part
    so = blocks(out, 0)
    nb, na = min(so.shape[0], sa.shape[1]), min(so.shape[1], sa.shape[0])
    part = so[:nb, :na]
    so[:nb, :na] = np.where(valid[:na, :nb].transpose(1, 0, 2), sa[:na, :nb].transpose(1, 0, 2),
                            part)
    return so.reshape(so.shape[0], -1)[:, : out.shape[1]]


def _binary(op: VecOp, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray
    if op is VecOp.ADD:
        out = a + b
    elif op is VecOp.SUB:
        out = a - b
    elif op is VecOp.MUL:
        out = a * b
    elif op is VecOp.DIV:
        out = a / b
    elif op is VecOp.MAX:
        out = np.maximum(a, b)
    else:
        out = np.minimum(a, b)
    return out


def _pairwise_blocks(v: np.ndarray, lanes: int,
                     fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    b = v.reshape(*v.shape[:-1], v.shape[-1] // lanes, lanes)
    while b.shape[-1] > 1:
        b = fn(b[..., 0::2], b[..., 1::2])
    return b[..., 0]


def _pairwise_carry(v: np.ndarray) -> np.ndarray:
    """Pairwise tree over a 1-D array of any length: adjacent pairs added, an odd last value
    carried to the next level."""
    while v.size > 1:
        half = v.size // 2
        head = v[0 : 2 * half : 2] + v[1 : 2 * half : 2]
        v = np.concatenate([head, v[2 * half :]]) if v.size % 2 else head
    return v


def vector(ins: Vector, ctx: Any) -> None:
    op, dt = ins.op, ins.dtype
    dst = ins.writes[0]
    npdt = _np(dt)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if op in BINARY:
            a = _typed(ins, ctx, ins.reads[0], dt)
            b = _typed(ins, ctx, ins.reads[1], dt)
            shape = ctx.view(dst).shape
            out = _binary(op, _bcast(ins, a, shape), _bcast(ins, b, shape))
        elif op in (VecOp.AND, VecOp.OR):  # bitwise, integer operands (as their bits)
            if npdt.kind not in "iu":
                raise _err(ins, f"{op} needs integer operands, not {dt}")
            a = _typed(ins, ctx, ins.reads[0], dt)
            b = _typed(ins, ctx, ins.reads[1], dt)
            shape = ctx.view(dst).shape
            a, b = _bcast(ins, a, shape), _bcast(ins, b, shape)
            out = np.bitwise_and(a, b) if op is VecOp.AND else np.bitwise_or(a, b)
        elif op in (VecOp.ADDS, VecOp.MULS, VecOp.MAXS, VecOp.MINS):
            a = _typed(ins, ctx, ins.reads[0], dt)
            s = np.asarray(ins.scalar).astype(npdt)
            base = {VecOp.ADDS: VecOp.ADD, VecOp.MULS: VecOp.MUL, VecOp.MAXS: VecOp.MAX,
                    VecOp.MINS: VecOp.MIN}[op]
            out = _binary(base, a, s)
        elif op is VecOp.AXPY:
            src = _typed(ins, ctx, ins.reads[0], dt)
            acc = _typed(ins, ctx, dst, dt)
            prod = (src * np.asarray(ins.scalar).astype(npdt)).astype(npdt)
            out = acc + _bcast(ins, prod, acc.shape)
        elif op is VecOp.MUL_ADD_DST:
            a = _typed(ins, ctx, ins.reads[0], dt)
            b = _typed(ins, ctx, ins.reads[1], dt)
            acc = ctx.read(dst)
            shape = acc.shape
            out = acc + (_bcast(ins, a, shape) * _bcast(ins, b, shape)).astype(npdt)
        elif op is VecOp.ABS:
            out = np.abs(_typed(ins, ctx, ins.reads[0], dt))
        elif op is VecOp.EXP:
            out = np.exp(_typed(ins, ctx, ins.reads[0], dt))
        elif op is VecOp.LN:
            out = np.log(_typed(ins, ctx, ins.reads[0], dt))
        elif op is VecOp.SQRT:
            out = np.sqrt(_typed(ins, ctx, ins.reads[0], dt))
        elif op is VecOp.RECIPROCAL:
            a = _typed(ins, ctx, ins.reads[0], dt)
            out = npdt.type(1) / a
        elif op is VecOp.COPY:
            out = _typed(ins, ctx, ins.reads[0], dt)
        elif op is VecOp.TRANSPOSE_BLOCKS:
            out = _transpose_blocks(ins, ctx, dt)
        elif op is VecOp.DUPLICATE:
            out = np.full(ctx.view(dst).shape, ins.scalar, dtype=npdt)
        elif op is VecOp.BRCB:
            a = _typed(ins, ctx, ins.reads[0], dt).reshape(-1)
            lanes = 32 // npdt.itemsize
            out = np.repeat(a, lanes)
        elif op in (VecOp.BLOCK_REDUCE_SUM, VecOp.BLOCK_REDUCE_MAX,
                    VecOp.WHOLE_REDUCE_SUM, VecOp.WHOLE_REDUCE_MAX):
            a = _typed(ins, ctx, ins.reads[0], dt).reshape(-1)
            block = 32 if op in (VecOp.BLOCK_REDUCE_SUM, VecOp.BLOCK_REDUCE_MAX) else 256
            lanes = block // npdt.itemsize
            if a.size % lanes:
                raise _err(ins, f"{a.size} elements are not whole {block} B blocks")
            fn = np.add if op in (VecOp.BLOCK_REDUCE_SUM, VecOp.WHOLE_REDUCE_SUM) else np.maximum
            out = _pairwise_blocks(a, lanes, fn)
        elif op in (VecOp.REDUCE_MAX, VecOp.REDUCE_MIN):  # each row (last axis) -> one value
            a = _typed(ins, ctx, ins.reads[0], dt)
            red = np.max if op is VecOp.REDUCE_MAX else np.min
            out = red(a.reshape(-1, a.shape[-1]), axis=1)
        elif op is VecOp.REDUCE_SUM:
            a = _typed(ins, ctx, ins.reads[0], dt)
            lanes = 32 // npdt.itemsize
            if a.shape[-1] % lanes:
                raise _err(ins, f"rows of {a.shape[-1]} elements are not whole 32 B blocks")
            rows = _pairwise_blocks(a.reshape(-1, a.shape[-1]), lanes, np.add)
            out = np.array([_pairwise_carry(r)[0] for r in rows], dtype=npdt)
        else:
            raise _err(ins, f"{op} has no semantics in the table; the program must supply it")
    v = ctx.view(dst)
    out = np.asarray(out)
    if out.dtype != v.dtype:
        raise _err(ins, f"result is {out.dtype}, destination {dst.dtype} (no implicit casts)")
    ctx.write(dst, out.reshape(v.shape))


def cast(ins: Cast, ctx: Any) -> None:
    src, dst = ins.reads[0], ins.writes[0]
    if src.dtype != ins.dtype:
        raise _err(ins, f"source is {src.dtype}, the Cast declares {ins.dtype}")
    out = cast_values(ins, _logical(ctx, src))
    _store(ctx, dst, np.asarray(out).reshape(dst.shape))


def cast_values(ins: Cast, v: np.ndarray) -> np.ndarray:
    """The values a Cast stores for source element values ``v`` (element by element; int4
    results as int8), or its error (``npusim.isa.compiled`` tabulates it for float16 sources)."""
    from npusim.numerics import cast_float, float_to_int

    dst = ins.writes[0]
    out: np.ndarray
    if dst.dtype == ins.reads[0].dtype and dst.dtype in ("float16", "bfloat16", "float32"):
        from npusim.numerics import round_to_integral

        with np.errstate(invalid="ignore", over="ignore"):
            out = round_to_integral(v, ins.round_mode).astype(_np(dst.dtype))
    elif dst.dtype in ("float16", "bfloat16", "float32"):
        out = cast_float(v, dst.dtype, ins.round_mode, saturate=ins.saturate)
    elif dst.dtype in ("int4", "int8", "uint8", "int16", "int32", "int64"):
        out = float_to_int(v, dst.dtype, ins.round_mode, saturate=ins.saturate)
    else:
        raise _err(ins, f"Cast to {dst.dtype} is not a vector Cast target")
    return out


def _nothing(ins: Instruction, ctx: Any) -> None:
    """Flags, barriers and scalar bookkeeping change no buffer."""


_WITH_SCALAR_BASE = {VecOp.ADDS: VecOp.ADD, VecOp.MULS: VecOp.MUL, VecOp.MAXS: VecOp.MAX,
                     VecOp.MINS: VecOp.MIN}


def scalar_loop(ins: Scalar, ctx: Any) -> None:
    """A scalar-unit loop's body (``Scalar.body``), step by step over whole regions; a Scalar
    without a body is bookkeeping and changes no buffer."""
    for step in ins.body:
        _scalar_step(ins, step, ctx)


def _scalar_step(ins: Scalar, step: ScalarStep, ctx: Any) -> None:
    dst, op = step.dst, step.op
    npdt = _np(dst.dtype)
    shape = ctx.view(dst).shape

    def src(i: int, dtype: str | None = None) -> np.ndarray:
        if i >= len(step.srcs):
            raise _err(ins, f"scalar step {op.value} needs operand {i + 1}")
        return _bcast(ins, _typed(ins, ctx, step.srcs[i], dtype or dst.dtype), shape)

    def scalar() -> Any:
        if step.scalar is None:
            raise _err(ins, f"scalar step {op.value} needs a scalar operand")
        return np.asarray(step.scalar).astype(npdt)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if op in BINARY:
            out = _binary(op, src(0), src(1))
        elif op in _WITH_SCALAR_BASE:
            out = _binary(_WITH_SCALAR_BASE[op], src(0), scalar())
        elif op in (VecOp.AND, VecOp.OR, VecOp.ANDS, VecOp.ORS, VecOp.SHIFT_LEFTS,
                    VecOp.SHIFT_RIGHTS):
            if npdt.kind not in "iu":
                raise _err(ins, f"scalar step {op.value} works on integers, not {dst.dtype}")
            a = src(0)
            b = src(1) if op in (VecOp.AND, VecOp.OR) else scalar()
            fn = {VecOp.AND: np.bitwise_and, VecOp.ANDS: np.bitwise_and,
                  VecOp.OR: np.bitwise_or, VecOp.ORS: np.bitwise_or,
                  VecOp.SHIFT_LEFTS: np.left_shift, VecOp.SHIFT_RIGHTS: np.right_shift}[op]
            out = fn(a, b)
        elif op is VecOp.SELECT:
            cond = _bcast(ins, ctx.read(step.srcs[0]), shape)
            out = np.where(cond != 0, src(1), src(2))
        elif op is VecOp.CAST:
            v = _bcast(ins, _logical(ctx, step.srcs[0]), shape)
            if v.dtype.kind not in "iu" or npdt.kind not in "iu":
                raise _err(ins, "a scalar Cast step converts integers exactly; "
                                f"{v.dtype} -> {dst.dtype} is a vector Cast's job")
            out = v.astype(npdt)
            negative = npdt.kind == "u" and v.dtype.kind == "i" and bool((v < 0).any())
            if negative or not np.array_equal(out.astype(v.dtype), v):
                raise _err(ins, f"scalar Cast {v.dtype} -> {dst.dtype}: a value does not fit")
        else:
            raise _err(ins, f"a scalar loop has no step {op.value}")
    _store(ctx, dst, np.asarray(out).astype(npdt, copy=False))


#: instruction class -> semantics (``fn`` on an instruction overrides it while being retired)
SEMANTICS: dict[type, Callable[[Any, Any], None]] = {
    DataCopy: data_copy,
    Mmad: mmad,
    FixPipe: fixpipe,
    Vector: vector,
    Cast: cast,
    Scalar: scalar_loop,
    SetFlag: _nothing,
    WaitFlag: _nothing,
    PipeBarrier: _nothing,
    CrossCoreSetFlag: _nothing,
    CrossCoreWaitFlag: _nothing,
}


def execute(ins: Instruction, ctx: Any) -> None:
    """Apply ``ins`` to the functional context: the program's ``fn`` if it supplies one (being
    retired), else the table's semantics."""
    if ins.fn is not None:
        ins.fn(ctx)
        return
    SEMANTICS[type(ins)](ins, ctx)


def supplied_semantics(kernel: Any) -> dict[str, int]:
    """Instructions per kernel whose values a program closure supplies instead of the table
    (the retirement count the ISA issue tracks), by instruction name."""
    counts: dict[str, int] = {}
    for core in kernel.cores:
        for ins in core.instrs:
            if ins.fn is not None:
                counts[ins.name] = counts.get(ins.name, 0) + 1
    return counts
