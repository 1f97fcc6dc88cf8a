"""z = x + y on the vector cores: the worked program behind calibration rows H1-H7.

The asc-devkit ``add_high_performance`` example tunes this kernel step by step (one AIV with a
scalar loop, one AIV with vector Add, 48 AIVs, 32 KiB copies, double buffering, L2 bypass on the
inputs, a UB layout without bank-group conflicts). Each step is a :class:`VectorAddTiling`; the
program structure (copy in, Add, copy out, ping-pong flags) is written here from that description.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa import ScalarStep, VecOp
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator
from npusim.ops.program_stages import VecInOut

if TYPE_CHECKING:
    import argparse

    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan, SimResult
    from npusim.validate import Measurement, Prediction

SCALAR_INSTRS_PER_ELEMENT = 5  # GetValue x2, add, SetValue, loop step (the example's case 0 loop)


@dataclass(frozen=True)
class VectorAddTiling:
    """How the add is split: cores, bytes per copy, buffering, L2 hint and UB layout."""

    cores: int = 48
    tile_bytes: int = 32768
    double_buffer: bool = True
    l2_bypass_inputs: bool = True
    bank_conflict_free: bool = True
    scalar_loop: bool = False

    def validate(self, soc: SocDescriptor) -> None:
        counts = soc.core_counts()
        kind = "aiv" if "aiv" in counts else "vector_core"
        if not 1 <= self.cores <= counts.get(kind, 0):
            raise ValueError(
                f"tiling.cores={self.cores}: must be in 1..{counts.get(kind, 0)} "
                f"({kind} cores of {soc.name})"
            )
        if self.tile_bytes <= 0 or self.tile_bytes % 32:
            raise ValueError(
                f"tiling.tile_bytes={self.tile_bytes}: must be a positive multiple of 32 "
                "(UB alignment)"
            )
        if self.bank_conflict_free and self.tile_bytes > 32768:
            raise ValueError(
                f"tiling.tile_bytes={self.tile_bytes}: the staggered (bank-conflict-free) "
                "layout holds tiles of at most 32768 B"
            )


H_SERIES: dict[str, VectorAddTiling] = {
    "H1": VectorAddTiling(
        cores=1,
        tile_bytes=8192,
        double_buffer=False,
        l2_bypass_inputs=False,
        bank_conflict_free=False,
        scalar_loop=True,
    ),
    "H2": VectorAddTiling(
        cores=1,
        tile_bytes=8192,
        double_buffer=False,
        l2_bypass_inputs=False,
        bank_conflict_free=False,
    ),
    "H3": VectorAddTiling(
        cores=48,
        tile_bytes=8192,
        double_buffer=False,
        l2_bypass_inputs=False,
        bank_conflict_free=False,
    ),
    "H4": VectorAddTiling(
        cores=48,
        tile_bytes=32768,
        double_buffer=False,
        l2_bypass_inputs=False,
        bank_conflict_free=False,
    ),
    "H5": VectorAddTiling(
        cores=48,
        tile_bytes=32768,
        double_buffer=True,
        l2_bypass_inputs=False,
        bank_conflict_free=False,
    ),
    "H6": VectorAddTiling(
        cores=48,
        tile_bytes=32768,
        double_buffer=True,
        l2_bypass_inputs=True,
        bank_conflict_free=False,
    ),
    "H7": VectorAddTiling(
        cores=48,
        tile_bytes=32512,
        double_buffer=True,
        l2_bypass_inputs=True,
        bank_conflict_free=True,
    ),
}


def reference_add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """fp16 vector Add: one IEEE addition rounded to nearest even (numpy float16 is exact here)."""
    return cast(np.ndarray, (x + y).astype(x.dtype))


def _ub_layout(b: ProgramBuilder, nbuf: int, tile_elems: int, dtype: str, staggered: bool
               ) -> list[tuple[Region, Region, Region]]:
    """x, y, z UB tiles per buffer, at the addresses the asc-devkit example documents.

    Consecutive (cases 1-5): x0, y0, z0, x1, y1, z1 back to back. Staggered (case 6, 16256-element
    tiles): x_i = 64 KiB * i, y_i = x_i + tile, z_i = 128 KiB + tile * i, so x and y of one repeat
    start 256 B apart and fall in different UB bank groups (hardware.md 2.5).
    """
    itemsize = 2 if dtype in ("float16", "bfloat16") else 4
    tile = tile_elems * itemsize
    region = b.alloc("UB", (b.core.buffers["UB"].capacity_bytes // itemsize,), dtype, "ub")
    bufs: list[tuple[Region, Region, Region]] = []
    for i in range(nbuf):
        if staggered:
            xo, yo, zo = 65536 * i, 65536 * i + tile, 131072 + tile * i
        else:
            xo, yo, zo = 3 * tile * i, 3 * tile * i + tile, 3 * tile * i + 2 * tile
        shape = (tile_elems,)
        bufs.append((region.sub(xo, shape), region.sub(yo, shape), region.sub(zo, shape)))
    return bufs


def build_vector_add(
    soc: SocDescriptor,
    n_elements: int,
    tiling: VectorAddTiling,
    *,
    dtype: str = "float16",
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
) -> Kernel:
    """The tiled program of z = x + y over ``n_elements`` elements (flat ND tensors)."""
    tiling.validate(soc)
    kind = "aiv" if "aiv" in soc.core_counts() else "vector_core"
    core_desc = soc.core(kind)
    itemsize = 2 if dtype in ("float16", "bfloat16") else 4
    tile_elems = tiling.tile_bytes // itemsize
    gm = {
        "x": GMTensor("x", (n_elements,), dtype, x, "input"),
        "y": GMTensor("y", (n_elements,), dtype, y, "input"),
        "z": GMTensor("z", (n_elements,), dtype, None, "output"),
    }
    # Split whole rows of 8192 (or fewer) elements evenly, the remainder to the first cores.
    row = math.gcd(n_elements, 8192)
    rows = n_elements // row
    base_rows, extra = divmod(rows, tiling.cores)
    nbuf = 2 if tiling.double_buffer else 1
    bypass = "bypass" if tiling.l2_bypass_inputs else "normal"
    cores = []
    for c in range(tiling.cores):
        prog = CoreProgram(c, kind)
        b = ProgramBuilder(prog, core_desc)
        bufs = _ub_layout(b, nbuf, tile_elems, dtype, tiling.bank_conflict_free)
        first = c * base_rows + min(c, extra)
        start = first * row
        stop = start + (base_rows + (1 if c < extra else 0)) * row
        q = VecInOut(b, tuple(range(nbuf)))
        for off in range(start, stop, tile_elems):
            n = min(tile_elems, stop - off)
            ev = q.load()
            xb, yb, zb = (r.sub(0, (n,)) for r in bufs[ev])
            gx = Region("GM", off * itemsize, (n,), dtype, "x")
            gy = Region("GM", off * itemsize, (n,), dtype, "y")
            gz = Region("GM", off * itemsize, (n,), dtype, "z")
            b.dma(gx, xb, l2_cache=bypass, name="DataCopy x GM->UB")
            b.dma(gy, yb, l2_cache=bypass, name="DataCopy y GM->UB")
            q.compute(ev)
            if tiling.scalar_loop:
                b.set_flag("V", "S", ev)
                b.wait_flag("V", "S", ev)
                b.scalar(
                    "scalar add loop",
                    SCALAR_INSTRS_PER_ELEMENT * n,
                    body=(ScalarStep(VecOp.ADD, zb, (xb, yb)),),
                )
                b.set_flag("S", "V", ev)
                b.wait_flag("S", "V", ev)
            else:
                b.vop(VecOp.ADD, zb, (xb, yb), elements=n, dtype=dtype)
            q.store(ev)
            b.dma(zb, gz, name="DataCopy z UB->GM")
            q.stored(ev)
        cores.append(prog)
    meta = {"op": "vector_add", "tiling": tiling.__dict__.copy(), "n_elements": n_elements}
    return Kernel("vector_add", gm, cores, meta)


def operands(*, x: Any = None, y: Any = None, n_elements: int | None = None,
             dtype: str = "float16") -> tuple[bool, int, tuple[int, ...], str, Any, Any]:
    """The call's rules: x and y of one shape and dtype (arrays or specs), or n_elements >= 1.
    Returns (functional, elements, shape, dtype, x, y)."""
    from npusim.spec import is_spec, require_nd

    require_nd("vector_add", x=x, y=y)
    if x is not None and y is None:
        raise ValueError("y: missing; vector_add takes x and y of one shape and dtype (or "
                         "n_elements alone)")
    if x is not None and not is_spec(x):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            raise ValueError(f"x and y must have one shape and dtype, got {x.shape} {x.dtype} "
                             f"and {y.shape} {y.dtype}")
        return True, x.size, x.shape, str(x.dtype), x, y
    if x is not None:
        shape, dtype = x.shape, x.dtype
        if not is_spec(y) or tuple(y.shape) != tuple(shape) or str(y.dtype) != str(dtype):
            raise ValueError(f"x and y must have one shape and dtype, got {x.shape} "
                             f"{x.dtype} and {getattr(y, 'shape', None)} "
                             f"{getattr(y, 'dtype', None)}")
        n = int(np.prod(shape))
        if n < 1:
            raise ValueError(f"x: shape {tuple(shape)} is empty; nothing to simulate")
        return False, n, tuple(shape), dtype, x, y
    if n_elements is not None:
        n = int(n_elements)
        if n < 1:
            raise ValueError(f"n_elements={n_elements!r}: must be >= 1")
        return False, n, (n,), dtype, x, y
    raise ValueError("vector_add needs x and y (arrays or specs) or n_elements")


def plan(soc: SocDescriptor, tiling: VectorAddTiling | str | None = None, *, x: Any = None,
         y: Any = None, n_elements: int | None = None, dtype: str = "float16") -> Plan:
    """Runner entry: arrays (functional) or specs / ``n_elements`` (timing-only).

    ``tiling`` may be a :class:`VectorAddTiling` or an H-series step name ("H1".."H7");
    the default is the fully tuned H7 structure.
    """
    from npusim.runner import Plan

    if isinstance(tiling, str):
        if tiling not in H_SERIES:
            raise ValueError(f"tiling={tiling!r}: not one of {', '.join(H_SERIES)}")
        tiling = H_SERIES[tiling]
    if tiling is not None and not isinstance(tiling, VectorAddTiling):
        raise TypeError(f"tiling={tiling!r}: expected a VectorAddTiling or an H-series step "
                        f"name ({', '.join(H_SERIES)})")
    tiling = tiling or default_tiling_for(soc)
    functional, n, shape, dtype, x, y = operands(x=x, y=y, n_elements=n_elements, dtype=dtype)
    if functional:
        kernel = build_vector_add(soc, n, tiling, dtype=dtype, x=x.reshape(-1),
                                  y=y.reshape(-1))
    else:
        kernel = build_vector_add(soc, n, tiling, dtype=dtype)
    return Plan(kernel, "vector_add", tiling, functional,
                finish=(lambda out: out["z"].reshape(shape)) if functional else None)


def default_tiling_for(soc: SocDescriptor, **_: object) -> VectorAddTiling:
    """Row H7's tiling on at most the SoC's vector cores (48 AIVs on a 910B2; 40 on a 910B4,
    7 or 8 vector cores on a 310P, where H7's 48 was illegal)."""
    counts = soc.core_counts()
    avail = counts.get("aiv", counts.get("vector_core", 1))
    h7 = H_SERIES["H7"]
    return h7 if h7.cores <= avail else dataclasses.replace(h7, cores=avail)


def example_inputs(ns: argparse.Namespace, functional: bool,
                   rng: np.random.Generator) -> dict[str, Any]:
    """Op arguments from ``npusim run vector_add`` flags (default 8192 x 8192 fp16)."""
    from npusim.spec import spec

    n = ns.n_elements or 8192 * 8192
    dtype = ns.dtype or "float16"
    if functional:
        x = rng.standard_normal(n).astype(dtype)
        y = rng.standard_normal(n).astype(dtype)
        return {"x": x, "y": y}
    return {"x": spec((n,), dtype), "y": spec((n,), dtype)}


def check_output(res: SimResult, op_args: dict[str, Any]) -> str:
    want = reference_add(op_args["x"], op_args["y"])
    same = np.array_equal(res.outputs.view(np.uint16), want.view(np.uint16))
    return f"output bit-exact vs {np.dtype(want.dtype).name} RNE reference: {same}"


def _pipe_times(text: str) -> dict[str, float]:
    """'vec 15.9; MTE2 215.5; MTE3 54.3 us' -> {'vec': 15.9, 'MTE2': 215.5, 'MTE3': 54.3}."""
    out = {}
    for part in text.split(";"):
        words = part.replace("us", "").split()
        if len(words) >= 2:
            out[words[0]] = float(words[1])
    return out


def h_series_result(step: str, soc_name: str = "Ascend910B2",
                    soc: SocDescriptor | None = None) -> SimResult:
    """Simulate calibration step H1..H7 (timing-only) and return the SimResult."""
    from npusim.runner import simulate
    from npusim.spec import spec

    n = 8192 * 8192
    return simulate("vector_add", soc or soc_name, step, x=spec((n,), "float16"),
                    y=spec((n,), "float16"), check_races=False)


def calibration_prediction(row: Measurement) -> Prediction | None:
    """Rows H1-H7: predicted total and per-pipe (vec = compute; MTE2/MTE3 = transfer) times."""
    from npusim.report.summary import pipe_busy_by_kind
    from npusim.validate import Prediction, soc_name_of

    if row.id not in H_SERIES:
        return None
    res = h_series_result(row.id, soc_name_of(row))
    busy = pipe_busy_by_kind(res.run).get("aiv", {})
    f = res.run.freq_mhz
    measured = _pipe_times(row.other_measured)
    pipes: dict[str, tuple[float, float, str]] = {}
    for label, pipe, kind in (("vec", "V", "compute"), ("MTE2", "MTE2", "transfer"),
                              ("MTE3", "MTE3", "transfer")):
        if label in measured:
            pred = busy.get("S" if pipe == "V" and H_SERIES[row.id].scalar_loop else pipe, 0.0)
            pipes[label] = (pred / f, measured[label], kind)
    return Prediction(res.microseconds, pipes, "us", note=f"tiling {row.id}")


def validate(soc: SocDescriptor, **op_args: Any) -> None:
    operands(**op_args)


OPERATOR = Operator(
    name="vector_add",
    plan=plan,
    validate=validate,
    default_tiling=default_tiling_for,
    example_inputs=example_inputs,
    cli=CliSpec(
        "z = x + y, elementwise (the H-series calibration kernel)",
        {"--n-elements": "elements of x, y and z (default 67108864 = 8192 x 8192)",
         "--dtype": "dtype of x, y, z (default float16)",
         "--step": "use the tiling of calibration step H1..H7 (default: the H7 tiling)"},
        tiling_note="--step H1..H7 or --tiling FIELD=VALUE"),
    cann_op_type="Add",
    check_output=check_output,
)
