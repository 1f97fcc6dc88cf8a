"""Traces of the mix kernels serialise their metadata (tiling objects included) and differ
between the inner_precise modes."""

import json

import npusim
from npusim.spec import spec


def _trace(tmp_path, ip: int) -> dict:
    res = npusim.simulate(
        "weight_quant_batchmatmul", "Ascend910B2", x=spec((16, 512), "float16"),
        weight=spec((512, 64), "int32"), antiquant_scale=spec((4, 512), "float16"),
        antiquant_group_size=128, inner_precise=ip, check_races=False,
    )
    path = res.write_trace(tmp_path / f"ip{ip}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_msdgroup_traces_for_both_modes(tmp_path):
    t0, t1 = _trace(tmp_path, 0), _trace(tmp_path, 1)
    for ip, t in ((0, t0), (1, t1)):
        meta = t["metadata"]
        assert meta["selected_kernel"] == "MsdGroup" and meta["inner_precise"] == ip
        assert "MsdGroupTiling(" in meta["kernel_tiling"]
    end = [max(e["ts"] + e["dur"] for e in t["traceEvents"] if e.get("ph") == "X")
           for t in (t0, t1)]
    assert end[0] != end[1]
