"""Exact reuse of identical timing-only runs, on disk between processes (issue 14 item 4).

:func:`timing_summary` runs ``npusim.simulate`` for a timing-only call and keeps what a workload
study needs (cycles, time, kernel, bottleneck pipe, HBM bound, instructions, traffic) in one JSON
file per call. The key is everything that can change the result:

- the operator and every argument: specs by shape, dtype, transposition and format; small arrays
  (e.g. quant_matmul's scale) by dtype, shape and a hash of their bytes; scalars by value;
- the tiling (its ``repr``), ``l2_start``;
- the SoC descriptor after overrides and patches (its full JSON dump, so a what-if is its own key);
- the npusim version and a hash of the installed source (every ``.py`` and ``.yaml`` file of
  ``npusim``, ``npusim.ops`` and ``npusim.socs``), so any code change invalidates the cache.

Functional runs are never stored (outputs are not cached); a call whose tensor arguments are
arrays larger than ``MAX_HASHED_ARRAY_BYTES`` is refused rather than hashed.

Location: ``$NPUSIM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/npusim/results`` (default
``~/.cache/npusim/results``). Off switch: ``NPUSIM_RESULT_CACHE=0`` (or ``off`` / ``false``), or
``use_cache=False``. Deleting the directory clears it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import SimResult

import numpy as np

from npusim._version import __version__

MAX_HASHED_ARRAY_BYTES = 1 << 20
_FORMAT = 1  # bump when the stored fields change


@dataclasses.dataclass(frozen=True)
class TimingSummary:
    """What one timing-only run gives a workload study (all plain values, JSON-serialisable)."""

    op: str
    soc: str
    kernel_name: str
    tiling: str
    cycles: int
    microseconds: float
    instructions: int
    bottleneck_pipe: str
    bottleneck_busy_pct: float
    hbm_bound_us: float
    hbm_compulsory_bytes: int
    hbm_read_bytes: int
    hbm_write_bytes: int
    cached: bool = False  # True when this summary came from the disk cache


def cache_enabled() -> bool:
    """False when ``NPUSIM_RESULT_CACHE`` is 0 / off / false / no."""
    return os.environ.get("NPUSIM_RESULT_CACHE", "1").strip().lower() not in (
        "0", "off", "false", "no")


def cache_dir() -> Path:
    """Where entries live: $NPUSIM_CACHE_DIR, else $XDG_CACHE_HOME/npusim/results."""
    explicit = os.environ.get("NPUSIM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "npusim" / "results"


@functools.cache
def code_fingerprint() -> str:
    """npusim version + a hash of every source and descriptor file of the installed package."""
    import npusim
    import npusim.ops
    import npusim.socs

    h = hashlib.sha256(__version__.encode())
    roots = {Path(m.__file__).parent for m in (npusim, npusim.ops, npusim.socs) if m.__file__}
    for root in sorted(roots):
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def _canon(value: Any, name: str) -> Any:
    """A JSON-able, exact description of one argument for the key."""
    from npusim.spec import TensorSpec

    if isinstance(value, TensorSpec):
        return {"spec": list(value.shape), "dtype": value.dtype, "t": value.transposed,
                "fmt": value.npu_format}
    if isinstance(value, np.ndarray):
        if value.nbytes > MAX_HASHED_ARRAY_BYTES:
            raise ValueError(f"{name}: a {value.nbytes} B array is not cached (limit "
                             f"{MAX_HASHED_ARRAY_BYTES} B); pass a spec for timing-only runs")
        arr = np.ascontiguousarray(value)
        return {"array": list(arr.shape), "dtype": str(arr.dtype), "strides": list(value.strides),
                "sha": hashlib.sha256(arr.view(np.uint8).reshape(-1).data).hexdigest(),
                "fmt": getattr(value, "npu_format", 2)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, list | tuple):
        return [_canon(v, name) for v in value]
    raise ValueError(f"{name}={type(value).__name__}: no exact cache key for this argument type")


def cache_key(op: str, desc: SocDescriptor, tiling: Any, l2_start: str | None,
              op_args: dict[str, Any]) -> str:
    """The hex key of one call (see the module docstring for what it covers)."""
    payload = {
        "format": _FORMAT,
        "code": code_fingerprint(),
        "op": op,
        "args": {k: _canon(v, k) for k, v in sorted(op_args.items())},
        "tiling": repr(tiling),
        "l2_start": l2_start or "cold",
        "soc": desc.model_dump_json(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def summarize_result(op: str, res: SimResult) -> TimingSummary:
    """The :class:`TimingSummary` of a :class:`npusim.runner.SimResult`."""
    from npusim.report.summary import hbm_roofline

    roof = hbm_roofline(res.run)
    traffic = res.run.traffic
    return TimingSummary(
        op=op, soc=str(res.soc.name), kernel_name=res.kernel_name,
        tiling=str(res.summary().get("tiling", "")), cycles=int(res.cycles),
        microseconds=float(res.microseconds),
        instructions=int(res.run.kernel.instruction_count()),
        bottleneck_pipe=str(roof["bottleneck_pipe"]),
        bottleneck_busy_pct=float(roof["bottleneck_busy_pct"]),
        hbm_bound_us=float(roof["hbm_bound_us"]),
        hbm_compulsory_bytes=int(roof["hbm_compulsory_bytes"]),
        hbm_read_bytes=int(traffic.hbm_read_bytes), hbm_write_bytes=int(traffic.hbm_write_bytes),
    )


def timing_summary(op: str, soc: str | Path | SocDescriptor | None = None, tiling: Any = None, *,
                   overrides: Sequence[str] = (), patch: Any = None,
                   l2_start: str | None = None, use_cache: bool | None = None,
                   **op_args: Any) -> TimingSummary:
    """Simulate a timing-only call (or reuse the identical earlier one from disk).

    ``use_cache``: None = :func:`cache_enabled`; False never reads or writes the cache."""
    from npusim.runner import resolve_soc, simulate

    desc = resolve_soc(soc, overrides, patch)
    use = cache_enabled() if use_cache is None else use_cache
    path = None
    if use:
        path = cache_dir() / f"{cache_key(op, desc, tiling, l2_start, op_args)}.json"
        try:
            data = json.loads(path.read_text())
            return TimingSummary(**{**data, "cached": True})
        except (OSError, ValueError, TypeError):
            pass  # absent or unreadable entry: simulate and rewrite it
    res = simulate(op, desc, tiling, l2_start=l2_start, **op_args)
    if res.run.functional:
        raise ValueError(f"{op}: the result cache serves timing-only runs; pass specs, not "
                         "data arrays, for the tensors")
    summary = summarize_result(op, res)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(summary)))
        os.replace(tmp, path)
    return summary
