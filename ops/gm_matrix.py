"""Matrices in GM as the cube programs address them: a row-major or FRACTAL_NZ 2-D matrix in a
GM tensor (:class:`GmMatrix`) and the stored-layout window of a tile of it (the Region an MTE2
load reads)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from npusim.isa.operands import ITEMSIZE, Region


@dataclass(frozen=True)
class GmMatrix:
    """A 2-D matrix in a GM tensor: ``rows x cols`` of ``dtype``, row-major with ``row_bytes``
    between rows, starting at byte ``offset``. ``transposed`` means the logical (k, n) operand is
    stored as (n, k) (a transposed view of a contiguous matrix). ``nz_rows`` > 0: the stored
    matrix is FRACTAL_NZ (torch_npu's ``npu_format_cast(..., 29)`` storage: C0-column strips of
    ``nz_rows`` (rows aligned to 16) x ``nz_c0`` elements) and ``row_bytes`` is unused."""

    tensor: str
    dtype: str
    row_bytes: int
    offset: int = 0
    transposed: bool = False
    nz_rows: int = 0
    nz_c0: int = 0

    def window(self, r0: int, rows: int, c0: int, cols: int) -> Region:
        """Stored-layout window (row r0.., column c0..); an NZ matrix's window is one run of
        ``rows x nz_c0`` elements per C0-column strip it touches (``c0`` on a strip boundary)."""
        isz = ITEMSIZE[self.dtype]
        if self.nz_rows:
            return nz_window(self, r0, rows, c0, cols)
        off = self.offset + r0 * self.row_bytes + math.ceil(c0 * isz)
        return Region("GM", off, (rows, cols), self.dtype, self.tensor, self.row_bytes)


def nz_window(mat: GmMatrix, r0: int, rows: int, c0: int, cols: int) -> Region:
    """The GM runs of an NZ matrix's window: (strips, rows x C0), strips nz_rows x C0 apart."""
    isz, c = ITEMSIZE[mat.dtype], mat.nz_c0
    if c0 % c:
        raise ValueError(f"{mat.tensor}: an FRACTAL_NZ window must start on a {c}-element column "
                         f"strip, got column {c0} (a tiling base / core block not aligned to C0)")
    strips = math.ceil(cols / c)
    off = mat.offset + math.ceil(((c0 // c) * mat.nz_rows + r0) * c * isz)
    return Region("GM", off, (strips, rows * c), mat.dtype, mat.tensor,
                  math.ceil(mat.nz_rows * c * isz))
