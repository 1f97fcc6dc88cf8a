"""`npusim run` user errors found in review: an empty --tiling value and an output file that
cannot be written are one ``npusim: error:`` line naming the flag, exit status 2."""

from __future__ import annotations

import os

import pytest

from npusim.cli import main


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def test_empty_tiling_value_is_refused(capsys):
    rc, err = _run(capsys, ["run", "matmul", "--m", "256", "--tiling", "base_m="])
    assert rc == 2
    assert "npusim: error:" in err and "base_m=" in err and "no value" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_unwritable_output_names_its_flag(capsys):
    rc, err = _run(capsys, ["run", "matmul", "--m", "256", "--csv", "/dev/full"])
    assert rc == 2
    assert "--csv /dev/full" in err and "No space left" in err
    assert "Traceback" not in err
