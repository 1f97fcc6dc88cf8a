"""Odd inputs a new user gave that were silently changed or slow to refuse (issue 17): a
non-integer spec dimension, non-integer / non-boolean study case values, and a
trans_quant_param too large to build."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import npusim
from npusim.size_guard import SizeLimitError
from npusim.spec import spec
from npusim.sweep_study import Study, StudyError


@pytest.mark.parametrize("dim", [16.5, 16.0, True, "16"])
def test_spec_refuses_a_dimension_that_is_not_an_integer(dim):
    """spec() used to truncate with int(): (16.5, 64) became (16, 64), (True, 64) (1, 64)."""
    with pytest.raises(ValueError, match=r"dim 0 = .*every dim must be an integer >= 0"):
        spec((dim, 64), "float16")


def test_spec_takes_numpy_integers_as_ints():
    s = spec((np.int64(3), np.int32(4)), "float16")
    assert s.shape == (3, 4) and all(type(d) is int for d in s.shape)


_STUDY = {"op": "matmul", "socs": ["Ascend910B2"], "simulate_top": 1}


@pytest.mark.parametrize(("case", "field"), [
    ({"m": 16.5, "k": 64, "n": 64}, "cases[0].m"),
    ({"m": True, "k": 64, "n": 64}, "cases[0].m"),
    ({"m": 16, "k": "64", "n": 64}, "cases[0].k"),
    ({"m": 16, "k": 64, "n": 64, "trans_b": "no"}, "cases[0].trans_b"),
    ({"m": 16, "k": 64, "n": 64, "group_size": 128.0}, "cases[0].group_size"),
])
def test_study_refuses_case_values_an_adapter_would_convert(case, field):
    """The sweep adapters read sizes with int() and flags with bool(): a study's m: [16.5] ran
    as M = 16 (exit 0, a row labelled m=16.5) and trans_b: "no" as True."""
    with pytest.raises(StudyError, match=re.escape(f"s.yaml: field {field}: must be")):
        Study.from_mapping({**_STUDY, "cases": [case]}, "s.yaml")


def test_study_keeps_integer_and_boolean_cases():
    st = Study.from_mapping({**_STUDY, "cases": {"m": [1, 16], "k": [64], "n": [64],
                                                 "trans_b": [False, True]}}, "s.yaml")
    assert len(st.cases) == 4


def test_trans_quant_param_of_2_31_elements_is_refused_before_building():
    """2^31 - 1 elements built for about a minute (0.5 GB) before the build budget stopped
    it; the chunk count now refuses it up front with the estimate."""
    t0 = time.process_time()
    with pytest.raises(SizeLimitError, match=r"trans_quant_param: needs at least 2,097,152 "
                                             r"instructions \(2,147,483,647 elements in chunks"):
        npusim.simulate("trans_quant_param", "Ascend910B2", scale=spec((2**31 - 1,), "float32"))
    assert time.process_time() - t0 < 5.0


def test_trans_quant_param_bound_is_below_the_built_program():
    """The bound is a lower bound: a run it lets through has at least that many
    instructions (so it never refuses a run that fits)."""
    from npusim.runner import resolve_soc
    from npusim.size_guard import lower_bound

    desc = resolve_soc("Ascend910B2")
    for n, offset in ((8192, False), (65528, True), (100_000, False)):
        args = {"scale": spec((n,), "float32")}
        if offset:
            args["offset"] = spec((n,), "float32")
        bound, why = lower_bound("trans_quant_param", desc, args)
        res = npusim.simulate("trans_quant_param", desc, **args)
        assert "elements in chunks" in why
        assert bound <= res.run.kernel.instruction_count()


@pytest.mark.parametrize(("text", "value"), [("1e3", 1000.0), ("1.5e3", 1500.0),
                                             ("-2E-3", -0.002), (".5e2", 50.0)])
def test_yaml_reads_exponent_floats_as_numbers(text, value):
    """PyYAML's YAML 1.1 floats need a dot and a signed exponent: '--set ...=1.5e3', the
    overrides' documented example, reached the schema as a string ('Input should be a valid
    number (got '1.5e3')')."""
    from npusim.hw.loader import parse_yaml

    assert parse_yaml(text, "x") == value
    assert parse_yaml("name_1e3", "x") == "name_1e3" and parse_yaml('"1e3"', "x") == "1e3"


def test_override_with_exponent_sets_the_number():
    from npusim.hw import load_soc

    d = load_soc("Ascend910B4", overrides=["memory.hbm.bandwidth_gb_per_s=1.5e3"])
    assert d.memory.hbm.bandwidth_gb_per_s == 1500.0


def test_a_bandwidth_near_zero_is_a_clear_error_not_an_overflow():
    """A finite but absurd descriptor number (1e-300 GB/s) overflowed the engine's integer
    times: 'npusim: error: OverflowError: int too big to convert'."""
    args = {"a": spec((16, 64), "float16"), "b": spec((64, 64), "float16")}
    with pytest.raises(ValueError, match=r"matmul: a time of this run does not fit a machine "
                                         r"integer .*overrides applied: memory\.hbm\."
                                         r"bandwidth_gb_per_s=1e-300"):
        npusim.simulate("matmul", "Ascend910B2",
                        overrides=["memory.hbm.bandwidth_gb_per_s=1e-300"], **args)


def test_report_of_a_binary_or_torn_csv_names_the_file(tmp_path):
    from npusim.report.compare import load_results

    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=re.escape(f"{binary}: not UTF-8 text (byte 0)")):
        load_results(binary)
    torn = tmp_path / "torn.csv"
    torn.write_text('variant,case,tiling,us,summary\nbaseline,"{""m"": 1",{},1.0,\n')
    with pytest.raises(ValueError, match=re.escape(f"{torn}: row 1: its case / tiling / "
                                                   "summary is not JSON")):
        load_results(torn)
