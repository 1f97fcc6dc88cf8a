"""The stage library's cross-core flags: one id per meaning, allocated (or pinned where a published
kernel fixes it) within the SoC's id range, and every mix kernel built from them lists its flags
in its metadata with ids that no other meaning of the kernel shares."""

from __future__ import annotations

import pytest
from _wqbmm_replay import B2, nz_call, wqbmm_call

import npusim
from npusim.engine.errors import ProgramError
from npusim.ops.program_stages import CrossFlags
from npusim.spec import TensorSpec


def test_ids_are_allocated_one_per_meaning():
    f = CrossFlags(limit=4)
    ring = f.ring("slot", 2)
    done = f.flag("done")
    assert (ring.ready.flag_id, ring.free.flag_id, done.flag_id) == (0, 1, 2)
    assert f.table() == {"0": "slot ready (mode 2)", "1": "slot free (mode 2)",
                         "2": "done (mode 2)"}
    with pytest.raises(ProgramError, match="declared twice"):
        f.flag("done")
    f.flag("last", mode=0)
    with pytest.raises(ProgramError, match="no id left below 4"):
        f.flag("one too many")


def test_pinned_ids_are_checked_and_skipped_by_allocation():
    f = CrossFlags(limit=11)
    f.flag("published eight", flag_id=8)
    with pytest.raises(ProgramError, match="id 8 already means 'published eight'"):
        f.flag("another", flag_id=8)
    assert [f.flag(f"m{i}").flag_id for i in range(9)] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert f.flag("m9").flag_id == 10
    with pytest.raises(ProgramError, match="no id left below 11"):
        f.flag("m10")


def test_a_barrier_needs_a_mode_0_flag():
    from npusim.engine.program import CoreProgram, ProgramBuilder
    from npusim.runner import resolve_soc

    soc = resolve_soc(B2)
    b = ProgramBuilder(CoreProgram(0, "aiv"), soc.core("aiv"))
    with pytest.raises(ProgramError, match="needs mode 0"):
        CrossFlags.of(soc).flag("pair").barrier(b, "MTE3", "MTE2")


def _kernels():
    s = TensorSpec
    yield npusim.simulate("weight_quant_batchmatmul", B2, **wqbmm_call(1, 80, 256, 192))
    yield npusim.simulate("weight_quant_batchmatmul", B2, **wqbmm_call(1, 12, 256, 256))
    yield npusim.simulate("weight_quant_batchmatmul", B2, kernel="MsdSplitK",
                          **wqbmm_call(1, 4, 512, 128, wdt="int4", trans=True))
    yield npusim.simulate("weight_quant_batchmatmul", B2,
                          **wqbmm_call(1, 6, 768, 256, wdt="int4", group=64))
    yield npusim.simulate("weight_quant_batchmatmul", B2, **nz_call(1, 72, 2048, 128))
    yield npusim.simulate("weight_quant_batchmatmul", B2, x=s((24, 1536), "bfloat16"),
                          weight=s((1536, 12288), "int8"),
                          antiquant_scale=s((24, 12288), "bfloat16"),
                          antiquant_offset=s((24, 12288), "bfloat16"), antiquant_group_size=64)
    yield npusim.simulate("quant_matmul", B2, x1=s((64, 512), "int8"), x2=s((512, 256), "int8"),
                          scale=s((256,), "float32"), pertoken_scale=s((64,), "float32"),
                          output_dtype="float16")


def test_every_mix_kernel_lists_its_flags_once_each():
    """Cross-core waits and sets use only declared ids, each id one meaning, within 0..10; the
    SplitK kernel keeps the ids its published source gives (8, 9, 7, 6)."""
    seen = set()
    for r in _kernels():
        kern = r.run.kernel
        table = kern.meta["cross_core_flags"]
        assert len(table) == len(set(table.values()))
        used = {i.flag_id for c in kern.cores for i in c.instrs if hasattr(i, "flag_id")}
        assert used and used <= {int(k) for k in table}
        assert all(0 <= int(k) <= 10 for k in table)
        seen.add(r.kernel_name if hasattr(r, "kernel_name") else kern.name)
        if kern.name == "wqbmm_splitk":
            assert {int(k) for k in table} == {6, 7, 8, 9}
    assert len(seen) == 7


def test_group_segments_cover_the_rows_once_in_their_groups():
    """K rows 60..200 with groups of 64 span groups 0-3; each segment lies inside its group,
    and together they cover the rows once, in order. Without groups: one segment."""
    from npusim.ops.program_stages import group_segments

    segs = group_segments(60, 200, 64)
    assert segs == [(0, 0, 4), (1, 4, 68), (2, 68, 132), (3, 132, 140)]
    assert all(g * 64 <= 60 + a and 60 + e <= (g + 1) * 64 for g, a, e in segs)
    assert group_segments(128, 192, 64) == [(2, 0, 64)]
    assert group_segments(60, 200, 0) == [(0, 0, 140)]


def test_a_ring_consumer_frees_a_slot_only_when_the_producer_refills_it():
    """Ring.done: of n takes, the j-th releases its slot iff a fill j + slots < n waits for it,
    so every FREE set has its wait (n = 5 takes of a 2-slot ring: takes 0, 1, 2 release)."""
    from npusim.engine.program import CoreProgram, ProgramBuilder
    from npusim.runner import resolve_soc

    soc = resolve_soc(B2)
    b = ProgramBuilder(CoreProgram(0, "aiv"), soc.core("aiv"))
    ring = CrossFlags.of(soc).ring("slot", 2)
    released = []
    for j in range(5):
        before = len(b.program.instrs)
        ring.done(b, j, 5, "MTE2")
        released.append(len(b.program.instrs) > before)
    assert released == [True, True, True, False, False]


def test_cube_cells_tile_k_by_n_once_in_core_order():
    """cube_cells: AIC ci has N index ci % dim_n and K index ci // dim_n; the cells (the last
    ones cut at N and K) cover every (k, n) exactly once."""
    import numpy as np

    from npusim.ops.weight_quant_common import cube_cells

    cells = cube_cells(3, 2, 48, 100, 130, 150)
    assert cells[:4] == [(0, 48, 0, 100), (48, 96, 0, 100), (96, 130, 0, 100), (0, 48, 100, 150)]
    cover = np.zeros((150, 130), int)
    for n0, n1, k0, k1 in cells:
        cover[k0:k1, n0:n1] += 1
    assert (cover == 1).all()


def test_add_bias_casts_a_non_fp32_bias_into_its_tile_and_cast_store_addresses_y():
    """add_bias: an fp16 bias is cast into the given fp32 tile first (refused without one), an
    fp32 bias is added as it is; cast_store writes rows row0.. / columns col0.. of y."""
    from npusim.engine.program import CoreProgram, ProgramBuilder
    from npusim.isa.operands import Region
    from npusim.ops.program_stages import add_bias, cast_store
    from npusim.runner import resolve_soc

    soc = resolve_soc(B2)
    b = ProgramBuilder(CoreProgram(0, "aiv"), soc.core("aiv"))
    acc = b.alloc("UB", (4, 64), "float32", "acc")
    raw = b.alloc("UB", (64,), "float16", "bias_in")
    f32 = b.alloc("UB", (64,), "float32", "bias")
    with pytest.raises(ProgramError, match="fp32 tile"):
        add_bias(b, acc, raw)
    add_bias(b, acc, raw, f32)
    add_bias(b, acc, f32)
    names = [i.name for i in b.program.instrs]
    assert names == ["Cast bias->fp32", "Add bias", "Add bias"]
    assert b.program.instrs[1].reads == (acc, f32)
    out = b.alloc("UB", (4, 64), "float16", "out")
    cast_store(b, out, acc, "y", 8, 32, 1024, 2)
    store = b.program.instrs[-1]
    assert store.writes[0] == Region("GM", (8 * 1024 + 32) * 2, (4, 64), "float16", "y", 2048)
