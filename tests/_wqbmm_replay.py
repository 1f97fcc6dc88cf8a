"""Shared inputs and the one check of the weight_quant_batchmatmul functional-replay tests: a
kernel's program, run functionally, gives bits equal to the numerics model ``compute()``."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

import npusim
from npusim.isa.semantics import supplied_semantics
from npusim.numerics import pack_int4
from npusim.ops.weight_quant_batchmatmul import compute, normalize_args, transpose_nz
from npusim.torch_npu import npu_format_cast, npu_trans_quant_param

B2 = "Ascend910B2"


def bits(a: Any) -> np.ndarray:
    """The array's raw bits as unsigned integers of its item size."""
    a = np.asarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def wqbmm_call(seed: int, m: int, k: int, n: int, *, xdt: str = "float16", wdt: str = "int8",
               group: int = 0, offset: bool = False, bias: bool = False, trans: bool = False,
               inner_precise: int | None = None, x_scale: float = 1.0,
               per_tensor: bool = False) -> dict[str, Any]:
    """Random legal inputs: x (m, k) in ``xdt``, an int8 or packed int4 weight (k, n), stored
    transposed when ``trans``, per-channel (group 0), per-group or (``per_tensor``) one scale
    and offset, a bias."""
    rng = np.random.default_rng(seed)
    xd = np.float16 if xdt == "float16" else ml_dtypes.bfloat16
    x = np.clip(rng.standard_normal((m, k)) * x_scale, -60000, 60000)
    x = x.astype(np.float32).astype(xd)
    lo, hi = (-8, 8) if wdt == "int4" else (-128, 128)
    w = rng.integers(lo, hi, (k, n)).astype(np.int8)
    groups = -(-k // group) if group else 1
    sc = (rng.random((groups, n)) * 0.05 + 0.01).astype(xd)
    of = (rng.standard_normal((groups, n)) * 3).astype(xd) if offset else None
    if not group:
        sc, of = sc[0], None if of is None else of[0]
    if per_tensor:
        sc, of = sc[:1], None if of is None else of[:1]
    mat = np.ascontiguousarray(w.T if trans else w)
    mat = pack_int4(mat) if wdt == "int4" else mat
    b = rng.standard_normal(n).astype(np.float16 if xdt == "float16" else np.float32)
    kw = {"x": x, "weight": mat.T if trans else mat, "antiquant_scale": sc,
          "antiquant_offset": of, "bias": b if bias else None}
    if group:
        kw["antiquant_group_size"] = group
    if inner_precise is not None:
        kw["inner_precise"] = inner_precise
    return kw


def fixpipe_call(seed: int, m: int, k: int, n: int, offset: bool, bias: bool) -> dict[str, Any]:
    """Inputs that select the Fixpipe kernel: an int64 antiquant scale from
    npu_trans_quant_param, an int32 offset, a transposed int8 weight, fp16 x and bias."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    q = npu_trans_quant_param((rng.random(n) * 0.02 + 0.001).astype(np.float32))
    kw: dict[str, Any] = {"x": x, "weight": w.T, "antiquant_scale": q}
    if offset:
        kw["antiquant_offset"] = rng.integers(-128, 128, n).astype(np.int32)
    if bias:
        kw["bias"] = rng.standard_normal(n).astype(np.float16)
    return kw


def nz_call(seed: int, m: int, k: int, n: int, xdt: str = "float16", offset: bool = True,
            bias: bool = True) -> dict[str, Any]:
    """Inputs with a transposed int8 weight in FRACTAL_NZ (npu_format_cast(w, 29) of the
    (n, k) matrix, seen as (k, n)): the CustomNzSplitK kernel's operands."""
    rng = np.random.default_rng(seed)
    xd = np.float16 if xdt == "float16" else ml_dtypes.bfloat16
    x = rng.standard_normal((m, k)).astype(np.float32).astype(xd)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    kw: dict[str, Any] = {
        "x": x,
        "weight": transpose_nz(npu_format_cast(w, 29)),
        "antiquant_scale": (rng.random(n) * 0.05 + 0.01).astype(xd),
    }
    if offset:
        kw["antiquant_offset"] = (rng.standard_normal(n) * 3).astype(xd)
    if bias:
        kw["bias"] = rng.standard_normal(n).astype(np.float16 if xdt == "float16" else np.float32)
    return kw


def args_of(kw: dict[str, Any], soc: str = B2) -> Any:
    """The normalised arguments of the call ``kw`` (what the tiling and the oracle read)."""
    return normalize_args(
        kw["x"], kw["weight"], kw["antiquant_scale"], kw.get("antiquant_offset"),
        bias=kw.get("bias"), antiquant_group_size=kw.get("antiquant_group_size", 0),
        inner_precise=kw.get("inner_precise", 0), soc=soc,
    )  # fmt: skip


def oracle(kw: dict[str, Any], kernel: str, tiling: Any = None, soc: str = B2) -> np.ndarray:
    """The numerics model's output for the call ``kw`` on ``kernel``."""
    return compute(args_of(kw, soc), kernel, soc, tiling)


def check_replay(kw: dict[str, Any], kernel: str, *, force: bool = False, tiling: Any = None,
                 typed_kind: str = "vec", untyped: frozenset[str] = frozenset(),
                 soc: str = B2) -> Any:
    """Run ``kw`` functionally (forcing ``kernel`` when ``force``), check the default selection
    or the forced kernel ran, that every ``typed_kind`` instruction (but those named in
    ``untyped``) carries no value closure, and that the output's bits equal the oracle's and
    are mostly non-zero. Returns the result."""
    extra = {"kernel": kernel} if force else {}
    r = npusim.simulate("weight_quant_batchmatmul", soc, tiling=tiling, **extra, **kw)
    assert r.kernel_name == kernel
    assert "functional_replay" in r.run.kernel.meta
    typed = [i for c in r.run.kernel.cores for i in c.instrs
             if i.kind == typed_kind and i.name not in untyped]
    assert typed and all(i.fn is None for i in typed), f"every {typed_kind} instruction is typed"
    assert supplied_semantics(r.run.kernel) == {}, "no instruction's values come from a closure"
    want = oracle(kw, kernel, r.tiling, soc)
    assert np.array_equal(bits(r.outputs), bits(want))
    assert np.count_nonzero(bits(r.outputs)) > r.outputs.size // 2
    return r
