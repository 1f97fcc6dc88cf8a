"""Several operators launched back to back on one stream, the L2 carrying tensors between them
(issue 13 item 4: a pre-pass program such as "ND -> NZ on the AIVs, then the matmul").

Declared model: the launches run one after another (each pays its own launch cost and ends
before the next starts, as kernels on one stream do); GM is one address space in which every
tensor of the sequence has one address, so a tensor an earlier step wrote and a later step
reads (a *binding*) is the same bytes, and the later step hits the L2 lines the earlier one left
(dirty or clean). The first step starts from a cold L2. Each step is simulated with the
reference engine, whose memory system hands its final L2 to the next step. Timing only
(:class:`npusim.spec.TensorSpec` inputs); the total is the sum of the steps' cycles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from npusim.engine.program import GMTensor, Kernel

if TYPE_CHECKING:
    from pathlib import Path

    from npusim.engine.memory import TrafficStats
    from npusim.hw.schema import SocDescriptor

_PAD = "__seq_"  # prefix of the placeholder tensors that keep the shared address map


@dataclass(frozen=True)
class Step:
    """One launch: operator ``op`` with ``args``; ``binds`` maps a GM tensor of this step to
    ``(index of an earlier step, that step's tensor)`` holding the same bytes."""

    op: str
    args: Mapping[str, Any]
    binds: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    tiling: Any = None


@dataclass(frozen=True)
class StepResult:
    op: str
    kernel_name: str
    cycles: int
    traffic: TrafficStats


@dataclass(frozen=True)
class SequenceResult:
    steps: tuple[StepResult, ...]
    freq_mhz: int

    @property
    def cycles(self) -> int:
        return sum(s.cycles for s in self.steps)

    @property
    def us(self) -> float:
        return self.cycles / self.freq_mhz


def _shared_layout(kernels: Sequence[Kernel], steps: Sequence[Step]) -> list[dict[str, GMTensor]]:
    """Each kernel's GM map rewritten so that the memory system, which lays the tensors out one
    after another in map order, gives every tensor of the sequence one address: the sequence's
    tensors in order of first use, each kernel listing its own where it uses them and a
    same-sized placeholder elsewhere."""
    order: list[tuple[int, str]] = []  # global tensors as (step, name) of first use
    size: dict[tuple[int, str], int] = {}
    alias: list[dict[str, tuple[int, str]]] = []
    for i, (kern, step) in enumerate(zip(kernels, steps, strict=True)):
        mine: dict[str, tuple[int, str]] = {}
        for name, t in kern.gm.items():
            if name.startswith(_PAD):
                raise ValueError(f"step {i} ({step.op}): GM tensor {name!r} uses the reserved "
                                 f"prefix {_PAD!r}")
            if name in step.binds:
                j, other = step.binds[name]
                if not 0 <= j < i:
                    raise ValueError(f"step {i} ({step.op}): binds[{name!r}] = ({j}, {other!r}):"
                                     " the step index must name an earlier step")
                if other not in kernels[j].gm:
                    raise ValueError(f"step {i} ({step.op}): binds[{name!r}]: step {j} "
                                     f"({steps[j].op}) has no GM tensor {other!r}; it has "
                                     f"{', '.join(kernels[j].gm)}")
                key = alias[j][other]
                if size[key] != t.nbytes:
                    raise ValueError(f"step {i} ({step.op}): binds[{name!r}]: {t.nbytes} B, but "
                                     f"step {j}'s {other!r} has {size[key]} B; a binding is the "
                                     "same bytes")
                mine[name] = key
            else:
                key = (i, name)
                order.append(key)
                size[key] = t.nbytes
                mine[name] = key
        unknown = set(step.binds) - set(kern.gm)
        if unknown:
            raise ValueError(f"step {i} ({step.op}): binds names {sorted(unknown)}, not GM "
                             f"tensors of this step ({', '.join(kern.gm)})")
        alias.append(mine)
    maps = []
    for i, kern in enumerate(kernels):
        by_key = {key: name for name, key in alias[i].items()}
        last = max(order.index(k) for k in by_key)
        gm: dict[str, GMTensor] = {}
        for pos, key in enumerate(order[:last + 1]):
            if key in by_key:
                name = by_key[key]
                gm[name] = kern.gm[name]
            else:
                pad = f"{_PAD}{pos}"
                gm[pad] = GMTensor(pad, (size[key],), "int8", role="workspace")
        maps.append(gm)
    return maps


def simulate_sequence(steps: Sequence[Step],
                      soc: str | Path | SocDescriptor | None = None, *,
                      overrides: Sequence[str] = ()) -> SequenceResult:
    """Plan every step, give the sequence one GM address map and run the launches back to back,
    each starting from the L2 the previous one left (the first from a cold L2)."""
    from npusim.engine.sim import Engine
    from npusim.operators import get_operator
    from npusim.runner import plan_tiling, resolve_soc

    if not steps:
        raise ValueError("steps: at least one launch is needed")
    desc = resolve_soc(soc, overrides)
    plans = [get_operator(s.op).plan(desc, tiling=plan_tiling(s.op, desc, s.tiling, s.args),
                                     **dict(s.args)) for s in steps]
    for i, p in enumerate(plans):
        if p.functional:
            raise ValueError(f"step {i} ({steps[i].op}): a launch sequence is timing only; pass "
                             "TensorSpec inputs")
    kernels = [p.kernel for p in plans]
    maps = _shared_layout(kernels, steps)
    l2 = None
    out = []
    for step, plan, kern, gm in zip(steps, plans, kernels, maps, strict=True):
        eng = Engine(replace(kern, gm=gm), desc, check_races=False, l2_state=l2)
        run = eng.run()
        l2 = eng.mem.l2
        out.append(StepResult(step.op, plan.kernel_name, run.cycles, run.traffic))
    return SequenceResult(tuple(out), desc.aicore_freq_mhz)
