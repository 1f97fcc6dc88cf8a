"""Fixed costs the kernels pay (issue 13 item 5), pinned end to end on one-tile programs: the
pipeline's fill and drain, and the per-token epilogue path of a mix kernel (the accumulator's
FixPipe into the GM workspace, the cross-core flag, the AIVs' read back, the dequant chain).
Launch costs by kernel type are pinned in tests/test_engine_launch.py."""

from npusim import simulate
from npusim.engine.sim import Engine
from npusim.hw import load_soc
from npusim.ops.matmul_tiling import MatmulTiling
from npusim.spec import spec

B2 = "Ascend910B2"
SOC = load_soc(B2)
SYNC_KINDS = ("set_flag", "wait_flag", "cross_set", "cross_wait", "barrier")


def _busy(run) -> int:
    return sum(r.end - r.start for r in run.records if r.kind not in SYNC_KINDS)


def _fp32_matmul(n_tiles: int):
    t = MatmulTiling(base_m=128, base_n=256, base_k=64, single_core_m=128,
                     single_core_n=256 * n_tiles, single_core_k=64, m_dim=1, n_dim=1)
    return simulate("matmul", B2, t, a=spec((128, 64), "float16"),
                    b=spec((64, 256 * n_tiles), "float16"), out_dtype="float32").run


def test_one_tile_pays_fill_and_drain_in_series():
    """One 128 x 64 x 256 tile on one AIC: nothing overlaps - the TLOADs, the L1 -> L0 loads,
    the Mmad and the FixPipe run one after another after the launch, so the kernel is the launch
    plus every instruction's time plus the flags' issue cycles (4476 + 8 cycles on a 910B2 when
    written).
    Each further tile on the core adds its bottleneck pipe's time (FixPipe, 1841 cycles of an
    fp32 tile) and more, but under one serial tile: fill and drain are paid once per core."""
    one = _fp32_matmul(1)
    launch = Engine._launch_offsets(SOC, one.kernel)[0]
    flags = sum(r.end - r.start for r in one.records if r.kind == "set_flag")
    assert one.cycles == launch + _busy(one) + flags
    assert 0 < flags <= 16  # the SetFlags' issue cycles (8 here)
    by_pipe = {p: [r for r in one.records if r.pipe == p and r.kind not in SYNC_KINDS]
               for p in ("MTE2", "MTE1", "M", "FIX")}
    assert by_pipe["M"][0].start >= by_pipe["MTE1"][-1].end >= by_pipe["MTE2"][-1].end
    assert by_pipe["FIX"][0].start >= by_pipe["M"][-1].end
    fix = by_pipe["FIX"][0].end - by_pipe["FIX"][0].start
    per_tile = (_fp32_matmul(4).cycles - _fp32_matmul(2).cycles) / 2
    assert fix <= per_tile < _busy(one)


def _w8a8(pertoken: bool):
    t = MatmulTiling(base_m=16, base_n=64, base_k=128, single_core_m=16, single_core_n=64,
                     single_core_k=128, m_dim=1, n_dim=1, in_bits=8, out_bits=16)
    kw = dict(x1=spec((16, 128), "int8"), x2=spec((128, 64), "int8"),
              scale=spec((64,), "float32"), output_dtype="float16")
    if pertoken:
        kw["pertoken_scale"] = spec((16,), "float32")
    return simulate("quant_matmul", B2, t, **kw).run


def test_pertoken_epilogue_pays_the_workspace_round_trip():
    """W8A8, one 16 x 128 x 64 tile on one AI Core. Per-channel dequantises in the FixPipe
    (cube-only kernel). Per-token is a mix kernel: the AIC's FixPipe writes the int32
    accumulator to the GM workspace, a cross-core flag (its 1-cycle issue) releases the AIVs,
    which read it back through L2 (GM -> UB) and run the dependent dequant chain (each step pays
    the vector head after auto-sync's barrier) before their MTE3 writes the output. Pinned: the
    read back starts only after the FixPipe and the flag; the kernel ends with the AIVs' MTE3;
    per-token ends no earlier than the flag plus that round trip, chain and store, and costs
    more than per-channel by more than the mix launch's extra floor (760 cycles more on a 910B2
    when written: 360 of launch floor, then the read back, chain and store, less the AIC's
    per-channel scale staging it does not do)."""
    chan, tok = _w8a8(False), _w8a8(True)
    names = {i: c.kind for i, c in enumerate(tok.kernel.cores)}
    aic_fix = [r for r in tok.records if names[r.core] == "aic" and r.kind == "fix"]
    cross = [r for r in tok.records if names[r.core] == "aic" and r.kind == "cross_set"]
    reads = [r for r in tok.records if names[r.core] == "aiv" and r.name.startswith("acc")]
    vec = [r for r in tok.records if names[r.core] == "aiv" and r.pipe == "V"
           and r.kind not in SYNC_KINDS]
    outs = [r for r in tok.records if names[r.core] == "aiv" and r.pipe == "MTE3"
            and r.kind not in SYNC_KINDS]
    assert len(aic_fix) == 1 and len(cross) == 1 and len(reads) == 2 and len(outs) == 2
    assert cross[0].start >= aic_fix[0].end and cross[0].end - cross[0].start == 1
    assert all(r.start >= cross[0].end for r in reads)
    assert max(r.end for r in outs) >= tok.cycles - 1  # the output's MTE3 (+ its flag) ends it
    # per AIV: read back, then the dequant chain, then the store, in series
    for core in {r.core for r in reads}:
        chain = [r for r in vec if r.core == core]
        assert chain[0].start >= next(r.end for r in reads if r.core == core)
        assert next(r.start for r in outs if r.core == core) >= chain[-1].end
    mix_floor = SOC.launch_cycles({"aic", "aiv"})[0] - SOC.launch_cycles({"aic"})[0]
    round_trip = reads[0].end - reads[0].start
    chain0 = sum(r.end - r.start for r in vec if r.core == reads[0].core)
    assert mix_floor > 0 and round_trip > 200 and chain0 > 100
    store0 = next(r for r in outs if r.core == reads[0].core)
    # the round trip, the chain and the store run after the AIC's flag, one after the other
    assert tok.cycles >= cross[0].end + round_trip + chain0 + (store0.end - store0.start)
    # the AIC halves differ (per-channel stages its scale through L1 -> FB; a per-token AIC
    # does not), so the difference is only bounded below by the mix launch's extra floor
    assert tok.cycles - chan.cycles > mix_floor
