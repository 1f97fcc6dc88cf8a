"""Functional replay cost: wall time of a functional run (values computed by every instruction)
against the timing-only run of the same call, for the decode shapes the instruction-set issue
names. Prints figures; asserts nothing (the machine is shared and noisy).

    python benchmarks/bench_functional_replay.py [--repeat 3] [--engine reference]

BLAS runs single-threaded here (OPENBLAS_NUM_THREADS=1 unless set): on a loaded 2-core machine
OpenBLAS threads spinning for the small cube blocks cost more than the blocks themselves.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import npusim
from npusim.engine.fast import default_engine
from npusim.numerics import pack_int4
from npusim.spec import TensorSpec

SOC = "Ascend910B2"


def _calls(name: str):
    rng = np.random.default_rng(0)
    if name == "W4A16 decode M=1 K=N=4096 int4 g128":
        m, k, n, g = 1, 4096, 4096, 128
        x = rng.standard_normal((m, k)).astype(np.float16)
        w = pack_int4(rng.integers(-8, 8, (k, n)).astype(np.int8))
        sc = (rng.random((k // g, n)) * 0.01 + 0.001).astype(np.float16)
        fun = dict(x=x, weight=w, antiquant_scale=sc, antiquant_group_size=g)
        spec = dict(x=TensorSpec((m, k), "float16"), weight=TensorSpec((k, n // 8), "int32"),
                    antiquant_scale=TensorSpec((k // g, n), "float16"), antiquant_group_size=g)
        return fun, spec
    m, k, n = 64, 4096, 4096
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    sc = (rng.random(n) * 0.01 + 0.001).astype(np.float16)
    fun = dict(x=x, weight=w, antiquant_scale=sc)
    spec = dict(x=TensorSpec((m, k), "float16"), weight=TensorSpec((k, n), "int8"),
                antiquant_scale=TensorSpec((n,), "float16"))
    return fun, spec


def _time(kw, repeat: int = 1, **opts) -> tuple[float, object]:
    """Best CPU-s of ``repeat`` runs, and the last result."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        r = npusim.simulate("weight_quant_batchmatmul", SOC, **kw, **opts)
        best = min(best, time.process_time() - t)
    return best, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per figure")
    ap.add_argument("--engine", choices=("fast", "reference"), default="fast")
    args = ap.parse_args()
    print(f"CPU seconds, best of {args.repeat} after a warm-up call, {args.engine} engine, load "
          f"average {os.getloadavg()[0]:.1f}; functional runs check races by default,")
    print("'no races' is the same run with check_races=False")
    print(f"{'call':40s} {'kernel':10s} {'timing-only':>12s} {'functional':>11s} {'ratio':>6s}"
          f" {'no races':>9s} {'ratio':>6s} {'replayed':>9s}")
    for name in ("W4A16 decode M=1 K=N=4096 int4 g128", "W8A16 M=64 K=N=4096 per-channel"):
        fun, spec = _calls(name)
        with default_engine(args.engine):
            _time(fun, check_races=False)  # warm-up: first-call imports and memos
            t_spec, r_spec = _time(spec, args.repeat)
            t_fun, r_fun = _time(fun, args.repeat)
            t_fast, _ = _time(fun, args.repeat, check_races=False)
        assert r_spec.cycles == r_fun.cycles, "functional and timing-only cycles must agree"
        replayed = "functional_replay" in r_fun.run.kernel.meta
        print(f"{name:40s} {r_fun.kernel_name:10s} {t_spec:11.2f}s {t_fun:10.2f}s "
              f"{t_fun / t_spec:5.1f}x {t_fast:8.2f}s {t_fast / t_spec:5.1f}x {replayed!s:>9s}")


if __name__ == "__main__":
    main()
