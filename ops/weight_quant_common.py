"""What every weight_quant_batchmatmul program shares: the call's shape (:class:`WqbmmShape`),
the program tiling of Custom / Msd / MsdSplitK (:class:`WqbmmProgramTiling`, its default,
validation and derivation from a kernel tiling), the cross-core flag ids, the weight's GM windows
in its stored layout (ND, transposed, FRACTAL_NZ), the bias dtype, the compulsory HBM bytes,
kernel metadata, the zeroing of atomic-add workspaces, and the operand GM tensors and replay
data the Custom-family and digit-split programs share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from npusim.engine.program import GMTensor, ProgramBuilder
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import ITEMSIZE, Region
from npusim.ops.cube_emitter import cube_emitter_buffers
from npusim.ops.matmul_tiling import CubeTiling
from npusim.ops.program_stages import CrossFlag, CrossFlags, Ring
from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts
from npusim.ops.weight_quant_batchmatmul.tiling import (
    custom_k_rows,
    custom_param_groups,
    custom_vector_buffers,
    layout_bytes,
    msd_prepare_buffers,
    msd_recombine_buffers,
    msd_recombine_rows,
    msd_split_k_prepare_buffers,
    msd_split_k_recombine_buffers,
    program_strip_n,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.hw.schema_core import BufferName
    from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs

_ITEM = ITEMSIZE  # bytes per element (int4: 0.5), the package's one size table
ITEM = _ITEM


@dataclass(frozen=True)
class WqbmmShape:
    """What the programs need to know about one call."""

    m: int
    k: int
    n: int
    x_dtype: str  # float16 | bfloat16
    w_dtype: str  # int8 | int4
    group_size: int = 0
    has_offset: bool = False
    has_bias: bool = False
    out_dtype: str = "float16"
    inner_precise: int = 0
    trans_w: bool = False
    weight_nz: bool = False
    scale_int64: bool = False
    quant_per_channel: bool = False  # int8 output: one quant parameter per column (else one)


@dataclass(frozen=True)
class WqbmmProgramTiling:
    """Program-level tiling: cores, N strip per workspace slot, slots, vector piece rows, and
    the cube tiling used inside each AIC."""

    cube_cores: int
    strip_n: int
    slots: int
    vec_rows: int
    base_m: int
    base_n: int
    base_k: int
    step_k: int
    k_block: int = 0  # MSD kernels: K per digit block (0 = whole K, or the group)
    group_pack: int = 1  # MsdSplitK per-group: groups per recombination pass
    post_m: int = 0  # Msd: rows per recombination pass (0 = all M rows)


def default_program_tiling(soc: SocDescriptor, s: WqbmmShape, kernel: str) -> WqbmmProgramTiling:
    """A CANN-like default: all AICs over N, 256-wide strips (or N / cores), two slots."""
    aic = soc.core_counts()["aic"]
    per_core = math.ceil(s.n / aic)
    strip = min(256, max(64, math.ceil(per_core / 64) * 64))
    cores = min(aic, math.ceil(s.n / strip))
    base_m = min(128, max(16, math.ceil(s.m / 16) * 16))
    base_k = 64 if kernel == "Custom" else (128 if s.w_dtype == "int8" else 256)
    return WqbmmProgramTiling(
        cube_cores=cores,
        strip_n=strip,
        slots=2,
        vec_rows=max(16, min(256, 32768 // strip)),
        base_m=base_m,
        base_n=min(strip, 256),
        base_k=base_k,
        step_k=4,
    )


def custom_vec_rows(s: WqbmmShape, t: WqbmmProgramTiling) -> int:
    """K rows per Custom AIV dequant pass the program runs for ``t.vec_rows``: whole K units
    (:func:`~npusim.ops.weight_quant_batchmatmul.tiling.custom_k_rows`), rounded down, at
    least one (ops-nn custom_weight_nz: blockCount = vecNzSingleK / C0)."""
    unit = custom_k_rows(s.weight_nz, s.w_dtype)
    return t.vec_rows if t.vec_rows % unit == 0 else max(unit, t.vec_rows // unit * unit)


def cube_tiling_of(t: WqbmmProgramTiling, base_m: int | None = None) -> CubeTiling:
    return block_cube_tiling(base_m or t.base_m, t.base_n, t.base_k, t.step_k)


def block_cube_tiling(base_m: int, base_n: int, base_k: int, step_k: int) -> CubeTiling:
    """A CubeEmitter tiling for one block at a time (the WQBMM programs place blocks themselves):
    double-buffered L1, stepKa = stepKb = ``step_k``, a 1 x 1 grid."""
    return CubeTiling(
        base_m=base_m,
        base_n=base_n,
        base_k=base_k,
        step_ka=step_k,
        step_kb=step_k,
        depth_a1=2,
        depth_b1=2,
        single_core_m=1,
        single_core_n=1,
        m_dim=1,
        n_dim=1,
    )


def strips(n: int, t: WqbmmProgramTiling) -> list[list[tuple[int, int]]]:
    """N strips assigned round-robin to the cube cores: per core a list of (n0, n1)."""
    strips = [(n0, min(n, n0 + t.strip_n)) for n0 in range(0, n, t.strip_n)]
    per: list[list[tuple[int, int]]] = [[] for _ in range(t.cube_cores)]
    for i, st in enumerate(strips):
        per[i % t.cube_cores].append(st)
    return per


def strips_per_core(n: int, t: WqbmmProgramTiling) -> list[list[tuple[int, int]]]:
    """The N strips (n0, n1) each AIC computes, AIC index ascending."""
    return strips(n, t)


def cube_tiling_for_rows(t: WqbmmProgramTiling, rows: int) -> CubeTiling:
    """The AIC's cube tiling for ``rows`` A rows (the MSD digit rows): base_m covers them in
    16-row fractals, at most 128."""
    return cube_tiling_of(t, base_m=min(max(16, math.ceil(rows / 16) * 16), 128))


def cube_cells(dim_n: int, dim_k: int, size_n: int, size_k: int, n: int, k: int
               ) -> list[tuple[int, int, int, int]]:
    """(n0, n1, k0, k1) of each AIC of a ``dim_n`` x ``dim_k`` split of the (K, N) weight into
    cells of ``size_k`` x ``size_n``, AIC index order (N index fastest: AIC ``ci`` has N index
    ``ci % dim_n`` and K index ``ci // dim_n``)."""
    cells = []
    for ci in range(dim_n * dim_k):
        n0, k0 = (ci % dim_n) * size_n, (ci // dim_n) * size_k
        cells.append((n0, min(n, n0 + size_n), k0, min(k, k0 + size_k)))
    return cells


def split_k_order(soc: SocDescriptor, kernel: str) -> str:
    """The order the split-K programs add K partials in: the SoC's ``split_k_reduction_order``,
    ``core_index_ascending`` (also when the descriptor declares none); any other is not
    implemented."""
    order = str(getattr(getattr(soc, "numerics", None), "split_k_reduction_order", "")
                or "core_index_ascending")
    if order != "core_index_ascending":
        raise NotImplementedError(f"split_k_reduction_order={order!r}: the {kernel} program "
                                  "implements core_index_ascending only")
    return order


def kernel_meta(s: WqbmmShape, kernel: str, t: Any) -> dict[str, Any]:
    """Trace / summary metadata of a wqbmm program: the call and the tiling (the plan adds the
    call's :func:`compulsory_hbm_bytes`)."""
    return {
        "op": "weight_quant_batchmatmul",
        "selected_kernel": kernel,
        **s.__dict__,
        "program_tiling": dict(t.__dict__) if hasattr(t, "__dict__") else repr(t),
    }


def bias_dtype(s: WqbmmShape) -> str:
    """The bias dtype the API takes: fp16 with fp16 x, fp32 with bf16 x (ops-semantics 5.2)."""
    return "float16" if s.x_dtype == "float16" else "float32"


def compulsory_hbm_bytes(args: WqbmmArgs) -> int:
    """Bytes every implementation of a validated call must move between HBM and the chip (the
    one count the run's HBM bound and the sweep's bound use): each parameter array once as
    given (x, antiquant scale and offset, quant parameter, bias), the weight packed (int4 = half
    a byte), y once."""
    total = math.ceil(args.k * args.n * _ITEM[args.weight_dtype])
    for arr in (args.x, args.antiquant_scale, args.antiquant_offset, args.quant_param, args.bias):
        if arr is not None:
            total += int(arr.nbytes)
    return total + math.ceil(args.m * args.n * _ITEM[args.out_dtype])


def weight_tile_region(s: WqbmmShape, r0: int, rows: int, c0: int, cols: int) -> Region:
    """The GM window of weight rows (K) r0.. and columns (N) c0.. in its storage layout: ND
    (K, N), ND transposed (N, K), or FRACTAL_NZ of the transposed (N, K) weight, where each
    32-byte K column block of the tile is one contiguous run of ``cols`` x 32 bytes."""
    isz = _ITEM[s.w_dtype]
    if s.weight_nz:
        c0e = int(32 / isz)
        if r0 % c0e:
            raise ValueError(f"NZ weight tile must start on a {c0e}-element K block, got {r0}")
        n1 = math.ceil(s.n / 16) * 16
        runs = math.ceil(rows / c0e)
        return Region(
            "GM", (r0 // c0e) * n1 * 32 + c0 * 32, (runs, cols * c0e), s.w_dtype, "w", n1 * 32
        )
    if s.trans_w:
        return Region(
            "GM", math.ceil((c0 * s.k + r0) * isz), (cols, rows), s.w_dtype, "w",
            math.ceil(s.k * isz),
        )
    return Region(
        "GM", math.ceil((r0 * s.n + c0) * isz), (rows, cols), s.w_dtype, "w", math.ceil(s.n * isz)
    )


def load_params(b: ProgramBuilder, s: WqbmmShape, row: int, c0: int, width: int,
                scale_at: int, offset_at: int, dtype: str | None = None) -> None:
    """The dequant parameters of one column range: columns ``c0..`` (``width``) of row ``row``
    of the (rows, N) antiquant scale, and of the offset when the call has one, GM -> UB at byte
    offsets ``scale_at`` / ``offset_at`` (2-byte parameters, ``dtype`` default the x dtype)."""
    dt = dtype or s.x_dtype
    for name, at in (("scale", scale_at), ("offset", offset_at))[:1 + s.has_offset]:
        b.dma(Region("GM", (row * s.n + c0) * 2, (width,), dt, name),
              Region("UB", at, (width,), dt), name=f"{name} GM->UB")


ZERO_CHUNK = 16384  # fp32 elements zeroed per UB -> GM copy (64 KiB)


def zero_gm_share(b: ProgramBuilder, tensor: str, total: int, v: int, n_aiv: int,
                  event: int) -> bool:
    """AIV ``v`` of ``n_aiv`` zeroes its 512 B-aligned share of the fp32 GM tensor ``tensor``
    (``total`` elements; the kernels' InitAtomicAddr before atomic adds): Duplicate 0 into UB,
    V -> MTE3 flag ``event``, UB -> GM copies. Returns whether the AIV had a share."""
    share = math.ceil(math.ceil(total / n_aiv) / 128) * 128
    z0 = v * share
    if z0 >= total:
        return False
    zn = min(share, total - z0)
    zb = b.alloc("UB", (min(zn, ZERO_CHUNK),), "float32", "zeros")
    b.vop(VecOp.DUPLICATE, zb, scalar=0.0, name="Duplicate 0")
    b.sync("V", "MTE3", event)
    for off in range(z0, z0 + zn, ZERO_CHUNK):
        cnt = min(ZERO_CHUNK, z0 + zn - off)
        b.dma(Region("UB", zb.offset, (cnt,), "float32"),
              Region("GM", off * 4, (cnt,), "float32", tensor), name=f"zero {tensor} UB->GM")
    return True


NZ_WEIGHT_LAYOUT_MODEL = (
    "NZ weight: the program addresses it as the FRACTAL_NZ storage of the transposed (N, K) "
    "matrix (C0 = 32 B), the call's own NZ layout taken as converted to that, untimed "
    "(declared layout model)"
)


def nz_weight_storage(args: Any) -> Any:
    """The weight of a validated call as its FRACTAL_NZ storage of the transposed (N, K) matrix
    (C0 = 32 B: 32 int8 or 64 int4, packed two per byte, low nibble first) - the layout
    :func:`weight_tile_region` addresses."""
    import numpy as np

    from npusim.layouts.nz import nd_to_nz

    wt = np.ascontiguousarray(np.asarray(args.weight).T).astype(np.int8)  # (N, K)
    if args.weight_dtype == "int4":
        nz = nd_to_nz(wt, 64).astype(np.int16) & 0xF
        return np.ascontiguousarray((nz[..., 0::2] | (nz[..., 1::2] << 4)).astype(np.uint8))
    return np.ascontiguousarray(nd_to_nz(wt, 32))


def operand_tensors(
    s: WqbmmShape, data: dict[str, Any], workspaces: dict[str, GMTensor], *,
    w_shape: tuple[int, ...] | None = None, param_rows: int = 1, param_dtype: str | None = None,
    bias_dt: str = "float32", offset_workspaces: dict[str, GMTensor] | None = None,
) -> dict[str, GMTensor]:
    """A program's GM tensors in their layout order: x, the stored weight (``w_shape``; ND (K, N)
    or transposed (N, K) by default), the (``param_rows``, N) scale, the kernel's workspaces, y,
    then the offset (and ``offset_workspaces``) and the bias when the call has them. The GM
    address map follows this order, so a kernel keeps it to keep its cycles."""
    pd = param_dtype or s.x_dtype
    gm = {
        "x": GMTensor("x", (s.m, s.k), s.x_dtype, data.get("x")),
        "w": GMTensor("w", w_shape or ((s.n, s.k) if s.trans_w else (s.k, s.n)), s.w_dtype,
                      data.get("w")),
        "scale": GMTensor("scale", (param_rows, s.n), pd, data.get("scale")),
        **workspaces,
        "y": GMTensor("y", (s.m, s.n), s.out_dtype, role="output"),
    }
    if s.has_offset:
        gm["offset"] = GMTensor("offset", (param_rows, s.n), pd, data.get("offset"))
        gm.update(offset_workspaces or {})
    if s.has_bias:
        gm["bias"] = GMTensor("bias", (s.n,), bias_dt, data.get("bias"))
    return gm


def stored_weight(args: Any, kernel: str) -> Any:
    """The weight of a validated call in its stored ND layout ((N, K) when transposed; int4
    packed eight per int32 word, low nibble first) - what an ND weight's copies read."""
    import numpy as np

    from npusim.numerics import pack_int4

    packed = getattr(args, "packed_weight", None)
    if args.weight_dtype == "int4" and packed is not None:
        return packed  # the caller's packing: pack_int4 of the unpacked values gives it again
    w = np.ascontiguousarray(args.weight.T if args.trans_b else args.weight)
    if args.weight_dtype == "int4":
        if w.shape[-1] % 8:
            raise NotImplementedError(
                f"{kernel} replay: an int4 weight whose stored last dimension ({w.shape[-1]}) "
                "is not a multiple of 8 (packing)")
        w = pack_int4(w)
    return w


def replay_inputs(args: Any, w: Any, param_rows: int, *, param_dtype: str | None = None,
                  bias_dt: str = "float32") -> dict[str, Any]:
    """GM contents of a program's operands for a validated call: x, the weight ``w`` as stored,
    the antiquant scale and offset broadcast to (``param_rows``, N) (cast to ``param_dtype``
    if given), the bias (as ``bias_dt``; exact for fp32)."""
    import numpy as np

    from npusim.numerics import np_dtype

    def params(v: Any) -> Any:
        full = np.broadcast_to(v, (param_rows, args.n))
        return full.astype(np_dtype(param_dtype)) if param_dtype else full.copy()

    out = {"x": np.ascontiguousarray(args.x), "w": w, "scale": params(args.antiquant_scale)}
    if args.antiquant_offset is not None:
        out["offset"] = params(args.antiquant_offset)
    if args.bias is not None:
        out["bias"] = np.asarray(args.bias).astype(np_dtype(bias_dt)).reshape(args.n)
    return out


def validate_program_tiling(t: WqbmmProgramTiling, soc: SocDescriptor, s: WqbmmShape,
                            kernel: str) -> None:
    """A user's WqbmmProgramTiling: every count positive, the cube blocks whole fractals (M / N
    multiples of 16, K a multiple of the cube's 32 B K fractal for the kernel's cube dtype), the
    strip a multiple of 16 and at least one base_n block, the AICs available, and every buffer
    the kernel's program allocates for it within capacity (the AIVs' UB; the AIC's L1 / L0A /
    L0B / L0C / BT / FB). Errors name the field, its value and the rule."""
    for name in ("cube_cores", "strip_n", "slots", "vec_rows", "base_m", "base_n", "base_k",
                 "step_k", "group_pack"):
        v = getattr(t, name)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"tiling.{name}={v!r}: must be a positive int")
    if not isinstance(t.post_m, int) or isinstance(t.post_m, bool) or t.post_m < 0:
        raise ValueError(f"tiling.post_m={t.post_m!r}: must be an int >= 0 (0 = all rows)")
    if not isinstance(t.k_block, int) or t.k_block < 0:
        raise ValueError(f"tiling.k_block={t.k_block!r}: must be an int >= 0 (0 = whole K)")
    for name in ("base_m", "base_n", "strip_n"):
        v = getattr(t, name)
        if v % 16:
            raise ValueError(f"tiling.{name}={v}: must be a multiple of 16 (one cube fractal)")
    cube_dtype = s.x_dtype if kernel in ("Custom", "WeightNz") else (
        "int4" if s.w_dtype == "int4" else "int8")
    k0 = int(32 / _ITEM[cube_dtype])
    if t.base_k % k0:
        raise ValueError(f"tiling.base_k={t.base_k}: must be a multiple of {k0} (the {cube_dtype} "
                         "cube's 32 B K fractal)")
    if t.base_n > t.strip_n:
        raise ValueError(f"tiling.base_n={t.base_n}: must not exceed strip_n={t.strip_n} (a base "
                         "block lies inside one workspace strip)")
    check_cube_cores(soc, t)
    _check_program_ub(t, soc, s, kernel)
    _check_program_cube(t, soc, s, kernel)


def _check_program_ub(t: WqbmmProgramTiling, soc: SocDescriptor, s: WqbmmShape,
                      kernel: str) -> None:
    """The UB layouts the Custom and Msd programs allocate for ``t`` (the ones their kernel
    tilings' validators size) against the AIV's UB; ValueError naming the field."""
    ub = soc_facts(soc).ub_bytes
    if kernel == "Custom":
        rows = custom_vec_rows(s, t)
        need = layout_bytes(custom_vector_buffers(
            rows, t.strip_n, s.x_dtype, custom_param_groups(rows, s.group_size)))
        if need > ub:
            raise ValueError(f"tiling.vec_rows={t.vec_rows}: the Custom AIV's tiles of {rows} K "
                             f"rows x strip_n={t.strip_n} columns need {need} B > UB {ub} B")
    elif kernel == "Msd":
        need = layout_bytes(msd_prepare_buffers(s.k, s.x_dtype))
        if need > ub:
            raise ValueError(f"k={s.k}: the Msd digit split of one row needs {need} B > UB "
                             f"{ub} B")
        rows, width = min(s.m, t.post_m or s.m), math.ceil(t.strip_n / 2)
        need = layout_bytes(msd_recombine_buffers(rows, s.m, width, s.x_dtype, s.out_dtype))
        if need > ub:
            most = msd_recombine_rows(s.m, width, s.x_dtype, s.out_dtype, ub)
            raise ValueError(
                f"tiling.post_m={t.post_m}{' (all rows)' if not t.post_m else ''}: the Msd "
                f"recombination of {rows} rows x {width} columns (half of strip_n={t.strip_n}) "
                f"needs {need} B > UB {ub} B; post_m <= {most} fits")
    elif kernel == "MsdSplitK":
        blk, nb, per, pack = msd_split_k_blocks(s, t)
        digits = digit_count(s.w_dtype)
        need = layout_bytes(msd_split_k_prepare_buffers(blk, per, digits, s.x_dtype, s.w_dtype))
        if need > ub:
            what = (f"group_size={s.group_size}" if s.group_size else
                    f"tiling.k_block={t.k_block}{' (whole K)' if not t.k_block else ''}")
            raise ValueError(f"{what}: the MsdSplitK digit split of {per} K block(s) of {blk} "
                             f"elements needs {need} B > UB {ub} B")
        width = math.ceil(t.strip_n / 2)
        need = layout_bytes(msd_split_k_recombine_buffers(s.m, width, nb, pack, digits,
                                                          s.x_dtype, s.out_dtype))
        if need > ub:
            what = f"tiling.strip_n={t.strip_n}, " + (
                f"tiling.group_pack={t.group_pack}" if s.group_size else
                f"tiling.k_block={t.k_block}{' (whole K)' if not t.k_block else ''}")
            raise ValueError(
                f"{what}: the MsdSplitK recombination of {s.m} rows x {width} columns (half of "
                f"strip_n) with the statistics of {nb} K blocks and the parameter rows of "
                f"{pack} needs {need} B > UB {ub} B")


def digit_count(w_dtype: str) -> int:
    """Integer digits the MSD kernels split an x row into: 2 for an int8 weight, 3 for int4
    (``numerics_msd.DIGIT_FACTORS``)."""
    from npusim.ops.weight_quant_batchmatmul.numerics_msd import DIGIT_FACTORS

    return int(DIGIT_FACTORS[w_dtype][2])


def msd_split_k_blocks(s: WqbmmShape, t: WqbmmProgramTiling) -> tuple[int, int, int, int]:
    """(K block, blocks, blocks per digit-split pass, blocks of parameter rows held) of the
    MsdSplitK program for ``t``: the group per-group, else ``k_block`` (0: all of K); a pass
    takes the whole row up to K = 4096, else one block (per-group: 4096 / g blocks); the
    parameters of ``group_pack`` groups per-group, of one row per-channel."""
    blk = s.group_size or t.k_block or s.k
    nb = math.ceil(s.k / blk)
    per = nb if s.k <= 4096 else max(1, 4096 // blk) if s.group_size else 1
    return blk, nb, per, t.group_pack if s.group_size else 1


def _check_program_cube(t: WqbmmProgramTiling, soc: SocDescriptor, s: WqbmmShape,
                        kernel: str) -> None:
    """The AIC's local buffers the Custom / Msd / MsdSplitK programs allocate for ``t``
    (:func:`cube_emitter_buffers`: Custom multiplies x-dtype tiles of ``base_m`` rows, with the
    call's bias and per-column quant row; the MSD kernels multiply the weight dtype's tiles of
    the digit rows, ``base_m`` covering them, no bias) against the AIC's capacities; ValueError
    naming the fields and the capacity."""
    core = soc.core("aic")
    if kernel == "Custom":
        ct, dtype = cube_tiling_of(t), s.x_dtype
        bufs = cube_emitter_buffers(ct, dtype, core, bias=s.has_bias,
                                    quant_vector=s.quant_per_channel)
        m_field = f"tiling.base_m={t.base_m}"
    elif kernel in ("Msd", "MsdSplitK"):
        rows = digit_count(s.w_dtype) * s.m
        ct, dtype = cube_tiling_for_rows(t, rows), s.w_dtype
        bufs = cube_emitter_buffers(ct, dtype, core, bias=False)
        m_field = f"base_m={ct.base_m} (of the {rows} digit rows)"
    else:
        return
    k, n = f"tiling.base_k={t.base_k}", f"tiling.base_n={t.base_n}"
    fields = {"L1": f"{m_field}, {n}, {k}, tiling.step_k={t.step_k}", "L0A": f"{m_field}, {k}",
              "L0B": f"{k}, {n}", "L0C": f"{m_field}, {n}", "BT": n, "FB": n}
    for buf, layout in bufs.items():
        spec = core.buffers.get(cast("BufferName", buf))
        if not layout or spec is None:
            continue
        need = layout_bytes(layout, spec.alignment_bytes)
        if need > spec.capacity_bytes:
            names = ", ".join(f"{name} {list(shape)} {dt}" for name, shape, dt in layout)
            raise ValueError(f"{fields[buf]}: the {kernel} AIC's {buf} buffers ({names}) need "
                             f"{need} B > {buf} {spec.capacity_bytes} B")


def check_cube_cores(soc: SocDescriptor, t: WqbmmProgramTiling) -> None:
    if t.cube_cores > soc.core_counts()["aic"]:
        raise ValueError(
            f"tiling.cube_cores={t.cube_cores} exceeds the "
            f"{soc.core_counts()['aic']} AIC of {soc.name}"
        )


def program_tiling_from(kt: Any, soc: SocDescriptor, s: WqbmmShape,
                        kernel: str) -> WqbmmProgramTiling:
    """Map the kernel's tiling data onto the program structure (see the module docstring)."""
    base = default_program_tiling(soc, s, kernel)
    cube = getattr(kt, "cube", None)
    aic = soc.core_counts()["aic"]
    if kernel == "Custom":
        dim_n, strip, slots, rows = (kt.cube_block_dim_n, kt.cube_single_n,
                                     kt.weight_cache_count, kt.vec_single_k)
    elif kernel == "Msd":
        dim_n, strip, slots, rows = kt.cube_block_dim_n, kt.single_core_n, 2, 0
    elif kernel == "MsdSplitK":
        dim_n = math.ceil(kt.task_n_size / kt.cube_single_core_n)
        strip, slots, rows = kt.cube_single_core_n, 2, 0
    else:
        return base
    strip = program_strip_n(s.n, strip, dim_n, aic)
    return WqbmmProgramTiling(
        cube_cores=max(1, min(aic, dim_n, math.ceil(s.n / strip))),
        strip_n=strip,
        slots=max(1, slots),
        vec_rows=rows or base.vec_rows,
        base_m=cube.base_m if cube else base.base_m,
        base_n=min(strip, cube.base_n) if cube else base.base_n,
        base_k=cube.base_k if cube else base.base_k,
        step_k=cube.step_ka if cube else base.step_k,
        k_block=(s.group_size or kt.v1_base_k) if kernel == "MsdSplitK" else 0,
        group_pack=kt.group_pack if kernel == "MsdSplitK" else 1,
        post_m=kt.post_process_base_m if kernel == "Msd" else 0,
    )


@dataclass(frozen=True)
class MsdFlags:
    """The cross-core flags of the MSD kernels (Msd, MsdSplitK): ``digits`` - both AIVs of an
    AI Core have written their digit rows (AIVs -> AIC) - and ``c``, the ring of the AIC's
    int32 / fp16 digit-product slots that the AIVs recombine (AIC -> AIVs)."""

    flags: CrossFlags
    digits: CrossFlag
    c: Ring

    @classmethod
    def of(cls, soc: SocDescriptor, slots: int) -> MsdFlags:
        flags = CrossFlags.of(soc)
        return cls(flags, flags.flag("digit rows written"), flags.ring("digit product slot", slots))
