"""The race checker's GM index (issue 14 / 12 speed) changes no verdict.

Rule pinned here: ``HazardTracker.access`` on GM spaces (bucketed span index, cheap ordering test
first) raises exactly when, and with exactly the message that, the plain list scan raises - a
brute-force oracle below keeps every pending access in one list per space and tests every one
of them - over random strided GM windows (overlapping, page-crossing, empty, wider than the
index's buckets), atomic adds, pipes that learn of each other's progress through merges.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.engine.errors import RaceError
from npusim.engine.hazards import Footprint, HazardTracker, _space_name
from npusim.engine.program import Region


class _ListTracker(HazardTracker):
    """The oracle: every pending GM access in one list per space, every one tested."""

    def access(self, space, region, pipe, seq, name, write, atomic=False):
        fp = Footprint.of(region)

        def ordered(a):
            return a.pipe == pipe or self.know[pipe, a.pipe] >= a.seq

        writes = self.writes.setdefault(space, [])
        reads = self.reads.setdefault(space, [])
        for w in writes:
            if atomic and w[4]:
                continue
            if w[0].overlaps(fp) and not ordered(_A(w)):
                raise RaceError(
                    f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                    f"{self.names[pipe]} '{name}' {'writes' if write else 'reads'} it while "
                    f"{self.names[w[1]]} '{w[3]}' (its writer) has not signalled completion")
        if write:
            for r in reads:
                if r[0].overlaps(fp) and not ordered(_A(r)):
                    raise RaceError(
                        f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                        f"{self.names[pipe]} '{name}' overwrites it while {self.names[r[1]]} "
                        f"'{r[3]}' (a reader) has not signalled completion")
            writes[:] = [w for w in writes
                         if w[0] != fp or (atomic and w[4] and w[1] != pipe)]
            writes.append((fp, pipe, seq, name, atomic))
            reads[:] = [r for r in reads if r[0] != fp]
        else:
            reads[:] = [r for r in reads if not (r[0] == fp and r[1] == pipe)]
            reads.append((fp, pipe, seq, name, False))


class _A:
    __slots__ = ("pipe", "seq")

    def __init__(self, t):
        self.pipe, self.seq = t[1], t[2]


_window = st.tuples(
    st.integers(0, 40_000),  # offset
    st.integers(0, 6),  # rows (0: a contiguous 1-D window)
    st.integers(0, 3_000),  # row elements (int8)
    st.sampled_from([0, 16, 512, 4096, 9000, 300_000, 1_100_000]),  # extra stride bytes (the
    # last: spans above _GmTable.WIDE buckets with 5 rows)
)
_op = st.one_of(
    st.tuples(st.just("access"), st.integers(0, 3), _window, st.booleans(), st.booleans(),
              st.integers(0, 1)),
    st.tuples(st.just("merge"), st.integers(0, 3), st.integers(0, 3)),
)


def _region(offset, rows, cols, extra, tensor):
    if rows == 0:
        return Region("GM", offset, (cols,), "int8", tensor)
    return Region("GM", offset, (rows, cols), "int8", tensor, cols + extra)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, min_size=1, max_size=60))
def test_indexed_gm_checker_equals_the_list_scan(ops):
    names = [f"core{i}/MTE2" for i in range(4)]
    got, want = HazardTracker(names), _ListTracker(names)
    seq = [0] * 4
    for op in ops:
        if op[0] == "merge":
            _, dst, src = op
            for t in (got, want):
                t.merge(dst, t.payload(src))
            continue
        _, pipe, win, write, atomic, tensor = op
        region = _region(*win, f"t{tensor}")
        seq[pipe] += 1
        outcomes = []
        for t in (got, want):
            try:
                t.access(("GM", region.tensor), region, pipe, seq[pipe], f"i{seq[pipe]}",
                         write, atomic and write)
                outcomes.append(None)
            except RaceError as exc:
                outcomes.append(str(exc))
            t.completed(pipe, seq[pipe])
        assert outcomes[0] == outcomes[1]
        if outcomes[0] is not None:
            return
    assert np.array_equal(got.know, want.know)


_local_op = st.one_of(
    st.tuples(st.just("access"), st.integers(0, 3), st.tuples(
        st.integers(0, 4000), st.integers(0, 4), st.integers(0, 600),
        st.sampled_from([0, 32, 512])), st.booleans(), st.booleans(), st.integers(0, 1)),
    st.tuples(st.just("merge"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("complete"), st.integers(0, 3)),
)


def _local_region(offset, rows, cols, extra, buffer):
    buf = ("UB", "L1")[buffer]
    if rows == 0:
        return Region(buf, offset, (cols,), "int8")
    return Region(buf, offset, (rows, cols), "int8", None, cols + extra)


@settings(max_examples=400, deadline=None)
@given(st.lists(_local_op, min_size=1, max_size=120), st.sampled_from([2, 4, 256]))
def test_fast_checker_local_spaces_same_verdicts(ops, limit):
    """FastHazardTracker (the fast engine's) raises on a core-local space exactly at the access
    where HazardTracker raises (messages aside: the fast engine lets the reference raise), over
    random windows of two buffers of one core's four pipes, plain and atomic writes, merges and
    completions that lag the accesses; a small pruning limit exercises the pruning."""
    from npusim.engine.hazards import FastHazardTracker

    names = [f"core0/{p}" for p in ("MTE2", "MTE1", "M", "V")]
    got, want = FastHazardTracker(names), HazardTracker(names)
    got.LIMIT = limit
    seq = [0] * 4
    for op in ops:
        if op[0] == "merge":
            for t in (got, want):
                t.merge(op[1], t.payload(op[2]))
            continue
        if op[0] == "complete":
            for t in (got, want):
                t.completed(op[1], seq[op[1]])
            continue
        _, pipe, win, write, atomic, buffer = op
        region = _local_region(*win, buffer)
        seq[pipe] += 1
        raised = []
        for t in (got, want):
            try:
                t.access(("core0", region.buffer), region, pipe, seq[pipe], f"i{seq[pipe]}",
                         write, atomic and write)
                raised.append(False)
            except RaceError:
                raised.append(True)
        assert raised[0] == raised[1]
        if raised[0]:
            return


@settings(max_examples=400, deadline=None)
@given(st.lists(_local_op, min_size=1, max_size=120))
def test_slot_checker_local_spaces_same_verdicts(ops):
    """SlotHazardTracker (the fast engine's, slots fixed from the program's instructions before
    the run) raises on a core-local space exactly at the access where HazardTracker raises,
    over the same random windows, atomic writes, merges and lagging completions."""
    from types import SimpleNamespace

    from npusim.engine.hazards_slots import SlotHazardTracker

    pipes = ("MTE2", "MTE1", "M", "V")
    names = [f"core0/{p}" for p in pipes]
    instrs = []
    for op in ops:
        if op[0] == "access":
            _, pipe, win, write, atomic, buffer = op
            region = _local_region(*win, buffer)
            instrs.append(SimpleNamespace(
                pipe=pipes[pipe], name=f"i{len(instrs)}", reads=() if write else (region,),
                writes=(region,) if write else (), atomic="add" if atomic and write else ""))
    kernel = SimpleNamespace(cores=[SimpleNamespace(kind="aiv", name="core0", instrs=instrs)])
    got = SlotHazardTracker(names, kernel, [(0, p) for p in pipes], set())
    want = HazardTracker(names)
    seq = [0] * 4
    it = iter(instrs)
    for op in ops:
        if op[0] == "merge":
            for t in (got, want):
                t.merge(op[1], t.payload(op[2]))
            continue
        if op[0] == "complete":
            for t in (got, want):
                t.completed(op[1], seq[op[1]])
            continue
        _, pipe, win, write, atomic, buffer = op
        ins = next(it)
        region = (ins.writes or ins.reads)[0]
        seq[pipe] += 1
        raised = []
        try:
            got.check(0, pipe, seq[pipe], ins)
            raised.append(False)
        except RaceError:
            raised.append(True)
        try:
            want.access(("core0", region.buffer), region, pipe, seq[pipe], ins.name, write,
                        atomic and write)
            raised.append(False)
        except RaceError:
            raised.append(True)
        assert raised[0] == raised[1]
        if raised[0]:
            return


#: a few windows per example, so that accesses repeat them (supersede) and touch by one byte
_pool_window = st.tuples(
    st.sampled_from([0, 1, 2, 4094, 4095, 4096, 4097, 8190]),
    st.integers(0, 3),
    st.sampled_from([0, 1, 2, 3, 4094, 4096]),
    st.sampled_from([0, 1, 4093, 1_100_000]),
)
_gm_access = st.tuples(st.just("access"), st.integers(0, 3), st.integers(0, 5), st.booleans(),
                       st.booleans())
_gm_op = st.one_of(
    _gm_access, _gm_access, _gm_access, _gm_access,
    st.tuples(st.just("flag"), st.integers(0, 3), st.integers(0, 3)),  # complete, then merge
    st.just(("sync",)),  # every pipe completes and learns of every other: a barrier
    st.tuples(st.just("merge"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("complete"), st.integers(0, 3)),
)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.tuples(_pool_window, st.integers(0, 1)), min_size=6, max_size=6),
       st.lists(_gm_op, min_size=1, max_size=120), st.sampled_from([0, 2, 64]))
def test_slot_checker_gm_same_verdicts(pool, ops, compact):
    """SlotHazardTracker's GM index (dead entries instead of removals, no sorting) raises at the
    access where the brute-force list scan raises, over accesses to a pool of six strided GM
    windows of two tensors (repeated: writes and re-reads supersede; overlapping, touching,
    empty, wider than the buckets), atomic adds, flags (a completion, then its payload merged),
    barriers, bare merges and lagging completions, with four pipes on four cores; small ``compact``
    rebuilds the index often."""
    from types import SimpleNamespace

    from npusim.engine.hazards_slots import SlotHazardTracker, _GmIndex

    names = [f"core{i}/MTE2" for i in range(4)]
    regions = [_region(*win, f"t{tensor}") for win, tensor in pool]
    instrs: list[list[SimpleNamespace]] = [[] for _ in range(4)]
    for op in ops:
        if op[0] == "access":
            _, pipe, w, write, atomic = op
            region = regions[w]
            instrs[pipe].append(SimpleNamespace(
                pipe="MTE2", name=f"i{len(instrs[pipe])}", reads=() if write else (region,),
                writes=(region,) if write else (), atomic="add" if atomic and write else ""))
    kernel = SimpleNamespace(cores=[SimpleNamespace(kind="aiv", name=f"core{i}", instrs=instrs[i])
                                    for i in range(4)])
    old = _GmIndex.COMPACT
    _GmIndex.COMPACT = compact
    try:
        got = SlotHazardTracker(names, kernel, [(i, "MTE2") for i in range(4)], {"t0", "t1"})
        want = _ListTracker(names)
        seq = [0] * 4
        its = [iter(x) for x in instrs]
        for op in ops:
            if op[0] == "sync":
                for t in (got, want):
                    for q in range(4):
                        t.completed(q, seq[q])
                    pays = [t.payload(q) for q in range(4)]
                    for q in range(4):
                        for pay in pays:
                            t.merge(q, pay)
                continue
            if op[0] == "flag":  # what a SetFlag / WaitFlag pair does
                for t in (got, want):
                    t.completed(op[1], seq[op[1]])
                    t.merge(op[2], t.payload(op[1]))
                continue
            if op[0] == "merge":
                for t in (got, want):
                    t.merge(op[1], t.payload(op[2]))
                continue
            if op[0] == "complete":
                for t in (got, want):
                    t.completed(op[1], seq[op[1]])
                continue
            pipe = op[1]
            ins = next(its[pipe])
            region = (ins.writes or ins.reads)[0]
            write = bool(ins.writes)
            seq[pipe] += 1
            raised = []
            try:
                got.check(pipe, pipe, seq[pipe], ins)
                raised.append(False)
            except RaceError:
                raised.append(True)
            try:
                want.access(("GM", region.tensor), region, pipe, seq[pipe], ins.name, write,
                            ins.atomic == "add")
                raised.append(False)
            except RaceError:
                raised.append(True)
            assert raised[0] == raised[1]
            if raised[0]:
                return
    finally:
        _GmIndex.COMPACT = old


#: scripted GM sequences over pipes 0..3 (one per core): ("r" | "w" | "a", pipe, offset,
#: bytes) reads / writes / atomic-adds a window of t0, ("f", src, dst) is a flag (src's latest
#: access completes, dst learns of it); each pins one rule of the list scan
_GM_SCRIPTS = {
    "a read stays pending when another pipe re-reads the bytes":
        [("r", 1, 0, 16), ("r", 0, 0, 16), ("f", 0, 2), ("w", 2, 0, 16)],
    "a window ending one byte into the access overlaps it": [("w", 1, 0, 16), ("r", 2, 15, 2)],
    "a write into the last byte of a pending read races": [("r", 1, 0, 16), ("w", 2, 15, 2)],
    "touching windows do not": [("w", 1, 0, 16), ("r", 2, 16, 2), ("w", 3, 18, 4)],
    "an atomic add stays pending when another pipe adds to the bytes":
        [("a", 1, 0, 16), ("a", 0, 0, 16), ("f", 0, 2), ("r", 2, 0, 16)],
    "a plain write supersedes the atomic adds it is ordered after":
        [("a", 1, 0, 16), ("f", 1, 0), ("w", 0, 0, 16), ("f", 0, 2), ("r", 2, 0, 16)],
    "atomic adds need no order among themselves": [("a", 1, 0, 16), ("a", 2, 8, 16)],
    "a flag carries the setter's completion": [("w", 1, 0, 16), ("f", 1, 2), ("r", 2, 0, 16)],
    "a read before its producer's flag races": [("w", 1, 0, 16), ("r", 2, 0, 16)],
}


@pytest.mark.parametrize("name", list(_GM_SCRIPTS))
def test_slot_checker_gm_scripts(name):
    """Each scripted sequence: SlotHazardTracker's verdict at every access is the list scan's."""
    from types import SimpleNamespace

    from npusim.engine.hazards_slots import SlotHazardTracker

    script = _GM_SCRIPTS[name]
    names = [f"core{i}/MTE2" for i in range(4)]
    instrs: list[list[SimpleNamespace]] = [[] for _ in range(4)]
    for op in script:
        if op[0] != "f":
            kind, pipe, off, nb = op
            r = Region("GM", off, (nb,), "int8", "t0")
            instrs[pipe].append(SimpleNamespace(
                pipe="MTE2", name=f"{kind}{off}", reads=(r,) if kind == "r" else (),
                writes=() if kind == "r" else (r,), atomic="add" if kind == "a" else ""))
    kernel = SimpleNamespace(cores=[SimpleNamespace(kind="aiv", name=f"core{i}", instrs=instrs[i])
                                    for i in range(4)])
    got = SlotHazardTracker(names, kernel, [(i, "MTE2") for i in range(4)], {"t0"})
    want = _ListTracker(names)
    seq = [0] * 4
    its = [iter(x) for x in instrs]
    verdicts = []
    for op in script:
        if op[0] == "f":
            for t in (got, want):
                t.completed(op[1], seq[op[1]])
                t.merge(op[2], t.payload(op[1]))
            continue
        pipe = op[1]
        ins = next(its[pipe])
        r = (ins.reads or ins.writes)[0]
        seq[pipe] += 1
        raised = []
        try:
            got.check(pipe, pipe, seq[pipe], ins)
            raised.append(False)
        except RaceError:
            raised.append(True)
        try:
            want.access(("GM", "t0"), r, pipe, seq[pipe], ins.name, bool(ins.writes),
                        ins.atomic == "add")
            raised.append(False)
        except RaceError:
            raised.append(True)
        assert raised[0] == raised[1], (name, op)
        verdicts.append(raised[0])
        if raised[0]:
            break
    # the scripts' own claims, so that the list scan itself is pinned too
    races = name.startswith(("a read", "a window", "a write into", "an atomic"))
    assert verdicts[-1] is races
