"""The 310P pp_matmul path (M >= 1024 with a bias): x1 TransData -> PpMatmul -> y TransData as
tiled programs (ops/quant_matmul_pp_program.py), bit-exact to the reference, its default tiling
the ops-nn heuristic, its tiling validator naming the field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _specs import spec_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
import npusim.torch_npu as tn
from npusim.hw import load_soc
from npusim.isa.semantics import supplied_semantics
from npusim.ops.quant_matmul import reference_quant_matmul
from npusim.ops.quant_matmul_pp_program import (
    PpMatmulTiling,
    block_order,
    default_pp_tiling,
    validate_pp_tiling,
)
from npusim.ops.trans_quant_param import reference_trans_quant_param
from npusim.spec import spec

SOC = "Ascend310P3"


def _u16(y: np.ndarray) -> np.ndarray:
    return np.asarray(y).view(np.uint16)


def _call(m: int, k: int, n: int, seed: int, int64_scale: bool = False, trans: bool = False):
    rng = np.random.default_rng(seed)
    x1 = rng.integers(-128, 128, (m, k), dtype=np.int8)
    x2 = rng.integers(-128, 128, (k, n), dtype=np.int8)
    if trans:
        x2 = np.ascontiguousarray(x2.T).T
    scale = rng.uniform(1e-5, 2e-3, n).astype(np.float32)
    if int64_scale:
        scale = reference_trans_quant_param(scale, None, 0)
    bias = rng.integers(-20000, 20000, n, dtype=np.int32)
    return x1, x2, scale, {"bias": bias, "output_dtype": "float16"}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1024, 3000), st.integers(1, 160), st.integers(1, 100), st.booleans(),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_program_bits_equal_the_reference(m, k, n, int64_scale, trans, seed):
    """Random legal shapes on the pp path: the functional run's output (x1 through the format_cast
    program, the PpMatmul kernel, y back through it) equals the reference bit for bit; no value
    semantics supplied by the program; the timing-only run has the same cycles."""
    x1, x2, scale, kw = _call(m, k, n, seed, int64_scale, trans)
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    res = npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, scale=scale, **kw)
    assert res.run.kernel.name == "quant_matmul_pp"
    assert np.array_equal(_u16(res.outputs), _u16(want))
    assert not supplied_semantics(res.run.kernel)
    assert res.run.kernel.meta["declared_l0c_to_ub_dequant_model"] == "fixpipe_equivalent"
    timing = npusim.simulate("quant_matmul", SOC, x1=spec_of(x1), x2=spec_of(x2),
                             scale=spec_of(scale), bias=spec_of(kw["bias"]),
                             output_dtype="float16")
    assert timing.outputs is None and timing.cycles == res.cycles > 0


def test_several_k_chunks_and_parts_and_a_one_row_last_block():
    """K = 600 over k0 = 256 chunks (prefetch of the next chunk, 128-deep L0 parts), M = 1025
    (the last 256-row block holds one row: the kernel's Muls of row 1), N = 300 (a partial
    block, padded scale / bias reads)."""
    x1, x2, scale, kw = _call(1025, 600, 300, 7)
    res = npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, scale=scale, **kw)
    t = res.tiling
    assert isinstance(t, PpMatmulTiling) and -(-600 // t.k0) > 1
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    assert np.array_equal(_u16(res.outputs), _u16(want))
    names = {i.name for c in res.run.kernel.cores for i in c.instrs}
    assert {"Muls 0 (row 1)", "L0C->UB VDEQ16", "bias UB->L0C broadcast"} <= names


def test_timing_only_run_and_launch_notes():
    """A timing-only run at a prefill size (M = 4096, K = N = 4096): no outputs, cycles, the
    TransData launches' cycles named in the notes and metadata."""
    res = npusim.simulate("quant_matmul", SOC, x1=spec((4096, 4096), "int8"),
                          x2=spec((4096, 4096), "int8"), scale=spec((4096,), "int64"),
                          bias=spec((4096,), "int32"), output_dtype="float16")
    assert res.outputs is None and res.cycles > 0
    launches = res.run.kernel.meta["launches"]
    assert launches["x1 TransData ND->NZ"] > 0 and launches["y TransData NZ->ND"] > 0
    assert "3 launches" in res.notes[0]
    assert res.tiling == PpMatmulTiling(256, 256, 256, 8, 2, 0)


def test_api_no_longer_refuses_and_gives_the_program_bits(monkeypatch):
    """npu_quant_matmul at the default fidelity ("program") on the pp path, ND and transposed
    NZ x2 (as the 310P docs pass it), equals the reference."""
    from npusim.torch_npu import _state

    monkeypatch.delenv("NPUSIM_FIDELITY", raising=False)
    monkeypatch.setattr(_state, "_fidelity", None)
    x1, x2, scale, kw = _call(1100, 96, 72, 3)
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    nz = tn.npu_format_cast(np.ascontiguousarray(x2.T), 29, soc=SOC)
    for w in (x2, nz.T):
        got = tn.npu_quant_matmul(x1, w, scale, soc=SOC, **kw)
        assert np.array_equal(_u16(got), _u16(want))


def test_default_tiling_is_the_ops_nn_heuristic():
    """Worked by hand from pp_matmul_common_tiling.h / pp_matmul_default.cpp: M = N = K = 1024
    -> the 256 x 256 block (cost 2 / 256), 16 blocks on 8 cores, Swizzle count 2 (cost 1536,
    ties later not taken), direction of the last i (Zn), k0 = 131072 / 512 = 256."""
    desc = load_soc(SOC)
    assert default_pp_tiling(desc, 1024, 1024, 1024) == PpMatmulTiling(256, 256, 256, 8, 2, 0)
    # N = 72: round_base 16 * 2^ceil(ln 5) = 64, so n0 up to 128; k0 = 131072 / 384 -> 256
    assert default_pp_tiling(desc, 1100, 96, 72) == PpMatmulTiling(256, 128, 256, 5, 2, 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1024, 2**31 - 1), st.integers(1, 65535), st.integers(1, 65535))
def test_default_tiling_is_legal(m, k, n):
    desc = load_soc(SOC)
    t = default_pp_tiling(desc, m, k, n)
    validate_pp_tiling(t, desc, m, k, n)
    if m * n < 2**22:
        order = block_order(t, m, n)  # the Zn swizzle visits every block once
        assert sorted(order) == [(i, j) for i in range(-(-m // t.m0))
                                 for j in range(-(-n // t.n0))]


@pytest.mark.parametrize(("field", "value", "match"), [
    ("m0", 24, "m0=24: must be a positive multiple of 16"),
    ("n0", 0, "n0=0"),
    ("k0", 48, "k0=48: must be a positive multiple of 32"),
    ("k0", 1024, "k0=1024: an m0 / n0 x k0"),
    ("n0", 512, "n0=512"),
    ("block_dim", 9, "block_dim=9"),
    ("swizzle_count", 0, "swizzle_count=0"),
    ("swizzle_direct", 2, "swizzle_direct=2"),
])
def test_tiling_validation_names_the_field(field, value, match):
    desc = load_soc(SOC)
    t = dataclasses.replace(PpMatmulTiling(256, 256, 256, 8, 2, 0), **{field: value})
    with pytest.raises(ValueError, match=f"tiling.{match}"):
        validate_pp_tiling(t, desc, 4096, 4096, 4096)
    x1, x2, scale, kw = _call(1024, 32, 2048, 0)
    with pytest.raises(ValueError, match=f"tiling.{field}"):
        npusim.simulate("quant_matmul", SOC, tiling=t, x1=spec_of(x1), x2=spec_of(x2),
                        scale=spec_of(scale), bias=spec_of(kw["bias"]), output_dtype="float16")


def test_a_wrong_tiling_type_is_a_type_error():
    desc = load_soc(SOC)
    with pytest.raises(TypeError, match="PpMatmulTiling"):
        validate_pp_tiling(object(), desc, 1024, 64, 64)  # type: ignore[arg-type]


def test_a_given_tiling_is_run():
    """A tiling other than the default (128 x 64 blocks, 2 cores, k0 64) gives the same bits."""
    x1, x2, scale, kw = _call(1030, 200, 90, 5)
    t = PpMatmulTiling(128, 64, 64, 2, 3, 0)
    res = npusim.simulate("quant_matmul", SOC, tiling=t, x1=x1, x2=x2, scale=scale, **kw)
    assert res.tiling == t and len(res.run.kernel.cores) == 2
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    assert np.array_equal(_u16(res.outputs), _u16(want))


def test_a_dict_tiling_applies_its_fields_to_the_default():
    x1, x2, scale, kw = _call(1024, 64, 96, 2)
    res = npusim.simulate("quant_matmul", SOC, tiling={"m0": 128, "block_dim": 4}, x1=x1, x2=x2,
                          scale=scale, **kw)
    assert res.tiling.m0 == 128 and res.tiling.block_dim == 4
    want = reference_quant_matmul(x1, x2, scale, soc=SOC, **kw)
    assert np.array_equal(_u16(res.outputs), _u16(want))


def test_a_functional_call_runs_each_trans_data_once(monkeypatch):
    """A functional call runs three launches, each once and functional: x1 TransData,
    PpMatmul, y TransData (the y TransData also ran timing-only while planning, for its
    cycles); the notes and metadata name the y TransData's cycles from its one run, the same
    as a timing-only call's."""
    import npusim.engine.sim as sim
    import npusim.runner as runner

    runs: list[tuple[str, bool]] = []
    run_kernel = sim.run_kernel

    def counting(kernel, *args, **kw):
        runs.append((kernel.name, bool(kw.get("functional"))))
        return run_kernel(kernel, *args, **kw)

    for module in (sim, runner):  # the runner holds its own reference
        monkeypatch.setattr(module, "run_kernel", counting)
    x1, x2, scale, kw = _call(1030, 200, 90, 4)
    res = npusim.simulate("quant_matmul", SOC, x1=x1, x2=x2, scale=scale, **kw)
    assert runs == [("format_cast", True), ("quant_matmul_pp", True), ("format_cast", True)]
    timing = npusim.simulate("quant_matmul", SOC, x1=spec_of(x1), x2=spec_of(x2),
                             scale=spec_of(scale), bias=spec_of(kw["bias"]),
                             output_dtype="float16")
    assert res.run.kernel.meta["launches"] == timing.run.kernel.meta["launches"]
    assert res.notes == timing.notes and "y TransData NZ->ND" in res.notes[0]
