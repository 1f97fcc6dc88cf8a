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
stays -1 and never fires). GM accesses go to the parent's bucket index unchanged.
"""

from __future__ import annotations

from npusim.engine.errors import RaceError
from npusim.engine.hazards import FastHazardTracker, Footprint
from npusim.engine.program import Kernel
from npusim.isa.instructions import Instruction
from npusim.isa.operands import Region

_READ, _WRITE, _ATOMIC = 0, 1, 2

#: an instruction's plan: (slot, pipe) pairs to test, slots to set, GM accesses
#: (space, region, write, atomic) in the order the reference checks them
Plan = tuple[tuple[tuple[int, int], ...], tuple[int, ...],
             tuple[tuple[tuple[str, str | None], Region, bool, bool], ...]]


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

    def _footprint(self, r: Region) -> Footprint:
        got = self._fps.get(id(r))
        if got is not None and got[0] is r:
            return got[1]
        fp = Footprint.of(r)
        if len(self._fps) < 1 << 16:
            self._fps[id(r)] = (r, fp)
        return fp

    def _plan(self, kind: str, ins: Instruction) -> Plan:
        fps = self._slots.get(kind, {})
        me = ins.pipe
        tests: set[tuple[int, int]] = set()
        sets: list[int] = []
        gm: list[tuple[tuple[str, str | None], Region, bool, bool]] = []
        atomic = _is_atomic(ins)
        for write, regions in ((False, ins.reads), (True, ins.writes)):
            for r in regions:
                if r.buffer == "GM":
                    if write or r.tensor in self._written:
                        gm.append((("GM", r.tensor), r, write, atomic if write else False))
                    continue
                fp = self._footprint(r)
                tests.update(self._tests(kind, r.buffer, me, fp, write, atomic))
                own = fps[(r.buffer, me)][fp]
                sets.append(own + ((_ATOMIC if atomic else _WRITE) if write else _READ))
        return tuple(sorted(tests)), tuple(sets), tuple(gm)

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
        for space, r, write, atomic in gm:
            self.access(space, r, pipe, seq, ins.name, write, atomic)
