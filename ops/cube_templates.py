"""What a cube program's cores share (issue 14 item 3): one kernel's interned regions and
instructions (:class:`Interner`) and the recorded tiles the emitter replays (:class:`TileTemplate`:
a timing-only tile's instructions again, only its GM loads and FixPipe rebuilt)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npusim.engine.program import ProgramBuilder
from npusim.isa.operands import ITEMSIZE, Region
from npusim.ops.gm_matrix import GmMatrix, nz_window

if TYPE_CHECKING:
    from npusim.ops.cube_emitter import CubeEmitter


@dataclass(frozen=True)
class TileTemplate:
    """The instructions of one timing-only tile, split at its GM instructions: ``segments[i]``
    precedes ``gm[i]`` (an A or B load, or the FixPipe out), the last segment ends the tile;
    ``ca`` / ``cb`` / ``steps``: the L1 A / B loads and K steps the tile advances the emitter."""

    segments: tuple[tuple[Any, ...], ...]
    gm: tuple[Any, ...]
    ca: int
    cb: int
    steps: int

    @classmethod
    def record(cls, instrs: list[Any], ca: int, cb: int, steps: int) -> TileTemplate | None:
        """The template of a tile just emitted; None when it touches GM other than through
        the A / B loads and the FixPipe into GM that :meth:`replay` rebuilds."""
        from npusim.isa.instructions import DataCopy, FixPipe

        segments: list[tuple[Any, ...]] = []
        gm: list[Any] = []
        seg: list[Any] = []
        for ins in instrs:
            cls_ = type(ins)
            if cls_ is FixPipe:
                is_gm = True
                if (ins.writes[0].buffer != "GM" or len(ins.reads) != 1
                        or ins.reads[0].buffer == "GM" or ins.deq_scale is not None):
                    return None
            elif cls_ is DataCopy and ins.reads[0].buffer == "GM":
                is_gm = True
                if ins.writes[0].buffer == "GM" or ins.name not in (
                        "A GM->L1 nd2nz", "B GM->L1 nd2nz"):
                    return None
            else:
                is_gm = False
                if any(r.buffer == "GM" for r in (*ins.reads, *ins.writes)):
                    return None
            if is_gm:
                segments.append(tuple(seg))
                gm.append(ins)
                seg = []
            else:
                seg.append(ins)
        segments.append(tuple(seg))
        return cls(tuple(segments), tuple(gm), ca, cb, steps)

    def replay(self, em: CubeEmitter, a: GmMatrix, b: GmMatrix, out: GmMatrix, bm: int,
               bn: int, rm: int, rn: int) -> None:
        """Emit the tile at (bm, bn): the recorded instructions, each GM one rebuilt for this
        tile's windows exactly as :meth:`CubeEmitter._tile_emit` builds it."""
        t, bld, win, copy = em.t, em.bld, em.intern.window, em.intern.copy
        ko, bco, oco = em.offsets
        ja = jb = 0
        for seg, ins in zip(self.segments, self.gm, strict=False):
            bld.emit_many(seg)
            if ins.kind == "fix":
                bld.fixpipe(ins.reads[0], out.window(bm, rm, bn + oco, rn),
                            elements=ins.elements, out_dtype=ins.out_dtype, mode=ins.mode,
                            atomic=ins.atomic)
                continue
            dst = ins.writes[0]
            if ins.name.startswith("A"):
                src = win(a, bm, rm, ko + ja * t.base_k * t.step_ka, dst.shape[1])
                ja += 1
            elif b.transposed:
                src = win(b, bn + bco, rn, ko + jb * t.base_k * t.step_kb, dst.shape[0])
                jb += 1
            else:
                src = win(b, ko + jb * t.base_k * t.step_kb, dst.shape[0], bn + bco, rn)
                jb += 1
            copy(bld, src, dst, ins.name, ins.transform)
        bld.emit_many(self.segments[-1])
        em.ca += self.ca
        em.cb += self.cb
        em.step += self.steps
        em.tiles += 1


class Interner:
    """Shares the immutable regions and instructions a cube program repeats (issue 14 item 3).

    A matmul's cores run the same few L1 / L0 windows, copies, Mmads and flags tens of thousands
    of times, and cores in one block row load the same GM windows: each distinct value is built
    (and validated by the builder) once per kernel and the program lists hold that one object.
    Instructions are frozen and the engines never look at their identity, so runs are unchanged.
    Keys are the constructors' arguments (integers and strings); instruction keys name their
    interned regions by identity, which the value kept beside each instruction pins.
    """

    __slots__ = ("instrs", "regions", "tiles")
    templates = True  # replay timing-only tiles from TileTemplate (a subclass may turn it off)

    def __init__(self) -> None:
        self.regions: dict[tuple[Any, ...], Region] = {}
        self.instrs: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        # None: a tile shape the template cannot replay (TileTemplate.record)
        self.tiles: dict[tuple[Any, ...], TileTemplate | None] = {}

    def region(self, buffer: str, offset: int, shape: tuple[int, ...], dtype: str,
               tensor: str | None = None, stride: int | None = None) -> Region:
        key = (buffer, offset, shape, dtype, tensor, stride)
        r = self.regions.get(key)
        if r is None:
            r = self.regions[key] = Region(buffer, offset, shape, dtype, tensor, stride)
        return r

    def window(self, mat: GmMatrix, r0: int, rows: int, c0: int, cols: int) -> Region:
        """``mat.window(r0, rows, c0, cols)``, interned."""
        if mat.nz_rows:
            w = nz_window(mat, r0, rows, c0, cols)
            return self.region("GM", w.offset, w.shape, w.dtype, w.tensor, w.row_stride_bytes)
        off = mat.offset + r0 * mat.row_bytes + math.ceil(c0 * ITEMSIZE[mat.dtype])
        return self.region("GM", off, (rows, cols), mat.dtype, mat.tensor, mat.row_bytes)

    def copy(self, bld: ProgramBuilder, src: Region, dst: Region, name: str,
             transform: str = "") -> None:
        """``bld.dma(src, dst, name=name, transform=transform)``, the instruction interned."""
        key = (id(bld.core), id(src), id(dst), name, transform)
        hit = self.instrs.get(key)
        if hit is not None and hit[0] is src and hit[1] is dst:
            bld.emit(hit[2])
        else:
            self.instrs[key] = (src, dst, bld.dma(src, dst, name=name, transform=transform))

    def mmad(self, bld: ProgramBuilder, a: Region, b: Region, c: Region, m: int, k: int, n: int,
             dtype: str, accumulate: bool, bias: Region | None, accumulation: str | None,
             hf32: str = "") -> None:
        """``bld.mmad(...)`` (no ``fn``), the instruction interned."""
        key = (id(bld.core), id(a), id(b), id(c), m, k, n, dtype, accumulate, id(bias),
               accumulation, hf32)
        hit = self.instrs.get(key)
        if hit is not None and (r := hit[0])[0] is a and r[1] is b and r[2] is c and r[3] is bias:
            bld.emit(hit[1])
        else:
            self.instrs[key] = ((a, b, c, bias), bld.mmad(
                a, b, c, m, k, n, dtype, accumulate=accumulate, bias=bias,
                accumulation=accumulation, hf32=hf32))
