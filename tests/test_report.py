"""``npusim report``: the comparison report writes its files, and the numbers in its tables are
the CSV's numbers."""

import builtins
import csv
import json

import pytest

from npusim.cli import main
from npusim.report.compare import write_report
from npusim.sweep import Study, run_sweep


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A matmul study with a what-if variant and a W4A16 study varying inner_precise, in one
    CSV (the report groups by op-agnostic keys)."""
    d = tmp_path_factory.mktemp("report")
    path = d / "results.csv"
    mm = Study("matmul", [{"name": "Ascend910B2"}], [{"m": 16, "k": 512, "n": 1024}],
               simulate_top=8,
               what_if=[{"label": "hbm_x2", "overrides": ["memory.hbm.bandwidth_gb_per_s*=2"]}])
    wq = Study("weight_quant_batchmatmul", [{"name": "Ascend910B2"}],
               [{"m": 16, "k": 512, "n": 512, "inner_precise": ip} for ip in (0, 1)])
    run_sweep(mm, path, workers=1, progress=False)
    run_sweep(wq, path, workers=1, progress=False)
    out = d / "rep"
    assert main(["report", str(path), "--out", str(out)]) == 0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, out, (out / "report.md").read_text()


def _tables(md: str) -> dict[str, list[dict[str, str]]]:
    """Markdown tables keyed by the heading above them (later ones under one heading get #2...)."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, lines = "", md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("# ")
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            head = [c.strip() for c in lines[i].strip("|").split("|")]
            body = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append(dict(zip(head, [c.strip() for c in lines[i].strip("|").split("|")],
                                     strict=True)))
                i += 1
            name = heading if heading not in tables else f"{heading}#{len(tables)}"
            tables[name] = body
            continue
        i += 1
    return tables


def _case_label(case_json: str) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(json.loads(case_json).items()))


def test_files_written(results):
    """The markdown and every plot (best time, roofline, pipes, heatmap, inner_precise) exist."""
    _, out, md = results
    for name in ("report.md", "best.png", "roofline.png", "pipes.png", "heatmap_0.png",
                 "inner_precise.png"):
        assert (out / name).stat().st_size > 1000 or name == "report.md", name
    assert "## inner_precise comparison" in md


def test_best_table_equals_csv(results):
    """Each (soc, variant, case) shows the CSV's least us (first such row), that row's cycles
    and kernel."""
    rows, _, md = results
    best = _tables(md)["Best time per case and variant"]
    assert len(best) == 4
    for b in best:
        group = [r for r in rows if r["status"] == "ok" and r["variant"] == b["variant"]
                 and _case_label(r["case"]) == b["case"]]
        least = min(group, key=lambda r: float(r["us"]))
        assert (b["us"], b["cycles"], b["kernel"]) == (least["us"], least["cycles"],
                                                        least["kernel"])
    base = next(b for b in best if b["variant"] == "baseline" and "inner" not in b["case"])
    fast = next(b for b in best if b["variant"] == "hbm_x2")
    assert float(fast["speed-up"]) == pytest.approx(float(base["us"]) / float(fast["us"]),
                                                    abs=1e-3)


def test_pipe_table_equals_csv_summary(results):
    """The busy % of each pipe is the best row's value in the CSV's summary JSON."""
    rows, _, md = results
    pipes = _tables(md)["Per-pipe busy time (best point)"]
    best = _tables(md)["Best time per case and variant"]
    for p, b in zip(pipes, best, strict=True):
        row = next(r for r in rows if r["us"] == b["us"] and r["variant"] == b["variant"]
                   and _case_label(r["case"]) == b["case"])
        summ = json.loads(row["summary"])
        for col, val in p.items():
            if col in ("case", "soc", "variant"):
                continue
            if val == "-":  # a pipe this operator's cores do not have
                assert f"{col}_busy_pct" not in summ
            else:
                assert float(val) == summ[f"{col}_busy_pct"]


def test_heatmap_cells_are_least_csv_times(results):
    """Every filled heatmap cell is the least us of the CSV rows at that pair of tiling fields."""
    rows, _, md = results
    tables = _tables(md)
    maps = {k: v for k, v in tables.items() if k.startswith("Ascend910B2 ")}
    assert maps
    checked = 0
    for title, table in maps.items():
        _, variant, *case = title.split("#")[0].split(" ")
        group = [r for r in rows if r["status"] == "ok" and r["variant"] == variant
                 and _case_label(r["case"]) == " ".join(case)]
        ycol = next(iter(table[0]))
        yname, xname = (s.strip() for s in ycol.split("\\"))
        for line in table:
            for xv, cell in line.items():
                if xv == ycol or not cell:
                    continue
                at = [float(r["us"]) for r in group
                      if str(json.loads(r["tiling"])[xname]) == xv
                      and str(json.loads(r["tiling"])[yname]) == line[ycol]]
                assert float(cell) == min(at)
                checked += 1
    assert checked >= 2


def test_inner_precise_table(results):
    """Time per mode from the CSV; the outputs of the two modes are compared element-wise."""
    rows, _, md = results
    (t,) = _tables(md)["inner_precise comparison"]
    us = {json.loads(r["case"]).get("inner_precise"): r["us"] for r in rows
          if r["op"] == "weight_quant_batchmatmul"}
    assert (t["us ip=0"], t["us ip=1"]) == (us[0], us[1])
    differing, total = map(int, t["differing outputs"].split("/"))
    assert total == 16 * 512 and 0 <= differing <= total
    assert (differing == 0) == (float(t["max abs diff"]) == 0.0)


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    """Without the 'plot' extra the report says what to install instead of a bare ImportError."""
    real_import = builtins.__import__

    def no_mpl(name, *a, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    path = tmp_path / "r.csv"
    path.write_text("key\n")
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[plot\]" in the npusim checkout'):
        write_report(path, tmp_path / "out")
