"""Per-group reductions of fp32 UB rows to one value per group, the way the MSD kernels take
their statistics of x (ops-semantics 5.5; ``vector_ops.group_sum`` is the numerics model of the
sum): a 128-lane group first combines its two halves lane-wise (Add / Max) into 64 lanes, then
two BlockReduces take each 64 lanes to 8 and the 8 to 1 (the kernels' ReduceRepeatToScalar).

MsdGroup reduces each group's sum and max this way, MsdSplitK each group's sum (and, after its
own halving of a K block's chunks, each block's), and Msd a row's sum once its 64-lane chunks
are added; the instruction names are this module's.
"""

from __future__ import annotations

from npusim.engine.errors import ProgramError
from npusim.engine.program import ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region

#: the lane-wise and the block operation of each reduction
_OPS = {"Sum": (VecOp.ADD, VecOp.BLOCK_REDUCE_SUM), "Max": (VecOp.MAX, VecOp.BLOCK_REDUCE_MAX)}


def block_reduce(b: ProgramBuilder, red: str, lanes: Region, eights: Region, dst: Region) -> None:
    """``lanes`` (n groups of 64 fp32: (n, 64), or (64,)) -> ``eights`` (8 n) -> ``dst`` (n):
    the two BlockReduce passes of reduction ``red`` ("Sum" or "Max")."""
    op = _OPS[red][1]
    b.vop(op, eights, (lanes,), elements=lanes.elements, name=f"BlockReduce{red} per group")
    b.vop(op, dst, (eights,), elements=eights.elements, name=f"BlockReduce{red} blocks")


def group_reduce(b: ProgramBuilder, red: str, groups: Region, work: Region, eights: Region,
                 dst: Region) -> None:
    """Each row of ``groups`` ((n, g) fp32, g 64 or 128) reduced to one value of ``dst``; a
    128-lane group's halves are combined into ``work`` ((n, 64) fp32) first."""
    n, g = groups.shape
    if g == 128:
        halves = tuple(Region("UB", groups.offset + h * 256, (n, 64), "float32",
                              row_stride_bytes=g * 4) for h in range(2))
        b.vop(_OPS[red][0], work, halves, name=f"{red} halves")
        groups = work
    elif g != 64:
        raise ProgramError(f"group_reduce: groups of 64 or 128 lanes, not {g}")
    block_reduce(b, red, groups, eights, dst)
