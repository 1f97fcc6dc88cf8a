"""npusim validate: rows predicted under the repeat L2 start, signed errors, report files."""

import csv
from pathlib import Path

import pytest

from npusim import validate as validate_mod
from npusim.cli import main
from npusim.runner import simulate
from npusim.validate import (
    CALIBRATION_MODULES,
    default_measurements_path,
    error_stats,
    format_row_progress,
    format_table,
    load_measurements,
    predict_row,
    run_validation,
    shipped_measurements_path,
    write_report,
)

HEADER = ("id,soc,op,m,k,n,dtype,layout,tiling,measured_us,other_measured,method,source,"
          "confidence")


def _csv(tmp_path, rows):
    p = tmp_path / "m.csv"
    p.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_copy_row_uses_repeat_l2_and_signed_error(tmp_path):
    n = 8 * 1024 * 1024
    path = _csv(tmp_path, [f"F9,Ascend910B2,copy (GM to GM),,,{n},float32,contiguous,x,50.0,,,s,A",
                           "Z1,Ascend910B2,unknown op,,,,,,,1.0,,,s,A"])
    rows = load_measurements(path)
    res = run_validation(rows)
    f9, z1 = res
    expect = simulate("tensor_copy", "Ascend910B2", None, n_elements=n, dtype="float32",
                      check_races=False, l2_start="repeat").microseconds
    cold = simulate("tensor_copy", "Ascend910B2", None, n_elements=n, dtype="float32",
                    check_races=False).microseconds
    assert f9["predicted_us"] == round(expect, 3) != round(cold, 3)
    assert f9["error_pct"] == round(100 * (expect - 50.0) / 50.0, 1)
    assert z1["status"] == "unsupported" and z1["error_pct"] is None
    assert run_validation(rows[:1], l2_start="cold")[0]["predicted_us"] == round(cold, 3)
    stats = error_stats(res)
    assert stats["rows"] == 1 and stats["median_abs_error_pct"] == abs(f9["error_pct"])
    table = format_table(res)
    assert "| F9 |" in table and "unsupported" in table
    md, csvp = write_report(res, tmp_path / "out")
    with open(csvp, newline="", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert [r["id"] for r in back] == ["F9", "Z1"]
    assert float(back[0]["predicted_us"]) == f9["predicted_us"]
    assert "median_abs_error_pct" in md.read_text(encoding="utf-8")



def test_row_without_the_size_its_prediction_needs_names_the_column(tmp_path):
    """A copy row with an empty n, an E1 row with an empty k: a ValueError naming row and
    column (the prediction used to pass None on to the simulator)."""
    path = _csv(tmp_path, ["F9,Ascend910B2,copy (GM to GM),,,,float32,contiguous,x,50.0,,,s,A",
                           "E1z,Ascend910B4,dynamic_quant,4,,,float16,x,x,1.0,,,s,A"])
    f9, e1 = load_measurements(path)
    with pytest.raises(ValueError, match="row F9: column n is empty"):
        predict_row(f9)
    from npusim.ops.group_quant_program import proxy_prediction

    with pytest.raises(ValueError, match="row E1z: column k is empty"):
        proxy_prediction(e1)

def test_every_calibration_module_provides_the_prediction_hook():
    """Each module validate consults imports and defines calibration_prediction (a renamed
    module once could have dropped its rows to "unsupported" without a word)."""
    import importlib

    for name in CALIBRATION_MODULES:
        assert callable(importlib.import_module(name).calibration_prediction), name


def test_a_missing_calibration_module_is_an_error_not_a_skip(tmp_path, monkeypatch):
    """predict_row raises on a listed module that does not exist."""
    (row,) = load_measurements(_csv(tmp_path, [
        "F9,Ascend910B2,copy (GM to GM),,,1024,float32,contiguous,x,50.0,,,s,A"]))
    monkeypatch.setattr(validate_mod, "CALIBRATION_MODULES",
                        ("npusim.ops.no_such_calibration_module", *CALIBRATION_MODULES))
    with pytest.raises(ModuleNotFoundError, match="no_such_calibration_module"):
        predict_row(row)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "measurements.csv"


def test_shipped_calibration_is_the_default_and_loads():
    """Rule: without --measurements / NPUSIM_CALIBRATION validate reads the rows shipped inside
    the package (a fresh clone has no ../shared), and every row has a source."""
    path = shipped_measurements_path()
    assert path.is_file() and path == default_measurements_path()
    rows = load_measurements()
    assert len(rows) >= 30 and all(r.source for r in rows)
    assert {r.id[0] for r in rows} >= {"A", "B", "E", "F", "H"}


@pytest.mark.skipif(not SHARED.is_file(), reason="no shared calibration set next to the project")
def test_shipped_calibration_equals_the_shared_set():
    """Rule: the shipped copy is verbatim (rows are never edited to fit the model)."""
    assert shipped_measurements_path().read_bytes() == SHARED.read_bytes()


def test_parallel_rows_keep_file_order_and_report_each_row(tmp_path):
    """Rule: with workers > 1 each row is reported once as it completes and the result list is in
    the file's row order, equal to the serial run."""
    path = _csv(tmp_path, ["Z1,Ascend910B2,unknown op,,,,,,,1.0,,,s,A",
                           "F8,Ascend910B2,copy (GM to GM),,,65536,float32,contiguous,x,5.0,,,s,A",
                           "Z2,Ascend910B2,other op,,,,,,,1.0,,,s,A"])
    rows = load_measurements(path)
    seen = []
    par = run_validation(rows, workers=2, on_row=lambda d, t, rec, s: seen.append((d, t, rec)))
    assert [r["id"] for r in par] == ["Z1", "F8", "Z2"]
    assert sorted(d for d, _, _ in seen) == [1, 2, 3] and {t for _, t, _ in seen} == {3}
    assert sorted(rec["id"] for _, _, rec in seen) == ["F8", "Z1", "Z2"]
    assert par == run_validation(rows, workers=1)
    line = format_row_progress(2, 3, par[1], 0.5)
    assert line.startswith("[2/3] F8 copy (GM to GM): predicted ") and "error" in line


def test_validate_command_prints_rows_then_closing_line(tmp_path, capsys):
    """Rule: `npusim validate --measurements F` prints one line per row and ends with the
    sentence naming the row count and the median / p90 absolute error."""
    path = _csv(tmp_path, ["F8,Ascend910B2,copy (GM to GM),,,65536,float32,contiguous,x,5.0,,,s,A",
                           "Z1,Ascend910B2,unknown op,,,,,,,1.0,,,s,A"])
    assert main(["validate", "--measurements", str(path), "--workers", "1",
                 "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(x.startswith("[1/2] F8") for x in out) and any(x.startswith("[2/2] Z1") for x in out)
    assert out[-1].startswith("validated 1 rows (1 unsupported): median |error| ")
    assert (tmp_path / "rep" / "validation.csv").is_file()
