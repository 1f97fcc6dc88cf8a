"""Size guard: the largest legal shape of every operator in a timing-only run is refused up front
with its estimate (or finishes small), a program over the instruction limit stops being built at
the limit, and timing-only runs build no data-sized zero arrays."""

import argparse
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import npusim
from npusim.cli import main
from npusim.cli_run import OP_FLAGS, _dest
from npusim.operators import get_operator, operator_names
from npusim.size_guard import (
    DEFAULT_MAX_INSTRUCTIONS,
    SizeLimitError,
    check_after_plan,
    instruction_limit,
)
from npusim.spec import spec

#: the documented ranges: M (rows, elements) up to 2^31 - 1, K and N up to 65535 (65528: the
#: largest multiple of 8, so int4 weights pack into int32)
LARGEST = {"m": 2**31 - 1, "k": 65528, "n": 65528, "n_elements": 2**31 - 1}
DEVICE_OPS = sorted(op for op in operator_names() if op != "int4pack")  # int4pack is host work


def _cli_args(op: str, **sizes) -> dict:
    ns = argparse.Namespace(**{_dest(f): None for f in OP_FLAGS})
    for k, v in sizes.items():
        setattr(ns, k, v)
    return get_operator(op).example_inputs(ns, False, np.random.default_rng(0))


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
    """A 1024^3 matmul passes the lower bounds at a limit equal to its up-front estimate but its
    program does not: the build stops at the limit (not after building all of it); the
    after-plan check, the backstop for instructions added past the builder, gives the exact
    count."""
    from npusim.hw import load_soc
    from npusim.size_guard import lower_bound

    args = {"a": spec((1024, 1024), "float16"), "b": spec((1024, 1024), "float16")}
    kernel = npusim.simulate("matmul", "Ascend910B2", **args).run.kernel
    count = kernel.instruction_count()
    limit = lower_bound("matmul", load_soc("Ascend910B2"), args)[0]
    assert count > limit
    with pytest.raises(SizeLimitError, match=f"passed the limit of {limit:,} instructions "
                                             "while being built"):
        npusim.simulate("matmul", "Ascend910B2", max_instructions=limit, **args)
    with pytest.raises(SizeLimitError, match=f"the program has {count:,} instructions"):
        check_after_plan("matmul", kernel, limit)


def test_huge_matmul_refused_by_its_macs_before_any_array():
    """M = 2^31 - 1 (256 GiB of fp16 activations as a spec) is refused at once with the
    estimate; nothing of that size is ever allocated."""
    t0 = time.process_time()
    with pytest.raises(SizeLimitError, match=r"needs at least [0-9,]+ instructions"):
        npusim.simulate("matmul", "Ascend910B2", a=spec((2**31 - 1, 4096), "float16"),
                        b=spec((4096, 4096), "float16"))
    assert time.process_time() - t0 < 5.0


def _peak(fn) -> tuple[object, int]:
    """(what ``fn`` returned or raised, peak bytes traced by tracemalloc while it ran; numpy
    reports its data buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        try:
            out: object = fn()
        except SizeLimitError as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _wq_specs(m: int, k: int, n: int, w: str, g: int, nz: bool = False) -> dict:
    wshape = (k, n // 8) if w == "int4" else (k, n)
    weight = spec(wshape, "int32" if w == "int4" else "int8", npu_format=29 if nz else 2)
    return {"x": spec((m, k), "float16"), "weight": weight,
            "antiquant_scale": spec((k // g, n) if g else (n,), "float16"),
            "antiquant_group_size": g}


WQ = "weight_quant_batchmatmul"
#: the largest legal calls of every device operator (documented maxima: M up to 2^31 - 1,
#: K and N up to 65535): name -> (operator, its spec arguments)
LARGEST_CALLS = {
    "wqbmm int4 g128 K=65408 N=65528 M=1": (WQ, _wq_specs(1, 65408, 65528, "int4", 128)),
    "wqbmm int8 per-channel K=N=65535 M=1": (WQ, _wq_specs(1, 65535, 65535, "int8", 0)),
    "wqbmm int4 NZ g64 K=65472 N=65472 M=16": (WQ, _wq_specs(16, 65472, 65472, "int4", 64,
                                                            True)),
    "wqbmm int8 M=2^31-1 K=N=65535": (WQ, _wq_specs(2**31 - 1, 65535, 65535, "int8", 0)),
    "matmul M=1 K=N=65535": ("matmul", {"a": spec((1, 65535), "float16"),
                                        "b": spec((65535, 65535), "float16")}),
    "quant_matmul M=1 K=N=65535": ("quant_matmul", {
        "x1": spec((1, 65535), "int8"), "x2": spec((65535, 65535), "int8"),
        "scale": spec((65535,), "float32"), "output_dtype": "float16"}),
    "format_cast 65535 x 65535 fp16": ("format_cast", {"x": spec((65535, 65535), "float16"),
                                                       "acl_format": 29}),
    "dynamic_quant 2^31-1 x 8192": ("dynamic_quant", {"x": spec((2**31 - 1, 8192), "float16")}),
    "vector_add 2^31-1": ("vector_add", {"x": spec((2**31 - 1,), "float16"),
                                         "y": spec((2**31 - 1,), "float16")}),
    **{f"{op} (CLI maxima)": (op, _cli_args(op, **LARGEST)) for op in DEVICE_OPS},
}
PEAK_LIMIT_BYTES = 16 << 20


def _warm(op: str) -> None:
    """Run a small call of ``op`` first: imports, descriptor and memo caches are not the run's
    memory."""
    npusim.simulate(op, "Ascend910B2", **_cli_args(op, m=16, k=256, n=256, n_elements=4096))


@pytest.mark.parametrize("name", sorted(LARGEST_CALLS))
def test_largest_legal_timing_only_runs_in_bounded_memory(name):
    """Timing-only runs of the largest legal shapes (specs of up to 2^31 - 1 rows, 8.6 GB of
    weight) are refused up front with the estimate, or finish, and never trace more than
    16 MiB (weight_quant_batchmatmul's specs used to become data-sized zero arrays: 16 GiB
    for the int4 call). A 50,000-instruction limit keeps the suite fast; the default limit
    bounds a build the same way (about 500 B per instruction)."""
    op, args = LARGEST_CALLS[name]
    _warm(op)
    out, peak = _peak(lambda: npusim.simulate(op, "Ascend910B2", max_instructions=50_000,
                                              **args))
    if isinstance(out, SizeLimitError):
        assert "instructions" in str(out) and "limit of 50,000" in str(out), out
    else:
        assert out.outputs is None and out.run.kernel.instruction_count() <= 50_000
    assert peak < PEAK_LIMIT_BYTES, (name, peak)


@pytest.mark.parametrize("w,k,n,g", [("int8", 65535, 256, 0), ("int4", 65408, 256, 0)])
def test_wqbmm_timing_only_at_a_maximal_dim_finishes_without_data_arrays(w, k, n, g):
    """K or N at its documented maximum with the other small: the run finishes, its memory is
    its program's (under 1 KiB per instruction, plus 1 MiB) and less than its int8 weight (a
    materialising planner built at least that: K x N int8 zeros besides the program)."""
    _warm(WQ)
    args = _wq_specs(1, k, n, w, g)
    res, peak = _peak(lambda: npusim.simulate(WQ, "Ascend910B2", **args))
    assert not isinstance(res, SizeLimitError) and res.cycles > 0 and res.outputs is None
    assert peak < (1 << 20) + 1024 * res.run.kernel.instruction_count(), peak
    assert peak < k * n, (peak, k * n)


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
    # refused up front by the cube program's loop count (before 8617183: while being built)
    assert len(err) == 1 and err[0].startswith("npusim: error: matmul: needs at least ")


def test_the_spy_sees_a_data_sized_array(monkeypatch):
    """The spy above can fail: a functional run's numerics ask numpy for data-sized arrays."""
    seen: list[int] = []
    real = np.zeros

    def spy(shape, *a, **kw):
        seen.append(int(np.prod(shape)))
        return real(shape, *a, **kw)

    monkeypatch.setattr(np, "zeros", spy)
    rng = np.random.default_rng(0)
    npusim.simulate("matmul", "Ascend910B2",
                    a=rng.standard_normal((64, 512)).astype(np.float16),
                    b=rng.standard_normal((512, 512)).astype(np.float16))
    assert max(seen) >= 64 * 512 // 4


@pytest.mark.parametrize("argv", [
    ["--functional"],
    ["--functional", "--max-instructions", "100000"],
    ["--max-instructions", "100000"],
])
def test_cli_largest_wqbmm_refused_before_any_data(capsys, argv):
    """``npusim run weight_quant_batchmatmul`` at K = N = 65535: the size guard runs before
    --functional would draw 4.3 GB (plus intermediates) of random inputs - the Custom program's
    loop count from its tiling (3,499,008) is over the limit either way; the message says which
    limit and by how much; nothing data-sized is traced."""
    cmd = ["run", WQ, "--m", "1", "--k", "65535", "--n", "65535", "--weight-dtype",
           "int8", "--group-size", "0", *argv]
    rc, peak = _peak(lambda: main(cmd))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("npusim: error: " + WQ), err
    limit = "100,000" if "100000" in argv else "2,000,000"
    assert "needs at least 3,499,008 instructions (the Custom program's loops" in err[0]
    assert f"above the limit of {limit}" in err[0]
    assert peak < PEAK_LIMIT_BYTES, peak


class _SmallDrawsOnly:
    """A numpy Generator that refuses draws of more than 2^24 values (so a regressed guard
    fails this test instead of exhausting the machine's memory)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def __getattr__(self, name: str):
        real = getattr(self._rng, name)

        def draw(*args, **kw):
            size = kw.get("size", args[-1] if args and isinstance(args[-1], tuple | int)
                          else None)
            n = int(np.prod(size)) if size is not None else 1
            assert n <= 1 << 24, f"{name} asked to draw {n:,} values"
            return real(*args, **kw)

        return draw


@pytest.mark.parametrize("op", DEVICE_OPS)
def test_cli_functional_at_the_maxima_is_refused_before_drawing(capsys, monkeypatch, op):
    """Every operator's ``npusim run --functional`` at the documented maxima is refused before
    its random inputs are drawn (tensor_copy's call is a count, not a spec: it drew 2^31 - 1
    float32 and was OOM-killed at 22 GiB); trans_quant_param's largest call is small."""
    real_rng = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda *a: _SmallDrawsOnly(real_rng(*a)))
    flags = [f for f in ("--m", "--k", "--n", "--n-elements") if f in get_operator(op).cli.flags]
    sizes = {"--m": "2147483647", "--k": "65528", "--n": "65528", "--n-elements": "2147483647"}
    argv = ["run", op, "--functional", *[a for f in flags for a in (f, sizes[f])]]
    rc, peak = _peak(lambda: main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    if op == "trans_quant_param":
        assert rc == 0
    else:
        assert rc == 2 and err[-1].startswith(f"npusim: error: {op}: "), err
    assert peak < PEAK_LIMIT_BYTES, (op, peak)


def test_largest_legal_wqbmm_refused_up_front_with_the_program_estimate():
    """The largest legal weight_quant_batchmatmul (int4 g128, M=1, K=65408, N=65528: the Custom
    program) at the default 2,000,000 limit is refused before planning by its loop count from
    the tiling (4,447,744 >= the bound), naming the estimate and the limit - no program built
    (it used to be refused only when the build reached the limit, after about 17 CPU-s)."""
    with pytest.raises(SizeLimitError) as exc:
        npusim.simulate(WQ, "Ascend910B2", **_wq_specs(1, 65408, 65528, "int4", 128))
    msg = str(exc.value)
    assert "needs at least 4,447,744 instructions" in msg and "Custom program's loops" in msg
    assert "limit of 2,000,000" in msg and "while being built" not in msg


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 300), k=st.integers(1, 24), n=st.integers(1, 24),
       w=st.sampled_from(["int8", "int4"]), g=st.sampled_from([0, 64, 128]),
       xdt=st.sampled_from(["float16", "bfloat16"]), trans=st.booleans(), quant=st.booleans())
def test_wqbmm_program_bound_never_exceeds_the_built_count(m, k, n, w, g, xdt, trans, quant):
    """For whichever kernel CANN runs (Custom mostly; Msd / MsdSplitK / MsdGroup for small M),
    the up-front bound counted from the tiling is a lower bound of the built program's
    instruction count, and not a loose one (at least a third of it)."""
    from npusim.hw import load_soc
    from npusim.size_guard import _wqbmm_program_bound

    k, n = 64 * k, 64 * n
    if g and g >= k:
        g = 0
    args = _wq_specs(m, k, n, w, g)
    args["x"] = spec((m, k), xdt)
    args["antiquant_scale"] = spec(args["antiquant_scale"].shape, xdt)
    if trans:  # the transposed view of a stored (N, K) weight (int4: K / 8 packed words)
        args["weight"] = spec((k // 8, n) if w == "int4" else (k, n), args["weight"].dtype,
                              transposed=True)
    if quant:
        args["quant_scale"] = spec((n,), "float32")
    soc = load_soc("Ascend910B2")
    bound = _wqbmm_program_bound(soc, args, None)
    try:
        r = npusim.simulate(WQ, soc, **args)
    except (ValueError, NotImplementedError):
        return  # a combination the rules refuse (the planner names it)
    count = r.run.kernel.instruction_count()  # every kernel has a bound now
    assert bound is not None and count / 3 <= bound[0] <= count, (r.kernel_name, bound, count)
    assert f"the {r.kernel_name} program's loops" in bound[1]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(["matmul", "quant_matmul"]), m=st.integers(1, 600),
       k=st.integers(1, 3000), n=st.integers(1, 600), batch=st.sampled_from([(), (3,), (2, 2)]),
       dt=st.sampled_from(["float16", "bfloat16", "float32"]), nz=st.booleans(),
       soc=st.sampled_from(["Ascend910B2", "Ascend310P3"]))
@example(op="quant_matmul", m=1, k=1, n=209, batch=(2, 2), dt="float16", nz=False,
         soc="Ascend910B2")  # K = 1: the write-out dominates (CI failure of 2026-12-03)
def test_cube_program_bound_never_exceeds_the_built_count(op, m, k, n, batch, dt, nz, soc):
    """matmul / quant_matmul: the up-front bound counted from the tiling (output tiles x (K
    steps x 6 + 3)) is a lower bound of the built program's instruction count, not a loose one (at
    least a quarter of it beyond 1,000 instructions, where the fixed epilogue dominates)."""
    from npusim.hw import load_soc
    from npusim.size_guard import _cube_program_bound

    fmt = 29 if nz else 2
    if op == "matmul":
        args = {"a": spec((*batch, m, k), dt), "b": spec((k, n), dt, npu_format=fmt)}
    else:
        args = {"x1": spec((*batch, m, k), "int8"), "x2": spec((k, n), "int8", npu_format=fmt),
                "scale": spec((n,), "int64"), "output_dtype": "float16"}
    desc = load_soc(soc)
    bound = _cube_program_bound(op, desc, args, None)
    try:
        r = npusim.simulate(op, desc, **args)
    except (ValueError, NotImplementedError):
        assert bound is None  # a call the rules refuse (the planner names it) has no bound
        return
    count = r.run.kernel.instruction_count()
    assert bound is not None and bound[0] <= count, (bound, count)
    assert count < 1000 or count / 4 <= bound[0], (bound, count)  # tiny: fixed overhead


@pytest.mark.parametrize("op", ["matmul", "quant_matmul"])
def test_largest_cube_call_refused_with_the_program_estimate(op):
    """matmul / quant_matmul at K = N = 65535, M = 4096 (well inside the documented ranges):
    refused before planning by the cube program's loop count from the default tiling."""
    m, k, n = 4096, 65535, 65535
    if op == "matmul":
        args = {"a": spec((m, k), "float16"), "b": spec((k, n), "float16")}
    else:
        args = {"x1": spec((m, k), "int8"), "x2": spec((k, n), "int8"),
                "scale": spec((n,), "int64"), "output_dtype": "float16"}
    with pytest.raises(SizeLimitError, match=f"{op} program's loops from its tiling"):
        npusim.simulate(op, "Ascend910B2", **args)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1024, 3000), k=st.integers(1, 1500), n=st.integers(1, 700),
       given_tiling=st.booleans(), m0=st.sampled_from([16, 64, 256]),
       n0=st.sampled_from([16, 128, 256]), k0=st.sampled_from([32, 256, 512]),
       cores=st.integers(1, 8))
def test_pp_matmul_bound_never_exceeds_the_built_count(m, k, n, given_tiling, m0, n0, k0, cores):
    """310P pp_matmul (M >= 1024 with a bias): the up-front bound counted from the
    PpMatmulTiling (blocks x K chunks x L0 parts) is a lower bound of the built PpMatmul
    program's instruction count and a tight one (it was not counted: the cube bound read
    base_m / base_n / base_k, which a PpMatmulTiling has not)."""
    from npusim.hw import load_soc
    from npusim.ops.quant_matmul_pp_program import PpMatmulTiling, validate_pp_tiling
    from npusim.size_guard import _cube_program_bound

    desc = load_soc("Ascend310P3")
    args = {"x1": spec((m, k), "int8"), "x2": spec((k, n), "int8"),
            "scale": spec((n,), "int64"), "bias": spec((n,), "int32"),
            "output_dtype": "float16"}
    tiling = None
    if given_tiling:
        tiling = PpMatmulTiling(m0, n0, k0, cores)
        try:
            validate_pp_tiling(tiling, desc, m, k, n)
        except ValueError:
            tiling = None
    bound = _cube_program_bound("quant_matmul", desc, args, tiling)
    r = npusim.simulate("quant_matmul", desc, tiling, **args)
    count = r.run.kernel.instruction_count()
    assert r.run.kernel.name == "quant_matmul_pp"
    assert bound is not None and count / 2 <= bound[0] <= count, (bound, count)
    assert "the PpMatmul program's loops" in bound[1]


def test_large_pp_matmul_refused_up_front_with_its_estimate():
    """A 310P pp_matmul call whose PpMatmul program passes the limit (M = 10000, K = N = 4096:
    about 290,000 instructions) is refused before planning with its loop estimate; it used to
    be refused only once the build passed the limit (at M = 100,000 and the default limit,
    after 20 s of building the TransData and PpMatmul programs)."""
    args = {"x1": spec((10000, 4096), "int8"), "x2": spec((4096, 4096), "int8"),
            "scale": spec((4096,), "int64"), "bias": spec((4096,), "int32"),
            "output_dtype": "float16"}
    t0 = time.process_time()
    with pytest.raises(SizeLimitError, match=r"needs at least .*PpMatmul program's loops"):
        npusim.simulate("quant_matmul", "Ascend310P3", max_instructions=200_000, **args)
    assert time.process_time() - t0 < 5.0
