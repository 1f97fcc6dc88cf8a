"""Where a torch_npu-named call's output comes from (the fidelity, :mod:`npusim.torch_npu._state`).

``program`` (the default): the output buffers of ``simulate(op, ...)``'s functional run of the
operator's tiled program, as they are. ``reference``: the operator's reference / numerics model,
computed directly (opt-in). A path without a program raises :func:`no_program` at ``program``
fidelity instead of falling back; a program that is too large, or outside what its builder tiles,
says so and names the switch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from npusim.torch_npu._state import SocArg

SWITCH = "fidelity='reference' (or set_fidelity('reference'), NPUSIM_FIDELITY=reference)"


def use_program(fidelity: Any) -> bool:
    """True when ``fidelity`` (None = the current one) is ``program``."""
    from npusim.torch_npu._state import resolve_fidelity

    return resolve_fidelity(fidelity) == "program"


def program_outputs(api: str, op: str, soc: SocArg, **op_args: Any) -> Any:
    """The outputs of the functional run of ``op``'s tiled program on ``soc`` (validate the call
    with the operator's own rules first: an error raised here is the program's). The race
    checker (a read before its producer's flag is a program bug; about half a call's CPU time)
    is off for API calls: a race-free program computes the same values with or without it, and
    the replay tests run every kernel's program with it on. ``NPUSIM_API_RACE_CHECKS=1`` turns
    it on for API calls too (a racy program then raises instead of returning what it read)."""
    import os

    from npusim.runner import simulate
    from npusim.size_guard import SizeLimitError

    races = os.environ.get("NPUSIM_API_RACE_CHECKS", "0") not in ("", "0")
    try:
        return simulate(op, soc, check_races=races, **op_args).outputs
    except SizeLimitError as exc:
        raise SizeLimitError(f"{exc}; {SWITCH} computes the reference model instead of running "
                             "the program") from exc
    except NotImplementedError as exc:
        raise NotImplementedError(f"{api}: the {op} program: {exc}; {SWITCH} computes the "
                                  "reference model instead") from exc


def no_program(api: str, path: str) -> NotImplementedError:
    """The error of a path that has no tiled program at the default ``program`` fidelity."""
    return NotImplementedError(
        f"{api}: {path} has no tiled program yet, so the default fidelity 'program' cannot "
        f"produce its output from the simulator; {SWITCH} computes its reference model")
