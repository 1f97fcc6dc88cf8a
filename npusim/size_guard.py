"""Size guard of ``simulate``: a run too large to finish in reasonable time or memory is refused
with its estimate instead of running for an hour or asking for hundreds of GiB.

Two checks, both against a configurable instruction limit (``max_instructions`` of
``simulate``, else ``$NPUSIM_MAX_INSTRUCTIONS``, else ``DEFAULT_MAX_INSTRUCTIONS``):

- before planning, lower bounds that need no program, the largest of: every input byte is read
  from GM at least once by an instruction that moves at most one on-core buffer's capacity (the
  descriptor has no GM->GM path); a cube operator's M*K*N MACs over the most one mmad can do
  (its blocks fit L0A, L0B, L0C); a streaming operator's chunks (the given or default tiling)
  times the instructions each chunk needs at least (trans_quant_param: its element
  chunks); a cube operator's A and B bytes over the L0A
  and L0B capacities (the cube reads only from them); for matmul / quant_matmul the cube
  program's output tiles x K steps from the tiling (the 310P pp_matmul path: its PpMatmul
  blocks x K chunks x L0 parts, ``pp_matmul_bound``); for weight_quant_batchmatmul, the selected
  kernel's loops counted from the tiling (every kernel: Custom, WeightNz on A2/A3 and 310P,
  Msd, MsdSplitK, MsdGroup, CustomNzSplitK, Fixpipe, SplitK; ``npusim.size_guard_wqbmm``),
  each loop's trip count times the instructions it emits at least. Shapes such as
  M = 2^31 - 1, or the largest legal call of each weight_quant_batchmatmul kernel, are
  refused here, before any array or program exists;
- while planning: the builder spends an instruction budget of the limit (``build_budget``), so
  a program past the limit stops being built the moment it passes it (building costs roughly a
  third of a run; the bounds above are loose by 3-10x for vector operators);
- after planning, before the engine: the program's exact instruction count.

Timing-only runs build no data-sized array (weight_quant_batchmatmul's specs become zero-stride
placeholders), so memory is bounded by the program, i.e. by the instruction limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.size_guard_wqbmm import CUBE_KSTEP_INSTRUCTIONS, CUBE_TILE_INSTRUCTIONS
from npusim.size_guard_wqbmm import wqbmm_program_bound as _wqbmm_program_bound
from npusim.spec import TensorSpec

if TYPE_CHECKING:
    from npusim.engine.program import Kernel
    from npusim.hw.schema import SocDescriptor

DEFAULT_MAX_INSTRUCTIONS = 2_000_000
ENV_MAX_INSTRUCTIONS = "NPUSIM_MAX_INSTRUCTIONS"
_BITS = {"int4": 4, "int8": 8, "uint8": 8, "bool": 8, "float16": 16, "bfloat16": 16,
         "int16": 16, "float32": 32, "int32": 32, "uint32": 32, "float64": 64, "int64": 64}


class SizeLimitError(ValueError):
    """A run whose size exceeds a limit; the message gives the estimate and the limit."""


def instruction_limit(max_instructions: int | None = None) -> int:
    """The limit in force: the argument, else $NPUSIM_MAX_INSTRUCTIONS, else the default."""
    if max_instructions is None:
        text = os.environ.get(ENV_MAX_INSTRUCTIONS)
        if text is None:
            return DEFAULT_MAX_INSTRUCTIONS
        try:
            max_instructions = int(text)
        except ValueError:
            raise SizeLimitError(f"${ENV_MAX_INSTRUCTIONS}={text!r}: must be an integer >= 1") \
                from None
        where = f"${ENV_MAX_INSTRUCTIONS}"
    else:
        where = "max_instructions"
    if isinstance(max_instructions, bool) or not isinstance(max_instructions, int | np.integer) \
            or max_instructions < 1:
        raise SizeLimitError(f"{where}={max_instructions!r}: must be an integer >= 1")
    return int(max_instructions)


def _nbytes(x: Any) -> int | None:
    """Bytes of an array or spec argument (None for anything else)."""
    if isinstance(x, TensorSpec):
        bits = _BITS.get(x.dtype, 32)
        return math.ceil(math.prod(x.shape) * bits / 8)
    if isinstance(x, np.ndarray):
        return int(x.nbytes)
    return None


def input_bytes(op_args: Mapping[str, Any]) -> int:
    """Total bytes of the tensor arguments (arrays and specs; exact integers, no overflow)."""
    return sum(b for b in (_nbytes(v) for v in op_args.values()) if b is not None)


def largest_buffer_bytes(desc: SocDescriptor) -> int:
    """The most bytes one instruction can move: the largest on-core buffer of any core kind."""
    caps = [b.capacity_bytes for kind in desc.core_counts()
            for b in desc.core(kind).buffers.values()]
    return max(caps)


def _dims(x: Any) -> tuple[tuple[int, ...], str] | None:
    if isinstance(x, TensorSpec):  # a spec's shape is logical, FRACTAL_NZ ones included
        return x.shape, x.dtype
    if type(x) is np.ndarray:  # plain ND arrays only (a formatted array's shape is storage)
        return x.shape, str(x.dtype)
    return None


def cube_macs(op: str, op_args: Mapping[str, Any]) -> int | None:
    """M x K x N of a cube operator's call (None when the shapes are not plain ND)."""
    names = {"matmul": ("a", "b"), "quant_matmul": ("x1", "x2"),
             "weight_quant_batchmatmul": ("x", "weight")}.get(op)
    if names is None:
        return None
    xa, xb = (_dims(op_args.get(n)) for n in names)
    if xa is None or xb is None or len(xa[0]) < 2 or len(xb[0]) < 2:
        return None
    n = xb[0][-1] * (8 if op == "weight_quant_batchmatmul" and xb[1] == "int32" else 1)
    return math.prod(xa[0][:-1]) * xa[0][-1] * n


def largest_mmad_macs(desc: SocDescriptor) -> int | None:
    """The most MACs one mmad can do: its (m, k), (k, n), (m, n) blocks fit L0A, L0B and L0C
    (1-byte inputs, 4-byte accumulators: the most elements), so m*k*n <= sqrt(A * B * C)."""
    for kind in desc.core_counts():
        bufs = desc.core(kind).buffers
        if {"L0A", "L0B", "L0C"} <= set(bufs):
            a, b = bufs["L0A"].capacity_bytes, bufs["L0B"].capacity_bytes
            c = bufs["L0C"].capacity_bytes // 4
            return math.isqrt(a * b * c) + 1
    return None


def _l0_bound(op: str, desc: SocDescriptor, op_args: Mapping[str, Any]) -> tuple[int, str] | None:
    """Every A byte enters L0A and every B byte L0B at least once, each move at most the
    buffer's capacity (B as the cube's input dtype: a quantised weight is dequantised first)."""
    macs = cube_macs(op, op_args)
    if macs is None:
        return None
    names = {"matmul": ("a", "b"), "quant_matmul": ("x1", "x2"),
             "weight_quant_batchmatmul": ("x",)}[op]
    dims = _dims(op_args[names[0]])
    if dims is None:  # not reached: cube_macs found the shapes
        return None
    ashape, adt = dims
    m_rows = math.prod(ashape[:-1])
    k = ashape[-1]
    n = macs // max(1, m_rows * k)
    bits = _BITS.get(adt, 16)
    a_bytes, b_bytes = m_rows * k * bits // 8, k * n * bits // 8
    for kind in desc.core_counts():
        bufs = desc.core(kind).buffers
        if {"L0A", "L0B"} <= set(bufs):
            ca, cb = bufs["L0A"].capacity_bytes, bufs["L0B"].capacity_bytes
            count = math.ceil(a_bytes / ca) + math.ceil(b_bytes / cb)
            return count, (f"A ({a_bytes:,} B) and B ({b_bytes:,} B as {adt}) enter L0A / L0B "
                           f"of {ca:,} / {cb:,} B at least once")
    return None


def _chunk(op: str, tiling: Any, x: Any) -> tuple[int, int, str] | None:
    """(most input bytes one chunk of ``tiling`` covers, instructions each chunk needs at least,
    what they are) for the streaming operators; None for the others."""
    if op == "vector_add" and hasattr(tiling, "tile_bytes"):
        return tiling.tile_bytes, 4, "load x, load y, add, store"
    if op == "tensor_copy" and hasattr(tiling, "tile_bytes"):
        return tiling.tile_bytes, 2, "load, store"
    if op in ("group_quant", "dynamic_quant", "quantize") and hasattr(tiling, "rows_per_pass"):
        dims = _dims(x)
        bits = _BITS.get(dims[1] if dims else "float32", 32)
        return math.ceil(tiling.rows_per_pass * tiling.h_chunk * bits / 8), 2, "load, store"
    if op == "format_cast" and hasattr(tiling, "m_tile"):  # C0 columns of 32 bytes per strip
        return tiling.m_tile * tiling.n_strips * 32, 2, "load, store"
    return None


def _streaming_bound(op: str, desc: SocDescriptor, tiling: Any,
                     op_args: Mapping[str, Any]) -> tuple[int, str] | None:
    """A streaming operator's chunks of input times the instructions each needs at least."""
    from npusim.operators import get_operator

    if op not in ("vector_add", "tensor_copy", "group_quant", "dynamic_quant", "quantize",
                  "format_cast"):
        return None
    x = op_args.get("x")
    if x is not None:
        nbytes = _nbytes(x)
    else:  # tensor_copy's timing-only call: n_elements of dtype
        n, dtype = op_args.get("n_elements"), op_args.get("dtype", "float32")
        if isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0:
            nbytes = math.ceil(int(n) * _BITS.get(str(dtype), 32) / 8)
        else:
            nbytes = None
    if not nbytes:
        return None
    try:
        t = tiling if tiling is not None else get_operator(op).default_tiling(desc, **op_args)
    except Exception:  # the planner reports bad arguments itself, with its own message
        return None
    chunk = _chunk(op, t, x)
    if chunk is None or chunk[0] < 1:
        return None
    size, per, what = chunk
    chunks = math.ceil(nbytes / size)
    return per * chunks, (f"{nbytes:,} input bytes in chunks of at most {size:,} B (the "
                          f"{'given' if tiling is not None else 'default'} tiling), each at "
                          f"least {per} instructions ({what})")


def _trans_quant_param_bound(op: str, tiling: Any,
                             op_args: Mapping[str, Any]) -> tuple[int, str] | None:
    """trans_quant_param: one core walks the elements in chunks of the tiling's ``chunk``, and
    every chunk emits at least its scalar loop and its store (a scale of 2^31 - 1 elements built
    for a minute before the build budget stopped it)."""
    if op != "trans_quant_param":
        return None
    lengths = [math.prod(d[0]) for d in (_dims(op_args.get(n)) for n in ("scale", "offset"))
               if d is not None]
    from npusim.ops.trans_quant_param_program import DEFAULT_CHUNK

    chunk = getattr(tiling, "chunk", DEFAULT_CHUNK) if tiling is not None else DEFAULT_CHUNK
    if not lengths or isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        return None  # the planner reports bad arguments itself, with its own message
    chunks = math.ceil(max(lengths) / chunk)
    return 2 * chunks, (f"{max(lengths):,} elements in chunks of at most {chunk:,} (the "
                        f"{'given' if tiling is not None else 'default'} tiling), each at least "
                        "2 instructions (scalar loop, store)")


def _cube_program_bound(op: str, desc: SocDescriptor, op_args: Mapping[str, Any],
                        tiling: Any) -> tuple[int, str] | None:
    """matmul / quant_matmul: the cube program's loops counted from the call's tiling without
    building it - every output tile of every batch over all of K in base_k steps (split-K
    slices cover K at least once), each step >= CUBE_KSTEP_INSTRUCTIONS, and each tile's
    write-out >= CUBE_TILE_INSTRUCTIONS."""
    from npusim.operators import get_operator

    if op not in ("matmul", "quant_matmul"):
        return None
    names = {"matmul": ("a", "b"), "quant_matmul": ("x1", "x2")}[op]
    try:
        if op == "matmul":
            from npusim.ops.matmul_plans import checked_matmul

            p = checked_matmul(desc, **op_args)
        else:
            from npusim.ops.matmul_plans import checked_quant_matmul

            p = checked_quant_matmul(desc, **op_args)
        t = tiling if tiling is not None else get_operator(op).default_tiling(desc, **op_args)
        if isinstance(t, dict):
            from npusim.ops.matmul_tiling import tiling_from_dict

            t = tiling_from_dict(
                t, lambda: get_operator(op).default_tiling(desc, **op_args))
        from npusim.ops.quant_matmul_pp_program import PpMatmulTiling

        if isinstance(t, PpMatmulTiling):  # the 310P pp_matmul path: its own kernel's loops
            return pp_matmul_bound(p.m, p.k, p.n, t)
        bm, bn, bk = int(t.base_m), int(t.base_n), int(t.base_k)
    except Exception:  # the planner reports bad arguments itself, with its own message
        return None
    if min(bm, bn, bk) < 1 or not all(n in op_args for n in names):
        return None
    nb = math.prod(p.batch) if p.batch else 1
    tiles = nb * math.ceil(p.m / bm) * math.ceil(p.n / bn)
    ksteps = math.ceil(p.k / bk)
    return (tiles * (CUBE_KSTEP_INSTRUCTIONS * ksteps + CUBE_TILE_INSTRUCTIONS),
            f"the {op} program's loops from its tiling: {tiles:,} output tiles "
            f"({nb:,} batches of {p.m:,} x {p.n:,} in {bm} x {bn} blocks) x ({ksteps:,} K steps "
            f"of {bk} x >= {CUBE_KSTEP_INSTRUCTIONS} + a write-out of >= "
            f"{CUBE_TILE_INSTRUCTIONS})")


#: PpMatmul instructions emitted whatever the call (``build_pp_matmul_kernel``): per core the
#: primed and drained event flags; per block the first chunk's A / B loads with their flags, the
#: bias load, the bias broadcast with its flags, and the write-out (barrier, parameters load,
#: 3 syncs, 2 waits, the VDEQ16 copy, 3 sets, the final set) besides its NZ bursts; per K chunk
#: a prefetch (but the last: 6), the 4 chunk flags; per K part 8 (a wait, 2 L1 -> L0 copies, a
#: sync, a barrier, the Mmad, a set)
PP_CORE, PP_BLOCK, PP_CHUNK_LOAD, PP_CHUNK, PP_PART = 20, 29, 6, 4, 8


def pp_matmul_bound(m: int, k: int, n: int, t: Any) -> tuple[int, str]:
    """The 310P PpMatmul launch's loops counted from its tiling (``PpMatmulTiling``) without
    building it: every (m0 x n0) block (four classes: full / last along M and N) x its K chunks
    of ``k0`` x the L0 parts of each chunk (``32768 / max(m_round, n_round)`` deep), plus each
    block's fixed instructions and 16-column NZ bursts. The TransData launches around it are
    not counted (they spend the same build budget)."""
    from npusim.ops.quant_matmul_pp_program import L0AB_HALF

    def sizes(total: int, base: int) -> list[tuple[int, int]]:
        loops = -(-total // base)
        out = [(loops - 1, base), (1, total - (loops - 1) * base)]
        return [(c, v) for c, v in out if c > 0]

    k_loop = -(-k // t.k0)
    chunks = sizes(k, t.k0)
    blocks = total = 0
    for cm, ma in sizes(m, t.m0):
        for cn, na in sizes(n, t.n0):
            mr, nr = -(-ma // 16) * 16, -(-na // 16) * 16
            k_part = L0AB_HALF // max(mr, nr) // 32 * 32
            parts = sum(c * (PP_CHUNK + PP_PART * -(-ka // k_part)) for c, ka in chunks)
            per_block = PP_BLOCK + PP_CHUNK_LOAD * (k_loop - 1) + parts + nr // 16
            blocks += cm * cn
            total += cm * cn * per_block
    total += PP_CORE * t.block_dim
    return total, (f"the PpMatmul program's loops from its tiling: {blocks:,} blocks of "
                   f"{t.m0} x {t.n0} x {k_loop:,} K chunks of {t.k0} in L0 parts (x >= "
                   f"{PP_PART}), each block >= {PP_BLOCK} + its NZ bursts")


def lower_bound(op: str, desc: SocDescriptor, op_args: Mapping[str, Any],
                tiling: Any = None) -> tuple[int, str]:
    """The largest of the lower bounds on the instruction count, with how it was derived."""
    total = input_bytes(op_args)
    per = largest_buffer_bytes(desc)
    bounds = [(math.ceil(total / per),
               f"the inputs hold {total:,} bytes and one instruction moves at most {per:,} "
               "(the largest on-core buffer)")]
    macs, per_mmad = cube_macs(op, op_args), largest_mmad_macs(desc)
    if macs is not None and per_mmad:
        bounds.append((math.ceil(macs / per_mmad),
                       f"{macs:,} MACs and one mmad does at most {per_mmad:,} (L0A x L0B x L0C "
                       "capacities)"))
    program = (_wqbmm_program_bound(desc, op_args, tiling) if op == "weight_quant_batchmatmul"
               else None)
    for extra in (_l0_bound(op, desc, op_args), _streaming_bound(op, desc, tiling, op_args),
                  program, _cube_program_bound(op, desc, op_args, tiling),
                  _trans_quant_param_bound(op, tiling, op_args)):
        if extra is not None:
            bounds.append(extra)
    return max(bounds, key=lambda b: b[0])


def check_before_plan(op: str, desc: SocDescriptor, op_args: Mapping[str, Any], limit: int,
                      tiling: Any = None) -> None:
    """Refuse a run whose instruction lower bound exceeds ``limit`` (no array, no program yet)."""
    bound, why = lower_bound(op, desc, op_args, tiling)
    if bound > limit:
        raise SizeLimitError(
            f"{op}: needs at least {bound:,} instructions ({why}), above the limit of "
            f"{limit:,} (max_instructions= / ${ENV_MAX_INSTRUCTIONS} / npusim run "
            "--max-instructions)"
        )


#: Input bytes above which the CLI's ``--functional`` refuses to draw random data (its draws
#: take several times the inputs' size in intermediates: int32 / float64 before the cast).
DEFAULT_MAX_DRAWN_BYTES = 256 << 20


def check_before_drawing(op: str, desc: SocDescriptor, spec_args: Mapping[str, Any],
                         max_instructions: int | None = None,
                         max_bytes: int = DEFAULT_MAX_DRAWN_BYTES) -> None:
    """Before a functional CLI run draws its random inputs: the lower-bound check on the same
    call as specs, then the inputs' size against ``max_bytes``."""
    check_before_plan(op, desc, spec_args, instruction_limit(max_instructions))
    total = input_bytes(spec_args)
    n = spec_args.get("n_elements")  # tensor_copy's timing-only call: no spec, a count
    if isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0:
        total += math.ceil(int(n) * _BITS.get(str(spec_args.get("dtype", "float32")), 32) / 8)
    if total > max_bytes:
        raise SizeLimitError(
            f"{op}: --functional would draw {total:,} bytes of random inputs (and several "
            f"times that in intermediates), above the limit of {max_bytes:,} bytes; run it "
            "timing-only (drop --functional) or pass your own arrays to npusim.simulate"
        )


def check_after_plan(op: str, kernel: Kernel, limit: int) -> None:
    """Refuse a built program over ``limit`` instructions before the engine runs it."""
    count = kernel.instruction_count()
    if count > limit:
        raise SizeLimitError(
            f"{op}: the program has {count:,} instructions, above the limit of {limit:,} "
            f"(max_instructions= / ${ENV_MAX_INSTRUCTIONS} / npusim run --max-instructions); "
            "at the 18,000-36,000 instructions per CPU-second of README Benchmarks it would "
            f"take {count / 36_000:,.0f}-{count / 18_000:,.0f} CPU-s"
        )


class _Budget:
    """Instructions a build may still emit; ``spend`` raises once the limit is passed."""

    __slots__ = ("left", "limit", "op")

    def __init__(self, op: str, limit: int) -> None:
        self.op, self.limit, self.left = op, limit, limit

    def spend(self, n: int = 1) -> None:
        """Count ``n`` emitted instructions; raise once the limit is passed."""
        self.left -= n
        if self.left < 0:
            raise SizeLimitError(
                f"{self.op}: the program passed the limit of {self.limit:,} instructions while "
                f"being built (stopped there; max_instructions= / ${ENV_MAX_INSTRUCTIONS} / "
                "npusim run --max-instructions)"
            )


@contextmanager
def build_budget(op: str, limit: int) -> Iterator[None]:
    """Within the block, program builders stop with SizeLimitError past ``limit`` instructions."""
    from npusim.engine.program import BUILD_BUDGET

    token = BUILD_BUDGET.set(_Budget(op, limit))
    try:
        yield
    finally:
        BUILD_BUDGET.reset(token)
