"""Single-core split-K (issue 13 item 3): with k_dim = 1 and single_core_k < k each cube core runs
its K in slices (K-outer loop over its whole single-core block) and FixPipe adds each slice's fp32
partial atomically into the zeroed GM output. Its bits are the declared split-K model
(reference_matmul(single_core_k=...): partials added in ascending slice order, RNE per add), not
the unsplit result, and its time differs (partials read-modify-write GM, the pipeline restarts per
slice)."""

import numpy as np
import pytest

from npusim import simulate
from npusim.ops.matmul import reference_matmul
from npusim.ops.matmul_tiling import MatmulTiling

M, K, N = 128, 1024, 256


def _tiling(sck: int) -> MatmulTiling:
    return MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=M, single_core_n=N,
                        single_core_k=sck, step_ka=4, step_kb=4, out_bits=32)


def _operands():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    a[5] = 0  # a zero row: every partial of row 5 is +-0, the sign rule of the adds shows
    return a, b


def test_single_core_split_k_gives_the_split_model_bits_and_a_different_time():
    a, b = _operands()
    whole = simulate("matmul", soc="Ascend910B2", tiling=_tiling(K), a=a, b=b,
                     out_dtype="float32")
    split = simulate("matmul", soc="Ascend910B2", tiling=_tiling(256), a=a, b=b,
                     out_dtype="float32")
    ref_split = reference_matmul(a, b, out_dtype="float32", single_core_k=256)
    ref_whole = reference_matmul(a, b, out_dtype="float32")
    assert np.array_equal(split.outputs.view(np.uint32), ref_split.view(np.uint32))
    assert np.array_equal(whole.outputs.view(np.uint32), ref_whole.view(np.uint32))
    assert not np.array_equal(ref_split.view(np.uint32), ref_whole.view(np.uint32))
    assert split.run.cycles != whole.run.cycles
    assert split.run.kernel.meta["single_core_split_k"] == 4
    atomics = [r for r in split.run.records if r.kind == "fix"]
    assert len(atomics) == 4  # one FixPipe (atomic add) per K slice of the one base block


def test_single_core_split_k_refuses_a_16_bit_output():
    """An fp16 atomic add would round every partial: the tiling names the rule."""
    a, b = _operands()
    t = MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=M, single_core_n=N,
                     single_core_k=256, step_ka=4, step_kb=4)
    with pytest.raises(ValueError, match=r"single_core_k.*out_dtype must be float32"):
        simulate("matmul", soc="Ascend910B2", tiling=t, a=a, b=b)
