"""The benchmark suite (issue 8): simulator wall time, simulated instructions per second, the cost
of functional mode relative to a numpy float32 matmul of the same shape, and peak memory.

Prints a markdown table; figures depend on the machine (run it on an idle one)."""

from __future__ import annotations

import platform
import resource
import time

import numpy as np

import npusim
from npusim.spec import spec


def _cases():
    rng = np.random.default_rng(0)
    w4 = rng.integers(-8, 8, (4096, 4096), dtype=np.int32)
    from npusim.numerics import pack_int4

    w4p = pack_int4(w4)
    yield ("decode W4A16 M=1 K=N=4096 (int4 g128)", "weight_quant_batchmatmul",
           {"x": spec((1, 4096), "float16"), "weight": spec((4096, 512), "int32"),
            "antiquant_scale": spec((32, 4096), "float16"), "antiquant_group_size": 128},
           {"x": rng.standard_normal((1, 4096)).astype(np.float16), "weight": w4p,
            "antiquant_scale": (rng.uniform(0.5, 1.5, (32, 4096)) * 0.01).astype(np.float16),
            "antiquant_group_size": 128}, (1, 4096, 4096))
    yield ("prefill W8A16 M=K=N=4096 (int8 per-channel)", "weight_quant_batchmatmul",
           {"x": spec((4096, 4096), "float16"), "weight": spec((4096, 4096), "int8"),
            "antiquant_scale": spec((4096,), "float16")}, None, (4096, 4096, 4096))
    yield ("W8A8 1024^3 (int8 out)", "quant_matmul",
           {"x1": spec((1024, 1024), "int8"), "x2": spec((1024, 1024), "int8"),
            "scale": np.full(1024, 1e-3, np.float32), "output_dtype": "int8"},
           {"x1": rng.integers(-128, 128, (1024, 1024), dtype=np.int8),
            "x2": rng.integers(-128, 128, (1024, 1024), dtype=np.int8),
            "scale": np.full(1024, 1e-3, np.float32), "output_dtype": "int8"},
           (1024, 1024, 1024))
    yield ("group_quant 65536 x 512", "group_quant",
           {"x": spec((65536, 512), "float16"), "scale": spec((8, 512), "float32"),
            "group_index": np.linspace(0, 65536, 9).astype(np.int64)[1:]}, None, None)


def main() -> None:
    print(f"machine: {platform.node()} {platform.machine()} {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| case | simulated us | wall s (timing-only) | instructions | instr/s | "
          "functional wall s | functional / numpy fp32 matmul |")
    print("|---|---|---|---|---|---|---|")
    for label, op, timing_args, fun_args, mkn in _cases():
        t0 = time.perf_counter()
        r = npusim.simulate(op, "Ascend910B2", check_races=False, **timing_args)
        wall = time.perf_counter() - t0
        n = r.run.kernel.instruction_count()
        fcol = rcol = "-"
        if fun_args is not None:
            t0 = time.perf_counter()
            npusim.simulate(op, "Ascend910B2", check_races=False, **fun_args)
            fwall = time.perf_counter() - t0
            m, k, nn = mkn
            a = np.ones((m, k), np.float32)
            b = np.ones((k, nn), np.float32)
            t0 = time.perf_counter()
            for _ in range(5):
                a @ b
            ref = (time.perf_counter() - t0) / 5
            fcol, rcol = f"{fwall:.2f}", f"{fwall / ref:,.0f}x"
        print(f"| {label} | {r.microseconds:.1f} | {wall:.2f} | {n} | {n / wall:,.0f} | {fcol} "
              f"| {rcol} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
