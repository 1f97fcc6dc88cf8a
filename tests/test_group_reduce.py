"""The per-group reduction stage (ops/group_reduce.py) that Msd, MsdSplitK and MsdGroup share:
run on the semantics table, each 64 / 128-lane group of fp32 reduces to the numerics model's
group sum (``vector_ops.group_sum``: halves added, then the pairwise block tree) or to its
exact max, with separate buffers or in place over one (MsdGroup's form); other group widths
are refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from _wqbmm_replay import B2

from npusim.engine.buffers import FunctionalContext
from npusim.engine.errors import ProgramError
from npusim.engine.program import CoreProgram, ProgramBuilder
from npusim.isa.operands import Region
from npusim.isa.semantics import SEMANTICS
from npusim.ops.group_reduce import block_reduce, group_reduce
from npusim.ops.weight_quant_batchmatmul import vector_ops as vo
from npusim.runner import resolve_soc

F32 = np.float32
N = 5  # groups


def _builder() -> tuple[ProgramBuilder, FunctionalContext]:
    desc = resolve_soc(B2).core("aiv")
    b = ProgramBuilder(CoreProgram(0, "aiv"), desc)
    return b, FunctionalContext(SimpleNamespace(gm={}), [desc])  # type: ignore[arg-type]


def _run(red: str, g: int, in_place: bool, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The stage's per-group values, the groups it read, its instruction names."""
    b, ctx = _builder()
    x = b.alloc("UB", (N, g), "float32", "x")
    if in_place:  # MsdGroup: work, eights and the result share one buffer
        at = b.alloc("UB", (N, 64), "float32", "scratch").offset
        work, eights, dst = (Region("UB", at, shape, "float32") for shape in
                             [(N, 64), (N * 8,), (N,)])
    else:
        work = b.alloc("UB", (N, 64), "float32", "work")
        eights = b.alloc("UB", (N * 8,), "float32", "eights")
        dst = b.alloc("UB", (N,), "float32", "dst")
    xs = (np.random.default_rng(seed).standard_normal((N, g)) * 100).astype(F32)
    ctx.view(x)[:] = xs
    group_reduce(b, red, x, work, eights, dst)
    for ins in b.program.instrs:
        SEMANTICS[type(ins)](ins, ctx)
    return ctx.read(dst), xs, [i.name for i in b.program.instrs]


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("g", [64, 128])
def test_group_sums_are_the_models_bits(g, in_place):
    got, xs, names = _run("Sum", g, in_place, g + in_place)
    want = vo.group_sum(xs)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert names == ["Sum halves"] * (g == 128) + ["BlockReduceSum per group",
                                                   "BlockReduceSum blocks"]


@pytest.mark.parametrize("g", [64, 128])
def test_group_maxima_are_exact(g):
    got, xs, names = _run("Max", g, True, 7 * g)
    assert np.array_equal(got, xs.max(axis=1))
    assert names[-1] == "BlockReduceMax blocks" and ("Max halves" in names) == (g == 128)


def test_block_reduce_of_one_row_and_other_widths_refused():
    """Msd's form: one (64,) chunk -> (8,) -> (1,), the element counts those of the regions;
    a group of 96 lanes is refused."""
    b, _ = _builder()
    t64 = b.alloc("UB", (64,), "float32", "t64")
    s8 = b.alloc("UB", (8,), "float32", "s8")
    one = b.alloc("UB", (8,), "float32", "one")
    block_reduce(b, "Sum", t64, s8, Region("UB", one.offset, (1,), "float32"))
    assert [i.elements for i in b.program.instrs] == [64, 8]
    with pytest.raises(ProgramError, match="64 or 128"):
        group_reduce(b, "Sum", b.alloc("UB", (N, 96), "float32", "x96"), t64, s8, one)
