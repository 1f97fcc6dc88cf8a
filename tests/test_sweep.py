"""``npusim sweep``: deterministic result files (worker count, resume, Ray), what-if variants,
the weight_quant_batchmatmul adapter and error rows."""

import csv

import pytest

from npusim.hw import load_soc
from npusim.sweep import (
    RESULT_COLUMNS,
    Study,
    plan_points,
    resolve_overrides,
    run_sweep,
)


def _small_study() -> Study:
    """Two shapes x (baseline, 2x HBM) x the 3 best-bound tilings: 12 quick points."""
    return Study("matmul", [{"name": "Ascend910B2"}],
                 [{"m": 16, "k": 256, "n": 512}, {"m": 32, "k": 512, "n": 256}], simulate_top=3,
                 what_if=[{"label": "hbm_x2", "overrides": ["memory.hbm.bandwidth_gb_per_s*=2"]}])


@pytest.fixture(scope="module")
def serial_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "serial.csv"
    run_sweep(_small_study(), path, workers=1, progress=False)
    return path


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_serial_file_shape(serial_csv):
    """Every planned point gives one ok row, in plan order, with the declared columns."""
    rows = _rows(serial_csv)
    plan = plan_points(_small_study())
    assert list(rows[0]) == RESULT_COLUMNS
    assert [r["key"] for r in rows] == [p.key for p in plan]
    assert all(r["status"] == "ok" and int(r["cycles"]) > 0 for r in rows)
    assert {r["variant"] for r in rows} == {"baseline", "hbm_x2"}


def test_pool_one_and_two_workers_byte_identical(serial_csv, tmp_path):
    """Rows are written in plan order whatever the completion order: the 2-process pool writes
    the same bytes as the serial run."""
    pooled = tmp_path / "pool.csv"
    run_sweep(_small_study(), pooled, workers=2, progress=False)
    assert pooled.read_bytes() == serial_csv.read_bytes()


def test_resume_completes_to_the_same_file(serial_csv, tmp_path):
    """An interrupted sweep (file cut after 5 rows) resumed gives the uninterrupted file."""
    lines = serial_csv.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.csv"
    cut.write_bytes(b"".join(lines[:6]))
    run_sweep(_small_study(), cut, workers=1, progress=False)
    assert cut.read_bytes() == serial_csv.read_bytes()


def test_ray_and_pool_byte_identical(serial_csv, tmp_path):
    """A local Ray run of the same study writes the pool's file byte for byte."""
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray.csv"
    try:
        run_sweep(_small_study(), out, workers=2, use_ray=True, progress=False)
    finally:
        ray.shutdown()
    assert out.read_bytes() == serial_csv.read_bytes()


def test_scaled_override_doubles_the_descriptor_value():
    """``path*=2`` resolves against the SoC's own value; integer fields stay integers."""
    hbm = load_soc("Ascend910B4").memory.hbm.bandwidth_gb_per_s
    clock = load_soc("Ascend910B4").aicore_freq_mhz
    got = resolve_overrides("Ascend910B4", ["memory.hbm.bandwidth_gb_per_s*=2",
                                            "aicore_freq_mhz*=1.5", "cores.aic.count=4"])
    assert got == [f"memory.hbm.bandwidth_gb_per_s={hbm * 2}",
                   f"aicore_freq_mhz={round(clock * 1.5)}", "cores.aic.count=4"]
    with pytest.raises(ValueError, match="no numeric field"):
        resolve_overrides("Ascend910B4", ["memory.hbm.nope*=2"])


def test_study_yaml_what_if_variants(tmp_path):
    """what_if entries are crossed with every SoC after its baseline, in study order."""
    p = tmp_path / "s.yaml"
    p.write_text("op: matmul\nsocs: [Ascend910B2, Ascend910B4]\n"
                 "what_if:\n  - {label: l1x2, "
                 "overrides: ['cores.aic.buffers.L1.capacity_bytes*=2']}\n"
                 "cases: {m: [16], k: [256], n: [256]}\n")
    v = Study.from_yaml(p).variants()
    assert [(x["name"], x["label"]) for x in v] == [
        ("Ascend910B2", "baseline"), ("Ascend910B2", "l1x2"),
        ("Ascend910B4", "baseline"), ("Ascend910B4", "l1x2")]
    l1 = load_soc("Ascend910B2").core("aic").buffers["L1"].capacity_bytes
    assert v[1]["overrides"] == [f"cores.aic.buffers.L1.capacity_bytes={2 * l1}"]
    p.write_text("op: matmul\nsocs: [Ascend910B2]\nwhat_if: [{label: x}]\ncases: {m: [16]}\n")
    with pytest.raises(ValueError, match="label and overrides"):
        Study.from_yaml(p)


def test_wqbmm_sweep_simulates_the_operator_and_records_errors(tmp_path):
    """weight_quant_batchmatmul points run that operator (not a stand-in matmul), each
    inner_precise mode is its own point, and a kernel that cannot run is an error row."""
    study = Study("weight_quant_batchmatmul", [{"name": "Ascend910B2"}],
                  [{"m": 16, "k": 512, "n": 512, "inner_precise": 0},
                   {"m": 16, "k": 512, "n": 512, "inner_precise": 1},
                   {"m": 16, "k": 512, "n": 512, "kernel": "NoSuchKernel"}])
    out = tmp_path / "wq.csv"
    run_sweep(study, out, workers=1, progress=False)
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    assert rows[0]["kernel"] == rows[1]["kernel"] != ""
    assert "matmul" not in rows[0]["kernel"]
    assert "aiv_V_busy_pct" in rows[0]["summary"]
    assert rows[2]["error"] and rows[2]["cycles"] == ""
