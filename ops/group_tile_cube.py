"""The cube pipeline of the per-group weight_quant_batchmatmul kernels (MsdGroup, SplitK): the
A operand resident in L1, one B tile per group in L1 (double-buffered), base blocks of
``base_k`` x ``base_n`` through L0A / L0B, each column block accumulated in L0C and drained by
one FixPipe. Each hand-off is a :class:`~npusim.ops.program_stages.PingPong` (MTE2 -> MTE1 for
the L1 tiles, MTE1 -> M for the L0 blocks, M -> FIX for the accumulator), so the flags are the
stage's, not numbered at each site."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from npusim.engine.program import ProgramBuilder
from npusim.isa.operands import ITEMSIZE, Region
from npusim.ops.program_stages import PingPong

if TYPE_CHECKING:
    from npusim.ops.weight_quant_batchmatmul.tiling import CubeBlock


class GroupTileCube:
    """One AIC's group-tile matmul stage. ``l0a`` / ``l0b``: the L0 buffers (one, or two for
    ping-pong); ``l0c``: the accumulators (one, or two when FixPipe drains one while the next
    column block accumulates); ``b1_ids``: the flag ids of the two L1 B-tile buffers."""

    def __init__(self, b: ProgramBuilder, l0a: list[Region], l0b: list[Region],
                 l0c: list[Region], b1_ids: tuple[int, int] = (2, 3)) -> None:
        if len(l0a) != len(l0b):
            raise ValueError(f"L0A has {len(l0a)} buffers and L0B {len(l0b)}: one count each")
        self.b, self.l0a, self.l0b, self.l0c = b, l0a, l0b, l0c
        self.b1q = PingPong(b, "MTE2", "MTE1", b1_ids)
        self.l0q = PingPong(b, "MTE1", "M", tuple(range(len(l0a))))
        self.l0cq = PingPong(b, "M", "FIX", tuple(range(len(l0c))))

    @classmethod
    def allocate(
        cls, b: ProgramBuilder, cb: CubeBlock, a_shape: tuple[int, int], a_name: str,
        tile_shape: tuple[int, int], tile_dtype: str, dtype: str, acc_dtype: str,
        l0_buffers: int,
    ) -> tuple[GroupTileCube, Region, list[Region]]:
        """The stage with its buffers, allocated in this order: in L1 the resident A operand
        (``a_shape``, named ``a_name``) and the two B tiles (``B1_i``); ``l0_buffers`` L0A and
        L0B blocks of the cube block ``cb`` (``A0_i`` / ``B0_i``, or ``A0`` / ``B0`` for one);
        one L0C accumulator, two when ``cb.db_l0c > 1`` (``C0_i``). Returns the stage, the A
        buffer and the tile buffers."""
        a1 = b.alloc("L1", a_shape, dtype, a_name)
        b1 = [b.alloc("L1", tile_shape, tile_dtype, f"B1_{i}") for i in range(2)]

        def names(p: str) -> list[str]:
            return [f"{p}_{i}" for i in range(l0_buffers)] if l0_buffers > 1 else [p]

        l0a = [b.alloc("L0A", (cb.base_m, cb.base_k), dtype, n) for n in names("A0")]
        l0b = [b.alloc("L0B", (cb.base_k, cb.base_n), dtype, n) for n in names("B0")]
        l0c = [b.alloc("L0C", (cb.base_m, cb.base_n), acc_dtype, f"C0_{i}")
               for i in range(2 if cb.db_l0c > 1 else 1)]
        return cls(b, l0a, l0b, l0c), a1, b1

    def load_resident(self, src: Region, a1: Region, name: str) -> None:
        """The A operand GM -> L1 (ND2NZ) into ``a1`` once, handed to MTE1 (MTE2 -> MTE1 0)."""
        self.b.dma(src, Region("L1", a1.offset, src.shape, src.dtype), name=name,
                   transform="nd2nz")
        self.b.sync("MTE2", "MTE1", 0)

    def load_tile(self, copy: Callable[[int], object]) -> int:
        """The next L1 B-tile buffer: wait until MTE1 released it, ``copy(index)`` (the caller's
        GM -> L1 DMA into that buffer), hand it to MTE1. Returns the buffer index."""
        ib = self.b1q.acquire()
        copy(ib)
        self.b1q.ready(ib)
        return ib

    def free_tile(self, ib: int, later: int) -> None:
        """MTE1 is done with tile buffer ``ib``: released when one of the ``later`` tiles still
        to load will reuse it (the two buffers alternate)."""
        if later >= len(self.b1q.ids):
            self.b1q.release(ib)

    def tile_product(
        self, a1: Region, rows: int, ka0: int, b1: Region, depth: int, width: int, base_n: int,
        base_k: int, acc_dtype: str, *, drain: Callable[[Region, int, int], object],
        accumulation: str | None = None,
    ) -> None:
        """``rows`` of the resident L1 A operand ``a1`` (its K columns from ``ka0``) times the L1
        B tile at ``b1`` (``depth`` x ``width``, row pitch ``width``), in column blocks of
        ``base_n``; ``drain(accumulator, col0, cols)`` issues each block's FixPipe."""
        dt, bdt = a1.dtype, b1.dtype
        a_pitch = math.ceil(a1.shape[1] * ITEMSIZE[dt])
        b_pitch = math.ceil(width * ITEMSIZE[bdt])
        for bn in range(0, width, base_n):
            rn = min(base_n, width - bn)

            def a_at(kk: int, rk: int) -> Region:
                return Region("L1", a1.offset + math.ceil((ka0 + kk) * ITEMSIZE[dt]), (rows, rk),
                              dt, row_stride_bytes=a_pitch)

            def b_at(kk: int, rk: int, bn: int = bn, rn: int = rn) -> Region:
                return Region("L1", b1.offset + math.ceil((kk * width + bn) * ITEMSIZE[bdt]),
                              (rk, rn), bdt, row_stride_bytes=b_pitch)

            def drain_block(acc: Region, bn: int = bn, rn: int = rn) -> None:
                drain(acc, bn, rn)

            self.column_block(rows, rn, depth, base_k, dt, acc_dtype, a_at=a_at, b_at=b_at,
                              drain=drain_block, accumulation=accumulation)

    def column_block(
        self, rows: int, cols: int, depth: int, base_k: int, dtype: str, acc_dtype: str, *,
        a_at: Callable[[int, int], Region], b_at: Callable[[int, int], Region],
        drain: Callable[[Region], object], accumulation: str | None = None,
    ) -> None:
        """``rows`` x ``cols`` of the output over ``depth`` of K in base-K steps: per step the
        L1 windows ``a_at(k, width)`` / ``b_at(k, width)`` into L0, one Mmad (the first of the
        block overwrites the accumulator, so it waits until FixPipe drained it); then
        ``drain(accumulator)`` issues the caller's FixPipe."""
        b = self.b
        cbuf = -1
        for j, kk in enumerate(range(0, depth, base_k)):
            rk = min(base_k, depth - kk)
            lb = self.l0q.acquire()
            a0 = Region("L0A", self.l0a[lb].offset, (rows, rk), dtype)
            b0 = Region("L0B", self.l0b[lb].offset, (rk, cols), dtype)
            b.dma(a_at(kk, rk), a0, name="L1->L0A")
            b.dma(b_at(kk, rk), b0, name="L1->L0B")
            self.l0q.ready(lb)
            if j == 0:
                cbuf = self.l0cq.acquire()
            acc = Region("L0C", self.l0c[cbuf].offset, (rows, cols), acc_dtype)
            b.mmad(a0, b0, acc, rows, rk, cols, dtype, accumulate=j > 0,
                   accumulation=accumulation)
            self.l0q.release(lb)
        self.l0cq.ready(cbuf)
        drain(Region("L0C", self.l0c[cbuf].offset, (rows, cols), acc_dtype))
        self.l0cq.release(cbuf)
