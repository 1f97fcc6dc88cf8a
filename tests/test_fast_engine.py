"""The fast engine (npusim.engine.fast) equals the simpy reference engine exactly.

Rule pinned here: for every program, both engines give the same cycles, the same records (core,
pipe, name, kind, start, end, bytes, HBM bytes) in the same order, the same flows, traffic,
per-path bytes, HBM busy time and per-pipe busy time, and in functional runs the same output bits
(uint8 views); a program the reference rejects (a race in a race-checked run included) raises the
same error, word for word. Programs: the calibration programs ``npusim validate`` builds, and
random multi-core programs (hypothesis) with intra- and cross-core flags, barriers, strided and
unaligned GM windows, L2 bypass reads, atomic adds, tiny L2s and slow HBM (so evictions and
channel queueing happen), and launch floors of zero (so pipes start at cycle 0 beside pipes that
wait for their launch).
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim.engine.sim as sim
import npusim.runner as runner
from npusim import validate
from npusim.engine import fast
from npusim.engine.errors import DeadlockError, ProgramError, RaceError, SyncError
from npusim.engine.memory import L2Cache
from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder, Region
from npusim.hw import load_soc
from npusim.isa.opcodes import VecOp
from npusim.operators import get_operator
from npusim.spec import spec

SPLIT = load_soc("Ascend910B2")
SOCS = {
    "910B2": SPLIT,
    "910B2 launch 0, slow HBM, 128 KiB L2": load_soc("Ascend910B2", overrides=[
        "kernel_launch_cycles=0", "kernel_launch_mix_cycles=0", "kernel_launch_cube_cycles=0",
        "memory.hbm.bandwidth_gb_per_s=40", "memory.l2.capacity_bytes=131072"]),
    "910B4": load_soc("Ascend910B4"),
}
COUPLED = load_soc("Ascend310P3")


def fingerprint(res: sim.RunResult) -> tuple:
    """Everything a run reports, as plain values (pipe_busy read before the records, so a fast
    result computes it from its event tuples, then again after)."""
    busy = res.pipe_busy()
    recs = [(r.core, r.pipe, r.name, r.kind, r.start, r.end, r.nbytes, r.hbm_bytes)
            for r in res.records]
    flows = [(f.name, f.src_core, f.src_pipe, f.ts_set, f.dst_core, f.dst_pipe, f.ts_wait)
             for f in res.flows]
    outputs = {n: (a.shape, a.dtype.str, np.ascontiguousarray(a).view(np.uint8).tobytes())
               for n, a in res.outputs.items()}
    return (res.cycles, recs, flows, res.traffic.as_dict(), dict(res.traffic.per_path_bytes),
            res.hbm_busy_cycles, busy, res.pipe_busy(), res.l2_start, res.functional, outputs)


def run_both(kernel: Kernel, soc, **kw) -> tuple:
    """(reference result or error, fast result or error) for one kernel (timing-only without
    race checks unless ``kw`` says otherwise)."""
    kw.setdefault("check_races", False)
    out = []
    for engine in ("reference", "fast"):
        try:
            out.append(sim.run_kernel(kernel, soc, engine=engine, **kw))
        except (ProgramError, DeadlockError, RaceError, RuntimeError, ValueError) as exc:
            out.append(exc)
    return tuple(out)


def assert_same(ref, got) -> None:
    if isinstance(ref, Exception):
        assert type(got) is type(ref) and str(got) == str(ref)
        return
    assert isinstance(got, fast.FastRunResult), "the fast engine fell back on a valid program"
    assert fingerprint(got) == fingerprint(ref)


# -- the calibration programs --------------------------------------------------------------------

#: kernels above this many instructions are left to the full check (NPUSIM_EQUIV_MAX_INSTR=0)
MAX_INSTR = int(os.environ.get("NPUSIM_EQUIV_MAX_INSTR", "40000")) or None
ROWS = validate.load_measurements()
#: rows whose programs are large (minutes on the reference engine); compared in the full check
_LARGE_ROWS = {"A3", "A4", "A5", "A6b", "A6c", "B3", "B4", "E1h", "H1", "H2", "H3", "H4", "H5",
               "H6", "H7"}
#: large rows compared at full size in the suite too (about 20 s: a multi-core cube-bound
#: 910B2 matmul whose kernels exceed MAX_INSTR), so the suite never compares small programs only
_FULL_IN_SUITE = {"B2"}
#: the rows this run compares: every row with NPUSIM_EQUIV_MAX_INSTR=0 (the full check), else the
#: rows whose kernels fit MAX_INSTR plus _FULL_IN_SUITE (no row is collected only to be skipped)
SUITE_ROWS = [r for r in ROWS if MAX_INSTR is None or r.id not in _LARGE_ROWS]


@pytest.mark.parametrize("row", SUITE_ROWS, ids=[r.id for r in SUITE_ROWS])
def test_calibration_programs_identical(row, monkeypatch):
    """Every kernel a calibration row runs (validate's default 'repeat' L2 start) gives the same
    results on both engines; at least one kernel of every collected row is compared (kernels
    above MAX_INSTR are left to the full check, except in the rows of _FULL_IN_SUITE, which are
    compared at full size on every run)."""
    compared, skipped = [], []
    real = sim.run_kernel

    def both(kernel, soc, **kw):
        kw.pop("engine", None)
        ref = real(kernel, soc, engine="reference", **kw)
        limit = None if row.id in _FULL_IN_SUITE else MAX_INSTR
        if limit is not None and kernel.instruction_count() > limit:
            skipped.append(kernel.name)
            return ref
        if kw.get("functional") or kw.get("check_races", True):
            return ref
        got = real(kernel, soc, engine="fast", **kw)
        assert isinstance(got, fast.FastRunResult)
        assert fingerprint(got) == fingerprint(ref), f"{row.id}: kernel {kernel.name} differs"
        compared.append(kernel.instruction_count())
        return ref

    monkeypatch.setattr(sim, "run_kernel", both)
    monkeypatch.setattr(runner, "run_kernel", both)
    validate.validate_row(row)
    assert compared, f"{row.id}: no kernel compared (above {MAX_INSTR}: {skipped}); list it in " \
                     "_LARGE_ROWS"
    if row.id in _FULL_IN_SUITE and MAX_INSTR is not None:
        assert max(compared) > MAX_INSTR, f"{row.id} is no longer a large row"




@pytest.mark.parametrize("l2_start", ["cold", "repeat"])
@pytest.mark.parametrize(("op", "args"), [
    ("matmul", {"a": spec((256, 512), "float16"), "b": spec((512, 384), "float16")}),
    ("weight_quant_batchmatmul", {"x": spec((1, 1024), "float16"),
                                  "weight": spec((1024, 128), "int32"),
                                  "antiquant_scale": spec((8, 1024), "float16"),
                                  "antiquant_group_size": 128}),
    ("quant_matmul", {"x1": spec((128, 256), "int8"), "x2": spec((256, 256), "int8"),
                      "scale": np.full(256, 1e-3, np.float32), "output_dtype": "float16"}),
    ("tensor_copy", {"x": spec((1 << 18,), "float16")}),
])
def test_operator_programs_identical(op, args, l2_start):
    """Operator programs (cube, mix, vector) on several SoCs, cold and repeat L2 start."""
    for name, soc in SOCS.items():
        plan = get_operator(op).plan(soc, **args)
        ref, got = run_both(plan.kernel, soc, l2_start=l2_start)
        assert not isinstance(ref, Exception), f"{name}: {ref}"
        assert_same(ref, got)


# -- random programs -----------------------------------------------------------------------------

GM_X = 1 << 16  # fp16 elements of the input tensor
GM_Y = 1 << 14  # fp32 elements of the atomic-add output


def _gm() -> dict[str, GMTensor]:
    return {"x": GMTensor("x", (GM_X,), "float16"),
            "z": GMTensor("z", (GM_X,), "float16", role="output"),
            "y": GMTensor("y", (GM_Y,), "float32", role="output")}


def _gm_window(draw, tensor: str, dtype: str, elems: int, size: int) -> Region:
    """A GM window of ``elems`` elements: contiguous or 2-D strided, at any element offset."""
    item = 2 if dtype == "float16" else 4
    if draw(st.booleans()):
        rows = draw(st.sampled_from([2, 4, 8]))
        cols = elems // rows
        stride = cols * item + draw(st.sampled_from([0, 32, 96, 512, 4096]))
        span = (rows - 1) * stride + cols * item
        off = draw(st.integers(0, (size * item - span) // item)) * item
        return Region("GM", off, (rows, cols), dtype, tensor, stride)
    off = draw(st.integers(0, size - elems)) * item
    return Region("GM", off, (elems,), dtype, tensor)


SYNC_PIPES = {"aiv": ("MTE2", "V", "MTE3", "S"), "aic": ("MTE2", "MTE1", "M", "FIX", "S"),
              "aicore": ("MTE2", "MTE1", "M", "V", "MTE3", "S"),
              "vector_core": ("MTE2", "V", "MTE3", "S")}


def _ops_vector(draw, b: ProgramBuilder, n: int) -> None:
    """Random UB work: GM -> UB copies, vector ops, UB -> GM copies, flags, barriers."""
    elems = draw(st.sampled_from([256, 1024, 4096]))
    ub = [b.alloc("UB", (elems,), "float16") for _ in range(3)]
    ubf = b.alloc("UB", (elems,), "float32")
    kind = b.program.kind
    for _ in range(n):
        op = draw(st.sampled_from(["in", "in", "vec", "vec", "cast", "out", "atomic", "ub2ub",
                                   "sync", "sync", "sync", "barrier", "scalar"]))
        if op == "in":
            b.dma(_gm_window(draw, "x", "float16", elems, GM_X), draw(st.sampled_from(ub)),
                  l2_cache=draw(st.sampled_from(["normal", "bypass"])))
        elif op == "vec":
            vop = draw(st.sampled_from([VecOp.ADD, VecOp.MUL, VecOp.EXP, VecOp.MAX]))
            dst, s0, s1 = draw(st.permutations(ub))
            b.vop(vop, dst, (s0, s1) if vop is not VecOp.EXP else (s0,))
        elif op == "cast":
            b.cast(ubf, draw(st.sampled_from(ub)))
        elif op == "out":
            b.dma(draw(st.sampled_from(ub)), _gm_window(draw, "z", "float16", elems, GM_X))
        elif op == "atomic":
            b.dma(ubf, _gm_window(draw, "y", "float32", elems, GM_Y), atomic="add")
        elif op == "ub2ub":
            s0, s1 = draw(st.permutations(ub).map(lambda p: p[:2]))
            b.dma(s0, s1)
        elif op == "sync":
            src, dst = draw(st.permutations(SYNC_PIPES[kind]).map(lambda p: p[:2]))
            b.sync(src, dst, draw(st.integers(0, 3)))
        elif op == "barrier":
            b.barrier(draw(st.sampled_from(SYNC_PIPES[kind])))
        else:
            b.scalar("addr", draw(st.integers(1, 40)))


def _ops_cube(draw, b: ProgramBuilder, n: int) -> None:
    """Random cube work: GM -> L1 (ND->NZ sometimes), L1 -> L0A/L0B, Mmad, FixPipe to GM/L1."""
    m = draw(st.sampled_from([16, 32, 64]))
    k = draw(st.sampled_from([32, 64, 128]))
    l1a = b.alloc("L1", (m * k,), "float16")
    l1b = b.alloc("L1", (k * m,), "float16")
    l1c = b.alloc("L1", (m * m,), "float16")
    l0a = b.alloc("L0A", (m * k,), "float16")
    l0b = b.alloc("L0B", (k * m,), "float16")
    l0c = b.alloc("L0C", (m * m,), "float32")
    kind = b.program.kind
    for _ in range(n):
        op = draw(st.sampled_from(["in", "in", "mte1", "mte1", "mmad", "mmad", "fix", "fix_l1",
                                   "sync", "sync", "sync", "barrier"]))
        if op == "in":
            dst = draw(st.sampled_from([l1a, l1b]))
            b.dma(_gm_window(draw, "x", "float16", m * k, GM_X), dst,
                  transform=draw(st.sampled_from(["", "nd2nz"])),
                  l2_cache=draw(st.sampled_from(["normal", "bypass"])))
        elif op == "mte1":
            if draw(st.booleans()):
                b.dma(l1a, l0a)
            else:
                b.dma(l1b, l0b)
        elif op == "mmad":
            b.mmad(l0a, l0b, l0c, m, k, m, "float16", accumulate=draw(st.booleans()))
        elif op == "fix":
            if draw(st.booleans()):
                b.fixpipe(l0c, _gm_window(draw, "y", "float32", m * m, GM_Y), elements=m * m,
                          out_dtype="float32", mode="NONE",
                          atomic=draw(st.sampled_from(["", "add"])))
            else:
                b.fixpipe(l0c, _gm_window(draw, "z", "float16", m * m, GM_X), elements=m * m,
                          out_dtype="float16", mode="F322F16")
        elif op == "fix_l1":
            b.fixpipe(l0c, l1c, elements=m * m, out_dtype="float16", mode="F322F16")
        elif op == "sync":
            src, dst = draw(st.permutations(SYNC_PIPES[kind]).map(lambda p: p[:2]))
            b.sync(src, dst, draw(st.integers(0, 3)))
        else:
            b.barrier(draw(st.sampled_from(SYNC_PIPES[kind])))


def _cross_phase(draw, builders: dict[int, ProgramBuilder], cores: list[CoreProgram],
                 fid: int) -> None:
    """One cross-core phase every participating core takes part in (sets before waits)."""
    kinds = {c.kind for c in cores}
    choices = ["aiv_all", "v2v"] + (["c2v", "v2c", "aic_all"] if "aic" in kinds else [])
    phase = draw(st.sampled_from(choices))
    for ci, c in enumerate(cores):
        b = builders[ci]
        pipe = draw(st.sampled_from(["MTE3", "V", "S"] if c.kind == "aiv" else ["FIX", "M", "S"]))
        wpipe = draw(st.sampled_from(["MTE2", "V", "S"] if c.kind == "aiv" else
                                     ["MTE2", "M", "S"]))
        if phase == f"{c.kind}_all":
            b.cross_set(0, pipe, fid)
            b.cross_wait(fid, wpipe, mode=0)
        elif phase == "v2v" and c.kind == "aiv":
            b.cross_set(1, pipe, fid)
            b.cross_wait(fid, wpipe, mode=1)
        elif phase == "c2v":
            if c.kind == "aic":
                b.cross_set(2, pipe, fid)
            else:
                b.cross_wait(fid, wpipe, mode=2)
        elif phase == "v2c":
            if c.kind == "aiv":
                b.cross_set(2, pipe, fid)
            else:
                b.cross_wait(fid, wpipe, mode=2)


@st.composite
def split_kernels(draw) -> tuple[Kernel, str]:
    """A random vector-only or mix kernel on a 910B with cross-core phases."""
    soc_name = draw(st.sampled_from(sorted(SOCS)))
    soc = SOCS[soc_name]
    n_aic = draw(st.integers(0, 3))
    n_aiv = 2 * n_aic if n_aic else draw(st.integers(1, 4))
    cores = [CoreProgram(i, "aic") for i in range(n_aic)] + [
        CoreProgram(i, "aiv") for i in range(n_aiv)]
    if n_aic and draw(st.booleans()):
        cores = draw(st.permutations(cores))  # the launch order need not follow the kinds
    builders = {ci: ProgramBuilder(c, soc.core(c.kind)) for ci, c in enumerate(cores)}
    phases = draw(st.integers(0, 3)) if n_aiv > 1 or n_aic else 0
    for fid in range(phases + 1):
        for ci, c in enumerate(cores):
            n = draw(st.integers(0, 8))
            if c.kind == "aiv":
                _ops_vector(draw, builders[ci], n)
            else:
                _ops_cube(draw, builders[ci], n)
        if fid < phases:
            _cross_phase(draw, builders, cores, fid % soc.sync.cross_core_flag_ids)
    return Kernel("random", _gm(), cores), soc_name


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_kernels(), st.sampled_from(["cold", "repeat"]))
def test_random_split_programs_identical(case, l2_start):
    """Random mix / vector programs on 910B SoCs: identical results, or the same error."""
    kernel, soc_name = case
    assert_same(*run_both(kernel, SOCS[soc_name], l2_start=l2_start))


@st.composite
def coupled_kernels(draw) -> Kernel:
    """A random kernel on a coupled 310P: AI Cores with cube and vector work, vector cores."""
    cores = [CoreProgram(i, "aicore") for i in range(draw(st.integers(1, 3)))]
    cores += [CoreProgram(i, "vector_core") for i in range(draw(st.integers(0, 2)))]
    for c in cores:
        b = ProgramBuilder(c, COUPLED.core(c.kind))
        if c.kind == "aicore" and draw(st.booleans()):
            _ops_cube_coupled(draw, b, draw(st.integers(1, 12)))
        _ops_vector(draw, b, draw(st.integers(1, 12)))
    return Kernel("random310p", _gm(), cores)


def _ops_cube_coupled(draw, b: ProgramBuilder, n: int) -> None:
    m = 32
    l1 = b.alloc("L1", (m * m,), "float16")
    l0a = b.alloc("L0A", (m * m,), "float16")
    l0b = b.alloc("L0B", (m * m,), "float16")
    l0c = b.alloc("L0C", (m * m,), "float32")
    for _ in range(n):
        op = draw(st.sampled_from(["in", "a", "b", "mmad", "sync"]))
        if op == "in":
            b.dma(_gm_window(draw, "x", "float16", m * m, GM_X), l1)
        elif op == "a":
            b.dma(l1, l0a)
        elif op == "b":
            b.dma(l1, l0b)
        elif op == "mmad":
            b.mmad(l0a, l0b, l0c, m, m, m, "float16", accumulate=draw(st.booleans()))
        else:
            src, dst = draw(st.permutations(SYNC_PIPES["aicore"]).map(lambda p: p[:2]))
            b.sync(src, dst, draw(st.integers(0, 7)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coupled_kernels(), st.sampled_from(["cold", "repeat"]))
def test_random_coupled_programs_identical(kernel, l2_start):
    """Random programs on a coupled 310P (no cross-core flags there): identical results."""
    assert_same(*run_both(kernel, COUPLED, l2_start=l2_start))


def _with_data(kernel: Kernel, seed: int) -> Kernel:
    """``kernel`` with random fp16 values in its input tensor (a functional run's input)."""
    gm = dict(kernel.gm)
    x = np.random.default_rng(seed).standard_normal(GM_X).astype(np.float16)
    gm["x"] = GMTensor("x", (GM_X,), "float16", data=x)
    return Kernel(kernel.name, gm, kernel.cores)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_kernels(), st.booleans(), st.booleans(), st.integers(0, 2**16))
def test_random_split_programs_functional_identical(case, functional, check_races, seed):
    """Functional and race-checked runs of random mix / vector programs (racy ones included:
    random flags): identical results and output bits, or the same error (RaceError included)."""
    kernel, soc_name = case
    ref, got = run_both(_with_data(kernel, seed), SOCS[soc_name], functional=functional,
                        check_races=check_races)
    assert_same(ref, got)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coupled_kernels(), st.integers(0, 2**16))
def test_random_coupled_programs_functional_identical(kernel, seed):
    """Functional, race-checked runs of random 310P programs: identical, or the same error."""
    assert_same(*run_both(_with_data(kernel, seed), COUPLED, functional=True, check_races=True))


@pytest.mark.parametrize(("op", "args"), [
    ("matmul", {"a": (96, 256), "b": (256, 160)}),
    ("weight_quant_batchmatmul", {"x": (3, 512), "weight": (512, 256)}),
])
def test_operator_programs_functional_identical(op, args):
    """Functional runs of operator programs (race checks on, the default): the fast engine
    gives the reference's results and output bits."""
    import npusim

    rng = np.random.default_rng(7)
    arrays = {k: rng.standard_normal(v).astype(np.float16) for k, v in args.items()}
    if op == "weight_quant_batchmatmul":
        arrays["weight"] = rng.integers(-128, 128, args["weight"]).astype(np.int8)
        arrays["antiquant_scale"] = (rng.random(args["weight"][1]) * 0.01).astype(np.float16)
    got = npusim.simulate(op, "Ascend910B2", **arrays)
    with fast.default_engine("reference"):
        ref = npusim.simulate(op, "Ascend910B2", **arrays)
    assert isinstance(got.run, fast.FastRunResult) and type(ref.run) is sim.RunResult
    assert got.run.functional and fingerprint(got.run) == fingerprint(ref.run)
    assert np.array_equal(np.asarray(got.outputs).view(np.uint8),
                          np.asarray(ref.outputs).view(np.uint8))


# -- faulty programs: the reference's error, word for word ----------------------------------------

def _one_core(build, kind: str = "aiv", n: int = 1) -> Kernel:
    cores = []
    for i in range(n):
        c = CoreProgram(i, kind)
        build(ProgramBuilder(c, SPLIT.core(kind)), i)
        cores.append(c)
    return Kernel("faulty", _gm(), cores)


def _double_set(b, _i):
    b.set_flag("MTE2", "V", 0)
    b.set_flag("MTE2", "V", 0)


def _deadlock(b, _i):
    b.wait_flag("MTE2", "V", 1)


def _overflow(b, _i):
    b.dma(Region("GM", GM_X * 2 - 64, (64,), "float16", "x"), b.alloc("UB", (64,), "float16"))


def _no_partner(b, _i):
    b.cross_set(1, "V", 0)


def _counter_overflow(b, _i):
    for _ in range(SPLIT.sync.cross_core_counter_max + 1):
        b.cross_set(0, "V", 2)


def _bad_event_id(b, _i):
    b.set_flag("MTE2", "V", SPLIT.sync.event_ids)


@pytest.mark.parametrize(("build", "error"), [
    (_double_set, SyncError), (_deadlock, DeadlockError), (_overflow, ProgramError),
    (_no_partner, SyncError), (_counter_overflow, SyncError), (_bad_event_id, SyncError),
])
def test_faulty_programs_raise_the_reference_error(build, error):
    """A program the reference rejects raises the same error class and message on the fast
    engine (which hands such programs to the reference)."""
    ref, got = run_both(_one_core(build), SPLIT)
    assert isinstance(ref, error)
    assert_same(ref, got)


# -- the L2 model over precomputed pages -----------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 6), st.integers(1, 1 << 16),
                          st.sampled_from([(False, True), (False, False), (True, True)])),
                min_size=1, max_size=60),
       st.integers(1, 12))
def test_l2_accessor_equals_l2cache_access(accesses, capacity_pages):
    """Rule: fast.l2_accessor gives L2Cache.access's hits, misses and write-backs, and leaves the
    same LRU order, present and dirty lines, for any access sequence (evictions included)."""
    pb, lb = 4096, 512
    ref, mine = (L2Cache(capacity_pages * pb, pb, lb) for _ in range(2))
    access = fast.l2_accessor(mine)
    for first, npages, nbytes, (write, allocate) in accesses:
        pages = {first + j: (((1 << (pb // lb)) - 1) >> (j % 4), nbytes // (j + 1) + 1)
                 for j in range(npages)}
        pre = (first, tuple((p - first, m, nb, m.bit_count()) for p, (m, nb) in pages.items()))
        assert access(pre, write, allocate) == ref.access(pages, write, allocate)
        assert list(mine.pages.items()) == list(ref.pages.items())


# -- selection and results -----------------------------------------------------------------------

def _small_kernel() -> Kernel:
    def build(b, i):
        ub = b.alloc("UB", (1024,), "float16")
        b.dma(Region("GM", 2048 * i, (1024,), "float16", "x"), ub)
        b.sync("MTE2", "MTE3", 0)
        b.dma(ub, Region("GM", 2048 * i, (1024,), "float16", "z"))
    return _one_core(build, n=4)


def test_selection_rules(monkeypatch):
    """Fast by default (timing-only, functional and race-checked runs); the reference for
    engine="reference", default_engine("reference") and $NPUSIM_ENGINE=reference; an unknown
    engine name is an error naming the argument."""
    k = _small_kernel()
    for kw in ({"check_races": False}, {"check_races": True}, {"functional": True}):
        assert isinstance(sim.run_kernel(k, SPLIT, **kw), fast.FastRunResult)
    assert type(sim.run_kernel(k, SPLIT, check_races=False, engine="reference")) is sim.RunResult
    with fast.default_engine("reference"):
        assert type(sim.run_kernel(k, SPLIT, check_races=False)) is sim.RunResult
    monkeypatch.setenv("NPUSIM_ENGINE", "reference")
    assert type(sim.run_kernel(k, SPLIT, check_races=False)) is sim.RunResult
    assert isinstance(sim.run_kernel(k, SPLIT, check_races=False, engine="fast"),
                      fast.FastRunResult)
    with pytest.raises(ValueError, match="engine='simpy': must be one of fast, reference"):
        sim.run_kernel(k, SPLIT, check_races=False, engine="simpy")
    assert fast.use_fast("fast", functional=True, check_races=True)
    assert not fast.use_fast("reference", functional=False, check_races=False)


def test_simulate_timing_only_uses_fast_engine_and_matches():
    """npusim.simulate on specs (timing-only) runs the fast engine; the reference agrees."""
    import npusim

    args = {"a": spec((128, 256), "float16"), "b": spec((256, 256), "float16")}
    got = npusim.simulate("matmul", "Ascend910B4", **args)
    with fast.default_engine("reference"):
        ref = npusim.simulate("matmul", "Ascend910B4", **args)
    assert isinstance(got.run, fast.FastRunResult) and type(ref.run) is sim.RunResult
    assert fingerprint(got.run) == fingerprint(ref.run)
    assert got.pipe_busy() == ref.pipe_busy()


def test_fast_result_pickles_with_its_records():
    """A fast result survives pickling (process pools) with records and flows intact."""
    res = sim.run_kernel(_small_kernel(), SPLIT, check_races=False)
    back = pickle.loads(pickle.dumps(res))
    assert fingerprint(back) == fingerprint(res)


def test_cli_engine_flag_sets_the_engine_for_the_command_only(monkeypatch, capsys):
    """`npusim --engine reference ...` runs with $NPUSIM_ENGINE=reference and restores it."""
    from npusim import cli

    seen = []
    monkeypatch.delenv("NPUSIM_ENGINE", raising=False)
    monkeypatch.setattr(cli, "_dispatch", lambda parser, args: seen.append(
        fast.selected_engine()) or 0)
    assert cli.main(["--engine", "reference", "--version"]) == 0
    assert cli.main(["--version"]) == 0
    assert seen == ["reference", "fast"] and "NPUSIM_ENGINE" not in os.environ


def test_cli_engine_flag_applies_to_functional_runs(monkeypatch, capsys):
    """`--engine` picks the engine of every run, not only timing-only ones (its help said
    "engine of timing-only runs"): a functional run under `--engine reference` never reaches
    the fast engine, and without the flag it does."""
    from npusim import cli

    calls = []
    real = fast.run_fast
    monkeypatch.delenv("NPUSIM_ENGINE", raising=False)
    monkeypatch.setattr(fast, "run_fast", lambda *a, **k: calls.append(k) or real(*a, **k))
    argv = ["run", "vector_add", "--n-elements", "4096", "--functional"]
    assert cli.main(["--engine", "reference", *argv]) == 0
    assert calls == []
    assert cli.main(argv) == 0
    assert calls and all(k["functional"] for k in calls)


def test_simulate_takes_the_engine_by_keyword(monkeypatch):
    """`npusim.simulate(..., engine=...)` picks the engine of that call (the README's
    `engine="reference"` / `engine="jit"`; it was an unknown operator argument, a TypeError
    from the plan): reference never reaches the fast engine, fast does, both give the same
    cycles, and an unknown name is a ValueError naming it."""
    import npusim
    from npusim.spec import spec

    calls = []
    real = fast.run_fast
    monkeypatch.delenv("NPUSIM_ENGINE", raising=False)
    monkeypatch.setattr(fast, "run_fast", lambda *a, **k: calls.append(k) or real(*a, **k))
    args = {"x": spec((65536,), "float16"), "y": spec((65536,), "float16")}
    ref = npusim.simulate("vector_add", "Ascend910B2", engine="reference", **args)
    assert calls == []
    got = npusim.simulate("vector_add", "Ascend910B2", engine="fast", **args)
    assert len(calls) == 1 and got.cycles == ref.cycles
    assert fast.selected_engine() == "fast"  # the choice does not outlive the call
    with pytest.raises(ValueError, match="engine='nope'"):
        npusim.simulate("vector_add", "Ascend910B2", engine="nope", **args)


def test_gm_cost_memo_sees_offsets_modulo_the_burst_window():
    """The fast engine costs a GM copy once per (offset modulo the burst window, shape): copies
    of one shape at offsets equal modulo 512 B, and at offsets that differ inside the window
    (32 B, 96 B, a strided window), each get the reference engine's cycles (cold and repeat)."""
    def build(b, _i):
        ub = b.alloc("UB", (4096,), "float16")
        for off in (0, 512, 32, 544, 8192 + 96, 96, 1 << 15, (1 << 15) + 32):
            b.dma(Region("GM", off, (1024,), "float16", "x"), ub)
            b.dma(Region("GM", off, (8, 96), "float16", "x", 640), ub.sub(0, (8, 96)))
            b.sync("MTE2", "MTE3", 0)
            b.dma(ub.sub(0, (8, 96)), Region("GM", off, (8, 96), "float16", "z", 640))
            b.sync("MTE3", "MTE2", 1)
    for l2_start in ("cold", "repeat"):
        assert_same(*run_both(_one_core(build), SPLIT, l2_start=l2_start))
