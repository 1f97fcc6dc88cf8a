"""The per-token dynamic-quant timing program (calibration rows E1*): race-free schedules for
every tiling shape (one sweep and two sweeps over H), timing-only by contract, and its use for
the E rows in ``npusim validate``."""

import numpy as np
import pytest

from npusim.ops.dynamic_quant_program import (
    DynamicQuantTiling,
    calibration_prediction,
    default_dynamic_quant_tiling,
)
from npusim.runner import resolve_soc, simulate
from npusim.spec import spec
from npusim.validate import CALIBRATION_MODULES, Measurement

SOC = "Ascend910B4"


def _row(rid: str, m: int, k: int = 512) -> Measurement:
    return Measurement(rid, SOC, "dynamic_quant", m, k, None, "float16 in", "ND",
                       "vendor default", 1.0, "", "test")


def test_functional_request_is_refused():
    """Rule: npu_dynamic_quant numerics are not modelled, so arrays raise NotImplementedError."""
    with pytest.raises(NotImplementedError, match="timing-only"):
        simulate("dynamic_quant", SOC, x=np.zeros((4, 512), np.float16))


@pytest.mark.parametrize("shape,dt,exc,msg", [
    ((4, 12), "float16", ValueError, "multiple of 8"),
    ((4, 512), "float32", TypeError, "x: dtype"),
    ((512,), "float16", ValueError, "2-D"),
])
def test_bad_arguments(shape, dt, exc, msg):
    """Rule: shape / dtype errors name the argument."""
    with pytest.raises(exc, match=msg):
        simulate("dynamic_quant", SOC, x=spec(shape, dt))


@pytest.mark.parametrize("rows,h,t", [
    (37, 512, None),                                   # default: one sweep, 16 rows per pass
    (37, 512, DynamicQuantTiling(3, 512, 5, False)),   # single-buffered
    (9, 1000, DynamicQuantTiling(2, 256, 3)),          # H in 4 chunks: two sweeps
    (5, 96, DynamicQuantTiling(5, 64, 1)),             # a 32-wide last chunk (no 2nd reduce)
])
def test_schedules_are_race_free_and_stream_every_byte(rows, h, t):
    """Rule: with race checks on, every tiling runs to completion; x is read once per sweep
    and the int4 output and scales are written exactly once."""
    res = simulate("dynamic_quant", SOC, t, x=spec((rows, h), "bfloat16"), check_races=True)
    tiling = res.tiling
    sweeps = 2 if h > tiling.h_chunk else 1
    paths = res.traffic
    assert paths["path_GM->UB"] == sweeps * rows * h * 2
    assert paths["path_UB->GM"] == rows * h // 2 + rows * 4
    assert len(res.run.kernel.cores) == tiling.cores and res.outputs is None


def test_time_grows_with_rows_and_uses_all_cores():
    """Rule: rows are split over the AIVs; 64x the rows costs more, but far less than 64x."""
    soc = resolve_soc(SOC)
    assert default_dynamic_quant_tiling(soc, 4096, 512).cores == soc.core_counts()["aiv"]
    assert default_dynamic_quant_tiling(soc, 3, 512).cores == 3
    small = simulate("dynamic_quant", SOC, x=spec((64, 512), "float16")).microseconds
    big = simulate("dynamic_quant", SOC, x=spec((4096, 512), "float16")).microseconds
    assert small < big < 64 * small


def test_calibration_prediction_answers_only_e_rows():
    """Rule: E1* rows are predicted with this program (registered in validate), others not."""
    assert "npusim.ops.dynamic_quant_program" in CALIBRATION_MODULES
    assert calibration_prediction(_row("H1", 128)) is None
    pred = calibration_prediction(_row("E1c", 128))
    want = simulate("dynamic_quant", SOC, x=spec((128, 512), "float16"), check_races=False)
    assert pred.predicted_us == pytest.approx(want.microseconds)
    assert "dynamic_quant program" in pred.note
