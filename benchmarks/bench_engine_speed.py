"""Engine speed (issue 14): simulated instructions per CPU-second (time.process_time) of timing-only
runs on the fast engine (npusim.engine.fast) beside the simpy reference engine and bare simpy
timeouts / a hand-rolled heap, same machine, same process; program build measured apart. Then
`npusim model` (Llama-2-7B W4A16 decode on a 910B4) cold and warm. Prints markdown; asserts
nothing (each case also prints whether the two engines' results are identical).

    python benchmarks/bench_engine_speed.py              # five cases, 8192^3, npusim model
    python benchmarks/bench_engine_speed.py --no-huge    # without fp16 matmul 8192^3
    python benchmarks/bench_engine_speed.py --profile-build   # where program generation goes
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import io
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import simpy

from npusim.engine.sim import run_kernel
from npusim.operators import get_operator
from npusim.runner import resolve_soc
from npusim.spec import spec

SOC = "Ascend910B2"


def _cases():
    yield ("decode W4A16 M=1 K=N=4096 (int4 g128)", "weight_quant_batchmatmul",
           {"x": spec((1, 4096), "float16"), "weight": spec((4096, 512), "int32"),
            "antiquant_scale": spec((32, 4096), "float16"), "antiquant_group_size": 128})
    yield ("W8A8 1024^3 (int8 out)", "quant_matmul",
           {"x1": spec((1024, 1024), "int8"), "x2": spec((1024, 1024), "int8"),
            "scale": np.full(1024, 1e-3, np.float32), "output_dtype": "int8"})
    yield ("matmul fp16 2048^3", "matmul",
           {"a": spec((2048, 2048), "float16"), "b": spec((2048, 2048), "float16")})
    yield ("matmul fp16 4096^3", "matmul",
           {"a": spec((4096, 4096), "float16"), "b": spec((4096, 4096), "float16")})
    yield ("prefill W8A16 M=K=N=4096 (int8 per-channel)", "weight_quant_batchmatmul",
           {"x": spec((4096, 4096), "float16"), "weight": spec((4096, 4096), "int8"),
            "antiquant_scale": spec((4096,), "float16")})


HUGE = ("matmul fp16 8192^3", "matmul",
        {"a": spec((8192, 8192), "float16"), "b": spec((8192, 8192), "float16")})


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


def _fingerprint(res) -> tuple:
    return (res.cycles, [(r.core, r.pipe, r.name, r.start, r.end, r.nbytes, r.hbm_bytes)
                         for r in res.records],
            [(f.name, f.src_core, f.ts_set, f.dst_core, f.ts_wait) for f in res.flows],
            res.traffic.as_dict(), res.hbm_busy_cycles)


def _engine_run(kernel, desc, engine: str, repeat: int = 1) -> tuple[object, float]:
    """The result and the least CPU time of ``repeat`` runs (a shared machine's load only
    adds time)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.process_time()
        res = run_kernel(kernel, desc, check_races=False, engine=engine)
        best = min(best, time.process_time() - t)
    return res, best


def engines_table(desc, huge: bool) -> None:
    """One table: the five cases on both engines, then (``huge``) fp16 matmul 8192^3 on the fast
    engine in its own process, then bare simpy timeouts and a hand-rolled heap (events in the
    instruction columns). Cases below 100k instructions: the best of 3 runs per engine."""
    print("| case | instructions | simulated us | build CPU-s | reference CPU-s | reference "
          "instr/CPU-s | fast CPU-s | fast instr/CPU-s | speed-up | identical |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, op, op_args in _cases():
        t0 = time.process_time()
        plan = get_operator(op).plan(desc, **op_args)
        build = time.process_time() - t0
        n = plan.kernel.instruction_count()
        repeat = 3 if n < 100_000 else 1
        ref, t_ref = _engine_run(plan.kernel, desc, "reference", repeat)
        got, t_fast = _engine_run(plan.kernel, desc, "fast", repeat)
        same = "yes" if _fingerprint(ref) == _fingerprint(got) else "NO"
        print(f"| {label} | {n} | {got.microseconds:.1f} | {build:.2f} | {t_ref:.2f} | "
              f"{n / t_ref:,.0f} | {t_fast:.2f} | {n / t_fast:,.0f} | {t_ref / t_fast:.1f}x | "
              f"{same} |", flush=True)
        del plan, ref, got
    if huge:
        huge_case()
    n = 200_000
    simpy_rate, heap_rate = bare_simpy(n), bare_heap(n)
    print(f"| bare simpy timeouts (64 processes) | {n} | - | - | {n / simpy_rate:.2f} | "
          f"{simpy_rate:,.0f} | - | - | - | - |")
    print(f"| hand-rolled heap events (64 pipes) | {n} | - | - | - | - | {n / heap_rate:.2f} | "
          f"{heap_rate:,.0f} | - | - |")


def huge_case() -> None:
    """fp16 matmul 8192^3 on the fast engine alone, in a child process (its own peak memory)."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import bench_engine_speed; " \
        "bench_engine_speed._huge_child()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    print(out.stdout.strip())


def _huge_child() -> None:
    desc = resolve_soc(SOC)
    label, op, op_args = HUGE
    t0 = time.process_time()
    plan = get_operator(op).plan(desc, **op_args)
    t1 = time.process_time()
    res = run_kernel(plan.kernel, desc, check_races=False)
    t2 = time.process_time()
    n = plan.kernel.instruction_count()
    peak = _own_peak_mib()
    print(f"| {label} (fast engine alone, own process: build {t1 - t0:.2f} + engine "
          f"{t2 - t1:.2f} = {t2 - t0:.2f} CPU-s, peak resident memory {peak:.0f} MiB) | {n} | "
          f"{res.microseconds:.1f} | {t1 - t0:.2f} | - | - | {t2 - t1:.2f} | {n / (t2 - t1):,.0f} "
          f"| - | - |")


def _own_peak_mib() -> float:
    """This process's peak resident memory since it started (VmHWM; ``ru_maxrss`` would include
    the parent's resident size at fork, which Linux carries across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_command() -> None:
    """`npusim model llama-2-7b --soc Ascend910B4 --quant w4a16 --prefill-tokens 0` as a child
    process (imports included): cold (empty result cache), warm (same cache), and cold on the
    reference engine."""
    cmd = [sys.executable, "-m", "npusim.cli", "model", "llama-2-7b", "--soc", "Ascend910B4",
           "--quant", "w4a16", "--prefill-tokens", "0"]
    with tempfile.TemporaryDirectory() as cache:
        rows = []
        for label, engine, fresh in (("cold", "fast", True), ("warm", "fast", False),
                                     ("cold, reference engine", "reference", True)):
            if fresh:
                for f in os.listdir(cache):
                    os.remove(os.path.join(cache, f))
            env = dict(os.environ, NPUSIM_CACHE_DIR=cache, NPUSIM_ENGINE=engine)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            rows.append(f"{label} {wall:.2f} s wall / {cpu:.2f} CPU-s")
    print("`npusim model llama-2-7b --soc Ascend910B4 --quant w4a16 --prefill-tokens 0` (32 layers "
          "x 7 linear ops, imports included): " + "; ".join(rows))


def profile_build(desc) -> None:
    """cProfile of the prefill case's program generation: the top functions by own time."""
    label, op, op_args = list(_cases())[-1]
    prof = cProfile.Profile()
    prof.enable()
    get_operator(op).plan(desc, **op_args)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    print(f"program generation of {label}, by own time (cProfile):")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[-2500:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-huge", action="store_true", help="skip fp16 matmul 8192^3")
    ap.add_argument("--huge", action="store_true", help=argparse.SUPPRESS)  # the default now
    ap.add_argument("--profile-build", action="store_true",
                    help="profile the prefill case's program generation")
    ap.add_argument("--no-model", action="store_true", help="skip the npusim model timing")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; machine: {platform.node()} "
          f"{platform.machine()} Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; CPU-seconds (time.process_time), timing-only, "
          f"race checks off, {SOC}")
    t = time.process_time()
    desc = resolve_soc(SOC)
    print(f"SoC load: {time.process_time() - t:.2f} CPU-s")
    engines_table(desc, not args.no_huge)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory (this process, 8192^3 excluded): {peak:.0f} MiB")
    if not args.no_model:
        model_command()
    if args.profile_build:
        profile_build(desc)


if __name__ == "__main__":
    main()
