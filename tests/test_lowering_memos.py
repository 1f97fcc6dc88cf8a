"""The fast engine's sweep-path shortcuts (lowering memos, the no-eviction L2) change no result.

Rules pinned here: (1) a pipe queue another core of the kind already has reuses that core's
lowered stream, and a kernel lowered that way runs to the reference engine's cycles, records,
traffic and per-pipe busy; (2) the process-wide page-pattern entries
(``fast_lower.pattern_entries``) give, when warm, the same run as a cold lowering with the memo
emptied, and the same entries as computing them afresh; (3) when every page of a kernel's GM
tensors fits in the L2 (``fast.cannot_evict``), the mask-only L2 accessor gives
``L2Cache.access``'s hits, misses and (zero) write-backs for any access sequence.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.engine import fast, fast_lower
from npusim.engine.memory import L2Cache, MemorySystem, page_pattern
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.operators import get_operator
from npusim.spec import spec
from tests.test_fast_engine import fingerprint

SOC = load_soc("Ascend910B2")


def _decode_kernel():
    """A decode matmul (M=1) over 8 cores with one 512-wide N block each: 8 equal cube queues."""
    from npusim.ops.matmul_tiling import MatmulTiling

    t = MatmulTiling(base_m=16, base_n=512, base_k=32, single_core_m=1, single_core_n=512,
                     single_core_k=2048, n_dim=8, step_ka=2, step_kb=2, in_bits=16, out_bits=16)
    plan = get_operator("matmul").plan(SOC, tiling=t, a=spec((1, 2048), "float16"),
                                       b=spec((2048, 4096), "float16"), out_dtype="float16")
    return plan.kernel


def test_shared_queues_reuse_one_stream_and_match_the_reference():
    kernel = _decode_kernel()
    low = fast_lower.lower(kernel, SOC, MemorySystem(SOC, kernel.gm))
    assert low is not None
    cube = [s for (ci, pipe), s in zip(low.pipe_keys, low.streams, strict=True) if pipe == "M"]
    assert len(cube) == 8 and all(s is cube[0] for s in cube)  # the memo was used
    mte2 = [s for (ci, pipe), s in zip(low.pipe_keys, low.streams, strict=True)
            if pipe == "MTE2"]
    assert mte2[0] is not mte2[1] and mte2[0] != mte2[1]  # other windows: lowered per core
    ref = run_kernel(kernel, SOC, check_races=False, engine="reference")
    got = run_kernel(kernel, SOC, check_races=False, engine="fast")
    assert isinstance(got, fast.FastRunResult)
    assert fingerprint(got) == fingerprint(ref)


def test_page_pattern_entries_warm_equal_cold(monkeypatch):
    kernel = _decode_kernel()
    monkeypatch.setattr(fast_lower, "_ENTRIES", {})
    cold = fingerprint(run_kernel(kernel, SOC, check_races=False, engine="fast"))
    assert fast_lower._ENTRIES  # filled by the cold run
    for key, entries in fast_lower._ENTRIES.items():
        assert entries == tuple((rel, mask, nb, mask.bit_count())
                                for rel, (mask, nb) in page_pattern(*key))
    warm = fingerprint(run_kernel(kernel, SOC, check_races=False, engine="fast"))
    assert warm == cold


def test_cannot_evict_is_the_tensor_page_span_against_the_capacity():
    kernel = _decode_kernel()  # 16 MiB of weight: 513 pages of 32 KiB
    assert fast.cannot_evict(kernel, MemorySystem(SOC, kernel.gm))
    small = load_soc("Ascend910B2", overrides=["memory.l2.capacity_bytes=16777216"])
    assert not fast.cannot_evict(kernel, MemorySystem(small, kernel.gm))
    ref = run_kernel(kernel, small, check_races=False, engine="reference")
    got = run_kernel(kernel, small, check_races=False, engine="fast")
    assert fingerprint(got) == fingerprint(ref)  # the evicting accessor, write-backs included


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 6), st.integers(1, 1 << 16),
                          st.sampled_from([(False, True), (False, False), (True, True)])),
                min_size=1, max_size=60))
def test_no_evict_accessor_equals_l2cache_access(accesses):
    pb, lb = 4096, 512
    ref, mine = (L2Cache(64 * pb, pb, lb) for _ in range(2))  # pages 0..45 all fit
    ref.warm(3 * pb, 2 * pb)  # a warm tensor: the accessor starts from the present lines
    mine.warm(3 * pb, 2 * pb)
    read, write = fast.l2_read_write_no_evict(mine)
    for first, npages, nbytes, (is_write, allocate) in accesses:
        pages = {first + j: (((1 << (pb // lb)) - 1) >> (j % 4), nbytes // (j + 1) + 1)
                 for j in range(npages)}
        pre = (first, tuple((p - first, m, nb, m.bit_count()) for p, (m, nb) in pages.items()))
        got = write(pre) if is_write else read(pre, allocate)
        assert got == ref.access(pages, is_write, allocate)
