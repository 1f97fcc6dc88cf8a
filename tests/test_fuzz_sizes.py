"""Size guard: the largest legal shape of every operator in a timing-only run is refused up front
with its estimate (or finishes small), a program over the instruction limit stops being built at
the limit, and timing-only runs build no data-sized zero arrays."""

import argparse
import time

import numpy as np
import pytest

import npusim
from npusim.cli import main
from npusim.cli_run import OP_FLAGS, _dest
from npusim.runner import OPERATORS, operator_module
from npusim.size_guard import (
    DEFAULT_MAX_INSTRUCTIONS,
    MATERIALISES_SPECS,
    SizeLimitError,
    check_after_plan,
    instruction_limit,
)
from npusim.spec import spec

#: the documented ranges: M (rows, elements) up to 2^31 - 1, K and N up to 65535 (65528: the
#: largest multiple of 8, so int4 weights pack into int32)
LARGEST = {"m": 2**31 - 1, "k": 65528, "n": 65528, "n_elements": 2**31 - 1}
DEVICE_OPS = sorted(op for op in OPERATORS if op != "int4pack")  # int4pack is host work


def _cli_args(op: str, **sizes) -> dict:
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    for k, v in sizes.items():
        setattr(ns, k, v)
    return operator_module(op).cli_op_args(ns, functional=False, rng=np.random.default_rng(0))


@pytest.mark.parametrize("op", DEVICE_OPS)
def test_largest_legal_shape_is_refused_up_front_or_small(op):
    """At the documented maxima every device operator either finishes with a program under the
    limit or is refused before planning (well under a second, no array, no program) with a
    message giving its instruction estimate and the limit. A limit of 200,000 instructions:
    the default (2,000,000) lets vector_add / tensor_copy at 2^31 - 1 elements run (1.6 M
    instructions, minutes), which this suite does not wait for."""
    args = _cli_args(op, **LARGEST)
    t0 = time.process_time()
    try:
        res = npusim.simulate(op, "Ascend910B2", max_instructions=200_000, **args)
    except SizeLimitError as exc:
        assert time.process_time() - t0 < 5.0
        text = str(exc)
        assert text.startswith(f"{op}: needs at least ") and "above the limit of 200,000" in text
        return
    assert res.run.kernel.instruction_count() <= 200_000
    assert op == "trans_quant_param"  # its largest call (65528 channels) is small


def test_default_limit_and_where_it_comes_from(monkeypatch):
    """The limit is the argument, else $NPUSIM_MAX_INSTRUCTIONS, else the default; bad values
    are refused naming where they came from."""
    monkeypatch.delenv("NPUSIM_MAX_INSTRUCTIONS", raising=False)
    assert instruction_limit() == DEFAULT_MAX_INSTRUCTIONS == 2_000_000
    monkeypatch.setenv("NPUSIM_MAX_INSTRUCTIONS", "1234")
    assert instruction_limit() == 1234 and instruction_limit(99) == 99
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("NPUSIM_MAX_INSTRUCTIONS", bad)
        with pytest.raises(SizeLimitError, match=r"\$NPUSIM_MAX_INSTRUCTIONS="):
            instruction_limit()
    for bad in (0, -1, True, 2.5):
        with pytest.raises(SizeLimitError, match="max_instructions="):
            instruction_limit(bad)


def test_program_over_the_limit_stops_being_built():
    """A 1024^3 matmul passes the lower bounds at a 2,000 limit but its program does not: the
    build stops at the limit (not after building all of it); the after-plan check, the
    backstop for instructions added past the builder, gives the exact count."""
    args = {"a": spec((1024, 1024), "float16"), "b": spec((1024, 1024), "float16")}
    kernel = npusim.simulate("matmul", "Ascend910B2", **args).run.kernel
    count = kernel.instruction_count()
    assert count > 2_000
    with pytest.raises(SizeLimitError, match="passed the limit of 2,000 instructions while "
                                             "being built"):
        npusim.simulate("matmul", "Ascend910B2", max_instructions=2_000, **args)
    with pytest.raises(SizeLimitError, match=f"the program has {count:,} instructions"):
        check_after_plan("matmul", kernel, 2_000)


def test_huge_matmul_refused_by_its_macs_before_any_array():
    """M = 2^31 - 1 (256 GiB of fp16 activations as a spec) is refused at once with the
    estimate; nothing of that size is ever allocated."""
    t0 = time.process_time()
    with pytest.raises(SizeLimitError, match=r"needs at least [0-9,]+ instructions"):
        npusim.simulate("matmul", "Ascend910B2", a=spec((2**31 - 1, 4096), "float16"),
                        b=spec((4096, 4096), "float16"))
    assert time.process_time() - t0 < 5.0


def test_wqbmm_timing_only_above_a_gib_of_specs_is_refused():
    """weight_quant_batchmatmul still turns specs into zero arrays (declared in
    MATERIALISES_SPECS): the legal K = 65408, N = 65528 int4 call (2.1 GB of packed weight,
    ~16 GiB once materialised and unpacked) is refused up front instead of allocating."""
    assert "weight_quant_batchmatmul" in MATERIALISES_SPECS
    with pytest.raises(SizeLimitError, match="builds zero arrays"):
        npusim.simulate("weight_quant_batchmatmul", "Ascend910B2",
                        x=spec((1, 65408), "float16"), weight=spec((65408, 65528 // 8), "int32"),
                        antiquant_scale=spec((65408 // 128, 65528), "float16"),
                        antiquant_group_size=128)


SPEC_CALLS = {
    "matmul": {"a": spec((16, 2048), "float16"), "b": spec((2048, 4096), "float16")},
    "quant_matmul": {"x1": spec((16, 2048), "int8"), "x2": spec((2048, 8192), "int8"),
                     "scale": spec((8192,), "float32"), "output_dtype": "float16"},
    "vector_add": {"x": spec((1 << 22,), "float16"), "y": spec((1 << 22,), "float16")},
    "tensor_copy": {"n_elements": 1 << 22, "dtype": "float32"},
    "dynamic_quant": {"x": spec((1024, 2048), "float16")},
    "format_cast": {"x": spec((1024, 4096), "float16"), "acl_format": 29},
    "group_quant": {"x": spec((1024, 2048), "float16"), "scale": spec((8, 2048), "float32"),
                    "group_index": np.linspace(0, 1024, 9).astype(np.int64)[1:]},
}


@pytest.mark.parametrize("op", sorted(SPEC_CALLS))
def test_timing_only_run_builds_no_data_sized_zero_array(op, monkeypatch):
    """The idiom the issue found (np.zeros / np.empty / np.full / np.ones of a spec's size):
    no timing-only run of these operators asks numpy for an array of a quarter of its
    largest input or more."""
    args = SPEC_CALLS[op]
    sizes = [int(np.prod(v.shape)) for v in args.values() if hasattr(v, "shape")]
    largest = max([*sizes, args.get("n_elements", 0)])
    seen: list[int] = []
    for name in ("zeros", "empty", "full", "ones"):
        real = getattr(np, name)

        def spy(shape, *a, _real=real, **kw):
            seen.append(int(np.prod(shape)))
            return _real(shape, *a, **kw)

        monkeypatch.setattr(np, name, spy)
    res = npusim.simulate(op, "Ascend910B2", **args)
    assert res.outputs is None and res.cycles > 0
    assert max(seen, default=0) < largest // 4, (op, max(seen), largest)


def test_cli_max_instructions_flag_is_one_error_line(capsys):
    """``npusim run --max-instructions N`` refuses with the estimate as one error line."""
    assert main(["run", "matmul", "--m", "1024", "--k", "1024", "--n", "1024",
                 "--max-instructions", "1000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("npusim: error: matmul: the program passed ")


def test_the_spy_sees_a_materialising_operator(monkeypatch):
    """The check above can fail: weight_quant_batchmatmul's timing-only run (declared in
    MATERIALISES_SPECS) does ask for a zero array of its whole unpacked weight."""
    seen: list[int] = []
    real = np.zeros

    def spy(shape, *a, **kw):
        seen.append(int(np.prod(shape)))
        return real(shape, *a, **kw)

    monkeypatch.setattr(np, "zeros", spy)
    npusim.simulate("weight_quant_batchmatmul", "Ascend910B2", x=spec((16, 512), "float16"),
                    weight=spec((512, 512 // 8), "int32"),
                    antiquant_scale=spec((4, 512), "float16"), antiquant_group_size=128)
    assert max(seen) >= 512 * 512
