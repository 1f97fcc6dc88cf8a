"""The few SoC facts the weight_quant_batchmatmul selection, numerics and tilings read.

A ``soc`` argument may be a descriptor object (``npusim.hw.SocDescriptor`` or anything with the
same accessors), a SoC name, or ``None`` for the default part. Keeping the reads here means the
operator code depends on a handful of accessors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    from npusim.hw.schema import SocDescriptor

    #: a ``soc`` argument: a loaded descriptor, a SoC name, or None for ``DEFAULT_SOC``
    SocArg: TypeAlias = SocDescriptor | str | None

DEFAULT_SOC = "Ascend910B2"
DEFAULT_CUBE_MODEL = "fractal_exact_fp32_sequential"
DEFAULT_SPLIT_K_ORDER = "core_index_ascending"


@lru_cache(maxsize=32)
def _load(name: str) -> SocDescriptor:
    from npusim.hw import load_soc

    return load_soc(name)


def resolve_soc(soc: SocArg) -> SocDescriptor:
    """The descriptor for ``soc`` (object, name, or None = ``DEFAULT_SOC``)."""
    if soc is None:
        return _load(DEFAULT_SOC)
    if isinstance(soc, str):
        return _load(soc)
    if not hasattr(soc, "core_counts"):
        raise TypeError(
            f"soc={soc!r}: expected a SoC name or a descriptor with core_counts()/core()"
        )
    return soc


@dataclass(frozen=True)
class SocFacts:
    """What the operator needs to know about one SoC."""

    name: str
    organisation: str  # "split" (A2/A3) or "coupled" (310P)
    aic_num: int  # cube cores (AI Cores on a coupled SoC)
    aiv_num: int  # vector cores paired with the cube cores (2 per AIC on split SoCs)
    l1_bytes: int
    l0a_bytes: int
    l0b_bytes: int
    l0c_bytes: int
    ub_bytes: int
    bt_bytes: int
    cube_model: str
    split_k_order: str
    #: (buffer, allocation alignment in bytes) of the cube core's local buffers
    cube_align: tuple[tuple[str, int], ...] = ()
    fb_bytes: int = 0

    def align(self, buffer: str) -> int:
        return dict(self.cube_align).get(buffer, 32)

    @property
    def split(self) -> bool:
        return self.organisation == "split"


def soc_facts(soc: SocArg) -> SocFacts:
    """Read the operator-relevant facts of ``soc`` (see :func:`resolve_soc`)."""
    d = resolve_soc(soc)
    counts = d.core_counts()
    organisation = getattr(d, "organisation", "split")
    if organisation == "split":
        cube_core, vec_core = d.core("aic"), d.core("aiv")
        aic, aiv = counts["aic"], counts["aiv"]
    else:
        cube_core = vec_core = d.core("aicore")
        aic = aiv = counts["aicore"]
    numerics = getattr(d, "numerics", None)
    model = getattr(getattr(numerics, "cube_accumulation", None), "model", DEFAULT_CUBE_MODEL)
    order = getattr(numerics, "split_k_reduction_order", DEFAULT_SPLIT_K_ORDER)
    return SocFacts(
        name=str(getattr(d, "name", "?")),
        organisation=organisation,
        aic_num=int(aic),
        aiv_num=int(aiv),
        l1_bytes=(cube_core.capacity("L1") or 0),
        l0a_bytes=(cube_core.capacity("L0A") or 0),
        l0b_bytes=(cube_core.capacity("L0B") or 0),
        l0c_bytes=(cube_core.capacity("L0C") or 0),
        ub_bytes=(vec_core.capacity("UB") or 0),
        bt_bytes=(cube_core.capacity("BT") or 0),
        cube_model=str(model),
        split_k_order=str(order),
        cube_align=tuple((str(name), int(buf.alignment_bytes))
                         for name, buf in cube_core.buffers.items()),
        fb_bytes=(cube_core.capacity("FB") or 0),
    )
