"""Tiling objects of the npu_weight_quant_batchmatmul kernels, their CANN-like defaults and
their validation against the SoC's buffers.

One frozen dataclass per kernel family; field names follow the kernels' tiling-data structs in
ops-nn ``op_kernel/weight_quant_batch_matmul_v2_tiling_data.h`` (snake_case), so that a tiled
program can be written from them. ``CubeBlock`` carries the fields of the AscendC matmul
``TCubeTiling`` the kernels use (base block, L1 steps and depths, L0C double buffering).

Which fields change the *numbers* (everything else only changes timing):

- ``MsdSplitKTiling.v1_base_k`` (per-channel: the K block over which amax / digits are taken
  and whose int32 partial products are recombined separately) and ``group_pack`` (per-group:
  the order of offset and digit terms in the fp32 accumulation);
- ``MsdGroupTiling.single_core_k`` (the K range of one core; the per-core fp32 partial sums are
  added in GM in the SoC's ``split_k_reduction_order``);
- ``CustomNzSplitKTiling.single_core_k`` / ``cube_block_dim_k`` (same, and whether a
  post-processing pass with CAST_ROUND runs).

``default_tiling`` reproduces CANN's host formulas where they decide those numeric fields
(ops-nn ``op_host/op_tiling/*msd*``, ``*custom_nz_splitk*``, ``*fixpipe*``, read for
behaviour); the cube base blocks, which CANN takes from its matmul tiling library, use the
heuristic in ``_cube_block`` (documented there). ``validate_tiling`` checks structure (the
splits cover the shape, alignment, core counts) and capacity (L1, L0A, L0B, L0C, BT, UB).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, cast

from npusim.ops.program_stages import Buffer, lanes32
from npusim.ops.weight_quant_batchmatmul.args import PER_CHANNEL, PER_GROUP, WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts, soc_facts

if TYPE_CHECKING:
    from npusim.ops.weight_quant_batchmatmul.soc_facts import SocArg


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _align(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


UB_ALIGN = 32  # bytes: one DataBlock, the UB allocation alignment of every AIV descriptor


def layout_bytes(buffers: list[Buffer], align: int = UB_ALIGN) -> int:
    """Bytes a sequence of buffers takes when allocated one after the other, each start
    aligned to ``align`` (as ``ProgramBuilder.alloc`` places them)."""
    end = 0
    for _, shape, dtype in buffers:
        n = 1
        for d in shape:
            n *= d
        end = _align(end, align) + math.ceil(n * _itemsize(dtype))
    return end


def custom_vector_buffers(rows: int, width: int, x_dtype: str, pgroups: int) -> list[Buffer]:
    """UB layout of one ``Custom`` AIV (declared once; the program allocates exactly this):
    per ping-pong side the stored weight tile (int8 bytes; int4 uses half), the fp32 working
    tile (bf16 x only: the bf16 chain runs in fp32), the x-dtype dequantised tile (the fp16
    working tile for fp16 x) and the scale / offset rows of ``pgroups`` groups as loaded; bf16 x
    adds one fp32 copy of the parameter rows (cast before use, not ping-ponged: the V pipe is in
    order)."""
    out: list[Buffer] = []
    for i in range(2):
        out.append((f"w{i}", (rows, width), "int8"))
        if x_dtype == "bfloat16":
            out.append((f"f{i}", (rows, width), "float32"))
        out.append((f"o{i}", (rows, width), x_dtype))
        out.append((f"params{i}", (2, pgroups, width), "float32"))
    if x_dtype == "bfloat16":
        out.append(("params_f32", (2, pgroups, width), "float32"))
    return out


def custom_param_groups(rows: int, group_size: int) -> int:
    """Parameter rows one Custom vector tile of ``rows`` K rows can span (it may start inside
    a group); 1 per-channel."""
    return _ceil_div(rows, group_size) + 1 if group_size else 1


def custom_nz_splitk_vector_buffers(
    rows: int, cols: int, x_dtype: str, w_dtype: str, weight_nz: bool
) -> list[Buffer]:
    """UB layout of one ``CustomNzSplitK`` / ``SplitK`` AIV dequant pass (declared once; the
    program allocates exactly this). The MTE2 input tile and the MTE3 output tile are
    ping-ponged; the vector-only intermediates are not (the V pipe is in order). fp16 x: the
    fp16 working tile per side; bf16 x: one fp32 tile, and the fp16 working tile of each side
    is reused for its bf16 output (the fp16 values are dead once cast to fp32)."""
    out: list[Buffer] = []
    if x_dtype == "bfloat16":
        out.append(("f", (rows, cols), "float32"))
    for i in range(2):
        out.append((f"w{i}", (rows, cols), w_dtype))
        out.append((f"h{i}", (rows, cols), "float16"))
        if x_dtype != "bfloat16":
            out.append((f"o{i}", (rows, cols), x_dtype))
        out.append((f"params{i}", (2, max(cols, 16)), "float32"))
        if weight_nz:
            out.append((f"params_brcb{i}", (2, cols, 16), "float16"))
    return out


MSD_STAT_SLOT = 32  # bytes per row statistic in the Msd workspace and UB (one DataBlock)


def msd_prepare_buffers(k: int, x_dtype: str) -> list[Buffer]:
    """UB layout of one ``Msd`` AIV's digit split (declared once; the program allocates exactly
    this): one x row, its fp32 copy and fp32 work row (K padded to 64-lane repeats), the two
    int8 digit rows, four scalar slots (amax, 1/amax, row sum, partial), a 64-lane and an
    8-lane reduction tile."""
    kpad = _align(k, 64)
    return [("x", (kpad,), x_dtype), ("xf", (kpad,), "float32"), ("work", (kpad,), "float32"),
            ("digits", (2, kpad), "int8"), ("stats", (4, MSD_STAT_SLOT // 4), "float32"),
            ("chunk", (64,), "float32"), ("blocks", (8,), "float32")]


def msd_recombine_buffers(rows: int, m: int, width: int, x_dtype: str,
                          out_dtype: str) -> list[Buffer]:
    """UB layout of one ``Msd`` AIV's recombination (declared once; the program allocates
    exactly this) for passes of ``rows`` of the ``m`` rows over ``width`` columns: both digits'
    int32 products (rows 32 B aligned), their fp32 casts, the raw and fp32 scale / offset /
    bias rows, the amax and row-sum of every row (each pass's rows from a 32 B boundary) and
    the output tile."""
    passes = _ceil_div(m, rows)
    return [("c", (2, rows * lanes32(width, 4)), "int32"), ("c1", (rows, width), "float32"),
            ("c2", (rows, width), "float32"), ("params_in", (3, lanes32(width, 2)), x_dtype),
            ("params", (3, lanes32(width, 4)), "float32"),
            ("row_stats", (2, passes * lanes32(rows, 4)), "float32"),
            ("out", (rows, width), out_dtype)]


def msd_split_k_prepare_buffers(block: int, per_pass: int, digits: int, x_dtype: str,
                                w_dtype: str) -> list[Buffer]:
    """UB layout of one ``MsdSplitK`` AIV's digit split (as its program allocates it): for a
    pass of ``per_pass`` K blocks of ``block`` elements the x row, its fp32 copy and fp32 work
    row, the ``digits`` digit rows, the 8-lane block sums and the amax / row-sum slots."""
    span = per_pass * block
    return [("x", (span,), x_dtype), ("xf", (span,), "float32"), ("work", (span,), "float32"),
            *[(f"digit{d}", (span,), w_dtype) for d in range(digits)],
            ("block_sums", (per_pass * 8,), "float32"),
            ("stats", (2, lanes32(per_pass, 4)), "float32")]


def msd_split_k_recombine_buffers(m: int, width: int, blocks: int, pack: int, digits: int,
                                  x_dtype: str, out_dtype: str) -> list[Buffer]:
    """UB layout of one ``MsdSplitK`` AIV's recombination (as its program allocates it) over
    ``width`` columns: each digit's int32 products of the ``m`` rows (rows 32 B aligned), the
    digit sum and the accumulator (fp32), the raw and fp32 scale / offset rows of ``pack``
    blocks (fp32: and the bias row), the amax and row sum of every row of the ``blocks`` K
    blocks, the output tile."""
    wl = lanes32(width, 4)
    return [*[(f"c{d}", (m, wl), "int32") for d in range(digits)],
            ("cc", (m, width), "float32"), ("acc", (m, width), "float32"),
            ("params_in", (2 * pack, lanes32(width, 2)), x_dtype),
            ("params", (2 * pack + 1, wl), "float32"),
            ("block_stats", (2 * blocks, lanes32(m, 4)), "float32"), ("out", (m, width), out_dtype)]


def msd_recombine_rows(m: int, width: int, x_dtype: str, out_dtype: str, ub_bytes: int) -> int:
    """The most rows (at most ``m``) one Msd recombination pass of ``width`` columns holds in
    UB: CANN's kernel sizes its pass the same way (rows = its UB budget / the core's columns)."""
    for rows in range(m, 1, -1):
        if layout_bytes(msd_recombine_buffers(rows, m, width, x_dtype, out_dtype)) <= ub_bytes:
            return rows
    return 1


def program_strip_n(n: int, strip: int, dim_n: int, aic: int) -> int:
    """The workspace strip a Custom / Msd / MsdSplitK program builds for a kernel tiling's
    ``strip`` columns over ``dim_n`` AICs: at most N over the AICs used, 16-aligned, at least
    16. The one rule: ``weight_quant_common.program_tiling_from`` derives the program's strip
    with it and the validators size UB with it."""
    cores = max(1, min(aic, dim_n))
    return max(16, min(strip, _align(_ceil_div(n, cores), 16) or 16))


def msd_strip_width(n: int, single_core_n: int, dim_n: int, aic: int) -> int:
    """Columns of one Msd AIV's half of its strip."""
    return _ceil_div(program_strip_n(n, single_core_n, dim_n, aic), 2)


def custom_nz_splitk_post_buffers(pm: int, pn: int, out_dtype: str) -> list[Buffer]:
    """UB layout of one split-K post-processing AIV: the fp32 accumulator and one incoming
    partial (``pm`` x ``pn``), the raw / fp32 scale and fp32 bias rows, the output tile."""
    return [
        ("acc", (pm, pn), "float32"),
        ("part", (pm, pn), "float32"),
        ("param_in", (pn,), "float32"),
        ("scale", (pn,), "float32"),
        ("bias", (pn,), "float32"),
        ("out", (pm, pn), out_dtype),
    ]


@dataclass(frozen=True)
class CubeBlock:
    """The cube's L1/L0 blocking (TCubeTiling subset).

    base_m/base_n/base_k: one Mmad block (L0A holds base_m x base_k, L0B base_k x base_n, L0C
    base_m x base_n); step_ka/step_kb: base_k blocks of A/B per L1 load; step_m/step_n: base
    blocks of M/N per L1 load; depth_a1/depth_b1: A/B L1 buffers in units of one step load
    (2 = ping-pong); db_l0c: L0C buffers (1 or 2).
    """

    base_m: int
    base_n: int
    base_k: int
    step_ka: int = 1
    step_kb: int = 1
    step_m: int = 1
    step_n: int = 1
    depth_a1: int = 2
    depth_b1: int = 2
    db_l0c: int = 1


@dataclass(frozen=True)
class CustomTiling:
    """``Custom``: AIVs dequantise (vec_single_k x vec_single_n) weight tiles into a GM
    workspace ring of ``weight_cache_count`` slots; each AIC multiplies x by its
    ``single_core_n`` columns in strips of ``cube_single_n`` (AIC:AIV = 1:2)."""

    cube_block_dim_m: int  # AICs along M
    cube_block_dim_n: int  # AICs along N
    single_core_m: int  # rows of x per AIC
    single_core_n: int  # weight columns per AIC
    cube_single_n: int  # columns per workspace strip (one vector->cube hand-over)
    vec_block_dim_n: int  # AIV tasks along N
    vec_block_dim_k: int  # AIV tasks along K
    vec_single_n: int  # weight columns per vector tile
    vec_single_k: int  # weight rows (K) per vector tile
    vec_single_k_group_num: int  # groups per vector K tile (per-group; else 0)
    weight_cache_count: int  # workspace ring slots
    al1_pingpong: int
    bl1_pingpong: int
    group_size: int
    cube: CubeBlock

    @property
    def cube_single_n_loop(self) -> int:
        return _ceil_div(self.single_core_n, self.cube_single_n)


@dataclass(frozen=True)
class CustomNzSplitKTiling:
    """``CustomNzSplitK`` (WeightQuantBatchMatmulV2CustomNzSplitKTilingData)."""

    cube_block_dim_n: int
    cube_block_dim_k: int  # AICs along K; their fp32 partials meet in a GM workspace
    vec_block_dim_n: int
    vec_block_dim_k: int
    cube_single_core_n: int  # columns per AIC
    single_core_k: int  # K per AIC
    cube_single_m: int  # rows per Mmad pass
    cube_single_n: int  # columns per Mmad pass / workspace slot
    cube_base_k: int  # K per Mmad
    single_k: int  # K per vector dequant pass (and per L1 load)
    vec_single_n: int  # columns per vector pass
    post_single_core_n: int  # columns per AIV in the post-processing pass
    post_single_n: int
    post_single_m: int
    cache_num: int  # workspace slots of dequantised weight

    @property
    def single_core_k_loop(self) -> int:
        return _ceil_div(self.single_core_k, self.single_k)


@dataclass(frozen=True)
class MsdTiling:
    """``Msd`` (multi-core per-channel int8; WeightQuantBatchMatmulV2MsdTilingData): AIVs split
    each row into two int8 digit rows; the AICs multiply the 2M digit rows by their N range."""

    cube_block_dim_n: int
    cube_block_dim_m: int
    single_core_n: int
    single_core_m: int  # digit rows per AIC (= 2M)
    pre_process_used_vec_num: int  # AIVs splitting rows (one row each, rows round-robin)
    v1_base_m: int  # rows per pre-processing pass
    v1_base_k: int  # K per pre-processing pass (= K)
    preload_times: int  # weight L1 loads issued before the digits are ready
    post_process_base_m: int  # rows per recombination pass (each AIV: half the columns)
    cube: CubeBlock


@dataclass(frozen=True)
class MsdSplitKTiling:
    """``MsdSplitK`` (per-channel int8 with large K/N, per-channel int4, per-group int4)."""

    order: int  # digits per value: 2 (int8) or 3 (int4)
    v1_base_k: int  # K block of the pre-processing (amax, digits) - numeric for per-channel
    v1_base_m: int  # rows per pre-processing task
    group_size: int
    group_pack: int  # groups per cube task / recombination pass (per-group; else 1)
    task_n_size: int  # N per cube round (workspace size)
    task_single_core_n_size: int  # N per AIV in the recombination
    post_process_single_core_m: int
    post_process_base_m: int
    cube_single_core_n: int
    cube: CubeBlock

    def k_block_num(self, k: int) -> int:
        return _ceil_div(k, self.v1_base_k)


@dataclass(frozen=True)
class MsdGroupTiling:
    """``MsdGroup`` (WeightQuantBatchMatmulV2MsdGroupTilingData)."""

    order: int
    group_size: int
    cube_block_dim_n: int
    cube_block_dim_k: int  # AICs along K; their fp32 partial sums are atomically added
    vec_block_dim_n: int
    single_core_k: int  # K per AIC (multiple of group_size)
    single_core_group: int
    vec_single_core_n: int
    vec1_single_core_m: int  # rows per AIV in the digit split
    cube_single_core_n: int
    cube: CubeBlock


@dataclass(frozen=True)
class FixpipeTiling:
    """``Fixpipe`` (WeightQuantBatchMatmulV2FixpipeTilingData): AIC only."""

    n_block_num: int
    m_block_num: int
    base_m: int
    base_n: int
    base_k: int
    single_core_m: int
    single_core_n: int
    a_full_load: bool


@dataclass(frozen=True)
class SplitKTiling:
    """``SplitK`` (the mix split-K template of the white-listed bf16 x int8 per-group shapes;
    WeightQuantBatchMatmulV2TilingData as ops-nn ``weight_quant_batch_matmul_v2_tiling_splitk.cpp``
    fills it). AIC ``i`` owns K block ``i // cube_block_dim_n`` (``vec_single_k`` rows, whole
    groups) and the 1024-column chunks ``i % cube_block_dim_n`` (stepping by
    ``cube_block_dim_n``); its two AIVs dequantise the chunk's halves (``vec_single_n``), one
    group at a time, into a ``cache_num``-slot GM ring; every group's fp32 product is atomically
    added into a zeroed (M, N) workspace, which the AIVs finally cast to bf16."""

    cube_block_dim_n: int
    cube_block_dim_k: int
    vec_block_dim_n: int  # 2 x cube_block_dim_n
    vec_block_dim_k: int  # = cube_block_dim_k
    vec_single_k: int  # K rows per core (a multiple of the group)
    vec_single_n: int  # columns per AIV task (512)
    vec_single_k_group_num: int
    group_size: int
    cube_single_core_n: int  # columns per AIC task (the matmul singleCoreN, 2 x vec_single_n)
    cube: CubeBlock  # SetFixSplit(align(M, 16), 512, 64), L0C double-buffered
    cache_num: int = 4  # weight workspace slots (the kernel's fixed four)
    vec_pass_k: int = 32  # weight rows per AIV dequant pass (the kernel's singleCoreK)
    post_single_n: int = 256  # columns per AIV pass of the final cast


TILING_TYPES: dict[str, type] = {
    "Custom": CustomTiling,
    "CustomNzSplitK": CustomNzSplitKTiling,
    "Msd": MsdTiling,
    "MsdSplitK": MsdSplitKTiling,
    "MsdGroup": MsdGroupTiling,
    "Fixpipe": FixpipeTiling,
    "SplitK": SplitKTiling,
}
TILING_DEPENDENT_NUMERICS = frozenset({"MsdSplitK", "MsdGroup", "CustomNzSplitK"})


def tiling_as_dict(tiling: Any) -> dict[str, Any]:
    """A plain dict of a tiling (nested CubeBlock flattened as ``cube``)."""
    return {"type": type(tiling).__name__, **asdict(tiling)}


# --------------------------------------------------------------------------------------------
# defaults


def _itemsize(dtype: str) -> float:
    return {"float16": 2, "bfloat16": 2, "float32": 4, "int8": 1, "int4": 0.5, "int32": 4,
            "int64": 8, "uint64": 8}[dtype]


def _cube_block(
    f: SocFacts,
    rows: int,
    cols: int,
    in_dtype: str,
    k_unit: int,
    k_total: int,
    bias: bool = False,
    quant_vector: bool = False,
) -> CubeBlock:
    """Heuristic base block: base_m = rows aligned to 16 (<= 128); base_n the largest of
    256/128/64/32/16 not above ``cols`` (aligned); base_k the largest multiple of ``k_unit``
    (<= 512 and <= K aligned) with double-buffered L0A/L0B fitting; L1 steps of 4 (halved while
    L1 would overflow); L0C double-buffered when two fp32 blocks fit. With ``bias`` the L1
    budget also holds the fp32 bias row of one base block (``base_n`` x 4 B, staged in L1 on
    its way to the BiasTable), as CANN's L1 budget does (aL1 + bL1 + biasL1); with
    ``quant_vector`` the uint64 FixPipe parameters of one base block (``base_n`` x 8 B, staged in
    L1 on their way to FB)."""
    out_bytes = 4
    item = _itemsize(in_dtype)
    base_m = min(128, _align(max(rows, 1), 16))
    base_n = 16
    for cand in (256, 128, 64, 32, 16):
        if cand <= max(_align(cols, 16), 16):
            base_n = cand
            break
    base_k = k_unit
    cand = k_unit
    while cand <= min(512, _align(k_total, k_unit)):
        if 2 * base_m * cand * item <= f.l0a_bytes and 2 * cand * base_n * item <= f.l0b_bytes:
            base_k = cand
        cand += k_unit
    step = 4
    reserve = (base_n * 4 if bias else 0) + (base_n * 8 if quant_vector else 0)
    while step > 1 and 2 * step * base_k * (base_m + base_n) * item + reserve > f.l1_bytes:
        step //= 2
    db_l0c = 2 if 2 * base_m * base_n * out_bytes <= f.l0c_bytes else 1
    return CubeBlock(base_m, base_n, base_k, step, step, 1, 1, 2, 2, db_l0c)


def custom_k_rows(weight_nz: bool, w_dtype: str) -> int:
    """The K rows a Custom vector tile and the AIVs' K split are multiples of: an NZ weight's
    32 B K block (C0 = 32 int8 / 64 int4 rows; the program reads whole blocks), else 32. Every
    group a call can give Custom with an int4 NZ weight (64 or 128, the aclnn rule) is whole
    blocks, so a block never spans two groups."""
    return 64 if weight_nz and w_dtype == "int4" else 32


def custom_k_unit(a: WqbmmArgs) -> int:
    """:func:`custom_k_rows` of a validated call."""
    return custom_k_rows(a.weight_format == "NZ", a.weight_dtype)


def custom_tile_fits(a: WqbmmArgs, f: SocFacts, rows: int, width: int) -> bool:
    """Whether the Custom UB layout of ``rows`` x ``width`` vector tiles fits the AIV's UB."""
    g = a.group_size if a.quant_type == PER_GROUP else 0
    bufs = custom_vector_buffers(rows, width, a.x_dtype, custom_param_groups(rows, g))
    return layout_bytes(bufs) <= f.ub_bytes


def custom_vec_single_k(a: WqbmmArgs, f: SocFacts, width: int) -> int:
    """The largest K rows per Custom vector tile whose UB layout (``custom_vector_buffers``,
    ``width`` columns) fits the AIV's UB, as CANN solves its buffer-sum <= UB inequality.

    Per-group the rows are a multiple of the group (CANN's first choice) or, when not even one
    group fits, the largest multiple of the K unit (``custom_k_unit``) dividing the group
    (CANN's fallback: a factor of the group); per-channel a multiple of the K unit. Never more
    than K (aligned)."""
    g = a.group_size if a.quant_type == PER_GROUP else 0
    k0 = custom_k_unit(a)

    def fits(rows: int) -> bool:
        return custom_tile_fits(a, f, rows, width)

    unit = g if g and fits(g) else k0
    if g and unit == k0:
        unit = max(d for d in range(k0, g + 1, k0) if g % d == 0 and fits(d))
        return unit
    cap = _align(a.k, unit)
    lo, hi = 1, cap // unit  # binary search over multiples of unit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * unit):
            lo = mid
        else:
            hi = mid - 1
    return lo * unit


def _default_custom(a: WqbmmArgs, f: SocFacts) -> CustomTiling:
    """N over the AICs first (at least 64 columns each), then M if AICs remain and M > 128;
    the vector tile spans one workspace strip (``cube_single_n`` columns, as the program
    builds it: at most 256, narrowed in steps of 16 until a tile of the fewest K rows fits UB -
    bf16 x with an int4 NZ weight, whose tiles are whole 64-row K blocks) and the K rows that
    fit UB (``custom_vec_single_k``); a two-slot workspace ring."""
    dim_n = max(1, min(f.aic_num, _ceil_div(a.n, 64)))
    single_n = _align(_ceil_div(a.n, dim_n), 16)
    dim_n = _ceil_div(a.n, single_n)
    dim_m = max(1, min(f.aic_num // dim_n, _ceil_div(a.m, 128))) if a.m > 128 else 1
    single_m = _ceil_div(a.m, dim_m)
    cube = _cube_block(f, single_m, single_n, a.x_dtype, 16, a.k, bias=a.has_bias,
                       quant_vector=a.quant_scale_type == PER_CHANNEL)
    vec_n = min(single_n, 256)
    while vec_n > 16 and not custom_tile_fits(a, f, custom_k_unit(a), vec_n):
        vec_n -= 16
    vec_k = custom_vec_single_k(a, f, vec_n)
    return CustomTiling(
        cube_block_dim_m=dim_m,
        cube_block_dim_n=dim_n,
        single_core_m=single_m,
        single_core_n=single_n,
        cube_single_n=vec_n,
        vec_block_dim_n=min(f.aiv_num, _ceil_div(a.n, vec_n)),
        vec_block_dim_k=1,
        vec_single_n=vec_n,
        vec_single_k=vec_k,
        vec_single_k_group_num=(vec_k // a.group_size) if a.quant_type == PER_GROUP else 0,
        weight_cache_count=2,
        al1_pingpong=2,
        bl1_pingpong=2,
        group_size=a.group_size,
        cube=cube,
    )


def _default_custom_nz_splitk(a: WqbmmArgs, f: SocFacts) -> CustomNzSplitKTiling:
    """CANN's formulas: K in 1024-aligned blocks over at most all AICs, the remaining AICs over
    N in 64-aligned ranges; 128-wide Mmad passes (64 when a core has fewer columns), base K 128,
    vector passes of 512 x 32, a post pass over the AIVs in 64-aligned column ranges."""
    k_align = _align(a.k, 64 if a.weight_dtype == "int4" else 32)
    n_align = _align(a.n, 16)
    dim_k = min(_ceil_div(k_align, 1024), f.aic_num)
    single_k = _align(_ceil_div(k_align, dim_k), 1024)
    dim_k = _ceil_div(k_align, single_k)
    dim_n = max(1, f.aic_num // dim_k)
    core_n = _align(_ceil_div(n_align, dim_n), 64)
    dim_n = _ceil_div(n_align, core_n)
    cube_single_n = 128 if core_n >= 128 else 64
    post_core_n = _align(_ceil_div(a.n, f.aiv_num), 64)
    post_n = min(1024, post_core_n)
    return CustomNzSplitKTiling(
        cube_block_dim_n=dim_n,
        cube_block_dim_k=dim_k,
        vec_block_dim_n=2 * dim_n,
        vec_block_dim_k=dim_k,
        cube_single_core_n=core_n,
        single_core_k=single_k,
        cube_single_m=_align(min(a.m, 128), 16),
        cube_single_n=cube_single_n,
        cube_base_k=128,
        single_k=512,
        vec_single_n=32,
        post_single_core_n=post_core_n,
        post_single_n=post_n,
        post_single_m=min(a.m, 16 * 1024 // post_n),
        cache_num=4,
    )


def _default_msd(a: WqbmmArgs, f: SocFacts) -> MsdTiling:
    """Rows over the AIVs for the digit split (CANN: min(M, AIVs) cores); N over the AICs in
    64-aligned ranges; up to 3 weight L1 preloads; recombination passes of as many rows as UB
    holds (``msd_recombine_rows``; CANN's kernel derives the same from its UB budget)."""
    used = a.m
    if used > f.aiv_num:
        used = _ceil_div(a.m, _ceil_div(a.m, f.aiv_num))
    core_n = _align(_ceil_div(a.n, f.aic_num), 64)
    dim_n = _ceil_div(a.n, core_n)
    cube = _cube_block(f, 2 * a.m, core_n, "int8", 32, a.k)
    preload = min(3, a.k // (cube.base_k * cube.step_kb)) if cube.base_k * cube.step_kb else 0
    return MsdTiling(
        cube_block_dim_n=dim_n,
        cube_block_dim_m=1,
        single_core_n=core_n,
        single_core_m=2 * a.m,
        pre_process_used_vec_num=used,
        v1_base_m=1,
        v1_base_k=a.k,
        preload_times=max(preload, 0),
        post_process_base_m=msd_recombine_rows(
            a.m, msd_strip_width(a.n, core_n, dim_n, f.aic_num), a.x_dtype, a.out_dtype,
            f.ub_bytes),
        cube=cube,
    )


def _msd_split_k_block(a: WqbmmArgs) -> int:
    """CANN's per-channel K block: the first of 1..6 (4..6 when K/N >= 30 and the weight is not
    transposed) equal splits, aligned to 64 (512 int8 / 1024 int4 when transposed), whose size
    is at most 12 * 1024."""
    k_unit = 64
    if a.trans_b:
        k_unit = 1024 if a.weight_dtype == "int4" else 512
    first = 4 if (a.k // a.n >= 30 and not a.trans_b) else 1
    for blocks in range(first, 7):
        single_k = _align(_ceil_div(a.k, blocks), k_unit)
        if 0 < single_k <= 12 * 1024:
            return single_k
    raise ValueError(f"k={a.k}: no MSD split-K block of at most 12288 exists")


def _default_msd_split_k(a: WqbmmArgs, f: SocFacts) -> MsdSplitKTiling:
    order = 3 if a.weight_dtype == "int4" else 2
    if a.quant_type == PER_GROUP:
        pack = 8 if a.group_size == 128 else 16
        unit = pack * a.group_size
        v1_k = _align(a.k, unit)
        blocks = 1
        while blocks <= 6 and v1_k > 12 * 1024:
            v1_k = _align(_ceil_div(a.k, blocks), unit)
            blocks += 1
        v1_m = 1
        core_n = 128
        task_n = min(core_n * f.aiv_num, a.n)
        post_n_blocks = _ceil_div(task_n, core_n)
        post_m_blocks = max(1, min(f.aiv_num // post_n_blocks, a.m))
    else:
        pack = 1
        v1_k = _msd_split_k_block(a)
        blocks = _ceil_div(a.k, v1_k)
        v1_m = min(8, 12 * 1024 // v1_k)
        task_n = 16 * 1024 * 1024 // (blocks * order * a.m * 4) // 256 * 256
        task_n = min(task_n, 128 * f.aiv_num, a.n)
        core_n = _align(_ceil_div(task_n, f.aiv_num), 128)
        post_n_blocks = 1 if core_n > task_n else _ceil_div(task_n, core_n)
        post_m_blocks = max(1, f.aiv_num // post_n_blocks)
    post_m = _ceil_div(a.m, post_m_blocks)
    cube_core_n = _align(_ceil_div(task_n, f.aic_num), 64)
    return MsdSplitKTiling(
        order=order,
        v1_base_k=v1_k,
        v1_base_m=v1_m,
        group_size=a.group_size,
        group_pack=pack,
        task_n_size=task_n,
        task_single_core_n_size=core_n,
        post_process_single_core_m=post_m,
        post_process_base_m=min(32 * 256 // core_n, post_m),
        cube_single_core_n=cube_core_n,
        cube=_cube_block(f, order * a.m, cube_core_n, a.weight_dtype, 64, v1_k),
    )


def _default_msd_group(a: WqbmmArgs, f: SocFacts) -> MsdGroupTiling:
    """CANN's formulas: N over the AICs in 2048-column blocks, K over the remaining AICs in
    group-aligned ranges; vector N blocks of 1024 (an even number of them); rows over the AIVs
    for the digit split."""
    order = 3 if a.weight_dtype == "int4" else 2
    dim_n = _ceil_div(a.n, 2048)
    single_k = _align(_ceil_div(a.k, max(1, f.aic_num // dim_n)), a.group_size)
    return MsdGroupTiling(
        order=order,
        group_size=a.group_size,
        cube_block_dim_n=dim_n,
        cube_block_dim_k=_ceil_div(a.k, single_k),
        vec_block_dim_n=_align(_ceil_div(a.n, 1024), 2),
        single_core_k=single_k,
        single_core_group=_ceil_div(single_k, a.group_size),
        vec_single_core_n=1024,
        vec1_single_core_m=_ceil_div(a.m, f.aiv_num),
        cube_single_core_n=2048,
        cube=_cube_block(f, order * a.m, 2048, a.weight_dtype, a.group_size, a.group_size),
    )


def _default_fixpipe(a: WqbmmArgs, f: SocFacts) -> FixpipeTiling:
    """CANN's formulas: N over the AICs in 32-aligned ranges (16 columns, base 32 when N is
    tiny), the remaining AICs over M; base K 512; A fully loaded in L1 when singleCoreM * K *
    4 <= 250 KiB (CANN multiplies by sizeof of the dtype enum, 4 bytes)."""
    single_n = _align(_ceil_div(a.n, f.aic_num), 32)
    base_n = min(single_n, 128)
    if a.n <= f.aic_num * 16:
        single_n, base_n = 16, 32
    n_blocks = _ceil_div(a.n, single_n)
    m_blocks = max(1, f.aic_num // n_blocks)
    base_m = _align(_ceil_div(a.m, m_blocks), 16)
    return FixpipeTiling(
        n_block_num=n_blocks,
        m_block_num=m_blocks,
        base_m=base_m,
        base_n=base_n,
        base_k=min(a.k, 512),
        single_core_m=min(a.m, base_m),
        single_core_n=single_n,
        a_full_load=base_m * a.k * 4 <= 250 * 1024,
    )


SPLIT_K_VEC_N = 512  # the SplitK kernel's vector N tile; its cube chunk is twice that
SPLIT_K_BASE_N = 512  # its SetFixSplit base N (ops-nn BASIC_BLOCK)
SPLIT_K_BL1_BYTES = 128 * 1024  # each of its two L1 buffers of a dequantised weight group


def _default_split_k(a: WqbmmArgs, f: SocFacts) -> SplitKTiling:
    """ops-nn's SplitK DoOpTiling: N in 1024-column chunks (nFactor = ceil(N / 1024)); of the
    divisors d of nFactor (largest first) the one maximising d x (aic // d) cores sets
    cube_block_dim_n = d, cube_block_dim_k = aic // d; each K block is ceil(K / dim_k)
    rounded up to whole groups (cube_block_dim_k then trimmed to the blocks K fills: ops-nn's
    formula leaves no empty block on its white-listed shapes); the cube block is
    (align(M, 16), 512, 64) with L0C double-buffered and L0A / L0B single (a 64 x 512 bf16 B
    block fills L0B)."""
    n_factor = _ceil_div(a.n, 2 * SPLIT_K_VEC_N)
    best, dim_n, dim_k = 0, 1, max(1, f.aic_num)
    for d in range(n_factor, 0, -1):
        if n_factor % d:
            continue
        used = d * (f.aic_num // d)
        if used > best:
            best, dim_n, dim_k = used, d, f.aic_num // d
    g = a.group_size
    vec_k = _align(_ceil_div(a.k, dim_k), g)
    dim_k = _ceil_div(a.k, vec_k)  # no empty K block (never one on the white-listed shapes)
    cube = CubeBlock(_align(a.m, 16), SPLIT_K_BASE_N, 64, 1, 1, 1, 1, 1, 2, 2)
    return SplitKTiling(
        cube_block_dim_n=dim_n,
        cube_block_dim_k=dim_k,
        vec_block_dim_n=2 * dim_n,
        vec_block_dim_k=dim_k,
        vec_single_k=vec_k,
        vec_single_n=SPLIT_K_VEC_N,
        vec_single_k_group_num=_ceil_div(vec_k, g),
        group_size=g,
        cube_single_core_n=2 * SPLIT_K_VEC_N,
        cube=cube,
    )


_DEFAULTS = {
    "Custom": _default_custom,
    "CustomNzSplitK": _default_custom_nz_splitk,
    "Msd": _default_msd,
    "MsdSplitK": _default_msd_split_k,
    "MsdGroup": _default_msd_group,
    "Fixpipe": _default_fixpipe,
    "SplitK": _default_split_k,
}


def default_tiling(args: WqbmmArgs, soc: SocArg, kernel: str) -> Any:
    """The CANN-like default tiling of ``kernel`` for ``args`` on ``soc``."""
    fn = _DEFAULTS.get(kernel)
    if fn is None:
        raise NotImplementedError(
            f"kernel={kernel!r}: no tiling model (tilings exist for {', '.join(_DEFAULTS)})"
        )
    return fn(args, soc_facts(soc))


# --------------------------------------------------------------------------------------------
# validation


class _Checker:
    def __init__(self, tiling: Any) -> None:
        self.name = type(tiling).__name__
        self.problems: list[str] = []

    def need(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ValueError(f"{self.name} is not legal: " + "; ".join(self.problems))


def _positive_ints(c: _Checker, obj: Any, prefix: str = "") -> None:
    for fld in fields(obj):
        v = getattr(obj, fld.name)
        if isinstance(v, CubeBlock):
            _positive_ints(c, v, f"{prefix}{fld.name}.")
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int):
            ok = (
                v >= 0
                if fld.name in ("vec_single_k_group_num", "group_size", "preload_times")
                else v > 0
            )
            c.need(ok, f"{prefix}{fld.name}={v}: must be a positive int")
        else:
            c.need(False, f"{prefix}{fld.name}={v!r}: must be an int")


def _cube_block_bytes(cube: CubeBlock, in_bits: int, l1_staged: int) -> dict[str, int]:
    """Bytes the :class:`CubeBlock` declares per buffer: ``L0A`` / ``L0B`` (two base tiles each),
    ``L0C`` (``db_l0c`` base_m x base_n 32-bit tiles), ``A1`` / ``B1`` (one L1 load of step_m x
    step_ka / step_kb x step_n base blocks) and ``L1`` (the loads times their depths plus
    ``l1_staged`` bytes of bias / quant rows).

    Sizes only, and on purpose not the CubeEmitter's layout: this checks the ops-nn tiling data
    (TCubeTiling's step_m / step_n, depths, dbL0C), while the wqbmm programs build their emitter
    from :func:`~npusim.ops.weight_quant_common.block_cube_tiling` (depth 2, one base block per
    load, one L0C), which ``validate_program_tiling`` sizes through ``cube_emitter_buffers``."""
    a1 = math.ceil(cube.step_m * cube.base_m * cube.step_ka * cube.base_k * in_bits / 8)
    b1 = math.ceil(cube.step_kb * cube.base_k * cube.step_n * cube.base_n * in_bits / 8)
    return {
        "L0A": math.ceil(cube.base_m * cube.base_k * in_bits / 8) * 2,
        "L0B": math.ceil(cube.base_k * cube.base_n * in_bits / 8) * 2,
        "L0C": cube.base_m * cube.base_n * 4 * cube.db_l0c,
        "A1": a1,
        "B1": b1,
        "L1": cube.depth_a1 * a1 + cube.depth_b1 * b1 + l1_staged,
    }


def _check_cube(
    c: _Checker, cube: CubeBlock, f: SocFacts, in_item: float, out_bytes: int, bias: bool = False,
    quant_vector: bool = False,
) -> None:
    c.need(cube.base_m % 16 == 0, f"cube.base_m={cube.base_m}: must be a multiple of 16")
    c.need(cube.base_n % 16 == 0, f"cube.base_n={cube.base_n}: must be a multiple of 16")
    k0 = max(16, int(32 / in_item))
    c.need(cube.base_k % k0 == 0, f"cube.base_k={cube.base_k}: must be a multiple of {k0}")
    bias_l1 = cube.base_n * 4 if bias else 0
    quant_l1 = cube.base_n * 8 if quant_vector else 0
    need = _cube_block_bytes(cube, round(in_item * 8), bias_l1 + quant_l1)
    l0a, l0b, l0c = need["L0A"], need["L0B"], need["L0C"] * out_bytes // 4
    c.need(l0a <= f.l0a_bytes, f"L0A: 2 x base_m x base_k = {l0a:.0f} B > {f.l0a_bytes} B")
    c.need(l0b <= f.l0b_bytes, f"L0B: 2 x base_k x base_n = {l0b:.0f} B > {f.l0b_bytes} B")
    c.need(
        l0c <= f.l0c_bytes,
        f"L0C: db_l0c x base_m x base_n x {out_bytes} = {l0c} B > {f.l0c_bytes} B",
    )
    a1, b1 = cube.depth_a1 * need["A1"], cube.depth_b1 * need["B1"]
    c.need(
        need["L1"] <= f.l1_bytes,
        f"L1: A {a1:.0f} B + B {b1:.0f} B + bias {bias_l1} B + quant parameters {quant_l1} B "
        f"> {f.l1_bytes} B",
    )


def _check_cores(c: _Checker, used_aic: int, used_aiv: int, f: SocFacts) -> None:
    c.need(used_aic <= f.aic_num, f"uses {used_aic} cube cores > {f.aic_num} on {f.name}")
    c.need(used_aiv <= f.aiv_num, f"uses {used_aiv} vector cores > {f.aiv_num} on {f.name}")


def _validate_custom(c: _Checker, t: CustomTiling, a: WqbmmArgs, f: SocFacts) -> None:
    _check_cores(
        c, t.cube_block_dim_m * t.cube_block_dim_n, t.vec_block_dim_n * t.vec_block_dim_k, f
    )
    c.need(t.cube_block_dim_n * t.single_core_n >= a.n, "cube_block_dim_n x single_core_n < n")
    c.need(t.cube_block_dim_m * t.single_core_m >= a.m, "cube_block_dim_m x single_core_m < m")
    g = a.group_size if a.quant_type == PER_GROUP else 0
    if g:
        c.need(t.group_size == g, f"group_size={t.group_size} != {g}")
        c.need(
            t.vec_single_k % g == 0 or (g % t.vec_single_k == 0 and t.vec_single_k % 32 == 0),
            f"vec_single_k={t.vec_single_k}: must be a multiple of the group ({g}) or a "
            "multiple of 32 dividing it",
        )
    k0 = custom_k_unit(a)
    c.need(t.vec_single_k % k0 == 0, f"vec_single_k={t.vec_single_k}: must be a multiple of "
           f"{k0} (whole {a.weight_format} K blocks of the {a.weight_dtype} weight)")
    c.need(t.vec_single_n % 16 == 0, f"vec_single_n={t.vec_single_n}: must be a multiple of 16")
    c.need(
        t.vec_single_n == t.cube_single_n,
        f"vec_single_n={t.vec_single_n}: the program's vector tile spans one workspace strip, "
        f"so it must equal cube_single_n={t.cube_single_n}",
    )
    x_item = _itemsize(a.x_dtype)
    width = program_strip_n(a.n, t.cube_single_n, t.cube_block_dim_n, f.aic_num)
    ub = layout_bytes(custom_vector_buffers(t.vec_single_k, width, a.x_dtype,
                                            custom_param_groups(t.vec_single_k, g)))
    c.need(ub <= f.ub_bytes, f"UB: vector tiles need {ub} B > {f.ub_bytes} B")
    _check_cube(c, t.cube, f, x_item, 4, bias=a.has_bias,
                quant_vector=a.quant_scale_type == PER_CHANNEL)
    if a.has_bias:
        c.need(t.cube.base_n * 4 <= f.bt_bytes or f.bt_bytes == 0, "BT: base_n fp32 bias > BT")


def _validate_custom_nz_splitk(
    c: _Checker, t: CustomNzSplitKTiling, a: WqbmmArgs, f: SocFacts
) -> None:
    _check_cores(
        c, t.cube_block_dim_n * t.cube_block_dim_k, t.vec_block_dim_n * t.vec_block_dim_k, f
    )
    c.need(t.cube_block_dim_k * t.single_core_k >= a.k, "cube_block_dim_k x single_core_k < k")
    c.need((t.cube_block_dim_k - 1) * t.single_core_k < a.k, "a K block would be empty")
    c.need(
        t.cube_block_dim_n * t.cube_single_core_n >= a.n,
        "cube_block_dim_n x cube_single_core_n < n",
    )
    c.need(t.single_core_k % t.single_k == 0, "single_core_k must be a multiple of single_k")
    c.need(t.single_k % t.cube_base_k == 0, "single_k must be a multiple of cube_base_k")
    c.need(
        t.cube_base_k % 16 == 0 and t.cube_single_m % 16 == 0 and t.cube_single_n % 16 == 0,
        "cube_base_k, cube_single_m, cube_single_n must be multiples of 16",
    )
    c.need(
        t.vec_block_dim_n == 2 * t.cube_block_dim_n, "vec_block_dim_n must be 2 x cube_block_dim_n"
    )
    item = 2
    c.need(2 * t.cube_single_m * t.cube_base_k * item <= f.l0a_bytes, "L0A overflow")
    c.need(2 * t.cube_base_k * t.cube_single_n * item <= f.l0b_bytes, "L0B overflow")
    c.need(2 * t.cube_single_m * t.cube_single_n * 4 <= f.l0c_bytes, "L0C overflow")
    a1 = min(a.m * t.single_core_k * item, 2 * t.cube_single_m * t.single_k * item)
    b1 = 2 * t.single_k * t.cube_single_n * item
    c.need(a1 + b1 <= f.l1_bytes, f"L1: A {a1} B + B {b1} B > {f.l1_bytes} B")
    ub_vec = layout_bytes(
        custom_nz_splitk_vector_buffers(
            t.single_k, t.vec_single_n, a.x_dtype, a.weight_dtype, a.weight_format == "NZ"
        )
    )
    ub_post = layout_bytes(
        custom_nz_splitk_post_buffers(max(1, t.post_single_m), t.post_single_n, a.out_dtype)
    )
    c.need(ub_vec <= f.ub_bytes, f"UB: dequant pass needs {ub_vec} B > {f.ub_bytes} B")
    c.need(ub_post <= f.ub_bytes, f"UB: post pass needs {ub_post} B > {f.ub_bytes} B")


def _validate_msd(c: _Checker, t: MsdTiling, a: WqbmmArgs, f: SocFacts) -> None:
    _check_cores(c, t.cube_block_dim_n * t.cube_block_dim_m, t.pre_process_used_vec_num, f)
    c.need(t.cube_block_dim_n * t.single_core_n >= a.n, "cube_block_dim_n x single_core_n < n")
    c.need(t.single_core_m == 2 * a.m, f"single_core_m={t.single_core_m}: must be 2m = {2 * a.m}")
    c.need(
        t.v1_base_k == a.k, f"v1_base_k={t.v1_base_k}: the Msd kernel takes whole rows (k={a.k})"
    )
    c.need(t.v1_base_m == 1, f"v1_base_m={t.v1_base_m}: the Msd kernel splits one row per pass "
           "(CANN fixes v1BaseM = 1)")
    ub_pre = layout_bytes(msd_prepare_buffers(a.k, a.x_dtype))
    rows = min(t.post_process_base_m, a.m)
    width = msd_strip_width(a.n, t.single_core_n, t.cube_block_dim_n, f.aic_num)
    ub_post = layout_bytes(msd_recombine_buffers(rows, a.m, width, a.x_dtype, a.out_dtype))
    c.need(ub_pre <= f.ub_bytes, f"UB: digit split of one row needs {ub_pre} B > {f.ub_bytes} B")
    c.need(ub_post <= f.ub_bytes, f"UB: recombination of post_process_base_m={rows} rows x "
           f"{width} columns needs {ub_post} B > {f.ub_bytes} B")
    _check_cube(c, t.cube, f, 1, 4)


def _validate_msd_split_k(c: _Checker, t: MsdSplitKTiling, a: WqbmmArgs, f: SocFacts) -> None:
    want_order = 3 if a.weight_dtype == "int4" else 2
    c.need(t.order == want_order, f"order={t.order}: must be {want_order} for {a.weight_dtype}")
    c.need(t.v1_base_k % 64 == 0, f"v1_base_k={t.v1_base_k}: must be a multiple of 64")
    c.need(
        t.v1_base_k * t.v1_base_m <= 12 * 1024,
        f"v1_base_k x v1_base_m = {t.v1_base_k * t.v1_base_m}: UB pre-processing holds 12288",
    )
    if a.quant_type == PER_GROUP:
        c.need(t.group_size == a.group_size, f"group_size={t.group_size} != {a.group_size}")
        c.need(
            t.v1_base_k % (t.group_pack * a.group_size) == 0,
            "v1_base_k must be a multiple of group_pack x group_size",
        )
        c.need(t.v1_base_m == 1, "v1_base_m must be 1 per-group")
    else:
        c.need(t.group_pack == 1, "group_pack must be 1 per-channel")
    c.need(_ceil_div(a.k, t.v1_base_k) <= 64, "more than 64 K blocks")
    c.need(t.task_single_core_n_size % 64 == 0, "task_single_core_n_size must be a multiple of 64")
    c.need(t.task_n_size <= a.n or t.task_n_size % 256 == 0, "task_n_size must not exceed n")
    c_ws = t.post_process_base_m * t.task_single_core_n_size * 4
    c.need(c_ws <= 32 * 1024, f"UB: one digit-result block {c_ws} B > 32 KiB ping buffer")
    _check_cube(c, t.cube, f, _itemsize(a.weight_dtype), 4)


def _validate_msd_group(c: _Checker, t: MsdGroupTiling, a: WqbmmArgs, f: SocFacts) -> None:
    _check_cores(
        c, t.cube_block_dim_n * t.cube_block_dim_k, t.vec_block_dim_n * t.cube_block_dim_k, f
    )
    c.need(t.group_size == a.group_size, f"group_size={t.group_size} != {a.group_size}")
    c.need(t.single_core_k % a.group_size == 0, "single_core_k must be a multiple of the group")
    c.need(
        t.single_core_group == t.single_core_k // a.group_size,
        "single_core_group != single_core_k / group",
    )
    c.need(t.cube_block_dim_k * t.single_core_k >= a.k, "cube_block_dim_k x single_core_k < k")
    c.need((t.cube_block_dim_k - 1) * t.single_core_k < a.k, "a K block would be empty")
    c.need(
        t.cube_block_dim_n * t.cube_single_core_n >= a.n,
        "cube_block_dim_n x cube_single_core_n < n",
    )
    c.need(
        t.vec_block_dim_n * t.vec_single_core_n >= a.n, "vec_block_dim_n x vec_single_core_n < n"
    )
    m_align = _align(4 * a.m, 32)
    al1 = t.single_core_k * m_align * _itemsize(a.weight_dtype)
    bl1 = 2 * t.cube_single_core_n * a.group_size * _itemsize(a.weight_dtype)
    c.need(al1 + bl1 <= f.l1_bytes, f"L1: digits {al1:.0f} B + weight {bl1:.0f} B > {f.l1_bytes} B")
    # fp32 accumulator of all rows + digit results of at most 8 rows + scale/offset rows
    ub = (a.m * 4 + min(a.m, 8) * t.order * 4 + 2 * 4) * t.vec_single_core_n
    c.need(
        ub <= f.ub_bytes,
        f"UB: recombination of m x vec_single_core_n needs {ub} B > {f.ub_bytes} B",
    )
    _check_cube(c, t.cube, f, _itemsize(a.weight_dtype), 4)


def _validate_fixpipe(c: _Checker, t: FixpipeTiling, a: WqbmmArgs, f: SocFacts) -> None:
    """Structure plus the fixed buffer partitions of the Fixpipe kernel (its InitBuffer): an
    int8 weight tile of at most 64 KiB and an fp16 A tile of at most 125 KiB per L1 ping/pong
    slot, an fp32 result block of at most 48 KiB in L0C."""
    _check_cores(c, t.n_block_num * t.m_block_num, 0, f)
    c.need(t.n_block_num * t.single_core_n >= a.n, "n_block_num x single_core_n < n")
    c.need(t.m_block_num * t.base_m >= a.m, "m_block_num x base_m < m")
    c.need(
        t.base_k % 32 == 0 and t.base_n % 16 == 0 and t.base_m % 16 == 0,
        "base_k % 32, base_n % 16, base_m % 16 must be 0",
    )
    w_tile = t.base_k * t.base_n
    c.need(w_tile <= 64 * 1024, f"L1: int8 weight tile base_k x base_n = {w_tile} B > 64 KiB")
    a_tile = t.base_m * (a.k if t.a_full_load else t.base_k) * 2
    c.need(a_tile <= 125 * 1024, f"L1: fp16 A tile {a_tile} B > 125 KiB")
    c_tile = t.base_m * t.base_n * 4
    c.need(c_tile <= 48 * 1024, f"L0C: fp32 block base_m x base_n x 4 = {c_tile} B > 48 KiB")
    caps = {"L1": f.l1_bytes, "L0A": f.l0a_bytes, "L0B": f.l0b_bytes, "L0C": f.l0c_bytes,
            "BT": f.bt_bytes, "FB": f.fb_bytes}
    for buf, layout in fixpipe_core_buffers(t, a.k, a.has_bias).items():
        need = layout_bytes(layout, f.align(buf))
        c.need(not caps[buf] or need <= caps[buf],
               f"{buf}: base_m={t.base_m}, base_n={t.base_n}, base_k={t.base_k} need {need} B "
               f"> {caps[buf]} B ({', '.join(name for name, _, _ in layout)})")


FIXPIPE_STAGE1_ROWS = 32  # K rows per identity matmul (the kernel's 32 x 256 ping-pong chunks)
FIXPIPE_STAGE2_K = 64  # K per fp16 Mmad of stage 2


def fixpipe_core_buffers(t: FixpipeTiling, k: int, has_bias: bool) -> dict[str, list[Buffer]]:
    """Local buffers of one ``Fixpipe`` AIC, per buffer in allocation order (declared once; the
    program allocates exactly this): x (whole K when ``a_full_load``, else two K tiles), the
    int8 weight tiles (ping-pong), the fp16 weight tile, the int8 identity and the uint64
    parameters in L1; the stage-1 weight chunks and stage-2 x slices in L0A; the identity and
    the stage-2 weight slices in L0B; the stage-1 int32 chunks and the fp32 accumulator in L0C;
    offset (and bias) in BT; the scale in FB."""
    bn, bk, bm = t.base_n, t.base_k, t.base_m
    xk = k if t.a_full_load else bk
    r1, k2 = FIXPIPE_STAGE1_ROWS, FIXPIPE_STAGE2_K
    # (the entries are Buffer tuples; mypy infers each concatenated list's exact tuple shapes)
    return cast("dict[str, list[Buffer]]", {
        "L1": [(f"x{i}", (bm, xk), "float16") for i in range(1 if t.a_full_load else 2)]
        + [(f"w8_{i}", (bn, bk), "int8") for i in range(2)]
        + [("w16", (bk, bn), "float16"), ("diag", (bn, bn), "int8"),
           ("params", (4, bn), "int64")],
        "L0A": [(f"a1_{i}", (r1, bn), "int8") for i in range(2)]
        + [(f"a2_{i}", (bm, k2), "float16") for i in range(2)],
        "L0B": [("diag", (bn, bn), "int8")] + [(f"b2_{i}", (k2, bn), "float16") for i in range(2)],
        "L0C": [(f"c1_{i}", (r1, bn), "int32") for i in range(2)]
        + [("acc", (bm, bn), "float32")],
        "BT": [("offset", (bn,), "int32")] + ([("bias", (bn,), "float32")] if has_bias else []),
        "FB": [("scale", (bn,), "uint64")],
    })


def split_k_vector_buffers(rows: int, cols: int) -> list[Buffer]:
    """UB layout of one SplitK AIV (its InitBuffer, declared once; the program allocates
    exactly this): the stored int8 weight pass (ping-pong), the raw bf16 offset / scale rows
    (ping-pong), the fp32 and fp16 offset and the fp32 scale rows, the fp16 tile, the fp32 tile
    and the bf16 output tile (single: the kernel's VECOUT queue has one buffer)."""
    out: list[Buffer] = []
    for i in range(2):
        out.append((f"w{i}", (rows, cols), "int8"))
        out.append((f"off_in{i}", (cols,), "bfloat16"))
        out.append((f"scale_in{i}", (cols,), "bfloat16"))
    out += [("off32", (cols,), "float32"), ("off16", (cols,), "float16"),
            ("scale32", (cols,), "float32"), ("h", (rows, cols), "float16"),
            ("f", (rows, cols), "float32"), ("o", (rows, cols), "bfloat16")]
    return out


def split_k_post_buffers(m: int, cols: int) -> list[Buffer]:
    """UB layout of the SplitK final pass: the fp32 workspace block of all M rows and its bf16
    cast (the kernel reuses its fp32 / output tiles: after the dequant they are free)."""
    return [("acc", (m, cols), "float32"), ("y", (m, cols), "bfloat16")]


def _validate_split_k(c: _Checker, t: SplitKTiling, a: WqbmmArgs, f: SocFacts) -> None:
    dim = t.cube_block_dim_n * t.cube_block_dim_k
    _check_cores(c, dim, t.vec_block_dim_n * t.vec_block_dim_k, f)
    c.need(t.vec_block_dim_n == 2 * t.cube_block_dim_n, "vec_block_dim_n must be 2 x "
           "cube_block_dim_n (each AIV dequantises half of its AIC's chunk)")
    c.need(t.vec_block_dim_k == t.cube_block_dim_k, "vec_block_dim_k must equal cube_block_dim_k")
    c.need(t.cube_single_core_n == 2 * t.vec_single_n,
           "cube_single_core_n must be 2 x vec_single_n")
    c.need(t.group_size == a.group_size, f"group_size={t.group_size} != {a.group_size}")
    c.need(t.vec_single_k % max(1, a.group_size) == 0,
           f"vec_single_k={t.vec_single_k}: must be whole groups of {a.group_size}")
    c.need(t.vec_single_k_group_num == _ceil_div(t.vec_single_k, max(1, a.group_size)),
           "vec_single_k_group_num != vec_single_k / group")
    c.need(t.cube_block_dim_k * t.vec_single_k >= a.k, "cube_block_dim_k x vec_single_k < k")
    c.need((t.cube_block_dim_k - 1) * t.vec_single_k < a.k,
           "a K block would be empty (the kernel's K length of it would underflow)")
    c.need(t.vec_single_n % 128 == 0, f"vec_single_n={t.vec_single_n}: must be whole 128-element "
           "fp16 repeats (the kernel's Add covers vec_single_n / 128 repeats)")
    c.need(t.vec_pass_k % 16 == 0, f"vec_pass_k={t.vec_pass_k}: must be a multiple of 16")
    c.need(t.post_single_n % 64 == 0, f"post_single_n={t.post_single_n}: must be a multiple of 64")
    cb = t.cube
    c.need(cb.base_m >= a.m and cb.base_m % 16 == 0,
           f"cube.base_m={cb.base_m}: must be a multiple of 16 covering m={a.m} (one M block)")
    c.need(cb.base_n % 16 == 0 and cb.base_k % 16 == 0, "cube.base_n, cube.base_k: multiples of 16")
    l0a, l0b = cb.base_m * cb.base_k * 2, cb.base_k * cb.base_n * 2
    l0c = cb.db_l0c * cb.base_m * cb.base_n * 4
    c.need(l0a <= f.l0a_bytes, f"L0A: base_m x base_k = {l0a} B > {f.l0a_bytes} B")
    c.need(l0b <= f.l0b_bytes, f"L0B: base_k x base_n = {l0b} B > {f.l0b_bytes} B")
    c.need(l0c <= f.l0c_bytes, f"L0C: db_l0c x base_m x base_n x 4 = {l0c} B > {f.l0c_bytes} B")
    bl1 = a.group_size * t.cube_single_core_n * 2
    c.need(bl1 <= SPLIT_K_BL1_BYTES, f"L1: a dequantised group (group x cube_single_core_n bf16 "
           f"= {bl1} B) exceeds the kernel's {SPLIT_K_BL1_BYTES} B B buffer")
    al1 = _align(a.m, 16) * t.vec_single_k * 2
    c.need(al1 + 2 * SPLIT_K_BL1_BYTES <= f.l1_bytes,
           f"L1: x block {al1} B + 2 x {SPLIT_K_BL1_BYTES} B weight buffers > {f.l1_bytes} B")
    ub = layout_bytes(split_k_vector_buffers(t.vec_pass_k, t.vec_single_n))
    c.need(ub <= f.ub_bytes, f"UB: dequant pass needs {ub} B > {f.ub_bytes} B")
    ub = layout_bytes(split_k_post_buffers(a.m, t.post_single_n))
    c.need(ub <= f.ub_bytes, f"UB: final pass needs {ub} B > {f.ub_bytes} B")


#: validator of each kernel tiling type (its checks on the call and the SoC's facts)
_VALIDATORS: dict[type, Callable[[_Checker, Any, WqbmmArgs, SocFacts], None]] = {
    CustomTiling: _validate_custom,
    CustomNzSplitKTiling: _validate_custom_nz_splitk,
    MsdTiling: _validate_msd,
    MsdSplitKTiling: _validate_msd_split_k,
    MsdGroupTiling: _validate_msd_group,
    FixpipeTiling: _validate_fixpipe,
    SplitKTiling: _validate_split_k,
}


def validate_tiling(tiling: Any, args: WqbmmArgs, soc: SocArg, kernel: str | None = None) -> None:
    """Raise ValueError listing every rule ``tiling`` breaks for ``args`` on ``soc``."""
    if kernel is not None:
        want = TILING_TYPES.get(kernel)
        if want is None:
            raise NotImplementedError(f"kernel={kernel!r}: no tiling model")
        if not isinstance(tiling, want):
            raise TypeError(
                f"tiling={type(tiling).__name__}: kernel {kernel!r} needs a {want.__name__}"
            )
    validator = _VALIDATORS.get(type(tiling))
    if validator is None:
        raise TypeError(f"tiling={type(tiling).__name__}: not a weight_quant_batchmatmul tiling")
    c = _Checker(tiling)
    _positive_ints(c, tiling)
    if not c.problems:
        validator(c, tiling, args, soc_facts(soc))
    c.raise_if_any()
