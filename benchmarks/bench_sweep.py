"""The issue-7 sweep figure: a decode-shape matmul sweep over every legal tiling (>= 1,000),
ranked by the analytical bound, the best ``--simulate-top`` simulated on the local pool.

Prints the wall time of the whole sweep (enumerate + bound + simulate + CSV) and its parts, and
the measured CPU cost of simulating tilings picked at random from the whole space (instructions,
CPU-s each), so the price of simulating every tiling without pruning is visible too (issue 14:
every legal tiling simulated in under 60 s on 2 cores); ``--all`` simulates every legal tiling
(the bound ranks, nothing is pruned) and prints its wall time: tilings that build the same
program (``matmul_sweep.program_tiling``: the block order of a one-block-row grid) are simulated
once. ``--fast-forward`` (opt-in, approximate: :mod:`npusim.fast_forward`) extrapolates each
steady-state K loop from two short runs, and the sample also prints its error against the full
runs. ``--ray`` repeats the sweep on a local Ray and says whether the result files are
byte-identical.

    python benchmarks/bench_sweep.py [--m 1 --k 4096 --n 4096 --soc Ascend910B2 --workers 2]
    python benchmarks/bench_sweep.py --all      # every legal tiling simulated (minutes)
    python benchmarks/bench_sweep.py --all --fast-forward
    python benchmarks/bench_sweep.py --all --engine jit   # numba-compiled event loop (extra jit)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

from npusim.engine.fast import ENGINES, engine_environment, selected_engine
from npusim.hw import load_soc
from npusim.ops import matmul_sweep
from npusim.sweep import Study, no_collections, plan_points, run_sweep


def _cpu() -> float:
    """CPU seconds of this process and its finished child processes (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


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
    ap.add_argument("--fast-forward", action="store_true",
                    help="extrapolate steady-state K loops (approximate, opt-in)")
    ap.add_argument("--engine", choices=ENGINES, default=None,
                    help="engine of every simulation, workers included ($NPUSIM_ENGINE)")
    args = ap.parse_args()
    with engine_environment(args.engine):
        _bench(args)


def _bench(args: argparse.Namespace) -> None:

    case = {"m": args.m, "k": args.k, "n": args.n, "dtype": "float16"}
    sim_case = dict(case, fast_forward=True) if args.fast_forward else case
    print(f"machine: {platform.node()} {platform.machine()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, load average "
          f"{os.getloadavg()[0]:.1f}; engine {selected_engine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))

    t0 = time.perf_counter()
    soc = load_soc(args.soc)
    tilings = list(matmul_sweep.enumerate_tilings(soc, case))
    n_legal = len(tilings)
    distinct = {}  # one tiling per distinct program
    for t in tilings:
        c = matmul_sweep.program_tiling(case, t)
        distinct.setdefault(repr(c), c)
    if args.all:
        study = Study("matmul", [{"name": args.soc}], [sim_case], simulate_top=1 << 30,
                      tilings=[c.as_dict() for c in distinct.values()])
    else:
        study = Study("matmul", [{"name": args.soc}], [sim_case],
                      simulate_top=args.simulate_top)
    plan_points(study)
    t_plan = time.perf_counter() - t0

    out = tmp / "pool.csv"
    t0 = time.perf_counter()
    c0 = _cpu()
    run_sweep(study, out, workers=args.workers, progress=False)
    t_sweep = time.perf_counter() - t0
    c_sweep = _cpu() - c0
    rows = out.read_text().splitlines()[1:]
    ok = sum(1 for r in rows if ",ok," in r)

    pick = random.Random(0).sample(tilings, min(args.sample, len(tilings)))
    instrs = 0
    errors = []
    t_full = t_ff = 0.0
    for t in pick:
        t0 = time.process_time()
        with no_collections():  # as a sweep point runs, summary included
            res = matmul_sweep.simulate_case({"name": args.soc}, case, t.as_dict())
            res.summary()
        t_full += time.process_time() - t0
        instrs += res.run.kernel.instruction_count()
        if args.fast_forward:
            t0 = time.process_time()
            ff = matmul_sweep.simulate_case({"name": args.soc}, sim_case, t.as_dict())
            t_ff += time.process_time() - t0
            errors.append((ff.cycles - res.cycles) / res.cycles)
    per_sim = t_full / max(1, len(pick))

    print(f"decode matmul M={args.m} K={args.k} N={args.n} fp16 on {args.soc}: {n_legal} legal "
          f"tilings, {len(distinct)} distinct programs")
    print(f"| legal tilings bounded | simulated ({'all distinct' if args.all else 'best bound'}"
          f"{', fast-forward' if args.fast_forward else ''}) | ok "
          f"| plan s (enumerate + bound) | sweep wall s ({args.workers} workers) "
          f"| CPU-s / random-tiling simulation ({len(pick)} drawn, "
          f"{instrs / max(1, len(pick)):,.0f} instructions each on average) "
          f"| est. s to simulate all distinct ({args.workers} workers) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {n_legal} | {len(rows)} | {ok} | {t_plan:.2f} | {t_sweep:.2f} | {per_sim:.3f} "
          f"| {per_sim * len(distinct) / args.workers:.0f} |")
    if errors:
        worst = 100 * max(abs(e) for e in errors)
        mean = 100 * sum(errors) / len(errors)
        per_ff = t_ff / len(pick)
        print(f"fast-forward on the {len(pick)} drawn tilings: {per_ff:.3f} CPU-s each "
              f"(full {per_sim:.3f}), est. {per_ff * len(distinct) / args.workers:.0f} s to "
              f"simulate all distinct ({args.workers} workers); cycles error vs full runs: "
              f"max |e| {worst:.2f} %, mean {mean:+.2f} %")
    what = (f"simulated ({len(distinct)} distinct programs"
            f"{', fast-forward' if args.fast_forward else ''})" if args.all
            else f"swept (best {args.simulate_top} simulated)")
    print(f"SWEEP FIGURE: {n_legal} tilings {what} in {t_sweep:.1f} s wall "
          f"({'within' if t_sweep <= 60 else 'OVER'} the 60 s goal); {c_sweep:.1f} CPU-s in "
          f"this process and its workers (on 2 idle cores: about {c_sweep / 2:.0f} s)")
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
