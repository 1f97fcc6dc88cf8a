"""The operator protocol: the one object each operator module exports as ``OPERATOR``.

The runner, the CLI, sweeps, reports and the size guard reach an operator only through this
object, so none of them holds operator-specific code: adding an operator is one module that
exports an :class:`Operator` plus one line in :data:`npusim.operators.OPERATOR_MODULES`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from npusim.fast_forward import FastForwardResult
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan, SimResult

#: ``plan(soc, tiling=None, **op_args) -> Plan``: validate, pick the kernel, build its program.
PlanFn = Callable[..., "Plan"]
#: ``example_inputs(ns, functional, rng) -> op_args``: the CLI's call from its flags.
ExampleInputsFn = Callable[[argparse.Namespace, bool, np.random.Generator], dict[str, Any]]


@dataclass(frozen=True)
class CliSpec:
    """What ``npusim run OP`` reads: per flag its meaning and default for this operator."""

    what: str
    flags: Mapping[str, str]  # flag -> "meaning (default ...)"
    kernels: Callable[[], tuple[str, ...]] | tuple[str, ...] = ()  # --kernel choices
    tiling_note: str = ""
    #: False: the tiling is not a single dataclass the CLI can override (--tiling refused)
    tiling_overrides: bool = True

    def kernel_names(self) -> tuple[str, ...]:
        return self.kernels() if callable(self.kernels) else self.kernels


@runtime_checkable
class SweepAdapter(Protocol):
    """How ``npusim sweep`` enumerates, bounds and simulates one operator's points."""

    def enumerate_tilings(self, soc: SocDescriptor, case: dict[str, Any]) -> Iterator[Any]: ...

    def bound_us(self, soc: SocDescriptor, case: dict[str, Any], t: Any) -> float: ...

    def tiling_from_dict(self, soc: SocDescriptor, case: dict[str, Any],
                         d: dict[str, Any]) -> Any: ...

    def simulate_case(self, soc_entry: dict[str, Any], case: dict[str, Any],
                      tiling: dict[str, Any]) -> SimResult | FastForwardResult: ...


def no_dict_tilings(soc: SocDescriptor, **op_args: Any) -> bool:
    """``Operator.tiling_dicts`` of an operator whose ``plan`` takes tiling objects only."""
    return False


def reads_dict_tilings(soc: SocDescriptor, **op_args: Any) -> bool:
    """``Operator.tiling_dicts`` of an operator whose ``plan`` reads every dict tiling itself."""
    return True


def _no_quantisation(op_args: dict[str, Any]) -> str:
    return "no quantisation"


def _default_peak_dtype(case: dict[str, Any]) -> str:
    return str(case.get("dtype", "float16"))


@dataclass(frozen=True)
class Operator:
    """One operator's entry points.

    ``validate(soc, **op_args)`` applies the call's documented rules without building anything
    (the same checks, the same messages, as ``plan``); ``default_tiling(soc, **op_args)`` is the
    tiling ``plan`` picks when given none (None for an operator without a tiling object).
    """

    name: str
    plan: PlanFn
    validate: Callable[..., None]
    default_tiling: Callable[..., Any]
    example_inputs: ExampleInputsFn
    cli: CliSpec
    #: the CANN operator type a launch of this operator is (msprof's ``OP Type``; our mapping)
    cann_op_type: str = ""
    #: the run header's quantisation words, from the call's arguments
    quantisation: Callable[[dict[str, Any]], str] = _no_quantisation
    #: ``check_output(result, op_args) -> str``: the CLI's --functional comparison line
    check_output: Callable[[SimResult, dict[str, Any]], str] | None = None
    #: ``tiling_help(soc) -> lines`` for --help when the default call's tiling object does not
    #: describe the tilings (None: its fields and values, from ``default_tiling`` of the CLI call)
    tiling_help: Callable[[SocDescriptor], list[str]] | None = None
    sweep: SweepAdapter | None = None
    #: a sweep case's dtype whose cube peak is the report's compute roof
    peak_dtype: Callable[[dict[str, Any]], str] = _default_peak_dtype
    #: ``compare_modes(desc, case, modes) -> dict``: outputs of two inner_precise modes on the
    #: same seeded inputs, for the report (None: the operator has no such modes)
    compare_modes: Callable[..., dict[str, Any]] | None = None
    #: ``tiling_dicts(soc, **op_args) -> bool``: ``plan`` reads a dict tiling of this call
    #: itself (matmul's Ascend C names, ``tiling_from_dict``: a whole dict is a whole tiling);
    #: when False, ``simulate`` (``runner.plan_tiling``) applies a dict's fields to the call's
    #: ``default_tiling`` and ``plan`` gets that object. A predicate on the call, since one
    #: operator's arms may differ (quant_matmul: only its W8A8 / A4W4 cube arm reads dicts)
    tiling_dicts: Callable[..., bool] = no_dict_tilings
