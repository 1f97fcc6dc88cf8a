"""PNG plots: of sweep results (best time per case, roofline, per-pipe bars, tiling heatmap,
inner_precise comparison) and of one run (a Gantt timeline of the pipes per core).

Each function takes plain numbers (the report computes them from the CSV) and writes one file,
so the figures show exactly what the report's tables list. Every plot has a title, axis labels
with units and a legend outside the axes (it covers no data). matplotlib is the optional extra
``plot``; :func:`require_matplotlib` turns its absence into one clear error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from npusim.engine.sim import RunResult


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` with the non-interactive Agg backend, or a RuntimeError naming the
    extra to install (Any: a module, whose attributes a type cannot name)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("npusim report draws its plots with matplotlib, which is not "
                           "installed: pip install -e \".[plot]\" in the npusim checkout") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    # bbox_inches="tight" keeps rotated tick labels and outside legends inside the file
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    require_matplotlib().close(fig)
    return path


def _outside_legend(ax: Axes, **kw: Any) -> None:
    """A legend right of the axes: it never covers a bar, point or line."""
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)


def roofline(points: Sequence[tuple[str, float, float]],
             roofs: Mapping[str, tuple[float, float]], path: Path) -> Path:
    """Log-log roofline. ``points``: (roof label, flop/byte, TFLOPS); ``roofs``: label ->
    (peak TFLOPS, HBM GB/s). Each roof is min(peak, bandwidth x intensity)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = [p[1] for p in points] or [1.0]
    ridges = [pk * 1e12 / (bw * 1e9) for pk, bw in roofs.values()
              if math.isfinite(pk) and bw > 0] or [1.0]
    lo = min([*xs, *ridges]) / 4
    hi = max([*xs, *ridges]) * 4
    grid = [lo * (hi / lo) ** (i / 199) for i in range(200)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, (peak, bw)) in enumerate(roofs.items()):
        c = colours[i % len(colours)]
        top = peak if math.isfinite(peak) else float("inf")
        ax.plot(grid, [min(top, bw * 1e9 * x / 1e12) for x in grid], color=c,
                label=f"roof: {label}", linestyle=("-", "--", ":", "-.")[i % 4])
        pts = [(x, y) for lab, x, y in points if lab == label]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=c, s=18, zorder=3,
                       label=f"simulated: {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (flop per HBM byte)")
    ax.set_ylabel("achieved TFLOPS (10^12 flop/s)")
    ax.set_title("roofline: descriptor peak and HBM bandwidth (lines), best tiling (dots)",
                 fontsize=8)
    _outside_legend(ax)
    return _save(fig, path)


def pipe_bars(groups: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Grouped bars: for each labelled point, the busy percent of each pipe."""
    plt = require_matplotlib()
    pipes = sorted({p for g in groups.values() for p in g})
    labels = list(groups)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(labels)), 4.0))
    width = 0.8 / max(1, len(pipes))
    for j, pipe in enumerate(pipes):
        ax.bar([i + j * width - 0.4 + width / 2 for i in range(len(labels))],
               [groups[lab].get(pipe, 0.0) for lab in labels], width=width, label=pipe)
    ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=20, ha="right")
    ax.set_ylabel("busy (% of the run's cycles)")
    ax.set_xlabel("SoC, variant and case (best tiling)")
    ax.set_ylim(0, min(105.0, 1.2 * max((v for g in groups.values() for v in g.values()),
                                          default=1.0) + 1.0))
    ax.set_title("per-pipe busy time of the best tiling per case and variant", fontsize=8)
    _outside_legend(ax, title="core_pipe", title_fontsize=6)
    return _save(fig, path)


def heatmap(xs: Sequence[Any], ys: Sequence[Any], grid: Sequence[Sequence[float]],
            xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Time (us) over two tiling fields; ``grid[iy][ix]`` is NaN where nothing was simulated
    (drawn hatched grey and marked "-", so an empty cell does not read as a colour)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(2.2 + 0.7 * len(xs), 1.4 + 0.45 * len(ys)))
    ax.set_facecolor("0.85")
    im = ax.imshow([[v if math.isfinite(v) else float("nan") for v in row] for row in grid],
                   cmap="viridis_r", aspect="auto", origin="lower")
    for iy, row in enumerate(grid):
        for ix, v in enumerate(row):
            if math.isfinite(v):
                ax.text(ix, iy, f"{v:g}", ha="center", va="center", fontsize=6, color="w")
            else:
                ax.add_patch(plt.Rectangle((ix - 0.5, iy - 0.5), 1, 1, fill=False,
                                           hatch="///", edgecolor="0.6", linewidth=0))
                ax.text(ix, iy, "-", ha="center", va="center", fontsize=6, color="0.3")
    filled = sum(math.isfinite(v) for row in grid for v in row)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=7)
    ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=7)
    ax.set_xlabel(f"tiling field {xlabel}")
    ax.set_ylabel(f"tiling field {ylabel}")
    ax.set_title(f"{title}\n{filled} of {len(xs) * len(ys)} cells simulated ('-': not simulated)",
                 fontsize=7)
    fig.colorbar(im, ax=ax, label="least simulated time (us)")
    return _save(fig, path)


def inner_precise_bars(labels: Sequence[str], times: Mapping[int, Sequence[float]],
                       path: Path) -> Path:
    """Bars of the best time per inner_precise mode for each case / variant."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(labels)), 3.6))
    modes = sorted(times)
    width = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        ax.bar([i + j * width - 0.4 + width / 2 for i in range(len(labels))], times[mode],
               width=width, label=f"inner_precise={mode}")
    ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=20, ha="right")
    ax.set_ylabel("best simulated time (us)")
    ax.set_xlabel("SoC, variant and case")
    ax.set_title("inner_precise: best simulated time per mode", fontsize=8)
    _outside_legend(ax)
    return _save(fig, path)


def best_time_bars(entries: Sequence[tuple[str, str, float, float]], path: Path) -> Path:
    """Best simulated time per case: ``entries`` are (case label, variant, us, speed-up over the
    baseline); one horizontal bar per (case, variant), grouped by case, the speed-up printed at
    the bar's end."""
    plt = require_matplotlib()
    variants = list(dict.fromkeys(e[1] for e in entries))
    cases = list(dict.fromkeys(e[0] for e in entries))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    height = 0.8 / max(1, len(variants))
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.35 * len(entries)))
    top = max((e[2] for e in entries), default=1.0)
    for j, var in enumerate(variants):
        mine = [(cases.index(c), us, sp) for c, v, us, sp in entries if v == var]
        ys = [i + j * height - 0.4 + height / 2 for i, _, _ in mine]
        ax.barh(ys, [us for _, us, _ in mine], height=height, color=colours[j % len(colours)],
                label=var)
        for y, (_, us, sp) in zip(ys, mine, strict=True):
            text = f"{us:g} us" + (f"  ({sp:.2f}x)" if math.isfinite(sp) else "")
            ax.text(us + top * 0.01, y, text, va="center", fontsize=6)
    ax.set_yticks(range(len(cases)), cases, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.3)  # room for the labels right of the longest bar
    ax.set_xlabel("best simulated time (us); (speed-up over the baseline)")
    ax.set_ylabel("case")
    ax.set_title("best time per case and variant (least simulated us over the tilings)",
                 fontsize=8)
    _outside_legend(ax, title="variant", title_fontsize=6)
    return _save(fig, path)


#: Pipe colours of the Gantt chart (fixed, so two charts compare at a glance).
PIPE_COLOURS = {"MTE2": "tab:blue", "MTE1": "tab:cyan", "M": "tab:red", "FIX": "tab:orange",
                "V": "tab:green", "MTE3": "tab:purple", "S": "tab:gray"}
GANTT_PIPE_ORDER = ("S", "MTE2", "MTE1", "M", "FIX", "V", "MTE3")


def gantt_png(run: RunResult, path: str | Path, title: str = "", max_cores: int = 8) -> Path:
    """Timeline of one run as a PNG: one row per (core, pipe) busy at least once, one bar per
    instruction (flag waits and barriers left out), x in microseconds. Shows the first
    ``max_cores`` cores of the launch (the title says how many of how many)."""
    plt = require_matplotlib()
    f = run.freq_mhz
    cores = run.kernel.cores
    shown = list(range(min(len(cores), max_cores)))
    spans: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for r in run.records:
        if r.core not in shown or r.kind in ("set_flag", "wait_flag", "cross_set",
                                             "cross_wait", "barrier") or r.end <= r.start:
            continue
        spans.setdefault((r.core, r.pipe), []).append((r.start / f, (r.end - r.start) / f))
    rows = sorted(spans, key=lambda k: (k[0], GANTT_PIPE_ORDER.index(k[1])
                                        if k[1] in GANTT_PIPE_ORDER else 99))
    fig, ax = plt.subplots(figsize=(9.0, 1.2 + 0.22 * max(1, len(rows))))
    for i, key in enumerate(rows):
        ax.broken_barh(spans[key], (i - 0.4, 0.8), color=PIPE_COLOURS.get(key[1], "black"),
                       linewidth=0)
    ax.set_yticks(range(len(rows)), [f"{cores[c].name.upper()} {p}" for c, p in rows],
                  fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, max(run.microseconds, 1e-3))
    ax.set_xlabel("time since launch (us)")
    ax.set_ylabel("core / pipe")
    head = title or run.kernel.name
    ax.set_title(f"{head}: pipes per core, {len(shown)} of {len(cores)} cores, "
                 f"{run.microseconds:.2f} us simulated", fontsize=8)
    used = [p for p in GANTT_PIPE_ORDER if any(k[1] == p for k in rows)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=PIPE_COLOURS[p]) for p in used]
    ax.legend(handles, used, title="pipe", fontsize=6, title_fontsize=6, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # outside the axes: covers no bar
    return _save(fig, Path(path))
