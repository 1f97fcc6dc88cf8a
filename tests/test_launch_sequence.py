"""A pre-pass program composed from two operators (issue 13 item 4): ND -> NZ on the AIVs
(format_cast), then the matmul reading the NZ weight the pre-pass left in L2."""

import numpy as np
import pytest

from npusim import simulate
from npusim.engine.memory import MemorySystem
from npusim.hw import load_soc
from npusim.launch_sequence import Step, _shared_layout, simulate_sequence
from npusim.operators import get_operator
from npusim.spec import spec

M, K, N = 16, 1024, 1024
SOC = "Ascend910B2"


def _steps(bind: bool = True) -> list[Step]:
    return [Step("format_cast", {"x": spec((K, N), "float16"), "acl_format": 29}),
            Step("matmul", {"a": spec((M, K), "float16"),
                            "b": spec((K, N), "float16", npu_format=29)},
                 binds={"b": (0, "y")} if bind else {})]


def test_the_matmul_reads_the_prepass_output_from_l2():
    """The NZ weight the format_cast wrote (2 MiB, dirty in L2) is the matmul's b: the matmul
    step fetches only a from HBM, and runs faster than the same matmul from a cold L2, which
    reads the whole weight from HBM. The sequence's time is the sum of its launches."""
    seq = simulate_sequence(_steps(), SOC)
    cast, mm = seq.steps
    assert cast.kernel_name.startswith("TransData ND->FRACTAL_NZ")
    assert cast.traffic.hbm_read_bytes == K * N * 2
    assert mm.traffic.hbm_read_bytes == M * K * 2
    alone = simulate("matmul", SOC, a=spec((M, K), "float16"),
                     b=spec((K, N), "float16", npu_format=29), l2_start="cold").run
    assert alone.traffic.hbm_read_bytes == (M * K + K * N) * 2
    assert mm.cycles < alone.cycles
    assert seq.cycles == cast.cycles + mm.cycles
    assert seq.us == pytest.approx(seq.cycles / 1800)


def test_an_unbound_weight_is_another_tensor_and_misses():
    """Without the binding the matmul's b is a different GM tensor (placed after the pre-pass's
    x and y), so nothing of it is in L2: it is read from HBM as in a cold run."""
    seq = simulate_sequence(_steps(bind=False), SOC)
    assert seq.steps[1].traffic.hbm_read_bytes == (M * K + K * N) * 2
    assert seq.steps[1].cycles > simulate_sequence(_steps(), SOC).steps[1].cycles


def test_one_address_map_for_the_whole_sequence():
    """The bound tensor has the same GM address in both launches; every other tensor its own."""
    desc = load_soc(SOC)
    steps = _steps()
    kernels = [get_operator(s.op).plan(desc, **s.args).kernel for s in steps]
    maps = _shared_layout(kernels, steps)
    base = [MemorySystem(desc, gm).base for gm in maps]
    assert base[0]["y"] == base[1]["b"]
    assert base[1]["a"] > base[0]["y"] and base[1]["c"] > base[1]["a"]
    assert base[1]["b"] not in (base[1]["a"], base[1]["c"])


def test_bad_bindings_and_functional_inputs_are_refused():
    x = spec((K, N), "float16")
    cast = Step("format_cast", {"x": x, "acl_format": 29})
    mm_args = {"a": spec((M, K), "float16"), "b": spec((K, N), "float16", npu_format=29)}
    with pytest.raises(ValueError, match="earlier step"):
        simulate_sequence([cast, Step("matmul", mm_args, binds={"b": (1, "y")})], SOC)
    with pytest.raises(ValueError, match="no GM tensor 'z'"):
        simulate_sequence([cast, Step("matmul", mm_args, binds={"b": (0, "z")})], SOC)
    with pytest.raises(ValueError, match="not GM tensors of this step"):
        simulate_sequence([cast, Step("matmul", mm_args, binds={"w": (0, "y")})], SOC)
    small = {"a": spec((M, 512), "float16"), "b": spec((512, N), "float16", npu_format=29)}
    with pytest.raises(ValueError, match="same bytes"):
        simulate_sequence([cast, Step("matmul", small, binds={"b": (0, "y")})], SOC)
    with pytest.raises(ValueError, match="timing only"):
        simulate_sequence([Step("format_cast", {"x": np.zeros((32, 32), np.float16),
                                                "acl_format": 29})], SOC)
    with pytest.raises(ValueError, match="at least one"):
        simulate_sequence([], SOC)
