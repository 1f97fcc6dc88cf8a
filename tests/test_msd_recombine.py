"""The MSD recombination stage (ops/msd_recombine.py) that MsdGroup and MsdSplitK share: run on
the semantics table over two blocks with offset terms, both of its forms (MsdSplitK's fused one,
from Duplicate 0 with Axpy / MulAddDst; MsdGroup's, where the first term writes) accumulate the
bits of the formula ``acc += rsum (scale offset) + (sum_i C_i divF_i) scale amax`` rounded step
by step, from int32 or fp16 (inner_precise 1) digit products; they differ in instructions only.
"""

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
from npusim.ops.msd_recombine import MsdRecombine
from npusim.runner import resolve_soc

F32, F16 = np.float32, np.float16
M, W, DIGITS, BLOCKS = 4, 64, 3, 2


def _reference(c, scale, so, rsum, amax, div, fp16):
    """The formula in numpy, one rounding per step (MulAddDst / Axpy round the product)."""
    acc = np.zeros((M, W), F32)
    for blk in range(BLOCKS):
        acc = (acc + (rsum[blk][:, None] * so[blk]).astype(F32)).astype(F32)
        if fp16:
            c16 = c[blk][0].astype(F16)
            for d in range(1, DIGITS):
                c16 = (c16 + (c[blk][d].astype(F16) * F16(div[d])).astype(F16)).astype(F16)
            cc = (c16.astype(F32) * F32(div[0])).astype(F32)
        else:
            cc = (c[blk][0].astype(F32) * F32(div[0])).astype(F32)
            for d in range(1, DIGITS):
                cc = (cc + (c[blk][d].astype(F32) * F32(div[d])).astype(F32)).astype(F32)
        cc = ((cc * scale[blk]).astype(F32) * amax[blk][:, None]).astype(F32)
        acc = (acc + cc).astype(F32)
    return acc


def _run(fused: bool, fp16: bool, seed: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The stage's accumulator after two blocks; the instruction names; the reference."""
    soc = resolve_soc(B2)
    desc = soc.core("aiv")
    b = ProgramBuilder(CoreProgram(0, "aiv"), desc)
    ctx = FunctionalContext(SimpleNamespace(gm={}), [desc])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    rc = MsdRecombine.of("int4", fp16, fused=fused)
    cdt = "float16" if fp16 else "int32"
    c = [b.alloc("UB", (M, W), cdt, f"c{d}") for d in range(DIGITS)]
    cc = (b.alloc("UB", (M, W), "float32", "cc") if fused or fp16
          else c[0].as_dtype("float32"))  # MsdGroup's int32 sum is digit 0's rows
    sc, of = (b.alloc("UB", (W,), "float32", nm) for nm in ("scale", "offset"))
    raw = [b.alloc("UB", (W,), "float16", nm) for nm in ("scale_in", "offset_in")]
    stats = [b.alloc("UB", (M, 8), "float32", nm) for nm in ("rsum", "amax")]
    rsum_r, amax_r = (Region("UB", s.offset, (M, 1), "float32", row_stride_bytes=32)
                      for s in stats)
    acc = b.alloc("UB", (M, W), "float32", "acc")
    ctx.view(acc)[:] = F32(rng.standard_normal())  # stale UB: the first term must not read it
    hi = 200 if fp16 else 20000
    prods = [[rng.integers(-hi, hi, (M, W)) for _ in range(DIGITS)] for _ in range(BLOCKS)]
    params = [(rng.random(W) * 0.05 + 0.01).astype(F16) for _ in range(BLOCKS)]
    offsets = [(rng.standard_normal(W) * 3).astype(F16) for _ in range(BLOCKS)]
    rsums = [rng.standard_normal(M).astype(F32) * 30 for _ in range(BLOCKS)]
    amaxs = [rng.random(M).astype(F32) * 4 + 0.5 for _ in range(BLOCKS)]

    def execute(start: int) -> int:
        instrs = b.program.instrs
        for ins in instrs[start:]:
            SEMANTICS[type(ins)](ins, ctx)
        return len(instrs)

    sum_r = rc.accumulator(b, acc)
    done = execute(0)
    for blk in range(BLOCKS):
        for d in range(DIGITS):
            ctx.view(c[d])[:] = prods[blk][d].astype(F16 if fp16 else np.int32)
        ctx.view(raw[0])[:], ctx.view(raw[1])[:] = params[blk], offsets[blk]
        ctx.view(rsum_r)[:, 0], ctx.view(amax_r)[:, 0] = rsums[blk], amaxs[blk]
        rc.params(b, (sc, raw[0]), (of, raw[1]))
        sum_r.add_offset(b, rsum_r, of)
        rc.digit_sum(b, c, cc)
        sum_r.add_digits(b, cc, sc, amax_r)
        done = execute(done)
    so = [(p.astype(F32) * o.astype(F32)).astype(F32) for p, o in zip(params, offsets, strict=True)]
    want = _reference(prods, [p.astype(F32) for p in params], so, rsums, amaxs, rc.div, fp16)
    return ctx.read(acc), [i.name for i in b.program.instrs], want


@pytest.mark.parametrize("fp16", [False, True])
def test_both_forms_give_the_formulas_bits(fp16):
    got_fused, names_fused, want = _run(True, fp16, 3)
    got_group, names_group, _ = _run(False, fp16, 3)
    assert np.array_equal(got_fused.view(np.uint32), want.view(np.uint32))
    assert np.array_equal(got_group.view(np.uint32), want.view(np.uint32))
    assert names_fused[0] == "Duplicate 0 acc" and "Copy to acc" not in names_fused
    assert "MulAddDst cc*amax" in names_fused and "Mul amax" not in names_fused
    # MsdGroup's first offset term writes acc; each digit term is Mul amax then Add
    assert names_group.count("Mul rsum*scale*offset") == 1
    assert names_group.count("MulAddDst rsum*scale*offset") == BLOCKS - 1
    assert names_group.count("Mul amax") == names_group.count("Add to acc") == BLOCKS
    if not fp16:  # the int32 digit sum: from Duplicate 0 (fused), or in place on digit 0
        assert names_fused.count("Duplicate 0 cc") == BLOCKS and "Muls divF0" not in names_fused
        assert names_group.count("Muls divF0") == BLOCKS and "Duplicate 0 cc" not in names_group


def test_a_first_digit_term_copies_into_acc_and_misuse_is_refused():
    """Without an offset MsdGroup's first digit term is a Copy; an unfused int32 sum must start
    in digit 0's rows, and the fp16 chain takes no per-digit load hook."""
    soc = resolve_soc(B2)
    b = ProgramBuilder(CoreProgram(0, "aiv"), soc.core("aiv"))
    c = [b.alloc("UB", (M, W), "int32", f"c{d}") for d in range(DIGITS)]
    cc = b.alloc("UB", (M, W), "float32", "cc")
    row = b.alloc("UB", (W,), "float32", "scale")
    amax = Region("UB", b.alloc("UB", (M, 8), "float32", "amax").offset, (M, 1), "float32",
                  row_stride_bytes=32)
    acc = MsdRecombine.of("int4", False, fused=False).accumulator(b, cc)
    acc.add_digits(b, c[0].as_dtype("float32"), row, amax)
    assert [i.name for i in b.program.instrs] == ["Mul scale", "Mul amax", "Copy to acc"]
    with pytest.raises(ProgramError, match="starts in place"):
        MsdRecombine.of("int4", False, fused=False).digit_sum(b, c, cc)
    with pytest.raises(ProgramError, match="no per-digit hook"):
        MsdRecombine.of("int4", True, fused=False).digit_sum(b, c, cc, before=lambda d: None)
