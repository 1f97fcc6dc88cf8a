"""torch_npu-named elementwise operators: int4pack, trans_quant_param, group_quant, format_cast.

Same names, signatures and defaults as torch_npu, plus ``soc=`` (a SoC name, default the package
default ``Ascend910B2``, or a loaded descriptor). numpy in -> numpy out; torch CPU tensors in ->
torch tensors out. Each call checks that the op exists on the SoC family (seeds 000, 003, 004),
validates every argument and returns the NPU's bits (the ``reference_*`` functions of
``npusim.ops``). A FRACTAL_NZ result carries ``npu_format`` and ``origin_shape`` so it can be fed
to the next op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from npusim.torch_npu._convert import to_numpy, to_output

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.torch_npu._state import SocArg

A2_A3_PREFIXES = ("Ascend910B", "Ascend910_93")
ATLAS_310P_PREFIXES = ("Ascend310P",)

# op -> (SoC name prefixes it runs on, the products as the seed docs name them)
SUPPORTED_SOCS: dict[str, tuple[tuple[str, ...], str]] = {
    "npu_convert_weight_to_int4pack": (A2_A3_PREFIXES, "Atlas A2 / A3 only (seed 000)"),
    "npu_trans_quant_param": (A2_A3_PREFIXES + ATLAS_310P_PREFIXES,
                              "Atlas A2 / A3 and Atlas inference (310P) only (seed 003)"),
    "npu_group_quant": (A2_A3_PREFIXES, "Atlas A2 / A3 only (seed 004)"),
    "npu_format_cast": (A2_A3_PREFIXES + ATLAS_310P_PREFIXES,
                        "Atlas A2 / A3 and Atlas inference (310P) only"),
}


def soc_name(soc: SocArg) -> str:
    """The SoC name of ``soc``: None -> the package default; a name; or a descriptor's name."""
    if soc is None:
        from npusim.torch_npu._state import current_soc

        return current_soc()
    if isinstance(soc, str):
        from npusim.hw.loader import list_socs

        known = list_socs()
        if soc not in known:
            raise ValueError(f"soc: {soc!r} is not a known SoC; must be one of {known}")
        return soc
    name = getattr(soc, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"soc: must be a SoC name or a SoC descriptor, got {soc!r}")
    return name


def _where(name: str, soc: SocArg) -> str | SocDescriptor:
    """The SoC a program runs on: the call's descriptor when it passed one, else its name."""
    return name if soc is None or isinstance(soc, str) else soc


def check_soc(op: str, soc: SocArg) -> str:
    """The SoC name, after checking that ``op`` exists on its family."""
    name = soc_name(soc)
    prefixes, products = SUPPORTED_SOCS[op]
    if not name.startswith(prefixes):
        raise ValueError(f"soc: {op} is not supported on {name}; it runs on {products}")
    return name


def npu_convert_weight_to_int4pack(weight: Any, inner_k_tiles: int = 0, *, soc: SocArg = None,
                                   emulate_hardware_masking: bool = False) -> Any:
    """int32 (k, n) values in [-8, 7] -> int32 (k, n/8), 8 int4 per word; FRACTAL_NZ input ->
    NZ storage (ceil(n/64), ceil(k/16), 16, 8). Host work in torch_npu (no NPU kernel).
    Out-of-range values raise unless ``emulate_hardware_masking`` (then ``& 0xF`` as the host
    loop does)."""
    from npusim.ops.int4pack import reference_int4pack

    check_soc("npu_convert_weight_to_int4pack", soc)
    w, was_torch = to_numpy(weight)
    out = reference_int4pack(w, inner_k_tiles, emulate_hardware_masking=emulate_hardware_masking)
    return to_output(out, was_torch)


def npu_trans_quant_param(scale: Any, offset: Any = None, round_mode: int = 0, *,
                          soc: SocArg = None, fidelity: str | None = None) -> Any:
    """float32 scale (+ offset) -> int64 FixPipe quant parameters (round_mode 0 truncates the
    scale to 19 bits, 1 rounds to nearest even). ``fidelity``: "program" (default) returns the
    ``trans_quant_param`` program's output, "reference" computes
    :func:`~npusim.ops.trans_quant_param.reference_trans_quant_param`."""
    from npusim.ops.trans_quant_param import (
        reference_trans_quant_param,
        validate_trans_quant_param,
    )
    from npusim.torch_npu._fidelity import program_outputs, use_program

    where = _where(check_soc("npu_trans_quant_param", soc), soc)
    s, was_torch = to_numpy(scale)
    o, _ = to_numpy(offset)
    if not use_program(fidelity):
        return to_output(reference_trans_quant_param(s, o, round_mode), was_torch)
    sa, oa, _, _ = validate_trans_quant_param(s, o, round_mode)
    out = program_outputs("npu_trans_quant_param", "trans_quant_param", where,
                          scale=np.ascontiguousarray(sa),
                          offset=None if oa is None else np.ascontiguousarray(oa),
                          round_mode=round_mode)
    return to_output(np.asarray(out), was_torch)


def npu_group_quant(x: Any, scale: Any, group_index: Any, *, offset: Any = None,
                    dst_dtype: Any = None, soc: SocArg = None,
                    emulate_hardware_trap: bool = False, fidelity: str | None = None) -> Any:
    """Per-group quantisation of x (S, H) to int8, or to int4 packed in int32 (S, H/8) for
    ``dst_dtype=torch.quint4x2``. A bad group_index raises ValueError unless
    ``emulate_hardware_trap`` (then HardwareTrapError, as the device traps). ``fidelity``:
    "program" (default) returns the ``group_quant`` program's output, "reference" computes
    :func:`~npusim.ops.group_quant.reference_group_quant`."""
    from npusim.ops.group_quant import reference_group_quant, validate_group_quant
    from npusim.torch_npu._fidelity import program_outputs, use_program

    where = _where(check_soc("npu_group_quant", soc), soc)
    xa, was_torch = to_numpy(x)
    sa, _ = to_numpy(scale)
    gi, _ = to_numpy(group_index)
    off, _ = to_numpy(offset)
    if not use_program(fidelity):
        out = reference_group_quant(xa, sa, gi, off, dst_dtype,
                                    emulate_hardware_trap=emulate_hardware_trap)
        return to_output(out, was_torch)
    kind = validate_group_quant(xa, sa, gi, off, dst_dtype,
                                emulate_hardware_trap=emulate_hardware_trap)
    if np.asarray(xa).size == 0:  # aclnn launches no kernel: an empty output, no values
        rows, h = np.asarray(xa).shape
        return to_output(np.zeros((rows, h // 8 if kind == "int4" else h),
                                  np.int32 if kind == "int4" else np.int8), was_torch)
    out = program_outputs("npu_group_quant", "group_quant", where, x=np.ascontiguousarray(xa),
                          scale=np.ascontiguousarray(sa), group_index=np.asarray(gi),
                          offset=off, dst_dtype=kind)
    return to_output(np.asarray(out), was_torch)


def npu_format_cast(x: Any, acl_format: Any, *, customize_dtype: Any = None,
                    input_dtype: Any = None, soc: SocArg = None,
                    fidelity: str | None = None) -> Any:
    """``x`` in ``acl_format`` (an int, or a tensor whose format to adopt).

    torch tensors follow torch_npu's tensor model (:mod:`npusim.torch_npu._tensor`): the result
    has ``x``'s logical shape and values, ``get_npu_format`` reports the new format, views and
    ``requires_grad`` are kept, a 0-D / 1-D tensor asked for NZ stays ND, base formats (ND,
    NCHW, NCDHW, ...) are relabelled in place. numpy arrays: ND (2) <-> FRACTAL_NZ (29) only,
    the NZ result being the ``FormattedArray`` storage. ``fidelity``: "program" (default) takes
    the ND <-> NZ storage from the ``format_cast`` program's run, "reference" from
    :mod:`npusim.layouts`."""
    from npusim.torch_npu._convert import is_torch_tensor
    from npusim.torch_npu._fidelity import program_outputs
    from npusim.torch_npu._state import resolve_fidelity

    where = _where(check_soc("npu_format_cast", soc), soc)
    fid = resolve_fidelity(fidelity)
    if is_torch_tensor(x):
        from npusim.torch_npu import _tensor

        return _tensor.npu_format_cast(x, acl_format, customize_dtype, input_dtype,
                                       soc=where, fidelity=fid)
    from npusim.ops.format_cast import reference_format_cast, validate_format_cast

    if customize_dtype is not None or input_dtype is not None:
        raise NotImplementedError("npu_format_cast: customize_dtype= / input_dtype= are "
                                  "modelled for torch tensors only")
    if fid == "reference":
        return reference_format_cast(x, acl_format)
    src, dst = validate_format_cast(x, acl_format)
    if src == dst or np.asarray(x).size == 0:  # torch_npu launches no kernel for these
        return reference_format_cast(x, acl_format)
    return program_outputs("npu_format_cast", "format_cast", where, x=x,
                           acl_format=int(acl_format))


def npu_format_cast_(x: Any, acl_format: Any, *, customize_dtype: Any = None,
                     input_dtype: Any = None, soc: SocArg = None,
                     fidelity: str | None = None) -> Any:
    """In-place ``npu_format_cast`` of a torch tensor (returns ``x``; ``fidelity`` as
    :func:`npu_format_cast`)."""
    from npusim.torch_npu import _tensor
    from npusim.torch_npu._convert import is_torch_tensor
    from npusim.torch_npu._state import resolve_fidelity

    where = _where(check_soc("npu_format_cast", soc), soc)
    fid = resolve_fidelity(fidelity)
    if not is_torch_tensor(x):
        raise TypeError(f"x: npu_format_cast_ needs a torch tensor, got {type(x).__name__}")
    return _tensor.npu_format_cast_(x, acl_format, customize_dtype, input_dtype, where, fid)


def get_npu_format(x: Any) -> int:
    """``torch_npu.get_npu_format``: the ACL format of ``x``'s storage."""
    from npusim.torch_npu._tensor import get_npu_format as fmt

    return fmt(x)
