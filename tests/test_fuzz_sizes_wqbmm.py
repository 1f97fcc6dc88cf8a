"""Size guard, weight_quant_batchmatmul: every kernel's up-front instruction bound, counted from
the call's tiling without building (npusim.size_guard_wqbmm), is a lower bound of the built
program's instruction count on random legal calls of that kernel and within a factor of 3 of
it; the largest legal call of each kernel is refused up front with the estimate."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import npusim
from npusim.hw import load_soc
from npusim.size_guard import SizeLimitError
from npusim.size_guard_wqbmm import wqbmm_program_bound
from npusim.spec import spec

WQ = "weight_quant_batchmatmul"
B2, P3 = "Ascend910B2", "Ascend310P3"
#: the bound counts each loop's unconditional instructions only; the built program also has
#: the conditional flags, the parameter loads past the first and the set-up: within 3x
FACTOR = 3
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def call(m: int, k: int, n: int, *, w: str = "int8", g: int = 0, xdt: str = "float16",
         trans: bool = False, nz: bool = False, off: bool = False, bias: bool = False,
         fix: bool = False, det: bool = False) -> dict[str, Any]:
    """Spec arguments of a call: an int8 or packed int4 weight (int32 words of 8 along N, or
    along K when ``trans``), ND or FRACTAL_NZ; per-channel / per-group parameters in x's dtype,
    or (``fix``) an int64 scale and an int32 offset; a bias; ``deterministic``."""
    if w == "int4":
        wshape, wdt = ((k // 8, n) if trans else (k, n // 8)), "int32"
    else:
        wshape, wdt = (k, n), "int8"
    a: dict[str, Any] = {"x": spec((m, k), xdt), "weight": spec(
        wshape, wdt, npu_format=29 if nz else 2, transposed=trans)}
    pshape = (k // g, n) if g else (n,)
    a["antiquant_scale"] = spec((n,), "int64") if fix else spec(pshape, xdt)
    if off:
        a["antiquant_offset"] = spec((n,), "int32") if fix else spec(pshape, xdt)
    if g:
        a["antiquant_group_size"] = g
    if bias:
        a["bias"] = spec((n,), "float16" if xdt == "float16" else "float32")
    if det:
        a["deterministic"] = True
    return a


def check(kernel: str, soc: str, args: dict[str, Any]) -> None:
    """The call runs ``kernel``; bound <= built count <= FACTOR x bound."""
    desc = load_soc(soc)
    r = npusim.simulate(WQ, desc, **args)
    assert r.kernel_name == kernel, (r.kernel_name, kernel)
    bound = wqbmm_program_bound(desc, args, None)
    count = r.run.kernel.instruction_count()
    assert bound is not None and bound[0] <= count <= FACTOR * bound[0], (bound, count)
    assert f"the {kernel} program's loops" in bound[1]


@SETTINGS
@given(m=st.integers(1, 64), k32=st.integers(1, 40), n32=st.integers(1, 24),
       xdt=st.sampled_from(["float16", "bfloat16"]), trans=st.booleans(), off=st.booleans(),
       bias=st.booleans())
def test_msd_bound(m, k32, n32, xdt, trans, off, bias):
    """Msd: per-channel int8, M <= 64, K and N multiples of 32."""
    check("Msd", B2, call(m, 32 * k32, 32 * n32, xdt=xdt, trans=trans, off=off, bias=bias))


@SETTINGS
@given(per_group=st.booleans(), m=st.integers(1, 16), k64=st.integers(1, 24),
       n64=st.integers(1, 12), g=st.sampled_from([64, 128]), off=st.booleans(),
       bias=st.booleans(), ip=st.sampled_from([0, 1]))
@example(per_group=False, m=4, k64=256, n64=8, g=64, off=True, bias=False, ip=0).via(
    "int8 per-channel with K > 13696: MsdSplitK, not Msd")
def test_msd_split_k_bound(per_group, m, k64, n64, g, off, bias, ip):
    """MsdSplitK: int4 per-group (deterministic, else MsdGroup runs it; M <= g / 8, K % g,
    K > g), int4 per-channel with a transposed weight (N >= 2M), int8 per-channel with
    K > 13696."""
    k, n = 64 * k64, 64 * n64
    if per_group:
        args = call(min(m, g // 8), g * max(2, k // g), n, w="int4", g=g, off=off, bias=bias,
                    det=True)
        args["inner_precise"] = ip
    elif k > 13696:
        args = call(m, k, n, off=off, bias=bias)
    else:
        args = call(min(m, n // 2), k, n, w="int4", trans=True, off=off, bias=bias)
    check("MsdSplitK", B2, args)


@SETTINGS
@given(g=st.sampled_from([64, 128]), m=st.integers(1, 16), groups=st.integers(2, 24),
       n64=st.integers(1, 40), xdt=st.sampled_from(["float16", "bfloat16"]),
       off=st.booleans(), bias=st.booleans(), ip=st.sampled_from([0, 1]))
def test_msd_group_bound(g, m, groups, n64, xdt, off, bias, ip):
    """MsdGroup: int4 per-group, M <= g / 8, K % g (K > g: the rules), N % 64, weight not
    transposed."""
    args = call(min(m, g // 8), g * groups, 64 * n64, w="int4", g=g, xdt=xdt, off=off,
                bias=bias)
    args["inner_precise"] = ip
    check("MsdGroup", B2, args)


@SETTINGS
@given(m=st.integers(65, 256), k64=st.integers(1, 24), n64=st.integers(1, 16),
       xdt=st.sampled_from(["float16", "bfloat16"]), off=st.booleans(), bias=st.booleans())
def test_custom_nz_split_k_bound(m, k64, n64, xdt, off, bias):
    """CustomNzSplitK: per-channel, transposed FRACTAL_NZ weight, 65 <= M <= 256, K, N % 64."""
    check("CustomNzSplitK", B2, call(m, 64 * k64, 64 * n64, xdt=xdt, trans=True, nz=True,
                                     off=off, bias=bias))


@SETTINGS
@given(m=st.integers(1, 96), k64=st.integers(1, 24), n64=st.integers(1, 16),
       off=st.booleans(), bias=st.booleans())
def test_fixpipe_bound(m, k64, n64, off, bias):
    """Fixpipe: int64 antiquant scale, transposed int8 weight, M <= 96, K, N % 64."""
    check("Fixpipe", B2, call(m, 64 * k64, 64 * n64, trans=True, fix=True, off=off, bias=bias))


@pytest.mark.parametrize("k,n", [(1536, 12288), (3904, 12288)])
def test_split_k_bound(k, n):
    """SplitK runs only its white-listed M = 24 shapes (bf16, per-group 64, an offset): the
    two smaller ones (the larger two take longer to build; their loops are the same)."""
    check("SplitK", B2, call(24, k, n, g=64, xdt="bfloat16", off=True))


@SETTINGS
@given(m=st.integers(1, 300), k=st.integers(1, 1024), n=st.integers(2, 600),
       trans=st.booleans(), nz=st.booleans(), off=st.booleans(), bias=st.booleans())
def test_weight_nz_310p_bound(m, k, n, trans, nz, off, bias):
    """310P WeightNz: every validated per-channel int8 call (N >= 2: N = 1 is per-tensor; any
    layout, the kernel reads the (N, K) NZ weight)."""
    check("WeightNz", P3, call(m, k, n, trans=trans, nz=nz, off=off, bias=bias))


#: the largest legal call of each kernel (M, K, N at the kernel's limits; MsdGroup: the
#: largest N whose digits and weight groups fit L1 at K = 13952)
LARGEST = {
    "Msd": (B2, call(64, 13696, 32000, off=True, bias=True)),
    "MsdSplitK": (B2, call(64, 65504, 65504, off=True, bias=True)),
    "MsdGroup": (B2, call(16, 13952, 24576, w="int4", g=128, off=True, bias=True)),
    "CustomNzSplitK": (B2, call(256, 65472, 65472, trans=True, nz=True, off=True, bias=True)),
    "Fixpipe": (B2, call(96, 65472, 65472, trans=True, fix=True, off=True, bias=True)),
    "SplitK": (B2, call(24, 12288, 7808, g=64, xdt="bfloat16", off=True)),
    "WeightNz": (P3, call(2**31 - 1, 65535, 65535, trans=True, nz=True, off=True, bias=True)),
}


@pytest.mark.parametrize("kernel", sorted(LARGEST))
def test_largest_call_of_each_kernel_refused_up_front(kernel):
    """Refused before planning (no program built: well under a second) by the kernel's loop
    count, the message giving the estimate and the limit. A 100,000-instruction limit: SplitK's
    largest white-listed shape (about 150,000 instructions) runs under the default."""
    soc, args = LARGEST[kernel]
    t0 = time.process_time()
    with pytest.raises(SizeLimitError) as exc:
        npusim.simulate(WQ, soc, max_instructions=100_000, **args)
    assert time.process_time() - t0 < 5.0
    msg = str(exc.value)
    assert msg.startswith(f"{WQ}: needs at least "), msg
    assert f"the {kernel} program's loops from its tiling" in msg, msg
    assert "above the limit of 100,000" in msg
