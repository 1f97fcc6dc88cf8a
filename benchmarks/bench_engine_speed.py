"""Engine speed (issue 14): simulated instructions per CPU-second (time.process_time) of timing-only
runs, program build and engine run measured apart, beside bare simpy timeouts and a hand-rolled
heap on the same machine in the same process. Prints a markdown table; asserts nothing.

    python benchmarks/bench_engine_speed.py            # decode W4A16, W8A8 1024^3, matmul 2048^3
    python benchmarks/bench_engine_speed.py --huge     # + prefill W8A16 4096^3, matmul 4096^3
"""

from __future__ import annotations

import argparse
import heapq
import platform
import resource
import time

import numpy as np
import simpy

from npusim.engine.sim import run_kernel
from npusim.runner import operator_module, resolve_soc
from npusim.spec import spec

SOC = "Ascend910B2"


def _cases(huge: bool):
    yield ("decode W4A16 M=1 K=N=4096 (int4 g128)", "weight_quant_batchmatmul",
           {"x": spec((1, 4096), "float16"), "weight": spec((4096, 512), "int32"),
            "antiquant_scale": spec((32, 4096), "float16"), "antiquant_group_size": 128})
    yield ("W8A8 1024^3 (int8 out)", "quant_matmul",
           {"x1": spec((1024, 1024), "int8"), "x2": spec((1024, 1024), "int8"),
            "scale": np.full(1024, 1e-3, np.float32), "output_dtype": "int8"})
    yield ("matmul fp16 2048^3", "matmul",
           {"a": spec((2048, 2048), "float16"), "b": spec((2048, 2048), "float16")})
    if huge:
        yield ("prefill W8A16 M=K=N=4096 (int8 per-channel)", "weight_quant_batchmatmul",
               {"x": spec((4096, 4096), "float16"), "weight": spec((4096, 4096), "int8"),
                "antiquant_scale": spec((4096,), "float16")})
        yield ("matmul fp16 4096^3", "matmul",
               {"a": spec((4096, 4096), "float16"), "b": spec((4096, 4096), "float16")})


def bare_simpy(n: int = 200_000, procs: int = 64) -> float:
    """Timeouts per CPU-second of ``procs`` simpy processes each yielding n/procs timeouts."""
    env = simpy.Environment()

    def proc(k: int):
        for i in range(k):
            yield env.timeout(1 + (i & 3))

    for _ in range(procs):
        env.process(proc(n // procs))
    t = time.process_time()
    env.run()
    return n / (time.process_time() - t)


def bare_heap(n: int = 200_000, procs: int = 64) -> float:
    """Events per CPU-second of a hand-rolled heap event loop over the same pattern."""
    left = [n // procs] * procs
    heap = [(0, p) for p in range(procs)]
    t = time.process_time()
    count = 0
    while heap:
        now, p = heapq.heappop(heap)
        left[p] -= 1
        count += 1
        if left[p]:
            heapq.heappush(heap, (now + 1 + (left[p] & 3), p))
    return count / (time.process_time() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--huge", action="store_true", help="also the 4096^3 prefill and matmul")
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; CPU-seconds (time.process_time), timing-only, "
          f"race checks off, {SOC}")
    t = time.process_time()
    desc = resolve_soc(SOC)
    print(f"SoC load: {time.process_time() - t:.2f} CPU-s")
    print("| case | instructions | simulated us | build CPU-s | engine CPU-s | engine instr/CPU-s "
          "| end-to-end instr/CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for label, op, op_args in _cases(args.huge):
        t0 = time.process_time()
        plan = operator_module(op).plan(desc, **op_args)
        t1 = time.process_time()
        res = run_kernel(plan.kernel, desc, check_races=False)
        t2 = time.process_time()
        n = plan.kernel.instruction_count()
        print(f"| {label} | {n} | {res.microseconds:.1f} | {t1 - t0:.2f} | {t2 - t1:.2f} | "
              f"{n / (t2 - t1):,.0f} | {n / (t2 - t0):,.0f} |")
    print(f"\nbare simpy timeouts: {bare_simpy():,.0f} /CPU-s; hand-rolled heap events: "
          f"{bare_heap():,.0f} /CPU-s")
    print("compiled engine: not available in this build (issue 14 items 2-3); only the simpy "
          "reference engine is measured")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
