"""Interned cube programs (issue 14 item 3) equal the programs built without interning.

Rule pinned here: ``ops.cube_templates.Interner`` only shares objects - every core's instruction
stream is, instruction by instruction, equal (all fields) to the stream a pass-through interner
builds (a fresh Region / instruction per call, the builder's behaviour before interning), and
both programs run to the same cycles, records and traffic; and a multi-core matmul really shares
(far fewer distinct instruction objects than instructions).
"""

from __future__ import annotations

import numpy as np
import pytest

import npusim.ops.matmul_program as mp  # the kernel builder: it makes the Interner the tests swap
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.isa.operands import Region
from npusim.operators import get_operator
from npusim.ops.cube_templates import Interner
from npusim.spec import spec
from tests.test_fast_engine import fingerprint


class _PassThrough(Interner):
    """Builds every region and instruction afresh (no sharing, no tile templates)."""

    templates = False

    def region(self, buffer, offset, shape, dtype, tensor=None, stride=None):
        return Region(buffer, offset, shape, dtype, tensor, stride)

    def window(self, mat, r0, rows, c0, cols):
        return mat.window(r0, rows, c0, cols)

    def copy(self, bld, src, dst, name, transform=""):
        bld.dma(src, dst, name=name, transform=transform)

    def mmad(self, bld, a, b, c, m, k, n, dtype, accumulate, bias, accumulation, hf32=""):
        bld.mmad(a, b, c, m, k, n, dtype, accumulate=accumulate, bias=bias,
                 accumulation=accumulation, hf32=hf32)


CASES = [
    ("Ascend910B2", "matmul", {"a": spec((1000, 777), "float16"),
                               "b": spec((777, 300), "float16")}),
    ("Ascend910B2", "matmul", {"a": spec((512, 1024), "bfloat16"),
                               "b": spec((1024, 768), "bfloat16", transposed=True),
                               "bias": spec((768,), "float32")}),
    ("Ascend910B2", "matmul", {"a": spec((3, 256, 512), "float16"),
                               "b": spec((512, 640), "float16")}),
    ("Ascend910B2", "matmul", {"a": spec((64, 8192), "float16"),
                               "b": spec((8192, 64), "float16")}),
    ("Ascend910B2", "quant_matmul", {"x1": spec((256, 512), "int8"),
                                     "x2": spec((512, 384), "int8"),
                                     "scale": np.full(384, 1e-3, np.float32),
                                     "output_dtype": "bfloat16"}),
    ("Ascend910B4", "weight_quant_batchmatmul", {"x": spec((64, 1024), "float16"),
                                                 "weight": spec((1024, 512), "int8"),
                                                 "antiquant_scale": spec((512,), "float16")}),
    ("Ascend310P3", "matmul", {"a": spec((300, 512), "float16"),
                               "b": spec((512, 200), "float16")}),
]


@pytest.mark.parametrize(("soc_name", "op", "args"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_interned_program_equals_fresh_build(soc_name, op, args, monkeypatch):
    soc = load_soc(soc_name)
    shared = get_operator(op).plan(soc, **args).kernel
    monkeypatch.setattr(mp, "Interner", _PassThrough)
    fresh = get_operator(op).plan(soc, **args).kernel
    assert [c.kind for c in shared.cores] == [c.kind for c in fresh.cores]
    for cs, cf in zip(shared.cores, fresh.cores, strict=True):
        assert len(cs.instrs) == len(cf.instrs)
        for i, (x, y) in enumerate(zip(cs.instrs, cf.instrs, strict=True)):
            assert type(x) is type(y) and x == y, f"{cs.name} instruction {i}: {x} != {y}"
    for engine in ("fast", "reference"):
        a = run_kernel(shared, soc, check_races=False, engine=engine)
        b = run_kernel(fresh, soc, check_races=False, engine=engine)
        assert fingerprint(a) == fingerprint(b)


def test_cores_share_instruction_objects():
    """A 24-core fp16 matmul holds each repeated instruction once (flags, L1 -> L0 copies,
    Mmads, GM windows loaded by every core of a block row)."""
    soc = load_soc("Ascend910B2")
    kernel = get_operator("matmul").plan(
        soc, a=spec((2048, 2048), "float16"), b=spec((2048, 2048), "float16")).kernel
    instrs = [ins for c in kernel.cores for ins in c.instrs]
    distinct = len({id(ins) for ins in instrs})
    assert len(kernel.cores) > 1 and distinct * 10 < len(instrs)


def _sampled_tilings(m: int, k: int, n: int, count: int, seed: int) -> list:
    import random

    from npusim.ops import matmul_sweep

    soc = load_soc("Ascend910B2")
    tilings = list(matmul_sweep.enumerate_tilings(soc, {"m": m, "k": k, "n": n,
                                                        "dtype": "float16"}))
    return random.Random(seed).sample(tilings, min(count, len(tilings)))


@pytest.mark.parametrize(("m", "k", "n"), [(1, 4096, 4096), (200, 1000, 700), (512, 384, 2048)])
def test_tile_templates_over_the_tiling_space(m, k, n, monkeypatch):
    """Legal tilings drawn from the sweep's space (L1 depths, L0 / L0C double buffering, K
    steps, block orders, ragged edge tiles, several tiles per core): the template-replayed
    program equals the fresh build instruction for instruction."""
    soc = load_soc("Ascend910B2")
    args = {"a": spec((m, k), "float16"), "b": spec((k, n), "float16")}
    plan = get_operator("matmul").plan
    tilings = _sampled_tilings(m, k, n, 12, seed=m + k + n)
    shared = [plan(soc, t, **args).kernel for t in tilings]
    monkeypatch.setattr(mp, "Interner", _PassThrough)
    for t, ks in zip(tilings, shared, strict=True):
        kf = plan(soc, t, **args).kernel
        got = [ins for c in ks.cores for ins in c.instrs]
        want = [ins for c in kf.cores for ins in c.instrs]
        assert got == want, f"tiling {t}"


def test_instr_pool_shares_only_identical_instructions():
    """InstrPool.share returns the first instruction equal in every field, and keeps apart
    instructions whose scalar operands are == but behave differently (-0.0 / 0.0, 1 / 1.0)."""
    from npusim.engine.program import InstrPool
    from npusim.isa.instructions import Vector
    from npusim.isa.opcodes import VecOp

    ub = Region("UB", 0, (128,), "float32")

    def muls(scalar):
        return Vector(pipe="V", name="Muls", reads=(ub,), writes=(ub,), op=VecOp.MULS,
                      elements=128, dtype="float32", scalar=scalar)

    pool = InstrPool()
    first = pool.share(muls(0.0))
    assert pool.share(muls(0.0)) is first
    assert pool.share(muls(-0.0)) is not first
    one = pool.share(muls(1.0))
    assert pool.share(muls(1)) is not one and pool.share(muls(1.0)) is one
    other = muls(2.0)
    assert pool.share(other) is other and len(pool) == 3


def _wqbmm_calls():
    from tests._wqbmm_replay import fixpipe_call, wqbmm_call

    yield "MsdGroup", wqbmm_call(1, 2, 1024, 512, wdt="int4", group=128, offset=True, bias=True)
    yield "Msd", wqbmm_call(2, 16, 1024, 512, bias=True)
    yield "MsdSplitK", wqbmm_call(3, 3, 1024, 256, xdt="bfloat16", wdt="int4", group=128,
                                  offset=True, bias=True)
    yield "Custom", wqbmm_call(4, 200, 512, 384, group=64, offset=True, bias=True)
    yield "Fixpipe", fixpipe_call(5, 48, 256, 256, True, True)


@pytest.mark.parametrize(("kernel", "call"), list(_wqbmm_calls()),
                         ids=[k for k, _ in _wqbmm_calls()])
def test_pooled_wqbmm_program_equals_unpooled(kernel, call, monkeypatch):
    """The wqbmm builders share instructions through an InstrPool: the pooled program equals,
    instruction for instruction, the program built without sharing, holds fewer distinct
    objects, and runs to the same cycles, records and traffic (both engines) and the same
    output bits (functional run)."""
    import npusim
    from npusim.engine.program import InstrPool
    from tests._wqbmm_replay import bits

    def run(**kw):
        return npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", kernel=kernel,
                               **kw, **call)

    pooled = run()
    monkeypatch.setattr(InstrPool, "share", lambda self, ins: ins)
    fresh = run()
    assert pooled.kernel_name == fresh.kernel_name == kernel
    ks, kf = pooled.run.kernel, fresh.run.kernel
    for cs, cf in zip(ks.cores, kf.cores, strict=True):
        assert len(cs.instrs) == len(cf.instrs)
        for i, (x, y) in enumerate(zip(cs.instrs, cf.instrs, strict=True)):
            assert type(x) is type(y) and x == y, f"{cs.name} instruction {i}: {x} != {y}"

    def distinct(k):
        return len({id(ins) for c in k.cores for ins in c.instrs})

    assert distinct(ks) < distinct(kf)
    assert np.array_equal(bits(pooled.outputs), bits(fresh.outputs))
    for engine in ("fast", "reference"):
        a = run_kernel(ks, load_soc("Ascend910B2"), check_races=False, engine=engine)
        b = run_kernel(kf, load_soc("Ascend910B2"), check_races=False, engine=engine)
        assert fingerprint(a) == fingerprint(b)
