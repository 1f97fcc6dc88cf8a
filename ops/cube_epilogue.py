"""How an L0C tile leaves the cube core: the epilogue records a program is built with (the
FixPipe mode and output dtype, an integer matmul's quant parameters), and the exits of a coupled
core without FixPipe (310P: L0C -> UB on the vector pipe, a Cast or the dequantising copy,
UB -> GM). The split cores' FixPipe exit is :class:`npusim.ops.cube_emitter.CubeEmitter`'s."""

from __future__ import annotations

from dataclasses import dataclass

from npusim.engine.program import ProgramBuilder
from npusim.isa.instructions import DataCopy, Vector
from npusim.isa.opcodes import VecOp
from npusim.isa.operands import Region
from npusim.ops.program_stages import allocated


@dataclass(frozen=True)
class Epilogue:
    """How L0C leaves the core: FixPipe ``mode`` (its values from the semantics table) to
    ``out_dtype``."""

    mode: str
    out_dtype: str
    l0c_dtype: str = "float32"


@dataclass(frozen=True)
class QuantParams:
    """An integer matmul's quant epilogue parameters (npu_trans_quant_param's uint64
    encoding). ``per_channel``: one per output column (GM tensor ``qp``), staged per tile -
    GM -> L1 -> FB for FixPipe's VREQ8 / VDEQF16 (the matmul library's SetQuantVector), or
    GM -> UB for a coupled core's VDEQ16 / VDEQ8 L0C -> UB copy
    (:mod:`npusim.numerics.l0c_dequant`); else the one parameter ``value`` (FixPipe REQ8 /
    DEQF16, the coupled DEQ16 / DEQ8; None in timing-only runs)."""

    per_channel: bool
    value: int | None = None

    def mode(self, out_dtype: str) -> str:
        return ("V" if self.per_channel else "") + ("DEQ16" if out_dtype == "float16" else "DEQ8")


def coupled_epilogue(
    bld: ProgramBuilder,
    c_reg: Region,
    ub: Region,
    out: Region,
    epi: Epilogue,
    cbuf: int,
    tile_idx: int,
    n_l0c: int,
) -> None:
    """310P (no FixPipe): L0C -> UB on the vector pipe, conversion on the vector unit, UB -> GM."""
    rm, rn = c_reg.shape
    ub_acc = Region("UB", ub.offset, (rm, rn), c_reg.dtype)
    ub_res = Region("UB", ub.offset, (rm, rn), epi.out_dtype)
    bld.sync("M", "V", cbuf)
    if tile_idx >= n_l0c:
        bld.wait_flag("MTE3", "V", cbuf)
    bld.dma(c_reg, ub_acc, name="L0C->UB")
    bld.set_flag("V", "M", cbuf)
    if epi.out_dtype != c_reg.dtype:  # the table: vector Cast
        bld.cast(ub_res, ub_acc, round_mode="rint", saturate=True, name=f"Cast {epi.mode}")
    else:  # fp32 out: the tile passes the vector unit unchanged
        bld.emit(Vector(pipe="V", name=f"Cast {epi.mode}", reads=(ub_acc,), writes=(ub_res,),
                        op=VecOp.COPY, elements=rm * rn, dtype=c_reg.dtype,
                        cost_class="convert"))
    bld.sync("V", "MTE3", cbuf)
    bld.dma(ub_res, out, name="UB->GM")
    bld.set_flag("MTE3", "V", cbuf)


def coupled_deq_epilogue(
    bld: ProgramBuilder,
    c_reg: Region,
    ub: Region,
    out: Region,
    deq: QuantParams,
    out_dtype: str,
    cbuf: int,
    tile_idx: int,
    n_l0c: int,
    *,
    deq_ub: Region | None,
    col: int,
) -> None:
    """310P quant epilogue, as the matmul library on dav-m200 (SetQuantScalar /
    SetQuantVector -> DataCopy L0C -> UB with deqScale): [the tile's parameters, GM ``qp``
    columns ``col``.. -> ``deq_ub``], the dequantising L0C -> UB copy on V, then UB -> GM."""
    rm, rn = c_reg.shape
    ub_res = Region("UB", ub.offset, (rm, rn), out_dtype)
    reads: tuple[Region, ...] = (c_reg,)
    if deq.per_channel:
        if tile_idx > 0:
            bld.wait_flag("V", "MTE2", 5)
        ub_q = Region("UB", allocated(deq_ub, "matmul program: deq_ub").offset, (rn,), "uint64")
        bld.dma(Region("GM", col * 8, (rn,), "uint64", "qp"), ub_q, name="deq params GM->UB")
        bld.sync("MTE2", "V", 5)
        reads = (c_reg, ub_q)
    bld.sync("M", "V", cbuf)
    if tile_idx >= n_l0c:
        bld.wait_flag("MTE3", "V", cbuf)
    mode = deq.mode(out_dtype)
    path = bld.core.transfer("L0C", "UB")
    assert path is not None  # the coupled AI Core's dequantising copy
    bld.emit(DataCopy(pipe=path.pipe, name=f"L0C->UB {mode}",
                      reads=reads, writes=(ub_res,), deq=mode, deq_value=deq.value))
    if deq.per_channel:
        bld.set_flag("V", "MTE2", 5)
    bld.set_flag("V", "M", cbuf)
    bld.sync("V", "MTE3", cbuf)
    bld.dma(ub_res, out, name="UB->GM")
    bld.set_flag("MTE3", "V", cbuf)
