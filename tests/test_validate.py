"""npusim validate: rows predicted under the repeat L2 start, signed errors, report files."""

import csv

from npusim.runner import simulate
from npusim.validate import (
    error_stats,
    format_table,
    load_measurements,
    run_validation,
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
