"""Round-robin block scheduler (issue 13 item 3): with ``block_dim`` > 0 the base blocks of the
whole matrix, in the tiling's visit order (row / column major or L2-swizzle panels), are dealt to
cores ``i % block_dim`` instead of a static m_dim x n_dim grid of single-core blocks. Bits never
change; the swizzle decides which block each core computes."""

import numpy as np
import pytest

from npusim import simulate
from npusim.ops.matmul import reference_matmul
from npusim.ops.matmul_tiling import MatmulTiling

M, K, N = 512, 128, 1024  # 4 x 4 base blocks of 128 x 256


def _run(block_order: str, swizzle: int = 1, block_dim: int = 5):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    t = MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=M, single_core_n=N,
                     single_core_k=K, step_ka=2, step_kb=2, block_order=block_order,
                     swizzle=swizzle, block_dim=block_dim)
    res = simulate("matmul", soc="Ascend910B2", tiling=t, a=a, b=b)
    return res, reference_matmul(a, b)


def _stores(res) -> list[list[tuple[int, int]]]:
    """Per core, the (row, col) origin of each output tile its FixPipes write, in order."""
    out = []
    for core in res.run.kernel.cores:
        tiles = []
        for ins in core.instrs:
            if ins.kind == "fix":
                off = ins.writes[0].offset
                tiles.append((off // (N * 2), off % (N * 2) // 2))
        out.append(tiles)
    return out


def test_blocks_are_dealt_round_robin_over_block_dim_cores():
    """16 blocks over 5 cores: core 0 gets blocks 0, 5, 10, 15 (4 tiles), the others 3;
    row-major order, so core 1's first tile is (0, 256) and its second (128, 512)."""
    res, ref = _run("row_major")
    stores = _stores(res)
    assert [len(s) for s in stores] == [4, 3, 3, 3, 3]
    assert stores[1][:2] == [(0, 256), (128, 512)]
    assert np.array_equal(np.asarray(res.outputs).view(np.uint16), ref.view(np.uint16))


def test_swizzle_panels_change_which_core_computes_which_block():
    """l2_swizzle with panels of 2 base rows visits (0,0), (128,0), (0,256), (128,256), ...: core
    1 now starts at (128, 0); the output bits are the same."""
    res, ref = _run("l2_swizzle", swizzle=2)
    assert _stores(res)[1][0] == (128, 0)
    assert np.array_equal(np.asarray(res.outputs).view(np.uint16), ref.view(np.uint16))


def test_round_robin_refuses_a_static_grid_beside_it():
    t = MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=256, single_core_n=N,
                     single_core_k=K, m_dim=2, block_dim=4)
    a, b = np.ones((M, K), np.float16), np.ones((K, N), np.float16)
    with pytest.raises(ValueError, match=r"tiling\.block_dim=4: .*m_dim, n_dim, k_dim must be 1"):
        simulate("matmul", soc="Ascend910B2", tiling=t, a=a, b=b)
