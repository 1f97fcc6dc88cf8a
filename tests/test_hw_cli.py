"""The `npusim socs` command: listing, show with what-if changes, validate."""

import argparse
import io

from npusim.hw import list_socs
from npusim.hw.cli_socs import add_socs_parser, run_socs


def _run(argv):
    parser = argparse.ArgumentParser(prog="npusim")
    add_socs_parser(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    rc = run_socs(parser.parse_args(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def test_listing_names_all_nine_with_peaks():
    """`npusim socs` lists every shipped SoC with cores, clock, fp16/int8 peaks, HBM, L2."""
    rc, out, _ = _run(["socs"])
    assert rc == 0
    lines = out.splitlines()
    assert "fp16 TFLOPS" in lines[0] and "int8 TOPS" in lines[0] and "L2 MiB" in lines[0]
    for name in list_socs():
        assert any(line.startswith(name + " ") for line in lines), name
    b2 = next(line for line in lines if line.startswith("Ascend910B2 "))
    assert "24 AIC + 48 AIV" in b2 and "353.9" in b2 and "707.8" in b2 and "1446" in b2
    p3 = next(line for line in lines if line.startswith("Ascend310P3 "))
    assert "8 AIC + 7 VEC" in p3 and "69.5" in p3 and "1060 (vec 1000)" in p3
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned


def test_main_entry_point_lists_socs(capsys):
    """npusim.cli.main(['socs']) reaches this command and prints all nine names."""
    from npusim.cli import main

    assert main(["socs"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_socs())


def test_show_prints_resolved_yaml_with_overrides(tmp_path):
    """`socs show NAME --set` prints the resolved descriptor including the changed value."""
    rc, out, _ = _run(
        ["socs", "show", "Ascend910B4", "--set", "memory.hbm.bandwidth_gb_per_s=2000"]
    )
    assert rc == 0
    assert "name: Ascend910B4" in out and "bandwidth_gb_per_s: 2000" in out
    assert "What-if: memory.hbm.bandwidth_gb_per_s=2000" in out


def test_show_reports_bad_override():
    """A bad override makes `socs show` exit 1 with the error on stderr."""
    rc, out, err = _run(["socs", "show", "Ascend910B4", "--set", "nope=1"])
    assert rc == 2 and out == "" and "nope: unknown override path" in err


def test_validate_ok_and_error(tmp_path):
    """`socs validate FILE`: exit 0 and OK for a good file; exit 1 and the error otherwise."""
    _, dumped, _ = _run(["socs", "show", "Ascend910_9391"])
    good = tmp_path / "good.yaml"
    good.write_text(dumped, encoding="utf-8")
    rc, out, _ = _run(["socs", "validate", str(good)])
    assert rc == 0 and out.startswith("OK")
    bad = tmp_path / "bad.yaml"
    bad.write_text(dumped.replace("aicore_freq_mhz:", "aicore_freq:"), encoding="utf-8")
    rc, out, err = _run(["socs", "validate", str(bad)])
    assert rc == 2 and str(bad) in err and "aicore_freq" in err
