"""Leave-one-family-out bookkeeping (npusim.calibration_fit) on synthetic errors and
elasticities: refit through other families when they constrain a number, declared fallback when
none does, and every fitted number names its rows and a descriptor path that exists."""

import pytest

from npusim import calibration_fit as cf
from npusim.hw import load_soc


def _elast(**over):
    e = {f: {n.name: 0.0 for n in cf.FITTED} for f in cf.FAMILIES}
    for key, v in over.items():
        fam, name = key.split("__")
        e[fam][name.replace("_", " ")] = v
    return e


def test_every_fitted_number_has_a_real_descriptor_path_and_rows():
    """Each listed number exists in the 910_9391 descriptor and cites its rows and family."""
    soc = load_soc("Ascend910_9391")
    for n in cf.FITTED:
        assert n.family in cf.FAMILIES and n.rows
        for p in n.paths:
            assert cf._get(soc, p) is not None


def test_unconstrained_number_falls_back_and_shifts_the_family():
    """Only E is sensitive to the launch floor: leaving E out uses the fallback factor f (the
    documented DEVKIT figure over the fit), and an E row with elasticity 0.5 at +0 % error moves
    to 100 x 0.5 x (f - 1) %."""
    e = _elast(E__launch_floor=0.5)
    res = [{"id": "E1a", "error_pct": 0.0}, {"id": "A2", "error_pct": 3.0}]
    out = cf.lofo(res, e)
    floor = next(n for n in cf.FITTED if n.name == "launch floor")
    assert floor.fallback != 1.0
    assert out["E"]["errors"]["E1a"] == pytest.approx(round(50.0 * (floor.fallback - 1), 1))
    assert any("fallback" in s for s in out["E"]["numbers"])
    assert out["A"]["errors"]["A2"] == 3.0  # nothing fitted on A


def test_constrained_number_is_refit_on_the_other_families():
    """If A rows are also sensitive to the launch floor, leaving E out refits it on A: A's +10 %
    error with elasticity 0.5 asks for about -18 %, which then moves E's rows."""
    e = _elast(E__launch_floor=0.5, A__launch_floor=0.5)
    res = [{"id": "E1a", "error_pct": 0.0}, {"id": "A2", "error_pct": 10.0}]
    out = cf.lofo(res, e)
    d = -10.0 / (110 * 0.5)
    assert out["E"]["errors"]["E1a"] == pytest.approx(round(100 * 0.5 * d, 1))
    assert any("refit" in s for s in out["E"]["numbers"])


def test_provenance_table_gives_each_fitted_number_its_leave_out_error():
    """The first table of format_fit_tables names, per fitted number, its family's LOFO median
    and how the number was replaced (fallback / refit): the README's fidelity list is generated
    from it."""
    e = _elast(E__launch_floor=0.5)
    res = [{"id": "E1a", "error_pct": 0.0}, {"id": "A2", "error_pct": 3.0}]
    table = cf.format_fit_tables(e, cf.lofo(res, e)).split("\n\n")[0]
    row = next(line for line in table.splitlines() if line.startswith("| launch floor |"))
    floor = next(n for n in cf.FITTED if n.name == "launch floor")
    want = round(abs(100 * 0.5 * (floor.fallback - 1)), 1)  # E1a's linearised LOFO error
    assert row.rstrip().endswith(f"| E: {want} (fallback x{floor.fallback:.3g}) |")


def test_simulated_lofo_predicts_the_family_with_the_replaced_numbers():
    """simulate_lofo re-simulates the left-out family's rows with each number scaled by its
    refit / fallback factor (here HBM bandwidth x1.1 on row F1: the same as predicting F1 on a
    descriptor with that bandwidth), and leaves a family whose numbers all stay untouched."""
    from npusim.validate import load_measurements, signed_error_pct

    rows = [r for r in load_measurements() if r.id == "F1"]
    rec = {"numbers": ["HBM bandwidth: refit x1.1"], "errors": {"F1": 0.0}, "median_abs": 0.0,
           "rel": {"HBM bandwidth": 0.1}}
    kept = {"numbers": ["nothing fitted on this family"], "errors": {"A2": 3.0},
            "median_abs": 3.0, "rel": {}}
    out = cf.simulate_lofo(rows, {"F": rec, "A": kept})
    hbm = next(n for n in cf.FITTED if n.name == "HBM bandwidth")
    with cf.scaled(hbm, 1.1):
        direct = cf._predict(rows[0], "repeat")
    assert out["F"]["errors"]["F1"] == round(signed_error_pct(direct, rows[0].measured_us), 1)
    assert out["F"]["errors"]["F1"] < -3.0  # faster HBM: F1 (HBM-bound) predicted faster
    assert out["A"] is kept


def _yaml_lines(path):
    """(dotted key path, line) for every key line of a descriptor YAML, by indentation; a flow
    mapping (``binary: {cycles_per_repeat: 1.0, ...}``) is one line for its key."""
    import re

    stack: list[tuple[int, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\s*)([A-Za-z0-9_>\-]+):", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        yield ".".join(k for _, k in stack), line


def test_every_fitted_number_cites_its_rows_where_it_is_set():
    """Every A2 / A3 descriptor line that sets a fitted number names one of the calibration rows
    it was fitted on (copies on other SKUs included); a line that derives the value elsewhere
    (INI rates: 910B4 / 910_9362 HBM) is not the fitted number and says so."""
    import re
    from pathlib import Path

    import npusim

    socs = Path(npusim.__file__).resolve().parent.parent / "socs"
    files = sorted(socs.glob("Ascend910*.yaml"))
    cores = {k: socs / "cores" / f"dav_c220_{k}.yaml" for k in ("aic", "aiv")}
    checked = 0
    for n in cf.FITTED:
        ids = set(re.findall(r"\b[A-H][0-9][a-h]?\b", n.rows))
        ids |= {f"{i[0]}{d}" for i in ids for d in range(int(i[1]), 10)
                if f"{i}-{i[0]}" in n.rows}  # "B2-B4" cites B3 too
        assert ids, n.name
        for p in n.paths:
            if p.startswith("cores."):
                _, kind, rest = p.split(".", 2)
                targets = [(cores[kind], rest)]
            else:
                targets = [(f, p) for f in files]
            for f, key in targets:
                for kpath, line in _yaml_lines(f):
                    if not key.startswith(kpath) or kpath.count(".") < key.count(".") - (
                            1 if "{" in line else 0):
                        continue
                    if "[D] INI" in line:
                        continue
                    checked += 1
                    assert any(re.search(rf"\b{i}\b", line) for i in ids), (
                        f"{f.name}: {kpath} sets the fitted {n.name!r} without citing "
                        f"{sorted(ids)}: {line.strip()[:120]}")
    assert checked >= 30
