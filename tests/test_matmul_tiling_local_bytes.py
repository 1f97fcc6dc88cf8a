"""cube_local_bytes, the sizes the matmul tiling legality rule checks, are the bytes the cube
kernel's CubeEmitter allocates (one statement of the cube's buffers, cube_emitter_layout), and
the two rows it sizes as declared instead stay so."""

from __future__ import annotations

import dataclasses

import pytest

import npusim
from npusim.ops.matmul_tiling import cube_local_bytes
from npusim.runner import resolve_soc
from npusim.spec import spec

_MM = {"a": spec((64, 128), "float16"), "b": spec((128, 96), "float16")}


@pytest.mark.parametrize(("soc", "bias"), [("Ascend910B2", True), ("Ascend910B2", False),
                                           ("Ascend310P3", False)])
def test_sizes_are_the_kernels_allocations(soc, bias):
    """Per local buffer, the bytes the validator checks equal the end of the cube core's last
    allocation there (L1, L0A, L0B, L0C, BT): a layout row the validator missed, or one it
    counts that the kernel does not allocate, fails."""
    kw = {**_MM, "bias": spec((96,), "float32")} if bias else _MM
    r = npusim.simulate("matmul", soc, **kw)
    desc = resolve_soc(soc)
    c = next(c for c in r.run.kernel.cores if c.kind in ("aic", "aicore"))
    need = cube_local_bytes(r.tiling, "float16", desc.core(c.kind), with_bias=bias,
                            quant_vector=False)
    for buf in ("L1", "L0A", "L0B", "L0C", "BT"):
        allocs = c.allocations.get(buf, [])
        assert need.get(buf, 0) == sum(size for _, _, size in allocs), buf


def test_mixed_l0_ping_pong_is_sized_as_declared():
    """db_l0a without db_l0b: L0A is sized for two tiles, L0B for one (Ascend C's dbL0A /
    dbL0B), though the emitter's single l0_db builds both single-buffered."""
    soc = resolve_soc("Ascend910B2")
    r = npusim.simulate("matmul", "Ascend910B2", **_MM)
    t = dataclasses.replace(r.tiling, db_l0a=True, db_l0b=False)
    need = cube_local_bytes(t, "float16", soc.core("aic"), with_bias=False, quant_vector=False)
    assert need["L0A"] == 2 * t.base_m * t.base_k * 2
    assert need["L0B"] == t.base_k * t.base_n * 2
