"""What-if overrides (--set dotted.path=value) and YAML patches, validated like a file."""

from fractions import Fraction
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npusim.hw import DescriptorError, load_soc
from npusim.hw.overrides import apply_what_if


@cache
def _b2():
    return load_soc("Ascend910B2")


def test_override_changes_the_value_and_is_recorded():
    """A valid override changes the field, leaves the shipped default alone, and is recorded."""
    soc = load_soc("Ascend910B2", overrides=["memory.hbm.bandwidth_gb_per_s=2800"])
    assert soc.memory.hbm.bandwidth_gb_per_s == 2800.0
    assert soc.overrides_applied == ("memory.hbm.bandwidth_gb_per_s=2800",)
    assert load_soc("Ascend910B2").memory.hbm.bandwidth_gb_per_s == 1446.0


def test_core_alias_and_cached_paths_follow_the_override():
    """'core.' is an alias of 'cores.'; a changed transfer is what core.transfer() returns."""
    soc = load_soc(
        "Ascend910B2",
        overrides=["core.aic.cube.head_cycles=30", "cores.aiv.transfers.GM->UB.curve=[]",
                   "cores.aiv.transfers.GM->UB.peak_bytes_per_cycle=100"],
    )
    assert soc.core("aic").cube.head_cycles == 30
    assert soc.core("aiv").transfer("GM", "UB").bytes_per_cycle(1024) == 100.0


def test_clock_override_moves_the_peak():
    """Overriding aicore_freq_mhz scales the derived peak (what-if: a faster clock)."""
    soc = load_soc("Ascend910B2", overrides=["aicore_freq_mhz=2000"])
    assert soc.peak_tflops("float16") == pytest.approx(24 * 4096 * 2 * 2.0e9 / 1e12)


def test_override_is_revalidated():
    """An override value breaking a rule (negative size, wrong type) is rejected naming it."""
    with pytest.raises(DescriptorError) as e:
        load_soc("Ascend910B2", overrides=["core.aic.buffers.L1.capacity_bytes=-5"])
    assert "override 'core.aic.buffers.L1.capacity_bytes=-5'" in str(e.value)
    assert "cores.aic.buffers.L1.capacity_bytes" in str(e.value)
    with pytest.raises(DescriptorError, match="aicore_freq_mhz"):
        load_soc("Ascend910B2", overrides=["aicore_freq_mhz=fast"])
    with pytest.raises(DescriptorError, match="2 AIV per AIC"):
        load_soc("Ascend910B2", overrides=["cores.aic.count=25"])


def test_unknown_override_path_is_rejected():
    """A path naming no existing field is rejected with the fields available at that level."""
    with pytest.raises(DescriptorError, match=r"memory\.hbm\.bandwith_gb_per_s: unknown override"):
        load_soc("Ascend910B2", overrides=["memory.hbm.bandwith_gb_per_s=1"])
    with pytest.raises(DescriptorError, match="null, not a mapping"):
        load_soc("Ascend910B2", overrides=["core.aiv.cube.head_cycles=1"])
    with pytest.raises(DescriptorError, match=r"form 'dotted\.path=value'"):
        load_soc("Ascend910B2", overrides=["aicore_freq_mhz"])
    with pytest.raises(TypeError, match="overrides"):
        load_soc("Ascend910B2", overrides="aicore_freq_mhz=1")


def test_yaml_patch_file_merges_and_may_add_entries(tmp_path):
    """A YAML patch deep-merges (changing one field keeps its siblings) and may add a path;
    the patched descriptor is validated like a file."""
    patch = tmp_path / "twice_hbm.yaml"
    patch.write_text(
        "memory:\n  hbm:\n    bandwidth_gb_per_s: 2892.0\n"
        "cores:\n  aic:\n    transfers:\n      L1->GM: {pipe: MTE2, latency_cycles: 0,"
        " peak_bytes_per_cycle: 18.6, source: what-if}\n",
        encoding="utf-8",
    )
    soc = load_soc("Ascend910B2", patch=patch)
    assert soc.memory.hbm.bandwidth_gb_per_s == 2892.0
    assert soc.memory.hbm.capacity_bytes == 64 * 2**30
    assert soc.core("aic").transfer("L1", "GM").peak_bytes_per_cycle == 18.6
    assert soc.overrides_applied == (f"patch {patch}",)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cores:\n  aic:\n    transfers:\n      L1->UB: {pipe: MTE1, latency_cycles: 0,"
        " peak_bytes_per_cycle: 64.0, source: what-if}\n",
        encoding="utf-8",
    )
    with pytest.raises(DescriptorError, match=r"transfers\.L1->UB: this core has no UB"):
        load_soc("Ascend910B2", patch=bad)


def test_patch_mapping_then_override_wins():
    """A dict patch applies first, overrides last; an unknown key in a patch is rejected."""
    soc = load_soc(
        "Ascend310P3",
        patch={"memory": {"hbm": {"bandwidth_gb_per_s": 400.0}}},
        overrides=["memory.hbm.bandwidth_gb_per_s=500"],
    )
    assert soc.memory.hbm.bandwidth_gb_per_s == 500.0
    with pytest.raises(DescriptorError, match=r"patch <mapping>: field memory\.hbm\.speed"):
        load_soc("Ascend310P3", patch={"memory": {"hbm": {"speed": 1}}})


@given(st.integers(min_value=1, max_value=10**6))
def test_bandwidth_override_round_trips_into_bytes_per_cycle(gbps):
    """bytes_per_cycle of an overridden HBM bandwidth equals GB/s x 1000 / MHz (exact oracle)."""
    s2 = apply_what_if(_b2(), [f"memory.hbm.bandwidth_gb_per_s={gbps}"])
    got = Fraction(s2.bytes_per_cycle(s2.memory.hbm.bandwidth_gb_per_s))
    want = Fraction(gbps * 1000, 1800)
    assert abs(got - want) <= want * Fraction(1, 10**12)

