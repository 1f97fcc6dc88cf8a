"""The instruction set: typed instructions (``instructions``), their opcodes (``opcodes``),
operands (``operands``) and the one semantics table (``semantics``). Costs live in
``npusim.engine.timing`` and the engine's cost table."""

from npusim.isa.instructions import (
    INSTRUCTION_TYPES,
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
from npusim.isa.opcodes import FixpipeMode, Transform, VecOp
from npusim.isa.operands import Region

__all__ = [
    "INSTRUCTION_TYPES",
    "Cast",
    "CrossCoreSetFlag",
    "CrossCoreWaitFlag",
    "DataCopy",
    "FixPipe",
    "FixpipeMode",
    "Instruction",
    "Mmad",
    "PipeBarrier",
    "Region",
    "Scalar",
    "ScalarStep",
    "SetFlag",
    "Transform",
    "VecOp",
    "Vector",
    "WaitFlag",
]
