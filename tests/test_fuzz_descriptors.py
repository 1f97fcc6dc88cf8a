"""Fuzz descriptors and what-if overrides: any value in any numeric field, any text as YAML, a
shipped file with one key removed or retyped - a DescriptorError naming file and field, or a
descriptor that runs a small operator to a sane result. Never another exception, never a
silently accepted non-number."""

from __future__ import annotations

import math
from importlib.resources import files

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.hw import DescriptorError, load_soc, validate_soc_file
from npusim.hw.loader import parse_yaml
from npusim.spec import spec

CLEAR_ERRORS = (ValueError, TypeError, NotImplementedError)
ODD_VALUES = ["0", "-1", "1", ".inf", "-.inf", ".nan", "1e308", "1e-300", "abc", "null", "[1]",
              "{a: 1}", "true", "18446744073709551616", "2.5", "!!python/none ''", "*x", "&a 1"]


def _numeric_paths() -> list[str]:
    """Every numeric leaf of the 910B2 descriptor as a dotted override path."""
    out: list[str] = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}.{i}")
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out.append(path)

    walk(load_soc("Ascend910B2").model_dump(mode="json"), "")
    return sorted(out)


NUMERIC_PATHS = _numeric_paths()


def _small_runs(soc):
    yield npusim.simulate("matmul", soc, a=spec((16, 64), "float16"), b=spec((64, 32), "float16"),
                          max_instructions=20_000)
    yield npusim.simulate("vector_add", soc, x=spec((4096,), "float16"),
                          y=spec((4096,), "float16"), max_instructions=20_000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMERIC_PATHS), st.sampled_from(ODD_VALUES))
def test_any_value_in_any_numeric_field(path, value):
    """An override accepted by the schema runs small operators to a finite result or a clear
    error; a non-number (or non-finite number) in a numeric field is refused naming it."""
    text = f"{path}={value}"
    try:
        soc = load_soc("Ascend910B2", [text])
    except DescriptorError as exc:
        # a field's own rule names "override '<text>'"; a rule across fields (e.g. 2 AIV per
        # AIC: cores.aic.count=1) names the what-if change set, which holds the same text
        assert f"override {text!r}" in str(exc) or f"what-if changes ({text})" in str(exc) \
            or "not valid YAML" in str(exc), str(exc)
        return
    parsed = yaml.safe_load(value) if not value.startswith(("!", "*", "&")) else None
    if isinstance(parsed, str):  # YAML 1.1 reads 1e308 as a string; a number to a reader
        parsed = float(parsed)  # (a lax float field may take it): anything else is refused
    assert not (isinstance(parsed, float) and not math.isfinite(parsed)), f"{text} accepted"
    assert not isinstance(parsed, list | dict), f"{text} accepted"
    try:
        for res in _small_runs(soc):
            assert res.cycles > 0 and math.isfinite(res.microseconds), (text, res.cycles)
    except CLEAR_ERRORS as exc:
        assert str(exc).strip()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_descriptor_error(text):
    """parse_yaml on arbitrary text: plain data, or a DescriptorError naming the source."""
    try:
        parse_yaml(text, "fuzz.yaml")
    except DescriptorError as exc:
        assert str(exc).startswith("fuzz.yaml: ")


def _shipped_keys(text: str) -> list[str]:
    data = yaml.safe_load(text)
    out = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{path}.{k}" if path else str(k)
                out.append(p)
                walk(v, p)

    walk(data, "")
    return out


SHIPPED = files("npusim.socs").joinpath("Ascend910B2.yaml").read_text(encoding="utf-8")
CORE = files("npusim.socs").joinpath("cores", "dav_c220_aiv.yaml").read_text(encoding="utf-8")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_shipped_keys(CORE)), st.sampled_from(["drop", "null", "str", "list",
                                                             "neg", "inf"]))
def test_core_file_with_one_key_broken(tmp_path, key, how):
    """A user copy of a shipped core file with one key dropped or retyped: the SoC file that
    references it either validates or fails naming the core file (never another exception)."""
    data = yaml.safe_load(CORE)
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node[p]
    if how == "drop":
        del node[parts[-1]]
    else:
        node[parts[-1]] = {"null": None, "str": "abc", "list": [1, 2], "neg": -1,
                           "inf": float("inf")}[how]
    core = tmp_path / "core.yaml"
    core.write_text(yaml.safe_dump(data), encoding="utf-8")
    soc = tmp_path / "soc.yaml"
    soc.write_text(SHIPPED.replace("name: Ascend910B2", "name: Fuzz", 1)
                   + "\ncore_refs: {aiv: core.yaml}\n", encoding="utf-8")
    try:
        validate_soc_file(soc)
    except DescriptorError as exc:
        assert str(core) in str(exc) or str(soc) in str(exc), str(exc)


@pytest.mark.parametrize("value", ["1e308", "18446744073709551616"])
def test_absurd_but_finite_numbers_run_or_refuse_clearly(value):
    """A huge clock or bandwidth is a number the schema takes: runs stay finite or refuse."""
    for path in ("aicore_freq_mhz", "memory.hbm.bandwidth_gb_per_s"):
        try:
            soc = load_soc("Ascend910B2", [f"{path}={value}"])
            for res in _small_runs(soc):
                assert res.cycles > 0 and math.isfinite(res.microseconds)
        except CLEAR_ERRORS as exc:
            assert str(exc).strip()


# -- workload (model) configs: read like the SoC descriptors -----------------------------------

_TINY_MODEL = ("name: tiny\nhidden_size: 256\nintermediate_size: 512\nnum_attention_heads: 4\n"
               "num_key_value_heads: 2\nnum_hidden_layers: 3\n")


@pytest.mark.parametrize("body,field", [
    (b"\xff\xfe", "not UTF-8"),
    (b"hidden_size: !!python/object:os.system {}\n",
     "line 1: field hidden_size: tag !!python/object:os.system"),
    (b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
     b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e]\n",
     "alias bomb"),
    (b"hidden_size: 1\nhidden_size: 2\n", "field hidden_size: duplicate key"),
    (b"[1, 2]\n", "must be a mapping of fields, got list"),
    (b"", "field hidden_size: missing"),
    (b"hidden_size: [", "not valid YAML"),
    (_TINY_MODEL.replace("num_hidden_layers: 3", "num_hidden_layers: .inf").encode(),
     "field num_hidden_layers: inf must be a positive integer"),
    (_TINY_MODEL.replace("hidden_size: 256", "hidden_size: 250").encode(),
     "field hidden_size: 250 is not a multiple of num_attention_heads=4"),
    (_TINY_MODEL.replace("name: tiny", "name: [1]").encode(), "field name: [1] must be a string"),
])
def test_workload_config_errors_name_file_field_and_problem(tmp_path, body, field):
    """``npusim model CONFIG`` reads its YAML as the SoC descriptors are read: undecodable
    text, tags, alias bombs, duplicate keys, wrong types and rule violations are a
    DescriptorError naming the file and the field; the CLI prints it as one error line."""
    from npusim.cli import main
    from npusim.model import load_config

    path = tmp_path / "cfg.yaml"
    path.write_bytes(body)
    with pytest.raises(DescriptorError) as exc:
        load_config(path)
    assert str(exc.value).startswith(str(path)) and field in str(exc.value), exc.value
    assert main(["model", str(path)]) == 2


def test_workload_config_ignores_extra_fields(tmp_path):
    """A Hugging Face config.json (JSON is YAML) carries many more fields: they are ignored."""
    from npusim.model import load_config

    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, '
                    '"num_key_value_heads": 2, "num_hidden_layers": 3, "vocab_size": 32000}')
    cfg = load_config(path)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.name) == (256, 3, "config")


@pytest.mark.parametrize("text", [
    "cores.aic.cube.head_cycles=18446744073709551616",
    "kernel_launch_cycles=18446744073709551616",
    "memory.l2.hit_latency_cycles=18446744073709551616",
    "cores.aiv.vector.classes.binary.cycles_per_repeat=18446744073709551616",
    "cores.aic.gm_bursts.request_overhead_bytes=1e308",
])
def test_numbers_beyond_any_part_are_refused(text):
    """Integers above 2^40 (and 1e308 overheads) passed the schema and then crashed the engines
    with OverflowError; they are refused naming the override (found by the fuzz test above)."""
    with pytest.raises(DescriptorError, match="override"):
        load_soc("Ascend910B2", [text])
