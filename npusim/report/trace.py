"""Chrome trace JSON (object form) of a run, viewable in Perfetto and chrome://tracing.

Time mapping: trace ``ts``/``dur`` are microseconds = cycles / AI-core clock (MHz), printed with
nanosecond resolution; each slice also carries its integer cycles in ``args``. One process per core
(named AIC0, AIV5, ...), one thread per pipe (PIPE_MTE2, PIPE_V, ...), flow arrows from each
SetFlag / CrossCoreSetFlag to the wait it releases, and counters for buffer allocation per core and
achieved HBM bandwidth on a "Chip" process. Output is byte-identical for identical runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from npusim._version import __version__
from npusim.engine.sim import RunResult

PIPE_ORDER = ("S", "MTE2", "MTE1", "M", "FIX", "V", "MTE3")
CHIP_PID = 0


def _us(cycles: float, freq_mhz: int) -> float:
    return round(cycles / freq_mhz, 6)


def build_trace(result: RunResult, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace as a JSON-ready dict."""
    f = result.freq_mhz
    cores = result.kernel.cores
    events: list[dict[str, Any]] = []
    events.append(
        {
            "ph": "M",
            "name": "process_name",
            "pid": CHIP_PID,
            "tid": 0,
            "args": {"name": f"Chip {result.soc.name}"},
        }
    )
    used: dict[int, set[str]] = {}
    for r in result.records:
        used.setdefault(r.core, set()).add(r.pipe)
    for ci, core in enumerate(cores):
        pid = ci + 1
        events.append(
            {
                "ph": "M",
                "name": "process_name",
                "pid": pid,
                "tid": 0,
                "args": {"name": core.name.upper()},
            }
        )
        events.append(
            {
                "ph": "M",
                "name": "process_sort_index",
                "pid": pid,
                "tid": 0,
                "args": {"sort_index": pid},
            }
        )
        for pipe in sorted(used.get(ci, ()), key=_pipe_key):
            tid = _pipe_key(pipe) + 1
            events.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": pid,
                    "tid": tid,
                    "args": {"name": f"PIPE_{pipe}"},
                }
            )
    for r in result.records:
        events.append(
            {
                "ph": "X",
                "name": r.name,
                "cat": r.kind,
                "pid": r.core + 1,
                "tid": _pipe_key(r.pipe) + 1,
                "ts": _us(r.start, f),
                "dur": _us(r.end - r.start, f),
                "args": {
                    "start_cycle": r.start,
                    "cycles": r.end - r.start,
                    "bytes": r.nbytes,
                    "hbm_bytes": r.hbm_bytes,
                },
            }
        )
    for i, fl in enumerate(result.flows):
        ts_set = max(fl.ts_set - 1, 0)
        events.append(
            {
                "ph": "s",
                "id": i,
                "name": fl.name,
                "cat": "flag",
                "pid": fl.src_core + 1,
                "tid": _pipe_key(fl.src_pipe) + 1,
                "ts": _us(ts_set, f),
            }
        )
        events.append(
            {
                "ph": "f",
                "bp": "e",
                "id": i,
                "name": fl.name,
                "cat": "flag",
                "pid": fl.dst_core + 1,
                "tid": _pipe_key(fl.dst_pipe) + 1,
                "ts": _us(fl.ts_wait, f),
            }
        )
    for ci, core in enumerate(cores):
        if core.allocations:
            args = {
                b: sum(sz for _, _, sz in allocs) for b, allocs in sorted(core.allocations.items())
            }
            events.append(
                {
                    "ph": "C",
                    "name": "allocated bytes",
                    "pid": ci + 1,
                    "tid": 0,
                    "ts": 0.0,
                    "args": args,
                }
            )
    events.extend(_bandwidth_counters(result))
    metadata = {
        "npusim_version": __version__,
        "soc": result.soc.name,
        "kernel": result.kernel.name,
        "aicore_freq_mhz": f,
        "total_cycles": result.cycles,
        "total_us": _us(result.cycles, f),
        "time_unit": "ts/dur in microseconds = cycles / aicore_freq_mhz",
        "functional": result.functional,
    }
    numerics = getattr(result.soc, "numerics", None)
    if numerics is not None:  # declared models the outputs are exact to (never claimed more)
        metadata["declared_cube_accumulation_model"] = str(numerics.cube_accumulation.model)
        metadata["declared_split_k_reduction_order"] = str(numerics.split_k_reduction_order)
    for k, v in sorted(result.kernel.meta.items()):
        metadata[k] = v
    if meta:
        metadata.update(meta)
    return {"traceEvents": events, "displayTimeUnit": "ns", "metadata": metadata}


def _pipe_key(pipe: str) -> int:
    return PIPE_ORDER.index(pipe) if pipe in PIPE_ORDER else len(PIPE_ORDER)


def _bandwidth_counters(result: RunResult, windows: int = 64) -> list[dict[str, Any]]:
    """HBM bytes per window, spread evenly over each transfer's duration, as GB/s counters."""
    if result.cycles <= 0:
        return []
    f = result.freq_mhz
    width = max(1, -(-result.cycles // windows))
    totals = [0.0] * (result.cycles // width + 1)
    for r in result.records:
        if r.hbm_bytes and r.end > r.start:
            rate = r.hbm_bytes / (r.end - r.start)
            w = r.start // width
            while w * width < r.end:
                lo = max(r.start, w * width)
                hi = min(r.end, (w + 1) * width)
                totals[w] += rate * (hi - lo)
                w += 1
    out = []
    for w, b in enumerate(totals):
        gbps = b / (width / (f * 1e6)) / 1e9
        out.append(
            {
                "ph": "C",
                "name": "HBM bandwidth (GB/s)",
                "pid": CHIP_PID,
                "tid": 0,
                "ts": _us(w * width, f),
                "args": {"GB/s": round(gbps, 3)},
            }
        )
    return out


def write_trace(result: RunResult, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write the trace; deterministic key order and formatting."""
    path = Path(path)
    # default=str: kernel metadata may carry tiling objects (dataclasses); their repr is the record
    text = json.dumps(build_trace(result, meta), sort_keys=True, separators=(",", ":"),
                      default=str)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
