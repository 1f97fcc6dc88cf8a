"""Chip-level memory system: an LRU L2 with write-back, and HBM / L2 bandwidth shared by all cores.

Model (declared, hardware.md 2.6):
- GM tensors are laid out one after another (512 B aligned) in one address space.
- L2 keeps LRU order per page of ``page_bytes`` and presence / dirtiness per line (the
  descriptor's ``line_bytes``). A normal read hits the lines present (moving the page to the
  most-recent end) and allocates the missed ones; a ``bypass`` read (L2 cache hint disabled) hits
  present lines but does not allocate. Writes allocate dirty lines without reading HBM; an atomic
  add first fetches the lines it lacks. Evicting a page writes its dirty lines back to HBM.
- HBM and L2 are each one shared channel served in request order: a request occupies the channel
  for ``(bytes + request_overhead_bytes) / bandwidth``. A transfer ends when both its core-side DMA
  time and its channel reservations have finished; misses add the miss latency.
Time is in integer cycles of the AI-core clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from npusim.engine.program import GMTensor, Instr, Kernel
from npusim.isa.operands import Region

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

GM_ALIGN = 512


@dataclass
class TrafficStats:
    """Bytes moved at each memory level during a run."""

    gm_read_bytes: int = 0
    gm_write_bytes: int = 0
    l2_hit_bytes: int = 0
    l2_miss_bytes: int = 0
    hbm_read_bytes: int = 0
    hbm_write_bytes: int = 0
    per_path_bytes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        out = {k: v for k, v in self.__dict__.items() if k != "per_path_bytes"}
        out.update({f"path_{k}": v for k, v in sorted(self.per_path_bytes.items())})
        return out


class SharedChannel:
    """A bandwidth resource served first-come first-served (reservation calendar)."""

    def __init__(self, bytes_per_cycle: float, overhead_bytes: float = 0.0) -> None:
        if bytes_per_cycle <= 0:
            raise ValueError(f"channel bandwidth must be positive, got {bytes_per_cycle}")
        self.bytes_per_cycle = bytes_per_cycle
        self.overhead_bytes = overhead_bytes
        self.free_at = 0.0
        self.busy_cycles = 0.0

    def reserve(self, now: int, nbytes: int, requests: int = 1) -> float:
        """Occupy the channel for ``nbytes`` starting no earlier than ``now``; returns the end."""
        if nbytes <= 0:
            return float(now)
        start = max(float(now), self.free_at)
        dur = (nbytes + self.overhead_bytes * requests) / self.bytes_per_cycle
        self.free_at = start + dur
        self.busy_cycles += dur
        return self.free_at


class GmAccess(NamedTuple):
    """One GM access of an instruction, as the memory system sees it."""

    region: Region
    write: bool
    bypass: bool = False  # read with L2 no-allocate (SetL2CacheHint)
    atomic: bool = False  # atomic add: read-modify-write in L2


def gm_accesses(ins: Instr) -> list[GmAccess]:
    """The GM reads and writes of a DMA or FixPipe instruction, in the order they are made."""
    out: list[GmAccess] = []
    atomic = getattr(ins, "atomic", "") == "add"
    if ins.kind == "dma":
        src, dst = ins.reads[0], ins.writes[0]
        if src.buffer == "GM":
            out.append(GmAccess(src, False, bypass=getattr(ins, "l2_cache", "") == "bypass"))
        if dst.buffer == "GM":
            out.append(GmAccess(dst, True, atomic=atomic))
    elif ins.kind == "fix" and ins.writes[0].buffer == "GM":
        out.append(GmAccess(ins.writes[0], True, atomic=atomic))
    return out


class L2Cache:
    """LRU over pages; inside a page, presence and dirtiness are tracked per cache line, so a
    transfer only hits the lines earlier transfers actually brought in."""

    def __init__(self, capacity_bytes: int, page_bytes: int, line_bytes: int) -> None:
        if page_bytes % line_bytes:
            raise ValueError(f"L2 page {page_bytes} B is not a multiple of the line {line_bytes} B")
        self.page_bytes = page_bytes
        self.line_bytes = line_bytes
        self.capacity_pages = max(1, capacity_bytes // page_bytes)
        self.pages: OrderedDict[int, list[int]] = OrderedDict()  # page -> [present, dirty] masks

    def _evict_for_one(self) -> int:
        writeback = 0
        while len(self.pages) >= self.capacity_pages and self.pages:
            _, (_, dirty) = self.pages.popitem(last=False)
            writeback += dirty.bit_count() * self.line_bytes
        return writeback

    def access(self, pages: dict[int, tuple[int, int]], write: bool, allocate: bool
               ) -> tuple[int, int, int]:
        """Touch ``pages`` (page -> (line mask, bytes)); returns (hit bytes, HBM bytes fetched for
        the missing lines, written-back bytes)."""
        hit = miss = writeback = 0
        for page, (mask, nbytes) in pages.items():
            entry = self.pages.pop(page, None)
            if entry is None:
                if not (write or allocate):
                    miss += mask.bit_count() * self.line_bytes
                    continue
                writeback += self._evict_for_one()
                entry = [0, 0]
            present = entry[0] & mask
            if not write:
                # A miss fetches whole lines from HBM; the lines already present are hits.
                absent = (mask & ~entry[0]).bit_count()
                hit += nbytes * present.bit_count() // mask.bit_count()
                miss += absent * self.line_bytes
            if write or allocate:
                entry[0] |= mask
                if write:
                    entry[1] |= mask
            self.pages[page] = entry
        return hit, miss, writeback

    def warm(self, start: int, nbytes: int) -> None:
        """Mark a byte range present (clean), e.g. a tensor the previous op just wrote."""
        pb, lb = self.page_bytes, self.line_bytes
        full = (1 << (pb // lb)) - 1
        for page in range(start // pb, (start + nbytes - 1) // pb + 1):
            self._evict_for_one()
            self.pages.pop(page, None)
            self.pages[page] = [full, 0]


class MemorySystem:
    """GM address map, L2 and the shared HBM / L2 channels of one chip."""

    def __init__(self, soc: SocDescriptor, gm: dict[str, GMTensor], page_bytes: int = 32768,
                 l2: L2Cache | None = None) -> None:
        """``l2``: the cache as a previous launch left it (``l2_start="repeat"``); None = cold
        except for the tensors marked ``l2_warm``."""
        mem = soc.memory
        self.soc = soc
        self.base: dict[str, int] = {}
        addr = 0
        for name, t in gm.items():
            self.base[name] = addr
            addr += (t.nbytes + GM_ALIGN - 1) // GM_ALIGN * GM_ALIGN
        if l2 is not None:
            self.l2 = l2
        else:
            self.l2 = L2Cache(mem.l2.capacity_bytes, page_bytes, int(mem.l2.line_bytes))
            for name, t in gm.items():
                if t.l2_warm:
                    self.l2.warm(self.base[name], t.nbytes)
        overhead = float(getattr(mem.hbm, "request_overhead_bytes", 0) or 0)
        self.hbm = SharedChannel(soc.bytes_per_cycle(mem.hbm.bandwidth_gb_per_s), overhead)
        self.l2_channel = SharedChannel(soc.bytes_per_cycle(mem.l2.bandwidth_gb_per_s))
        self.hit_latency = int(mem.l2.hit_latency_cycles)
        self.miss_latency = int(mem.l2.miss_extra_latency_cycles)
        self.stats = TrafficStats()
        self.last_miss = 0  # HBM bytes the last gm_access fetched (the in-flight limit reads it)

    def _pages(self, region: Region) -> dict[int, tuple[int, int]]:
        """Per L2 page the region touches: (mask of touched lines, bytes touched). The pattern
        depends only on the region's page-relative shape, so it is computed once per shape
        (:func:`page_pattern`) and shifted to the region's first page."""
        tensor = region.tensor
        if tensor is None:  # the KeyError the lookup raised (a GM region names its tensor)
            raise KeyError(None)
        base = self.base[tensor] + region.offset
        pb = self.l2.page_bytes
        first = base // pb
        pattern = page_pattern(base - first * pb, region.rows, region.row_bytes, region.stride,
                               pb, self.l2.line_bytes)
        return {first + rel: entry for rel, entry in pattern}

    def _touch(self, region: Region, access: GmAccess) -> tuple[int, int, int]:
        """Update the L2 for one access: (hit bytes, HBM bytes fetched, written-back bytes). An
        atomic add is a read-modify-write: absent lines are fetched first, then dirtied."""
        pages = self._pages(region)
        if access.atomic:
            _, fetched, wb0 = self.l2.access(pages, False, allocate=True)
            _, _, wb1 = self.l2.access(pages, True, allocate=True)
            return 0, fetched, wb0 + wb1
        return self.l2.access(pages, access.write, allocate=not access.bypass)

    def gm_access(self, now: int, access: GmAccess) -> tuple[float, int]:
        """Account one GM access; returns (channel end time, extra latency cycles). An atomic
        add carries its data over the L2 channel twice (read and write)."""
        region = access.region
        if region.tensor not in self.base:
            raise KeyError(f"GM region names unknown tensor {region.tensor!r}")
        hit, miss, writeback = self._touch(region, access)
        self.last_miss = miss
        nbytes = region.nbytes
        st = self.stats
        if access.write:
            st.gm_write_bytes += nbytes
        else:
            st.gm_read_bytes += nbytes
            st.l2_hit_bytes += hit
        st.l2_miss_bytes += miss
        st.hbm_read_bytes += miss
        st.hbm_write_bytes += writeback
        end = float(now)
        if miss or writeback:
            end = max(end, self.hbm.reserve(now, miss + writeback, requests=1))
        end = max(end, self.l2_channel.reserve(now, nbytes * (2 if access.atomic else 1)))
        latency = self.hit_latency + (self.miss_latency if miss else 0)
        return end, latency

    def replay_launch(self, kernel: Kernel) -> L2Cache:
        """Leave the L2 as one earlier launch of ``kernel`` would: every core's GM accesses in
        program order, the cores interleaved round-robin (their concurrent progress approximated
        by equal rates). Only the cache state changes; no time or traffic is charged."""
        streams = [[a for ins in core.instrs for a in gm_accesses(ins)] for core in kernel.cores]
        for step in range(max((len(a) for a in streams), default=0)):
            for acc in streams:
                if step < len(acc):
                    self._touch(acc[step].region, acc[step])
        return self.l2

    def flush_dirty_bytes(self) -> int:
        """Dirty bytes still in L2 at the end (written back later, outside the kernel's time)."""
        return sum(e[1].bit_count() * self.l2.line_bytes for e in self.l2.pages.values())


#: page-relative shape -> pattern; bounded so that long sweeps do not grow it without limit
_PATTERNS: dict[tuple[int, int, int, int, int, int], tuple[tuple[int, tuple[int, int]], ...]] = {}
_PATTERNS_MAX = 65536


def page_pattern(start: int, rows: int, row_bytes: int, stride: int, page_bytes: int,
                 line_bytes: int) -> tuple[tuple[int, tuple[int, int]], ...]:
    """The L2 pages a strided window touches, relative to the page holding its first byte:
    ``(page - first page, (mask of touched lines, bytes touched))`` in first-touch order, for a
    window of ``rows`` rows of ``row_bytes`` every ``stride`` bytes starting ``start`` bytes into
    its first page. Pure, so memoised: a GM access pattern repeats across tiles and cores."""
    key = (start, rows, row_bytes, stride, page_bytes, line_bytes)
    hit = _PATTERNS.get(key)
    if hit is None:
        if len(_PATTERNS) >= _PATTERNS_MAX:
            _PATTERNS.clear()
        hit = _PATTERNS[key] = tuple(
            page_touches(start, rows, row_bytes, stride, page_bytes, line_bytes).items())
    return hit


def page_touches(base: int, rows: int, row_bytes: int, stride: int, page_bytes: int,
                 line_bytes: int) -> dict[int, tuple[int, int]]:
    """Per page (absolute, ``base`` in bytes): (mask of touched lines, bytes touched), in
    first-touch order; the unmemoised computation behind :func:`page_pattern`."""
    if rows >= 16 and 0 < row_bytes <= page_bytes and page_bytes <= 64 * line_bytes:
        return _page_touches_np(base, rows, row_bytes, stride, page_bytes, line_bytes)
    pb, lb = page_bytes, line_bytes
    out: dict[int, tuple[int, int]] = {}
    for r in range(rows):
        start = base + r * stride
        end = start + row_bytes
        while start < end:
            p = start // pb
            stop = min(end, (p + 1) * pb)
            first, last = (start - p * pb) // lb, (stop - 1 - p * pb) // lb
            mask = ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)
            m0, b0 = out.get(p, (0, 0))
            out[p] = (m0 | mask, b0 + stop - start)
            start = stop
    return out


def _page_touches_np(base: int, rows: int, row_bytes: int, stride: int, pb: int, lb: int
                     ) -> dict[int, tuple[int, int]]:
    """:func:`page_touches` for many rows of at most a page each (so each row touches one or two
    pages) and at most 64 lines per page (masks fit a uint64), computed with numpy: the same
    pieces (row by row, first page first), the same masks, sums and first-touch order."""
    starts = base + np.arange(rows, dtype=np.int64) * stride
    ends = starts + row_bytes
    p0 = starts // pb
    cut = np.minimum(ends, (p0 + 1) * pb)  # end of each row's piece on its first page
    # pieces in touch order: (row 0 first page, row 0 second page, row 1 ...); empty ones dropped
    page = np.stack([p0, p0 + 1], axis=1).ravel()
    lo = np.stack([starts, cut], axis=1).ravel()
    hi = np.stack([cut, ends], axis=1).ravel()
    keep = lo < hi
    page, lo, hi = page[keep], lo[keep], hi[keep]
    first = ((lo - page * pb) // lb).astype(np.uint64)
    last = ((hi - 1 - page * pb) // lb).astype(np.uint64)
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    mask = (ones >> (np.uint64(63) - last)) & ~((np.uint64(1) << first) - np.uint64(1))
    uniq, first_at, inv = np.unique(page, return_index=True, return_inverse=True)
    masks = np.zeros(len(uniq), np.uint64)
    np.bitwise_or.at(masks, inv, mask)
    nbytes = np.zeros(len(uniq), np.int64)
    np.add.at(nbytes, inv, hi - lo)
    order = np.argsort(first_at, kind="stable")
    return dict(zip(uniq[order].tolist(),
                    zip(masks[order].tolist(), nbytes[order].tolist(), strict=True), strict=True))
