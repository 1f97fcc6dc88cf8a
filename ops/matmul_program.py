"""The Ascend C matmul kernel (the skeleton of every matmul op): the single-core jobs (batch,
m block, n block, k slice) of the tiling are dealt round robin over the cube cores
(:func:`work_items`), each core's jobs emitted by one :class:`npusim.ops.cube_emitter.CubeEmitter`
(GM -> L1 -> L0 -> Mmad -> FixPipe, ping-pong flags). Mix kernels on split SoCs - the AIV
dequant epilogue and split-K with its AIV reduction - add the AIV programs of
:mod:`npusim.ops.matmul_mix`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.operands import ITEMSIZE
from npusim.ops.cube_emitter import CubeEmitter
from npusim.ops.cube_epilogue import Epilogue, QuantParams
from npusim.ops.cube_templates import Interner
from npusim.ops.gm_matrix import GmMatrix
from npusim.ops.matmul_tiling import CubeTiling, MatmulTiling, visit_order

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor


def cube_tiling_from(t: CubeTiling | MatmulTiling) -> CubeTiling:
    """The cube program's numbers of ``t``: a CubeTiling as is, a MatmulTiling converted by
    :meth:`MatmulTiling.cube_tiling` (the only two tiling types a cube program reads)."""
    if isinstance(t, CubeTiling):
        return t
    if isinstance(t, MatmulTiling):
        return t.cube_tiling()
    raise TypeError(f"tiling={type(t).__name__}: a cube program reads a MatmulTiling or a "
                    "CubeTiling")


def order_matters(t: CubeTiling, m: int, n: int) -> bool:
    """Whether the block order (``order``, ``swizzle``) can change the program of an M=m, N=n
    matmul: not when every :func:`visit_order` call of the build ranges over a single M block
    or a single N block (per core: its single-core M / N extent; ``block_dim``: the whole
    matrix), since every order then visits the blocks in the same sequence."""
    if t.block_dim:
        rows, cols = -(-m // t.base_m), -(-n // t.base_n)
    else:
        rows = -(-min(t.single_core_m, m) // t.base_m)
        cols = -(-min(t.single_core_n, n) // t.base_n)
    return rows > 1 and cols > 1


def cube_kind(soc: SocDescriptor) -> str:
    return "aic" if "aic" in soc.core_counts() else "aicore"


@dataclass(frozen=True)
class BatchLayout:
    """Batched operands: output matrix ``i`` is stored A matrix ``a_index[i]`` times stored B
    matrix ``b_index[i]`` (broadcast batch dims resolved to flat indices); ``bias_batched``: the
    bias holds one row per output matrix."""

    a_index: tuple[int, ...]
    b_index: tuple[int, ...]
    bias_batched: bool = False

    @property
    def count(self) -> int:
        return len(self.a_index)


def work_items(t: CubeTiling, batch: int, m: int = 0, n: int = 0
               ) -> list[tuple[int, int, int, int]]:
    """(batch, m block, n block, k slice) of every single-core job, in core-assignment order:
    job ``j`` runs on cube core ``j % cores`` (round robin when batches outnumber the cores).
    With ``t.block_dim`` the jobs are the base blocks of the (m, n) matrix in the tiling's visit
    order (row / column major or swizzle panels), dealt round robin over ``block_dim`` cores."""
    if t.block_dim:
        order = visit_order(t, range(-(-m // t.base_m)), range(-(-n // t.base_n)))
        return [(bi, mi, ni, 0) for bi in range(batch) for mi, ni in order]
    return [
        (bi, mi, ni, li)
        for bi in range(batch)
        for mi in range(t.m_dim)
        for ni in range(t.n_dim)
        for li in range(t.k_dim)
    ]


def build_matmul_kernel(
    soc: SocDescriptor,
    m: int,
    k: int,
    n: int,
    in_dtype: str,
    tiling: Any,
    epilogue: Epilogue,
    *,
    trans_b: bool = False,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    cube_model: str = "fractal_exact_fp32_sequential",
    name: str = "matmul",
    meta: dict[str, Any] | None = None,
    batch: BatchLayout | None = None,
    epilogue_of: Callable[[int], Epilogue] | None = None,
    aiv: Any = None,
    split_k_order: str = "core_index_ascending",
    deq: tuple[QuantParams, np.ndarray | None] | None = None,
    b_nz_c0: int = 0,
    a_nz_c0: int = 0,
    hf32: str = "",
) -> Kernel:
    """Build the kernel of C (m x n) = A (m x k) @ B (k x n) [+ bias] -> epilogue.

    ``hf32`` (e.g. ``m10_rne``): the cube's HF32 mode, fp32 L0A / L0B data rounded to the
    declared HF32 format before each Mmad.

    ``b_nz_c0`` > 0: ``b`` is the FRACTAL_NZ storage (C0 = ``b_nz_c0``) of the stored matrix
    ((k, n), or (n, k) when ``trans_b``), read with plain copies of its fractal runs; batched,
    each batch's storage follows the previous one's. ``a_nz_c0`` > 0: the same for ``a`` (m, k).

    ``b`` is given as stored: (k, n), or (n, k) when ``trans_b``; with ``batch`` the stored
    operands carry a leading batch dim and ``epilogue_of(i)`` (if given) is output matrix i's
    epilogue. ``bias`` (n,) or (batch, n) initialises the accumulator (float32 for float matmuls,
    int32 for integer ones) through the bias table.

    Mix kernels (split SoCs): ``aiv`` (an :class:`npusim.ops.matmul_mix.AivStage`) sends the
    accumulator tiles through a GM workspace to the two AIVs of each AI Core, which finish the
    output (the quant_matmul dequant epilogue); ``tiling.k_dim > 1`` splits K over cube cores,
    whose partials the AIVs add in ``split_k_order`` (then ``aiv``'s conversion, or ``epilogue``
    as a cast when ``aiv`` is None).

    ``deq``: (:class:`QuantParams`, the (n,) int64 per-column parameters or None) of an integer
    matmul's quant epilogue: on a coupled SoC it runs on the L0C -> UB copy, on a split SoC in
    FixPipe (``epilogue.mode`` REQ8 / DEQF16 with the scalar parameter, VREQ8 / VDEQF16 with the
    per-column parameters in FB).
    """
    t = cube_tiling_from(tiling)
    kind = cube_kind(soc)
    desc = soc.core(kind)
    cores_avail = soc.core_counts()[kind]
    if t.m_dim * t.n_dim * t.k_dim > cores_avail:
        raise ValueError(
            f"tiling core grid {t.m_dim}x{t.n_dim}x{t.k_dim} exceeds the {cores_avail} "
            f"{kind} cores of {soc.name}"
        )
    mix = aiv is not None or t.k_dim > 1
    if mix and getattr(soc, "organisation", "split") != "split":
        what = "split-K (k_dim > 1)" if t.k_dim > 1 else "the AIV epilogue"
        raise NotImplementedError(
            f"matmul program: {what} needs the AIC + AIV cross-core flags of a split SoC; the "
            f"coupled {soc.name} path is not modelled"
        )
    functional = a is not None
    acc_dtype = "int32" if in_dtype in ("int8", "int4") else "float32"
    nb = batch.count if batch is not None else 1
    na = max(batch.a_index) + 1 if batch is not None else 1
    nbb = max(batch.b_index) + 1 if batch is not None else 1
    lead = (lambda cnt: (cnt,)) if batch is not None else (lambda cnt: ())
    out_dtype = aiv.out_dtype if aiv is not None else epilogue.out_dtype
    from npusim.layouts.nz import nz_storage_shape

    b_shape: tuple[int, ...] = (n, k) if trans_b else (k, n)
    if b_nz_c0:
        b_shape = nz_storage_shape(b_shape, b_nz_c0)
    a_shape: tuple[int, ...] = nz_storage_shape((m, k), a_nz_c0) if a_nz_c0 else (m, k)
    a_elems, b_elems = math.prod(a_shape), math.prod(b_shape)  # one batch's stored matrix
    gm = {
        "a": GMTensor("a", (*lead(na), *a_shape), in_dtype, a, "input"),
        "b": GMTensor("b", (*lead(nbb), *b_shape), in_dtype, b, "input"),
        "c": GMTensor("c", (*lead(nb), m, n), out_dtype, None, "output"),
    }
    bias_rows = 0
    if bias is not None:
        bias_arr = np.asarray(bias).astype(acc_dtype).reshape(-1, n)
        bias_rows = bias_arr.shape[0]
        gm["bias"] = GMTensor("bias", bias_arr.shape, acc_dtype, bias_arr, "input")
    if deq is not None and deq[0].per_channel:
        qp = None if deq[1] is None else np.asarray(deq[1]).view(np.uint64).reshape(n)
        gm["qp"] = GMTensor("qp", (n,), "uint64", qp, "input")
    isz = ITEMSIZE[in_dtype]
    osz = ITEMSIZE[out_dtype]
    a_rb = math.ceil(k * isz)
    b_rb = math.ceil((k if trans_b else n) * isz)
    c_rb = math.ceil(n * osz)
    part_rb = n * 4
    split = t.k_dim > 1
    sck = t.single_core_k if split else k
    # single-core split-K: K-outer loop over slices of single_core_k, partials added atomically
    # into the output (zeroed before the launch, as for every atomic-add output; not timed here)
    k_slice = t.single_core_k if not split and 0 < t.single_core_k < k else k
    if k_slice < k and (aiv is not None or desc.fixpipe is None):
        raise NotImplementedError("single-core split-K with an AIV epilogue or on a coupled core "
                                  "is not modelled (partials need FixPipe's atomic add into GM)")
    if split:
        if t.single_core_k <= 0 or t.single_core_k * t.k_dim < k:
            raise ValueError(f"tiling: k_dim={t.k_dim} x single_core_k={t.single_core_k} does "
                             f"not cover k={k}")
        gm["part"] = GMTensor("part", (t.k_dim, nb, m, n), acc_dtype, None, "workspace")
    items = work_items(t, nb, m, n)
    n_cores = min(t.block_dim or cores_avail, len(items))
    unit_m, unit_n = (t.base_m, t.base_n) if t.block_dim else (t.single_core_m, t.single_core_n)
    cores: list[CoreProgram] = []
    ring = None
    mix_flags = None
    if mix:
        from npusim.ops.matmul_mix import MixFlags, WorkspaceRing

        mix_flags = MixFlags.of(soc, split)
        if mix_flags.ring is not None:
            ring = WorkspaceRing(n_cores, t.base_m, t.base_n, acc_dtype, mix_flags.ring)
            gm["ws"] = ring.tensor()
    ws_epi = Epilogue("NONE", acc_dtype)
    interner = Interner()  # one per kernel: the cores share their repeated instructions
    for core_id in range(n_cores):
        prog = CoreProgram(core_id, kind)
        cores.append(prog)
        bld = ProgramBuilder(prog, desc)
        em = None
        for bi, mi, ni, li in items[core_id::n_cores]:
            m0, n0, k0 = mi * unit_m, ni * unit_n, li * sck
            m1, n1 = min(m, m0 + unit_m), min(n, n0 + unit_n)
            k1 = min(k, k0 + sck)
            if m0 >= m1 or n0 >= n1 or k0 >= k1:
                continue
            if em is None:
                em = CubeEmitter(bld, soc, t, in_dtype, functional=functional,
                                 cube_model=cube_model, with_bias=bias is not None,
                                 interner=interner)
                em.hf32 = hf32
                if ring is not None:
                    em.sink = ring.sink(bld, core_id)
                if deq is not None and em.coupled:
                    em.use_coupled_deq(deq[0])
                elif deq is not None and deq[0].per_channel:
                    em.use_quant_vector(GmMatrix("qp", "uint64", n * 8))
                elif deq is not None:
                    em.quant_param = deq[0].value
            ai = batch.a_index[bi] if batch is not None else 0
            bj = batch.b_index[bi] if batch is not None else 0
            am = GmMatrix("a", in_dtype, a_rb, offset=math.ceil(ai * a_elems * isz),
                          nz_rows=-(-m // 16) * 16 if a_nz_c0 else 0, nz_c0=a_nz_c0)
            bmat = GmMatrix("b", in_dtype, b_rb, offset=math.ceil(bj * b_elems * isz),
                            transposed=trans_b,
                            nz_rows=(-(-(n if trans_b else k) // 16) * 16) if b_nz_c0 else 0,
                            nz_c0=b_nz_c0)
            bias_m = None
            if bias is not None and li == 0:
                bias_m = GmMatrix("bias", acc_dtype, n * 4,
                                  offset=(bi if bias_rows > 1 else 0) * n * 4)
            if split:
                out = GmMatrix("part", acc_dtype, part_rb, offset=(li * nb + bi) * m * n * 4)
                epi = ws_epi
            elif ring is not None:
                ring.batch_index = bi
                out, epi = GmMatrix("c", out_dtype, c_rb), ws_epi
            else:
                out = GmMatrix("c", out_dtype, c_rb, offset=math.ceil(bi * m * n * osz))
                epi = epilogue_of(bi) if epilogue_of is not None else epilogue
            for ks in range(k0, k1, k_slice):
                em.atomic = "add" if k_slice < k else ""
                em.block(am, bmat, out, epi, m0, m1, n0, n1, min(k_slice, k1 - ks),
                         bias_m if ks == k0 else None, k_offset=ks)
        if split:
            assert mix_flags is not None and mix_flags.done is not None
            mix_flags.done.set(bld, "FIX")
    md = {
        "op": name,
        "m": m,
        "k": k,
        "n": n,
        "in_dtype": in_dtype,
        "out_dtype": out_dtype,
        "trans_b": trans_b,
        "b_format": "FRACTAL_NZ" if b_nz_c0 else "ND",
        "cube_model": cube_model,
    }
    if a_nz_c0:
        md["a_format"] = "FRACTAL_NZ"
    if hf32:
        md["hf32"] = hf32
    if batch is not None:
        md["batch"] = nb
    if k_slice < k:
        md["single_core_split_k"] = math.ceil(k / k_slice)
        md["split_k_reduction_order"] = "slice_ascending (FixPipe atomic add, one core)"
    if mix_flags is not None:  # mix
        from npusim.ops.matmul_mix import emit_aiv_programs

        info, extra = emit_aiv_programs(
            soc, cores, ring, aiv, epilogue, t, m, n, nb, acc_dtype,
            split_k_order=split_k_order if split else None, functional=functional,
            flags=mix_flags,
        )
        md["cross_core_flags"] = mix_flags.flags.table()
        md.update(info)
        gm.update(extra)
    md.update(meta or {})
    return Kernel(name, gm, cores, md)
