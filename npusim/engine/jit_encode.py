"""Lowered streams as flat numpy arrays, the input of the compiled event loop (:mod:`jit_loop`).

:func:`encode` turns :class:`~npusim.engine.fast_lower.Lowered` (tuples per instruction) into
integer and float arrays: one row per distinct lowered tuple (programs share them), a program
array of row indices per distinct stream (pipes of a core grid share streams), a table of GM
accesses, a table of L2 page patterns (line masks as 64-bit words, any number per page) and a
table of in-flight specs. Every value keeps its Python value exactly (integers below 2**53 where
the loop does float arithmetic on them), so the compiled loop computes the same floats.

Only what the compiled loop implements is encoded: timing-only runs whose L2 cannot evict
(:func:`npusim.engine.fast.cannot_evict`), without cross-core flags or lowered errors;
:func:`encode` returns None otherwise and the caller runs the Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from npusim.engine.fast_lower import (
    K_BARRIER,
    K_DMA,
    K_FIX,
    K_LOCAL,
    K_SET,
    K_WAIT,
    Lowered,
)
from npusim.engine.memory import MemorySystem
from npusim.engine.timing import in_flight_round_trips

_EXACT = 1 << 53  # integers the loop turns into floats stay exact below this


@dataclass
class Encoded:
    """The arrays of one run (see the module docstring); field names say what a row holds."""

    # per pipe
    core_of: np.ndarray
    pipe_base: np.ndarray  # start of the pipe's stream in ``prog``
    pipe_len: np.ndarray
    prog: np.ndarray  # op row per instruction, streams one after another (shared ones once)
    # per op row
    op_kind: np.ndarray
    op_i0: np.ndarray  # K_LOCAL idle; K_SET duration; K_DMA pipelined (0/1)
    op_i1: np.ndarray  # K_LOCAL busy; K_SET / K_WAIT flag slot base
    op_f0: np.ndarray  # K_DMA local cycles; K_FIX idle cycles
    op_f1: np.ndarray  # K_DMA in-flight layout factor; K_FIX busy cycles
    op_f2: np.ndarray  # K_FIX clock scale
    op_acc0: np.ndarray  # first access row
    op_nacc: np.ndarray
    op_ifl: np.ndarray  # in-flight spec row, -1 none
    # per access row
    acc_first: np.ndarray
    acc_pat: np.ndarray
    acc_write: np.ndarray
    acc_alloc: np.ndarray
    acc_atomic: np.ndarray
    acc_nb: np.ndarray
    # per pattern row: its entries pat_e0 .. pat_e0 + pat_ne
    pat_e0: np.ndarray
    pat_ne: np.ndarray
    ent_rel: np.ndarray
    ent_nb: np.ndarray
    ent_bits: np.ndarray
    ent_mask: np.ndarray  # (entries, words) uint64
    # per in-flight spec row
    ifl_hit: np.ndarray  # request latency (round trip of a hit)
    ifl_miss: np.ndarray  # hit + miss latency
    ifl_stream: np.ndarray  # effective round trip of missed bytes
    ifl_out: np.ndarray  # outstanding bytes
    ifl_lone: np.ndarray  # lone copies bound (0/1)
    present: np.ndarray  # (pages, words) uint64: the L2's present lines at the start
    nslots: int
    n_waits: int  # K_WAIT instructions over all pipes (an upper bound of flows)


def _words(mask: int, w: int) -> list[int]:
    return [(mask >> (64 * i)) & 0xFFFFFFFFFFFFFFFF for i in range(w)]


#: id(pattern) -> (pattern, words, (rel, bytes, lines, masks) arrays): page patterns recur in the
#: runs of a sweep (``fast_lower.pattern_entries`` memoises them for the process), so each is
#: turned into arrays once; the entry holds the pattern, so its id is not reused while cached
_PATTERNS: dict[int, tuple[Any, int, tuple[np.ndarray, ...]]] = {}
_PATTERNS_MAX = 65536


def _pattern_arrays(pat: tuple[tuple[int, int, int, int], ...], w: int
                    ) -> tuple[np.ndarray, ...]:
    got = _PATTERNS.get(id(pat))
    if got is not None and got[0] is pat and got[1] == w:
        return got[2]
    if len(_PATTERNS) >= _PATTERNS_MAX:
        _PATTERNS.clear()
    ent = np.array([(e[0], e[2], e[3]) for e in pat], dtype=np.int64).reshape(-1, 3)
    if w == 1:
        masks = np.array([e[1] for e in pat], dtype=np.uint64).reshape(-1, 1)
    else:
        masks = np.array([_words(e[1], w) for e in pat], dtype=np.uint64).reshape(-1, w)
    arrs = (ent[:, 0].copy(), ent[:, 1].copy(), ent[:, 2].copy(), masks)
    _PATTERNS[id(pat)] = (pat, w, arrs)
    return arrs


def encode(low: Lowered, mem: MemorySystem) -> Encoded | None:
    """The arrays of ``low`` run on ``mem`` (its L2 as the run starts), or None when the
    compiled loop does not implement something the streams hold (the caller runs Python)."""
    l2 = mem.l2
    w = max(1, -(-(l2.page_bytes // l2.line_bytes) // 64))
    miss_lat = mem.miss_latency
    ops: dict[int, int] = {}  # id(lowered tuple) -> op row
    kind: list[int] = []
    i0: list[int] = []
    i1: list[int] = []
    f0: list[float] = []
    f1: list[float] = []
    f2: list[float] = []
    a0: list[int] = []
    na: list[int] = []
    ifl_of: list[int] = []
    acc_rows: list[tuple[int, int, int, int, int, int]] = []
    pats: dict[int, int] = {}  # id(pattern) -> row
    pat_e0: list[int] = []
    pat_ne: list[int] = []
    ents: list[tuple[np.ndarray, ...]] = []
    n_ents = 0
    specs: dict[int, int] = {}
    spec_rows: list[tuple[float, float, float, float, int]] = []
    max_page = max(l2.pages, default=-1)

    def pattern(pat: tuple[tuple[int, int, int, int], ...]) -> int:
        nonlocal n_ents
        row = pats.get(id(pat))
        if row is None:
            row = pats[id(pat)] = len(pat_e0)
            pat_e0.append(n_ents)
            pat_ne.append(len(pat))
            ents.append(_pattern_arrays(pat, w))
            n_ents += len(pat)
        return row

    def accesses(accs: Any) -> tuple[int, int]:
        nonlocal max_page
        start = len(acc_rows)
        for (first, pat), write, alloc, atomic, nb in accs:
            last = first + (pat[-1][0] if pat else 0)
            if last > max_page:
                max_page = last
            acc_rows.append((first, pattern(pat), int(write), int(alloc), int(atomic), nb))
        return start, len(acc_rows) - start

    def spec(ifl: Any) -> int:
        sp = ifl[0]
        row = specs.get(id(sp))
        if row is None:
            hit_rt, miss_rt, stream_rt = in_flight_round_trips(sp, miss_lat)
            row = specs[id(sp)] = len(spec_rows)
            spec_rows.append((float(hit_rt), float(miss_rt), float(stream_rt),
                              float(sp.outstanding_bytes),
                              int(bool(getattr(sp, "lone_copies", True)))))
        return row

    def op(t: tuple[Any, ...]) -> int | None:
        k = t[0]
        c0 = c1 = 0
        d0 = d1 = d2 = 0.0
        s, n, sp = 0, 0, -1
        if k in (K_LOCAL, K_SET):
            c0, c1 = t[1], t[2]
        elif k == K_WAIT:
            c1 = t[1]
        elif k == K_DMA:
            d0 = float(t[1])
            s, n = accesses(t[2])
            if t[3] is not None:
                sp = spec(t[3])
                d1 = float(t[3][1])
            c0 = int(bool(t[4]))
        elif k == K_FIX:
            d0, d1, d2 = float(t[1]), float(t[2]), float(t[4])
            s, n = accesses(t[3])
        elif k != K_BARRIER:
            return None  # cross-core flags, lowered errors: the Python loop
        if not (isinstance(c0, int) and isinstance(c1, int)) or max(abs(d0), abs(d1)) >= _EXACT:
            return None
        row = len(kind)
        kind.append(k)
        i0.append(c0)
        i1.append(c1)
        f0.append(d0)
        f1.append(d1)
        f2.append(d2)
        a0.append(s)
        na.append(n)
        ifl_of.append(sp)
        return row

    streams: dict[int, int] = {}  # id(stream) -> base in prog
    chunks: list[np.ndarray] = []
    waits: dict[int, int] = {}  # stream base -> its K_WAIT count
    nprog = 0
    base: list[int] = []
    get = ops.get
    for s_ in low.streams:
        b = streams.get(id(s_))
        if b is None:
            rows: list[int | None] = list(map(get, map(id, s_)))
            if None in rows:  # tuples not seen yet (in a pipe's stream in order)
                for j, t in enumerate(s_):
                    if rows[j] is None:
                        r = get(id(t))
                        if r is None:
                            r = op(t)
                            if r is None:
                                return None
                            ops[id(t)] = r
                        rows[j] = r
            b = streams[id(s_)] = nprog
            nprog += len(rows)
            chunks.append(np.array(rows, dtype=np.int64))
            waits[b] = -1
        base.append(b)
    acc = np.array(acc_rows, dtype=np.int64).reshape(-1, 6)
    op_kind = np.array(kind, dtype=np.int64)
    for b, c in zip(list(waits), chunks, strict=True):
        waits[b] = int((op_kind[c] == K_WAIT).sum())
    n_waits = sum(waits[b] for b in base)

    def cat(i: int, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([e[i] for e in ents]) if ents else np.zeros(shape, dtype)
    present = np.zeros((max_page + 1, w), dtype=np.uint64)
    for page, e in l2.pages.items():
        present[page] = _words(e[0], w)
    spc = spec_rows or [(0.0, 0.0, 0.0, 1.0, 0)]
    i64 = np.int64
    return Encoded(
        core_of=np.array([k[0] for k in low.pipe_keys], dtype=i64),
        pipe_base=np.array(base, dtype=i64),
        pipe_len=np.array([len(s_) for s_ in low.streams], dtype=i64),
        prog=np.concatenate(chunks) if chunks else np.zeros(0, i64),
        op_kind=op_kind, op_i0=np.array(i0, dtype=i64),
        op_i1=np.array(i1, dtype=i64), op_f0=np.array(f0), op_f1=np.array(f1),
        op_f2=np.array(f2), op_acc0=np.array(a0, dtype=i64), op_nacc=np.array(na, dtype=i64),
        op_ifl=np.array(ifl_of, dtype=i64),
        acc_first=acc[:, 0].copy(), acc_pat=acc[:, 1].copy(), acc_write=acc[:, 2].copy(),
        acc_alloc=acc[:, 3].copy(), acc_atomic=acc[:, 4].copy(), acc_nb=acc[:, 5].copy(),
        pat_e0=np.array(pat_e0, dtype=i64), pat_ne=np.array(pat_ne, dtype=i64),
        ent_rel=cat(0, i64, (0,)), ent_nb=cat(1, i64, (0,)), ent_bits=cat(2, i64, (0,)),
        ent_mask=cat(3, np.uint64, (0, w)),
        ifl_hit=np.array([r[0] for r in spc]), ifl_miss=np.array([r[1] for r in spc]),
        ifl_stream=np.array([r[2] for r in spc]), ifl_out=np.array([r[3] for r in spc]),
        ifl_lone=np.array([r[4] for r in spc], dtype=i64),
        present=present, nslots=max(1, low.flag_slots), n_waits=n_waits)
