"""The FixPipe quantisation parameter (ops-semantics 0.2 and 3.2): the 19-bit scale M1 and the
uint64 layout produced by npu_trans_quant_param, and the REQ8 / DEQF16 conversions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npusim.numerics.rounding import RoundMode, cast_float, float_to_int


def fp19_bits(scale: np.ndarray, round_mode: int) -> np.ndarray:
    """float32 -> uint32 bit pattern with the low 13 bits cleared (s1 e8 m10 kept).

    round_mode 0 truncates; 1 rounds to nearest even on bit 12 with bits 11..0 sticky; a zero
    exponent gives a signed zero, exponent 255 (inf / NaN) is truncated, a carry may reach the
    exponent (overflow -> inf)."""
    if round_mode not in (0, 1):
        raise ValueError(f"round_mode={round_mode!r}: must be 0 or 1")
    u = np.ascontiguousarray(np.asarray(scale, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    trunc = u & 0xFFFFE000
    if round_mode == 0:
        return trunc.astype(np.uint32)
    exp = (u >> 23) & 0xFF
    keep = u >> 13
    rbit = (u >> 12) & 1
    sticky = (u & 0xFFF) != 0
    up = (rbit == 1) & (sticky | ((keep & 1) == 1))
    rounded = (keep + up.astype(np.uint64)) << 13
    out = np.where(exp == 0, u & 0x80000000, np.where(exp == 255, trunc, rounded))
    return out.astype(np.uint32)


def encode_quant_param(scale: np.ndarray, offset: np.ndarray | None = None,
                       round_mode: int = 0) -> np.ndarray:
    """Elementwise uint64 quant parameter (as int64): M1 in bits 31..13, offset in 45..37, bit 46
    set (signed int8 output). ``offset`` is rounded half-to-even and clamped to [-256, 255]."""
    out = fp19_bits(scale, round_mode).astype(np.uint64) | np.uint64(1 << 46)
    if offset is not None:
        o = float_to_int(np.asarray(offset, dtype=np.float32), "int32", RoundMode.RINT)
        o = np.clip(o.astype(np.int64), -256, 255)
        out = out | ((o.astype(np.uint64) & np.uint64(0x1FF)) << np.uint64(37))
    return out.astype(np.int64)


@dataclass(frozen=True)
class QuantParam:
    """Decoded fields of a quant parameter array."""

    m1: np.ndarray
    offset: np.ndarray
    signed: np.ndarray
    shift: np.ndarray
    mode_control: np.ndarray


def decode_quant_param(q: np.ndarray) -> QuantParam:
    u = np.asarray(q).astype(np.int64).view(np.uint64)
    m1 = (u & np.uint64(0xFFFFE000)).astype(np.uint32).view(np.float32)
    off = ((u >> np.uint64(37)) & np.uint64(0x1FF)).astype(np.int32)
    off = np.where(off >= 256, off - 512, off).astype(np.int32)
    return QuantParam(m1=m1, offset=off, signed=((u >> np.uint64(46)) & np.uint64(1)) == 1,
                      shift=((u >> np.uint64(32)) & np.uint64(0xF)).astype(np.uint8),
                      mode_control=((u >> np.uint64(36)) & np.uint64(1)) == 1)


def requant_int8(acc: np.ndarray, m1: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """REQ8 (int32 acc) / QF322B8_PRE (float32 acc), signed output:
    v = float32(acc) * m1 (fp32, RNE; int32 -> fp32 rounds RNE above 2^24), s9 =
    clip(rint(v), -256, 255), out = clip(s9 + offset, -128, 127)."""
    v = np.asarray(acc).astype(np.float32) * np.asarray(m1, dtype=np.float32)
    s9 = np.clip(float_to_int(v, "int32", RoundMode.RINT).astype(np.int64), -256, 255)
    return np.clip(s9 + np.asarray(offset, dtype=np.int64), -128, 127).astype(np.int8)


def deqf16(acc: np.ndarray, m1: np.ndarray) -> np.ndarray:
    """DEQF16 (declared model): float16(RNE, saturating) of float32(acc) * m1 (fp32 product)."""
    v = np.asarray(acc).astype(np.float32) * np.asarray(m1, dtype=np.float32)
    return cast_float(v, "float16", RoundMode.RINT, saturate=True)
