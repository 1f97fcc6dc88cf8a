"""The layout ``cube_emitter_buffers`` states is what a CubeEmitter allocates, on every core
organisation it runs on: a split SoC's AIC (BiasTable row and its L1 staging, the per-column
quant row in L1 and FB) and the coupled 310P's AI core (the UB bias row, the UB copies of the
accumulators, the per-channel dequantisation row). The wqbmm validator sizes the same layout."""

from __future__ import annotations

import pytest
from _layouts import placed

import npusim
from npusim.ops.cube_emitter import cube_emitter_buffers
from npusim.runner import resolve_soc
from npusim.spec import spec

_MM = {"a": spec((64, 128), "float16"), "b": spec((128, 96), "float16")}
_QMM = {"x1": spec((64, 256), "int8"), "x2": spec((256, 96), "int8"),
        "scale": spec((96,), "float32"), "output_dtype": "float16"}


@pytest.mark.parametrize(("op", "soc", "kw", "in_dtype", "bias", "quant"), [
    ("matmul", "Ascend910B2", {**_MM, "bias": spec((96,), "float32")}, "float16", True, False),
    ("matmul", "Ascend310P3", {**_MM, "bias": spec((96,), "float32")}, "float16", True, False),
    ("matmul", "Ascend310P3", _MM, "float16", False, False),
    ("quant_matmul", "Ascend910B2", _QMM, "int8", False, True),
    ("quant_matmul", "Ascend310P3", _QMM, "int8", False, True),
])
def test_layout_is_the_emitters_allocations(op, soc, kw, in_dtype, bias, quant):
    """Every cube core's local buffers are the layout, name, offset and size (a buffer the
    emitter allocated outside it, or a layout entry it did not allocate, fails)."""
    r = npusim.simulate(op, soc, **kw)
    desc = resolve_soc(soc)
    cores = [c for c in r.run.kernel.cores if c.kind in ("aic", "aicore")]
    assert cores
    for c in cores:
        core = desc.core(c.kind)
        coupled = core.fixpipe is None
        want = cube_emitter_buffers(r.tiling.cube_tiling(), in_dtype, core, bias=bias,
                                    quant_vector=quant and not coupled,
                                    coupled_deq=quant and coupled)
        assert c.allocations == {buf: placed(layout, core.buffers[buf].alignment_bytes)
                                 for buf, layout in want.items()}
