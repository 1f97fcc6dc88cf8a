"""The SoC the torch_npu-named API simulates when a call passes no ``soc=``, and where its
outputs come from.

The SoC starts as the ``NPUSIM_SOC`` environment variable, else the package default
(``Ascend910B2``); :func:`set_soc` changes it (the drop-in mode's way of choosing the device).
The fidelity (:data:`FIDELITIES`) starts as ``NPUSIM_FIDELITY``, else ``program``: the output is
read from the functional run of the operator's tiled program; ``reference`` computes the kernel's
numerics model directly (the same bits where the replay tests check them, much faster, but not
the simulator's own output); :func:`set_fidelity` or a call's ``fidelity=`` choose it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from npusim.hw.schema import SocDescriptor

    #: a call's ``soc=``: a SoC name, a loaded descriptor, or None for the current SoC
    SocArg: TypeAlias = str | SocDescriptor | None

_current: str | None = None


def current_soc() -> str:
    """The SoC name used for ``soc=None``."""
    if _current is not None:
        return _current
    env = os.environ.get("NPUSIM_SOC")
    if env:
        return _checked(env, "NPUSIM_SOC")
    from npusim.runner import DEFAULT_SOC

    return DEFAULT_SOC


def _checked(name: str, arg: str) -> str:
    from npusim.hw.loader import list_socs

    known = list_socs()
    if name not in known:
        raise ValueError(f"{arg}: {name!r} is not a known SoC; must be one of {known}")
    return name


def set_soc(soc: str | None) -> str:
    """Make ``soc`` (a SoC name, or None for the environment / package default) the SoC of
    every later call without ``soc=``; returns the name now in effect."""
    global _current
    _current = None if soc is None else _checked(soc, "soc")
    return current_soc()


def resolve(soc: SocArg) -> str | SocDescriptor:
    """``soc`` when given (name or descriptor), else the current SoC name."""
    return current_soc() if soc is None else soc


FIDELITIES = ("program", "reference")
_fidelity: str | None = None


def _checked_fidelity(name: Any, arg: str) -> str:
    if name not in FIDELITIES:
        raise ValueError(f"{arg}: {name!r} is not a fidelity; must be one of {FIDELITIES}")
    return str(name)


def current_fidelity() -> str:
    """The fidelity used for ``fidelity=None``."""
    if _fidelity is not None:
        return _fidelity
    env = os.environ.get("NPUSIM_FIDELITY")
    return _checked_fidelity(env, "NPUSIM_FIDELITY") if env else "program"


def set_fidelity(fidelity: Any) -> str:
    """Make ``fidelity`` ("program", "reference", or None for the environment / default) the
    fidelity of every later call without ``fidelity=``; returns the one now in effect."""
    global _fidelity
    _fidelity = None if fidelity is None else _checked_fidelity(fidelity, "fidelity")
    return current_fidelity()


def resolve_fidelity(fidelity: Any) -> str:
    """``fidelity`` when given, else the current one."""
    return current_fidelity() if fidelity is None else _checked_fidelity(fidelity, "fidelity")
