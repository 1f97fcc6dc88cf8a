"""The notebooks (jupytext percent scripts) execute end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    """Each notebook runs without error and writes its figures into NPUSIM_NOTEBOOK_OUT."""
    env = dict(os.environ, NPUSIM_NOTEBOOK_OUT=str(tmp_path), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()


def test_there_are_three_notebooks():
    """(a) SoC study, (b) tiling study, (c) bit-exact validation."""
    assert [p.name[0] for p in NOTEBOOKS] == ["a", "b", "c"]
