"""Engine throughput: simulated instructions per second on the H7 vector-add program (48 AIVs)
and a 2048^3 fp16 matmul (24 AICs), timing-only, with and without race checking."""

from __future__ import annotations

import time

from npusim.engine.sim import run_kernel
from npusim.hw import load_soc
from npusim.ops.cube_epilogue import Epilogue
from npusim.ops.matmul_calibration import b_row_tiling
from npusim.ops.matmul_program import build_matmul_kernel
from npusim.ops.vector_add import H_SERIES, build_vector_add


def _bench(label: str, kernel, soc) -> None:
    for races in (False, True):
        t0 = time.perf_counter()
        res = run_kernel(kernel, soc, check_races=races)
        dt = time.perf_counter() - t0
        n = kernel.instruction_count()
        print(f"{label:<28} races={'on ' if races else 'off'} {n:>9} instr  {dt:7.2f} s  "
              f"{n / dt:>10,.0f} instr/s  ({res.cycles} simulated cycles)")


def main() -> None:
    soc = load_soc("Ascend910B2")
    _bench("vector_add H7 8192x8192", build_vector_add(soc, 8192 * 8192, H_SERIES["H7"]), soc)
    a3 = load_soc("Ascend910_9391")
    _bench("matmul fp16 1536^3 (B1)",
           build_matmul_kernel(a3, 1536, 1536, 1536, "float16", b_row_tiling(1536),
                               Epilogue("NONE", "float32"), trans_b=True), a3)


if __name__ == "__main__":
    main()
