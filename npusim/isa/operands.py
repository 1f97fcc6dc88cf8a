"""Instruction operands: windows of a buffer (:class:`Region`) and the one dtype-size table.

Every buffer dtype the simulator knows is in :data:`ITEMSIZE`; the engine, the program builder
and the functional buffers all size regions through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from npusim.hw.dtypes import DTYPE_BITS

BUFFERS = ("GM", "L1", "L0A", "L0B", "L0C", "UB", "BT", "FB")

#: bytes per element of each buffer dtype (int4 packs two elements per byte), from the package's
#: one size table (``npusim.hw.dtypes.DTYPE_BITS``; hfloat32 is a cube mode, not a buffer dtype)
ITEMSIZE: dict[str, float] = {
    name: bits / 8 if bits < 8 else bits // 8
    for name, bits in DTYPE_BITS.items() if name != "hfloat32"
}


def element_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype`` (0.5 for int4)."""
    size = ITEMSIZE.get(dtype)
    if size is None:
        raise ValueError(f"dtype {dtype!r} is not a buffer dtype; use one of {sorted(ITEMSIZE)}")
    return size


def itemsize(dtype: str) -> int:
    """Whole bytes per element (int4 counts as 1: the smallest addressable unit)."""
    return max(1, int(element_bytes(dtype)))


def nbytes_of(shape: tuple[int, ...], dtype: str) -> int:
    """Payload size in bytes of ``shape`` elements of ``dtype`` (int4 packs two per byte)."""
    try:
        return _NBYTES[(shape, dtype)]
    except (KeyError, TypeError):  # not seen yet, or an unhashable shape
        pass
    count = math.prod(shape)
    nb = (count + 1) // 2 if dtype == "int4" else count * itemsize(dtype)
    if type(shape) is tuple and len(_NBYTES) < 1 << 16:
        _NBYTES[(shape, dtype)] = nb
    return nb


#: nbytes_of memo (program builders size the same few shapes hundreds of thousands of times)
_NBYTES: dict[tuple[tuple[int, ...], str], int] = {}


@dataclass(frozen=True, slots=True)
class Region:
    """A window of a buffer: ``shape`` elements of ``dtype`` starting at byte ``offset``.

    ``row_stride_bytes`` (2-D windows only) is the distance between rows; ``None`` = contiguous.
    GM regions name their ``tensor``; offsets are then relative to that tensor.
    """

    buffer: str
    offset: int
    shape: tuple[int, ...]
    dtype: str
    tensor: str | None = None
    row_stride_bytes: int | None = None
    nbytes: int = field(init=False, repr=False, compare=False)  # payload bytes, derived

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", nbytes_of(self.shape, self.dtype))

    @property
    def itemsize(self) -> int:
        return itemsize(self.dtype)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.row_stride_bytes is not None else 1

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.rows if self.rows else 0

    @property
    def stride(self) -> int:
        return self.row_stride_bytes if self.row_stride_bytes is not None else self.nbytes

    @property
    def end(self) -> int:
        """One past the last byte of the window's span."""
        return self.offset + (self.rows - 1) * self.stride + self.row_bytes

    def sub(self, offset_bytes: int, shape: tuple[int, ...], dtype: str | None = None) -> Region:
        """A contiguous sub-window of a contiguous region."""
        return Region(
            self.buffer, self.offset + offset_bytes, shape, dtype or self.dtype, self.tensor
        )

    def as_dtype(self, dtype: str, shape: tuple[int, ...] | None = None) -> Region:
        """The same bytes read as ``dtype`` (``shape`` defaults to the same element count)."""
        return Region(self.buffer, self.offset, shape or self.shape, dtype, self.tensor,
                      self.row_stride_bytes)
