"""The fast engine's race check of core-local buffers by slots: the verdicts of
:class:`~npusim.engine.hazards.FastHazardTracker`, with the work per access moved to the first
execution of each instruction object.

An access by pipe ``p`` to footprint ``f`` races iff some other pipe ``q`` of the core has a
pending access that ``p`` does not know completed (sequence number above ``known[q]``) whose
footprint overlaps ``f`` (for a read: q's writes; for a write: q's reads and writes, except an
atomic add against q's atomic adds). A pipe's accesses run in program order, so its latest access
to a footprint has the highest sequence number of all its accesses to it: it is enough to keep,
per core, pipe, footprint and kind (read / write / atomic write), the sequence number of the
latest one (a *slot*) and to test ``slot > known[q]`` for the slots that can overlap ``f``.
Programs touch few distinct footprints per buffer (W8A16 M=64: 33 in UB), so the slots, and per
instruction object the list of slots its accesses test and set, are fixed before the run from
the instructions of each core kind (a superset of each core's own; a slot a core never sets
stays -1 and never fires). An instruction's slots depend on its core kind, pipe and local
footprints only, so instructions that differ in their GM regions alone (a row loop's copies)
share them.

GM accesses keep the parent's rule (:meth:`HazardTracker.access`: the pending accesses whose
footprints overlap, minus those a write or a re-read supersedes) in :class:`_GmIndex`, which
finds the same candidates (the same 4 KiB buckets, wide and empty spans against everything) but
marks superseded entries dead instead of removing them from their buckets, and does not sort:
the fast engine needs the verdict only (a racy program goes to the reference, which raises).

A pipe's own completions are kept in a list (``done``; the event loop writes it) and copied
into its row of ``know`` when the row leaves as a flag's payload: nothing else reads a pipe's
own entry (an access is never tested against its own pipe).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npusim.engine.errors import RaceError
from npusim.engine.hazards import FastHazardTracker, Footprint, _GmTable
from npusim.engine.program import Kernel
from npusim.isa.instructions import Instruction
from npusim.isa.operands import Region

_READ, _WRITE, _ATOMIC = 0, 1, 2

#: an instruction's plan: (slot, pipe) pairs to test, slots to set, GM accesses
#: (tensor, footprint, write, atomic) in the order the reference checks them
Plan = tuple[tuple[tuple[int, int], ...], tuple[int, ...],
             tuple[tuple[str | None, Footprint, bool, bool], ...]]

_SHIFT, _WIDE = _GmTable.SHIFT, _GmTable.WIDE


def _span(fp: Footprint) -> range | None:
    """The 4 KiB buckets of ``fp``'s bytes; None for an empty or a wide span (``_GmTable``)."""
    if fp.end <= fp.start:
        return None
    first, last = fp.start >> _SHIFT, (fp.end - 1) >> _SHIFT
    return range(first, last + 1) if last - first < _WIDE else None


class _GmIndex:
    """The pending reads, or writes, of one GM tensor: entries ``[footprint, pipe, seq, atomic,
    live, start, end]`` in the 4 KiB buckets of their spans (or, spans empty or wider than ``_WIDE``
    buckets, in ``wide``), every entry also in ``every``. :meth:`near` returns the candidates
    :meth:`_GmTable.near` returns, each once, and dead entries; a superseded entry is marked
    dead, and the lists are rebuilt without the dead once they outnumber the live."""

    __slots__ = ("buckets", "dead", "every", "same", "wide")
    COMPACT = 64  # dead entries tolerated before a rebuild (at least)

    def __init__(self) -> None:
        self.buckets: dict[int, list[list[Any]]] = {}
        self.wide: list[list[Any]] = []
        self.every: list[list[Any]] = []
        self.same: dict[Footprint, list[list[Any]]] = {}  # the entries of each footprint
        self.dead = 0

    def near(self, span: range | None) -> list[list[Any]]:
        if span is None:
            return self.every
        get = self.buckets.get
        found = [got for b in span if (got := get(b))]
        if not found:
            return self.wide
        if len(found) == 1:
            return self.wide + found[0]
        seen: dict[int, list[Any]] = {}  # an entry spanning several buckets once
        for got in found:
            for e in got:
                seen[id(e)] = e
        return self.wide + list(seen.values())

    def add(self, entry: list[Any], span: range | None) -> None:
        self.every.append(entry)
        got = self.same.get(entry[0])
        if got is None:
            self.same[entry[0]] = [entry]
        else:
            got.append(entry)
        if span is None:
            self.wide.append(entry)
            return
        buckets = self.buckets
        for b in span:
            got = buckets.get(b)
            if got is None:
                buckets[b] = [entry]
            else:
                got.append(entry)

    def kill(self, entry: list[Any]) -> None:
        if entry[4]:
            entry[4] = False
            self.dead += 1

    def compact(self) -> None:
        """Drop the dead entries once they outnumber the live ones (and ``COMPACT``)."""
        if self.dead <= self.COMPACT or 2 * self.dead <= len(self.every):
            return
        self.every = [e for e in self.every if e[4]]
        self.wide = [e for e in self.wide if e[4]]
        self.buckets = {b: live for b, got in self.buckets.items()
                        if (live := [e for e in got if e[4]])}
        self.same = {fp: live for fp, got in self.same.items()
                     if (live := [e for e in got if e[4]])}
        self.dead = 0


def _is_atomic(ins: Instruction) -> bool:
    return getattr(ins, "atomic", "") == "add"


class SlotHazardTracker(FastHazardTracker):
    """:class:`FastHazardTracker` whose core-local accesses are checked by slots (see the
    module docstring); ``check`` is ``sim.check_hazards`` of one instruction."""

    def __init__(self, pipe_names: list[str], kernel: Kernel, pipe_keys: list[tuple[int, str]],
                 written: set[str | None]) -> None:
        super().__init__(pipe_names)
        self._written = written
        cores = kernel.cores
        # per core kind: (buffer, pipe) -> {footprint: its first slot}, pipe name -> rel index
        self._slots: dict[str, dict[tuple[str, str], dict[Footprint, int]]] = {}
        self._pipes: dict[str, dict[str, int]] = {}
        size: dict[str, int] = {}
        seen: set[tuple[str, int]] = set()
        for c in cores:
            fps = self._slots.setdefault(c.kind, {})
            pipes = self._pipes.setdefault(c.kind, {})
            for ins in c.instrs:
                key = (c.kind, id(ins))
                if key in seen:
                    continue
                seen.add(key)
                for r in (*ins.reads, *ins.writes):
                    if r.buffer == "GM":
                        continue
                    pipes.setdefault(ins.pipe, len(pipes))
                    fmap = fps.setdefault((r.buffer, ins.pipe), {})
                    fp = self._footprint(r)
                    if fp not in fmap:
                        fmap[fp] = size.get(c.kind, 0)
                        size[c.kind] = fmap[fp] + 3
        self._kind = [c.kind for c in cores]
        self._base: list[int] = []
        total = 0
        for c in cores:
            self._base.append(total)
            total += size.get(c.kind, 0)
        self._last = [-1] * total
        index = {key: i for i, key in enumerate(pipe_keys)}
        # per core: rel pipe index -> global pipe index (0 for a pipe the core lacks: its
        # slots stay -1, and -1 > known[0] never holds)
        self._gidx = [[index.get((ci, name), 0) for name in self._pipes.get(c.kind, {})]
                      for ci, c in enumerate(cores)]
        self._plans: dict[tuple[str, int], tuple[Instruction, Plan]] = {}
        self._test_memo: dict[tuple[str, str, str, Footprint, bool, bool],
                              tuple[tuple[int, int], ...]] = {}
        # (kind, pipe, atomic, local accesses) -> (tests, sets) of a plan
        self._local_plans: dict[tuple[Any, ...], tuple[tuple[tuple[int, int], ...],
                                                       tuple[int, ...]]] = {}
        self._gm: dict[str | None, tuple[_GmIndex, _GmIndex]] = {}  # tensor -> (writes, reads)
        #: per pipe, its latest completed sequence number (see the module docstring)
        self.done = [-1] * len(pipe_names)
        self._rows = list(self.know)  # each pipe's row of know, as a view

    def completed(self, pipe: int, seq: int) -> None:
        self.done[pipe] = seq

    def payload(self, pipe: int) -> np.ndarray:
        row = self._rows[pipe]
        row[pipe] = self.done[pipe]
        out: np.ndarray = row.copy()
        return out

    def merge(self, pipe: int, payload: np.ndarray) -> None:
        row = self._rows[pipe]
        np.maximum(row, payload, out=row)
        self._known[pipe] = None

    def _footprint(self, r: Region) -> Footprint:
        got = self._fps.get(id(r))
        if got is not None and got[0] is r:
            return got[1]
        fp = Footprint.of(r)
        if len(self._fps) < 1 << 16:
            self._fps[id(r)] = (r, fp)
        return fp

    def _plan(self, kind: str, ins: Instruction) -> Plan:
        me = ins.pipe
        local: list[tuple[str, Footprint, bool]] = []
        gm: list[tuple[str | None, Footprint, bool, bool]] = []
        atomic = _is_atomic(ins)
        for write, regions in ((False, ins.reads), (True, ins.writes)):
            for r in regions:
                if r.buffer == "GM":
                    if write or r.tensor in self._written:
                        gm.append((r.tensor, self._footprint(r), write,
                                   atomic if write else False))
                    continue
                local.append((r.buffer, self._footprint(r), write))
        key = (kind, me, atomic, tuple(local))
        got = self._local_plans.get(key)
        if got is None:
            fps = self._slots.get(kind, {})
            tests: set[tuple[int, int]] = set()
            sets: list[int] = []
            for buf, fp, write in local:
                tests.update(self._tests(kind, buf, me, fp, write, atomic))
                own = fps[(buf, me)][fp]
                sets.append(own + ((_ATOMIC if atomic else _WRITE) if write else _READ))
            got = self._local_plans[key] = (tuple(sorted(tests)), tuple(sets))
        return got[0], got[1], tuple(gm)

    def _tests(self, kind: str, buf: str, me: str, fp: Footprint, write: bool,
               atomic: bool) -> tuple[tuple[int, int], ...]:
        """The (slot, pipe) pairs an access of ``me`` to ``fp`` in ``buf`` tests (memoised:
        programs touch few footprints)."""
        key = (kind, buf, me, fp, write, atomic)
        got = self._test_memo.get(key)
        if got is None:
            pipes = self._pipes[kind]
            kinds = ((_READ, _WRITE) + (() if atomic else (_ATOMIC,))) if write else (
                _WRITE, _ATOMIC)
            out: list[tuple[int, int]] = []
            for (b, q), fmap in self._slots[kind].items():
                if b != buf or q == me:
                    continue
                qi = pipes[q]
                for g, first in fmap.items():
                    if g.overlaps(fp):
                        out.extend((first + k, qi) for k in kinds)
            got = self._test_memo[key] = tuple(out)
        return got

    def check(self, core: int, pipe: int, seq: int, ins: Instruction) -> None:
        """Check instruction ``seq`` of pipe ``pipe`` on core ``core`` as it starts (the
        reference's ``check_hazards``); raises RaceError."""
        kind = self._kind[core]
        got = self._plans.get((kind, id(ins)))
        if got is None or got[0] is not ins:
            got = self._plans[(kind, id(ins))] = (ins, self._plan(kind, ins))
        tests, sets, gm = got[1]
        if not (tests or sets or gm):  # a flag, a barrier: nothing to check or record
            return
        known = self._known[pipe]
        if known is None:
            known = self._known[pipe] = self.know[pipe].tolist()
        base = self._base[core]
        last = self._last
        if tests:
            gidx = self._gidx[core]
            for s, q in tests:
                if last[base + s] > known[gidx[q]]:
                    raise RaceError(f"race on a local buffer of core {core}: "
                                    f"{self.names[pipe]} '{ins.name}' is not ordered after an "
                                    "earlier access")
        for s in sets:
            last[base + s] = seq
        for tensor, fp, write, atomic in gm:
            self._gm_access(tensor, fp, pipe, seq, write, atomic, known)

    def _gm_access(self, tensor: str | None, fp: Footprint, pipe: int, seq: int, write: bool,
                   atomic: bool, known: list[int]) -> None:
        """:meth:`HazardTracker.access` of a GM tensor, verdict for verdict (see the module
        docstring); raises RaceError."""
        got = self._gm.get(tensor)
        if got is None:
            got = self._gm[tensor] = (_GmIndex(), _GmIndex())
        wt, rt = got
        span = _span(fp)
        lo, hi = fp.start, fp.end  # (Footprint.overlaps' first test, inline)
        for e in wt.near(span):
            q = e[1]
            if (e[4] and q != pipe and known[q] < e[2] and not (atomic and e[3])
                    and e[6] > lo and hi > e[5] and e[0].overlaps(fp)):
                self._gm_race(tensor, fp, pipe)
        if write:
            for e in rt.near(span):
                q = e[1]
                if (e[4] and q != pipe and known[q] < e[2] and e[6] > lo and hi > e[5]
                        and e[0].overlaps(fp)):
                    self._gm_race(tensor, fp, pipe)
            # a plain write supersedes earlier writes of the same bytes and their reads;
            # unordered atomic adds all stay pending
            for e in wt.same.get(fp, ()):
                if not (atomic and e[3] and e[1] != pipe):
                    wt.kill(e)
            wt.add([fp, pipe, seq, atomic, True, lo, hi], span)
            for e in rt.same.get(fp, ()):
                rt.kill(e)
            wt.compact()
            rt.compact()
        else:
            for e in rt.same.get(fp, ()):
                if e[1] == pipe:
                    rt.kill(e)
            rt.add([fp, pipe, seq, False, True, lo, hi], span)
            rt.compact()

    def _gm_race(self, tensor: str | None, fp: Footprint, pipe: int) -> None:
        raise RaceError(f"race on GM tensor '{tensor}' bytes [{fp.start}, {fp.end}): "
                        f"{self.names[pipe]} is not ordered after an earlier access")
