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


def test_timing_only_int4_weight_is_not_unpacked_and_times_as_functional(monkeypatch):
    """Rule: a timing-only int4 run never unpacks the placeholder weight, and its cycles and
    per-instruction records equal those of a functional run on real data of the same shapes."""
    from npusim.numerics import int4, pack_int4

    rng = np.random.default_rng(1)
    k, n, g = 512, 256, 128
    real = {"x": rng.standard_normal((1, k)).astype(np.float16),
            "weight": pack_int4(rng.integers(-8, 8, (k, n), dtype=np.int32)),
            "antiquant_scale": (rng.uniform(0.5, 1.5, (k // g, n)) * 0.01).astype(np.float16),
            "antiquant_group_size": g}
    functional = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", **real)

    def refuse(*_a, **_k):
        raise AssertionError("unpack_int4 called in a timing-only run")

    monkeypatch.setattr(int4, "unpack_int4", refuse)
    monkeypatch.setattr("npusim.numerics.unpack_int4", refuse)
    timing = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2",
                             x=spec((1, k), "float16"), weight=spec((k, n // 8), "int32"),
                             antiquant_scale=spec((k // g, n), "float16"),
                             antiquant_group_size=g)
    assert timing.outputs is None and functional.outputs is not None
    assert _fingerprint(timing)[:3] == _fingerprint(functional)[:3]


@pytest.mark.parametrize(("inputs", "given", "expected"), [
    ("spec", None, False), ("array", None, True), ("spec", True, True), ("array", False, False)])
def test_race_checks_default_on_for_functional_off_for_timing_only(inputs, given, expected,
                                                                   monkeypatch):
    """Rule: ``check_races=None`` (the default) checks races in functional runs only; an explicit
    True / False is passed to the engine as given."""
    import npusim.runner as runner

    seen = {}
    real_run = runner.run_kernel

    def spy(*a, **kw):
        seen["check_races"] = kw["check_races"]
        return real_run(*a, **kw)

    monkeypatch.setattr(runner, "run_kernel", spy)
    x = spec((4096,), "float16") if inputs == "spec" else np.ones(4096, np.float16)
    kw = {} if given is None else {"check_races": given}
    npusim.simulate("tensor_copy", "Ascend910B2", x=x, **kw)
    assert seen["check_races"] is expected


def test_timing_only_nz_weight_is_not_converted_and_times_as_functional(monkeypatch):
    """Rule: a timing-only FRACTAL_NZ weight spec is never converted to ND, and the run's records
    equal a functional run on a real NZ weight of the same shapes."""
    import npusim.layouts.nz as nz
    from npusim.ops.weight_quant_batchmatmul import transpose_nz
    from npusim.torch_npu import npu_format_cast

    rng = np.random.default_rng(2)
    m, k, n = 16, 256, 128
    real = {"x": rng.standard_normal((m, k)).astype(np.float16),
            "weight": transpose_nz(npu_format_cast(rng.integers(-128, 128, (n, k))
                                                   .astype(np.int8), 29)),
            "antiquant_scale": (rng.random(n) * 0.05 + 0.01).astype(np.float16)}
    functional = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", **real)

    def refuse(*_a, **_k):
        raise AssertionError("nz_to_nd called in a timing-only run")

    monkeypatch.setattr(nz, "nz_to_nd", refuse)
    timing = npusim.simulate("weight_quant_batchmatmul", "Ascend910B2",
                             x=spec((m, k), "float16"),
                             weight=spec((k, n), "int8", transposed=True, npu_format=29),
                             antiquant_scale=spec((n,), "float16"))
    assert timing.outputs is None and timing.kernel_name == functional.kernel_name
    assert _fingerprint(timing)[:3] == _fingerprint(functional)[:3]


def _touches_by_row(base, rows, row_bytes, stride, pb, lb):
    """The per-row, per-piece loop (the definition page_touches computes faster)."""
    out = {}
    for r in range(rows):
        start, end = base + r * stride, base + r * stride + row_bytes
        while start < end:
            p = start // pb
            stop = min(end, (p + 1) * pb)
            first, last = (start - p * pb) // lb, (stop - 1 - p * pb) // lb
            m0, b0 = out.get(p, (0, 0))
            out[p] = (m0 | ((1 << (last + 1)) - 1) ^ ((1 << first) - 1), b0 + stop - start)
            start = stop
    return out


def test_page_touches_equals_the_row_loop():
    """Rule: the vectorised page_touches (many rows of at most a page, 64 lines per page) gives
    the row loop's pages, masks, byte sums and first-touch order - overlapping rows (stride <
    row bytes), rows crossing a page edge, strides below, at and above a page."""
    rng = np.random.default_rng(1414)
    for pb, lb in ((32768, 512), (32768, 1024), (4096, 64)):
        for _ in range(300):
            base = int(rng.integers(0, 1 << 34))
            rows = int(rng.integers(1, 3000))
            row_bytes = int(rng.integers(1, pb + 1))
            stride = int(rng.choice([row_bytes, row_bytes // 2 + 1, 32, pb, pb + 96,
                                     int(rng.integers(1, 4 * pb))]))
            args = (base, rows, row_bytes, stride, pb, lb)
            got = page_touches(*args)
            want = _touches_by_row(*args)
            assert list(got.items()) == list(want.items()), args
            assert all(type(p) is int and type(m) is int and type(b) is int
                       for p, (m, b) in got.items())
