"""GM access cost from how the bytes are laid out, not only how many (issue 13 item 1).

Pure functions of a GM byte layout (start address, rows, row length, row stride) and a core's
``gm_bursts`` descriptor (:class:`npusim.hw.schema_core.GmBurstSpec`); no engine state. They
survive any change of the instruction representation: callers pass plain numbers.

Declared model (rules from public documentation, cited in the descriptor):

- The DMA engine fetches whole 32 B DataBlocks (``granule_bytes``): a row that starts or ends
  inside a block pays the whole block.
- A row is split into requests at ``window_bytes`` (512 B) boundaries of the GM address; each
  request moves its span rounded up to the next documented burst length (128 / 256 / 512 B).
- Each request also costs ``request_overhead_bytes`` of transfer time (command / response slot).
- The measured size curves of the descriptor (msKPP) were taken with contiguous, 512 B-aligned
  copies, so a layout's cost is expressed as a factor over that reference: the same payload
  moved as one contiguous, aligned span. Factor 1 = as measured; > 1 = slower.

ND -> NZ conversion in the copy (Nd2Nz, ``transform`` nd2nz / dn2nz) additionally writes each
row's elements as whole C0 blocks of 32 B in L1 (a row of D elements fills ceil(D / C0) blocks,
the tail zero-padded), so rows whose length is not a multiple of 32 B move padding too. Each of
those C0 pieces goes to its own NZ fractal, so the copy moves a row piece by piece: a source row
whose GM start is not 32 B aligned puts every piece across two DataBlocks, and the engine reads
both (declared: the DMA's realignment is not published; ``straddle``). A 32 B-aligned row keeps
the contiguous-row cost, which is why DEVKIT asks for 32 B-aligned, better 512 B-aligned rows.
NZ -> ND on the way out (FixPipe / MTE3 into an ND tensor) writes one GM row per matrix row:
its cost is the layout factor of those rows.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from npusim.hw.schema_core import CoreDescriptor, GmBurstSpec
    from npusim.isa.operands import Region


class RequestCost(NamedTuple):
    """What one layout costs on the GM side: requests issued and bytes moved (rounded up)."""

    requests: int
    charged_bytes: int

    def time_bytes(self, overhead_bytes: float) -> float:
        """Transfer time in byte-equivalents at the path's peak rate."""
        return self.charged_bytes + overhead_bytes * self.requests


def _burst(span: int, bursts: tuple[int, ...]) -> int:
    for b in bursts:
        if span <= b:
            return b
    return bursts[-1] * math.ceil(span / bursts[-1])


@lru_cache(maxsize=65536)
def row_cost(start: int, length: int, window: int, granule: int,
             bursts: tuple[int, ...]) -> RequestCost:
    """Requests and charged bytes of one contiguous span of ``length`` bytes at GM byte
    address ``start`` (only ``start % window`` matters)."""
    if length <= 0:
        return RequestCost(0, 0)
    s = start % window
    g0 = s // granule * granule
    g1 = -(-(s + length) // granule) * granule
    first_w, last_w = g0 // window, (g1 - 1) // window
    if first_w == last_w:
        return RequestCost(1, _burst(g1 - g0, bursts))
    head = _burst((first_w + 1) * window - g0, bursts)
    tail = _burst(g1 - last_w * window, bursts)
    full = last_w - first_w - 1
    return RequestCost(full + 2, head + tail + full * window)


def layout_cost(start: int, rows: int, row_bytes: int, stride: int, window: int, granule: int,
                bursts: tuple[int, ...], straddle: bool = False) -> RequestCost:
    """Requests and charged bytes of ``rows`` rows of ``row_bytes`` each, ``stride`` bytes apart,
    the first at GM address ``start``. Rows that touch each other (stride == row_bytes) are one
    span, except with ``straddle`` (an ND -> NZ source, moved row by row in C0 pieces: a row not
    starting on a ``granule`` boundary is charged two granules per piece). Row starts repeat
    modulo ``window``, so the cost is summed per residue class."""
    if rows <= 0 or row_bytes <= 0:
        return RequestCost(0, 0)
    if not straddle and (rows == 1 or stride == row_bytes):
        return row_cost(start % window, rows * row_bytes if rows > 1 else row_bytes,
                        window, granule, bursts)
    period = window // math.gcd(stride % window or window, window)
    pieces = 2 * -(-row_bytes // granule) * granule  # bytes of two granules per C0 piece
    req = charged = 0
    for i in range(min(rows, period)):
        count = (rows - i + period - 1) // period
        at = (start + i * stride) % window
        c = row_cost(at, row_bytes, window, granule, bursts)
        moved = max(c.charged_bytes, pieces) if straddle and at % granule else c.charged_bytes
        req += count * c.requests
        charged += count * moved
    return RequestCost(req, charged)


NZ_TRANSFORMS = ("nd2nz", "dn2nz")


def layout_factor(spec: GmBurstSpec | None, start: int, rows: int, row_bytes: int, stride: int,
                  straddle: bool = False) -> float:
    """Transfer-time factor of a GM layout relative to the same payload moved as one contiguous,
    ``window``-aligned span (the condition the descriptor's size curves were measured in).
    ``spec`` is a ``GmBurstSpec``; None = layout not modelled (factor 1). ``straddle``: the
    layout is an ND -> NZ source (see :func:`layout_cost`)."""
    if spec is None or rows <= 0 or row_bytes <= 0:
        return 1.0
    w, g, b, ov = (int(spec.window_bytes), int(spec.granule_bytes), tuple(spec.burst_bytes),
                   float(spec.request_overhead_bytes))
    actual = layout_cost(start, rows, row_bytes, stride, w, g, b, straddle).time_bytes(ov)
    ideal = row_cost(0, rows * row_bytes, w, g, b).time_bytes(ov)
    return max(1.0, actual / ideal)


def nd2nz_padding_factor(row_bytes: int, granule: int = 32) -> float:
    """Bytes an ND -> NZ copy writes per row (whole C0 blocks of ``granule`` bytes) over the
    payload: 1 when a row is a multiple of 32 B (16 fp16 elements), more for a ragged K or N."""
    if row_bytes <= 0:
        return 1.0
    return (-(-row_bytes // granule) * granule) / row_bytes


def region_layout(region: Region) -> tuple[int, int, int, int]:
    """(start offset, rows, row bytes, stride) of an engine ``Region`` (GM tensors start 512 B
    aligned in the memory system, so the offset inside the tensor decides the alignment)."""
    return int(region.offset), int(region.rows), int(region.row_bytes), int(region.stride)


def gm_side_factor(core: CoreDescriptor, src: Region, dst: Region, transform: str = "") -> float:
    """Layout factor of a DMA whose source or destination is in GM: the GM side's burst cost,
    times the NZ padding an nd2nz / dn2nz conversion writes into L1. 1.0 without a descriptor."""
    spec = getattr(core, "gm_bursts", None)
    if spec is None:
        return 1.0
    factor = 1.0
    for r in (src, dst):
        if r.buffer == "GM":
            factor = max(factor, layout_factor(spec, *region_layout(r),
                                               straddle=r is src and transform in NZ_TRANSFORMS))
    if transform in NZ_TRANSFORMS and src.buffer == "GM":
        factor *= nd2nz_padding_factor(int(src.row_bytes), int(spec.granule_bytes))
    return factor
