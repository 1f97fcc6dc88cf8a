"""``npusim.simulate``: plan an operator's tiled program, run it on the engine, package the result.

Each operator module exports an :class:`npusim.operator.Operator` whose ``plan(soc, tiling=None,
**op_args)`` returns a :class:`Plan`; this module knows no operator by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from npusim.engine.program import Kernel
from npusim.engine.sim import RunResult, run_kernel
from npusim.hw.schema import SocDescriptor

DEFAULT_SOC = "Ascend910B2"

@dataclass
class Plan:
    """What an operator hands the runner: the kernel, its tiling, and how to finish outputs."""

    kernel: Kernel
    kernel_name: str
    tiling: Any
    functional: bool
    finish: Callable[[dict[str, np.ndarray]], Any] | None = None
    notes: list[str] = field(default_factory=list)
    host_us: float = 0.0


@dataclass
class SimResult:
    """The result of :func:`simulate`."""

    op: str
    soc: SocDescriptor
    kernel_name: str
    tiling: Any
    run: RunResult
    outputs: Any
    notes: list[str]

    @property
    def cycles(self) -> int:
        return self.run.cycles

    @property
    def microseconds(self) -> float:
        return self.run.microseconds

    def pipe_busy(self) -> dict[tuple[str, str], int]:
        """Busy cycles per (core name, pipe)."""
        cores = self.run.kernel.cores
        return {(cores[c].name, p): v for (c, p), v in sorted(self.run.pipe_busy().items())}

    def core_busy(self) -> dict[str, int]:
        """Cycles from launch to each core's last instruction."""
        from npusim.report.summary import core_end_cycles

        cores = self.run.kernel.cores
        return {cores[c].name: v for c, v in sorted(core_end_cycles(self.run).items())}

    @property
    def traffic(self) -> dict[str, int]:
        return self.run.traffic.as_dict()

    def summary(self) -> dict[str, Any]:
        from npusim.report.summary import summarize

        s = {"op": self.op, "selected_kernel": self.kernel_name}
        s.update(summarize(self.run))
        s["tiling"] = _tiling_str(self.tiling)
        for i, note in enumerate(self.notes):
            s[f"note_{i}"] = note
        return s

    def write_trace(self, path: str | Path) -> Path:
        from npusim.report.trace import write_trace

        return write_trace(self.run, path, {"op": self.op, "selected_kernel": self.kernel_name,
                                            "tiling": _tiling_str(self.tiling),
                                            "notes": self.notes})

    def write_csv(self, path: str | Path) -> Path:
        from npusim.report.summary import write_pipe_csv

        return write_pipe_csv(self.run, path)


def _tiling_str(tiling: Any) -> str:
    if tiling is None:
        return ""
    if hasattr(tiling, "__dataclass_fields__"):
        return ", ".join(f"{k}={getattr(tiling, k)}" for k in tiling.__dataclass_fields__)
    return str(tiling)


def resolve_soc(soc: str | Path | SocDescriptor | None = None, overrides: Sequence[str] = (),
                patch: Any = None) -> SocDescriptor:
    """A descriptor object from a name, a path or an already loaded descriptor."""
    if soc is not None and not isinstance(soc, str | Path):
        if overrides or patch:
            raise ValueError("soc: overrides/patch need a SoC name or file, not a loaded object")
        return soc
    from npusim.hw import load_soc

    return load_soc(str(soc or DEFAULT_SOC), overrides=overrides, patch=patch)


def tiling_from_fields(op: str, desc: SocDescriptor, fields: Mapping[str, Any],
                       op_args: dict[str, Any]) -> Any:
    """``simulate(..., tiling={"base_m": 128, "cube.base_k": 64})``: the operator's default
    tiling for this call with those fields replaced (what ``npusim run --tiling`` does); an
    unknown field is a ValueError naming it and the fields there are. The plan validates the
    result like any other tiling."""
    from npusim.operators import get_operator
    from npusim.tiling_overrides import apply_overrides

    if any(not isinstance(k, str) for k in fields):
        raise TypeError(f"{op}: tiling: field names must be strings, got {list(fields)!r}")
    default = get_operator(op).default_tiling(desc, **op_args)
    try:
        return apply_overrides(default, dict(fields))
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{op}: tiling={dict(fields)!r}: {exc}") from None


def plan_tiling(op: str, desc: SocDescriptor, tiling: Any, op_args: Mapping[str, Any]) -> Any:
    """The tiling ``op``'s ``plan`` is given for ``tiling`` (what ``simulate`` and launch
    sequences plan with): a dict of fields becomes the call's default tiling with those fields
    replaced (:func:`tiling_from_fields`) unless the operator reads this call's dicts itself
    (``Operator.tiling_dicts``); anything else as given. An empty dict is refused."""
    from npusim.operators import get_operator

    if not isinstance(tiling, Mapping):
        return tiling
    if not tiling:
        raise ValueError(f"{op}: tiling={{}}: no fields given (None is the default tiling)")
    if get_operator(op).tiling_dicts(desc, **op_args):
        return tiling
    return tiling_from_fields(op, desc, tiling, dict(op_args))


def simulate(op: str, soc: str | Path | SocDescriptor | None = None, tiling: Any = None, *,
             overrides: Sequence[str] = (), patch: Any = None, check_races: bool | None = None,
             l2_start: str | None = None, max_instructions: int | None = None,
             engine: str | None = None, **op_args: Any) -> SimResult:
    """Run ``op`` as a tiled program on ``soc`` (name, file or descriptor; default Ascend910B2).

    Inputs may be arrays (functional run: outputs are the NPU's bits) or :class:`TensorSpec`
    (timing-only run: outputs are None). ``tiling``: None (the operator's default), the
    operator's tiling object, or a mapping of some of its fields (``{"base_m": 128}``, nested
    ``"cube.base_k"``) applied to the default tiling of this call, as ``npusim run --tiling``.
    ``l2_start``: "cold" (default: a layer inside a model)
    or "repeat" (the steady state of a benchmark loop of this kernel); see
    :data:`npusim.engine.sim.L2_START_MODES`. ``check_races``: check that every read follows its
    producer's flag (a program bug raises :class:`npusim.engine.errors.RaceError`); None (default)
    = on in functional runs, off in timing-only runs, where a race cannot change a cycle and the
    check costs about as much as the simulation. ``max_instructions`` (default
    $NPUSIM_MAX_INSTRUCTIONS, else 2,000,000): a run that needs more is refused with its estimate
    (:mod:`npusim.size_guard`). ``engine``: "fast" / "reference" / "jit" for this call and the
    runs its plan makes (default: :func:`npusim.engine.fast.selected_engine`, normally "fast";
    the same results whichever). Returns a :class:`SimResult`.
    """
    from npusim.engine.fast import default_engine

    # the engine (validated by default_engine) reaches the runs the plan makes too
    with default_engine(engine) if engine is not None else nullcontext():
        return _simulate(op, soc, tiling, overrides, patch, check_races, l2_start,
                         max_instructions, op_args)


def _simulate(op: str, soc: str | Path | SocDescriptor | None, tiling: Any,
              overrides: Sequence[str], patch: Any, check_races: bool | None,
              l2_start: str | None, max_instructions: int | None,
              op_args: dict[str, Any]) -> SimResult:
    """:func:`simulate` under the engine in force."""
    from npusim import size_guard
    from npusim.operators import get_operator

    limit = size_guard.instruction_limit(max_instructions)
    desc = resolve_soc(soc, overrides, patch)
    operator = get_operator(op)
    tiling = plan_tiling(op, desc, tiling, op_args)
    size_guard.check_before_plan(op, desc, op_args, limit, tiling=tiling)
    with size_guard.build_budget(op, limit):
        plan: Plan = operator.plan(desc, tiling=tiling, **op_args)
    size_guard.check_after_plan(op, plan.kernel, limit)
    races = plan.functional if check_races is None else bool(check_races)
    try:
        run = run_kernel(plan.kernel, desc, functional=plan.functional, check_races=races,
                         l2_start=l2_start)
    except OverflowError as exc:  # e.g. --set memory.hbm.bandwidth_gb_per_s=1e-300
        applied = "; ".join(getattr(desc, "overrides_applied", None) or []) or "none"
        raise ValueError(
            f"{op}: a time of this run does not fit a machine integer ({exc}): a number of "
            f"the descriptor {desc.name} is far outside any hardware's range (a bandwidth or "
            f"rate near 0?); overrides applied: {applied}") from None
    outputs = None
    if plan.functional:
        outputs = plan.finish(run.outputs) if plan.finish else run.outputs
    return SimResult(op, desc, plan.kernel_name, plan.tiling, run, outputs, plan.notes)
