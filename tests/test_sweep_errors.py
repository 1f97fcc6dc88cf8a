"""Sweeps never lie by omission: a case or tiling that fails is an error row (never an abort
with no rows), a study whose every point fails is a CLI error, the study file is checked field
by field, and the summary compares the best tiling with the one ``simulate`` picks by default."""

import json
from dataclasses import asdict

import pytest

import npusim
from npusim.cli import main
from npusim.hw import load_soc
from npusim.ops.matmul_sweep import enumerate_tilings
from npusim.ops.matmul_tiling import tiling_from_dict
from npusim.spec import spec
from npusim.sweep import Study, StudyError, plan_points, run_sweep
from npusim.sweep_file import read_rows, tidy_path

CASE = {"m": 16, "k": 256, "n": 256}


def _study_file(tmp_path, body: str):
    p = tmp_path / "study.yaml"
    p.write_text(body, encoding="utf-8")
    return p


def test_case_that_fails_to_plan_is_an_error_row_and_the_rest_run(tmp_path):
    """m = -16 becomes one error row naming the rule; the legal case still gives ok rows."""
    study = Study("matmul", [{"name": "Ascend910B2"}], [{"m": -16, "k": 256, "n": 256}, CASE],
                  simulate_top=2, max_tilings=12)
    out = tmp_path / "r.csv"
    run_sweep(study, out, workers=1, progress=False)
    rows = read_rows(out)
    bad = [r for r in rows if json.loads(r["case"])["m"] == -16]
    assert len(bad) == 1 and bad[0]["status"] == "error"
    assert "planning failed" in bad[0]["error"] and "-16" in bad[0]["error"]
    assert [r["status"] for r in rows if r not in bad] == ["ok"] * (len(rows) - 1)


def test_all_points_failing_is_a_cli_error_not_exit_0(tmp_path, capsys):
    """``m: [-16]`` alone: the error row is written and the command exits 2 saying so."""
    study = _study_file(tmp_path, "op: matmul\nsocs: [Ascend910B2]\n"
                        "cases: {m: [-16], k: [256], n: [256]}\n")
    out = tmp_path / "r.csv"
    assert main(["sweep", str(study), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("npusim: error: every point of the study failed")
    assert [r["status"] for r in read_rows(out)] == ["error"]


def test_illegal_user_tiling_is_its_own_error_row(tmp_path):
    """A listed tiling the adapter refuses is an error row naming why; the others simulate."""
    soc = load_soc("Ascend910B2")
    good = asdict(next(iter(enumerate_tilings(soc, CASE))))
    study = Study("matmul", [{"name": "Ascend910B2"}], [CASE],
                  tilings=[good, {**good, "base_m": 7}])
    out = tmp_path / "r.csv"
    run_sweep(study, out, workers=1, progress=False)
    rows = read_rows(out)
    refused = [r for r in rows if r["status"] == "error"]
    assert len(refused) == 1 and "tiling refused" in refused[0]["error"]
    assert json.loads(refused[0]["tiling"])["base_m"] == 7
    assert any(r["status"] == "ok" and r["default"] == "0" for r in rows)


def test_default_point_is_what_simulate_picks(tmp_path):
    """The row marked default has the cycles of ``simulate`` with no tiling (the reference of
    the printed speed-up), and exactly one row per case is marked."""
    study = Study("matmul", [{"name": "Ascend910B2"}], [CASE], simulate_top=2, max_tilings=12)
    out = tmp_path / "r.csv"
    run_sweep(study, out, workers=1, progress=False)
    rows = read_rows(out)
    marked = [r for r in rows if r["default"] == "1"]
    assert len(marked) == 1
    ref = npusim.simulate("matmul", "Ascend910B2", a=spec((16, 256), "float16"),
                          b=spec((256, 256), "float16"), out_dtype="float16",
                          check_races=False)
    assert int(marked[0]["cycles"]) == ref.cycles
    assert tiling_from_dict(json.loads(marked[0]["tiling"])) == ref.tiling


def test_summary_prints_best_tiling_and_speedup(tmp_path, capsys):
    """The closing summary names the best tiling per case and default us / best us."""
    study = _study_file(tmp_path, "op: matmul\nsocs: [Ascend910B2]\n"
                        "cases: {m: [16], k: [256], n: [256]}\nsimulate_top: 3\n"
                        "max_tilings: 12\n")
    out = tmp_path / "r.csv"
    assert main(["sweep", str(study), "--out", str(out), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    rows = [r for r in read_rows(out) if r["status"] == "ok"]
    best = min(rows, key=lambda r: float(r["us"]))
    default = next(r for r in rows if r["default"] == "1")
    speedup = float(default["us"]) / float(best["us"])
    line = next(s for s in text.splitlines() if "k=256 m=16 n=256:" in s)
    assert f"{best['us']} us with " in line and f"-> {speedup:.2f}x" in line
    assert "points: " in text and "resumed" not in text


def test_tidy_file_has_one_column_per_field(tmp_path):
    """``<out>.tidy.csv`` holds the same rows with case.* and tiling.* columns."""
    study = Study("matmul", [{"name": "Ascend910B2"}], [CASE], simulate_top=2, max_tilings=12)
    out = tmp_path / "r.csv"
    outcome = run_sweep(study, out, workers=1, progress=False)
    assert outcome.tidy == tidy_path(out)
    tidy, rows = read_rows(outcome.tidy), read_rows(out)
    assert [t["key"] for t in tidy] == [r["key"] for r in rows]
    for t, r in zip(tidy, rows, strict=True):
        assert {k[5:]: json.loads(v) for k, v in t.items() if k.startswith("case.")} == \
            json.loads(r["case"])
        tiling = json.loads(r["tiling"])
        assert t["tiling.base_m"] == json.dumps(tiling["base_m"])
        assert t["tiling.block_order"] == tiling["block_order"]


@pytest.mark.parametrize(("body", "needle"), [
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: [.inf], k: [256], n: [256]}\n",
     "field cases.m[0]: inf is not a finite number"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16], k: [256], n: [256]}\n"
     "simulate_top: 0\n", "field simulate_top: must be an integer >= 1"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16], k: [256], n: [256]}\n"
     "simulate_top: true\n", "field simulate_top"),
    ("op: matmul\nsocs: []\ncases: {m: [16]}\n", "field socs: must be a non-empty list"),
    ("op: matmul\nsocs: [{nme: Ascend910B2}]\ncases: {m: [16]}\n", "field socs[0]"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: []}\n", "field cases.m: an empty list"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: []\n", "field cases: must be a non-empty"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: [{m: [1, 2]}]\n", "field cases[0].m"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16]}\nwhat_if: [{label: baseline, "
     "overrides: ['aicore_freq_mhz=1']}]\n", "what_if[0].label: 'baseline' is the baseline"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16]}\nwhat_if: [{label: a, "
     "overrides: 'aicore_freq_mhz=1'}]\n", "what_if[0].overrides: must be a list"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: [16]}\ntilngs: []\n", "unknown key(s) tilngs"),
    ("op: 7\nsocs: [Ascend910B2]\ncases: {m: [16]}\n", "field op: must be an operator name"),
    ("- op\n", "a study is a mapping"),
    ("op: matmul\nsocs: [Ascend910B2]\ncases: {m: " + str(list(range(400))) + ", k: "
     + str(list(range(400))) + "}\n", "160000 cases, above the limit"),
])
def test_bad_study_file_names_file_and_field(tmp_path, body, needle):
    """Every malformed study is refused at load time with the file and the rule."""
    p = _study_file(tmp_path, body)
    with pytest.raises(StudyError) as e:
        Study.from_yaml(p)
    assert str(p) in str(e.value) and needle in str(e.value)


@pytest.mark.parametrize(("override", "needle"), [
    ("aicore_freq_mhz*=abc", "factor 'abc' is not a number"),
    ("aicore_freq_mhz*=-2", "must be a finite number > 0"),
    ("aicore_freq_mhz*=inf", "must be a finite number > 0"),
])
def test_bad_scale_factor_is_refused_before_planning(override, needle):
    """A ``*=`` factor that is not a positive finite number is a clear error, not a traceback."""
    study = Study("matmul", [{"name": "Ascend910B2", "overrides": [override]}], [CASE])
    with pytest.raises(ValueError, match=needle):
        plan_points(study)


def test_wqbmm_study_lists_kernel_tiling_fields(tmp_path):
    """A weight_quant_batchmatmul study lists fields of the selected kernel's own tiling (here
    MsdGroup's K split; ``cube.FIELD`` for its cube block): each listed tiling runs as the
    default with those fields replaced - the same cycles as simulate() with that tiling - and an
    illegal one is an error row naming the rule."""
    import dataclasses

    from npusim.ops.weight_quant_operator import OPERATOR, _wq_case

    case = {"m": 1, "k": 1024, "n": 1024, "weight_dtype": "int4", "group_size": 128}
    split = {"cube_block_dim_k": 2, "single_core_k": 512, "single_core_group": 4}
    study = Study("weight_quant_batchmatmul", [{"name": "Ascend910B2"}], [case],
                  tilings=[{"tiling": "default"}, split, {"cube.base_k": 7}])
    out = tmp_path / "r.csv"
    run_sweep(study, out, workers=1, progress=False)
    rows = {r["tiling"]: r for r in read_rows(out)}
    soc = load_soc("Ascend910B2")
    kt = dataclasses.replace(OPERATOR.default_tiling(soc, **_wq_case(case)), **split)
    want = npusim.simulate("weight_quant_batchmatmul", soc, kt, check_races=False,
                           **_wq_case(case))
    got = rows[json.dumps(split, sort_keys=True)]
    assert got["status"] == "ok" and int(got["cycles"]) == want.cycles
    assert int(rows['{"tiling": "default"}']["cycles"]) != want.cycles
    bad = rows[json.dumps({"cube.base_k": 7})]
    assert bad["status"] == "error" and "cube.base_k=7: must be a multiple of 64" in bad["error"]


@pytest.mark.parametrize("where, message", [("dir", "not a regular file (a study is a YAML file)"),
                                            ("missing", "no such file")])
def test_study_path_that_is_not_a_file(tmp_path, capsys, where, message):
    """A directory (or a device such as /dev/null) is named as what it is, a missing path as
    missing; both exit 2 with one error line."""
    path = tmp_path if where == "dir" else tmp_path / "absent.yaml"
    assert main(["sweep", str(path), "--out", str(tmp_path / "r.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"npusim: error: {path}: {message}"


@pytest.mark.parametrize("flags", [["--m", "64"], ["--simulate-top", "3", "--op", "matmul"],
                                   ["--max-tilings", "5"], ["--what-if", "aicore_freq_mhz*=2"]])
def test_flags_of_a_flags_study_beside_a_study_file_are_refused(tmp_path, capsys, flags):
    """Rule: ``npusim sweep study.yaml --m 64`` refuses the flags a study file leaves unread
    (they were silently ignored: the study's cases ran), naming them, before any file is
    written; ``--out`` / ``--workers`` / ``--report`` still apply to a study file."""
    study = _study_file(tmp_path, "op: matmul\nsocs: [Ascend910B2]\n"
                        "cases: {m: [16], k: [256], n: [256]}\nsimulate_top: 1\n")
    out = tmp_path / "r.csv"
    assert main(["sweep", str(study), "--out", str(out), "--workers", "1", *flags]) == 2
    err = capsys.readouterr().err
    named = [f for f in flags if f.startswith("--")]
    assert all(f in err for f in named) and "study file" in err, err
    assert not out.exists()
    assert main(["sweep", str(study), "--out", str(out), "--workers", "1"]) == 0
    rows = read_rows(out)
    assert rows and {r["status"] for r in rows} == {"ok"}
    assert {json.loads(r["case"])["m"] for r in rows} == {16}


def test_a_flags_study_keeps_its_defaults(tmp_path, capsys):
    """Without a study file the flags study still defaults to matmul on Ascend910B2 with
    simulate_top 8 (the options now default to None so that a study file can refuse them)."""
    out = tmp_path / "f.csv"
    assert main(["sweep", "--m", "16", "--k", "256", "--n", "256", "--out", str(out),
                 "--workers", "1"]) == 0
    rows = read_rows(out)
    assert {r["op"] for r in rows} == {"matmul"} and {r["soc"] for r in rows} == {"Ascend910B2"}
    # the 8 best-bound tilings, plus the default tiling's row when it is not among them
    assert len(rows) - (sum(r["default"] == "1" for r in rows[8:])) == 8, len(rows)
