"""The run summary states the HBM bound (unavoidable HBM bytes / HBM bandwidth: inputs not in L2
at start read once, outputs beyond the L2 capacity written once) next to the simulated time and
names the bottleneck pipe; the numbers are recomputed here independently."""

import re

import numpy as np

import npusim
from npusim.cli import main
from npusim.report.summary import format_summary
from npusim.runner import resolve_soc
from npusim.spec import spec

LINE = re.compile(
    r"HBM bound ([0-9.]+) us \(no launch is faster: [^)]*\); "
    r"simulated ([0-9.]+) us = ([0-9.]+) x bound; "
    r"bottleneck pipe (\w+)/(\w+) \(busy ([0-9.]+)%\)"
)


def check_line(summary: dict, nbytes: int, bw_gb_per_s: float) -> re.Match:
    text = format_summary(summary)
    hit = LINE.search(text)
    assert hit, text
    bound, sim, ratio = (float(hit.group(i)) for i in (1, 2, 3))
    want_bound = nbytes / (bw_gb_per_s * 1e9) * 1e6
    assert summary["hbm_bound_read_bytes"] + summary["hbm_bound_write_bytes"] == nbytes
    assert abs(bound - want_bound) <= 0.005 + 1e-9
    assert abs(sim - summary["us"]) <= 0.005 + 1e-9
    assert abs(ratio - summary["us"] / want_bound) <= 0.005 + 1e-9
    busy = {
        k: v for k, v in summary.items() if k.endswith("_busy_pct") and not k.startswith("bottle")
    }
    kind, pipe, pct = hit.group(4), hit.group(5), float(hit.group(6))
    assert abs(pct - busy[f"{kind}_{pipe}_busy_pct"]) <= 0.05
    assert busy[f"{kind}_{pipe}_busy_pct"] == max(busy.values())
    return hit


def test_w4a16_decode_8192x12288_prints_hbm_bound_and_bottleneck():
    """M=1, K=8192, N=12288, int4 per-group 128 on a 910B2 (the issue's case): bound bytes =
    packed weight + x + fp16 scales (y stays in L2); bound = bytes / HBM bandwidth."""
    m, k, n, g = 1, 8192, 12288, 128
    r = npusim.simulate(
        "weight_quant_batchmatmul", "Ascend910B2", check_races=False,
        x=spec((m, k), "float16"), weight=spec((k, n // 8), "int32"),
        antiquant_scale=spec((k // g, n), "float16"), antiquant_group_size=g,
    )  # fmt: skip
    nbytes = k * n // 2 + m * k * 2 + (k // g) * n * 2
    bw = resolve_soc("Ascend910B2").memory.hbm.bandwidth_gb_per_s
    hit = check_line(r.summary(), nbytes, bw)
    assert r.summary()["hbm_compulsory_bytes"] == nbytes + m * n * 2
    assert float(hit.group(3)) >= 1.0  # no run beats the bound it cannot avoid


def test_undeclared_operator_falls_back_to_inputs_plus_outputs(capsys):
    """vector_add declares nothing: the bound counts x and y once (z fits in L2); the CLI prints
    the line."""
    n = 1 << 16
    r = npusim.simulate("vector_add", "Ascend910B2", x=spec((n,), "float16"),
                        y=spec((n,), "float16"))
    s = r.summary()
    assert s["hbm_compulsory_source"] == "GM inputs + outputs once"
    check_line(s, 2 * n * 2, resolve_soc("Ascend910B2").memory.hbm.bandwidth_gb_per_s)
    assert main(["run", "weight_quant_batchmatmul", "--m", "1", "--k", "256", "--n", "256",
                 "--soc", "Ascend910B4"]) == 0
    out = capsys.readouterr().out
    nbytes = 256 * 256 // 2 + 256 * 2 + 2 * 256 * 2
    bw = resolve_soc("Ascend910B4").memory.hbm.bandwidth_gb_per_s
    hit = LINE.search(out)
    assert hit, out
    assert abs(float(hit.group(1)) - nbytes / (bw * 1e3)) <= 0.005
    assert np.isfinite(float(hit.group(3)))


def test_bound_is_not_beaten_by_h6_and_counts_outputs_beyond_l2():
    """Rule: the bound is a lower bound. vector_add H6 (256 MiB in, 128 MiB out, which stays in
    the 192 MiB L2) is at least 1.0 x bound; an output larger than the L2 adds its excess as
    written bytes; with a repeat L2 start up to the L2 capacity of the inputs may be resident."""
    from npusim.ops.vector_add import h_series_result
    from npusim.report.summary import hbm_lower_bound_bytes

    r = h_series_result("H6")
    s = r.summary()
    assert s["time_over_hbm_bound"] >= 1.0
    assert s["hbm_bound_read_bytes"] == 2 * 8192 * 8192 * 2 and s["hbm_bound_write_bytes"] == 0
    soc = resolve_soc("Ascend910B2")
    cap = soc.memory.l2.capacity_bytes
    n = (cap // 2) + (1 << 20)  # fp32 copy: the output exceeds the L2 by 4 MiB
    big = npusim.simulate("tensor_copy", soc, None, n_elements=n, dtype="float32",
                          check_races=False)
    lb = hbm_lower_bound_bytes(big.run)
    assert lb["write_bytes"] == 4 * n - cap and lb["read_bytes"] == 4 * n
    assert big.summary()["time_over_hbm_bound"] >= 1.0
    rep = npusim.simulate("tensor_copy", soc, None, n_elements=n, dtype="float32",
                          check_races=False, l2_start="repeat")
    assert hbm_lower_bound_bytes(rep.run)["read_bytes"] == 4 * n - cap
    assert rep.summary()["time_over_hbm_bound"] >= 1.0
