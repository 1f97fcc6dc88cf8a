"""Run summaries: per-pipe busy time, memory traffic, bandwidth, cube utilisation, the HBM bound
(compulsory bytes / HBM bandwidth) with the bottleneck pipe; and the PipeUtilization-style CSV
whose column names follow the on-board profiler's report."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from npusim.engine.sim import RunResult

AIC_PIPES = {
    "M": "cube",
    "MTE1": "mte1",
    "MTE2": "mte2",
    "FIX": "fixpipe",
    "S": "scalar",
    "MTE3": "mte3",
}
AIV_PIPES = {"V": "vec", "MTE2": "mte2", "MTE3": "mte3", "S": "scalar"}
COUPLED_PIPES = {
    "M": "cube",
    "V": "vec",
    "MTE1": "mte1",
    "MTE2": "mte2",
    "MTE3": "mte3",
    "S": "scalar",
}


def core_end_cycles(result: RunResult) -> dict[int, int]:
    ends: dict[int, int] = {}
    for r in result.records:
        ends[r.core] = max(ends.get(r.core, 0), r.end)
    return ends


def pipe_busy_by_kind(result: RunResult) -> dict[str, dict[str, float]]:
    """Mean busy cycles per pipe over the cores of each kind (aic / aiv / aicore / vector_core)."""
    busy = result.pipe_busy()
    out: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for c in result.kernel.cores:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    for (ci, pipe), cyc in busy.items():
        kind = result.kernel.cores[ci].kind
        out.setdefault(kind, {}).setdefault(pipe, 0.0)
        out[kind][pipe] += cyc / counts[kind]
    return out


def distinct_instructions(kernel: Any) -> list[tuple[Any, int]]:
    """(instruction object, how often it occurs) over every core of ``kernel``, one entry per
    distinct object: programs share immutable instruction objects (interning, tile templates),
    so per-instruction tallies (MACs, FixPipe bytes) cost a pass at C speed plus one Python step
    per distinct object instead of one per instruction."""
    from collections import Counter

    counts: Counter[int] = Counter()
    objs: dict[int, Any] = {}
    for core in kernel.cores:
        ids = list(map(id, core.instrs))
        counts.update(ids)
        objs.update(zip(ids, core.instrs, strict=True))
    return [(objs[i], n) for i, n in counts.items()]


def cube_macs(result: RunResult, distinct: list[tuple[Any, int]] | None = None) -> int:
    """Multiply-accumulates of every Mmad (``distinct``: :func:`distinct_instructions` of the
    result's kernel, when the caller has it)."""
    total = 0
    for ins, n in distinct if distinct is not None else distinct_instructions(result.kernel):
        if ins.kind == "mmad":
            total += n * ins.m * ins.k * ins.n
    return total


def fixpipe_paths(result: RunResult, distinct: list[tuple[Any, int]] | None = None
                  ) -> dict[str, int]:
    """Bytes each FixPipe path wrote (``L0C->GM``, ``L0C->L1``), from the program: the engines
    count DataCopy paths only (``traffic.per_path_bytes``), while a FixPipe into GM is as much a
    GM write as a DataCopy's (``gm_write_bytes`` counts both)."""
    out: dict[str, int] = {}
    for ins, n in distinct if distinct is not None else distinct_instructions(result.kernel):
        if ins.kind == "fix":
            src, dst = ins.reads[0], ins.writes[0]
            key = f"{src.buffer}->{dst.buffer}"
            out[key] = out.get(key, 0) + n * dst.nbytes
    return out


def summarize(result: RunResult) -> dict[str, Any]:
    """A flat, JSON-ready summary of a run."""
    soc = result.soc
    cycles = max(result.cycles, 1)
    us = result.microseconds
    s: dict[str, Any] = {
        "soc": soc.name,
        "kernel": result.kernel.name,
        "cycles": result.cycles,
        "us": round(us, 3),
        "cores": {
            k: sum(1 for c in result.kernel.cores if c.kind == k)
            for k in sorted({c.kind for c in result.kernel.cores})
        },
        "instructions": result.kernel.instruction_count(),
    }
    for kind, pipes in sorted(pipe_busy_by_kind(result).items()):
        for pipe, cyc in sorted(pipes.items()):
            s[f"{kind}_{pipe}_busy_pct"] = round(100.0 * cyc / cycles, 2)
    s.update(result.traffic.as_dict())
    distinct = distinct_instructions(result.kernel)
    # the FixPipe paths, so that the paths sum to the GM bytes
    for path, nbytes in sorted(fixpipe_paths(result, distinct).items()):
        s.setdefault(f"path_{path}", nbytes)
    seconds = us * 1e-6 if us > 0 else float("nan")
    hbm = result.traffic.hbm_read_bytes + result.traffic.hbm_write_bytes
    s["hbm_achieved_gb_per_s"] = round(hbm / seconds / 1e9, 3) if us > 0 else 0.0
    s["gm_achieved_gb_per_s"] = (
        round((result.traffic.gm_read_bytes + result.traffic.gm_write_bytes) / seconds / 1e9, 3)
        if us > 0
        else 0.0
    )
    macs = cube_macs(result, distinct)
    if macs:
        dtypes = {i.dtype for i, _ in distinct if i.kind == "mmad"}
        dt = sorted(dtypes)[0]
        cube_cores = sum(1 for c in result.kernel.cores if c.kind in ("aic", "aicore"))
        cube = soc.core(
            result.kernel.cores[0].kind
            if result.kernel.cores[0].kind in ("aic", "aicore")
            else "aic"
        ).cube
        assert cube is not None  # macs > 0: the kernel ran Mmads on this core kind
        peak = cube.macs_per_cycle(dt)
        s["cube_macs"] = macs
        s["cube_utilisation_pct"] = round(100.0 * macs / (peak * cycles * max(cube_cores, 1)), 2)
        s["achieved_tflops"] = round(2 * macs / seconds / 1e12, 3)
    s.update(hbm_roofline(result))
    return s


def compulsory_hbm_bytes(result: RunResult) -> tuple[int, str]:
    """Bytes that must cross HBM at least once, and where the figure comes from: the kernel's
    ``meta["compulsory_hbm_bytes"]`` when the operator declares it (e.g. a packed int4 weight),
    else every GM input read once plus every output written once (workspaces excluded).
    This counts writes that may stay in L2; :func:`hbm_lower_bound_bytes` does not."""
    declared = result.kernel.meta.get("compulsory_hbm_bytes")
    if declared is not None:
        return int(declared), "declared by the operator"
    total = sum(t.nbytes for t in result.kernel.gm.values() if t.role in ("input", "output"))
    return total, "GM inputs + outputs once"


def hbm_lower_bound_bytes(result: RunResult) -> dict[str, int]:
    """HBM bytes no implementation of the launch can avoid, given the L2 at kernel start.

    Reads: every input byte not in L2 at start - inputs marked ``l2_warm`` in a cold start, and
    with ``l2_start="repeat"`` any input, may be resident up to the L2 capacity. Writes: an
    output stays in the (write-back) L2 unless it does not fit, so only the output bytes beyond
    the L2 capacity must reach HBM during the launch. The input part uses the operator's declared
    compulsory bytes (minus the outputs) when it declares them (packed weights)."""
    gm = result.kernel.gm.values()
    cap = int(result.soc.memory.l2.capacity_bytes)
    out_bytes = sum(t.nbytes for t in gm if t.role == "output")
    in_cold = sum(t.nbytes for t in gm if t.role == "input" and not t.l2_warm)
    in_warm = sum(t.nbytes for t in gm if t.role == "input" and t.l2_warm)
    declared = result.kernel.meta.get("compulsory_hbm_bytes")
    if declared is not None:  # the operator's own count of its inputs (and outputs) once
        in_cold, in_warm = max(0, int(declared) - out_bytes) - in_warm, in_warm
        in_cold = max(0, in_cold)
    if result.l2_start == "repeat":
        reads = max(0, in_cold + in_warm - cap)
    else:
        reads = in_cold + max(0, in_warm - cap)
    writes = max(0, out_bytes - cap)
    return {"read_bytes": reads, "write_bytes": writes, "input_bytes": in_cold + in_warm,
            "output_bytes": out_bytes, "l2_capacity_bytes": cap}


def _mib(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def bottleneck_pipe(result: RunResult) -> tuple[str, float]:
    """The (core kind, pipe) with the highest mean busy share of the run, e.g. ``aic/MTE2``,
    and that share in percent (the same figure as the summary's ``<kind>_<pipe>_busy_pct``)."""
    cycles = max(result.cycles, 1)
    best, pct = "-", 0.0
    for kind, pipes in sorted(pipe_busy_by_kind(result).items()):
        for pipe, cyc in sorted(pipes.items()):
            share = 100.0 * cyc / cycles
            if share > pct:
                best, pct = f"{kind}/{pipe}", share
    return best, pct


def hbm_roofline(result: RunResult) -> dict[str, Any]:
    """Simulated time against the HBM bound - the unavoidable HBM bytes
    (:func:`hbm_lower_bound_bytes`) over the SoC's HBM bandwidth, a time no run of this launch
    can beat - with the bottleneck pipe named: one printable line plus its numbers."""
    nbytes, source = compulsory_hbm_bytes(result)
    lb = hbm_lower_bound_bytes(result)
    bw = float(result.soc.memory.hbm.bandwidth_gb_per_s)
    bound_bytes = lb["read_bytes"] + lb["write_bytes"]
    bound_us = bound_bytes / (bw * 1e3)
    us = result.microseconds
    ratio = us / bound_us if bound_us > 0 else float("inf")
    pipe, pct = bottleneck_pipe(result)
    versus = (f"= {ratio:.2f} x bound" if bound_bytes else
              "(no HBM traffic is unavoidable: the inputs and the outputs each fit in the "
              "L2)")
    line = (
        f"HBM bound {bound_us:.2f} us (no launch is faster: {_mib(lb['read_bytes'])} inputs "
        f"read + {_mib(lb['write_bytes'])} outputs beyond L2 written, at {bw:g} GB/s); "
        f"simulated {us:.2f} us {versus}; bottleneck pipe {pipe} (busy {pct:.1f}%)"
    )
    return {
        "hbm_compulsory_bytes": nbytes,
        "hbm_compulsory_source": source,
        "hbm_bound_read_bytes": lb["read_bytes"],
        "hbm_bound_write_bytes": lb["write_bytes"],
        "hbm_bandwidth_gb_per_s": bw,
        "hbm_bound_us": round(bound_us, 3),
        "time_over_hbm_bound": round(ratio, 3),
        "bottleneck_pipe": pipe,
        "bottleneck_busy_pct": round(pct, 2),
        "hbm_roofline": line,
    }


def format_summary(s: dict[str, Any]) -> str:
    width = max(len(k) for k in s)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in s.items())


#: PipeUtilization pipe columns in the order msprof op's documentation lists them (see
#: :mod:`npusim.profile`): (prefix, simulator pipe, column stem).
PIPE_COLUMNS = (
    ("aiv", "V", "vec"),
    ("aic", "M", "cube"),
    ("aic", "S", "scalar"),
    ("aiv", "S", "scalar"),
    ("aic", "FIX", "fixpipe"),
    ("aic", "MTE1", "mte1"),
    ("aic", "MTE2", "mte2"),
    ("aiv", "MTE2", "mte2"),
    ("aic", "MTE3", "mte3"),
    ("aiv", "MTE3", "mte3"),
)
_PREFIX = {"aic": "aic", "aicore": "aic", "aiv": "aiv", "vector_core": "aiv"}
_STEMS = {"M": "cube", "V": "vec", "MTE1": "mte1", "MTE2": "mte2", "MTE3": "mte3", "S": "scalar",
          "FIX": "fixpipe"}


def core_spans(result: RunResult) -> dict[int, tuple[int, int]]:
    """(first instruction start, last instruction end) cycles per core index."""
    spans: dict[int, tuple[int, int]] = {}
    for r in result.records:
        a, b = spans.get(r.core, (r.start, r.end))
        spans[r.core] = (min(a, r.start), max(b, r.end))
    return spans


def sub_blocks(result: RunResult) -> list[tuple[int, str, int]]:
    """(block_id, sub_block_id, core index) per core, msprof style: a mix block is its AIC
    (``cube0``) and its two AIVs (``vector0``, ``vector1``); a vector-only or cube-only launch has
    one sub-block per block. The AIV of a mix block is the AIV whose id // 2 is the AIC's id."""
    cores = result.kernel.cores
    aics = [ci for ci, c in enumerate(cores) if c.kind in ("aic", "aicore")]
    aivs = [ci for ci, c in enumerate(cores) if c.kind in ("aiv", "vector_core")]
    out: list[tuple[int, str, int]] = []
    if aics and aivs:
        block_of = {cores[ci].core_id: b for b, ci in enumerate(aics)}
        seen: dict[int, int] = {}
        for b, ci in enumerate(aics):
            out.append((b, "cube0", ci))
        for ci in aivs:
            block = block_of.get(cores[ci].core_id // 2)
            if block is None:  # an AIV without its AIC in this launch: a block of its own
                block = len(aics) + len(seen)
            n = seen.get(block, 0)
            seen[block] = n + 1
            out.append((block, f"vector{n}", ci))
    else:
        for b, ci in enumerate(aics or aivs):
            out.append((b, "cube0" if aics else "vector0", ci))
    return sorted(out, key=lambda t: (t[0], t[1]))


def pipe_utilization_rows(result: RunResult) -> list[dict[str, Any]]:
    """One row per sub-block (a mix block gives three: its AIC and its two AIVs) with msprof op's
    PipeUtilization column names: ``*_time(us)`` in microseconds, ``*_total_cycles`` from the
    core's first instruction to its last, ratios = pipe busy cycles / those cycles. A row's
    columns of the other core kind are ``N/A`` (the sub-block has no such unit)."""
    f = result.freq_mhz
    busy = result.pipe_busy()
    spans = core_spans(result)
    cores = result.kernel.cores
    kinds = {_PREFIX[c.kind] for c in cores}
    coupled = any(c.kind == "aicore" for c in cores)
    cols = ["block_id", "sub_block_id"]
    for prefix in ("aic", "aiv"):
        if prefix in kinds:
            cols += [f"{prefix}_time(us)", f"{prefix}_total_cycles"]
    pipe_cols = [(p, pipe, stem) for p, pipe, stem in PIPE_COLUMNS if p in kinds]
    if coupled:  # a 310P AI Core has its vector unit and MTE3 inside: aic_ columns for them
        pipe_cols = [("aic", pipe, _STEMS[pipe]) for pipe in COUPLED_PIPES]
    for stem in dict.fromkeys(stem for _p, _pipe, stem in pipe_cols):  # documented order:
        mine = [p for p, _pipe, st in pipe_cols if st == stem]  # ai*_x_time, then ai*_x_ratio
        cols += [f"{p}_{stem}_time(us)" for p in mine] + [f"{p}_{stem}_ratio" for p in mine]
    rows = []
    for block, sub, ci in sub_blocks(result):
        prefix = _PREFIX[cores[ci].kind]
        a, b = spans.get(ci, (0, 0))
        total = b - a
        row: dict[str, Any] = {c: "N/A" for c in cols}
        row.update({"block_id": block, "sub_block_id": sub,
                    f"{prefix}_time(us)": round(total / f, 3), f"{prefix}_total_cycles": total})
        for p, pipe, stem in pipe_cols:
            if p != prefix:
                continue
            t = busy.get((ci, pipe), 0)
            row[f"{p}_{stem}_time(us)"] = round(t / f, 3)
            row[f"{p}_{stem}_ratio"] = round(t / total, 4) if total else 0.0
        rows.append(row)
    return rows


def write_pipe_csv(result: RunResult, path: str | Path) -> Path:
    rows = pipe_utilization_rows(result)
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    path = Path(path)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path
