"""Test helper: where ``ProgramBuilder.alloc`` places a layout (a list of ``Buffer`` entries)."""

from __future__ import annotations

from typing import Any

from npusim.ops.weight_quant_batchmatmul.tiling import layout_bytes


def placed(layout: list[Any], align: int) -> list[tuple[str, int, int]]:
    """(name, offset, bytes) of ``layout`` allocated in order, each start ``align``-aligned: a
    core's ``allocations`` entry for that buffer, computed without the builder."""
    out, end = [], 0
    for name, shape, dt in layout:
        start = -(-end // align) * align
        size = layout_bytes([(name, shape, dt)], 1)
        out.append((name, start, size))
        end = start + size
    return out
