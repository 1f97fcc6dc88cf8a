"""GM -> GM tensor copy on the vector cores (calibration rows F1, F2a-c).

A declared stand-in: the rows time torch's ``dst.copy_(src)`` on contiguous tensors, which torch_npu
v2.7.1 runs as a runtime device-to-device memcpy task (``copy_d2d_by_memcpy``), not an AI Core
kernel, and which engine serves that memcpy is not published. Here every AIV streams its slice
GM -> UB -> GM with MTE2 / MTE3 in ``tile_bytes`` chunks, ping-pong buffered, so the same bytes
cross the shared HBM / L2 model and the rows measure its achieved bandwidth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.engine.program import CoreProgram, GMTensor, Kernel, ProgramBuilder
from npusim.isa.operands import Region
from npusim.operator import CliSpec, Operator

if TYPE_CHECKING:
    import argparse

    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan
    from npusim.validate import Measurement, Prediction


@dataclass(frozen=True)
class CopyTiling:
    cores: int = 48
    tile_bytes: int = 65536
    buffers: int = 2


def copy_core_kind(soc: SocDescriptor) -> str:
    """The cores the copy runs on: the AIVs of a split SoC, the vector cores of a 310P."""
    return "aiv" if "aiv" in soc.core_counts() else "vector_core"


def build_copy(soc: SocDescriptor, n_elements: int, dtype: str, tiling: CopyTiling,
               x: np.ndarray | None = None) -> Kernel:
    kind = copy_core_kind(soc)
    avail = soc.core_counts()[kind]
    if not 1 <= tiling.cores <= avail:
        raise ValueError(f"tiling.cores={tiling.cores}: must be in 1..{avail}")
    desc = soc.core(kind)
    itemsize = np.dtype(dtype).itemsize
    gm = {"x": GMTensor("x", (n_elements,), dtype, x, "input"),
          "y": GMTensor("y", (n_elements,), dtype, None, "output")}
    tile = tiling.tile_bytes // itemsize
    per_core = math.ceil(math.ceil(n_elements / tiling.cores) / tile) * tile
    cores = []
    for c in range(tiling.cores):
        prog = CoreProgram(c, kind)
        b = ProgramBuilder(prog, desc)
        bufs = [b.alloc("UB", (tile,), dtype, f"buf{i}") for i in range(tiling.buffers)]
        start = c * per_core
        stop = min(n_elements, start + per_core)
        for t, off in enumerate(range(start, stop, tile)):
            n = min(tile, stop - off)
            ev = t % tiling.buffers
            ub = bufs[ev].sub(0, (n,))
            if t >= tiling.buffers:
                b.wait_flag("MTE3", "MTE2", ev)
            b.dma(Region("GM", off * itemsize, (n,), dtype, "x"), ub, name="DataCopy GM->UB")
            b.sync("MTE2", "MTE3", ev)
            b.dma(ub, Region("GM", off * itemsize, (n,), dtype, "y"), name="DataCopy UB->GM")
            b.set_flag("MTE3", "MTE2", ev)
        cores.append(prog)
    return Kernel("tensor_copy", gm, cores, {"op": "tensor_copy", "n_elements": n_elements})


def plan(soc: SocDescriptor, tiling: CopyTiling | None = None, *, x: Any = None,
         n_elements: int | None = None, dtype: str = "float32") -> Plan:
    from npusim.runner import Plan

    if tiling is not None and not isinstance(tiling, CopyTiling):
        raise TypeError(f"tiling={tiling!r}: expected a CopyTiling (fields cores, tile_bytes, "
                        "buffers)")
    tiling = tiling or default_tiling_for(soc)
    arr, n, dtype = operands(x=x, n_elements=n_elements, dtype=dtype)
    if arr is not None:
        kernel = build_copy(soc, n, dtype, tiling, arr.reshape(-1))
        return Plan(kernel, "tensor_copy", tiling, True,
                    finish=lambda out: out["y"].reshape(arr.shape))
    return Plan(build_copy(soc, n, dtype, tiling), "tensor_copy", tiling, False)


def operands(*, x: Any = None, n_elements: int | None = None,
             dtype: str = "float32") -> tuple[np.ndarray | None, int, str]:
    """The call's rules: x (array or spec) or n_elements, not empty. Returns (the array of a
    functional call or None, elements, dtype)."""
    from npusim.spec import is_spec, require_nd

    require_nd("tensor_copy", x=x)
    if x is not None and not is_spec(x):
        arr = np.ascontiguousarray(x)
        if arr.size < 1:
            raise ValueError(f"tensor_copy: x of shape {arr.shape} is empty; nothing to time")
        return arr, int(arr.size), str(arr.dtype)
    if x is not None:
        n_elements, dtype = math.prod(x.shape), x.dtype
        if n_elements < 1:  # the array run's message
            raise ValueError(f"tensor_copy: x of shape {x.shape} is empty; nothing to time")
    if n_elements is None:
        raise ValueError("tensor_copy needs x (array or spec) or n_elements")
    if isinstance(n_elements, bool) or not isinstance(n_elements, int | np.integer) \
            or n_elements < 1:
        raise ValueError(f"tensor_copy: n_elements={n_elements!r} must be an integer >= 1 "
                         "(an empty copy has nothing to time)")
    return None, int(n_elements), dtype


def calibration_prediction(row: Measurement) -> Prediction | None:
    """Rows F*: GM -> GM copy of n float32 elements on a 910B2."""
    from npusim.runner import simulate
    from npusim.validate import Prediction, soc_name_of

    if not row.id.startswith("F"):
        return None
    n = row.size("n")
    res = simulate("tensor_copy", soc_name_of(row), None, n_elements=n, dtype="float32",
                   check_races=False)
    gbps = 2 * n * 4 / (res.microseconds * 1e-6) / 1e12
    return Prediction(res.microseconds, {}, note=f"read+write {gbps:.3f} TB/s predicted")


def example_inputs(ns: argparse.Namespace, functional: bool,
                   rng: np.random.Generator) -> dict[str, Any]:
    """``npusim run tensor_copy``: row F1's copy (33554432 float32) unless --n-elements / --dtype
    say otherwise."""
    n = ns.n_elements or 33554432
    dtype = ns.dtype or "float32"
    if functional:
        return {"x": rng.standard_normal(n).astype(dtype)}
    return {"n_elements": n, "dtype": dtype}


def default_tiling_for(soc: SocDescriptor, **op_args: Any) -> CopyTiling:
    """Every core of the kind the copy runs on (a 310P's vector cores, not one core)."""
    return CopyTiling(cores=soc.core_counts()[copy_core_kind(soc)])


def validate(soc: SocDescriptor, **op_args: Any) -> None:
    operands(**op_args)


def check_output(res: Any, op_args: dict[str, Any]) -> str:
    """The CLI's --functional line: the copy read back from simulated GM equals x byte for
    byte (compared as unsigned bytes, so NaN payloads and signed zeros count)."""
    x = np.ascontiguousarray(op_args["x"])
    y = np.ascontiguousarray(res.outputs)
    same = x.shape == y.shape and np.array_equal(y.view(np.uint8), x.view(np.uint8))
    return f"output equals x byte for byte: {same}"


OPERATOR = Operator(
    name="tensor_copy",
    plan=plan,
    validate=validate,
    default_tiling=default_tiling_for,
    example_inputs=example_inputs,
    check_output=check_output,
    cli=CliSpec(
        "GM-to-GM copy (calibration rows F1-F2c)",
        {"--n-elements": "elements copied (default 33554432, row F1)",
         "--dtype": "dtype (default float32)"}),
    cann_op_type="TensorMove",
)
