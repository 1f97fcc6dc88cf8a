"""Race detection by happens-before: every access must be ordered after its producer (and writes
after pending readers) through pipe order, SetFlag/WaitFlag, barriers or cross-core flags.

Each pipe keeps a knowledge vector: ``know[p][q]`` = the highest instruction sequence number of
pipe ``q`` that pipe ``p`` knows to have completed. A flag carries the setter's vector; a wait
merges it. Within one pipe instructions complete in order in this model (hardware.md 2.3 asks for
PipeBarrier there; npusim executes a pipe's queue strictly one after another, which is stricter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from npusim.engine.errors import RaceError
from npusim.engine.program import Region


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


class HazardTracker:
    """Checks every region access against the accesses it must be ordered after."""

    def __init__(self, pipe_names: list[str]) -> None:
        n = len(pipe_names)
        self.names = pipe_names
        self.know = np.full((n, n), -1, dtype=np.int64)
        self.writes: dict[tuple, list[_Access]] = {}
        self.reads: dict[tuple, list[_Access]] = {}
        self._limit: dict[tuple, int] = {}  # list length that triggers the next pruning
        self._core_pipes: dict[str, np.ndarray] = {}

    def completed(self, pipe: int, seq: int) -> None:
        self.know[pipe, pipe] = seq

    def payload(self, pipe: int) -> np.ndarray:
        return self.know[pipe].copy()

    def merge(self, pipe: int, payload: np.ndarray) -> None:
        np.maximum(self.know[pipe], payload, out=self.know[pipe])

    def _pipes_of(self, core: str) -> np.ndarray:
        """Indices of the pipes of ``core`` (pipe names are ``<core>/<pipe>``)."""
        if core not in self._core_pipes:
            self._core_pipes[core] = np.array(
                [i for i, n in enumerate(self.names) if n.split("/")[0] == core], dtype=np.int64)
        return self._core_pipes[core]

    def _prune(self, space: tuple) -> None:
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

    def _ordered(self, pipe: int, acc: _Access) -> bool:
        return acc.pipe == pipe or self.know[pipe, acc.pipe] >= acc.seq

    def access(
        self, space: tuple, region: Region, pipe: int, seq: int, name: str, write: bool,
        atomic: bool = False,
    ) -> None:
        """Check one access; atomic adds need no order among themselves, only against plain
        reads and writes."""
        fp = Footprint.of(region)
        for w in self.writes.get(space, ()):
            if atomic and w.atomic:
                continue
            if w.fp.overlaps(fp) and not self._ordered(pipe, w):
                raise RaceError(
                    f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                    f"{self.names[pipe]} '{name}' {'writes' if write else 'reads'} it while "
                    f"{self.names[w.pipe]} '{w.name}' (its writer) has not signalled completion"
                )
        if write:
            for r in self.reads.get(space, ()):
                if r.fp.overlaps(fp) and not self._ordered(pipe, r):
                    raise RaceError(
                        f"race on {_space_name(space)} bytes [{fp.start}, {fp.end}): "
                        f"{self.names[pipe]} '{name}' overwrites it while {self.names[r.pipe]} "
                        f"'{r.name}' (a reader) has not signalled completion"
                    )
            # A plain write supersedes earlier writes of the same bytes; unordered atomic adds
            # all stay pending (a later reader must be ordered after every one of them).
            keep = [w for w in self.writes.get(space, [])
                    if w.fp != fp or (atomic and w.atomic and w.pipe != pipe)]
            self.writes[space] = keep
            self.writes[space].append(_Access(fp, pipe, seq, name, atomic))
            self.reads[space] = [r for r in self.reads.get(space, []) if r.fp != fp]
        else:
            lst = self.reads.setdefault(space, [])
            lst[:] = [r for r in lst if not (r.fp == fp and r.pipe == pipe)]
            lst.append(_Access(fp, pipe, seq, name))
        if space[0] != "GM" and (len(self.writes.get(space, ())) + len(self.reads.get(space, ()))
                                 > self._limit.get(space, 64)):
            self._prune(space)


def _space_name(space: tuple) -> str:
    if space[0] == "GM":
        return f"GM tensor '{space[1]}'"
    return f"{space[0]} {space[1]}"
