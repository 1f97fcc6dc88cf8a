"""Opcodes of the vector unit, FixPipe quant modes and DataCopy layout transforms.

Each vector opcode names what an Ascend C kernel issues and carries the descriptor cost class its
cycles-per-repeat come from (``cores.<kind>.vector.classes`` in ``socs/cores/*.yaml``).
"""

from __future__ import annotations

from enum import StrEnum


class VecOp(StrEnum):
    """Vector instructions (Ascend C names). The value is the instruction's display name."""

    ADD = "Add"
    SUB = "Sub"
    MUL = "Mul"
    DIV = "Div"
    MAX = "Max"
    MIN = "Min"
    ADDS = "Adds"
    MULS = "Muls"
    MAXS = "Maxs"
    MINS = "Mins"
    AXPY = "Axpy"
    MUL_ADD_DST = "MulAddDst"
    ABS = "Abs"
    EXP = "Exp"
    LN = "Ln"
    SQRT = "Sqrt"
    RECIPROCAL = "Reciprocal"
    CAST = "Cast"
    DUPLICATE = "Duplicate"
    COPY = "Copy"
    BRCB = "Brcb"
    BLOCK_REDUCE_SUM = "BlockReduceSum"
    BLOCK_REDUCE_MAX = "BlockReduceMax"
    WHOLE_REDUCE_SUM = "WholeReduceSum"
    WHOLE_REDUCE_MAX = "WholeReduceMax"
    REDUCE_SUM = "ReduceSum"  # each row of the region -> one element (level-2 ReduceSum)
    REDUCE_MAX = "ReduceMax"  # each row of the region -> one element (level-2 ReduceMax)
    REDUCE_MIN = "ReduceMin"  # each row of the region -> one element (level-2 ReduceMin)
    TRANSPOSE_BLOCKS = "TransposeBlocks"
    AND = "And"  # bitwise, integer operands
    OR = "Or"
    ANDS = "Ands"  # bitwise with a scalar operand
    ORS = "Ors"
    SHIFT_LEFTS = "ShiftLeft"  # by a scalar bit count (ShiftLeft / ShiftRight take a scalar)
    SHIFT_RIGHTS = "ShiftRight"  # logical for unsigned operands
    SELECT = "Select"  # dst = srcs[0] != 0 ? srcs[1] : srcs[2]
    CUSTOM = "Custom"  # an instruction whose semantics a program supplies (being retired)

    @property
    def cost_class(self) -> str:
        """The descriptor's cycles-per-repeat class for this opcode."""
        return _COST_CLASS[self]


_COST_CLASS: dict[VecOp, str] = {
    VecOp.ADD: "binary", VecOp.SUB: "binary", VecOp.MUL: "binary", VecOp.MAX: "binary",
    VecOp.MIN: "binary",
    VecOp.DIV: "divide",
    VecOp.ADDS: "unary", VecOp.MULS: "unary", VecOp.MAXS: "unary", VecOp.MINS: "unary",
    VecOp.ABS: "unary",
    VecOp.EXP: "special", VecOp.LN: "special", VecOp.SQRT: "special",
    VecOp.RECIPROCAL: "divide",
    VecOp.AXPY: "ternary", VecOp.MUL_ADD_DST: "ternary",
    VecOp.CAST: "convert",
    VecOp.DUPLICATE: "dup", VecOp.BRCB: "dup",
    VecOp.COPY: "copy", VecOp.TRANSPOSE_BLOCKS: "copy",
    VecOp.BLOCK_REDUCE_SUM: "reduce", VecOp.BLOCK_REDUCE_MAX: "reduce",
    VecOp.WHOLE_REDUCE_SUM: "reduce", VecOp.WHOLE_REDUCE_MAX: "reduce",
    VecOp.REDUCE_SUM: "reduce", VecOp.REDUCE_MAX: "reduce", VecOp.REDUCE_MIN: "reduce",
    VecOp.AND: "binary", VecOp.OR: "binary", VecOp.ANDS: "unary", VecOp.ORS: "unary",
    VecOp.SHIFT_LEFTS: "unary", VecOp.SHIFT_RIGHTS: "unary", VecOp.SELECT: "binary",
    VecOp.CUSTOM: "",
}

#: binary element-wise opcodes (dst = a op b)
BINARY = frozenset({VecOp.ADD, VecOp.SUB, VecOp.MUL, VecOp.DIV, VecOp.MAX, VecOp.MIN})
#: vector-scalar opcodes (dst = a op scalar)
WITH_SCALAR = frozenset({VecOp.ADDS, VecOp.MULS, VecOp.MAXS, VecOp.MINS, VecOp.AXPY,
                         VecOp.DUPLICATE})
#: unary element-wise opcodes
UNARY = frozenset({VecOp.ABS, VecOp.EXP, VecOp.LN, VecOp.SQRT, VecOp.RECIPROCAL, VecOp.COPY})


class FixpipeMode(StrEnum):
    """FixPipe conversion out of L0C (Ascend C QuantMode_t names)."""

    NONE = "NONE"  # fp32 / int32 unchanged
    F322F16 = "F322F16"
    F322BF16 = "F322BF16"
    REQ8 = "REQ8"  # int32 -> int8, one scale
    VREQ8 = "VREQ8"  # int32 -> int8, per-channel parameters
    DEQF16 = "DEQF16"  # int32 -> fp16, one scale
    VDEQF16 = "VDEQF16"
    QF322B8_PRE = "QF322B8_PRE"  # fp32 -> int8, one parameter (SetQuantScalar)
    VQF322B8_PRE = "VQF322B8_PRE"  # fp32 -> int8, per-channel parameters in FB
    CUSTOM = "CUSTOM"  # a program-supplied conversion (being retired)


class Transform(StrEnum):
    """On-the-fly layout change of a DataCopy."""

    NONE = ""
    ND2NZ = "nd2nz"
    NZ2ND = "nz2nd"
    DN2NZ = "dn2nz"  # a transposed (column-major) ND source written as NZ
    NZ = "nz"  # a GM FRACTAL_NZ window of the tile's own matrix, copied as stored (plain copy)
