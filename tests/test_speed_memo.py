"""Memoised pure work (issue 14 item 1) changes no cycle: the memoised L2 page patterns equal the
direct per-row computation, and whole runs with and without the memo give identical records."""

from __future__ import annotations

import numpy as np
import pytest

import npusim
from npusim.engine import memory
from npusim.engine.memory import MemorySystem, page_pattern, page_touches
from npusim.spec import spec


def test_page_pattern_shifted_equals_direct_computation():
    """Rule: a window's page pattern depends only on its page-relative shape; shifted to the
    window's first page it equals the direct computation, masks, bytes and page order alike."""
    rng = np.random.default_rng(14)
    pb, lb = 32768, 512
    for _ in range(400):
        base = int(rng.integers(0, 1 << 30))
        rows = int(rng.integers(1, 70))
        row_bytes = int(rng.integers(1, 3 * pb))
        stride = row_bytes + int(rng.choice([0, 32, 512, pb, 3 * pb + 96]))
        first = base // pb
        pattern = page_pattern(base - first * pb, rows, row_bytes, stride, pb, lb)
        shifted = [(first + rel, entry) for rel, entry in pattern]
        assert shifted == list(page_touches(base, rows, row_bytes, stride, pb, lb).items())


def _direct_pages(self, region):
    base = self.base[region.tensor] + region.offset
    return page_touches(base, region.rows, region.row_bytes, region.stride,
                        self.l2.page_bytes, self.l2.line_bytes)


def _fingerprint(res):
    run = res.run
    return (run.cycles, [(r.core, r.pipe, r.name, r.start, r.end, r.nbytes, r.hbm_bytes)
                         for r in run.records], run.traffic.as_dict(), run.hbm_busy_cycles)


CASES = [
    ("matmul", {"a": spec((256, 512), "float16"), "b": spec((512, 768), "float16")}, "cold"),
    ("matmul", {"a": spec((128, 256), "float16"), "b": spec((256, 384), "float16")}, "repeat"),
    ("weight_quant_batchmatmul", {"x": spec((1, 1024), "float16"),
                                  "weight": spec((1024, 128), "int32"),
                                  "antiquant_scale": spec((8, 1024), "float16"),
                                  "antiquant_group_size": 128}, "cold"),
    ("quant_matmul", {"x1": spec((256, 256), "int8"), "x2": spec((256, 256), "int8"),
                      "scale": np.full(256, 1e-3, np.float32), "output_dtype": "int8"}, "repeat"),
    ("tensor_copy", {"x": spec((1 << 20,), "float16")}, "cold"),
]


@pytest.mark.parametrize(("op", "args", "l2"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_runs_identical_with_and_without_page_memo(op, args, l2, monkeypatch):
    """Rule: the page memo is exact - every instruction's start and end, bytes, HBM bytes and
    the traffic totals match a run computing each access's pages directly."""
    memory._PATTERNS.clear()
    fast = _fingerprint(npusim.simulate(op, "Ascend910B2", l2_start=l2, **args))
    monkeypatch.setattr(MemorySystem, "_pages", _direct_pages)
    slow = _fingerprint(npusim.simulate(op, "Ascend910B2", l2_start=l2, **args))
    assert fast == slow
