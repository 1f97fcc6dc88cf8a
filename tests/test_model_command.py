"""``npusim model`` on a tiny config: per-op times come from the operators' simulations, a layer
is the sum of its ops and the model is layers x layer, unmodelled ops are named, w8a8 inserts the
activation quant ops, and shipped configs load with their sources."""

from __future__ import annotations

import pytest

import npusim
from npusim.cli import main
from npusim.model import NOT_MODELLED, load_config, op_calls, run_phase, shipped_configs

TINY = """name: tiny
hidden_size: 256
intermediate_size: 512
num_attention_heads: 4
num_key_value_heads: 2
num_hidden_layers: 3
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("NPUSIM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("quant", ["w4a16", "w8a16", "w8a8"])
def test_layer_is_the_sum_of_simulated_ops_and_model_scales_by_layers(tiny, quant):
    """Rule: each op's time equals a direct simulate() of that call; layer time = sum of ops;
    total = layers x layer; tokens/s = tokens / total; identical calls are simulated once."""
    cfg = load_config(tiny)
    r = run_phase(cfg, quant, "decode", 2, "Ascend910B2")
    calls = op_calls(cfg, quant, 2)
    assert [o.label for o in r.ops] == [c[0] for c in calls]
    for o, (_, op, _, args) in zip(r.ops, calls, strict=True):
        assert o.summary.cycles == npusim.simulate(op, "Ascend910B2", **args).cycles
    assert r.layer_us == pytest.approx(sum(o.summary.microseconds for o in r.ops))
    assert r.total_us == pytest.approx(3 * r.layer_us)
    assert r.tokens_per_s == pytest.approx(2 / (r.total_us * 1e-6))
    assert r.simulated < len(r.ops)  # k/v (and gate/up) share one simulation
    if quant == "w8a8":
        assert sum(c[1] == "group_quant" for c in calls) == 4
        assert sum(c[1] == "quant_matmul" for c in calls) == 7


def test_cli_reports_ops_layers_not_modelled_what_if_and_plot(tiny, tmp_path, capsys):
    """Rule: the report names every unmodelled op, lists the seven linear ops per phase and SoC,
    compares the what-if variant with its baseline, and writes the plot."""
    plot = tmp_path / "m.png"
    assert main(["model", str(tiny), "--soc", "Ascend910B4", "--prefill-tokens", "32",
                 "--set", "memory.hbm.bandwidth_gb_per_s=3200", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    for item in NOT_MODELLED:
        assert item in out
    assert out.count("| down_proj |") == 4  # decode + prefill, baseline + what-if
    assert "what-if comparison" in out and "memory.hbm.bandwidth_gb_per_s=3200" in out
    assert "3 identical layers (one simulated" in out
    assert plot.stat().st_size > 0


def test_shipped_configs_load_with_sources_and_bad_configs_are_named(tmp_path):
    """Rule: every shipped config loads and cites its source; a missing or non-positive field
    is an error naming the field."""
    assert "llama-2-7b" in shipped_configs()
    for name in shipped_configs():
        cfg = load_config(name)
        assert cfg.source.startswith("https://") and len(cfg.linears()) == 7
    llama = load_config("llama-2-7b")
    assert (llama.hidden_size, llama.intermediate_size) == (4096, 11008)
    assert llama.num_hidden_layers == 32
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("num_hidden_layers: 3", "num_hidden_layers: 0"))
    with pytest.raises(ValueError, match="field num_hidden_layers: 0 must be"):
        load_config(bad)
    with pytest.raises(ValueError, match="neither a file nor a shipped config"):
        load_config("no-such-model")
