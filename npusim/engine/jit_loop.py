"""The compiled event loop (``engine="jit"``, opt-in; needs numba, the ``jit`` extra).

The algorithm of :func:`npusim.engine.fast._event_loop` in timing-only mode, compiled by numba
over the arrays of :mod:`npusim.engine.jit_encode`: the same resumption order (heap keys packed
from (time, simpy insertion counter, pipe), the counter incremented at the same points, pipes
started in creation order), the same float arithmetic in the same order for the shared channels
(``SharedChannel.reserve``), the in-flight bound (``timing.in_flight_cycles``) and DataCopy /
FixPipe ends, and the no-evict L2 of ``fast.l2_read_write_no_evict`` (a page's present lines as
64-bit words). So cycles, records, flows and traffic are the Python loop's, element for element
(tests/test_jit_engine.py).

Where it applies: timing-only runs whose L2 cannot evict, without cross-core flags. Anything
else - values or race checks, an evicting L2, cross-core flags, a lowered error, a flag set twice,
a deadlock, a time beyond the packed key - runs the Python loop, which is exact by construction
(and hands failing programs to the reference engine as before).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine import fast
from npusim.engine.jit_encode import Encoded, encode

try:
    import numba
except ImportError as exc:  # pragma: no cover - the extra is part of [test]
    raise ImportError(
        "engine='jit' needs numba: install the 'jit' extra (pip install 'npusim[jit]')"
    ) from exc

if TYPE_CHECKING:
    from npusim.engine.fast_lower import Lowered
    from npusim.engine.memory import MemorySystem
    from npusim.engine.program import Kernel
    from npusim.hw.schema import SocDescriptor

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return int((x * _H01) >> np.uint64(56))


@numba.njit(cache=True, inline="always")
def _sift_down(heap: np.ndarray, n: int, pos: int) -> None:
    """Restore the heap below ``pos`` (its entry may be too large)."""
    item = heap[pos]
    while True:
        c = 2 * pos + 1
        if c >= n:
            break
        if c + 1 < n and heap[c + 1] < heap[c]:
            c += 1
        if heap[c] < item:
            heap[pos] = heap[c]
            pos = c
        else:
            break
    heap[pos] = item


@numba.njit(cache=True, inline="always")
def _push(heap: np.ndarray, n: int, item: int) -> int:
    pos = n
    while pos > 0:
        par = (pos - 1) >> 1
        if item < heap[par]:
            heap[pos] = heap[par]
            pos = par
        else:
            break
    heap[pos] = item
    return n + 1


@numba.njit(cache=True, inline="always")
def _l2_read(first: int, pi: int, alloc: bool, pat_e0: np.ndarray, pat_ne: np.ndarray,
             ent_rel: np.ndarray, ent_nb: np.ndarray, ent_bits: np.ndarray,
             ent_mask: np.ndarray, present: np.ndarray, lb: int) -> tuple[int, int]:
    """(hit bytes, missed bytes) of a read, allocating the missed lines when ``alloc``."""
    hit = 0
    miss = 0
    nw = present.shape[1]
    for e in range(pat_e0[pi], pat_e0[pi] + pat_ne[pi]):
        page = first + ent_rel[e]
        n = 0
        for w in range(nw):
            n += _popcount(present[page, w] & ent_mask[e, w])
        bits = ent_bits[e]
        if n == bits:  # every line present
            hit += ent_nb[e]
        else:
            hit += ent_nb[e] * n // bits
            miss += (bits - n) * lb
            if alloc:
                for w in range(nw):
                    present[page, w] |= ent_mask[e, w]
    return hit, miss


@numba.njit(cache=True, inline="always")
def _l2_write(first: int, pi: int, pat_e0: np.ndarray, pat_ne: np.ndarray,
              ent_rel: np.ndarray, ent_mask: np.ndarray, present: np.ndarray) -> None:
    nw = present.shape[1]
    for e in range(pat_e0[pi], pat_e0[pi] + pat_ne[pi]):
        page = first + ent_rel[e]
        for w in range(nw):
            present[page, w] |= ent_mask[e, w]


@numba.njit(cache=True, inline="always")
def _reserve(ch: np.ndarray, c: int, now: int, nbytes: int, bpc: float, ovh: float) -> float:
    """SharedChannel.reserve of channel ``c`` (ch[2c] free at, ch[2c + 1] busy cycles)."""
    if nbytes <= 0:
        return float(now)
    start = float(now)
    if ch[2 * c] > start:
        start = ch[2 * c]
    dur = (nbytes + ovh) / bpc  # one request: overhead x 1
    ch[2 * c] = start + dur
    ch[2 * c + 1] += dur
    return float(ch[2 * c])


@numba.njit(cache=True)
def _loop(launch: np.ndarray, core_of: np.ndarray, pipe_base: np.ndarray,
          pipe_len: np.ndarray, prog: np.ndarray, op_kind: np.ndarray, op_i0: np.ndarray,
          op_i1: np.ndarray, op_f0: np.ndarray, op_f1: np.ndarray, op_f2: np.ndarray,
          op_acc0: np.ndarray, op_nacc: np.ndarray, op_ifl: np.ndarray,
          acc_first: np.ndarray, acc_pat: np.ndarray, acc_write: np.ndarray,
          acc_alloc: np.ndarray, acc_atomic: np.ndarray, acc_nb: np.ndarray,
          pat_e0: np.ndarray, pat_ne: np.ndarray, ent_rel: np.ndarray, ent_nb: np.ndarray,
          ent_bits: np.ndarray, ent_mask: np.ndarray, ifl_hit: np.ndarray,
          ifl_miss: np.ndarray, ifl_stream: np.ndarray, ifl_out: np.ndarray,
          ifl_lone: np.ndarray, present: np.ndarray, nslots: int, lb: int, hit_lat: int,
          miss_lat: int, ch: np.ndarray, hbm_bpc: float, hbm_ovh: float, l2_bpc: float,
          l2_ovh: float, pb: int, ob: int, rec_pipe: np.ndarray, rec_start: np.ndarray,
          rec_end: np.ndarray, hb_key: np.ndarray, hb_val: np.ndarray, fl: np.ndarray,
          busy: np.ndarray, busy_first: np.ndarray, stats: np.ndarray, counts: np.ndarray
          ) -> int:
    """The event loop; 0 when done, 1 when the Python loop must run it (outputs then partial).
    counts: records, HBM records, flows, pipes with busy time."""
    npipes = pipe_len.shape[0]
    pmask = (1 << pb) - 1
    tlim = 1 << (62 - ob)
    one = 1 << pb
    idx = np.zeros(npipes, np.int64)
    state = np.zeros(npipes, np.int64)
    started = np.zeros(npipes, np.int64)
    last_end = np.full(npipes, -1, np.int64)
    hbm_of = np.zeros(npipes, np.int64)
    flag_set = np.zeros(nslots, np.bool_)
    flag_at = np.zeros(nslots, np.int64)
    w_head = np.full(nslots, -1, np.int64)
    w_tail = np.full(nslots, -1, np.int64)
    w_next = np.full(npipes, -1, np.int64)
    heap = np.zeros(npipes + 2, np.int64)
    hn = 0
    gr = 0
    gw = 0
    l2hit = 0
    l2miss = 0
    hr = 0
    nrec = 0
    nhb = 0
    nfl = 0
    nbusy = 0
    seq = one
    init = 0
    nxt = -1
    while True:
        if nxt >= 0:
            if hn > 0 and heap[0] < nxt:  # heappushpop
                key = heap[0]
                heap[0] = nxt
                _sift_down(heap, hn, 0)
            else:
                key = nxt
            nxt = -1
            p = key & pmask
            now = key >> ob
        elif init < npipes:
            p = init
            init += 1
            now = 0
            lc = launch[core_of[p]]
            if lc:
                if lc >= tlim:
                    return 1
                hn = _push(heap, hn, (lc << ob) | seq | p)
                seq += one
                continue
        elif hn > 0:
            key = heap[0]
            hn -= 1
            if hn > 0:
                heap[0] = heap[hn]
                _sift_down(heap, hn, 0)
            p = key & pmask
            now = key >> ob
        else:
            break
        i = idx[p]
        pbase = pipe_base[p]
        st = state[p]
        core = core_of[p]
        if st == 1:
            o = prog[pbase + i]
            k0 = op_kind[o]
            rec_pipe[nrec] = p
            rec_start[nrec] = started[p]
            rec_end[nrec] = now
            nrec += 1
            if k0 <= 2:  # K_LOCAL, K_DMA, K_FIX: timed work (pipe_busy)
                b = busy[p]
                if b == 0:
                    busy_first[nbusy] = p
                    nbusy += 1
                busy[p] = b + now - started[p]
                if k0 == 1 and hbm_of[p] != 0:
                    hb_key[nhb] = (p << 32) | i
                    hb_val[nhb] = hbm_of[p]
                    nhb += 1
            if k0 == 3:  # K_SET
                last_end[p] = now
                slot = op_i1[o] + core
                if flag_set[slot]:
                    return 1  # set twice without a wait
                flag_set[slot] = True
                flag_at[slot] = now
                w = w_head[slot]
                if w >= 0:
                    while w >= 0:
                        hn = _push(heap, hn, (now << ob) | seq | w)
                        seq += one
                        w = w_next[w]
                    w_head[slot] = -1
            elif k0 != 7:
                last_end[p] = now
            i += 1
        elif st == 2:
            slot = op_i1[prog[pbase + i]] + core
            flag_set[slot] = False
            fl[nfl, 0] = p
            fl[nfl, 1] = i
            fl[nfl, 2] = flag_at[slot]
            fl[nfl, 3] = now
            nfl += 1
            w_head[slot] = -1
            rec_pipe[nrec] = p
            rec_start[nrec] = started[p]
            rec_end[nrec] = now
            nrec += 1
            i += 1
        n = pipe_len[p]
        t = -1
        while i < n:
            o = prog[pbase + i]
            k0 = op_kind[o]
            if k0 == 5:  # K_WAIT
                slot = op_i1[o] + core
                if flag_set[slot]:
                    flag_set[slot] = False
                    fl[nfl, 0] = p
                    fl[nfl, 1] = i
                    fl[nfl, 2] = flag_at[slot]
                    fl[nfl, 3] = now
                    nfl += 1
                    w_head[slot] = -1
                    rec_pipe[nrec] = p
                    rec_start[nrec] = now
                    rec_end[nrec] = now
                    nrec += 1
                    i += 1
                    continue
                w_next[p] = -1
                if w_head[slot] < 0:
                    w_head[slot] = p
                else:
                    w_next[w_tail[slot]] = p
                w_tail[slot] = p
                st = 2
                break
            st = 1
            if k0 == 3:  # K_SET
                t = now + op_i0[o]
                break
            if k0 == 0:  # K_LOCAL
                t = now + (op_i0[o] if now > last_end[p] else op_i1[o])
                break
            if k0 == 1 or k0 == 2:  # K_DMA, K_FIX
                dma = k0 == 1
                piped = op_i0[o] != 0  # (DMA) issued behind another copy: latency hidden
                s = op_ifl[o]  # (DMA) in-flight spec row, -1 none
                end = float(now) + op_f0[o] if dma else 0.0
                h = 0
                fix_end = 0
                fnow = float(now)
                for a in range(op_acc0[o], op_acc0[o] + op_nacc[o]):
                    first = acc_first[a]
                    pi = acc_pat[a]
                    nb = acc_nb[a]
                    write = acc_write[a] != 0
                    atomic = acc_atomic[a] != 0
                    if not write:
                        hit, miss = _l2_read(first, pi, acc_alloc[a] != 0, pat_e0, pat_ne,
                                             ent_rel, ent_nb, ent_bits, ent_mask, present, lb)
                        gr += nb
                        l2hit += hit
                    elif atomic:  # read-modify-write: absent lines fetched, then dirtied
                        hit, miss = _l2_read(first, pi, True, pat_e0, pat_ne, ent_rel, ent_nb,
                                             ent_bits, ent_mask, present, lb)
                        _l2_write(first, pi, pat_e0, pat_ne, ent_rel, ent_mask, present)
                        gw += nb
                    else:
                        _l2_write(first, pi, pat_e0, pat_ne, ent_rel, ent_mask, present)
                        miss = 0
                        gw += nb
                    e = fnow
                    if miss:
                        l2miss += miss
                        hr += miss
                        e = _reserve(ch, 0, now, miss, hbm_bpc, hbm_ovh)
                        if e < fnow:
                            e = fnow
                    e2 = _reserve(ch, 1, now, nb * 2 if atomic else nb, l2_bpc, l2_ovh)
                    if e2 > e:
                        e = e2
                    if dma:
                        if not piped:  # a pipelined copy's latency hides behind the last one
                            e += hit_lat + miss_lat if miss else hit_lat
                        if e > end:
                            end = e
                        if miss and not write and s >= 0:  # bytes in flight
                            if not (piped or ifl_lone[s] != 0):
                                c = 0.0
                            else:
                                mi = miss if miss < nb else nb
                                c = (0.0 if piped else ifl_miss[s]) + op_f1[o] * (
                                    mi * ifl_stream[s] + float((nb - mi) * int(ifl_hit[s]))
                                ) / ifl_out[s]
                            e = fnow + c
                            if e > end:
                                end = e
                        h += miss
                    else:
                        c2 = int(np.ceil(e - now)) + (hit_lat + miss_lat if miss else hit_lat)
                        if c2 > fix_end:
                            fix_end = c2
                if dma:
                    d = int(np.ceil(end - now - 1e-9))
                    t = now + (d if d > 1 else 1)
                    hbm_of[p] = h
                else:
                    cyc = op_f0[o] if now > last_end[p] else op_f1[o]
                    if fix_end > cyc:
                        cyc = float(fix_end)
                    d = int(np.ceil(cyc * op_f2[o]))
                    t = now + (d if d > 1 else 1)
                break
            if k0 == 7:  # K_BARRIER
                t = now + 1
                break
            return 1  # not encoded
        idx[p] = i
        state[p] = st
        started[p] = now
        if t >= 0:
            if t >= tlim:
                return 1
            k = (t << ob) | seq | p
            seq += one
            if init < npipes:
                hn = _push(heap, hn, k)
            else:
                nxt = k
    for q in range(npipes):
        if idx[q] < pipe_len[q]:
            return 1  # deadlock: the reference names the stuck waits
    stats[0] = gr
    stats[1] = gw
    stats[2] = l2hit
    stats[3] = l2miss
    stats[4] = hr
    counts[0] = nrec
    counts[1] = nhb
    counts[2] = nfl
    counts[3] = nbusy
    return 0


def _array(code: str, a: np.ndarray) -> array[int]:
    out = array(code)
    out.frombytes(a.tobytes())
    return out


def run_encoded(enc: Encoded, mem: MemorySystem, launch: list[int]
                ) -> tuple[int, fast.Records, list[tuple[Any, ...]]] | None:
    """The compiled loop over ``enc``: (cycles, Records, flows) as ``fast._event_loop`` returns
    them, ``mem``'s channels and stats updated as it updates them; None when the Python loop
    must run instead (``mem`` then unchanged)."""
    npipes = len(enc.pipe_len)
    pb = max(1, npipes.bit_length())
    total = int(enc.pipe_len.sum())
    ob = pb + max(1, (total + npipes + 2).bit_length())  # the counter never reaches that
    if ob > 60:
        return None
    nrec = total
    rec_pipe = np.zeros(nrec, np.uint32)
    rec_start = np.zeros(nrec, np.int64)
    rec_end = np.zeros(nrec, np.int64)
    hb_key = np.zeros(max(1, total), np.int64)
    hb_val = np.zeros_like(hb_key)
    fl = np.zeros((max(1, enc.n_waits), 4), np.int64)
    busy = np.zeros(npipes, np.int64)
    busy_first = np.zeros(npipes, np.int64)
    stats = np.zeros(5, np.int64)
    counts = np.zeros(4, np.int64)
    hbm, l2c = mem.hbm, mem.l2_channel
    ch = np.array([hbm.free_at, hbm.busy_cycles, l2c.free_at, l2c.busy_cycles])
    present = enc.present.copy()
    status = _loop(
        np.asarray(launch, dtype=np.int64), enc.core_of, enc.pipe_base, enc.pipe_len, enc.prog,
        enc.op_kind, enc.op_i0, enc.op_i1, enc.op_f0, enc.op_f1, enc.op_f2, enc.op_acc0,
        enc.op_nacc, enc.op_ifl, enc.acc_first, enc.acc_pat, enc.acc_write, enc.acc_alloc,
        enc.acc_atomic, enc.acc_nb, enc.pat_e0, enc.pat_ne, enc.ent_rel, enc.ent_nb,
        enc.ent_bits, enc.ent_mask, enc.ifl_hit, enc.ifl_miss, enc.ifl_stream, enc.ifl_out,
        enc.ifl_lone, present, enc.nslots, mem.l2.line_bytes, mem.hit_latency,
        mem.miss_latency, ch, float(hbm.bytes_per_cycle), float(hbm.overhead_bytes),
        float(l2c.bytes_per_cycle), float(l2c.overhead_bytes), pb, ob, rec_pipe, rec_start,
        rec_end, hb_key, hb_val, fl, busy, busy_first, stats, counts)
    if status != 0:
        return None
    hbm.free_at, hbm.busy_cycles, l2c.free_at, l2c.busy_cycles = (float(x) for x in ch)
    st = mem.stats
    gr, gw, l2hit, l2miss, hr = (int(x) for x in stats)
    st.gm_read_bytes += gr
    st.gm_write_bytes += gw
    st.l2_hit_bytes += l2hit
    st.l2_miss_bytes += l2miss
    st.hbm_read_bytes += hr
    n, nhb, nfl, nbusy = (int(x) for x in counts)
    recs = fast.Records(
        _array("I", rec_pipe[:n]), _array("q", rec_start[:n]), _array("q", rec_end[:n]),
        dict(zip(hb_key[:nhb].tolist(), hb_val[:nhb].tolist(), strict=True)),
        {p: int(busy[p]) for p in busy_first[:nbusy].tolist()})
    flows: list[tuple[Any, ...]] = [tuple(r) for r in fl[:nfl].tolist()]
    return (int(rec_end[n - 1]) if n else 0), recs, flows


def event_loop(kernel: Kernel, soc: SocDescriptor, mem: MemorySystem, low: Lowered,
               launch: list[int], hooks: Any = None
               ) -> tuple[int, fast.Records, list[tuple[Any, ...]]]:
    """``fast._event_loop`` with the compiled loop where it applies (module docstring), else
    the Python loop itself."""
    if hooks is None and fast.cannot_evict(kernel, mem):
        enc = encode(low, mem)
        if enc is not None:
            got = run_encoded(enc, mem, launch)
            if got is not None:
                return got
    return fast._event_loop(kernel, soc, mem, low, launch, hooks)
