"""npu_weight_quant_batchmatmul as tiled programs: validate the call, pick CANN's kernel, build
the kernel's program (one module per kernel, registered in :data:`KERNEL_PROGRAMS`), run it.

Kernels (ops-semantics 5.4-5.6; structures from the descriptions and the ops-nn sources, not
copied): ``Custom`` and the A2/A3 ``WeightNz`` (``weight_quant_program_custom``: AIV dequant of
weight strips into a GM workspace ring, then the cube matmul); ``Msd`` / ``MsdSplitK``
(``weight_quant_program_msd`` / ``_msd_splitk``: AIV digit split of x, exact integer cube
matmuls, AIV recombination); ``MsdGroup`` (``_msdgroup``: each AIC one (N range, K range) cell,
per group int4 digit matmuls, fp32 partials atomically added); ``CustomNzSplitK``
(``_splitk``: K split over the AICs, partials reduced by the AIVs in a declared order);
``SplitK`` (``_mix_splitk``: per-group fp32 products atomically added into a zeroed workspace);
``Fixpipe`` (``_fixpipe``: identity matmul + DEQF16 into L1, then the fp16 matmul); the 310P
``WeightNz`` on the coupled AI Core (``_weight_nz``). What they share (shape, program tiling,
weight windows, flag ids, HBM bytes) is in ``weight_quant_common``.

Every kernel's functional output is replayed from its instructions (values from the semantics
table) and equals the kernel's numerics model (``compute``, the tests' oracle) bit for bit.
Adding a kernel: its selection and tiling in ``npusim.ops.weight_quant_batchmatmul``, one
program module exporting ``program(soc, s, tiling, args=None, replay=False) -> Kernel``, and
one line in :data:`KERNEL_PROGRAMS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from npusim.engine.program import Kernel
from npusim.ops.weight_quant_common import (
    NZ_WEIGHT_LAYOUT_MODEL,
    WqbmmProgramTiling,
    WqbmmShape,
    compulsory_hbm_bytes,
    default_program_tiling,
    program_tiling_from,
    validate_program_tiling,
)

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor
    from npusim.runner import Plan

A2_WEIGHT_NZ_PROGRAM_MODEL = (
    "A2/A3 WeightNz (custom_weight_nz): the Custom program and tiling (the kernel dequantises on "
    "the AIVs into a GM workspace for the cube as Custom does); the AIVs read the NZ fractals as "
    "stored (one N x 32 B run per C0 K block); the workspace is kept ND and the cube loads it "
    "with ND2NZ (the kernel writes it as NZ: declared approximation)"
)


#: kernel -> the module whose ``program(soc, s, tiling, args=None, replay=False)`` builds it on a
#: split (A2 / A3) SoC
KERNEL_PROGRAMS: dict[str, str] = {
    "Custom": "npusim.ops.weight_quant_program_custom",
    "WeightNz": "npusim.ops.weight_quant_program_custom",  # custom_weight_nz: Custom's program
    "Msd": "npusim.ops.weight_quant_program_msd",
    "MsdSplitK": "npusim.ops.weight_quant_program_msd_splitk",
    "MsdGroup": "npusim.ops.weight_quant_program_msdgroup",
    "CustomNzSplitK": "npusim.ops.weight_quant_program_splitk",
    "SplitK": "npusim.ops.weight_quant_program_mix_splitk",
    "Fixpipe": "npusim.ops.weight_quant_program_fixpipe",
}
#: the same on a coupled (310P) SoC
COUPLED_KERNEL_PROGRAMS: dict[str, str] = {"WeightNz": "npusim.ops.weight_quant_program_weight_nz"}

#: kernels whose program reads the kernel's own tiling object (tiling.py) directly
KERNEL_TILING_PROGRAMS = {"CustomNzSplitK": "CustomNzSplitKTiling", "SplitK":
                          "SplitKTiling", "Fixpipe": "FixpipeTiling",
                          "MsdGroup": "MsdGroupTiling"}


def kernel_program(kernel: str, soc: SocDescriptor) -> Callable[..., Kernel]:
    """The registered ``program`` function of ``kernel`` on ``soc``'s organisation."""
    split = soc.organisation == "split"
    table = KERNEL_PROGRAMS if split else COUPLED_KERNEL_PROGRAMS
    if kernel not in table:
        raise NotImplementedError(
            f"weight_quant_batchmatmul: no tiled program for kernel {kernel!r} on {soc.name} "
            f"(programs exist for {', '.join(table)})")
    fn: Callable[..., Kernel] = importlib.import_module(table[kernel]).program
    return fn


def build_wqbmm(soc: SocDescriptor, s: WqbmmShape, kernel: str, tiling: Any = None) -> Kernel:
    """The timing-only program of ``kernel``.

    ``tiling``: a :class:`WqbmmProgramTiling` for Custom / Msd / MsdSplitK (default:
    ``default_program_tiling``); the kernel tiling object for CustomNzSplitK
    (``CustomNzSplitKTiling``), SplitK (``SplitKTiling``), Fixpipe (``FixpipeTiling``) and
    MsdGroup (``MsdGroupTiling``), required; a ``WeightNzProgramTiling`` (optional, validated)
    for the 310P WeightNz kernel.
    """
    program = kernel_program(kernel, soc)
    if soc.organisation != "split":
        from npusim.ops.weight_quant_program_weight_nz import (
            default_weight_nz_tiling,
            validate_weight_nz_tiling,
        )

        if tiling is not None:
            validate_weight_nz_tiling(tiling, soc, s)
        return program(soc, s, default_weight_nz_tiling(soc, s) if tiling is None else tiling)
    if kernel in KERNEL_TILING_PROGRAMS:
        want = KERNEL_TILING_PROGRAMS[kernel]
        if type(tiling).__name__ != want:
            raise TypeError(
                f"tiling={type(tiling).__name__}: the {kernel} program needs a {want} "
                "(npusim.ops.weight_quant_batchmatmul.default_tiling)"
            )
        return program(soc, s, tiling)
    return program(soc, s, default_program_tiling(soc, s, kernel) if tiling is None else tiling)


def _materialize(x: Any, name: str) -> Any:
    """Specs become placeholders (zero-stride zeros of their shape and dtype, one element of
    memory) so validation and kernel selection run unchanged; timing-only runs never read them
    (``normalize_args(values=False)``). A transposed spec stands for a transposed view."""
    from npusim.ops.weight_quant_batchmatmul.args import placeholder
    from npusim.spec import TensorSpec

    if not isinstance(x, TensorSpec):
        return x
    if x.npu_format == 29:
        return _materialize_nz(x, name)
    return placeholder(x.shape, _spec_dtype(x, name), transposed=x.transposed)


def _spec_dtype(x: Any, name: str) -> Any:
    """The numpy dtype of spec ``x``: npusim's names, else numpy's (float64, bool: refused by
    ``normalize_args`` with the rule, as the same array would be)."""
    import numpy as np

    from npusim.numerics import np_dtype

    try:
        return np_dtype(x.dtype)
    except ValueError:
        try:
            return np.dtype(x.dtype)
        except TypeError:
            raise TypeError(f"{name}.dtype={x.dtype!r}: not a dtype") from None


def _materialize_nz(x: Any, name: str) -> Any:
    """A FRACTAL_NZ spec becomes placeholder NZ storage. The spec's ``shape`` is the logical
    (K, N) view, as for ND specs; with ``transposed`` the origin ND matrix is (N, K) (the NZ
    weight of a transposed weight, ``transpose_nz``'s flag set)."""
    from npusim.layouts.formatted import FormattedArray
    from npusim.layouts.nz import nz_storage_shape
    from npusim.ops.weight_quant_batchmatmul.args import NZ_TRANSPOSED_ATTR, placeholder

    if len(x.shape) != 2:
        raise ValueError(f"{name}: a FRACTAL_NZ spec must be 2-D, got shape {x.shape}")
    origin = (x.shape[1], x.shape[0]) if x.transposed else tuple(x.shape)
    dt = _spec_dtype(x, name)
    c0 = 32 // dt.itemsize
    arr = FormattedArray(placeholder(nz_storage_shape(origin, c0), dt), 29, origin)
    setattr(arr, NZ_TRANSPOSED_ATTR, bool(x.transposed))
    return arr


def checked_call(soc: SocDescriptor, *, x: Any, weight: Any, antiquant_scale: Any,
                 antiquant_offset: Any = None, quant_scale: Any = None, quant_offset: Any = None,
                 bias: Any = None, antiquant_group_size: int = 0, inner_precise: int = 0,
                 kernel: str | None = None, deterministic: bool = False,
                 values: bool | None = None) -> tuple[Any, str, WqbmmShape, bool]:
    """The call's documented rules and CANN's kernel choice: (normalised arguments, kernel
    name, program shape, functional) or the error naming the argument and rule. ``values``
    False: the shape-level rules only, no value work (no int4 unpacking, no NZ conversion) -
    for callers that need the kernel and shape of an array call, not its data."""
    from npusim.ops.weight_quant_batchmatmul.args import normalize_args
    from npusim.ops.weight_quant_batchmatmul.selection import select_kernel
    from npusim.spec import TensorSpec

    functional = not isinstance(x, TensorSpec)
    vals = {
        k: _materialize(v, k)
        for k, v in (
            ("x", x),
            ("weight", weight),
            ("antiquant_scale", antiquant_scale),
            ("antiquant_offset", antiquant_offset),
            ("quant_scale", quant_scale),
            ("quant_offset", quant_offset),
            ("bias", bias),
        )
    }
    args = normalize_args(
        vals["x"],
        vals["weight"],
        vals["antiquant_scale"],
        vals["antiquant_offset"],
        vals["quant_scale"],
        vals["quant_offset"],
        vals["bias"],
        antiquant_group_size,
        inner_precise,
        soc=soc,
        values=functional if values is None else values,
    )
    name = select_kernel(args, soc, deterministic=deterministic, kernel=kernel)
    if name == "SplitK":
        from npusim.ops.weight_quant_batchmatmul.numerics_splitk import split_k_unsupported

        if why := split_k_unsupported(args):
            raise NotImplementedError(f"kernel 'SplitK' (white-listed shape): {why}")
    s = WqbmmShape(
        m=args.m,
        k=args.k,
        n=args.n,
        x_dtype=args.x_dtype,
        w_dtype=args.weight_dtype,
        group_size=args.group_size,
        has_offset=args.has_offset,
        has_bias=args.has_bias,
        out_dtype=args.out_dtype,
        inner_precise=args.inner_precise,
        trans_w=args.trans_b,
        weight_nz=args.weight_format == "NZ",
        scale_int64=args.scale_dtype == "int64",
        quant_per_channel=args.quant_scale_type == "per_channel",
    )
    return args, name, s, functional


def resolve_tilings(soc: SocDescriptor, args: Any, name: str, s: WqbmmShape, tiling: Any = None
                    ) -> tuple[WqbmmShape, Any, Any, str]:
    """The kernel tiling (``tiling`` validated, or the kernel's default), the tiling its
    program reads, the shape it is built for and the declared layout note, for kernel ``name``
    of the validated call ``args``."""
    from npusim.ops.weight_quant_batchmatmul.tiling import default_tiling, validate_tiling

    if name == "WeightNz" and soc.organisation != "split":
        from npusim.ops.weight_quant_batchmatmul.selection import WEIGHT_NZ_LAYOUT_MODEL
        from npusim.ops.weight_quant_program_weight_nz import (
            default_weight_nz_tiling,
            validate_weight_nz_tiling,
        )

        # the kernel reads the (N, K) NZ weight whatever the call's layout (declared model)
        s = WqbmmShape(**{**s.__dict__, "trans_w": True, "weight_nz": True})
        if tiling is not None:  # a user's tiling is checked, never silently replaced
            validate_weight_nz_tiling(tiling, soc, s)
        kt = default_weight_nz_tiling(soc, s) if tiling is None else tiling
        pt: Any = kt  # the tiling the kernel's program reads (one type per program)
        layout_note = WEIGHT_NZ_LAYOUT_MODEL
    else:
        layout_note = ""
        # A2/A3 WeightNz (custom_weight_nz) has Custom's structure: Custom's tiling and program
        tname = "Custom" if name == "WeightNz" else name
        if name == "WeightNz":
            layout_note = A2_WEIGHT_NZ_PROGRAM_MODEL
        user = tiling is not None and not isinstance(tiling, WqbmmProgramTiling)
        kt = tiling if user else default_tiling(args, soc, tname)
        if user:
            validate_tiling(kt, args, soc, tname)
        if name in KERNEL_TILING_PROGRAMS and isinstance(tiling, WqbmmProgramTiling):
            raise TypeError(
                f"tiling: a WqbmmProgramTiling does not drive kernel {name}; pass a "
                f"{KERNEL_TILING_PROGRAMS[name]} (npusim.ops.weight_quant_batchmatmul."
                "default_tiling gives one to start from)"
            )
        if name in KERNEL_TILING_PROGRAMS:
            pt = kt
        elif isinstance(tiling, WqbmmProgramTiling):
            validate_program_tiling(tiling, soc, s, tname)
            pt = tiling
        else:
            pt = program_tiling_from(kt, soc, s, tname)
    return s, kt, pt, layout_note


def plan_weight_quant_batchmatmul(
    soc: SocDescriptor,
    tiling: Any = None,
    *,
    x: Any,
    weight: Any,
    antiquant_scale: Any,
    antiquant_offset: Any = None,
    quant_scale: Any = None,
    quant_offset: Any = None,
    bias: Any = None,
    antiquant_group_size: int = 0,
    inner_precise: int = 0,
    kernel: str | None = None,
    deterministic: bool = False,
) -> Plan:
    """Validate, select the kernel as CANN does, build its program; outputs (functional runs) are
    read from the program's simulated GM."""
    import numpy as np

    from npusim.ops.weight_quant_batchmatmul.tiling import validate_tiling
    from npusim.runner import Plan

    args, name, s, functional = checked_call(
        soc, x=x, weight=weight, antiquant_scale=antiquant_scale,
        antiquant_offset=antiquant_offset, quant_scale=quant_scale, quant_offset=quant_offset,
        bias=bias, antiquant_group_size=antiquant_group_size, inner_precise=inner_precise,
        kernel=kernel, deterministic=deterministic)
    s, kt, pt, layout_note = resolve_tilings(soc, args, name, s, tiling)
    if functional and name in ("Custom", "WeightNz") and soc.organisation == "split":
        validate_tiling(kt, args, soc, "Custom")
    kern = kernel_program(name, soc)(soc, s, pt, args, functional)
    kern.meta["kernel_tiling"] = repr(kt)
    kern.meta["compulsory_hbm_bytes"] = compulsory_hbm_bytes(args)
    kern.meta["compulsory_hbm_what"] = "x + weight + antiquant scale/offset + bias + y, each once"
    notes = [
        f"capable kernel chosen as CANN does: {name}",
        "outputs: replayed from the program's instructions (declared cube model)" if functional
        else "outputs: none (timing-only run: TensorSpec inputs carry no values)",
    ]

    if s.weight_nz and not layout_note:
        notes.append(NZ_WEIGHT_LAYOUT_MODEL)
        kern.meta["weight_layout_model"] = NZ_WEIGHT_LAYOUT_MODEL
    if layout_note:
        from npusim.ops.weight_quant_batchmatmul.compute import NUMERICS_MODELS

        notes += [layout_note, f"declared numerics: {NUMERICS_MODELS['WeightNz']}"]
        kern.meta["selected_kernel"] = name
        kern.meta["weight_layout_model"] = layout_note

    def finish(out: dict[str, Any]) -> Any:
        return np.asarray(out["y"]).reshape(args.m, args.n)

    return Plan(kern, name, kt, functional, finish=finish, notes=notes)
