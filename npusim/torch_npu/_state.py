"""The SoC the torch_npu-named API simulates when a call passes no ``soc=``.

Starts as the ``NPUSIM_SOC`` environment variable, else the package default (``Ascend910B2``);
:func:`set_soc` changes it (the drop-in mode's way of choosing the device).
"""

from __future__ import annotations

import os
from typing import Any

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


def set_soc(soc: Any) -> str:
    """Make ``soc`` (a SoC name, or None for the environment / package default) the SoC of
    every later call without ``soc=``; returns the name now in effect."""
    global _current
    _current = None if soc is None else _checked(soc, "soc")
    return current_soc()


def resolve(soc: Any) -> Any:
    """``soc`` when given (name or descriptor), else the current SoC name."""
    return current_soc() if soc is None else soc
