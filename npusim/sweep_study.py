"""The study of ``npusim sweep``: read and check a study file (or the flags' equivalent).

A study names an operator, SoCs, optional what-if variants, cases and a tiling space. Every
rule is checked before anything runs or is written, and a violation names the file, the field
and the rule (``StudyError``, a ValueError): a study is a user's file, so a typo must not become
a silently empty or partial sweep.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASELINE = "baseline"
STUDY_KEYS = ("op", "socs", "cases", "simulate_top", "max_tilings", "tilings", "what_if")
#: Cases one study may expand to: a mapping of lists is a cartesian product, so a few long lists
#: can ask for millions of points; refused up front with the count instead of planning for hours.
MAX_CASES = 100_000


class StudyError(ValueError):
    """A study (file or flags) breaks a rule; the message names the file, field and rule."""


@dataclass
class Study:
    """A sweep specification: ``socs`` entries are ``{name, label?, overrides?}``; ``what_if``
    entries ``{label, overrides}`` are crossed with every SoC (plus its baseline)."""

    op: str
    socs: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    simulate_top: int = 8
    max_tilings: int | None = None
    tilings: list[dict[str, Any]] = field(default_factory=list)
    what_if: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Study:
        """Read and check a study file (plain YAML; unknown keys are errors, not ignored)."""
        import errno

        from npusim.hw.loader import read_yaml_file

        p = Path(path)
        if p.exists() and not p.is_file():  # a directory, a device: says what it is
            raise StudyError(f"{path}: not a regular file (a study is a YAML file)")
        if not p.is_file():  # the CLI prints it as '<path>: no such file'
            raise FileNotFoundError(errno.ENOENT, "no such study file", str(path))
        return cls.from_mapping(read_yaml_file(path), str(path))

    @classmethod
    def from_mapping(cls, data: Any, where: str) -> Study:
        """Check a parsed study; ``where`` (a file name or "command line") prefixes errors."""
        if not isinstance(data, Mapping):
            raise StudyError(f"{where}: a study is a mapping with keys op, socs, cases; got "
                             f"{type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in STUDY_KEYS)
        if unknown:
            raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(STUDY_KEYS))}")
        for req in ("op", "socs", "cases"):
            if req not in data:
                raise StudyError(f"{where}: missing required key {req!r}")
        _finite(data, where, "")
        op = data["op"]
        if not isinstance(op, str) or not op:
            raise StudyError(f"{where}: field op: must be an operator name, got {op!r}")
        socs = _socs(data["socs"], where)
        what_if = _what_if(data.get("what_if"), where)
        return cls(op, socs, expand_cases(data["cases"], where),
                   _count(data.get("simulate_top", 8), where, "simulate_top"),
                   None if data.get("max_tilings") is None
                   else _count(data["max_tilings"], where, "max_tilings"),
                   _tilings(data.get("tilings"), where), what_if)

    def variants(self) -> list[dict[str, Any]]:
        """Every (SoC, what-if) combination as ``{name, label, overrides}`` with the scaled
        overrides (``path*=f``) resolved to absolute values, in study order."""
        out: list[dict[str, Any]] = []
        for s in self.socs:
            base_ov = list(s.get("overrides") or [])
            label = s.get("label") or (BASELINE if not base_ov else ";".join(base_ov))
            out.append({"name": s["name"], "label": label,
                        "overrides": resolve_overrides(s["name"], base_ov)})
            for w in self.what_if:
                ov = base_ov + list(w["overrides"])
                out.append({"name": s["name"], "label": str(w["label"]),
                            "overrides": resolve_overrides(s["name"], ov)})
        return out


def _finite(value: Any, where: str, path: str) -> None:
    """Refuse .inf / .nan anywhere in the study (a size or factor of inf is no number)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise StudyError(f"{where}: field {path or '<root>'}: {value!r} is not a finite number")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _finite(v, where, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, where, f"{path}[{i}]")


def _count(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StudyError(f"{where}: field {name}: must be an integer >= 1, got {value!r}")
    return value


def _strings(value: Any, where: str, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list) or not all(
            isinstance(v, str) and v for v in value):
        raise StudyError(f"{where}: field {name}: must be a list of 'path=value' strings, got "
                         f"{value!r}")
    return list(value)


def _socs(value: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise StudyError(f"{where}: field socs: must be a non-empty list of SoC names or "
                         f"{{name, label, overrides}} mappings, got {value!r}")
    out = []
    for i, s in enumerate(value):
        entry = {"name": s} if isinstance(s, str) else s
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) \
                or not entry["name"]:
            raise StudyError(f"{where}: field socs[{i}]: every entry needs a name (a SoC name "
                             f"or descriptor file), got {s!r}")
        extra = sorted(str(k) for k in entry if k not in ("name", "label", "overrides"))
        if extra:
            raise StudyError(f"{where}: field socs[{i}]: unknown key(s) {', '.join(extra)}; "
                             "allowed: label, name, overrides")
        if "label" in entry and not isinstance(entry["label"], str):
            raise StudyError(f"{where}: field socs[{i}].label: must be a string, got "
                             f"{entry['label']!r}")
        entry = dict(entry)
        if entry.get("overrides") is not None:
            entry["overrides"] = _strings(entry["overrides"], where, f"socs[{i}].overrides")
        out.append(entry)
    return out


def _what_if(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StudyError(f"{where}: field what_if: must be a list of {{label, overrides}}, got "
                         f"{value!r}")
    out, labels = [], set()
    for i, w in enumerate(value):
        if not isinstance(w, Mapping) or "label" not in w or not w.get("overrides"):
            raise StudyError(f"{where}: every what_if entry needs a label and overrides, "
                             f"got {w!r}")
        extra = sorted(str(k) for k in w if k not in ("label", "overrides"))
        if extra:
            raise StudyError(f"{where}: field what_if[{i}]: unknown key(s) {', '.join(extra)}")
        label = str(w["label"])
        if label in labels or label == BASELINE:
            raise StudyError(f"{where}: field what_if[{i}].label: {label!r} is "
                             f"{'the baseline' if label == BASELINE else 'used twice'}; "
                             "labels must be distinct")
        labels.add(label)
        out.append({"label": w["label"],
                    "overrides": _strings(w["overrides"], where, f"what_if[{i}].overrides")})
    return out


def _scalar_mapping(value: Any, where: str, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise StudyError(f"{where}: field {name}: must be a non-empty mapping, got {value!r}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise StudyError(f"{where}: field {name}: key {k!r} must be a string")
        if v is not None and not isinstance(v, str | int | float | bool):
            raise StudyError(f"{where}: field {name}.{k}: must be a number, string or boolean, "
                             f"got {v!r}")
    return dict(value)


def _tilings(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise StudyError(f"{where}: field tilings: must be a list of mappings, got {value!r}")
    return [_scalar_mapping(t, where, f"tilings[{i}]") for i, t in enumerate(value)]


def expand_cases(cases: Any, where: str = "study") -> list[dict[str, Any]]:
    """A list of mappings, or a mapping of lists (cartesian product, at most MAX_CASES)."""
    if isinstance(cases, Mapping):
        keys = sorted(cases, key=str)
        values = [v if isinstance(v, list) else [v] for v in (cases[k] for k in keys)]
        for k, v in zip(keys, values, strict=True):
            if not v:
                raise StudyError(f"{where}: field cases.{k}: an empty list gives no case")
        total = math.prod(len(v) for v in values)
        if total > MAX_CASES:
            raise StudyError(f"{where}: field cases: the product of the lists is {total} cases, "
                             f"above the limit of {MAX_CASES}; split the study")
        out = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    elif isinstance(cases, list) and cases:
        if len(cases) > MAX_CASES:
            raise StudyError(f"{where}: field cases: {len(cases)} cases, above the limit of "
                             f"{MAX_CASES}; split the study")
        out = list(cases)
    else:
        raise StudyError(f"{where}: field cases: must be a non-empty list of mappings or a "
                         f"mapping of lists, got {cases!r}")
    checked = [_scalar_mapping(c, where, f"cases[{i}]") for i, c in enumerate(out)]
    for i, c in enumerate(checked):
        _case_types(c, where, f"cases[{i}]")
    return checked


#: case keys the operators' sweep adapters read as integers / booleans (they convert with int()
#: and bool(), so 16.5 would run as 16 and "no" as True: refused here instead)
INT_CASE_KEYS = ("m", "k", "n", "group_size", "inner_precise")
BOOL_CASE_KEYS = ("trans_b", "fast_forward")


def _case_types(case: Mapping[str, Any], where: str, name: str) -> None:
    """Refuse a case value an adapter would silently convert (a float or boolean size, a
    string where a boolean belongs)."""
    for k in INT_CASE_KEYS:
        v = case.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise StudyError(f"{where}: field {name}.{k}: must be an integer, got {v!r}")
    for k in BOOL_CASE_KEYS:
        v = case.get(k)
        if v is not None and not isinstance(v, bool):
            raise StudyError(f"{where}: field {name}.{k}: must be true or false, got {v!r}")


def resolve_overrides(soc: str, overrides: Sequence[str]) -> list[str]:
    """Turn ``path*=factor`` (scale the SoC's own value, e.g. ``memory.hbm.bandwidth_gb_per_s*=2``)
    into ``path=value``; other overrides pass unchanged. Integer fields stay integers (rounded)."""
    if not any("*=" in o for o in overrides):
        return list(overrides)
    from npusim.hw import load_soc

    data = load_soc(soc).model_dump(mode="json")
    out = []
    for o in overrides:
        path, sep, factor = o.partition("*=")
        if not sep:
            out.append(o)
            continue
        node: Any = data
        parts = path.strip().split(".")
        parts[0] = "cores" if parts[0] == "core" else parts[0]
        for part in parts:
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise ValueError(f"override {o!r}: {soc} has no numeric field {path.strip()!r}")
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise ValueError(f"override {o!r}: field {path.strip()!r} is {node!r}, not a number")
        try:
            scale = float(factor)
        except ValueError:
            raise ValueError(f"override {o!r}: factor {factor.strip()!r} is not a number") \
                from None
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"override {o!r}: factor {scale!r} must be a finite number > 0")
        value = node * scale
        value = round(value) if isinstance(node, int) else round(value, 6)
        out.append(f"{path.strip()}={value}")
    return out
