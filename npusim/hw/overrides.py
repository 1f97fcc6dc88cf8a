"""What-if changes to a resolved descriptor for one run: dotted overrides and YAML patches.

An override ``"memory.hbm.bandwidth_gb_per_s=2800"`` sets one existing field (the value is parsed
as YAML, so ``21``, ``1.5e3``, ``null`` and ``[[1024, 8.0]]`` work); ``core.`` is accepted as
an alias of ``cores.``. A patch is a YAML file or mapping deep-merged into the descriptor and may
add entries (a new transfer path, a new cube dtype). Patches apply first, overrides last; the
result is validated like a file and records what was applied in ``overrides_applied``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from npusim.hw.errors import DescriptorError
from npusim.hw.loader import deep_merge, parse_yaml, read_yaml_file, validate_mapping
from npusim.hw.schema import SocDescriptor

PATH_ALIASES = {"core": "cores"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into the path segments and the YAML-parsed value."""
    if not isinstance(text, str):
        raise TypeError(f"override {text!r}: must be a string 'dotted.path=value'")
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise DescriptorError(f"override {text!r}: must have the form 'dotted.path=value'")
    parts = path.split(".")
    if any(not p for p in parts):
        raise DescriptorError(f"override {text!r}: empty segment in path {path!r}")
    if parts[0] in PATH_ALIASES:
        parts[0] = PATH_ALIASES[parts[0]]
    value = parse_yaml(raw.strip(), f"override {text!r}") if raw.strip() else None
    return parts, value


def set_path(data: dict[str, Any], parts: list[str], value: Any, what: str) -> None:
    """Set an existing field ``parts`` of ``data``; DescriptorError when the path is unknown."""
    node: Any = data
    for depth, key in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list) and key.isdigit():
            idx = int(key)
            if idx >= len(node):
                raise DescriptorError(
                    f"{what}: field {here}: index {idx} out of range (length {len(node)})"
                )
            if depth == len(parts) - 1:
                node[idx] = value
                return
            node = node[idx]
            continue
        if not isinstance(node, dict):
            parent = ".".join(parts[:depth]) or "<root>"
            raise DescriptorError(
                f"{what}: field {here}: unknown override path; {parent} is "
                f"{'null' if node is None else type(node).__name__}, not a mapping"
            )
        if key not in node:
            parent = ".".join(parts[:depth]) or "<root>"
            raise DescriptorError(
                f"{what}: field {here}: unknown override path; {parent} has "
                f"{', '.join(map(str, node)) or 'no fields'}"
            )
        if depth == len(parts) - 1:
            node[key] = value
            return
        node = node[key]


def _load_patch(patch: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(patch, Mapping):
        return dict(patch), "patch <mapping>"
    if isinstance(patch, str | Path):
        p = Path(patch)
        if not p.is_file():
            raise DescriptorError(f"patch={str(patch)!r}: no such YAML file")
        data = read_yaml_file(p, f"patch {p}")
        if not isinstance(data, dict):
            raise DescriptorError(f"patch {p}: must be a YAML mapping, got {type(data).__name__}")
        return data, f"patch {p}"
    raise TypeError(f"patch={patch!r}: must be a YAML file path or a mapping")


def apply_what_if(
    soc: SocDescriptor,
    overrides: Sequence[str] = (),
    patch: str | Path | Mapping[str, Any] | None = None,
) -> SocDescriptor:
    """A new descriptor: ``soc`` with ``patch`` merged and ``overrides`` set, re-validated."""
    data = soc.model_dump(mode="json")
    origins: dict[str, str] = {}
    applied = list(soc.overrides_applied)
    if patch is not None:
        patch_data, label = _load_patch(patch)
        if "core" in patch_data and "cores" not in patch_data:
            patch_data["cores"] = patch_data.pop("core")
        deep_merge(data, patch_data, label, origins)
        applied.append(label)
    for text in overrides:
        parts, value = parse_override(text)
        label = f"override {text!r}"
        set_path(data, parts, value, label)
        origins[".".join(parts)] = label
        applied.append(f"{'.'.join(parts)}={text.partition('=')[2].strip()}")
    data["overrides_applied"] = tuple(applied)

    def origin_of(path: str) -> str:
        probe = path
        while probe:
            if probe in origins:
                return origins[probe]
            probe = probe.rpartition(".")[0]
        # a model-level rule (e.g. reserved < capacity) reports the parent: name the change
        inside = [o for p, o in origins.items() if path and p.startswith(path + ".")]
        if len(inside) == 1:
            return inside[0]
        return f"{soc.name} with what-if changes ({'; '.join(applied)})"

    return validate_mapping(data, origin_of)
