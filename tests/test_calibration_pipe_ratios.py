"""The B rows' pipe ratios are compared as msprof op computes them: a pipe's busy cycles over the
cores' own total cycles (first instruction to last), not over the task duration with its launch.
DEVKIT's data_copy README tables satisfy *_ratio = *_time / (*_total_cycles / Block Num / f) in
every row (e.g. GM->UB 64 x 1024 tiles: 202.657 us / (18563430 / 48 / 1850 MHz) = 0.969, the
table's 0.969, while its Task Duration is 215.82 us)."""

from dataclasses import replace

from npusim.ops import matmul_calibration
from npusim.report.summary import core_spans, pipe_busy_by_kind
from npusim.validate import load_measurements


def test_b_row_ratio_divides_by_the_cores_own_cycles(monkeypatch):
    """A B-shaped row (384^3, the B tiling on the 4 x 6 grid): each predicted ratio is the AICs'
    mean busy cycles over their mean span, which the launch does not enter, so it exceeds the
    busy / task-duration ratio (the launch offsets are part of the task, not of any core)."""
    b1 = next(r for r in load_measurements() if r.id == "B1")
    row = replace(b1, m=384, k=384, n=384)
    seen = {}
    from npusim.engine import sim

    real = sim.run_kernel

    def spy(*a, **kw):
        seen["res"] = res = real(*a, **kw)
        return res

    monkeypatch.setattr(sim, "run_kernel", spy)  # calibration_prediction imports it late
    pred = matmul_calibration.calibration_prediction(row)
    res = seen["res"]
    busy = pipe_busy_by_kind(res)["aic"]
    spans = [b - a for ci, (a, b) in core_spans(res).items()
             if res.kernel.cores[ci].kind == "aic"]
    mean_span = sum(spans) / len(spans)
    assert mean_span < res.cycles
    for label, pipe in (("Cube", "M"), ("TEXTRACT", "MTE1"), ("TLOAD", "MTE2"),
                        ("TSTORE", "FIX")):
        got, measured, _ = pred.pipes[label]
        assert got == 100.0 * busy[pipe] / mean_span
        assert got > 100.0 * busy[pipe] / res.cycles
        assert measured == {"Cube": 54.5, "TEXTRACT": 42.2, "TLOAD": 72.2, "TSTORE": 7.7}[label]
