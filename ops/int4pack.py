"""npu_convert_weight_to_int4pack (seed 000, ops-semantics 2): int32 values in [-8, 7] packed 8
per int32, value t of each group of 8 (along the last dim) in bits [4t, 4t+3].

ND (k, n) int32 -> ND (k, n/8) int32. FRACTAL_NZ input is first cast back to ND, packed, and
re-tiled on the host as NZ storage (ceil(n/64), ceil(k/16), 16, 8) (C0 = 8 int32 = 64 int4),
returned as a ``FormattedArray`` with origin shape (k, n/8). ``inner_k_tiles`` is reserved and
ignored by torch_npu.

Out-of-range values: torch_npu's host loop silently keeps ``value & 0xF`` (wraps mod 16). The
seed requires values in [-8, 7], so by default they raise ValueError;
``emulate_hardware_masking=True`` reproduces the silent masking bit for bit.

torch_npu runs this on the host CPU (device -> host copy, C++ loop, host -> device copy): there
is no NPU kernel to time. ``host_cost_model`` states that, with an uncalibrated estimate.

Simulation: ``npusim.simulate("int4pack", weight=...)`` and ``npusim run int4pack`` deliberately
raise :class:`HostOperatorError` (a ``NotImplementedError``) instead of inventing an NPU program.
Its message says the op is host work and quotes ``host_cost_model`` for the weight's shape (the
stated, uncalibrated host copy and loop rates below), so a study gets a number without mistaking
it for simulated NPU time. The command line prints that message and exits with status 1.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from npusim.layouts import (
    ACL_FORMAT_FRACTAL_NZ,
    C0_INT32_INT4,
    FormattedArray,
    nd_to_nz,
    npu_format_of,
    nz_to_nd,
    origin_shape_of,
)
from npusim.operator import CliSpec, Operator

if TYPE_CHECKING:
    from npusim.hw.schema import SocDescriptor

# Stated assumptions of host_cost_model (NOT calibrated against any measurement).
ASSUMED_COPY_BYTES_PER_S = 20e9  # effective host <-> device copy bandwidth, PCIe 4.0 x16 class
ASSUMED_COPY_LATENCY_S = 10e-6  # fixed cost per synchronous copy (driver + DMA setup)
ASSUMED_HOST_VALUES_PER_S = 1e9  # simple C++ shift/or loop, one int32 value per ns
ASSUMED_HOST_RETILE_BYTES_PER_S = 5e9  # host trans_nd_to_nz: strided copy of the packed words


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: must be a bool, got {value!r}")
    return bool(value)


def validate_int4pack(weight: Any, inner_k_tiles: Any = 0, *,
                      emulate_hardware_masking: bool = False) -> tuple[np.ndarray, bool]:
    """Check every seed / ops-semantics 2.3 rule; return (the ND (k, n) int32 weight, was_nz)."""
    try:
        operator.index(inner_k_tiles)
    except TypeError:
        raise TypeError(f"inner_k_tiles: must be an int (reserved, unused), got "
                        f"{inner_k_tiles!r}") from None
    if isinstance(inner_k_tiles, bool):
        raise TypeError(f"inner_k_tiles: must be an int (reserved, unused), got {inner_k_tiles!r}")
    masking = _check_flag(emulate_hardware_masking, "emulate_hardware_masking")
    w = np.asarray(weight)
    if w.dtype == np.float32:
        raise TypeError("weight: dtype float32 (FP4 packing) exists only on Ascend950 "
                        "(npu_convert_weight_to_b4pack); on Atlas A2 / A3 weight must be int32")
    if w.dtype != np.int32:
        raise TypeError(f"weight: dtype {w.dtype} not supported; must be int32")
    was_nz = npu_format_of(weight) == ACL_FORMAT_FRACTAL_NZ
    if was_nz:  # torch_npu: npu_format_cast(weight, ND) first
        try:
            w = nz_to_nd(w, origin_shape_of(weight))
        except ValueError as exc:
            raise ValueError(f"weight: FRACTAL_NZ input is inconsistent ({exc})") from None
    elif not w.flags.c_contiguous:
        raise ValueError("weight: must be contiguous (torch_npu: 'weight should be contiguous')")
    if w.ndim == 3:
        raise ValueError(f"weight: shape {w.shape} is 3-D; must be 2-D (k, n) or (n, k) "
                         "(seed 000). torch_npu's A2/A3 code accepts 3-D but keeps only batch 0 "
                         "(ops-semantics 2.3); npusim does not emulate that")
    if w.ndim != 2:
        raise ValueError(f"weight: shape {w.shape} has {w.ndim} dims; must be 2-D (k, n) or "
                         "(n, k)")
    if min(w.shape) <= 0:
        raise ValueError(f"weight: shape {w.shape} has a zero dim; every dim must be > 0")
    if w.shape[-1] % 8:
        raise ValueError(f"weight: last dim {w.shape[-1]} must be a multiple of 8 (8 int4 "
                         "values per int32)")
    if not masking:
        bad = (w < -8) | (w > 7)
        if np.any(bad):
            idx = tuple(int(i[0]) for i in np.nonzero(bad))
            raise ValueError(f"weight: value {int(w[idx])} at index {idx} is outside the int4 "
                             "range [-8, 7] (the device would silently keep value & 0xF; pass "
                             "emulate_hardware_masking=True to reproduce that)")
    return w, was_nz


def reference_int4pack(weight: Any, inner_k_tiles: Any = 0, *,
                       emulate_hardware_masking: bool = False) -> np.ndarray:
    """torch_npu's packed weight: int32 (k, n/8), or for NZ input a FRACTAL_NZ FormattedArray
    with storage (ceil(n/64), ceil(k/16), 16, 8) and origin shape (k, n/8)."""
    from npusim.numerics import pack_int4

    w, was_nz = validate_int4pack(weight, inner_k_tiles,
                                  emulate_hardware_masking=emulate_hardware_masking)
    packed = pack_int4(w, mask_out_of_range=True)  # range already enforced unless emulating
    if was_nz:
        return FormattedArray(nd_to_nz(packed, C0_INT32_INT4), ACL_FORMAT_FRACTAL_NZ,
                              packed.shape)
    return packed


int4pack = reference_int4pack


def host_cost_model(k: int, n: int, *, nz_input: bool = False) -> dict[str, Any]:
    """Where the time of packing a (k, n) int32 weight goes: host work, not NPU time.

    torch_npu copies the k*n int32 values device -> host, packs them in a C++ loop, (for NZ
    input re-tiles the k*n/8 words to NZ on the host) and copies k*n/8 int32 host -> device.
    ``seconds`` uses the ASSUMED_* constants of this module (labelled assumptions, not
    calibrated). NZ input also runs one NPU TransData (NZ -> ND) first, not included here."""
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
            raise ValueError(f"{name}: must be a positive int, got {v!r}")
    if n % 8:
        raise ValueError(f"n: {n} must be a multiple of 8")
    _check_flag(nz_input, "nz_input")
    down_bytes = 4 * k * n
    up_bytes = 4 * k * (n // 8)
    if nz_input:
        up_bytes = 4 * C0_INT32_INT4 * 16 * math.ceil(n / 64) * math.ceil(k / 16)
    copy_s = 2 * ASSUMED_COPY_LATENCY_S + (down_bytes + up_bytes) / ASSUMED_COPY_BYTES_PER_S
    pack_s = k * n / ASSUMED_HOST_VALUES_PER_S
    retile_s = up_bytes / ASSUMED_HOST_RETILE_BYTES_PER_S if nz_input else 0.0
    return {
        "runs_on": "host CPU (torch_npu op-plugin C++ loop); no NPU kernel",
        "npu_seconds": 0.0,
        "device_to_host_bytes": down_bytes,
        "host_to_device_bytes": up_bytes,
        "copy_seconds": copy_s,
        "host_pack_seconds": pack_s,
        "host_retile_seconds": retile_s,
        "seconds": copy_s + pack_s + retile_s,
        "calibrated": False,
        "assumptions": (
            f"ASSUMPTIONS, not calibrated: {ASSUMED_COPY_BYTES_PER_S / 1e9:g} GB/s effective "
            f"host<->device copies plus {ASSUMED_COPY_LATENCY_S * 1e6:g} us per copy; host "
            f"packing at {ASSUMED_HOST_VALUES_PER_S:.0e} int32 values/s; host NZ re-tiling at "
            f"{ASSUMED_HOST_RETILE_BYTES_PER_S / 1e9:g} GB/s"
            + ("; excludes the NPU TransData (NZ -> ND) that precedes the copy" if nz_input
               else "")),
    }


class HostOperatorError(NotImplementedError):
    """The operator runs on the host CPU in torch_npu; there is no NPU program to simulate."""


def _host_message(k: int, n: int, nz_input: bool) -> str:
    c = host_cost_model(k, n, nz_input=nz_input)
    return (f"int4pack is host work in torch_npu (npu_convert_weight_to_int4pack packs on the "
            f"CPU: device->host copy, C++ loop, host->device copy); there is no NPU kernel to "
            f"simulate. Stated host cost model (ops.int4pack.host_cost_model) for a ({k}, {n}) "
            f"int32 weight: {c['seconds'] * 1e6:.1f} us = copies {c['copy_seconds'] * 1e6:.1f} "
            f"us ({c['device_to_host_bytes']} B down, {c['host_to_device_bytes']} B up) + pack "
            f"loop {c['host_pack_seconds'] * 1e6:.1f} us"
            + (f" + NZ re-tiling {c['host_retile_seconds'] * 1e6:.1f} us" if nz_input else "")
            + f". {c['assumptions']}.")


def plan_int4pack(soc: SocDescriptor, tiling: Any = None, *, weight: Any, inner_k_tiles: Any = 0,
                  emulate_hardware_masking: bool = False) -> NoReturn:
    """Runner entry for ``int4pack``: checks the weight (array or spec), then raises
    :class:`HostOperatorError` quoting the host cost model - never a fake NPU time."""
    k, n, nz = _weight_geometry(weight, inner_k_tiles, emulate_hardware_masking)
    raise HostOperatorError(_host_message(k, n, nz))


def _weight_geometry(weight: Any, inner_k_tiles: Any = 0,
                     emulate_hardware_masking: bool = False) -> tuple[int, int, bool]:
    """The weight's rules (array or spec); (k, n, stored FRACTAL_NZ)."""
    from npusim.spec import is_spec

    if is_spec(weight):
        if weight.dtype != "int32":
            raise TypeError(f"weight: dtype {weight.dtype} not supported; must be int32")
        if len(weight.shape) != 2 or min(weight.shape) <= 0 or weight.shape[-1] % 8:
            raise ValueError(f"weight: shape {weight.shape} must be 2-D, non-empty, last dim a "
                             "multiple of 8")
        (k, n), nz = weight.shape, weight.npu_format == ACL_FORMAT_FRACTAL_NZ
    else:
        w, nz = validate_int4pack(weight, inner_k_tiles,
                                  emulate_hardware_masking=emulate_hardware_masking)
        k, n = w.shape
    return int(k), int(n), bool(nz)


def cli_int4pack(ns: Any, functional: bool, rng: Any) -> dict[str, Any]:
    """``npusim run int4pack --k K --n N``: prints why there is nothing to simulate (host work)
    with the host cost model's estimate, and exits with status 1."""
    k, n = ns.k or 4096, ns.n or 4096
    if n % 8:
        raise SystemExit(f"--n {n}: must be a multiple of 8 (8 int4 values per int32)")
    raise SystemExit(_host_message(k, n, False))


def _validate(soc: SocDescriptor, *, weight: Any, inner_k_tiles: Any = 0,
              emulate_hardware_masking: bool = False) -> None:
    _weight_geometry(weight, inner_k_tiles, emulate_hardware_masking)


OPERATOR = Operator(
    name="int4pack",
    plan=plan_int4pack,
    validate=_validate,
    default_tiling=lambda soc, **op_args: None,  # host work: no tiling
    example_inputs=cli_int4pack,
    cli=CliSpec(
        "npu_convert_weight_to_int4pack (host work: prints the host cost model, exits 1)",
        {"--k": "weight rows (default 4096)", "--n": "weight columns, a multiple of 8 "
         "(default 4096)"},
        tiling_note="(none: host work)", tiling_overrides=False),
    tiling_help=lambda soc: [],
)
