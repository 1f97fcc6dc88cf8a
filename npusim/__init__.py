"""npusim: a cycle-approximate, bit-exact simulator of Huawei Ascend NPU AI Cores.

Hardware (``npusim.hw``), operators (``npusim.ops``) and tilings are three separate inputs; the
engine (``npusim.engine``) runs the tiled programs that operators generate for a chosen SoC.
"""

from npusim._version import __version__

__all__ = ["__version__", "simulate"]


def simulate(op: str, soc: str | None = None, tiling=None, **op_args):
    """Run operator ``op`` as a tiled program on ``soc``; see :func:`npusim.runner.simulate`."""
    from npusim.runner import simulate as _simulate

    return _simulate(op, soc=soc, tiling=tiling, **op_args)
