"""Malformed descriptor files are rejected with the file, the dotted field path and the problem."""

import pytest

from npusim.hw import DescriptorError, load_soc, validate_soc_file

# A minimal user SoC: inherits the shipped A2 family (and through it the shared core files).
GOOD = """\
base: ascend910b_family.yaml
name: MyChip
description: test chip
aicore_freq_mhz: 1000
cores:
  aic: {count: 2}
  aiv: {count: 4}
memory:
  hbm: {capacity_bytes: 1073741824, bandwidth_gb_per_s: 100.0, source: test}
  l2: {capacity_bytes: 1048576, bandwidth_gb_per_s: 200.0, source: test}
"""


def _write(tmp_path, text, name="chip.yaml"):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def test_good_user_file_validates(tmp_path):
    """A user file that inherits a shipped family validates and keeps its own numbers."""
    soc = validate_soc_file(_write(tmp_path, GOOD))
    assert soc.name == "MyChip" and soc.core_counts() == {"aic": 2, "aiv": 4}
    assert soc.peak_tflops("float16") == pytest.approx(2 * 4096 * 2 * 1e9 / 1e12)


def test_misspelled_key_names_file_and_field(tmp_path):
    """An unknown (misspelled) key is rejected with the file and the full dotted path."""
    f = _write(tmp_path, GOOD.replace("bandwidth_gb_per_s: 100.0", "bandwith_gb_per_s: 100.0"))
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    msg = str(e.value)
    assert str(f) in msg and "memory.hbm.bandwith_gb_per_s" in msg and "unknown key" in msg


def test_misspelled_key_in_a_core_file_names_that_core_file(tmp_path):
    """A typo inside a referenced core file is reported against that core file, not the SoC."""
    core = (tmp_path / "my_core.yaml")
    from importlib.resources import files

    text = files("npusim.socs").joinpath("cores", "dav_c220_aiv.yaml").read_text(encoding="utf-8")
    core.write_text(text.replace("max_repeats: 255", "max_repeat: 255"), encoding="utf-8")
    f = _write(tmp_path, GOOD + "core_refs: {aiv: my_core.yaml}\n")
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    msg = str(e.value)
    assert str(core) in msg and "cores.aiv.vector.max_repeat" in msg


def test_duplicate_key_is_rejected_with_path_and_lines(tmp_path):
    """The YAML loader rejects a duplicated mapping key, naming the file, path and both lines."""
    text = GOOD.replace("aicore_freq_mhz: 1000\n", "aicore_freq_mhz: 1000\naicore_freq_mhz: 1200\n")
    f = _write(tmp_path, text)
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    msg = str(e.value)
    assert str(f) in msg and "aicore_freq_mhz" in msg and "duplicate" in msg
    assert "lines 4 and 5" in msg


def test_nested_duplicate_key_reports_its_path(tmp_path):
    """A duplicate inside a nested mapping is reported with its dotted path."""
    text = GOOD.replace("aic: {count: 2}", "aic: {count: 2, count: 3}")
    with pytest.raises(DescriptorError, match=r"cores\.aic\.count: duplicate"):
        validate_soc_file(_write(tmp_path, text))


def test_negative_size_is_rejected(tmp_path):
    """A negative capacity is rejected with file, field and the rule."""
    f = _write(tmp_path, GOOD.replace("capacity_bytes: 1048576", "capacity_bytes: -1048576"))
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    msg = str(e.value)
    assert str(f) in msg and "memory.l2.capacity_bytes" in msg and "greater than 0" in msg


def test_wrong_type_is_rejected(tmp_path):
    """A string where an integer belongs is rejected (no silent coercion), naming the field."""
    f = _write(tmp_path, GOOD.replace("aicore_freq_mhz: 1000", 'aicore_freq_mhz: "1000"'))
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    assert str(f) in str(e.value) and "aicore_freq_mhz" in str(e.value)
    f2 = _write(tmp_path, GOOD.replace("aic: {count: 2}", "aic: {count: 2.5}"), "c2.yaml")
    with pytest.raises(DescriptorError, match=r"cores\.aic\.count"):
        validate_soc_file(f2)


def test_split_soc_needs_two_aiv_per_aic(tmp_path):
    """A split SoC whose AIV count is not twice its AIC count is rejected."""
    f = _write(tmp_path, GOOD.replace("aiv: {count: 4}", "aiv: {count: 3}"))
    with pytest.raises(DescriptorError, match=r"cores\.aiv\.count=3: a split SoC has 2 AIV"):
        validate_soc_file(f)


def test_missing_required_field_is_named(tmp_path):
    """Dropping a required field (the SoC name) is reported as missing."""
    f = _write(tmp_path, GOOD.replace("name: MyChip\n", ""))
    with pytest.raises(DescriptorError, match="field name: required field missing"):
        validate_soc_file(f)


def test_bad_curve_is_rejected():
    """A transfer curve with decreasing sizes or points above the peak is rejected."""
    path = "core.aiv.transfers.GM->UB.curve"
    with pytest.raises(DescriptorError, match="sizes must increase"):
        load_soc("Ascend910B2", overrides=[f"{path}=[[2048, 5.0], [1024, 4.0]]"])
    with pytest.raises(DescriptorError, match="exceeds peak"):
        load_soc("Ascend910B2", overrides=[f"{path}=[[1024, 99.0]]"])


def test_unknown_name_and_missing_file():
    """An unknown SoC name or a missing file raises DescriptorError listing what exists."""
    with pytest.raises(DescriptorError, match="Ascend910B2"):
        load_soc("Ascend999")
    with pytest.raises(DescriptorError, match="no such descriptor file"):
        load_soc("/nonexistent/chip.yaml")


def test_base_cycle_and_missing_ref(tmp_path):
    """An inheritance cycle and a reference to a missing file are reported with the field."""
    _write(tmp_path, "base: b.yaml\n", "a.yaml")
    _write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(DescriptorError, match="inheritance cycle"):
        validate_soc_file(tmp_path / "a.yaml")
    f = _write(tmp_path, GOOD.replace("ascend910b_family.yaml", "nope.yaml"), "c.yaml")
    with pytest.raises(DescriptorError, match=r"field base: file 'nope\.yaml' not found"):
        validate_soc_file(f)


def test_not_a_mapping_and_bad_yaml(tmp_path):
    """A top-level list and unparsable YAML are both rejected with the file named."""
    f = _write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(DescriptorError, match="must be a YAML mapping"):
        validate_soc_file(f)
    g = _write(tmp_path, "name: [unclosed\n", "g.yaml")
    with pytest.raises(DescriptorError, match="not valid YAML"):
        validate_soc_file(g)
