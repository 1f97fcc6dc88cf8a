"""Vector costs use the descriptor's per-dtype rate where one is cited (fp16 Exp is ~4 cycles
per repeat, fp32 ~2: KPP)."""

from npusim.engine.program import CoreProgram, Kernel, ProgramBuilder
from npusim.engine.sim import run_kernel
from npusim.hw import load_soc

SOC = load_soc("Ascend910B2")


def _exp_cycles(dtype: str, elements: int) -> int:
    prog = CoreProgram(0, "aiv")
    b = ProgramBuilder(prog, SOC.core("aiv"))
    ub = b.alloc("UB", (elements,), dtype, "a")
    b.vec("Exp", "special", ub, (ub,), elements=elements, dtype=dtype)
    res = run_kernel(Kernel("exp", {}, [prog], {}), SOC)
    (rec,) = [r for r in res.records if r.name.startswith("Exp")]
    return rec.end - rec.start


def test_fp16_special_uses_its_own_rate():
    vec = SOC.core("aiv").vector
    head = int(vec.head_cycles)
    repeats = 64  # 64 x 256 B either way
    fp16 = _exp_cycles("float16", 128 * repeats) - head
    fp32 = _exp_cycles("float32", 64 * repeats) - head
    assert fp16 == repeats * vec.cycles_per_repeat("special", "float16")
    assert fp32 == repeats * vec.cycles_per_repeat("special", "float32")
    assert fp16 == 2 * fp32
