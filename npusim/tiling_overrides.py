"""A tiling dataclass with some fields replaced: what ``npusim run --tiling FIELD=VALUE`` and a
sweep study's listed ``tilings`` give for an operator whose tiling is one (possibly nested)
dataclass. ``a.b`` (or a nested mapping ``{"a": {"b": v}}``) sets field ``b`` of the nested
tiling ``a`` - a weight_quant_batchmatmul kernel's ``cube`` block. Also the type check every
dataclass tiling a user passes goes through (:func:`check_tiling_type`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def flatten(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"cube": {"base_k": 64}}`` -> ``{"cube.base_k": 64}`` (one level of nesting)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def field_names(tiling: DataclassInstance) -> set[str]:
    """The fields of ``tiling``, nested ones as ``a.b``."""
    fields = {f.name: getattr(tiling, f.name) for f in dataclasses.fields(tiling)}
    return set(fields) | {f"{k}.{f.name}" for k, v in fields.items()
                          if dataclasses.is_dataclass(v) for f in dataclasses.fields(v)}


def apply_overrides(default: object, overrides: dict[str, Any]) -> object:
    """``default`` with ``overrides`` applied; an unknown field is a ValueError naming it and
    listing the fields. The result is not validated here (the operator's plan does that)."""
    if not overrides:
        return default
    if default is None or not dataclasses.is_dataclass(default) or isinstance(default, type):
        raise ValueError("this operator has no tiling object to override")
    flat = flatten(overrides)
    names = field_names(default)
    bad = sorted(set(flat) - names)
    if bad:
        raise ValueError(f"unknown field(s) {', '.join(bad)}; fields are "
                         f"{', '.join(sorted(names))}")
    top = {k: v for k, v in flat.items() if "." not in k}
    for key in sorted({k.split(".")[0] for k in flat if "." in k}):
        sub = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(key + ".")}
        top[key] = dataclasses.replace(getattr(default, key), **sub)
    return dataclasses.replace(default, **top)


def check_tiling_type(tiling: object, cls: type[DataclassInstance], op: str) -> None:
    """``tiling`` must be a ``cls`` whose ``int`` fields hold integers and ``bool`` fields
    booleans (TypeError naming the operator, the field and the value); the operator's own
    validator then checks the values' ranges."""
    if not isinstance(tiling, cls):
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        raise TypeError(f"{op}: tiling={tiling!r}: expected a {cls.__name__} (fields {names})")
    for f in dataclasses.fields(cls):
        v = getattr(tiling, f.name)
        want = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if want == "bool" and not isinstance(v, bool):
            raise TypeError(f"{op}: tiling.{f.name}={v!r}: must be True or False")
        if want == "int" and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"{op}: tiling.{f.name}={v!r}: must be an integer")
