"""Atlas inference series (310P) consistency (issue 16): what the seed docs list runs there, and
the torch_npu-named API and ``simulate`` agree on what they model."""

from __future__ import annotations

import numpy as np
import pytest

import npusim
import npusim.torch_npu as tn
from npusim.ops.trans_quant_param import reference_trans_quant_param
from npusim.spec import spec


@pytest.mark.parametrize("soc", ["Ascend310P1", "Ascend310P3"])
@pytest.mark.parametrize("with_offset", [False, True])
def test_trans_quant_param_runs_on_310p(soc, with_offset):
    """Seed 003 lists the 310P: the program runs on one AI Core, bit-exact to the reference
    (uint64 views), and its label names the assumed structure."""
    rng = np.random.default_rng(3)
    scale = rng.uniform(1e-4, 1.0, 40).astype(np.float32)
    offset = rng.uniform(-300, 300, 40).astype(np.float32) if with_offset else None
    res = npusim.simulate("trans_quant_param", soc=soc, scale=scale, offset=offset)
    want = reference_trans_quant_param(scale, offset, 0)
    assert np.array_equal(res.outputs.view(np.uint64), want.view(np.uint64))
    assert res.run.kernel.cores[0].kind == "aicore" and "declared model" in res.kernel_name


def test_quant_matmul_api_and_simulate_agree_on_310p():
    """npu_quant_matmul and simulate('quant_matmul') give the same bits on 310P (the L0C -> UB
    VDEQ16 copy under the declared model), and a timing-only run has the same cycles."""
    rng = np.random.default_rng(5)
    x1 = rng.integers(-128, 128, (16, 64)).astype(np.int8)
    x2 = rng.integers(-128, 128, (64, 32)).astype(np.int8)
    scale = rng.uniform(1e-4, 1e-2, 32).astype(np.float32)
    api = tn.npu_quant_matmul(x1, x2, scale, output_dtype="float16", soc="Ascend310P3")
    res = npusim.simulate("quant_matmul", soc="Ascend310P3", x1=x1, x2=x2, scale=scale,
                          output_dtype="float16")
    assert np.array_equal(res.outputs.view(np.uint16), api.view(np.uint16))
    spec_res = npusim.simulate("quant_matmul", soc="Ascend310P3", x1=spec((16, 64), "int8"),
                               x2=spec((64, 32), "int8"), scale=spec((32,), "float32"),
                               output_dtype="float16")
    assert spec_res.outputs is None and spec_res.cycles == res.cycles
