"""Where the torch_npu-named API's outputs come from: by default (``program``) the functional run
of the selected kernel's tiled program; ``reference`` (opt-in: a call's ``fidelity=``,
``set_fidelity`` or ``NPUSIM_FIDELITY``) the kernel's numerics model."""

from __future__ import annotations

import numpy as np
import pytest

import npusim
import npusim.torch_npu as tn
from npusim.numerics import pack_int4
from npusim.torch_npu import _state


def _call(seed: int, m: int, k: int, n: int, int4: bool) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float16)
    lo, hi = (-8, 8) if int4 else (-128, 128)
    w = rng.integers(lo, hi, (k, n)).astype(np.int32)
    w = pack_int4(w) if int4 else w.astype(np.int8)
    g = 128 if int4 else 0
    scale = (rng.random((k // g, n) if g else (n,)) * 0.02 + 0.005).astype(np.float16)
    return x, w, scale, g


def test_default_fidelity_is_the_program(monkeypatch):
    monkeypatch.delenv("NPUSIM_FIDELITY", raising=False)
    monkeypatch.setattr(_state, "_fidelity", None)
    assert tn.current_fidelity() == "program"
    monkeypatch.setenv("NPUSIM_FIDELITY", "reference")
    assert tn.current_fidelity() == "reference"
    assert tn.set_fidelity("program") == "program"  # a call beats the environment
    assert tn.set_fidelity(None) == "reference"  # back to the environment's choice
    monkeypatch.setenv("NPUSIM_FIDELITY", "exact")
    with pytest.raises(ValueError, match="NPUSIM_FIDELITY: 'exact' is not a fidelity"):
        tn.current_fidelity()
    with pytest.raises(ValueError, match="fidelity: 'fast' is not a fidelity"):
        tn.npu_weight_quant_batchmatmul(*_call(0, 2, 256, 64, False)[:3], fidelity="fast")


@pytest.mark.parametrize(("m", "k", "n", "int4"), [(1, 512, 256, True), (16, 256, 128, False)])
def test_program_fidelity_reads_the_simulated_output(m, k, n, int4):
    """At ``program`` fidelity the API returns what simulate()'s functional run of the same
    kernel wrote into GM, and it equals the numerics model bit for bit (uint views)."""
    x, w, scale, g = _call(m + k, m, k, n, int4)
    got = tn.npu_weight_quant_batchmatmul(x, w, scale, antiquant_group_size=g,
                                          fidelity="program")
    res = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", x=x, weight=w,
                          antiquant_scale=scale, antiquant_group_size=g)
    ref = tn.npu_weight_quant_batchmatmul(x, w, scale, antiquant_group_size=g,
                                          fidelity="reference")
    assert got.view(np.uint16).tolist() == np.asarray(res.outputs).view(np.uint16).tolist()
    assert got.view(np.uint16).tolist() == ref.view(np.uint16).tolist()


def test_a_program_too_large_to_run_names_the_reference_fidelity(monkeypatch):
    x, w, scale, g = _call(1, 16, 512, 256, True)
    monkeypatch.setenv("NPUSIM_MAX_INSTRUCTIONS", "10")
    with pytest.raises(ValueError, match="fidelity='reference'"):
        tn.npu_weight_quant_batchmatmul(x, w, scale, antiquant_group_size=g, fidelity="program")
