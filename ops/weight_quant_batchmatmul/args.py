"""Normalised, validated arguments of npu_weight_quant_batchmatmul.

``normalize_args`` applies every constraint of seed 002 and ops-semantics 5.1-5.2 (op-plugin
dispatch and the aclnn checks for A2/A3 = DAV_2201; the few 310P differences are marked) and
returns a ``WqbmmArgs`` in one logical layout, whatever the caller's layout was:

- ``x`` (M, K) float16/bfloat16;
- ``weight`` (K, N) int8 values (int4 weights unpacked to int8 in [-8, 7]); the caller's
  transposition (recognised from numpy strides exactly as torch_npu's
  ``is_transpose_last_two_dims``), int32 packing and FRACTAL_NZ storage are undone here and
  recorded in ``trans_b``, ``weight_dtype`` and ``weight_format``;
- ``antiquant_scale`` / ``antiquant_offset`` (G, N) with G = 1 (per-tensor: (1, 1)) or the
  number of groups;
- ``quant_param`` (Nq,) int64 fixpipe parameters (a float32 quant_scale is converted with
  trans_quant_param round_mode 0 and quant_offset, as op-plugin path 2 does);
- ``bias`` (N,) float16 (fp16 x) or float32 (bf16 x).

Errors are ValueError (values, shapes, ranges) or TypeError (types, dtypes); each message names
the argument, the offending value and the rule.

FRACTAL_NZ weights are numpy arrays carrying ``npu_format == 29`` and ``origin_shape`` (the
contiguous ND matrix the storage was built from, ops-semantics 1.2; e.g.
``npusim.layouts.formatted.FormattedArray``). By default the origin matrix is the (K, N) weight
(int32-packed: (K, N/8)). torch_npu's ``w_nz.transpose(-1, -2)`` of an NZ weight built on the
(N, K) matrix is expressed with :func:`transpose_nz`, which sets ``npu_transposed = True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from npusim.ops.weight_quant_batchmatmul.soc_facts import soc_facts

if TYPE_CHECKING:
    from npusim.ops.weight_quant_batchmatmul.soc_facts import SocArg

ACL_FORMAT_ND = 2
ACL_FORMAT_FRACTAL_NZ = 29
NZ_TRANSPOSED_ATTR = "npu_transposed"
PLACEHOLDER_TRANSPOSED_ATTR = "placeholder_transposed"
MAX_KN = 65535
MAX_M = 2**31 - 1

PER_TENSOR, PER_CHANNEL, PER_GROUP = "per_tensor", "per_channel", "per_group"


@dataclass(frozen=True, eq=False)
class WqbmmArgs:
    """One validated call in the operator's logical layout (see the module docstring)."""

    x: np.ndarray
    weight: np.ndarray
    antiquant_scale: np.ndarray
    antiquant_offset: np.ndarray | None
    quant_param: np.ndarray | None
    bias: np.ndarray | None
    x_dtype: str
    weight_dtype: str  # "int8" | "int4"
    weight_format: str  # "ND" | "NZ"
    scale_dtype: str  # "float16" | "bfloat16" | "int64"
    out_dtype: str  # "float16" | "bfloat16" | "int8"
    trans_a: bool
    trans_b: bool
    group_size: int
    inner_precise: int
    quant_type: str  # per_tensor | per_channel | per_group (of antiquant_scale)
    quant_scale_type: str | None  # None | per_tensor | per_channel (of quant_scale)
    m: int
    k: int
    n: int
    #: an ND int4 weight as the caller packed it, in its stored layout ((N, K/8) when
    #: transposed): what ``weight_quant_common.stored_weight`` would re-pack from ``weight``
    packed_weight: np.ndarray | None = None

    @property
    def n_groups(self) -> int:
        """Number of antiquant groups along K (1 unless per-group)."""
        return cast(int, self.antiquant_scale.shape[0])

    @property
    def has_offset(self) -> bool:
        return self.antiquant_offset is not None

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    def summary(self) -> dict[str, Any]:
        """Shape/dtype facts (no data), e.g. for explain() and reports."""
        return {
            "m": self.m,
            "k": self.k,
            "n": self.n,
            "x_dtype": self.x_dtype,
            "weight_dtype": self.weight_dtype,
            "weight_format": self.weight_format,
            "antiquant_scale_dtype": self.scale_dtype,
            "out_dtype": self.out_dtype,
            "trans_a": self.trans_a,
            "trans_b": self.trans_b,
            "quant_type": self.quant_type,
            "quant_scale_type": self.quant_scale_type,
            "group_size": self.group_size,
            "inner_precise": self.inner_precise,
            "has_antiquant_offset": self.has_offset,
            "has_bias": self.has_bias,
        }


class Placeholder(np.ndarray):
    """Zeros with every stride 0 (one element of memory, safe to read): a timing-only run's
    stand-in for a spec's data, so validation and kernel selection run unchanged without a
    data-sized array. ``placeholder_transposed`` says what the strides of the array it stands
    for would say (a transposed view or not)."""


def placeholder(shape: tuple[int, ...], dtype: Any, transposed: bool = False) -> np.ndarray:
    """A :class:`Placeholder` of ``shape`` and ``dtype``; ``transposed``: it stands for the
    transposed view of a contiguous array (torch_npu's ``is_transpose_last_two_dims``)."""
    arr = np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape)).view(Placeholder)
    setattr(arr, PLACEHOLDER_TRANSPOSED_ATTR, bool(transposed))
    return arr


def _contiguous(a: np.ndarray, values: bool) -> np.ndarray:
    """``np.ascontiguousarray(a)``, except for placeholder values (``values=False``), which
    stay zero-stride views instead of becoming data-sized copies."""
    return np.ascontiguousarray(a) if values else np.asarray(a)


def is_transpose_last_two_dims(a: np.ndarray) -> bool:
    """torch_npu's rule: stride(-2) == 1 element and stride(-1) == size(-2) elements, except a
    (1, 1) last-two-dims block, which is not transposed (ops-semantics 5.1). A placeholder
    answers for the array it stands for."""
    if a.ndim < 2:
        return False
    if a.shape[-1] == 1 and a.shape[-2] == 1:
        return False
    flag = getattr(a, PLACEHOLDER_TRANSPOSED_ATTR, None)
    if flag is not None:
        return bool(flag)
    item = a.itemsize
    return a.strides[-2] == item and a.strides[-1] == a.shape[-2] * item


def transpose_nz(weight: np.ndarray) -> np.ndarray:
    """Present a FRACTAL_NZ weight as the transposed view of its origin matrix (torch_npu:
    ``w_nz.transpose(-1, -2)``): the origin matrix is then the (N, K) weight."""
    if getattr(weight, "npu_format", ACL_FORMAT_ND) != ACL_FORMAT_FRACTAL_NZ:
        raise ValueError(
            f"weight npu_format={getattr(weight, 'npu_format', None)!r}: transpose_nz needs a "
            f"FRACTAL_NZ ({ACL_FORMAT_FRACTAL_NZ}) array with an origin_shape"
        )
    view = weight.view(type(weight))
    for attr in ("npu_format", "origin_shape"):
        setattr(view, attr, getattr(weight, attr))
    setattr(view, NZ_TRANSPOSED_ATTR, not bool(getattr(weight, NZ_TRANSPOSED_ATTR, False)))
    return view


# --------------------------------------------------------------------------------------------
# small checks


def _dtype_name(a: np.ndarray) -> str:
    return str(a.dtype)


def _require_array(name: str, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name}={type(value).__name__}: must be a numpy array (or a torch CPU tensor "
            "through npusim.torch_npu)"
        )
    fmt = getattr(value, "npu_format", ACL_FORMAT_ND)
    if name != "weight" and fmt != ACL_FORMAT_ND:
        raise ValueError(
            f"{name} npu_format={fmt}: must be ND ({ACL_FORMAT_ND}); only the weight may be "
            "FRACTAL_NZ"
        )
    return value


def _require_nonempty(name: str, a: np.ndarray) -> None:
    if a.size == 0:
        raise ValueError(f"{name}.shape={a.shape}: empty tensors are not supported (seed 002)")


def _require_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r}: must be an int")
    return int(value)


def _shape_is(shape: tuple[int, ...], *allowed: tuple[int, ...]) -> bool:
    return tuple(shape) in allowed


# --------------------------------------------------------------------------------------------
# weight decoding


def _unpack(packed: np.ndarray, values: bool = True) -> np.ndarray:
    """int32-packed int4 -> int8 values; ``values=False`` (timing-only runs): placeholder
    zeros of the unpacked shape, so no unpacking work or memory is spent on them."""
    if not values:
        return placeholder((*packed.shape[:-1], packed.shape[-1] * 8), np.int8)
    from npusim.numerics import unpack_int4

    return np.asarray(unpack_int4(np.ascontiguousarray(packed, dtype=np.int32)), dtype=np.int8)


def _nz_origin(weight: np.ndarray, values: bool = True) -> np.ndarray:
    """The origin ND matrix of a FRACTAL_NZ weight (storage checked against torch_npu's shape);
    zeros of the origin shape when not ``values`` (timing-only: the storage is not converted)."""
    from npusim.layouts.nz import nz_storage_shape, nz_to_nd

    origin = getattr(weight, "origin_shape", None)
    if origin is None or len(tuple(origin)) != 2:
        raise ValueError(
            f"weight.origin_shape={origin!r}: a FRACTAL_NZ weight needs a 2-D origin_shape "
            "(the ND matrix its storage was built from)"
        )
    origin = tuple(int(v) for v in origin)
    if min(origin) <= 0:
        raise ValueError(f"weight.origin_shape={origin}: empty tensors are not supported")
    storage = np.asarray(weight).view(np.ndarray)
    c0 = 8 if weight.dtype == np.int32 else 32
    expected = tuple(nz_storage_shape(origin, c0))
    if storage.shape != expected:
        raise ValueError(
            f"weight.shape={storage.shape}: FRACTAL_NZ storage of a {weight.dtype} origin "
            f"{origin} must have shape {expected} (C0={c0}, ops-semantics 1.1/2.4)"
        )
    if not values:
        return placeholder(origin, storage.dtype)
    return np.asarray(nz_to_nd(storage, origin))


def _packed_nd(weight: np.ndarray) -> np.ndarray:
    """An ND int32-packed int4 weight in its stored layout, copied: the (K, N/8) matrix, or the
    contiguous (N, K/8) matrix of a transposed (K/8, N) view."""
    stored = weight.T if is_transpose_last_two_dims(weight) else weight
    return np.array(stored, dtype=np.int32, order="C", copy=True)


def _decode_weight(weight: np.ndarray, split: bool, values: bool = True
                   ) -> tuple[np.ndarray, str, str, bool]:
    """(K, N) int8 values (zeros when not ``values``), weight dtype, format, trans_b."""
    fmt = getattr(weight, "npu_format", ACL_FORMAT_ND)
    if weight.dtype not in (np.int8, np.int32):
        raise TypeError(
            f"weight.dtype={weight.dtype}: must be int8, or int32 carrying 8 int4 values "
            "(float32 FP4 packing is Ascend950-only; ops-semantics 5.2)"
        )
    w_dtype = "int8" if weight.dtype == np.int8 else "int4"
    if fmt == ACL_FORMAT_FRACTAL_NZ:
        nd = _nz_origin(weight, values)
        trans = bool(getattr(weight, NZ_TRANSPOSED_ATTR, False))
        vals = _unpack(nd, values) if w_dtype == "int4" else nd
        return (vals.T if trans else vals), w_dtype, "NZ", trans
    if fmt != ACL_FORMAT_ND:
        raise ValueError(
            f"weight npu_format={fmt!r}: must be ND ({ACL_FORMAT_ND}) or FRACTAL_NZ "
            f"({ACL_FORMAT_FRACTAL_NZ})"
        )
    if split and weight.ndim != 2:
        raise ValueError(
            f"weight.ndim={weight.ndim}: weight's dim should be in range [2, 2] on A2/A3"
        )
    if not 2 <= weight.ndim <= 6:
        raise ValueError(f"weight.ndim={weight.ndim}: must be in range [2, 6]")
    _require_nonempty("weight", weight)
    if weight.ndim != 2:
        raise NotImplementedError(
            f"weight.ndim={weight.ndim}: batched weights (310P) are not implemented"
        )
    trans = is_transpose_last_two_dims(weight)
    if w_dtype == "int8":
        return np.asarray(weight), w_dtype, "ND", trans
    if trans:  # (K/8, N) view of a contiguous (N, K/8) packed matrix
        return _unpack(weight.T, values).T, w_dtype, "ND", trans
    return _unpack(weight, values), w_dtype, "ND", trans


# --------------------------------------------------------------------------------------------
# antiquant / quant / bias parameters


def _antiquant_scale_shape(scale: np.ndarray, k: int, n: int, g: int) -> tuple[int, int]:
    """(G, N) logical shape of antiquant_scale, or ValueError (aclnn shape rules)."""
    shape = tuple(scale.shape)
    if g == 0:
        if scale.ndim == 1 and _shape_is(shape, (1,), (n,)):
            return (1, shape[0])
        if scale.ndim == 2 and _shape_is(shape, (1, n), (1, 1)):
            return (1, shape[1])
        raise ValueError(
            f"antiquant_scale.shape={shape}: without antiquant_group_size it must be (1,), "
            f"({n},), (1, {n}) or (1, 1) (ops-semantics 5.2)"
        )
    groups = math.ceil(k / g)
    if shape != (groups, n):
        raise ValueError(
            f"antiquant_scale.shape={shape}: with antiquant_group_size={g} it must be "
            f"(ceil(k/g), n) = ({groups}, {n}) (pass the transposed view of an "
            f"({n}, {groups}) array when the weight is transposed; ops-semantics 5.2)"
        )
    return shape


def _quant_type(scale_count: int, g: int) -> str:
    if scale_count == 1:
        return PER_TENSOR
    return PER_GROUP if g > 0 else PER_CHANNEL


def _quant_param(
    quant_scale: np.ndarray, quant_offset: np.ndarray | None, n: int
) -> tuple[np.ndarray, str]:
    shape = tuple(quant_scale.shape)
    if not _shape_is(shape, (1,), (n,), (1, n)):
        raise ValueError(
            f"quant_scale.shape={shape}: must be (1,), ({n},) or (1, {n}) (seed 002, "
            "ops-semantics 5.2)"
        )
    if quant_offset is not None and tuple(quant_offset.shape) != shape:
        raise ValueError(
            f"quant_offset.shape={tuple(quant_offset.shape)}: must equal quant_scale.shape="
            f"{shape} (seed 002)"
        )
    count = int(quant_scale.size)
    kind = PER_TENSOR if count == 1 else PER_CHANNEL
    if quant_scale.dtype in (np.int64, np.uint64):
        return quant_scale.reshape(count).view(np.int64).copy(), kind
    from npusim.numerics import encode_quant_param

    scale = np.ascontiguousarray(quant_scale, dtype=np.float32).reshape(count)
    off = (
        None
        if quant_offset is None
        else np.ascontiguousarray(quant_offset, dtype=np.float32).reshape(count)
    )
    return np.asarray(encode_quant_param(scale, off, 0), dtype=np.int64), kind


def _check_nz_rules(
    w_dtype: str, quant_type: str, trans_a: bool, trans_b: bool, g: int, k: int, n: int
) -> None:
    """aclnn rules for an int4 FRACTAL_NZ weight (ops-semantics 5.2, seed 002)."""
    if w_dtype != "int4":
        return
    if quant_type == PER_TENSOR:
        raise ValueError(
            "antiquant_scale has one element (per-tensor): an int4 FRACTAL_NZ weight supports "
            "per-channel and per-group only (ops-semantics 5.2)"
        )
    if quant_type == PER_CHANNEL and not trans_b:
        raise ValueError(
            "weight: an int4 FRACTAL_NZ weight in the per-channel case must be transposed "
            "(pass transpose_nz(w) of the (N, K/8) matrix; seed 002)"
        )
    if quant_type == PER_GROUP:
        if trans_a or trans_b:
            raise ValueError(
                f"trans_a={trans_a}, trans_b={trans_b}: an int4 FRACTAL_NZ weight in the "
                "per-group case needs x and weight non-transposed (ops-semantics 5.2)"
            )
        if g not in (64, 128) or k % g != 0 or n % 64 != 0:
            raise ValueError(
                f"antiquant_group_size={g}, k={k}, n={n}: an int4 FRACTAL_NZ per-group weight "
                "needs group size 64 or 128, k % group == 0 and n % 64 == 0 (seed 002)"
            )


def _check_bias(bias: np.ndarray, x_dtype: str, n: int) -> np.ndarray:
    want = "float16" if x_dtype == "float16" else "float32"
    if _dtype_name(bias) != want:
        raise TypeError(
            f"bias.dtype={bias.dtype}: when x is {x_dtype} bias must be {want} (seed 002, "
            "ops-semantics 5.2)"
        )
    if not _shape_is(tuple(bias.shape), (n,), (1, n)):
        raise ValueError(
            f"bias.shape={tuple(bias.shape)}: must be ({n},) or (1, {n}) (aclnn; seed 002's "
            "(1,) is accepted only when n == 1)"
        )
    return np.ascontiguousarray(bias).reshape(n)


def _check_int64_scale_path(
    x_dtype: str, w_dtype: str, w_format: str, offset: np.ndarray | None, quant_scale: Any
) -> None:
    if w_format != "ND":
        raise ValueError(
            "weight: an int64 antiquant_scale needs an ND weight, got FRACTAL_NZ (seed 002)"
        )
    if x_dtype != "float16":
        raise TypeError(f"x.dtype={x_dtype}: an int64 antiquant_scale needs float16 x (seed 002)")
    if w_dtype != "int8":
        raise TypeError(
            f"weight dtype={w_dtype}: an int64 antiquant_scale needs an int8 weight (seed 002)"
        )
    if quant_scale is not None:
        raise ValueError(
            "quant_scale: must be None when antiquant_scale is int64 (output is float16; seed 002)"
        )
    if offset is not None:
        if offset.dtype != np.int32:
            raise TypeError(
                f"antiquant_offset.dtype={offset.dtype}: must be int32 when antiquant_scale "
                "is int64 (seed 002)"
            )
        lo, hi = int(offset.min()), int(offset.max())
        if lo < -128 or hi > 127:
            raise ValueError(
                f"antiquant_offset values in [{lo}, {hi}]: with an int64 antiquant_scale the "
                "int32 offset must lie in [-128, 127] (aclnn doc, ops-semantics 5.2)"
            )


# --------------------------------------------------------------------------------------------


def normalize_args(
    x: np.ndarray,
    weight: np.ndarray,
    antiquant_scale: np.ndarray,
    antiquant_offset: np.ndarray | None = None,
    quant_scale: np.ndarray | None = None,
    quant_offset: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    antiquant_group_size: int = 0,
    inner_precise: int = 0,
    *,
    soc: SocArg = None,
    values: bool = True,
) -> WqbmmArgs:
    """Validate one npu_weight_quant_batchmatmul call and return its logical form.

    ``values=False`` (timing-only runs on placeholder arrays): shapes, dtypes and layouts are
    validated as usual but an int4 weight is not unpacked (its int8 values are zeros) and
    placeholder inputs (:func:`placeholder`) stay zero-stride views: no data-sized copy."""
    facts = soc_facts(soc)
    split = facts.split
    x = _require_array("x", x)
    weight = _require_array("weight", weight)
    antiquant_scale = _require_array("antiquant_scale", antiquant_scale)
    g = _require_int("antiquant_group_size", antiquant_group_size)
    inner_precise = _require_int("inner_precise", inner_precise)

    # x
    x_dtype = _dtype_name(x)
    allowed_x = ("float16", "bfloat16") if split else ("float16",)
    if x_dtype not in allowed_x:
        raise TypeError(f"x.dtype={x.dtype}: must be one of {allowed_x} on {facts.name}")
    if split and x.ndim != 2:
        raise ValueError(f"x.ndim={x.ndim}: x's dim should be in range [2, 2] on A2/A3")
    if not 2 <= x.ndim <= 6:
        raise ValueError(f"x.ndim={x.ndim}: x's dim should be in range [2, 6]")
    if x.ndim != 2:
        raise NotImplementedError(f"x.ndim={x.ndim}: batched x (310P) is not implemented")
    _require_nonempty("x", x)
    trans_a = is_transpose_last_two_dims(x)
    m, k_x = (int(v) for v in x.shape)

    # weight
    if not split and weight.dtype != np.int8:
        raise TypeError(f"weight.dtype={weight.dtype}: must be int8 on {facts.name} (seed 002)")
    w, w_dtype, w_format, trans_b = _decode_weight(weight, split, values)
    k, n = (int(v) for v in w.shape)
    if k != k_x:
        raise ValueError(
            f"The k of x and weight should be equal. but x_k_dim is {k_x}, weight_k_dim is {k}"
        )
    if k > MAX_KN or n > MAX_KN:
        raise ValueError(f"k={k}, n={n}: k,n shouldn't be larger than {MAX_KN}")
    if m > (MAX_KN if trans_a else MAX_M):
        raise ValueError(
            f"m={m}: must be at most {MAX_KN if trans_a else MAX_M} "
            f"({'transposed' if trans_a else 'non-transposed'} x; seed 002)"
        )
    if w_dtype == "int4" and (k if trans_b else n) % 2 != 0:
        raise ValueError(
            f"{'k' if trans_b else 'n'}={k if trans_b else n}: must be even for an int4 weight"
        )

    # attributes
    if g != 0 and not (32 <= g <= k - 1 and g % 32 == 0):
        raise ValueError(
            f"antiquant_group_size={g}: antiquant_group_size can be either 0 or a multiple of "
            f"32 within the range 32 to weight_k_dim - 1 (= {k - 1})."
        )
    if not split and g != 0:
        raise ValueError(
            f"antiquant_group_size={g}: not supported on {facts.name} (per-channel only; seed 002)"
        )
    if inner_precise not in (0, 1):
        raise ValueError(f"inner_precise={inner_precise}: cannot support it, only support 0 or 1")

    # antiquant scale / offset
    _require_nonempty("antiquant_scale", antiquant_scale)
    s_dtype = _dtype_name(antiquant_scale)
    if s_dtype == "uint64":
        s_dtype = "int64"
    if s_dtype not in ("float16", "bfloat16", "int64"):
        raise TypeError(
            f"antiquant_scale.dtype={antiquant_scale.dtype}: must be float16, bfloat16 or int64"
        )
    if s_dtype != "int64" and s_dtype != x_dtype:
        raise TypeError(f"antiquant_scale.dtype={s_dtype}: must equal x.dtype={x_dtype} (seed 002)")
    if not split and s_dtype != "float16":
        raise TypeError(
            f"antiquant_scale.dtype={s_dtype}: must be float16 on {facts.name} (seed 002)"
        )
    s_shape = _antiquant_scale_shape(antiquant_scale, k, n, g)
    offset = None
    if antiquant_offset is not None:
        antiquant_offset = _require_array("antiquant_offset", antiquant_offset)
        _require_nonempty("antiquant_offset", antiquant_offset)
        if tuple(antiquant_offset.shape) != tuple(antiquant_scale.shape):
            raise ValueError(
                f"antiquant_offset.shape={tuple(antiquant_offset.shape)}: must equal "
                f"antiquant_scale.shape={tuple(antiquant_scale.shape)} (seed 002)"
            )
        if s_dtype != "int64" and _dtype_name(antiquant_offset) != s_dtype:
            raise TypeError(
                f"antiquant_offset.dtype={antiquant_offset.dtype}: must equal "
                f"antiquant_scale.dtype={s_dtype} (seed 002)"
            )
        offset = _contiguous(antiquant_offset, values).reshape(s_shape)
    if s_dtype == "int64":
        _check_int64_scale_path(x_dtype, w_dtype, w_format, antiquant_offset, quant_scale)
        scale = _contiguous(antiquant_scale, values).reshape(s_shape).view(np.int64)
    else:
        scale = _contiguous(antiquant_scale, values).reshape(s_shape)
    quant_type = _quant_type(int(antiquant_scale.size), g)
    if not split and quant_type != PER_CHANNEL:
        raise ValueError(
            f"antiquant_scale.shape={tuple(antiquant_scale.shape)}: {facts.name} supports "
            "per-channel quantisation only (seed 002)"
        )

    # quant scale / offset (int8 output)
    if quant_offset is not None and quant_scale is None:
        raise ValueError(
            "quant_offset: given without quant_scale; it cannot exist alone (seed 002)"
        )
    quant_param = None
    quant_scale_type = None
    if quant_scale is not None:
        quant_scale = _require_array("quant_scale", quant_scale)
        _require_nonempty("quant_scale", quant_scale)
        if not split:
            raise ValueError(f"quant_scale: not supported on {facts.name} (seed 002)")
        if quant_scale.dtype not in (np.float32, np.int64, np.uint64):
            raise TypeError(f"quant_scale.dtype={quant_scale.dtype}: must be float32 or int64")
        if w_format == "NZ":
            raise ValueError(
                "quant_scale: int8 output is supported only for an ND weight (seed 002)"
            )
        if quant_offset is not None:
            quant_offset = _require_array("quant_offset", quant_offset)
            _require_nonempty("quant_offset", quant_offset)
            if quant_offset.dtype != np.float32:
                raise TypeError(f"quant_offset.dtype={quant_offset.dtype}: must be float32")
        quant_param, quant_scale_type = _quant_param(quant_scale, quant_offset, n)
    out_dtype = "int8" if quant_param is not None else x_dtype

    # bias
    bias_n = None
    if bias is not None:
        bias = _require_array("bias", bias)
        _require_nonempty("bias", bias)
        bias_n = _check_bias(bias, x_dtype, n)

    if w_format == "NZ":
        _check_nz_rules(w_dtype, quant_type, trans_a, trans_b, g, k, n)

    return WqbmmArgs(
        x=_contiguous(x, values),
        weight=np.ascontiguousarray(w, dtype=np.int8) if values else np.asarray(w),
        antiquant_scale=scale,
        antiquant_offset=offset,
        quant_param=quant_param,
        bias=bias_n,
        x_dtype=x_dtype,
        weight_dtype=w_dtype,
        weight_format=w_format,
        scale_dtype=s_dtype,
        out_dtype=out_dtype,
        trans_a=trans_a,
        trans_b=trans_b,
        group_size=g,
        inner_precise=inner_precise,
        quant_type=quant_type,
        quant_scale_type=quant_scale_type,
        m=m,
        k=k,
        n=n,
        packed_weight=_packed_nd(weight) if values and w_dtype == "int4" and w_format == "ND"
        else None,
    )
