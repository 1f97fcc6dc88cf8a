"""The FixPipe quantisation parameter (ops-semantics 0.2 and 3.2): the 19-bit scale M1, the uint64
layout produced by npu_trans_quant_param, and the REQ8 / QF322B8_PRE / DEQF16 conversions.

Layout of the parameter: bits 31..13 = M1 (s1 e8 m10, the top 19 bits of an fp32), 35..32 = shift,
36 = mode_control, 45..37 = 9-bit signed offset, 46 = sign (1: signed int8 output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npusim.numerics.dtypes import is_bf16
from npusim.numerics.rounding import RoundMode, cast_float, float_to_int

_SIGN_BIT = np.uint64(1 << 46)
_OFFSET_SHIFT = np.uint64(37)
_F32_MAX = np.float32(np.finfo(np.float32).max)


def _exact_f32(x: np.ndarray | np.floating, name: str) -> np.ndarray:
    """``x`` as float32, refusing values that float32 cannot hold exactly (no silent rounding)."""
    arr = np.asarray(x)
    if arr.dtype == np.float32:
        return arr
    if arr.dtype.kind not in "fiu" and not is_bf16(arr.dtype):
        raise TypeError(f"{name}: dtype {arr.dtype} is not a real number type; float32 expected")
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = arr.astype(np.float32)
        same = (f32.astype(np.float64) == arr.astype(np.float64)) | (np.isnan(f32) & (arr != arr))
    if not np.all(same):
        bad = np.flatnonzero(~same)[0]
        raise ValueError(f"{name}: value {arr.reshape(-1)[bad].item()!r} (flat index {bad}) is not "
                         "exact in float32; pass float32 values")
    return f32


def fp19_bits(scale: np.ndarray, round_mode: int) -> np.ndarray:
    """float32 -> uint32 bit pattern with the low 13 bits cleared (s1 e8 m10 kept).

    round_mode 0 truncates. round_mode 1 rounds to nearest even on bit 12 with bits 11..0 sticky
    (ops-semantics 3.2): a zero exponent (zero / subnormal) gives a signed zero, exponent 255
    (inf / NaN) is truncated, a carry may run into the exponent, and past the largest finite
    value gives inf."""
    if round_mode not in (0, 1) or isinstance(round_mode, bool):
        raise ValueError(f"round_mode: {round_mode!r} is not allowed; it must be 0 or 1")
    u = np.ascontiguousarray(_exact_f32(scale, "scale")).view(np.uint32).astype(np.uint64)
    trunc = u & np.uint64(0xFFFFE000)
    if round_mode == 0:
        return trunc.astype(np.uint32)
    exp = (u >> np.uint64(23)) & np.uint64(0xFF)
    keep = u >> np.uint64(13)
    round_bit = (u >> np.uint64(12)) & np.uint64(1)
    sticky = (u & np.uint64(0xFFF)) != 0
    up = (round_bit == 1) & (sticky | ((keep & np.uint64(1)) == 1))
    rounded = (keep + up.astype(np.uint64)) << np.uint64(13)  # a carry runs into the exponent
    out = np.where(exp == 0, u & np.uint64(0x80000000), np.where(exp == 255, trunc, rounded))
    return out.astype(np.uint32)


def encode_quant_param(scale: np.ndarray, offset: np.ndarray | None = None,
                       round_mode: int = 0) -> np.ndarray:
    """The quant parameter of each element (int64 holding the uint64 pattern), as the
    npu_trans_quant_param kernel builds it (ops-semantics 3.2): M1 = ``fp19_bits(scale,
    round_mode)`` in bits 31..13, bit 46 set, and if ``offset`` is given, offset rounded half to
    even (Cast to int32, saturating, NaN -> 0), clamped to [-256, 255], in bits 45..37.

    ``scale`` and ``offset`` are float32 arrays of the same shape (the operator broadcasts them)."""
    m1 = fp19_bits(scale, round_mode)
    out = m1.astype(np.uint64) | _SIGN_BIT
    if offset is not None:
        off = _exact_f32(offset, "offset")
        if off.shape != m1.shape:
            raise ValueError(f"offset: shape {off.shape} differs from scale shape {m1.shape}; "
                             "broadcast them before encoding")
        o = np.clip(float_to_int(off, "int32", RoundMode.RINT).astype(np.int64), -256, 255)
        out = out | ((o.astype(np.uint64) & np.uint64(0x1FF)) << _OFFSET_SHIFT)
    return out.view(np.int64)


@dataclass(frozen=True)
class QuantParam:
    """Decoded fields of a quant parameter array (each the shape of the input)."""

    m1: np.ndarray            # float32: bits 31..13 of the parameter, low 13 bits zero
    offset: np.ndarray        # int32: bits 45..37 sign-extended from 9 bits
    signed: np.ndarray        # bool: bit 46 (True: signed int8 saturation)
    shift: np.ndarray         # uint8: bits 35..32
    mode_control: np.ndarray  # bool: bit 36


def decode_quant_param(q: np.ndarray) -> QuantParam:
    """Split int64 / uint64 quant parameters into their fields (ops-semantics 0.2)."""
    arr = np.asarray(q)
    if arr.dtype not in (np.int64, np.uint64):
        raise TypeError(f"q: dtype {arr.dtype} is not int64 or uint64 (a quant parameter)")
    u = np.ascontiguousarray(arr).view(np.uint64)
    m1 = (u & np.uint64(0xFFFFE000)).astype(np.uint32).view(np.float32)
    off = ((u >> _OFFSET_SHIFT) & np.uint64(0x1FF)).astype(np.int32)
    off = np.where(off >= 256, off - 512, off).astype(np.int32)
    return QuantParam(m1=m1, offset=off, signed=((u >> np.uint64(46)) & np.uint64(1)) == 1,
                      shift=((u >> np.uint64(32)) & np.uint64(0xF)).astype(np.uint8),
                      mode_control=((u >> np.uint64(36)) & np.uint64(1)) == 1)


def _acc_to_f32(acc: np.ndarray) -> np.ndarray:
    """float32(acc): RNE for integers (exact up to 2^24 in magnitude), identity for float32."""
    a = np.asarray(acc)
    if a.dtype == np.float32:
        return a
    if a.dtype == np.float16 or is_bf16(a.dtype):
        return a.astype(np.float32)  # exact
    if a.dtype.kind in "iu":
        return cast_float(a, "float32", RoundMode.RINT)
    raise TypeError(f"acc: dtype {a.dtype} is not allowed; int32 (REQ8 / DEQF16) or float32 "
                    "(QF322B8_PRE) expected")


def _scaled(acc: np.ndarray, m1: np.ndarray | np.floating) -> np.ndarray:
    """float32(acc) * m1 in fp32 (RNE). The product of two fp32 values is exact in float64, so it
    is rounded once; a finite product past the fp32 range becomes +-max fp32 (saturating), while
    inf / NaN operands propagate."""
    a = _acc_to_f32(acc).astype(np.float64)
    m = _exact_f32(m1, "m1").astype(np.float64)
    with np.errstate(invalid="ignore"):
        return cast_float(a * m, "float32", RoundMode.RINT, saturate=True)


def requant_int8(acc: np.ndarray, m1: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """REQ8 (int32 ``acc``) / QF322B8_PRE (float32 ``acc``), signed int8 output (ops-semantics 0.2):
    v = float32(acc) * m1 (fp32 product, RNE), s9 = clip(rint_even(v), -256, 255),
    out = clip(s9 + offset, -128, 127).

    The clamp to 9 bits comes before the offset (300 * 1 with offset -200 gives 55). float32(acc)
    of an int32 rounds half to even when |acc| > 2^24. NaN v gives s9 = 0 (declared, [INF]).
    ``m1`` (float32) and ``offset`` (integers in [-256, 255]) broadcast against ``acc``, e.g. per
    tensor (scalar) or per channel along the last axis."""
    off = np.asarray(offset)
    if off.dtype.kind not in "iu":
        raise TypeError(f"offset: dtype {off.dtype} is not an integer type (a decoded s9 offset)")
    if off.size and (off.min() < -256 or off.max() > 255):
        raise ValueError(f"offset: values must be 9-bit signed integers in [-256, 255], got range "
                         f"[{off.min()}, {off.max()}]")
    v = _scaled(acc, m1)
    s9 = np.clip(float_to_int(v, "int32", RoundMode.RINT).astype(np.int64), -256, 255)
    return np.clip(s9 + off.astype(np.int64), -128, 127).astype(np.int8)


def requant_params(quant_param: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m1 float32, offset int32) of REQ8 parameters (uint64 / int64, npu_trans_quant_param's
    encoding), in the parameters' shape, as :func:`requant_int8` takes them; what this model
    does not cover raises NotImplementedError: bit 46 = 0 (uint8 saturation), a shift or
    mode_control."""
    qp = decode_quant_param(np.asarray(quant_param))
    if not np.asarray(qp.signed).all():
        raise NotImplementedError(
            "quant_scale with bit 46 = 0 (uint8 saturation) is not modelled: int8 output needs "
            "the signed flag that npu_trans_quant_param always sets"
        )
    if np.any(np.asarray(qp.shift) != 0) or np.any(np.asarray(qp.mode_control)):
        raise NotImplementedError(
            "quant_scale with a non-zero shift (bits 32..35) or mode_control (bit 36) is not "
            "modelled (npu_trans_quant_param always leaves them 0)"
        )
    return np.asarray(qp.m1, dtype=np.float32), np.asarray(qp.offset, dtype=np.int32)


def requant_with_params(acc: np.ndarray, quant_param: np.ndarray) -> np.ndarray:
    """int8 output of REQ8 / QF322B8_PRE (one parameter) or VREQ8 / VQF322B8_PRE (one per
    column, along the last axis) from the uint64 / int64 parameters npu_trans_quant_param makes:
    :func:`requant_int8` with the decoded m1 and offset (:func:`requant_params`)."""
    m1, off = requant_params(quant_param)
    return np.asarray(requant_int8(acc, m1, off), dtype=np.int8)


def deqf16(acc: np.ndarray, m1: np.ndarray | np.floating) -> np.ndarray:
    """DEQF16 (declared model, ops-semantics 5.6 / 6.2 [INF]): float16 of float32(acc) * m1, both
    roundings to nearest even, overflow saturating to +-65504 (also when the fp32 product itself
    overflows); inf / NaN in m1 propagate. ``m1`` broadcasts against ``acc``."""
    return cast_float(_scaled(acc, m1), "float16", RoundMode.RINT, saturate=True)
