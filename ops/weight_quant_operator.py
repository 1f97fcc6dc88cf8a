"""``weight_quant_batchmatmul`` as an :class:`~npusim.operator.Operator`: the CLI's call and
output check, the sweep adapter and the report's inner_precise comparison, beside the plan of
:mod:`npusim.ops.weight_quant_program`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.numerics import np_dtype
from npusim.operator import CliSpec, Operator
from npusim.ops.weight_quant_common import WqbmmProgramTiling
from npusim.ops.weight_quant_program import (
    checked_call,
    plan_weight_quant_batchmatmul,
    resolve_tilings,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import SimResult


def example_inputs(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run weight_quant_batchmatmul``: W4A16 decode by default (M=16, K=N=4096, int4,
    per-group 128, fp16) - the mission's central case."""
    from npusim.spec import spec

    m, k, n = ns.m or 16, ns.k or 4096, ns.n or 4096
    wdt = ns.weight_dtype or "int4"
    g = ns.group_size if ns.group_size is not None else (128 if wdt == "int4" else 0)
    xdt = ns.dtype or "float16"
    ip = ns.inner_precise or 0
    ngroups = math.ceil(k / g) if g else 1
    out = {"antiquant_group_size": g, "inner_precise": ip}
    if ns.kernel:
        out["kernel"] = ns.kernel
    if functional:
        x = rng.standard_normal((m, k)).astype(np.float32).astype(np_dtype(xdt))
        w = rng.integers(
            -8 if wdt == "int4" else -128, 8 if wdt == "int4" else 128, (k, n), dtype=np.int32
        )
        if wdt == "int4":
            from npusim.numerics import pack_int4

            w = pack_int4(w)
        else:
            w = w.astype(np.int8)
        scale = (rng.uniform(0.5, 1.5, (ngroups, n)) * 0.01).astype(np.float32)
        scale = scale.astype(np_dtype(xdt))
        return {"x": x, "weight": w, "antiquant_scale": scale if g else scale[0], **out}
    wshape = (k, n // 8) if wdt == "int4" else (k, n)
    return {
        "x": spec((m, k), xdt),
        "weight": spec(wshape, "int32" if wdt == "int4" else "int8"),
        "antiquant_scale": spec((ngroups, n) if g else (n,), xdt),
        **out,
    }


def check_output(res: Any, op_args: dict[str, Any]) -> str:
    """Compare the output with an independent float64 dequantise-then-matmul reference (the
    kernels' roundings differ from it, so the figure is an error size, not an equality)."""
    from npusim.ops.weight_quant_batchmatmul.args import normalize_args
    from npusim.ops.weight_quant_batchmatmul.numerics_common import expand_rows

    call = {k: v for k, v in op_args.items() if k not in ("kernel",)}
    a = normalize_args(**call, soc=res.soc)
    w = a.weight.astype(np.float64)
    scale = expand_rows(a.antiquant_scale.astype(np.float64), a.k, a.group_size)
    if a.antiquant_offset is not None:
        w = w + expand_rows(a.antiquant_offset.astype(np.float64), a.k, a.group_size)
    ref = a.x.astype(np.float64) @ (w * scale)
    got = np.asarray(res.outputs, dtype=np.float64).reshape(ref.shape)
    err = np.abs(got - ref)
    rel = float(err.max() / max(np.abs(ref).max(), 1e-30))
    return (f"output vs float64 dequantise-then-matmul reference ({res.kernel_name}): max abs "
            f"error {float(err.max()):.3g}, {rel:.2e} of max |reference|; finite: "
            f"{bool(np.isfinite(got).all())}")


def validate(soc: SocDescriptor, **op_args: Any) -> None:
    checked_call(soc, **op_args)


def default_tiling(soc: SocDescriptor, **op_args: Any) -> Any:
    """The selected kernel's tiling object as ``plan`` builds it for a call without one."""
    args, name, s, _ = checked_call(soc, **op_args)
    return resolve_tilings(soc, args, name, s)[1]


def tiling_help(soc: SocDescriptor) -> list[str]:
    """Per kernel, its tiling type's fields (each kernel has its own tiling object)."""
    import dataclasses

    from npusim.ops.weight_quant_batchmatmul import TILING_TYPES

    return [f"{kern}: {', '.join(f.name for f in dataclasses.fields(cls))}"
            for kern, cls in sorted(TILING_TYPES.items())]


def quantisation(op_args: dict[str, Any]) -> str:
    w = op_args["weight"]
    wdt = "int4" if str(getattr(w, "dtype", "")) == "int32" else "int8"
    g = op_args.get("antiquant_group_size", 0)
    mode = f"per-group {g}" if g else "per-channel"
    return f"W{wdt[3:]}A16 antiquant {mode}, inner_precise {op_args.get('inner_precise', 0)}"


def kernel_names() -> tuple[str, ...]:
    from npusim.ops.weight_quant_batchmatmul import KERNELS

    return tuple(KERNELS)


# --- sweep adapter ----------------------------------------------------------------------------
# Its legal tilings are not enumerated (their constraints live in each kernel's validator): a
# sweep simulates the CANN-like default tiling or the study's listed ``tilings``, across cases
# and options such as inner_precise / kernel. A listed tiling is a full WqbmmProgramTiling (the
# Custom / Msd / MsdSplitK program structure) or fields of the selected kernel's own tiling
# (``cube.base_k`` or a nested ``cube`` mapping for its cube block) replacing its default.

def _wq_case(case: dict[str, Any]) -> dict[str, Any]:
    from npusim.spec import spec

    m, k, n = int(case["m"]), int(case["k"]), int(case["n"])
    dt = case.get("dtype", "float16")
    wdt = case.get("weight_dtype", "int4")
    g = int(case.get("group_size", 128 if wdt == "int4" else 0))
    weight = spec((k, n // 8), "int32") if wdt == "int4" else spec((k, n), "int8")
    scale = spec((k // g, n), dt) if g else spec((n,), dt)
    args = {"x": spec((m, k), dt), "weight": weight, "antiquant_scale": scale,
            "antiquant_group_size": g, "inner_precise": int(case.get("inner_precise", 0))}
    if case.get("kernel"):
        args["kernel"] = case["kernel"]
    return args


def _wq_enumerate(soc: SocDescriptor, case: dict[str, Any]) -> Iterator[Any]:
    yield {"tiling": "default"}


def _wq_bound_us(soc: SocDescriptor, case: dict[str, Any], t: Any) -> float:
    """Lower bound: the call's compulsory HBM bytes (every input once, y once) at HBM speed."""
    from npusim.ops.weight_quant_common import compulsory_hbm_bytes

    args, _, _, _ = checked_call(soc, **_wq_case(case))
    nbytes = compulsory_hbm_bytes(args)
    hbm_bytes_per_cycle = soc.bytes_per_cycle(soc.memory.hbm.bandwidth_gb_per_s)
    return nbytes / hbm_bytes_per_cycle / soc.aicore_freq_mhz


def _wq_tiling(soc: SocDescriptor, case: dict[str, Any], d: dict[str, Any]) -> Any:
    """The tiling object a listed tiling ``d`` stands for (None: the default), validated for
    the case's selected kernel the way simulate() validates it."""
    import dataclasses

    from npusim.tiling_overrides import apply_overrides

    if d == {"tiling": "default"}:
        return None
    required = {f.name for f in dataclasses.fields(WqbmmProgramTiling)
                if f.default is dataclasses.MISSING}
    args, name, s, _ = checked_call(soc, **_wq_case(case))
    if required <= set(d):
        t: Any = WqbmmProgramTiling(**d)
    else:  # the selected kernel's default tiling (as default_tiling gives it), fields replaced
        t = apply_overrides(resolve_tilings(soc, args, name, s)[1], d)
    resolve_tilings(soc, args, name, s, t)  # raises naming the field and rule
    return t


def _wq_tiling_from_dict(soc: SocDescriptor, case: dict[str, Any], d: dict[str, Any]) -> Any:
    _wq_tiling(soc, case, d)
    return d


def _wq_simulate(soc_entry: dict[str, Any], case: dict[str, Any],
                 tiling: dict[str, Any]) -> SimResult:
    import npusim
    from npusim.runner import resolve_soc

    soc = resolve_soc(soc_entry["name"], soc_entry.get("overrides", ()))
    return npusim.simulate("weight_quant_batchmatmul", soc, _wq_tiling(soc, case, tiling),
                           check_races=False, **_wq_case(case))


SWEEP = SimpleNamespace(enumerate_tilings=_wq_enumerate, bound_us=_wq_bound_us,
                        tiling_from_dict=_wq_tiling_from_dict, simulate_case=_wq_simulate)


def compare_modes(desc: SocDescriptor, case: dict[str, Any], modes: tuple[int, int],
                  seed: int) -> dict[str, Any]:
    """Both inner_precise modes' outputs on the same seeded inputs (the API, so the selected
    kernel's bits): the count of differing elements and the largest absolute difference."""
    from npusim.numerics import pack_int4
    from npusim.torch_npu import npu_weight_quant_batchmatmul

    m, k, n = int(case["m"]), int(case["k"]), int(case["n"])
    dt = np_dtype(str(case.get("dtype", "float16")))
    wdt = case.get("weight_dtype", "int4")
    g = int(case.get("group_size", 128 if wdt == "int4" else 0))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32).astype(dt)
    if wdt == "int4":
        w = pack_int4(rng.integers(-8, 8, (k, n), dtype=np.int32))
    else:
        w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    shape = (k // g, n) if g else (n,)
    scale = (rng.uniform(0.5, 1.5, shape) * 0.01).astype(np.float32).astype(dt)
    outs = []
    for ip in modes:
        kw: dict[str, Any] = {"antiquant_group_size": g, "inner_precise": int(ip), "soc": desc}
        if case.get("kernel"):
            kw["kernel"] = case["kernel"]
        outs.append(np.asarray(npu_weight_quant_batchmatmul(x, w, scale, **kw), np.float64))
    diff = np.abs(outs[0] - outs[1])
    return {"differing": int((outs[0] != outs[1]).sum()), "elements": int(diff.size),
            "max_abs_diff": float(diff.max()) if diff.size else 0.0}


OPERATOR = Operator(
    name="weight_quant_batchmatmul",
    plan=plan_weight_quant_batchmatmul,
    validate=validate,
    default_tiling=default_tiling,
    example_inputs=example_inputs,
    cli=CliSpec(
        "npu_weight_quant_batchmatmul: fp16 / bf16 x int8 / int4 weight with antiquant scale",
        {"--m": "rows of x (default 16)", "--k": "reduction size (default 4096)",
         "--n": "output channels (default 4096)",
         "--dtype": "dtype of x, scale and y: float16 | bfloat16 (default float16)",
         "--weight-dtype": "int4 | int8 (default int4)",
         "--group-size": "antiquant group size (default 128 for int4, 0 = per-channel for int8)",
         "--inner-precise": "0 | 1 (default 0)",
         "--kernel": "force one of the capable kernels (default: CANN's choice)",
         "--compare-inner-precise": "run inner_precise 0 and 1, compare time and outputs"},
        kernels=kernel_names,
        tiling_note="--tiling FIELD=VALUE overrides the selected (or --kernel) kernel's "
                    "default tiling, cube.FIELD=VALUE its cube block; validated before the run"),
    cann_op_type="WeightQuantBatchMatmulV2",
    quantisation=quantisation,
    check_output=check_output,
    tiling_help=tiling_help,
    sweep=SWEEP,
    compare_modes=compare_modes,
)
