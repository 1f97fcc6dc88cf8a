"""The on-disk result cache (issue 14 item 4): a hit returns the cycles of a fresh simulation,
any change of the key (shape, SoC override, tiling, L2 start, code) misses, functional runs are
never stored, and the off switch bypasses it."""

from __future__ import annotations

import numpy as np
import pytest

import npusim
from npusim import result_cache
from npusim.result_cache import timing_summary
from npusim.spec import spec

ARGS = {"a": spec((64, 256), "float16"), "b": spec((256, 128), "float16")}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NPUSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NPUSIM_RESULT_CACHE", raising=False)
    return tmp_path / "cache"


def test_hit_returns_the_cycles_of_a_fresh_simulation(_cache_dir):
    """Rule: the second identical call is served from disk with the same cycles and fields as
    the first, which equal a plain simulate()."""
    first = timing_summary("matmul", "Ascend910B2", **ARGS)
    second = timing_summary("matmul", "Ascend910B2", **ARGS)
    fresh = npusim.simulate("matmul", "Ascend910B2", **ARGS)
    assert not first.cached and second.cached
    assert second.cycles == first.cycles == fresh.cycles
    assert {**second.__dict__, "cached": False} == first.__dict__
    assert len(list(_cache_dir.glob("*.json"))) == 1


@pytest.mark.parametrize("change", ["shape", "override", "l2", "dtype_scale", "code"])
def test_changed_key_misses(change, monkeypatch):
    """Rule: a different shape, SoC override, L2 start, small-array value or code fingerprint is
    a different entry (simulated, not served)."""
    timing_summary("matmul", "Ascend910B2", **ARGS)
    timing_summary("quant_matmul", "Ascend910B2", x1=spec((32, 64), "int8"),
                   x2=spec((64, 64), "int8"), scale=np.full(64, 1e-3, np.float32),
                   output_dtype="int8")
    kw: dict = {"op": "matmul", "soc": "Ascend910B2", **ARGS}
    if change == "shape":
        kw["a"] = spec((80, 256), "float16")
    elif change == "override":
        kw["overrides"] = ["memory.hbm.bandwidth_gb_per_s=3200"]
    elif change == "l2":
        kw["l2_start"] = "repeat"
    elif change == "dtype_scale":
        kw = {"op": "quant_matmul", "soc": "Ascend910B2", "x1": spec((32, 64), "int8"),
              "x2": spec((64, 64), "int8"), "scale": np.full(64, 2e-3, np.float32),
              "output_dtype": "int8"}
    else:
        monkeypatch.setattr(result_cache, "code_fingerprint", lambda: "another version")
    op, soc = kw.pop("op"), kw.pop("soc")
    again = timing_summary(op, soc, **kw)
    assert not again.cached
    assert again.cycles == npusim.simulate(op, soc, **kw).cycles


def test_off_switch_and_functional_runs(_cache_dir, monkeypatch):
    """Rule: NPUSIM_RESULT_CACHE=0 neither reads nor writes; a functional call is refused."""
    monkeypatch.setenv("NPUSIM_RESULT_CACHE", "0")
    assert not timing_summary("matmul", "Ascend910B2", **ARGS).cached
    assert not timing_summary("matmul", "Ascend910B2", **ARGS).cached
    assert not _cache_dir.exists()
    monkeypatch.setenv("NPUSIM_RESULT_CACHE", "1")
    a = np.ones((16, 32), np.float16)
    with pytest.raises(ValueError, match="timing-only"):
        timing_summary("matmul", "Ascend910B2", a=a, b=np.ones((32, 16), np.float16))
    assert not list(_cache_dir.glob("*.json"))
