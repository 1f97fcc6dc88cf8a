"""Shipped SoC descriptors: the nine load, derived peaks, organisation, capabilities, sync."""

from importlib.resources import files
from pathlib import Path

import pytest
from pydantic import ValidationError

from npusim.hw import DescriptorError, list_socs, load_soc, validate_soc_file

SHIPPED = [
    "Ascend310P1", "Ascend310P3", "Ascend310P5",
    "Ascend910B1", "Ascend910B2", "Ascend910B3", "Ascend910B4",
    "Ascend910_9362", "Ascend910_9391",
]

# expected dense peaks written out from hardware.md 1.1-1.3: cores x MACs/cycle x 2 x clock
PEAK_FP16_TFLOPS = {
    "Ascend910B1": 24 * 4096 * 2 * 1.85e9 / 1e12,  # 363.7
    "Ascend910B2": 24 * 4096 * 2 * 1.80e9 / 1e12,  # 353.9
    "Ascend910B3": 20 * 4096 * 2 * 1.80e9 / 1e12,  # 294.9
    "Ascend910B4": 20 * 4096 * 2 * 1.50e9 / 1e12,  # 245.8
    "Ascend910_9391": 24 * 4096 * 2 * 1.85e9 / 1e12,  # 363.7
    "Ascend910_9362": 20 * 4096 * 2 * 1.50e9 / 1e12,  # 245.8
    "Ascend310P1": 10 * 4096 * 2 * 1.06e9 / 1e12,  # 86.8
    "Ascend310P3": 8 * 4096 * 2 * 1.06e9 / 1e12,  # 69.5
    "Ascend310P5": 8 * 4096 * 2 * 0.80e9 / 1e12,  # 52.4
}
PEAK_FP16_ROUNDED = {
    "Ascend910B1": 363.7, "Ascend910B2": 353.9, "Ascend910B3": 294.9, "Ascend910B4": 245.8,
    "Ascend910_9391": 363.7, "Ascend910_9362": 245.8,
    "Ascend310P1": 86.8, "Ascend310P3": 69.5, "Ascend310P5": 52.4,
}


def test_list_socs_names_the_nine_shipped_socs_sorted():
    """list_socs() returns exactly the nine shipped SoC names, sorted."""
    assert list_socs() == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_soc_loads(name):
    """Each shipped SoC resolves (base + core refs) into a valid descriptor with its own name."""
    soc = load_soc(name)
    assert soc.name == name
    assert soc.schema_version == 1


@pytest.mark.parametrize("name", SHIPPED)
def test_validate_soc_file_accepts_each_shipped_file(name):
    """validate_soc_file passes on every shipped SoC file found through importlib.resources."""
    path = Path(str(files("npusim.socs").joinpath(f"{name}.yaml")))
    assert validate_soc_file(path).name == name


@pytest.mark.parametrize("name", SHIPPED)
def test_derived_fp16_peak(name):
    """peak fp16 = cube cores x 4096 MAC x 2 x clock, equal to the hardware.md figure (0.1 TF)."""
    soc = load_soc(name)
    assert soc.peak_tflops("float16") == pytest.approx(PEAK_FP16_TFLOPS[name], rel=1e-12)
    assert round(soc.peak_tflops("fp16"), 1) == PEAK_FP16_ROUNDED[name]


@pytest.mark.parametrize("name", SHIPPED)
def test_int8_peak_is_twice_fp16(name):
    """int8 runs 8192 MAC/cycle on every cube: exactly twice the fp16 peak."""
    soc = load_soc(name)
    assert soc.peak_tflops("int8") == pytest.approx(2 * soc.peak_tflops("float16"), rel=1e-12)


def test_910b2_peak_written_out():
    """910B2: 24 AIC x 4096 MAC x 2 x 1.8 GHz = 353.9 TFLOPS; fp32 1024 MAC -> 88.5 TFLOPS."""
    soc = load_soc("Ascend910B2")
    assert round(soc.peak_tflops("float16"), 1) == 353.9
    assert round(soc.peak_tflops("float32"), 1) == 88.5


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("Ascend910")])
def test_a2_a3_are_split_with_two_aiv_per_aic(name):
    """A2/A3: split organisation, aiv count = 2 x aic count, FixPipe present, no L0C->UB path."""
    soc = load_soc(name)
    counts = soc.core_counts()
    assert soc.organisation == "split"
    assert list(counts) == ["aic", "aiv"]
    assert counts["aiv"] == 2 * counts["aic"]
    assert soc.supports("fixpipe") and soc.supports("bf16_cube") and soc.supports("fp32_cube")
    assert not soc.supports("l0c_to_ub")
    assert soc.core("aic").transfer("L0C", "UB") is None
    assert soc.core("aic").pipes == ("S", "MTE1", "MTE2", "M", "FIX")
    assert soc.core("aiv").pipes == ("S", "V", "MTE2", "MTE3")
    assert soc.core("aiv").cube is None and soc.core("aic").vector is None


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("Ascend310P")])
def test_310p_is_coupled_without_fixpipe_or_bf16_cube(name):
    """310P: coupled AI Cores + vector cores, no FixPipe, no bf16/fp32 cube, L0C->UB on V."""
    soc = load_soc(name)
    assert soc.organisation == "coupled"
    assert list(soc.core_counts()) == ["aicore", "vector_core"]
    assert not soc.supports("fixpipe")
    assert not soc.supports("bf16_cube") and not soc.supports("fp32_cube")
    assert soc.supports("int4_cube") and soc.supports("l0c_to_ub")
    core = soc.core("aicore")
    assert core.fixpipe is None and "FIX" not in core.pipes
    assert core.transfer("L0C", "UB").pipe == "V"
    with pytest.raises(ValueError, match="bfloat16"):
        core.cube.macs_per_cycle("bfloat16")
    with pytest.raises(ValueError, match="bfloat16"):
        soc.peak_tflops("bf16")


def test_310p_vector_cores_run_at_vec_freq():
    """310P stand-alone vector cores use INI vec_freq 1000 MHz; the AI Cores use cube_freq."""
    soc = load_soc("Ascend310P5")
    assert soc.freq_mhz("aicore") == 800 == soc.aicore_freq_mhz
    assert soc.freq_mhz("vector_core") == 1000
    assert soc.core_counts() == {"aicore": 8, "vector_core": 7}


def test_core_counts_and_clock_of_910b2():
    """910B2: 24 AIC + 48 AIV at 1800 MHz, 192 MiB L2, 64 GiB HBM."""
    soc = load_soc("Ascend910B2")
    assert soc.core_counts() == {"aic": 24, "aiv": 48}
    assert soc.freq_mhz("aic") == soc.freq_mhz("aiv") == 1800
    assert soc.memory.l2.capacity_bytes == 192 * 2**20
    assert soc.memory.hbm.capacity_bytes == 64 * 2**30


def test_unknown_core_kind_raises_descriptor_error():
    """soc.core(kind) for a kind the SoC does not have raises DescriptorError naming it."""
    with pytest.raises(DescriptorError, match="aicore"):
        load_soc("Ascend910B2").core("aicore")


def test_buffers_of_220x_cores():
    """220x AIC buffers and alignments follow hardware.md 1.5 (L1 512 KiB, L0C 128 KiB, ...)."""
    aic = load_soc("Ascend910B2").core("aic")
    caps = {k: (b.capacity_bytes, b.alignment_bytes) for k, b in aic.buffers.items()}
    assert caps == {
        "L1": (524288, 32), "L0A": (65536, 512), "L0B": (65536, 512), "L0C": (131072, 64),
        "BT": (1024, 64), "FB": (7168, 128),
    }
    ub = load_soc("Ascend910B2").core("aiv").buffers["UB"]
    assert (ub.capacity_bytes, ub.alignment_bytes) == (196608, 32)


def test_cube_rates_and_fractals():
    """220x cube: fp16 4096 MAC (16,16,16), int8 8192 (16,32,16), fp32 1024 (16,8,16)."""
    cube = load_soc("Ascend910B2").core("aic").cube
    assert cube.macs_per_cycle("float16") == 4096 and cube.fractal_mkn("fp16") == (16, 16, 16)
    assert cube.macs_per_cycle("int8") == 8192 and cube.fractal_mkn("int8") == (16, 32, 16)
    assert cube.macs_per_cycle("float32") == 1024 and cube.fractal_mkn("float32") == (16, 8, 16)
    assert cube.fractal_mkn("int4") == (16, 64, 16)
    assert "bfloat16" in cube.supported_dtypes
    with pytest.raises(ValueError, match="dtype"):
        cube.macs_per_cycle("float64")


def test_vector_classes_and_bank_rule():
    """Vector unit: 256 B repeats, <= 255 repeats, 16 groups x 32 B blocks, 64 KiB bank layers;
    every required class priced, special fp16 slower than fp32, unknown class rejected."""
    vec = load_soc("Ascend910B2").core("aiv").vector
    assert (vec.repeat_bytes, vec.max_repeats) == (256, 255)
    assert (vec.ub_bank_groups, vec.ub_block_bytes, vec.ub_bank_bytes) == (16, 32, 65536)
    for cls in ("unary", "binary", "special", "ternary", "reduce", "convert", "copy", "dup"):
        assert vec.cycles_per_repeat(cls) > 0
    assert vec.cycles_per_repeat("special", "float16") > vec.cycles_per_repeat("special")
    with pytest.raises(ValueError, match="op_class"):
        vec.cycles_per_repeat("vexp")


def test_sync_limits():
    """A2/A3: event ids 0-7 (6 for users), cross-core flags 0-10 saturating at 16; 310P has none."""
    s = load_soc("Ascend910_9391").sync
    assert (s.event_ids, s.user_event_ids, s.cross_core_flag_ids, s.cross_core_counter_max) == (
        8, 6, 11, 16)
    p = load_soc("Ascend310P3")
    assert p.sync.event_ids == 8 and not p.supports("cross_core_flags")


def test_numerics_are_declared():
    """Every SoC declares the fractal-exact fp32 sequential cube model and split-K order."""
    for name in SHIPPED:
        n = load_soc(name).numerics
        assert n.cube_accumulation.model == "fractal_exact_fp32_sequential"
        assert n.split_k_reduction_order == "core_index_ascending"


def test_descriptor_is_frozen():
    """Assigning to a descriptor field raises (models are frozen)."""
    soc = load_soc("Ascend910B2")
    with pytest.raises(ValidationError):
        soc.aicore_freq_mhz = 2000
    with pytest.raises(ValidationError):
        soc.memory.hbm.bandwidth_gb_per_s = 1.0
    with pytest.raises(ValidationError):
        soc.core("aic").cube.head_cycles = 0


def test_bytes_per_cycle_converts_chip_bandwidth():
    """bytes_per_cycle(GB/s) = GB/s x 1e9 / (clock MHz x 1e6), per core kind's clock."""
    soc = load_soc("Ascend310P3")
    assert soc.bytes_per_cycle(212.0, "aicore") == pytest.approx(200.0, rel=1e-12)
    assert soc.bytes_per_cycle(100.0, "vector_core") == pytest.approx(100.0, rel=1e-12)
    assert load_soc("Ascend910B2").bytes_per_cycle(1800.0) == pytest.approx(1000.0, rel=1e-12)


def test_supports_rejects_unknown_features():
    """supports() raises ValueError for a name neither a derived feature nor an intrinsic."""
    soc = load_soc("Ascend910B2")
    assert soc.supports("load3d") and not soc.supports("l1_to_ub")
    with pytest.raises(ValueError, match="feature"):
        soc.supports("warp_drive")


def test_dump_yaml_round_trips(tmp_path):
    """model_dump_yaml() text is itself a valid descriptor file giving an equal model."""
    soc = load_soc("Ascend310P1")
    f = tmp_path / "dump.yaml"
    f.write_text(soc.model_dump_yaml(), encoding="utf-8")
    assert validate_soc_file(f) == soc
