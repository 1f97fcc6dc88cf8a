"""The matmul calibration rows' predictions (validate's A* / B* rows): the B rows' tiling, the
per-pipe ratios as msprof op computes them (a pipe's busy cycles over the AICs' own spans) and
the rows' measured ratios."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.matmul_program import build_matmul_kernel
from npusim.ops.matmul_tiling import CubeTiling, MatmulTiling

if TYPE_CHECKING:
    from npusim.engine.sim import RunResult
    from npusim.validate import Measurement, Prediction

#: (profiler label, AIC pipe, ratio kind) of the pipe ratios rows B1-B4 measured
_B_PIPES = (
    ("Cube", "M", "compute"),
    ("TEXTRACT", "MTE1", "transfer"),
    ("TLOAD", "MTE2", "transfer"),
    ("TSTORE", "FIX", "transfer"),
)


def b_row_tiling(size: int) -> CubeTiling:
    """Rows B1-B4: baseM/N/K = 128/256/64, stepKa = stepKb = 4, double-buffered L1 and L0, on the
    4 x 6 core grid that row B3 states (singleCore = size/4 x size/6)."""
    return CubeTiling(
        base_m=128,
        base_n=256,
        base_k=64,
        step_ka=4,
        step_kb=4,
        depth_a1=2,
        depth_b1=2,
        single_core_m=math.ceil(size / 4),
        single_core_n=math.ceil(size / 6),
        m_dim=4,
        n_dim=6,
        l0_db=True,
        l0c_db=False,
    )


def aic_mean_span(res: RunResult) -> float:
    """Mean cycles from each AIC's first instruction to its last (msprof's per-core total
    cycles, the denominator of its pipe ratios)."""
    from npusim.report.summary import core_spans

    spans = [b - a for ci, (a, b) in core_spans(res).items()
             if res.kernel.cores[ci].kind == "aic"]
    return sum(spans) / len(spans)


def pipe_ratios(text: str) -> dict[str, float]:
    """The per-pipe ratios (percent) a calibration row's ``other_measured`` text states, by
    profiler label (Cube, TEXTRACT, TLOAD, TSTORE; rows B1-B4)."""
    out = {}
    for label, _, _ in _B_PIPES:
        idx = text.find(label)
        if idx >= 0:
            pct = text[idx:].split("%")[0].split()[-1]
            out[label] = float(pct)
    return out


def calibration_prediction(row: Measurement) -> Prediction | None:
    """Rows A* and B*: fp16 / bf16 matmuls on 910B2 and 910_9391."""
    from npusim.report.summary import pipe_busy_by_kind
    from npusim.validate import Prediction, soc_name_of

    if not (row.id.startswith("A") or row.id.startswith("B")) or row.op != "matmul":
        return None
    from npusim.runner import resolve_soc

    soc = resolve_soc(soc_name_of(row))
    in_dtype = "bfloat16" if row.dtype.startswith("bfloat16") else "float16"
    out_dtype = "float32" if "float32 out" in row.dtype else in_dtype
    trans_b = row.layout.startswith("NT")
    m, k, n = row.size("m"), row.size("k"), row.size("n")
    tiling: CubeTiling | MatmulTiling
    if row.id.startswith("B"):
        tiling = b_row_tiling(m)
    else:
        from npusim.ops.matmul_tiling import default_matmul_tiling

        tiling = default_matmul_tiling(m, k, n, in_dtype, out_dtype, soc, trans_b=trans_b)
    epi = Epilogue("F322F16" if out_dtype != "float32" else "NONE", out_dtype)
    kern = build_matmul_kernel(soc, m, k, n, in_dtype, tiling, epi, trans_b=trans_b)
    from npusim.engine.sim import run_kernel

    res = run_kernel(kern, soc, check_races=False)
    pipes = {}
    if row.id.startswith("B"):
        # msprof op's ratio: a pipe's cycles over the cores' total cycles (each core's own span,
        # not the task duration; DEVKIT data_copy README: *_ratio = *_time / (*_total_cycles /
        # Block Num / f) in every row of its tables), as npusim.profile writes it
        busy = pipe_busy_by_kind(res).get("aic", {})
        span = aic_mean_span(res)
        measured = pipe_ratios(row.other_measured)
        for label, pipe, kind in _B_PIPES:
            if label in measured:
                pipes[label] = (100.0 * busy.get(pipe, 0.0) / span, measured[label], kind)
    tflops = 2 * m * k * n / (res.microseconds * 1e-6) / 1e12
    return Prediction(res.microseconds, pipes, "ratio", note=f"{tflops:.1f} TFLOPS predicted")
