"""The NPU tensor model on torch CPU tensors: a storage descriptor shared by every view.

torch_npu keeps a descriptor per *storage* (``npu_desc_``: format, base sizes, storage sizes);
all views of a storage report its format. npusim does the same: the descriptor is an attribute
of the storage's Python object (torch keeps one Python object per storage, shared by all views
and by ``param.data = t``), so ``.t()``, ``.transpose``, slicing, ``.view`` and
``Parameter.data`` assignment all keep the format, and a new storage (``.contiguous()`` of a
view, ``.clone()``, any computed result) starts from torch_npu's default for its shape.

Values: the tensor always holds its *logical* (ND) values, so every torch operation on it is
ordinary CPU torch. The storage is allocated with torch_npu's storage size for the format (for
FRACTAL_NZ the padded (..., ceil(N/C0), ceil(M/16), 16, C0) element count), the logical base
tensor occupying its first elements contiguously; the NZ byte order itself is produced on demand
by :func:`npu_storage_array` (bit-exact to :func:`npusim.layouts.nd_to_nz`). ``.storage()``
therefore shows logical values, not the NZ order - a declared difference from a device.

Formats other than ND (2) and FRACTAL_NZ (29) - NCHW 0, NHWC 1, NC1HWC0 3, FRACTAL_Z 4, NDHWC 27,
NCDHW 30, NDC1HWC0 32, FRACTAL_Z_3D 33 - are carried as labels with torch_npu's format-group
rules; their storage byte order is not modelled (:func:`npu_storage_array` raises for them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import torch

    from npusim.torch_npu._state import SocArg

ACL_FORMAT_NCHW = 0
ACL_FORMAT_NHWC = 1
ACL_FORMAT_ND = 2
ACL_FORMAT_NC1HWC0 = 3
ACL_FORMAT_FRACTAL_Z = 4
ACL_FORMAT_NDHWC = 27
ACL_FORMAT_FRACTAL_NZ = 29
ACL_FORMAT_NCDHW = 30
ACL_FORMAT_NDC1HWC0 = 32
ACL_FORMAT_FRACTAL_Z_3D = 33

# format -> (name, base format of its group): torch_npu FormatHelper's table
FORMATS: dict[int, tuple[str, int]] = {
    ACL_FORMAT_NCHW: ("NCHW", ACL_FORMAT_NCHW),
    ACL_FORMAT_NHWC: ("NHWC", ACL_FORMAT_NHWC),
    ACL_FORMAT_ND: ("ND", ACL_FORMAT_ND),
    ACL_FORMAT_NC1HWC0: ("NC1HWC0", ACL_FORMAT_NCHW),
    ACL_FORMAT_FRACTAL_Z: ("FRACTAL_Z", ACL_FORMAT_NCHW),
    ACL_FORMAT_NDHWC: ("NDHWC", ACL_FORMAT_NCDHW),
    ACL_FORMAT_FRACTAL_NZ: ("FRACTAL_NZ", ACL_FORMAT_ND),
    ACL_FORMAT_NCDHW: ("NCDHW", ACL_FORMAT_NCDHW),
    ACL_FORMAT_NDC1HWC0: ("NDC1HWC0", ACL_FORMAT_NCDHW),
    ACL_FORMAT_FRACTAL_Z_3D: ("FRACTAL_Z_3D", ACL_FORMAT_NCDHW),
}
_DESC_ATTR = "_npusim_npu_desc"

# torch ScalarType codes torch_npu's customize_dtype integers use (c10 ScalarType enum)
_SCALAR_TYPE_CODES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16",
                      6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}


@dataclass
class NpuDesc:
    """One storage's descriptor: format, the base (logical, contiguous) sizes the storage holds,
    the FRACTAL_NZ C0 (elements per fractal row) when the format is NZ, and the NZ byte order
    last produced for it (``storage``, from the base values ``storage_of``)."""

    npu_format: int
    base_sizes: tuple[int, ...]
    c0: int | None = None
    storage: np.ndarray | None = None
    storage_of: np.ndarray | None = None


def format_name(fmt: int) -> str:
    return FORMATS[fmt][0]


def is_base_format(fmt: int) -> bool:
    return FORMATS[fmt][1] == fmt


def check_format(acl_format: Any, arg: str = "acl_format") -> int:
    """``acl_format`` as a known ACL format int (a tensor gives its own format)."""
    from npusim.torch_npu._convert import is_torch_tensor

    if is_torch_tensor(acl_format):
        return get_npu_format(acl_format)
    if isinstance(acl_format, bool) or not isinstance(acl_format, int | np.integer):
        raise TypeError(f"{arg}: must be an int ACL format or a tensor whose format to adopt, "
                        f"got {acl_format!r}")
    fmt = int(acl_format)
    if fmt not in FORMATS:
        known = ", ".join(f"{k} ({v[0]})" for k, v in sorted(FORMATS.items()))
        raise ValueError(f"{arg}: {fmt} is not an ACL format npusim knows; known: {known}")
    return fmt


def default_format(shape: tuple[int, ...]) -> int:
    """torch_npu's format for a fresh tensor (InferFormat::GuessFormatUnit of ND): NCHW for 4-D,
    ND otherwise."""
    return ACL_FORMAT_NCHW if len(shape) == 4 else ACL_FORMAT_ND


def guess_storage_format(shape: tuple[int, ...], fmt: int) -> int:
    """The format torch_npu gives a new tensor of ``shape`` asked for in ``fmt``
    (InferFormat::GuessStorageFormat, then GuessFormatUnit for ND on 4-D)."""
    dim = len(shape)
    base = FORMATS[fmt][1]
    if fmt == ACL_FORMAT_FRACTAL_NZ and dim < 2:
        return ACL_FORMAT_ND  # scalars and 1-D tensors cannot be NZ
    if fmt == ACL_FORMAT_NCDHW:
        return {4: ACL_FORMAT_NCHW, 5: ACL_FORMAT_NCDHW}.get(dim, ACL_FORMAT_ND)
    if fmt == ACL_FORMAT_NCHW and dim != 4:
        return ACL_FORMAT_ND
    if dim == 0 or (dim == 1 and shape[0] == 1 and base == ACL_FORMAT_ND):
        return ACL_FORMAT_ND
    if fmt == ACL_FORMAT_ND and dim == 4:
        return ACL_FORMAT_NCHW
    return fmt


def desc_of(t: torch.Tensor) -> NpuDesc | None:
    """The descriptor attached to ``t``'s storage, or None (a tensor npusim never registered)."""
    return getattr(t.untyped_storage(), _DESC_ATTR, None)


def registered_desc(t: torch.Tensor) -> NpuDesc:
    """The descriptor of a tensor whose storage npusim registered - every storage of a
    non-default format (FRACTAL_NZ) is; a ValueError if ``t``'s is not (not reached)."""
    desc = desc_of(t)
    if desc is None:
        raise ValueError("tensor: its storage carries no npusim NPU descriptor")
    return desc


def is_npu(t: torch.Tensor) -> bool:
    """True when ``t``'s storage carries an npusim descriptor (it 'lives on the NPU')."""
    return desc_of(t) is not None


def get_npu_format(t: object) -> int:
    """``torch_npu.get_npu_format``: the storage's format; a tensor without a descriptor has
    torch_npu's default for its shape. numpy arrays report their ``npu_format`` (else ND)."""
    from npusim.torch_npu._convert import is_torch_tensor

    if not is_torch_tensor(t):
        from npusim.layouts import npu_format_of

        return npu_format_of(t)
    desc = desc_of(t)
    return default_format(tuple(t.shape)) if desc is None else desc.npu_format


def register(t: torch.Tensor, fmt: int | None = None, base_sizes: Sequence[int] | None = None,
             c0: int | None = None) -> torch.Tensor:
    """Attach a descriptor to ``t``'s storage (default: its shape's default format) and return
    ``t``. Used for ``.npu()`` and for npusim operator outputs."""
    shape = tuple(int(s) for s in (t.shape if base_sizes is None else base_sizes))
    fmt = default_format(shape) if fmt is None else fmt
    setattr(t.untyped_storage(), _DESC_ATTR, NpuDesc(fmt, shape, c0))
    return t


def _ensure_desc(t: torch.Tensor) -> NpuDesc:
    """``t``'s descriptor, attached first when missing: a tensor that is its whole storage is
    its own base; a view of an unregistered storage gets the flat storage as its base."""
    desc = desc_of(t)
    if desc is None:
        whole = (t.is_contiguous() and t.storage_offset() == 0
                 and t.numel() * t.element_size() == t.untyped_storage().nbytes())
        register(t, None, None if whole else (t.untyped_storage().nbytes() // t.element_size(),))
        desc = registered_desc(t)
    return desc


def customize_c0(customize_dtype: Any) -> int:
    """C0 for an explicit ``customize_dtype`` (a torch dtype or a ScalarType code):
    32 bytes / its item size (int32 -> 8, float16 -> 16, int8 -> 32)."""
    import torch

    if isinstance(customize_dtype, torch.dtype):
        name = str(customize_dtype).removeprefix("torch.")
    elif isinstance(customize_dtype, int) and not isinstance(customize_dtype, bool):
        if customize_dtype not in _SCALAR_TYPE_CODES:
            raise ValueError(f"customize_dtype: ScalarType code {customize_dtype} not supported; "
                             f"one of {_SCALAR_TYPE_CODES}")
        name = _SCALAR_TYPE_CODES[customize_dtype]
    else:
        raise TypeError(f"customize_dtype: must be a torch dtype or a ScalarType int, got "
                        f"{customize_dtype!r}")
    if name in ("bool", "float64"):
        raise ValueError(f"customize_dtype: {name} has no FRACTAL_NZ layout")
    itemsize = np.dtype(name if name != "bfloat16" else "float16").itemsize
    return 32 // itemsize


def storage_elements(desc: NpuDesc) -> int:
    """Elements torch_npu allocates for ``desc`` (NZ: the padded fractal count; the other
    formats: the base element count - their padding is not modelled)."""
    from npusim.layouts.nz import nz_storage_shape

    if desc.npu_format == ACL_FORMAT_FRACTAL_NZ:
        if desc.c0 is None:  # an NZ descriptor always has its C0; nz_storage_shape's error
            raise TypeError("c0: must be an int, got None")
        return math.prod(nz_storage_shape(desc.base_sizes, desc.c0))
    return math.prod(desc.base_sizes)


def base_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole logical base tensor of ``t``'s storage (``t`` itself when it is the base); a
    tensor without a descriptor is its own base (contiguous copy when it is a view)."""
    import torch

    desc = desc_of(t)
    if desc is None:
        return t.contiguous()
    base = desc.base_sizes
    if tuple(t.shape) == base and t.is_contiguous() and t.storage_offset() == 0:
        return t
    strides = tuple(int(s) for s in torch.empty(base, device="meta").stride())
    return torch.as_strided(t.detach(), base, strides, 0)


def new_formatted(values: torch.Tensor, fmt: int, c0: int | None = None) -> torch.Tensor:
    """A fresh tensor holding ``values`` (its base) in a storage sized for ``fmt``."""
    import torch

    values = values.detach().contiguous()
    shape = tuple(values.shape)
    desc = NpuDesc(fmt, shape, c0)
    n = max(storage_elements(desc), values.numel())
    flat = torch.zeros(n, dtype=values.dtype)
    flat[: values.numel()] = values.reshape(-1)
    out = flat.as_strided(shape, values.stride() if values.numel() else (1,) * len(shape), 0)
    setattr(out.untyped_storage(), _DESC_ATTR, desc)
    return out


class _Identity:
    """Autograd identity whose forward builds the new storage (format casts keep requires_grad
    and pass gradients through, as torch_npu's do)."""

    _fn: type[torch.autograd.Function] | None = None

    @classmethod
    def apply(cls, x: torch.Tensor,
              build: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        import torch

        if cls._fn is None:
            class Fn(torch.autograd.Function):
                @staticmethod
                def forward(ctx: Any, inp: Any, builder: Any) -> Any:
                    return builder(inp)

                @staticmethod
                def backward(ctx: Any, grad: Any) -> Any:
                    return grad, None

            cls._fn = Fn
        if x.requires_grad and torch.is_grad_enabled():
            # torch.autograd.Function.apply has no annotations
            return cast("Callable[..., torch.Tensor]", cls._fn.apply)(x, build)
        return build(x)


def _cast_storage(x: torch.Tensor, fmt: int, c0: int | None,
                  values: torch.Tensor | None = None) -> torch.Tensor:
    """A new tensor viewing a new storage of format ``fmt`` that holds ``x``'s base (or
    ``values``, the base as a kernel wrote it), with ``x``'s sizes, strides and offset
    (torch_npu: "format cast only changes the physical layout of the base tensor; a view's
    metadata is unchanged")."""
    base = base_tensor(x) if values is None else values
    same_base = desc_of(x) is not None

    def build(inp: torch.Tensor) -> torch.Tensor:
        stored = new_formatted(base, fmt, c0)
        if not same_base:
            return stored.view(inp.shape) if stored.shape != inp.shape else stored
        return stored.as_strided(tuple(inp.shape), tuple(inp.stride()), inp.storage_offset())

    return _Identity.apply(x, build)


def _target(x: torch.Tensor, fmt: int, customize_dtype: Any) -> tuple[int, int | None]:
    """(format the result will have, its NZ C0)."""
    from npusim.layouts.nz import nz_c0

    desc = desc_of(x)
    base = tuple(x.shape) if desc is None else desc.base_sizes
    new_fmt = guess_storage_format(base, fmt)
    c0 = None
    if new_fmt == ACL_FORMAT_FRACTAL_NZ:
        c0 = nz_c0(str(x.dtype).removeprefix("torch.")) if customize_dtype is None else \
            customize_c0(customize_dtype)
    return new_fmt, c0


def npu_format_cast(x: torch.Tensor, acl_format: Any, customize_dtype: Any = None,
                    input_dtype: Any = None, soc: SocArg = None, fidelity: str | None = None
                    ) -> torch.Tensor:
    """``torch_npu.npu_format_cast``: ``x`` itself when already in the format; a relabel of
    ``x``'s storage between base formats (ND, NCHW, NCDHW, ...); otherwise a new storage in the
    format, viewed as ``x`` was. FRACTAL_NZ of a 0-D / 1-D base stays ND. ND <-> FRACTAL_NZ runs
    the TransData kernel at ``fidelity`` (:func:`nz_storage`, :func:`_nd_values`)."""
    fmt = check_format(acl_format)
    if input_dtype is not None:
        raise NotImplementedError("npu_format_cast: input_dtype= (reinterpreting the source "
                                  "dtype) is not modelled")
    cur = get_npu_format(x)
    desc = desc_of(x)
    base = tuple(x.shape) if desc is None else desc.base_sizes
    if fmt == ACL_FORMAT_FRACTAL_NZ and cur == ACL_FORMAT_ND and len(base) < 2:
        fmt = ACL_FORMAT_ND
    if cur == fmt and customize_dtype is None:
        return x
    if is_base_format(cur) and is_base_format(fmt):
        _ensure_desc(x).npu_format = fmt
        return x
    new_fmt, c0 = _target(x, fmt, customize_dtype)
    values = None
    if cur == ACL_FORMAT_FRACTAL_NZ and is_base_format(new_fmt):
        values = _nd_values(x, soc, fidelity)
    out = _cast_storage(x, new_fmt, c0, values)
    if new_fmt == ACL_FORMAT_FRACTAL_NZ:
        nz_storage(out, soc, fidelity)  # the cast's kernel runs now, as on the device
    return out


def _program_fidelity(fidelity: Any) -> bool:
    from npusim.torch_npu._fidelity import use_program

    return use_program(fidelity)


def _same_bytes(a: np.ndarray, b: np.ndarray | None) -> bool:
    return b is not None and a.shape == b.shape and a.dtype == b.dtype and bool(
        np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8)))


def nz_storage(t: torch.Tensor, soc: SocArg = None, fidelity: str | None = None) -> np.ndarray:
    """The FRACTAL_NZ storage (..., N1, M1, 16, C0) of NZ tensor ``t``'s base: the one its last
    cast produced while the base values are unchanged, else produced anew (an in-place write
    into an NZ tensor runs a TransData on the device too) - at ``program`` fidelity by the
    ``format_cast`` program's run on ``soc`` (default the current SoC), at ``reference`` by
    :func:`npusim.layouts.nd_to_nz`."""
    from npusim.layouts.nz import nd_to_nz
    from npusim.torch_npu._convert import plain_numpy

    desc = registered_desc(t)  # an NZ tensor's storage is registered
    base = np.ascontiguousarray(plain_numpy(base_tensor(t)))
    if desc.storage is not None and _same_bytes(base, desc.storage_of):
        return desc.storage
    if not _program_fidelity(fidelity) or base.size == 0:  # empty: no kernel, no values
        storage = nd_to_nz(base, desc.c0)
    else:
        from npusim.torch_npu._fidelity import program_outputs
        from npusim.torch_npu._state import resolve

        storage = np.asarray(program_outputs(
            "npu_format_cast", "format_cast", resolve(soc), x=base, acl_format=29,
            c0=desc.c0)).view(np.ndarray)
    desc.storage, desc.storage_of = storage, base.copy()
    return storage


def _nd_values(x: torch.Tensor, soc: SocArg, fidelity: Any) -> torch.Tensor | None:
    """The ND base of NZ tensor ``x`` as the FRACTAL_NZ -> ND kernel writes it (a torch tensor),
    or None at ``reference`` fidelity (the tensor already holds its logical values)."""
    if not _program_fidelity(fidelity) or math.prod(registered_desc(x).base_sizes) == 0:
        return None
    from npusim.layouts import FormattedArray
    from npusim.torch_npu._convert import to_tensor
    from npusim.torch_npu._fidelity import program_outputs
    from npusim.torch_npu._state import resolve

    desc = registered_desc(x)
    src = FormattedArray(nz_storage(x, soc, fidelity), ACL_FORMAT_FRACTAL_NZ, desc.base_sizes)
    nd = program_outputs("npu_format_cast", "format_cast", resolve(soc), x=src,
                         acl_format=ACL_FORMAT_ND)
    return to_tensor(np.asarray(nd))


def npu_format_cast_(x: torch.Tensor, acl_format: Any, customize_dtype: Any = None,
                     input_dtype: Any = None, soc: SocArg = None,
                     fidelity: str | None = None) -> Any:
    """``torch_npu.npu_format_cast_``: ``x`` moved in place onto a storage of the format (a
    tensor as ``acl_format`` gives its format); returns ``x``."""
    import torch

    fmt = check_format(acl_format, "acl_format")
    cur = get_npu_format(x)
    if cur == fmt:
        return x
    if is_base_format(cur) and is_base_format(fmt):
        _ensure_desc(x).npu_format = fmt
        return x
    out = npu_format_cast(x, fmt, customize_dtype, input_dtype, soc, fidelity)
    with torch.no_grad():
        x.set_(out.untyped_storage(), out.storage_offset(), out.shape, out.stride())
    return x


def npu_storage_array(t: torch.Tensor) -> np.ndarray:
    """The bytes torch_npu's storage holds for ``t``'s base, as a numpy array: the ND values, or
    for FRACTAL_NZ the (..., N1, M1, 16, C0) storage. Other private formats raise."""
    from npusim.torch_npu._convert import plain_numpy

    fmt = get_npu_format(t)
    if fmt == ACL_FORMAT_FRACTAL_NZ:
        return nz_storage(t)
    base = plain_numpy(base_tensor(t))
    if not is_base_format(fmt):
        raise NotImplementedError(f"npu_storage_array: the byte order of {format_name(fmt)} "
                                  f"({fmt}) storage is not modelled (only ND and FRACTAL_NZ)")
    return base
