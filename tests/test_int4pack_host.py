"""int4pack is host work in torch_npu: simulate / ``npusim run`` raise HostOperatorError quoting
the stated host cost model, after checking the weight like the operator does."""

import numpy as np
import pytest

from npusim.cli import main
from npusim.layouts import ACL_FORMAT_FRACTAL_NZ
from npusim.ops.int4pack import HostOperatorError, host_cost_model
from npusim.runner import simulate
from npusim.spec import spec


@pytest.mark.parametrize("weight,nz", [
    (spec((256, 512), "int32"), False),
    (spec((256, 512), "int32", npu_format=ACL_FORMAT_FRACTAL_NZ), True),
    (np.zeros((256, 512), np.int32), False),
])
def test_simulate_raises_host_error_with_the_cost_model(weight, nz):
    """Rule: no NPU program is invented; the message names host work and quotes the model's
    total for this shape (so it changes with the shape and the NZ re-tiling)."""
    with pytest.raises(HostOperatorError, match="host work") as info:
        simulate("int4pack", "Ascend910B4", weight=weight)
    total = host_cost_model(256, 512, nz_input=nz)["seconds"] * 1e6
    assert f"{total:.1f} us" in str(info.value)
    assert ("+ NZ re-tiling" in str(info.value)) == nz
    assert isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize("weight,exc,msg", [
    (spec((256, 12), "int32"), ValueError, "multiple of 8"),
    (spec((256, 16), "float16"), TypeError, "weight: dtype"),
    (np.full((4, 8), 9, np.int32), ValueError, "outside the int4 range"),
])
def test_bad_weight_is_reported_before_the_host_error(weight, exc, msg):
    """Rule: argument errors come first, naming the argument and the rule."""
    with pytest.raises(exc, match=msg):
        simulate("int4pack", "Ascend910B4", weight=weight)


def test_cli_exits_with_the_host_message(capsys):
    """Rule: ``npusim run int4pack`` prints the explanation as ``npusim: error:`` (no
    traceback) and exits 2, like every request the simulator refuses."""
    assert main(["run", "int4pack", "--k", "128", "--n", "64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npusim: error: ") and "host work" in err and "(128, 64)" in err
    assert "Traceback" not in err
