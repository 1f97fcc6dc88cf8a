"""Chip-level memory system: an LRU L2 with write-back, and HBM / L2 bandwidth shared by all cores.

Model (declared, hardware.md 2.6):
- GM tensors are laid out one after another (512 B aligned) in one address space.
- L2 is tracked in pages of ``page_bytes``. A normal read hits the pages present (moving them to the
  most-recent end) and allocates missed pages; a ``bypass`` read (L2 cache hint disabled) hits
  present pages but does not allocate. Writes allocate dirty pages without reading HBM. Evicting a
  dirty page writes it back to HBM.
- HBM and L2 are each one shared channel served in request order: a request occupies the channel
  for ``(bytes + request_overhead_bytes) / bandwidth``. A transfer ends when both its core-side DMA
  time and its channel reservations have finished; misses add the miss latency.
Time is in integer cycles of the AI-core clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from npusim.engine.program import GMTensor, Region

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


class L2Cache:
    """Page-granular LRU with dirty bits."""

    def __init__(self, capacity_bytes: int, page_bytes: int) -> None:
        self.page_bytes = page_bytes
        self.capacity_pages = max(1, capacity_bytes // page_bytes)
        self.pages: OrderedDict[int, bool] = OrderedDict()

    def _evict_for(self, n_new: int) -> int:
        writeback = 0
        while len(self.pages) + n_new > self.capacity_pages and self.pages:
            _, dirty = self.pages.popitem(last=False)
            if dirty:
                writeback += self.page_bytes
        return writeback

    def access(self, pages: dict[int, int], write: bool, allocate: bool) -> tuple[int, int, int]:
        """Touch ``pages`` (page -> bytes touched); returns (hit_bytes, miss_bytes, writeback)."""
        hit = miss = writeback = 0
        for page, nbytes in pages.items():
            if page in self.pages:
                dirty = self.pages.pop(page) or write
                self.pages[page] = dirty
                hit += nbytes
            elif write or allocate:
                writeback += self._evict_for(1)
                self.pages[page] = write
                if not write:
                    miss += nbytes
            else:
                miss += nbytes
        return hit, miss, writeback

    def warm(self, start: int, nbytes: int) -> None:
        for page in range(start // self.page_bytes, (start + nbytes - 1) // self.page_bytes + 1):
            self._evict_for(1)
            self.pages[page] = False


class MemorySystem:
    """GM address map, L2 and the shared HBM / L2 channels of one chip."""

    def __init__(self, soc, gm: dict[str, GMTensor], page_bytes: int = 32768) -> None:
        mem = soc.memory
        self.soc = soc
        self.base: dict[str, int] = {}
        addr = 0
        for name, t in gm.items():
            self.base[name] = addr
            addr += (t.nbytes + GM_ALIGN - 1) // GM_ALIGN * GM_ALIGN
        self.l2 = L2Cache(mem.l2.capacity_bytes, page_bytes)
        for name, t in gm.items():
            if t.l2_warm:
                self.l2.warm(self.base[name], t.nbytes)
        overhead = float(getattr(mem.hbm, "request_overhead_bytes", 0) or 0)
        self.hbm = SharedChannel(soc.bytes_per_cycle(mem.hbm.bandwidth_gb_per_s), overhead)
        self.l2_channel = SharedChannel(soc.bytes_per_cycle(mem.l2.bandwidth_gb_per_s))
        self.hit_latency = int(mem.l2.hit_latency_cycles)
        self.miss_latency = int(mem.l2.miss_extra_latency_cycles)
        self.stats = TrafficStats()

    def _pages(self, region: Region) -> dict[int, int]:
        """Bytes the region touches in each L2 page."""
        base = self.base[region.tensor] + region.offset
        pb = self.l2.page_bytes
        rows, row_bytes, stride = region.rows, region.row_bytes, region.stride
        if rows == 1 or row_bytes > pb:
            out: dict[int, int] = {}
            for r in range(rows):
                start = base + r * stride
                end = start + row_bytes
                p = start // pb
                while start < end:
                    chunk = min(end, (p + 1) * pb) - start
                    out[p] = out.get(p, 0) + chunk
                    start += chunk
                    p += 1
            return out
        starts = base + np.arange(rows, dtype=np.int64) * stride
        ends = starts + row_bytes
        p0 = starts // pb
        first = np.minimum(ends, (p0 + 1) * pb) - starts
        pages = np.concatenate([p0, p0 + 1])
        amounts = np.concatenate([first, row_bytes - first])
        keep = amounts > 0
        uniq, inv = np.unique(pages[keep], return_inverse=True)
        sums = np.bincount(inv, weights=amounts[keep])
        return dict(zip(uniq.tolist(), sums.astype(np.int64).tolist(), strict=True))

    def gm_access(self, now: int, region: Region, write: bool, bypass: bool) -> tuple[float, int]:
        """Account a GM read or write; returns (channel end time, extra latency cycles)."""
        if region.tensor not in self.base:
            raise KeyError(f"GM region names unknown tensor {region.tensor!r}")
        pages = self._pages(region)
        hit, miss, writeback = self.l2.access(pages, write, allocate=not bypass)
        nbytes = region.nbytes
        st = self.stats
        if write:
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
        end = max(end, self.l2_channel.reserve(now, nbytes))
        latency = self.hit_latency + (self.miss_latency if miss else 0)
        return end, latency

    def flush_dirty_bytes(self) -> int:
        """Dirty bytes still in L2 at the end (written back later, outside the kernel's time)."""
        return sum(self.l2.page_bytes for d in self.l2.pages.values() if d)

