"""A run summary's per-path bytes add up to its GM totals: the paths out of GM sum to
``gm_read_bytes`` and the paths into GM - DataCopy UB->GM and FixPipe L0C->GM alike - to
``gm_write_bytes`` (the FixPipe paths were missing, so a cube kernel's writes had no path)."""

import pytest

from npusim.runner import simulate
from npusim.spec import spec

CALLS = {
    "matmul": dict(a=spec((16, 256), "float16"), b=spec((256, 512), "float16")),
    "weight_quant_batchmatmul": dict(x=spec((16, 1024), "float16"),
                                     weight=spec((1024, 128), "int32"),
                                     antiquant_scale=spec((8, 1024), "float16"),
                                     antiquant_group_size=128),
    "vector_add": dict(x=spec((65536,), "float16"), y=spec((65536,), "float16")),
}


@pytest.mark.parametrize("op", sorted(CALLS))
def test_paths_sum_to_the_gm_totals(op):
    s = simulate(op, "Ascend910B2", **CALLS[op]).summary()
    paths = {k.removeprefix("path_"): v for k, v in s.items() if k.startswith("path_")}
    assert sum(v for p, v in paths.items() if p.startswith("GM->")) == s["gm_read_bytes"]
    assert sum(v for p, v in paths.items() if p.endswith("->GM")) == s["gm_write_bytes"] > 0
    if op != "vector_add":
        assert paths["L0C->GM"] > 0
