"""Sweep files survive interruption: whole-line appends, a torn tail is cut and its point run
again, a kill -9 mid-sweep resumes to the uninterrupted file byte for byte, and a sweep that
cannot start leaves no file (or the old file unchanged)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from npusim.sweep import Study, SweepError, run_sweep
from npusim.sweep_file import read_rows

STUDY_YAML = """\
op: matmul
socs: [Ascend910B2]
what_if:
  - {label: hbm_x2, overrides: ['memory.hbm.bandwidth_gb_per_s*=2']}
cases: {m: [16, 32, 64, 128], k: [256], n: [256, 512]}
simulate_top: 3
max_tilings: 24
"""


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("resume") / "study.yaml"
    p.write_text(STUDY_YAML)
    return p


@pytest.fixture(scope="module")
def whole(study_file):
    """The uninterrupted serial run of the study."""
    out = study_file.parent / "whole.csv"
    run_sweep(Study.from_yaml(study_file), out, workers=1, progress=False)
    return out


def test_torn_last_line_is_cut_and_recomputed(study_file, whole, tmp_path):
    """A file whose last row stops mid-line (no newline) resumes to the uninterrupted bytes:
    the fragment is dropped, not appended onto, and the outcome says so."""
    data = whole.read_bytes()
    lines = data.splitlines(keepends=True)
    torn = b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2]
    out = tmp_path / "torn.csv"
    out.write_bytes(torn)
    outcome = run_sweep(Study.from_yaml(study_file), out, workers=1, progress=False)
    assert out.read_bytes() == data
    assert outcome.torn_tail_dropped and outcome.already_done == 4
    assert outcome.written == len(lines) - 1 - 4


def test_torn_header_is_rewritten(study_file, whole, tmp_path):
    """Even a header cut short (killed on the very first write) resumes to the whole file."""
    out = tmp_path / "torn_header.csv"
    out.write_bytes(whole.read_bytes()[:10])
    run_sweep(Study.from_yaml(study_file), out, workers=1, progress=False)
    assert out.read_bytes() == whole.read_bytes()


def test_kill_9_mid_sweep_then_resume_is_byte_identical(study_file, whole, tmp_path):
    """A sweep process killed with SIGKILL after some rows, resumed, writes exactly the file
    of the uninterrupted run."""
    out = tmp_path / "killed.csv"
    total = len(whole.read_bytes().splitlines()) - 1
    proc = subprocess.Popen([sys.executable, "-m", "npusim.cli", "sweep", str(study_file),
                             "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    rows_at_kill = out.read_bytes().count(b"\n") - 1
    assert 2 <= rows_at_kill < total, "the kill must land mid-sweep"
    outcome = run_sweep(Study.from_yaml(study_file), out, workers=1, progress=False)
    assert outcome.already_done >= 2
    assert out.read_bytes() == whole.read_bytes()


def test_cli_says_it_resumed(study_file, whole, tmp_path, capsys):
    """``npusim sweep`` on a partly done file says how many points were already done."""
    from npusim.cli import main

    lines = whole.read_bytes().splitlines(keepends=True)
    out = tmp_path / "part.csv"
    out.write_bytes(b"".join(lines[:8]))
    assert main(["sweep", str(study_file), "--out", str(out), "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert f"resumed: 7 of {len(lines) - 1} points were already done" in text
    assert out.read_bytes() == whole.read_bytes()


def test_ray_missing_fails_before_any_file(monkeypatch, study_file, tmp_path):
    """--ray without Ray installed is refused up front: no results file is created."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    out = tmp_path / "ray.csv"
    with pytest.raises(SweepError, match=r'--ray needs Ray.*pip install -e "\.\[ray\]" in the '
                                         "npusim checkout"):
        run_sweep(Study.from_yaml(study_file), out, use_ray=True, progress=False)
    assert not out.exists()


def test_bad_study_leaves_old_file_unchanged(whole, tmp_path):
    """A start-up failure (unknown SoC, bad override path) neither creates nor touches files."""
    out = tmp_path / "new.csv"
    with pytest.raises(ValueError, match="NoSuchSoc"):
        run_sweep(Study("matmul", [{"name": "NoSuchSoc"}], [{"m": 16, "k": 256, "n": 256}]),
                  out, workers=1, progress=False)
    assert not out.exists()
    old = tmp_path / "old.csv"
    old.write_bytes(whole.read_bytes())
    with pytest.raises(ValueError, match=r"memory\.hbm\.nope"):
        run_sweep(Study("matmul", [{"name": "Ascend910B2", "overrides": ["memory.hbm.nope=1"]}],
                        [{"m": 16, "k": 256, "n": 256}]), old, workers=1, progress=False)
    assert old.read_bytes() == whole.read_bytes()


def test_results_file_of_other_columns_is_refused_untouched(tmp_path):
    """Resuming into a CSV that is not this version's results file is an error naming it."""
    out = tmp_path / "other.csv"
    out.write_bytes(b"a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"other\.csv: its columns"):
        run_sweep(Study("matmul", [{"name": "Ascend910B2"}], [{"m": 16, "k": 256, "n": 256}]),
                  out, workers=1, progress=False)
    assert out.read_bytes() == b"a,b,c\n1,2,3\n"


def test_corrupt_middle_row_is_an_error_naming_the_line(whole, tmp_path, study_file):
    """A complete line in the middle that is not a result row is reported, not skipped."""
    lines = whole.read_bytes().splitlines(keepends=True)
    out = tmp_path / "corrupt.csv"
    out.write_bytes(b"".join(lines[:3]) + b"garbage,row\n" + b"".join(lines[3:5]))
    with pytest.raises(ValueError, match="line 4 is not a complete result row"):
        run_sweep(Study.from_yaml(study_file), out, workers=1, progress=False)


def test_rows_are_whole_lines(whole):
    """Every row of a finished file has every column (the file ends with a newline)."""
    data = whole.read_bytes()
    assert data.endswith(b"\n")
    rows = read_rows(whole)
    assert rows and all(None not in r and len(r) == len(rows[0]) for r in rows)
