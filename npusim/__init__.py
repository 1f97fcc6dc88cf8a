"""npusim: a cycle-approximate, bit-exact simulator of Huawei Ascend NPU AI Cores.

Hardware (``npusim.hw``), operators (``npusim.ops``) and tilings are three separate inputs; the
engine (``npusim.engine``) runs the tiled programs that operators generate for a chosen SoC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from npusim._version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from npusim.hw.schema import SocDescriptor
    from npusim.runner import SimResult

__all__ = ["__version__", "simulate"]


def simulate(op: str, soc: str | Path | SocDescriptor | None = None, tiling: Any = None,
             **op_args: Any) -> SimResult:
    """Run operator ``op`` as a tiled program on ``soc``; see :func:`npusim.runner.simulate`.

    ``tiling``: None (the operator's default heuristic), a tiling object or a dict of some of
    its fields (snake_case, ``cube.base_k`` for a nested one, or matmul's Ascend C names),
    applied to this call's default tiling. For matmul, e.g. "my tile sizes, your core grid"::

        from npusim.ops.matmul_tiling import tiling_for_tiles
        t = tiling_for_tiles(m, k, n, "float16", "float16", load_soc("Ascend910B2"),
                             base_m=128, base_n=256, base_k=64, step_n=2)
        simulate("matmul", "Ascend910B2", tiling=t, a=a, b=b)

    or a full ``MatmulTiling(...)`` / ``{"baseM": 128, "stepKa": 4, ...}`` (a dict with every
    required field is a whole tiling, the rest at their class defaults); ``in_bits`` /
    ``out_bits`` left out are derived from the operand dtypes; ``single_core_k < k`` with
    ``k_dim = 1`` is single-core split-K (fp32 / int32 out). Tilings are validated (a
    ValueError names the field and the rule)."""
    from npusim.runner import simulate as _simulate

    return _simulate(op, soc=soc, tiling=tiling, **op_args)
