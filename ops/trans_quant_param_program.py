"""npu_trans_quant_param as a tiled program on one AIV (ops-semantics 3.2: "single AI Vector core").

The element count is ``max(len(scale), len(offset))``; a length-1 side is loaded once and read
for every element (the broadcasting rule of 3.2). Elements are processed in chunks, ping-pong
buffered. Per chunk:

- MTE2: the scale chunk (fp32) and, with an offset, the offset chunk (fp32) GM -> UB;
- V (offset only): Cast fp32 -> int32 with CAST_RINT (round half to even, saturating, NaN -> 0),
  Maxs -256, Mins 255 - the clamp to the 9-bit range;
- S: a scalar loop builds each uint64: GetValue of the scale bits, the fp19 step (round_mode 0:
  ``& 0xFFFFE000``; round_mode 1: round to nearest even at bit 13 with sticky bits 11..0, zero /
  subnormal -> signed zero, inf / NaN truncated, a carry runs into the exponent), ``| 1 << 46``,
  ``| (offset & 0x1FF) << 37``, SetValue into the uint64 chunk. The vector unit has no 64-bit
  integer ALU, which is why the assembly is scalar work;
- MTE3: the uint64 chunk UB -> GM.

The scalar instruction counts per element (``SCALAR_PER_ELEMENT``) are a stated model, not
calibrated: the CANN kernel source was not read. The bit assembly here is written independently of
``npusim.numerics.fp19_bits`` / ``encode_quant_param``, so the tests comparing the program to
``ops.trans_quant_param.reference_trans_quant_param`` check two implementations against each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa import ScalarStep
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator
from npusim.ops.program_stages import VecInOut, allocated

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan

# Scalar instructions per output element (ASSUMPTION, not calibrated): GetValue scale, mask,
# or sign bit, SetValue, loop increment + branch = 6; round_mode 1 adds the RNE (exponent
# extract and two compares, round bit, sticky test, lsb, add, shift = 10); an offset adds GetValue,
# and 0x1FF, shift, or = 4.
SCALAR_PER_ELEMENT = {"base": 6, "round_rne": 10, "offset": 4}
SCALAR_PER_CHUNK = 20  # address set-up, loop entry (ASSUMPTION)
DEFAULT_CHUNK = 2048
WORK_WORDS = 4  # uint64 work regions of the scalar loop (one set, not ping-ponged)


@dataclass(frozen=True)
class TransQuantParamTiling:
    """Elements per chunk (a multiple of 8, so every UB buffer stays 32 B aligned) and whether
    chunks are ping-pong buffered."""

    chunk: int = DEFAULT_CHUNK
    double_buffer: bool = True


def _ub_bytes(t: TransQuantParamTiling, with_offset: bool) -> int:
    per = 4 + 8 + (8 if with_offset else 0)  # scale fp32, out uint64, offset fp32 + int32
    return (2 if t.double_buffer else 1) * t.chunk * per + t.chunk * 8 * WORK_WORDS


def validate_trans_quant_param_tiling(t: TransQuantParamTiling, soc: SocDescriptor,
                                      with_offset: bool) -> None:
    """``t``'s type, its chunk rule and its UB bytes against the SoC."""
    from npusim.tiling_overrides import check_tiling_type

    check_tiling_type(t, TransQuantParamTiling, "trans_quant_param")
    if isinstance(t.chunk, bool) or not isinstance(t.chunk, int) or t.chunk <= 0 or t.chunk % 8:
        raise ValueError(f"tiling.chunk={t.chunk!r}: must be a positive multiple of 8 elements "
                         "(32 B-aligned fp32 buffers)")
    ub = soc.core(vector_core_kind(soc)).buffers["UB"].capacity_bytes
    need = _ub_bytes(t, with_offset)
    if need > ub:
        raise ValueError(f"tiling.chunk={t.chunk}: needs {need} B of UB > {ub} B")


def vector_core_kind(soc: SocDescriptor) -> str:
    """The core the kernel runs on: one AIV on A2 / A3; one AI Core on the coupled 310P,
    whose vector and scalar units run the same program (declared model: seed 003 lists the
    310P, its kernel source was not read, the A2 / A3 structure is assumed)."""
    counts = soc.core_counts()
    if counts.get("aiv", 0):
        return "aiv"
    if counts.get("aicore", 0):
        return "aicore"
    raise NotImplementedError(f"trans_quant_param on {soc.name}: no core with a vector unit")


def assembly_steps(bits: Region, off: Region | None, y: Region, temps: tuple[Region, ...],
                   round_mode: int) -> tuple[ScalarStep, ...]:
    """The scalar loop's body, step by step on uint64 words: the scale's fp32 bit pattern
    ``bits`` (uint32) cut to fp19 (round_mode 0: ``& 0xFFFFE000``; 1: round to nearest even at
    bit 13 with sticky bits 11..0, zero / subnormal -> signed zero, inf / NaN truncated), ``| 1
    << 46``, and with ``off`` (the clamped int32 offset) ``| (off & 0x1FF) << 37``. ``temps``:
    four (n,) uint64 work regions."""
    u, b, c, d = temps
    S = ScalarStep
    out = [S(VecOp.CAST, u, (bits,))]
    if round_mode == 0:
        out.append(S(VecOp.ANDS, y, (u,), 0xFFFFE000))
    else:
        out += [
            S(VecOp.SHIFT_RIGHTS, c, (u,), 13),  # sign, exponent, 10 kept mantissa bits
            S(VecOp.ANDS, d, (u,), 0xFFF), S(VecOp.MINS, d, (d,), 1),  # sticky
            S(VecOp.ANDS, y, (c,), 1), S(VecOp.OR, d, (d, y)),  # sticky | odd
            S(VecOp.SHIFT_RIGHTS, y, (u,), 12), S(VecOp.ANDS, y, (y,), 1),  # round bit
            S(VecOp.AND, y, (y, d)), S(VecOp.ADD, y, (c, y)),  # + increment (carry runs on)
            S(VecOp.SHIFT_LEFTS, y, (y,), 13),
            S(VecOp.SHIFT_RIGHTS, b, (u,), 23), S(VecOp.ANDS, b, (b,), 0xFF),  # exponent
            S(VecOp.MINS, d, (b,), 1), S(VecOp.ANDS, c, (u,), 0x80000000),
            S(VecOp.SELECT, y, (d, y, c)),  # exponent 0: the signed zero
            S(VecOp.ADDS, d, (b,), 1), S(VecOp.SHIFT_RIGHTS, d, (d,), 8),
            S(VecOp.ANDS, c, (u,), 0xFFFFE000),
            S(VecOp.SELECT, y, (d, c, y)),  # exponent 255: inf / NaN truncated
        ]
    out.append(S(VecOp.ORS, y, (y,), 1 << 46))
    if off is not None:
        wide = Region(b.buffer, b.offset, b.shape, "int64")
        out += [S(VecOp.CAST, wide, (off,)), S(VecOp.ANDS, b, (b,), 0x1FF),
                S(VecOp.SHIFT_LEFTS, b, (b,), 37), S(VecOp.OR, y, (y, b))]
    return tuple(out)


def build_trans_quant_param(
    soc: SocDescriptor,
    scale_len: int,
    offset_len: int | None,
    round_mode: int,
    tiling: TransQuantParamTiling,
    *,
    scale: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> Kernel:
    """The one-AIV kernel for flat lengths ``scale_len`` / ``offset_len`` (None: no offset); the
    output ``y`` holds ``max(scale_len, offset_len)`` uint64 values."""
    with_off = offset_len is not None
    validate_trans_quant_param_tiling(tiling, soc, with_off)
    count = max(scale_len, offset_len or 1)
    gm = {"scale": GMTensor("scale", (scale_len,), "float32",
                            None if scale is None else np.asarray(scale, np.float32).reshape(-1),
                            "input")}
    if offset_len is not None:  # with_off
        gm["offset"] = GMTensor("offset", (offset_len,), "float32",
                                None if offset is None
                                else np.asarray(offset, np.float32).reshape(-1), "input")
    gm["y"] = GMTensor("y", (count,), "uint64", None, "output")
    kind = vector_core_kind(soc)
    prog = CoreProgram(0, kind)
    b = ProgramBuilder(prog, soc.core(kind))
    nbuf = 2 if tiling.double_buffer else 1
    chunk = min(tiling.chunk, -(-count // 8) * 8)
    s_bcast, o_bcast = scale_len == 1 < count, with_off and offset_len == 1 < count
    bufs = []
    for i in range(nbuf):
        sb = b.alloc("UB", (chunk,), "float32", f"scale{i}")
        ob = b.alloc("UB", (chunk,), "float32", f"offset{i}") if with_off else None
        ib = b.alloc("UB", (chunk,), "int32", f"offset_i32_{i}") if with_off else None
        yb = b.alloc("UB", (chunk,), "uint64", f"y{i}")
        bufs.append((sb, ob, ib, yb))
    # the scalar loop's work words: one set (the S pipe runs one chunk at a time)
    temps = [b.alloc("UB", (chunk,), "uint64", f"work{w}") for w in range(WORK_WORDS)]
    per_elem = SCALAR_PER_ELEMENT["base"] + (SCALAR_PER_ELEMENT["round_rne"] if round_mode else 0)
    per_elem += SCALAR_PER_ELEMENT["offset"] if with_off else 0
    q = VecInOut(b, tuple(range(nbuf)), compute="S")  # the S pipe's scalar loop computes
    for t, e0 in enumerate(range(0, count, chunk)):
        n = min(chunk, count - e0)
        i = q.load()  # the scalar loop (and the cast) of chunk t - nbuf released this buffer
        sb, ob, ib, yb = bufs[i]
        sreg = oreg = ireg = None
        if not s_bcast or t < nbuf:
            sn = 1 if s_bcast else n
            sreg = Region("UB", sb.offset, (sn,), "float32")
            b.dma(Region("GM", 0 if s_bcast else e0 * 4, (sn,), "float32", "scale"), sreg,
                  name="scale GM->UB")
        if with_off and (not o_bcast or t < nbuf):
            on = 1 if o_bcast else n
            oreg = Region("UB", allocated(ob, "offset UB buffer").offset, (on,), "float32")
            b.dma(Region("GM", 0 if o_bcast else e0 * 4, (on,), "float32", "offset"), oreg,
                  name="offset GM->UB")
        q.inq.ready(i)
        if oreg is not None:
            b.sync("MTE2", "V", i)
            ireg = Region("UB", allocated(ib, "offset int32 UB buffer").offset, oreg.shape,
                          "int32")
            b.cast(ireg, oreg, round_mode="rint", name="Cast offset fp32->int32 RINT")
            b.vop(VecOp.MAXS, ireg, (ireg,), scalar=-256, name="Maxs -256")
            b.vop(VecOp.MINS, ireg, (ireg,), scalar=255, name="Mins 255")
            b.sync("V", "S", i)
        q.outq.acquire()  # MTE3 of chunk t - nbuf has read the uint64 buffer
        yreg = Region("UB", yb.offset, (n,), "uint64")
        s_in = Region("UB", sb.offset, (1 if s_bcast else n,), "float32")
        i_in = None
        if with_off:
            i_in = Region("UB", allocated(ib, "offset int32 UB buffer").offset,
                          (1 if o_bcast else n,), "int32")
        bits = Region("UB", sb.offset, s_in.shape, "uint32")  # the fp32 scale's bit pattern
        work = tuple(Region("UB", t.offset, (n,), "uint64") for t in temps)
        b.scalar(f"quant param loop x{n}", SCALAR_PER_CHUNK + per_elem * n,
                 body=assembly_steps(bits, i_in, yreg, work, round_mode))
        q.store(i)
        b.dma(yreg, Region("GM", e0 * 8, (n,), "uint64", "y"), name="y UB->GM")
        q.stored(i)
    q.drain(oldest_first=True)  # every SetFlag has its WaitFlag
    meta = {"op": "trans_quant_param", "count": count, "round_mode": round_mode,
            "offset": with_off}
    return Kernel("trans_quant_param", gm, [prog], meta)


def _args(scale: Any, offset: Any, round_mode: Any
          ) -> tuple[int, int | None, int, tuple[int, ...], bool]:
    """(scale length, offset length or None, round_mode, output shape, functional); arrays get the
    operator's full validation, specs the shape / dtype rules."""
    from npusim.ops.trans_quant_param import (
        _check_round_mode,
        check_shape_dtype,
        validate_trans_quant_param,
    )
    from npusim.spec import is_spec, require_nd, shape_dtype

    require_nd("trans_quant_param", scale=scale, offset=offset)

    if not is_spec(scale) and (offset is None or not is_spec(offset)):
        s, o, mode, shape = validate_trans_quant_param(scale, offset, round_mode)
        return s.size, None if o is None else o.size, mode, shape, True
    mode = _check_round_mode(round_mode)
    sshape, sdt = shape_dtype(scale)
    shapes = [("scale", sshape, sdt)]
    if offset is not None:
        shapes.append(("offset", *shape_dtype(offset)))
    for name, shape, dt in shapes:
        check_shape_dtype(name, tuple(shape), dt)
    slen = int(np.prod(sshape))
    if offset is None:
        return slen, None, mode, sshape, False
    oshape = shapes[1][1]
    olen = int(np.prod(oshape))
    if len(sshape) == 2:
        if oshape != sshape:
            raise ValueError(f"offset: shape {oshape} must equal scale's {sshape} when scale is "
                             "2-D (seed 003)")
        return slen, olen, mode, sshape, False
    if slen > 1 and olen > 1 and slen != olen:
        raise ValueError(f"offset: scale and offset lengths {slen} and {olen} must be equal "
                         "when both are greater than 1")
    return slen, olen, mode, (sshape if sshape[0] > oshape[0] else oshape), False


def plan_trans_quant_param(soc: SocDescriptor, tiling: Any = None, *, scale: Any,
                           offset: Any = None, round_mode: Any = 0) -> Plan:
    """Runner entry for ``trans_quant_param``: arrays -> functional run whose output is the
    operator's int64 tensor; specs -> timing only."""
    from npusim.runner import Plan

    slen, olen, mode, shape, functional = _args(scale, offset, round_mode)
    t = TransQuantParamTiling() if tiling is None else tiling
    kern = build_trans_quant_param(soc, slen, olen, mode, t,
                                   scale=np.asarray(scale) if functional else None,
                                   offset=None if offset is None or not functional
                                   else np.asarray(offset))
    kind = vector_core_kind(soc)
    label = "1 AIV" if kind == "aiv" else "1 AI Core; 310P structure assumed (declared model)"
    return Plan(kern, f"trans_quant_param ({label})", t, functional,
                finish=lambda o: o["y"].view(np.int64).reshape(shape))


def cli_trans_quant_param(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run trans_quant_param``: --n channels (default 4096), offset of the same length,
    round_mode 1 when --kernel rne."""
    from npusim.spec import spec

    n = ns.n or 4096
    mode = 1 if (ns.kernel or "") == "rne" else 0
    if functional:
        return {"scale": rng.uniform(1e-4, 1e-1, n).astype(np.float32),
                "offset": rng.uniform(-300, 300, n).astype(np.float32), "round_mode": mode}
    return {"scale": spec((n,), "float32"), "offset": spec((n,), "float32"), "round_mode": mode}


def check_trans_quant_param(res: Any, op_args: dict[str, Any]) -> str:
    from npusim.ops.trans_quant_param import reference_trans_quant_param

    want = reference_trans_quant_param(op_args["scale"], op_args.get("offset"),
                                       op_args.get("round_mode", 0))
    same = np.array_equal(np.asarray(res.outputs).view(np.uint64), want.view(np.uint64))
    return f"output equals reference_trans_quant_param bit for bit: {same}"


def default_tiling_trans_quant_param(soc: SocDescriptor, **op_args: Any) -> TransQuantParamTiling:
    return TransQuantParamTiling()


def _validate(soc: SocDescriptor, *, scale: Any, offset: Any = None, round_mode: Any = 0) -> None:
    _args(scale, offset, round_mode)


OPERATOR = Operator(
    name="trans_quant_param",
    plan=plan_trans_quant_param,
    validate=_validate,
    default_tiling=default_tiling_trans_quant_param,
    example_inputs=cli_trans_quant_param,
    cli=CliSpec(
        "npu_trans_quant_param: fp32 scale + offset -> uint64 quant parameter",
        {"--n": "channels (default 4096)",
         "--kernel": "rne = round_mode 1 (default: round_mode 0)"},
        kernels=("rne",)),
    cann_op_type="TransQuantParamV2",
    quantisation=lambda a: f"quant parameter, round_mode {a.get('round_mode', 0)}",
    check_output=check_trans_quant_param,
)
