"""Race detection by happens-before: every access must be ordered after its producer (and writes
after pending readers) through pipe order, SetFlag/WaitFlag, barriers or cross-core flags.

Each pipe keeps a knowledge vector: ``know[p][q]`` = the highest instruction sequence number of
pipe ``q`` that pipe ``p`` knows to have completed. A flag carries the setter's vector; a wait
merges it. Within one pipe instructions complete in order in this model (hardware.md 2.3 asks for
PipeBarrier there; npusim executes a pipe's queue strictly one after another, which is stricter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from npusim.engine.errors import RaceError
from npusim.isa.operands import Region


class Footprint(NamedTuple):
    """Byte rows touched by a region: ``rows`` rows of ``row_bytes`` every ``stride`` bytes,
    ending at ``end`` (a tuple: compared and hashed at C speed, the checker's hot path)."""

    start: int
    rows: int
    stride: int
    row_bytes: int
    end: int

    @classmethod
    def of(cls, r: Region) -> Footprint:
        start, rows, stride, row_bytes = r.offset, r.rows, r.stride, r.row_bytes
        return cls(start, rows, stride, row_bytes, start + (rows - 1) * stride + row_bytes)

    def overlaps(self, o: Footprint) -> bool:
        if self.end <= o.start or o.end <= self.start:
            return False
        if self.rows == 1 and o.rows == 1:
            return True
        if self.stride == o.stride and self.row_bytes <= self.stride and o.row_bytes <= o.stride:
            s = self.stride
            a0, b0 = self.start // s, o.start // s
            if a0 + self.rows <= b0 or b0 + o.rows <= a0:
                return False
            ca, cb = self.start % s, o.start % s
            return ca < cb + o.row_bytes and cb < ca + self.row_bytes
        return True  # different shapes: conservatively overlapping spans


@dataclass(slots=True)
class _Access:
    fp: Footprint
    pipe: int
    seq: int
    name: str
    atomic: bool = False
    ix: int = -1  # its insertion number in a :class:`_GmTable`


class _GmTable:
    """The pending accesses of one GM tensor, in insertion order (what a list of them would
    hold), with an index of their byte spans in 4 KiB buckets: an access can overlap only the
    accesses that share a bucket with it (or whose span is wider than ``WIDE`` buckets, 4 MiB, or
    empty, kept apart and always looked at: a strided tile read of a workspace spans hundreds of
    KiB, and as a wide entry it was tested against every later write). GM accesses are never
    pruned, and the many cores writing disjoint parts of one workspace would otherwise test
    every pair."""

    __slots__ = ("buckets", "live", "next", "wide")
    SHIFT = 12
    WIDE = 1024

    def __init__(self) -> None:
        self.live: dict[int, _Access] = {}
        self.buckets: dict[int, set[int]] = {}
        self.wide: set[int] = set()
        self.next = 0

    def __len__(self) -> int:
        return len(self.live)

    def _span(self, fp: Footprint) -> range | None:
        """The buckets of ``fp``'s bytes; None for an empty or a wide span."""
        if fp.end <= fp.start:
            return None
        first, last = fp.start >> self.SHIFT, (fp.end - 1) >> self.SHIFT
        return range(first, last + 1) if last - first < self.WIDE else None

    def near(self, fp: Footprint) -> list[_Access]:
        """Every access whose span can overlap ``fp``'s, in insertion order."""
        span = self._span(fp)
        if span is None:
            return list(self.live.values())
        ids = set(self.wide)
        buckets = self.buckets
        for b in span:
            got = buckets.get(b)
            if got:
                ids |= got
        live = self.live
        return [live[i] for i in sorted(ids)]

    def add(self, acc: _Access) -> None:
        acc.ix = i = self.next
        self.next += 1
        self.live[i] = acc
        span = self._span(acc.fp)
        if span is None:
            self.wide.add(i)
        else:
            for b in span:
                self.buckets.setdefault(b, set()).add(i)

    def discard(self, accs: list[_Access]) -> None:
        for acc in accs:
            i = acc.ix
            del self.live[i]
            span = self._span(acc.fp)
            if span is None:
                self.wide.discard(i)
            else:
                for b in span:
                    self.buckets[b].discard(i)


class HazardTracker:
    """Checks every region access against the accesses it must be ordered after."""

    def __init__(self, pipe_names: list[str]) -> None:
        n = len(pipe_names)
        self.names = pipe_names
        self.know = np.full((n, n), -1, dtype=np.int64)
        # per pipe, its row of ``know`` as a list (None: to rebuild). Only a merge changes what
        # a pipe knows of the others; its own entry, which ``completed`` moves, is never read
        # from it (an access is never ordered against its own pipe's)
        self._known: list[list[int] | None] = [None] * n
        self._fps: dict[int, tuple[Region, Footprint]] = {}  # id(region) -> (region, footprint)
        self.writes: dict[tuple[Any, ...], list[_Access]] = {}
        self.reads: dict[tuple[Any, ...], list[_Access]] = {}
        self._limit: dict[tuple[Any, ...], int] = {}  # list length that triggers the next pruning
        self._core_pipes: dict[str, np.ndarray] = {}

    def completed(self, pipe: int, seq: int) -> None:
        self.know[pipe, pipe] = seq

    def payload(self, pipe: int) -> np.ndarray:
        out: np.ndarray = self.know[pipe].copy()
        return out

    def merge(self, pipe: int, payload: np.ndarray) -> None:
        np.maximum(self.know[pipe], payload, out=self.know[pipe])
        self._known[pipe] = None

    def _pipes_of(self, core: str) -> np.ndarray:
        """Indices of the pipes of ``core`` (pipe names are ``<core>/<pipe>``)."""
        if core not in self._core_pipes:
            self._core_pipes[core] = np.array(
                [i for i, n in enumerate(self.names) if n.split("/")[0] == core], dtype=np.int64)
        return self._core_pipes[core]

    def _prune(self, space: tuple[Any, ...]) -> None:
        """Drop the accesses of a core-local space that every pipe of that core already knows
        completed: knowledge only grows, so no later access can race with them (same result,
        shorter lists)."""
        pipes = self._pipes_of(space[0])
        sub = self.know[pipes]

        def live(a: _Access) -> bool:
            return bool((sub[:, a.pipe] < a.seq).any())

        for table in (self.writes, self.reads):
            if space in table:
                table[space] = [a for a in table[space] if live(a)]
        size = len(self.writes.get(space, ())) + len(self.reads.get(space, ()))
        self._limit[space] = max(64, 2 * size)

    def access(
        self, space: tuple[Any, ...], region: Region, pipe: int, seq: int, name: str, write: bool,
        atomic: bool = False,
    ) -> None:
        """Check one access; atomic adds need no order among themselves, only against plain
        reads and writes."""
        got = self._fps.get(id(region))
        if got is not None and got[0] is region:  # programs share their region objects
            fp = got[1]
        else:
            fp = Footprint.of(region)
            if len(self._fps) < 1 << 16:
                self._fps[id(region)] = (region, fp)
        # what this pipe knows completed, as a list (the cheap ordering test runs first; the
        # footprint test only for accesses not ordered before this one - same condition)
        known = self._known[pipe]
        if known is None:
            known = self._known[pipe] = self.know[pipe].tolist()
        gm = space[0] == "GM"
        if gm:
            wt = self._gm_table(self.writes, space)
            ws: Any = wt.near(fp)
        else:
            ws = self.writes.get(space, ())
        for w in ws:
            if atomic and w.atomic:
                continue
            if w.pipe != pipe and known[w.pipe] < w.seq and w.fp.overlaps(fp):
                raise RaceError(
                    f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                    f"{self.names[pipe]} '{name}' {'writes' if write else 'reads'} it while "
                    f"{self.names[w.pipe]} '{w.name}' (its writer) has not signalled completion"
                )
        new = _Access(fp, pipe, seq, name, atomic if write else False)
        if write:
            if gm:
                rt = self._gm_table(self.reads, space)
                rs: Any = rt.near(fp)
            else:
                rs = self.reads.get(space, ())
            for r in rs:
                if r.pipe != pipe and known[r.pipe] < r.seq and r.fp.overlaps(fp):
                    raise RaceError(
                        f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                        f"{self.names[pipe]} '{name}' overwrites it while {self.names[r.pipe]} "
                        f"'{r.name}' (a reader) has not signalled completion"
                    )
            # A plain write supersedes earlier writes of the same bytes; unordered atomic adds
            # all stay pending (a later reader must be ordered after every one of them).
            if gm:
                wt.discard([w for w in ws if w.fp == fp
                            and not (atomic and w.atomic and w.pipe != pipe)])
                wt.add(new)
                rt.discard([r for r in rs if r.fp == fp])
            else:
                keep = [w for w in self.writes.get(space, [])
                        if w.fp != fp or (atomic and w.atomic and w.pipe != pipe)]
                self.writes[space] = keep
                keep.append(new)
                self.reads[space] = [r for r in self.reads.get(space, []) if r.fp != fp]
        elif gm:
            rt = self._gm_table(self.reads, space)
            rt.discard([r for r in rt.near(fp) if r.fp == fp and r.pipe == pipe])
            rt.add(new)
        else:
            lst = self.reads.setdefault(space, [])
            lst[:] = [r for r in lst if not (r.fp == fp and r.pipe == pipe)]
            lst.append(new)
        if not gm and (len(self.writes.get(space, ())) + len(self.reads.get(space, ()))
                       > self._limit.get(space, 64)):
            self._prune(space)

    @staticmethod
    def _gm_table(table: dict[tuple[Any, ...], Any], space: tuple[Any, ...]) -> _GmTable:
        got = table.get(space)
        if got is None:
            got = table[space] = _GmTable()
        return got


def _space_name(space: tuple[Any, ...]) -> str:
    if space[0] == "GM":
        return f"GM tensor '{space[1]}'"
    return f"{space[0]} {space[1]}"


class FastHazardTracker(HazardTracker):
    """The fast engine's checker: the verdicts of :class:`HazardTracker` (race or not, at the
    same access), core-local spaces indexed by pipe. (Its race message is generic: the fast
    engine hands a racy program to the reference engine, which raises the exact error.)

    Per core-local space and pipe ``q``, the pending reads and writes of ``q`` in program
    order, so sequence numbers ascend: an access by pipe ``p`` needs testing only against the
    entries of ``q`` after ``known[q]`` (what ``p`` knows ``q`` completed), found from the end.
    Nothing is superseded (the parent drops an earlier access to the same bytes when a write
    replaces it); that changes no verdict: the replacing access was itself ordered after the
    dropped one (or on its pipe) when it started, and knowledge travels whole with every
    flag, so any access ordered after the replacement is ordered after the dropped one too.
    Lists drop their prefix that every other pipe of the core knows completed (as ``_prune``).
    """

    LIMIT = 256

    def __init__(self, pipe_names: list[str]) -> None:
        super().__init__(pipe_names)
        # space -> (writes, reads), each pipe -> [its pending accesses, pruning limit]
        self._local: dict[tuple[Any, ...], tuple[dict[int, list[Any]], dict[int, list[Any]]]] = {}

    def access(
        self, space: tuple[Any, ...], region: Region, pipe: int, seq: int, name: str, write: bool,
        atomic: bool = False,
    ) -> None:
        if space[0] == "GM":
            super().access(space, region, pipe, seq, name, write, atomic)
            return
        got = self._fps.get(id(region))
        if got is not None and got[0] is region:
            fp = got[1]
        else:
            fp = Footprint.of(region)
            if len(self._fps) < 1 << 16:
                self._fps[id(region)] = (region, fp)
        known = self._known[pipe]
        if known is None:
            known = self._known[pipe] = self.know[pipe].tolist()
        tables = self._local.get(space)
        if tables is None:
            tables = self._local[space] = ({}, {})
        writes, reads = tables
        for q, ent in writes.items():
            if q == pipe:
                continue
            kq = known[q]
            lst = ent[0]
            if not lst or lst[-1].seq <= kq:
                continue
            for w in reversed(lst):
                if w.seq <= kq:
                    break
                if not (atomic and w.atomic) and w.fp.overlaps(fp):
                    self._race(space, fp, pipe, name)
        if write:
            for q, ent in reads.items():
                if q == pipe:
                    continue
                kq = known[q]
                lst = ent[0]
                if not lst or lst[-1].seq <= kq:
                    continue
                for r in reversed(lst):
                    if r.seq <= kq:
                        break
                    if r.fp.overlaps(fp):
                        self._race(space, fp, pipe, name)
        table = writes if write else reads
        own = table.get(pipe)
        if own is None:
            own = table[pipe] = [[], self.LIMIT]
        lst = own[0]
        lst.append(_Access(fp, pipe, seq, name, atomic if write else False))
        if len(lst) > own[1]:
            others = [p for p in self._pipes_of(space[0]).tolist() if p != pipe]
            done = int(self.know[others, pipe].min()) if others else seq
            lst[:] = [a for a in lst if a.seq > done]
            own[1] = max(self.LIMIT, 2 * len(lst))

    def _race(self, space: tuple[Any, ...], fp: Footprint, pipe: int, name: str) -> None:
        raise RaceError(f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                        f"{self.names[pipe]} '{name}' is not ordered after an earlier access")
