"""step_m / step_n are honoured by the cube program (issue 13 item 3): an L1 buffer holds step_m
base rows of A (step_n base columns of B); when all of an operand's K chunks fit its depth_a1 /
depth_b1 buffers it is loaded once per step_m x step_n group of base blocks and read from L1 by
every tile of the group, so its GM -> L1 reloads drop by the group's extent along the other
dimension. Bits never change (the accumulation order is the same per tile)."""

import numpy as np
import pytest

from npusim import simulate
from npusim.ops.matmul import reference_matmul
from npusim.ops.matmul_tiling import MatmulTiling

M, K, N = 256, 256, 512


def _run(step_m: int, step_n: int, order: str = "row_major", k: int = K, functional=True):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((M, k)).astype(np.float16)
    b = rng.standard_normal((k, N)).astype(np.float16)
    t = MatmulTiling(base_m=128, base_n=128, base_k=64, single_core_m=M, single_core_n=N,
                     single_core_k=k, step_m=step_m, step_n=step_n, step_ka=4, step_kb=4,
                     block_order=order)
    res = simulate("matmul", soc="Ascend910B2", tiling=t, a=a, b=b)
    loads = {p: [r for r in res.run.records if r.name.startswith(f"{p} GM->L1")] for p in "AB"}
    return res, loads, reference_matmul(a, b)


def _out(res):
    out = res.outputs
    return out["c"] if isinstance(out, dict) else out


def _bits(x):
    return np.asarray(x).view(np.uint16)


@pytest.mark.parametrize("order", ["row_major", "col_major"])
def test_step_n_reduces_a_reloads_and_keeps_the_bits(order):
    """M = 256, K = 256, N = 512 on one core, base 128 x 128 x 64, stepKa = 4 (one A chunk): 8
    tiles load A 8 times with step_n = 1, 4 times with step_n = 2 (each A panel serves 2 tiles);
    the A bytes moved halve, and the output bits equal the reference."""
    r1, l1, ref = _run(1, 1, order)
    r2, l2, _ = _run(1, 2, order)
    assert len(l1["A"]) == 8 and len(l2["A"]) == 4
    assert sum(r.nbytes for r in l2["A"]) * 2 == sum(r.nbytes for r in l1["A"])
    assert np.array_equal(_bits(_out(r1)), _bits(ref))
    assert np.array_equal(_bits(_out(r2)), _bits(ref))
    assert r2.run.cycles < r1.run.cycles  # fewer bytes over MTE2 on an MTE2-bound core


def test_step_m_reduces_b_reloads():
    """step_m = 2: each B panel (all of K, 128 columns) serves the 2 base rows of its group."""
    _, l1, _ = _run(1, 1, "col_major")
    _, l2, _ = _run(2, 1, "col_major")
    assert sum(r.nbytes for r in l2["B"]) * 2 == sum(r.nbytes for r in l1["B"])


def test_operand_too_long_for_l1_is_reloaded_per_tile_with_the_same_bits():
    """K = 1024 needs 4 A chunks of 256 > depth_a1 = 2: A cannot stay resident, so step_n = 2
    loads it per tile as step_n = 1 does (same count); the bits still equal the reference."""
    _, l1, _ = _run(1, 1, k=1024)
    r2, l2, ref = _run(1, 2, k=1024)
    assert len(l2["A"]) == len(l1["A"])
    assert np.array_equal(_bits(_out(r2)), _bits(ref))
