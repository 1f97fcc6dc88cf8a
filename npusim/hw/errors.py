"""The one exception type of the descriptor package."""

from __future__ import annotations


class DescriptorError(ValueError):
    """A SoC descriptor (file, override or patch) is malformed or asks for something absent.

    The message names the file (or the override), the dotted field path and the problem.
    """
