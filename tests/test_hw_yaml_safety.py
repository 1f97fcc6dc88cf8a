"""Descriptor, patch and study YAML is plain data: an alias bomb, a recursive alias, a
``!!python`` or other non-plain tag, invalid UTF-8 and non-finite numbers are refused at once
with an error naming the file (and the line or field), never a hang or a bare traceback."""

import time

import pytest

from npusim.hw import DescriptorError, load_soc, validate_soc_file
from npusim.hw.loader import MAX_YAML_NODES, parse_yaml
from npusim.sweep import Study

from .test_hw_errors import GOOD


def _bomb(levels: int = 9) -> str:
    """The billion-laughs shape: each level repeats the previous one nine times."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        prev = f"*l{i - 1}"
        lines.append(f"l{i}: &l{i} [{', '.join([prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_fails_fast_naming_the_file(tmp_path):
    """9^9 expanded nodes are refused in well under a second (the check counts, never
    expands), naming the file and the node limit."""
    f = tmp_path / "chip.yaml"
    f.write_text(GOOD + _bomb())
    t0 = time.process_time()
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    assert time.process_time() - t0 < 5.0  # generous on a shared machine; a hang never ends
    assert str(f) in str(e.value) and f"more than {MAX_YAML_NODES} nodes" in str(e.value)


def test_moderate_alias_use_is_still_allowed():
    """Aliases are YAML: a few shared nodes below the limit load as usual."""
    assert parse_yaml("a: &a {x: 1}\nb: *a\nc: [*a, *a]\n", "f.yaml") == {
        "a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}, {"x": 1}]}


def test_recursive_alias_is_refused():
    """A node that contains itself would recurse for ever downstream: refused with its line."""
    with pytest.raises(DescriptorError, match=r"f\.yaml: line 1: .*recursive alias"):
        parse_yaml("a: &a [1, *a]\n", "f.yaml")


@pytest.mark.parametrize("value", [
    "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!custom 1",
    "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]",
])
def test_non_plain_tag_is_refused_naming_file_and_line(tmp_path, value):
    """Any tag beyond mappings, lists, strings, numbers, booleans, null is refused."""
    f = tmp_path / "chip.yaml"
    f.write_text(GOOD + f"extra: {value}\n")
    line = GOOD.count("\n") + 1
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    assert f"{f}: line {line}: field extra: tag " in str(e.value)
    assert "is not allowed" in str(e.value)


def test_invalid_utf8_names_the_file(tmp_path):
    """Undecodable bytes are a DescriptorError naming the file and the byte, not a
    UnicodeDecodeError."""
    f = tmp_path / "chip.yaml"
    f.write_bytes(GOOD.encode() + b"description2: caf\xe9\n")
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    assert str(f) in str(e.value) and "not UTF-8" in str(e.value)
    assert f"byte {len(GOOD.encode()) + 17}" in str(e.value)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", "1e999"])
def test_non_finite_numbers_are_refused_by_the_schema(tmp_path, value):
    """An infinite or nan bandwidth would make every time 0 or nan: the schema refuses it,
    naming the file and the field."""
    f = tmp_path / "chip.yaml"
    f.write_text(GOOD.replace("bandwidth_gb_per_s: 100.0", f"bandwidth_gb_per_s: {value}", 1))
    with pytest.raises(DescriptorError) as e:
        validate_soc_file(f)
    assert f"{f}: field memory.hbm.bandwidth_gb_per_s" in str(e.value)


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_non_finite_override_is_refused(value):
    with pytest.raises(DescriptorError, match=r"memory\.hbm\.bandwidth_gb_per_s: .*finite"):
        load_soc("Ascend910B2", [f"memory.hbm.bandwidth_gb_per_s={value}"])


def test_patch_file_gets_the_same_checks(tmp_path):
    """A what-if patch file is plain YAML too (tags, UTF-8), errors naming the patch."""
    p = tmp_path / "patch.yaml"
    p.write_text("memory: !!python/object:os.system {}\n")
    with pytest.raises(DescriptorError, match=r"patch .*patch\.yaml: line 1: field memory: tag"):
        load_soc("Ascend910B2", patch=p)
    p.write_bytes(b"memory: {hbm: {source: \xff}}\n")
    with pytest.raises(DescriptorError, match="not UTF-8"):
        load_soc("Ascend910B2", patch=p)


@pytest.mark.parametrize(("body", "needle"), [
    (b"op: !!python/object/apply:os.system ['true']\nsocs: [A]\ncases: {m: [1]}\n",
     "line 1: field op: tag !!python/object/apply:os.system is not allowed"),
    (b"op: matmul\nsocs: [A]\ncases: {m: [1]}\nx: \xc3\x28\n", "not UTF-8 text (byte 40:"),
    (b"op: matmul\nsocs: [A]\ncases: {m: [1]}\nop: matmul\n", "duplicate key 'op'"),
    (b"op: matmul\nsocs: [A]\ncases: &c {m: [*c]}\n", "recursive alias"),
])
def test_study_file_gets_the_same_checks(tmp_path, body, needle):
    """Study files go through the descriptor loader's YAML: same refusals, naming the file."""
    p = tmp_path / "study.yaml"
    p.write_bytes(body)
    with pytest.raises(ValueError) as e:
        Study.from_yaml(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_missing_study_file_is_a_one_line_cli_error(tmp_path, capsys):
    from npusim.cli import main

    assert main(["sweep", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"npusim: error: {tmp_path / 'nope.yaml'}: no such file"
    assert not (tmp_path / "o.csv").exists()
