"""MsdGroup program: the work partition follows MsdGroupTiling (each AIC one N range x K range
cell), the digit matmuls cover every (m, k, n) once per digit, the K-range partials are atomic
adds into one fp32 workspace, and the metadata names the accumulation order."""

import dataclasses

import numpy as np
import pytest

import npusim
from npusim.engine.sim import run_kernel
from npusim.ops.weight_quant_batchmatmul import default_tiling, normalize_args
from npusim.ops.weight_quant_common import WqbmmShape
from npusim.ops.weight_quant_program import build_wqbmm
from npusim.ops.weight_quant_program_msdgroup import msd_group_cells
from npusim.runner import resolve_soc
from npusim.spec import spec

B2 = "Ascend910B2"


def _kernel(m, k, n, g=128, ip=0, soc=B2, **kt_over):
    """The MsdGroup program of an int4 per-group call with the default (or patched) tiling."""
    desc = resolve_soc(soc)
    x = np.ones((m, k), np.float16)
    w = np.zeros((k, n // 8), np.int32)  # int4 packed eight per int32
    args = normalize_args(x, w, np.ones((k // g, n), np.float16), antiquant_group_size=g,
                          inner_precise=ip, soc=desc)
    kt = default_tiling(args, desc, "MsdGroup")
    kt = dataclasses.replace(kt, **kt_over) if kt_over else kt
    s = WqbmmShape(m=m, k=k, n=n, x_dtype="float16", w_dtype="int4", group_size=g,
                   inner_precise=ip)
    return desc, s, kt, build_wqbmm(desc, s, "MsdGroup", kt)


def _b_windows(core, n):
    """(k0, rows, n0, cols) of the weight tiles an AIC's cube pipeline loads (ND int4 (K, N))."""
    out = []
    for i in core.instrs:
        if i.name == "B GM->L1 nd2nz":
            r = i.reads[0]
            off2 = r.offset * 2  # int4 elements
            out.append((off2 // n, r.shape[0], off2 % n, r.shape[1]))
    return out


def _macs(core):
    return sum(i.params["m"] * i.params["k"] * i.params["n"] for i in core.instrs
               if "m" in i.params and "k" in i.params and i.kind == "mmad")


@pytest.mark.parametrize(
    ("m", "k", "n"), [(16, 4096, 4096), (1, 8192, 12288), (4, 1024, 512), (16, 256, 512)]
)
def test_cells_follow_tiling_and_macs_cover_each_mkn_once_per_digit(m, k, n):
    """Each AIC loads exactly its cell's weight (every (k, n) of the cell once) and runs
    digits x M x cell MACs; the cells tile K x N exactly once, so the digit matmuls cover every
    (m, k, n) once per digit. The launch has max(cells, M / 2) blocks (one x row per AIV in the
    digit split); blocks beyond the cells do no cube work."""
    _, s, kt, kern = _kernel(m, k, n)
    cells = msd_group_cells(kt, s)
    aics = [c for c in kern.cores if c.kind == "aic"]
    assert len(cells) == kt.cube_block_dim_n * kt.cube_block_dim_k
    assert len(aics) == max(len(cells), -(-m // 2))
    assert all(_macs(c) == 0 and not _b_windows(c, n) for c in aics[len(cells):])
    aics = aics[: len(cells)]
    assert kern.meta["cube_cells"] == [list(c) for c in cells]
    cover = np.zeros((k, n), np.int32)
    for core, (n0, n1, k0, k1) in zip(aics, cells, strict=True):
        ni, ki = core.core_id % kt.cube_block_dim_n, core.core_id // kt.cube_block_dim_n
        assert (n0, k0) == (ni * kt.cube_single_core_n, ki * kt.single_core_k)
        mine = np.zeros((k, n), np.int32)
        for kk, rows, nn, cols in _b_windows(core, n):
            mine[kk:kk + rows, nn:nn + cols] += 1
        assert mine[k0:k1, n0:n1].min() == mine[k0:k1, n0:n1].max() == 1  # its cell, once
        assert mine.sum() == (k1 - k0) * (n1 - n0)  # nothing outside it
        assert _macs(core) == 3 * m * (k1 - k0) * (n1 - n0)
        cover += mine
    assert cover.min() == cover.max() == 1
    assert sum(_macs(c) for c in aics) == 3 * m * k * n
    x_rows = sorted(i.reads[0].offset // (2 * k) for c in kern.cores for i in c.instrs
                    if i.name == "x row GM->UB")
    assert x_rows == list(range(m))  # every row split into digits once


def test_aivs_recombine_their_cell_and_add_atomically():
    """The AIVs of AIC ci read only C of their own core, add their partial (M x columns of the
    cell) atomically into the fp32 workspace, and all partials of one column range land on the
    same bytes (the K split); y is written once per column."""
    _, s, kt, kern = _kernel(16, 4096, 4096)
    atomics, y_cols = {}, np.zeros(s.n, np.int32)
    for c in kern.cores:
        if c.kind != "aiv":
            continue
        ci = c.core_id // 2
        n0, n1, _, _ = msd_group_cells(kt, s)[ci]
        for i in c.instrs:
            if i.kind == "dma" and any(r.tensor == "c" for r in i.reads):
                slot_bytes = 2 * 3 * s.m * kt.cube_single_core_n * 4
                assert ci * slot_bytes <= i.reads[0].offset < (ci + 1) * slot_bytes
            if i.params.get("atomic") == "add":
                w = i.writes[0]
                assert w.tensor == "acc" and w.dtype == "float32" and w.shape[0] == s.m
                col = w.offset // 4
                assert n0 <= col and col + w.shape[1] <= n1
                atomics.setdefault(col, []).append(ci // kt.cube_block_dim_n)
            if i.kind == "dma" and any(r.tensor == "y" for r in i.writes):
                col = i.writes[0].offset // 2
                y_cols[col:col + i.writes[0].shape[1]] += 1
    assert all(sorted(v) == list(range(kt.cube_block_dim_k)) for v in atomics.values())
    assert y_cols.min() == y_cols.max() == 1


def test_metadata_names_the_accumulation_order_and_runs_race_free():
    """The metadata names the atomic add and the declared core_index_ascending order; the program
    simulates without races or deadlocks; inner_precise 1 (fp16 C) is faster than 0."""
    desc, _, _, kern = _kernel(16, 1024, 512)
    note = kern.meta["split_k_accumulation"]
    assert "atomic" in note and "core_index_ascending" in note
    assert run_kernel(kern, desc).cycles > 0  # raises on a race or a deadlock
    base = {
        "x": spec((16, 4096), "float16"),
        "weight": spec((4096, 4096 // 8), "int32"),
        "antiquant_scale": spec((32, 4096), "float16"),
        "antiquant_group_size": 128,
    }
    t = {ip: npusim.simulate("weight_quant_batchmatmul", B2, inner_precise=ip, **base)
         for ip in (0, 1)}
    assert t[0].kernel_name == t[1].kernel_name == "MsdGroup"
    assert t[1].run.cycles < t[0].run.cycles


def test_unmodelled_vector_layout_refuses():
    """A vector N split that does not put each AIV inside its AIC's cell is not modelled."""
    with pytest.raises(NotImplementedError, match="cell"):
        _kernel(16, 4096, 4096, vec_block_dim_n=8, vec_single_core_n=512)
