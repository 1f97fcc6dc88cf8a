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
    """npu_quant_matmul and simulate('quant_matmul') both refuse output bits on 310P (the vector
    dequant's numerics are unpublished); a timing-only run works."""
    x1, x2 = np.ones((16, 64), np.int8), np.ones((64, 32), np.int8)
    scale = np.full(32, 0.5, np.float32)
    with pytest.raises(NotImplementedError, match="not published"):
        tn.npu_quant_matmul(x1, x2, scale, soc="Ascend310P3")
    with pytest.raises(NotImplementedError, match="not published"):
        npusim.simulate("quant_matmul", soc="Ascend310P3", x1=x1, x2=x2, scale=scale)
    res = npusim.simulate("quant_matmul", soc="Ascend310P3", x1=spec((16, 64), "int8"),
                          x2=spec((64, 32), "int8"), scale=spec((32,), "float32"))
    assert res.outputs is None and res.cycles > 0
