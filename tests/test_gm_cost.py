"""GM access cost from layout (npusim.engine.gm_cost): bursts, 512 B alignment, ND -> NZ padding,
NZ -> ND rows, hooked into the DMA and FixPipe costs of the 220x descriptors."""

import math

import pytest

from npusim.engine import gm_cost, timing
from npusim.engine.program import Region
from npusim.hw import load_soc
from npusim.isa import DataCopy, FixPipe

SOC = load_soc("Ascend910B2")
AIC = SOC.core("aic")
AIV = SOC.core("aiv")
SPEC = AIC.gm_bursts


def _dma(src: Region, dst: Region, transform: str = "") -> DataCopy:
    return DataCopy(pipe="MTE2", name="t", reads=(src,), writes=(dst,), transform=transform)


def _nd_tile(n_total: int, rows: int = 256, cols: int = 256, row0: int = 0, col0: int = 0):
    """A (rows x cols) fp16 window of a row-major (K, n_total) GM matrix."""
    off = (row0 * n_total + col0) * 2
    return Region("GM", off, (rows, cols), "float16", "b", n_total * 2)


def test_aligned_contiguous_copy_costs_as_measured():
    """Factor 1 for contiguous 512 B-aligned copies and for 512 B rows at a 512 B-multiple stride:
    the condition the msKPP curves were measured in, so calibrated rows keep their cycles."""
    assert gm_cost.layout_factor(SPEC, 0, 1, 65536, 65536) == 1.0
    assert gm_cost.layout_factor(SPEC, 0, 128, 512, 4096) == 1.0
    assert gm_cost.layout_factor(SPEC, 1024, 64, 1024, 8192) == 1.0


def test_32b_aligned_worst_case_is_70_percent_of_512b_aligned():
    """DOC best_practices_10_0014: a 32 B-aligned copy reaches at worst 70 % of the 512 B-aligned
    bandwidth; the declared request overhead reproduces that for a 512 B row."""
    assert gm_cost.layout_factor(SPEC, 32, 1, 512, 512) == pytest.approx(1 / 0.7)
    # a long contiguous copy only pays its one extra request: 64 KiB starting 32 B into a 512 B
    # window is a 512 B burst (480 B payload), 127 full windows and a last 32 B in the smallest
    # (128 B) burst - 129 requests, 65664 B charged - against 128 requests of 512 B aligned
    ov = SPEC.request_overhead_bytes
    small, window = SPEC.burst_bytes[0], SPEC.window_bytes
    charged = window + 127 * window + small
    assert charged == 65664
    assert gm_cost.layout_factor(SPEC, 32, 1, 65536, 65536) == pytest.approx(
        (charged + 129 * ov) / (65536 + 128 * ov), rel=1e-12)


def test_bursts_round_up_to_128_256_512():
    """A request's span is rounded up to the next documented burst (128 / 256 / 512 B), whole
    32 B blocks first."""
    c = gm_cost.row_cost(0, 8, 512, 32, (128, 256, 512))
    assert c == (1, 128)
    c = gm_cost.row_cost(0, 200, 512, 32, (128, 256, 512))
    assert c == (1, 256)
    c = gm_cost.row_cost(500, 24, 512, 32, (128, 256, 512))  # blocks 480..544 cross a window
    assert c == (2, 256)


def test_residue_classes_equal_row_by_row_sum():
    """The per-residue summation equals summing every row."""
    for start, rows, rb, stride in ((8, 300, 200, 8200), (0, 77, 512, 2056), (96, 40, 64, 96 * 7)):
        fast = gm_cost.layout_cost(start, rows, rb, stride, 512, 32, (128, 256, 512))
        slow = [gm_cost.row_cost(start + r * stride, rb, 512, 32, (128, 256, 512))
                for r in range(rows)]
        assert fast == (sum(c[0] for c in slow), sum(c[1] for c in slow))


def _requests_brute_force(start: int, rows: int, row_bytes: int, stride: int,
                          straddle: bool = False) -> tuple[int, int]:
    """Independent oracle of the documented rules: walk each row's 32 B blocks, cut at 512 B
    address boundaries, round each piece up to a 128 / 256 / 512 B burst. ``straddle`` (an
    ND -> NZ source): a row starting off a 32 B boundary moves each of its 32 B C0 pieces as the
    two DataBlocks the piece spans, if that is more than its bursts."""
    req = charged = 0
    for r in range(rows):
        at = start + r * stride
        lo = at // 32 * 32
        hi = -(-(at + row_bytes) // 32) * 32
        row = 0
        while lo < hi:
            cut = min(hi, (lo // 512 + 1) * 512)
            req += 1
            row += next(b for b in (128, 256, 512) if cut - lo <= b)
            lo = cut
        if straddle and at % 32:
            row = max(row, sum(2 * 32 for _ in range(0, row_bytes, 32)))
        charged += row
    return req, charged


def test_misaligned_n_costs_more_than_aligned_nd2nz_load():
    """An ND B tile whose row stride is a few elements off a multiple of 16 (N = 4100 fp16) loads
    slower than the same tile of N = 4096: rows start off 512 B (and off 32 B) boundaries.

    Size, from the descriptor alone: the aligned 256 x 256 tile (128 KiB, 512 B rows at a 512 B
    multiple stride) costs the nd2nz curve, 131072 / 111.0 B/cyc = 1181 cycles. With N = 4100 the
    rows start 8, 16, ... bytes past a window (stride 8200 = 8 mod 512): the 4 rows that start on
    a boundary take one request, the other 252 two - 508 requests. Bursts alone would charge
    178176 B; but 3 rows in 4 start off a 32 B boundary (8200 = 8 mod 32), and each of their 16
    C0 pieces spans two DataBlocks: 192 rows x 1024 B + the 64 others' bursts (43008 B) = 239616 B.
    The factor is (239616 + 508 x 160) / (131072 + 256 x 160) = 1.865 and the surcharge streams
    at the nd2nz plateau: 1181 + 0.865 x 131072 / 118.7 -> 2137 cycles."""
    l1 = Region("L1", 0, (256, 256), "float16")
    aligned = timing.dma_local_cycles(AIC, _dma(_nd_tile(4096), l1, "nd2nz"))
    ragged = timing.dma_local_cycles(AIC, _dma(_nd_tile(4100, row0=1), l1, "nd2nz"))
    path = AIC.transfer("GM", "L1")
    nbytes = 256 * 512
    assert aligned == math.ceil(nbytes / path.bytes_per_cycle(nbytes, "nd2nz")) == 1181
    assert _requests_brute_force(4100 * 2, 256, 512, 4100 * 2) == (508, 178176)
    req, charged = _requests_brute_force(4100 * 2, 256, 512, 4100 * 2, straddle=True)
    assert (req, charged) == (508, 239616)
    ov = SPEC.request_overhead_bytes
    factor = (charged + req * ov) / (nbytes + 256 * ov)
    assert gm_cost.gm_side_factor(AIC, _nd_tile(4100, row0=1), l1, "nd2nz") == pytest.approx(
        factor, rel=1e-12)
    plateau = path.bytes_per_cycle(1 << 40, "nd2nz")
    assert ragged == math.ceil(nbytes / path.bytes_per_cycle(nbytes, "nd2nz")
                               + (factor - 1) * nbytes / plateau) == 2137


def test_ragged_k_pays_c0_padding_in_nd2nz():
    """ND -> NZ writes whole 32 B C0 blocks per row: a row of 1000 fp16 (2000 B) moves 2016 B."""
    assert gm_cost.nd2nz_padding_factor(2000) == pytest.approx(2016 / 2000)
    assert gm_cost.nd2nz_padding_factor(2048) == 1.0
    src = Region("GM", 0, (16, 1000), "float16", "a", 2000)
    l1 = Region("L1", 0, (16, 1008), "float16")
    f = gm_cost.gm_side_factor(AIC, src, l1, "nd2nz")
    assert f > gm_cost.gm_side_factor(AIC, src, l1, "")


def test_nz_weight_is_cheaper_to_load_than_nd():
    """A (256 x 256) fp16 B tile stored FRACTAL_NZ (16 column blocks, each 256 rows x 32 B
    contiguous) loads as a plain copy of 8 KiB bursts, cheaper than the ND2NZ copy of the same
    tile from an ND matrix (N = 4096): no on-the-fly conversion."""
    l1 = Region("L1", 0, (256, 256), "float16")
    nd = timing.dma_local_cycles(AIC, _dma(_nd_tile(4096), l1, "nd2nz"))
    k_total = 4096
    nz = Region("GM", 0, (16, 256 * 16), "float16", "b_nz", k_total * 32)
    nz_cycles = timing.dma_local_cycles(AIC, _dma(nz, l1))
    assert nz_cycles < nd
    # with a ragged N the ND load is slower still, the NZ one does not change (NZ pads N to 16)
    nd_ragged = timing.dma_local_cycles(AIC, _dma(_nd_tile(4100, row0=1), l1, "nd2nz"))
    assert nz_cycles < nd < nd_ragged


def test_fixpipe_nz2nd_rows_misaligned_cost_more():
    """FixPipe writes one GM row per L0C row (NZ -> ND): a 128 x 256 fp16 tile into an N = 4100
    output (rows 8200 B apart) costs more than into N = 4096, and the aligned one costs exactly
    the element-rate time."""
    l0c = Region("L0C", 0, (128, 256), "float32")

    def fix(n_total: int) -> int:
        out = Region("GM", n_total * 2, (128, 256), "float16", "c", n_total * 2)
        ins = FixPipe(pipe="FIX", name="f", reads=(l0c,), writes=(out,),
                      elements=128 * 256, out_dtype="float16", mode="F322F16")
        return timing.fixpipe_cycles(AIC, ins, pipe_was_idle=True)

    fixp = AIC.fixpipe
    assert fix(4096) == fixp.latency_cycles + 128 * 256 // fixp.elements_per_cycle
    assert fix(4100) > 1.2 * fix(4096)


def test_mte3_misaligned_rows_cost_more():
    """UB -> GM (MTE3) rows of 100 fp16 at a 200 B stride cost more than one aligned 20 KB copy."""
    ub = Region("UB", 0, (100, 100), "float16")
    strided = Region("GM", 200, (100, 100), "float16", "y", 208)
    contiguous = Region("GM", 0, (100 * 100,), "float16", "y")
    mte3 = AIV.transfer("UB", "GM")
    a = timing.dma_local_cycles(AIV, DataCopy(pipe=mte3.pipe, name="t", reads=(ub,),
                                                    writes=(strided,)))
    b = timing.dma_local_cycles(AIV, DataCopy(pipe=mte3.pipe, name="t", reads=(ub,),
                                                    writes=(contiguous,)))
    assert a > 1.3 * b


def test_no_descriptor_means_no_layout_cost():
    """A core without ``gm_bursts`` (layout not modelled) charges every layout as contiguous."""
    core = load_soc("Ascend310P3").core("aicore")
    assert core.gm_bursts is None
    src = _nd_tile(4100, row0=1)
    assert gm_cost.gm_side_factor(core, src, Region("L1", 0, (256, 256), "float16")) == 1.0


def test_whole_matmul_with_n_a_few_elements_off_16_costs_more_per_column():
    """End to end (default tiling, cold L2): a decode-shaped matmul 16 x 2048 x N whose N is 4
    elements off a multiple of 16 (1028) takes more cycles per output column than N = 1024: the
    weight rows start off 32 B / 512 B boundaries and every ND2NZ B load pays extra bursts."""
    from npusim import simulate
    from npusim.spec import TensorSpec

    per_col = {}
    for n in (1024, 1028):
        res = simulate("matmul", "Ascend910B2", a=TensorSpec((16, 2048), "float16"),
                       b=TensorSpec((2048, n), "float16"), l2_start="cold")
        per_col[n] = res.run.cycles / n
    assert per_col[1028] > 1.1 * per_col[1024]
