"""``python -m npusim.dropin``: what goes wrong before the script starts is one
``npusim.dropin: error:`` line and status 2 (it was a Python traceback with status 1: an
unknown SoC, a missing script or module, no torch); ``--soc=NAME`` is read as the option."""

from __future__ import annotations

import subprocess
import sys

import pytest

import npusim.dropin as dropin


@pytest.mark.parametrize(("argv", "message"), [
    ([], "usage: python -m npusim.dropin"),
    (["--soc"], "--soc needs a SoC name"),
    (["-m"], "-m needs a module name"),
    (["--soc", "NotASoc", "x.py"], "'NotASoc' is not a known SoC"),
    (["no_such_script.py"], "no_such_script.py: no such script file"),
    (["--soc=Ascend310P3", "no_such_script.py"], "no_such_script.py: no such script file"),
    (["-m", "no_such_module_npusim"], "no module named 'no_such_module_npusim'"),
    (["-m", "no_such_pkg_npusim.sub"], "no module named 'no_such_pkg_npusim.sub'"),
])
def test_set_up_errors_are_one_line_and_status_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if argv[-1:] == ["x.py"]:
        (tmp_path / "x.py").write_text("raise SystemExit('the script must not run')\n")
    assert dropin.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("npusim.dropin: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_without_torch_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    """The hint was pip install 'npusim[torch]' (a registry name, not this checkout)."""
    script = tmp_path / "s.py"
    script.write_text("raise SystemExit('the script must not run')\n")
    monkeypatch.setattr(dropin, "_installed", False)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert dropin.main([str(script)]) == 2
    err = capsys.readouterr().err
    assert err == ("npusim.dropin: error: npusim's drop-in mode needs torch: pip install -e "
                   "\".[torch]\" in the npusim checkout\n")


def test_the_scripts_own_errors_still_propagate(tmp_path):
    """Only the launcher's set-up is caught: an exception of the script is the script's (its
    own interpreter: install() patches torch for the whole process)."""
    pytest.importorskip("torch")
    script = tmp_path / "s.py"
    script.write_text("import torch_npu\nraise KeyError('the script')\n")
    done = subprocess.run([sys.executable, "-m", "npusim.dropin", "--soc=Ascend310P3",
                           str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and done.stderr.rstrip().endswith("KeyError: 'the script'")
