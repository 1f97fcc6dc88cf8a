"""Every plot reads at a glance: a title, labelled axes (units in the label), and a legend that
sits outside the axes so it covers no data; the Gantt chart draws one bar per instruction."""

import math

import pytest

pytest.importorskip("matplotlib")

from npusim.report import plots
from npusim.runner import simulate


@pytest.fixture
def figures(monkeypatch):
    """Keep each figure a plot function saves (the file is still written)."""
    kept = []
    real = plots._save

    def keep(fig, path):
        fig.canvas.draw()
        kept.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _check(fig):
    (ax,) = [a for a in fig.axes if a.get_label() != "<colorbar>"][:1]
    assert ax.get_title().strip(), "no title"
    assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), "unlabelled axis"
    legend = ax.get_legend()
    if legend is not None:
        box, area = legend.get_window_extent(), ax.get_window_extent()
        assert box.x0 >= area.x1 - 1, "legend drawn over the data area"


def test_report_plots_have_titles_labels_and_outside_legends(tmp_path, figures):
    plots.best_time_bars([("k=512 m=16", "baseline", 6.4, 1.0), ("k=512 m=16", "hbm_x2", 6.0,
                           6.4 / 6.0), ("k=1024 m=16", "baseline", 11.0, math.nan)],
                         tmp_path / "best.png")
    plots.roofline([("A", 50.0, 0.8)], {"A": (350.0, 1446.0)}, tmp_path / "roof.png")
    plots.pipe_bars({"case 1": {"aic_M": 20.0, "aic_MTE2": 60.0}}, tmp_path / "pipes.png")
    plots.heatmap([64, 256], [2, 8], [[6.4, math.nan], [math.nan, 6.5]], "base_k", "step_ka",
                  "heat", tmp_path / "heat.png")
    plots.inner_precise_bars(["case"], {0: [11.0], 1: [9.7]}, tmp_path / "ip.png")
    assert len(figures) == 5
    for fig in figures:
        _check(fig)
    assert "us" in figures[0].axes[0].get_xlabel()
    assert "cells simulated" in figures[3].axes[0].get_title()  # a sparse map says so
    assert all((tmp_path / n).stat().st_size > 1000 for n in
               ("best.png", "roof.png", "pipes.png", "heat.png", "ip.png"))


def test_gantt_has_a_bar_per_instruction_of_the_shown_cores(tmp_path, figures):
    """One broken_barh row per (core, pipe) used; its bars are that pipe's instructions on that
    core (flag waits left out); x in microseconds up to the run's end."""
    res = simulate("vector_add", "Ascend910B2", n_elements=1 << 14, dtype="float16")
    path = plots.gantt_png(res.run, tmp_path / "g.png", max_cores=2)
    assert path.read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    _check(fig)
    ax = fig.axes[0]
    shown = {0, 1}
    expect = {}
    for r in res.run.records:
        if r.core in shown and r.end > r.start and r.kind not in (
                "set_flag", "wait_flag", "cross_set", "cross_wait", "barrier"):
            expect[(r.core, r.pipe)] = expect.get((r.core, r.pipe), 0) + 1
    bars = [len(c.get_paths()) for c in ax.collections]
    assert sorted(bars) == sorted(expect.values())
    assert ax.get_xlim()[1] == pytest.approx(res.microseconds)
    assert "2 of" in ax.get_title()
