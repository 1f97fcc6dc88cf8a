"""The issue-7 sweep figure: a decode-shape matmul sweep over every legal tiling (>= 1,000),
ranked by the analytical bound, the best ``--simulate-top`` simulated on the local pool.

Prints the wall time of the whole sweep (enumerate + bound + simulate + CSV) and its parts, and
the measured CPU cost of simulating tilings picked at random from the whole space (instructions,
CPU-s each), so the price of simulating every tiling without pruning is visible too (issue 14:
every legal tiling simulated in under 60 s on 2 cores); ``--all`` simulates every legal tiling
(the bound ranks, nothing is pruned) and prints its wall time. ``--ray`` repeats the sweep on a
local Ray and says whether the two result files are byte-identical.

    python benchmarks/bench_sweep.py [--m 1 --k 4096 --n 4096 --soc Ascend910B2 --workers 2]
    python benchmarks/bench_sweep.py --all      # every legal tiling simulated (minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

from npusim.hw import load_soc
from npusim.ops import matmul_sweep
from npusim.sweep import Study, plan_points, run_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=1)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--soc", default="Ascend910B2")
    ap.add_argument("--simulate-top", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=int, default=8,
                    help="tilings drawn at random from the whole space to time one simulation")
    ap.add_argument("--ray", action="store_true", help="also run on a local Ray and compare")
    ap.add_argument("--all", action="store_true", help="simulate every legal tiling")
    args = ap.parse_args()

    case = {"m": args.m, "k": args.k, "n": args.n, "dtype": "float16"}
    study = Study("matmul", [{"name": args.soc}], [case], simulate_top=args.simulate_top)
    if args.all:
        study = Study("matmul", [{"name": args.soc}], [case], simulate_top=1 << 30)
    print(f"machine: {platform.node()} {platform.machine()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))

    t0 = time.perf_counter()
    soc = load_soc(args.soc)
    n_legal = sum(1 for _ in matmul_sweep.enumerate_tilings(soc, case))
    plan_points(study)
    t_plan = time.perf_counter() - t0

    out = tmp / "pool.csv"
    t0 = time.perf_counter()
    run_sweep(study, out, workers=args.workers, progress=False)
    t_sweep = time.perf_counter() - t0
    rows = out.read_text().splitlines()[1:]
    ok = sum(1 for r in rows if ",ok," in r)

    tilings = list(matmul_sweep.enumerate_tilings(soc, case))
    pick = random.Random(0).sample(tilings, min(args.sample, len(tilings)))
    instrs = 0
    t0 = time.process_time()
    for t in pick:
        res = matmul_sweep.simulate_case({"name": args.soc}, case, t.as_dict())
        instrs += res.run.kernel.instruction_count()
    per_sim = (time.process_time() - t0) / max(1, len(pick))

    print(f"decode matmul M={args.m} K={args.k} N={args.n} fp16 on {args.soc}")
    print(f"| legal tilings bounded | simulated ({'all' if args.all else 'best bound'}) | ok "
          f"| plan s (enumerate + bound) | sweep wall s ({args.workers} workers) "
          f"| CPU-s / random-tiling simulation ({len(pick)} drawn, "
          f"{instrs / max(1, len(pick)):,.0f} instructions each on average) "
          f"| est. s to simulate all ({args.workers} workers) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {n_legal} | {len(rows)} | {ok} | {t_plan:.2f} | {t_sweep:.2f} | {per_sim:.3f} "
          f"| {per_sim * n_legal / args.workers:.0f} |")
    what = "simulated" if args.all else f"swept (best {args.simulate_top} simulated)"
    print(f"SWEEP FIGURE: {n_legal} tilings {what} in {t_sweep:.1f} s "
          f"({'within' if t_sweep <= 60 else 'OVER'} the 60 s goal)")
    if n_legal < 1000:
        print(f"note: this shape has only {n_legal} legal tilings (< 1,000)")

    if args.ray:
        import ray

        rout = tmp / "ray.csv"
        t0 = time.perf_counter()
        try:
            run_sweep(study, rout, workers=args.workers, use_ray=True, progress=False)
        finally:
            ray.shutdown()
        same = rout.read_bytes() == out.read_bytes()
        print(f"ray: {time.perf_counter() - t0:.1f} s (incl. Ray start-up); result file "
              f"{'byte-identical to' if same else 'DIFFERS from'} the pool's")


if __name__ == "__main__":
    main()
