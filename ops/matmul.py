"""Plain cube matmul (fp16 / bf16 / fp32 in; fp16 / bf16 / fp32 out): validation and reference.

The baseline every what-if study compares a quantised layer with. Numerics: products and sums
follow the SoC's declared cube accumulation model (``soc.numerics.cube_accumulation.model``,
see :mod:`npusim.numerics.cube`); an optional bias initialises the fp32 accumulator (bias table);
the fp32 L0C result leaves the core through FixPipe F322F16 / F322BF16 (RNE, ops-semantics 0.2) or
unchanged for fp32 output. On the coupled 310P the conversion is a vector Cast (RINT, saturating).
Outputs are therefore "bit-exact to the declared model", not to unpublished hardware sums.

Overflow of the fp32 -> fp16 / bf16 conversion gives +-inf on A2 / A3 (``FIXPIPE_CAST_SATURATES =
False``): their default float overflow mode is Inf/NaN (IEEE 754), while the Atlas inference
series (310P) supports only the saturation mode, so there it saturates to +-max (CANN runtime
``aclrtFloatOverflowMode`` / ``set_device_sat_mode`` documentation).

Layouts: A and B may be ND or the transposed view of a contiguous matrix (recognised from the
strides, as torch_npu does); the layout changes the data movement, not the values.

fp32 inputs (A2 / A3): 16 x 8 fractals (k0 = 32 B / 4), the same declared accumulation model
with k0 = 8; the tiled program replays them (``npusim.isa`` Mmad).

HF32 (``allow_hf32=True`` with fp32 inputs): the public AscendC docs say the fp32 L0A / L0B data
are rounded to HF32 before the Mmad, to nearest with ties to even (default) or away from zero
(``SetHF32`` / ``SetHF32Mode``), but not the HF32 format's mantissa width. The SoC descriptor
declares it (``numerics.hf32``: mantissa bits and rounding, :mod:`npusim.numerics.hf32`); the
operands are rounded to it, then the fp32 cube model applies. Outputs are exact to that declared
model, never claimed bit-exact to a device; a SoC without ``numerics.hf32`` raises
NotImplementedError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypeAlias

    from npusim.hw.schema import SocDescriptor

    #: a ``soc`` argument: a loaded descriptor, a SoC name or descriptor file, or None for the
    #: default SoC (:func:`resolve_soc`)
    SocRef: TypeAlias = SocDescriptor | str | Path | None

DEFAULT_CUBE_MODEL = "fractal_exact_fp32_sequential"
FIXPIPE_CAST_SATURATES = False
MATMUL_IN_DTYPES = ("float16", "bfloat16", "float32")
_FEATURE = {"float16": "fp16_cube", "bfloat16": "bf16_cube", "float32": "fp32_cube"}
_K0 = {"float16": 16, "bfloat16": 16, "float32": 8}  # 32 B fractal depth


# -- input description helpers ------------------------------------------------------------------


@dataclass(frozen=True)
class TensorDesc:
    """Shape, dtype name, layout (transposed view of a contiguous tensor) and NZ format."""

    shape: tuple[int, ...]
    dtype: str
    transposed: bool
    nz: bool


_ALIASES = {
    "half": "float16", "fp16": "float16", "bf16": "bfloat16", "float": "float32",
    "fp32": "float32", "int": "int32", "long": "int64", "char": "int8", "qint8": "int8",
}


def dtype_name(dtype: Any) -> str:
    """Canonical dtype name of a numpy / ml_dtypes / torch dtype or a string."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        name = _ALIASES.get(name, name)
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype).removeprefix("torch.")
            name = _ALIASES.get(name, name)
    return name


def last_two_transposed(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> bool:
    """True if the array is the transpose of the last two dims of a contiguous array (as torch_npu
    recognises a transposed weight: stride(-2) = 1 element, stride(-1) = size(-2), batch dims
    contiguous outside); a (.., 1, 1) view is not transposed."""
    if len(shape) < 2:
        return False
    if shape[-1] == 1 and shape[-2] == 1:
        return False
    if strides[-2] != itemsize or strides[-1] != shape[-2] * itemsize:
        return False
    expect = shape[-1] * shape[-2] * itemsize
    for d in range(len(shape) - 3, -1, -1):
        if shape[d] != 1 and strides[d] != expect:
            return False
        expect *= shape[d]
    return True


def describe(x: Any, arg: str) -> TensorDesc:
    """Shape, dtype name and layout of an array or a :class:`npusim.spec.TensorSpec`."""
    if x is None:
        raise TypeError(f"{arg}: a tensor is required, got None")
    from npusim.spec import TensorSpec

    if isinstance(x, TensorSpec):
        return TensorDesc(tuple(x.shape), dtype_name(x.dtype), bool(x.transposed),
                          x.npu_format == 29)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{arg}: expected a numpy array or TensorSpec, got {type(x).__name__}")
    if getattr(x, "npu_format", 2) == 29:  # FRACTAL_NZ storage (npusim.layouts.FormattedArray)
        return TensorDesc(tuple(cast(Any, x).logical_shape), x.dtype.name,
                          bool(getattr(x, "npu_transposed", False)), True)
    trans = last_two_transposed(x.shape, x.strides, x.itemsize)
    return TensorDesc(tuple(x.shape), x.dtype.name, trans, False)


def resolve_soc(soc: SocRef) -> SocDescriptor:
    """A descriptor from None (the default SoC), a name or path, or a loaded descriptor."""
    from npusim.runner import resolve_soc as _resolve

    return _resolve(soc)


def broadcast_batch(
    a: tuple[int, ...], b: tuple[int, ...], names: str = "x1/x2"
) -> tuple[int, ...]:
    """The broadcast of two batch shapes (right-aligned; each pair equal or containing a 1)."""
    nd = max(len(a), len(b))
    a = (1,) * (nd - len(a)) + a
    b = (1,) * (nd - len(b)) + b
    out = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x > 1 and y > 1 and x != y:
            raise ValueError(
                f"{names}: batch dims {a} and {b} do not broadcast (dim {i}: {x} vs {y}); each "
                "pair must be equal or contain a 1"
            )
        out.append(max(x, y))
    return tuple(out)


@dataclass(frozen=True)
class MatmulPlan:
    """Sizes, layouts, dtypes and the cube model of one validated matmul call."""

    m: int
    k: int
    n: int
    batch: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: str
    out_dtype: str
    trans_a: bool
    trans_b: bool
    bias_dtype: str | None
    cube_model: str
    coupled: bool
    b_nz: bool = False  # B stored FRACTAL_NZ (its stored matrix: (k, n), or (n, k) if trans_b)
    hf32: str = ""  # HF32 mode's declared format (e.g. m10_rne; numerics.hf32), "" = plain fp32
    a_nz: bool = False  # A stored FRACTAL_NZ (its (m, k) matrix)


def cube_model_of(soc: SocDescriptor) -> str:
    """The SoC's declared cube accumulation model (the default model if it declares none)."""
    try:
        return str(soc.numerics.cube_accumulation.model)
    except AttributeError:
        return DEFAULT_CUBE_MODEL


def _supports(soc: SocDescriptor, feature: str) -> bool:
    fn = getattr(soc, "supports", None)
    return True if fn is None else bool(fn(feature))


def validate_matmul(
    a: Any,
    b: Any,
    *,
    out_dtype: Any = None,
    bias: Any = None,
    allow_hf32: bool = False,
    soc: SocRef = None,
) -> MatmulPlan:
    """Check dtypes, shapes, batch broadcast, bias and SoC support; raise ValueError / TypeError
    naming the argument, or NotImplementedError for HF32."""
    soc = resolve_soc(soc)
    da, dbm = describe(a, "a"), describe(b, "b")
    if da.dtype not in MATMUL_IN_DTYPES:
        raise TypeError(f"a: dtype {da.dtype} not supported; must be one of {MATMUL_IN_DTYPES}")
    if dbm.dtype != da.dtype:
        raise TypeError(f"b: dtype {dbm.dtype} must equal a's dtype {da.dtype}")
    if not _supports(soc, _FEATURE[da.dtype]):
        raise ValueError(f"a: dtype {da.dtype}: the cube of {soc.name} has no {da.dtype} matmul")
    if not isinstance(allow_hf32, bool):
        raise TypeError(f"allow_hf32: must be a bool, got {type(allow_hf32).__name__}")
    hf32 = ""
    if allow_hf32 and da.dtype == "float32":
        if not _supports(soc, "hf32_cube"):
            raise ValueError(f"allow_hf32: {soc.name} has no HF32 cube mode")
        hf32 = hf32_of(soc)
    for d, arg in ((da, "a"), (dbm, "b")):
        if len(d.shape) < 2:
            raise ValueError(f"{arg}: shape {d.shape} must have at least 2 dims")
        if 0 in d.shape:
            raise ValueError(f"{arg}: shape {d.shape} is empty; empty tensors are not supported")
    m, k = da.shape[-2], da.shape[-1]
    kb, n = dbm.shape[-2], dbm.shape[-1]
    if kb != k:
        raise ValueError(f"b: k={kb} (shape {dbm.shape}) must equal a's k={k} (shape {da.shape})")
    batch = broadcast_batch(da.shape[:-2], dbm.shape[:-2], "a/b")
    out = da.dtype if out_dtype is None else dtype_name(out_dtype)
    allowed = (da.dtype, "float32")
    if out not in allowed:
        raise ValueError(f"out_dtype: {out} not supported for {da.dtype} inputs; must be one of "
                         f"{sorted(set(allowed))}")
    bias_dtype = None
    if bias is not None:
        dbias = describe(bias, "bias")
        if dbias.dtype not in (da.dtype, "float32"):
            raise TypeError(f"bias: dtype {dbias.dtype} must be {da.dtype} or float32")
        if dbias.shape != (n,):
            raise ValueError(f"bias: shape {dbias.shape} must be (n,) = ({n},)")
        bias_dtype = dbias.dtype
    return MatmulPlan(
        m=m, k=k, n=n, batch=batch, out_shape=(*batch, m, n), in_dtype=da.dtype, out_dtype=out,
        trans_a=da.transposed, trans_b=dbm.transposed, bias_dtype=bias_dtype,
        cube_model=cube_model_of(soc), coupled=getattr(soc, "organisation", "split") != "split",
        b_nz=dbm.nz, a_nz=da.nz, hf32=hf32,
    )


def hf32_of(soc: SocDescriptor) -> str:
    """The SoC's declared HF32 format as the Mmad's mode string (e.g. ``m10_rne``)."""
    from npusim.numerics.hf32 import hf32_mode

    model = getattr(getattr(soc, "numerics", None), "hf32", None)
    if model is None:
        raise NotImplementedError(
            f"allow_hf32=True with float32 inputs: {soc.name}'s descriptor declares no HF32 "
            "format (numerics.hf32: mantissa_bits, rounding; the width is not published)")
    return hf32_mode(model.mantissa_bits, model.rounding)


def convert_l0c(acc: np.ndarray, plan: MatmulPlan) -> np.ndarray:
    """The fp32 L0C tile as it leaves the core in ``plan.out_dtype`` (RNE)."""
    if plan.out_dtype == "float32":
        return np.asarray(acc, dtype=np.float32)
    from npusim.numerics import RoundMode, cast_float

    saturate = True if plan.coupled else FIXPIPE_CAST_SATURATES
    return cast_float(np.asarray(acc, dtype=np.float32), plan.out_dtype, RoundMode.RINT,
                      saturate=saturate)


def split_k_order_of(soc: SocDescriptor) -> str:
    """The SoC's declared split-K reduction order (``core_index_ascending`` if it declares none)."""
    try:
        return str(soc.numerics.split_k_reduction_order)
    except AttributeError:
        return "core_index_ascending"


def split_k_accumulate(
    a: np.ndarray,
    b: np.ndarray,
    single_core_k: int,
    *,
    model: str,
    bias: np.ndarray | None = None,
    k0: int = 16,
    order: str = "core_index_ascending",
) -> np.ndarray:
    """The fp32 accumulator of a split-K matmul under the declared model: partial ``l`` is the
    cube result of K slice ``[l*single_core_k, (l+1)*single_core_k)`` (``bias`` initialises slice
    0), and the partials are added onto a zeroed fp32 accumulator in ascending slice (= core)
    index, each add RNE. The hardware's order is not published (ops-semantics 7.6)."""
    if order != "core_index_ascending":
        raise NotImplementedError(
            f"split_k_reduction_order={order!r}: only core_index_ascending is implemented"
        )
    from npusim.numerics.cube import cube_matmul_float

    k = a.shape[-1]
    total = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for i, lo in enumerate(range(0, k, single_core_k)):
        part = cube_matmul_float(a[:, lo : lo + single_core_k], b[lo : lo + single_core_k],
                                 model=model, bias=bias if i == 0 else None, k0=k0)
        total = total + part
    return total


def reference_matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    out_dtype: Any = None,
    bias: np.ndarray | None = None,
    allow_hf32: bool = False,
    soc: SocRef = None,
    single_core_k: int | None = None,
) -> np.ndarray:
    """``a @ b (+ bias)`` as the NPU computes it under the SoC's declared cube model; with
    ``single_core_k`` < k, under the declared split-K model (:func:`split_k_accumulate`)."""
    plan = validate_matmul(a, b, out_dtype=out_dtype, bias=bias, allow_hf32=allow_hf32, soc=soc)
    for arg, v in (("a", a), ("b", b), ("bias", bias)):
        if v is not None and not isinstance(v, np.ndarray):
            raise TypeError(f"{arg}: the reference needs data (a numpy array), got "
                            f"{type(v).__name__}")
    if single_core_k is not None and (not isinstance(single_core_k, int) or single_core_k < 1):
        raise ValueError(f"single_core_k={single_core_k!r}: must be a positive integer")
    from npusim.numerics import np_dtype
    from npusim.numerics.cube import cube_matmul_float

    init = None if bias is None else bias.astype(np.float32)  # fp16 / bf16 -> fp32 is exact
    if plan.hf32:  # the HF32 mode rounds the fp32 operands first (declared format)
        from npusim.numerics.hf32 import parse_hf32_mode, round_to_hf32

        a, b = (round_to_hf32(v, *parse_hf32_mode(plan.hf32)) for v in (a, b))
    nb = len(plan.batch)
    a_b = np.broadcast_to(a, (*plan.batch, plan.m, plan.k)) if nb else a
    b_b = np.broadcast_to(b, (*plan.batch, plan.k, plan.n)) if nb else b
    out = np.empty(plan.out_shape, dtype=np_dtype(plan.out_dtype))
    split = single_core_k is not None and single_core_k < plan.k
    order = split_k_order_of(resolve_soc(soc)) if split else ""
    for idx in np.ndindex(*plan.batch):
        if split and single_core_k is not None:  # split
            acc = split_k_accumulate(a_b[idx], b_b[idx], single_core_k, model=plan.cube_model,
                                     bias=init, k0=_K0[plan.in_dtype], order=order)
        else:
            acc = cube_matmul_float(a_b[idx], b_b[idx], model=plan.cube_model, bias=init,
                                    k0=_K0[plan.in_dtype])
        out[idx] = convert_l0c(acc, plan)
    return out
