"""Loading SoC descriptor YAML: duplicate-key check, ``base`` inheritance, ``core_refs``.

A SoC file may carry two loader directives that are resolved before validation:

- ``base: <file>`` - a family file whose content this file deep-merges over (mappings merge key by
  key, everything else is replaced);
- ``core_refs: {kind: <file>}`` - per core kind, a shared core description under which the
  file's ``cores.<kind>`` entries are merged (so a SoC only states its core count and what
  differs).

Relative references are resolved against the referring file's directory, then against the
shipped ``npusim.socs`` directory (so a user file can say ``base: ascend910b_family.yaml``).
Errors name the file that supplied the offending key, the dotted field path and the problem.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from npusim.hw.errors import DescriptorError
from npusim.hw.schema import SocDescriptor

DIRECTIVES = ("base", "core_refs")


def shipped_dir() -> Traversable:
    """The directory of the descriptors shipped with the package (works from an install)."""
    return files("npusim.socs")


@dataclass(frozen=True)
class Location:
    """A YAML file: a root directory plus a posix path relative to it."""

    root: Traversable
    rel: str
    shipped: bool = False

    def open(self) -> Traversable:
        node = self.root
        for part in self.rel.split("/"):
            node = node.joinpath(part)
        return node

    def sibling(self, ref: str) -> Location:
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(self.rel), ref))
        return Location(self.root, rel, self.shipped)

    def label(self) -> str:
        """The file for error messages: a path, or ``socs/<rel>`` for a shipped file."""
        if self.shipped or not isinstance(self.root, Path):
            return f"socs/{self.rel}"
        return str(self.root / self.rel)


def location_of(path: str | Path) -> Location:
    p = Path(path)
    return Location(p.parent.resolve(), p.name)


# -- YAML: plain data only, duplicate keys rejected, aliases bounded -------------------------
#: Expanded nodes one document may hold, every alias use counting its whole subtree: shipped
#: descriptors hold a few thousand, so an alias bomb is refused long before it costs memory.
MAX_YAML_NODES = 200_000

_STD = "tag:yaml.org,2002:"
#: The tags a descriptor or study may carry (explicitly or as resolved plain scalars): YAML's
#: core data types. ``!!python/...``, ``!!binary``, ``!!set``, local ``!tags`` are refused.
PLAIN_TAGS = frozenset(
    _STD + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "merge", "timestamp")
)


class _Walk:
    """One pass over the composed node graph: tags, duplicate keys, alias expansion size.

    A node shared through an alias is checked once but counted at every use, so the expanded
    size is known without expanding; a node that contains itself (recursive alias) is refused.
    """

    def __init__(self, where: str, limit: int) -> None:
        self.where, self.limit = where, limit
        self.size: dict[int, int] = {}
        self.open: set[int] = set()

    def _line(self, node: yaml.Node) -> int:
        return cast(int, node.start_mark.line) + 1  # PyYAML ships no type stubs

    def visit(self, node: yaml.Node, path: str) -> int:
        ident = id(node)
        if ident in self.size:
            return self.size[ident]
        if ident in self.open:
            raise DescriptorError(
                f"{self.where}: line {self._line(node)}: field {path or '<root>'}: recursive "
                "alias (a node that contains itself) is not allowed"
            )
        if node.tag not in PLAIN_TAGS:
            tag = "!!" + node.tag.removeprefix(_STD) if node.tag.startswith(_STD) else node.tag
            raise DescriptorError(
                f"{self.where}: line {self._line(node)}: field {path or '<root>'}: tag "
                f"{tag} is not allowed (plain YAML only: mappings, lists, strings, "
                "numbers, booleans, null)"
            )
        self.open.add(ident)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
                line = self._line(key_node)
                if key in seen and key_node.tag != _STD + "merge":
                    raise DescriptorError(
                        f"{self.where}: field {_join(path, str(key))}: duplicate key {key!r} "
                        f"(lines {seen[key]} and {line})"
                    )
                seen[key] = line
                total += self.visit(key_node, path)
                total += self.visit(value_node, _join(path, str(key)))
                self._bound(total, key_node)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += self.visit(item, _join(path, str(i)))
                self._bound(total, item)
        self.open.discard(ident)
        self.size[ident] = total
        return total

    def _bound(self, total: int, node: yaml.Node) -> None:
        if total > self.limit:
            raise DescriptorError(
                f"{self.where}: line {self._line(node)}: the document expands to more than "
                f"{self.limit} nodes (aliases counted at every use); refusing it as an alias "
                "bomb or a file far larger than any descriptor or study"
            )


def _check_nodes(node: yaml.Node, where: str, limit: int = MAX_YAML_NODES) -> None:
    """Refuse non-plain tags, duplicate keys, recursive aliases and oversize expansion."""
    _Walk(where, limit).visit(node, "")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, reading ``1e3`` / ``1.5e3`` as numbers: PyYAML follows YAML 1.1, whose
    floats need a dot and a signed exponent, so ``--set ...=1.5e3`` (the overrides' documented
    example) reached the schema as the string '1.5e3' ('Input should be a valid number')."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text as plain data (see ``_check_nodes``); errors name ``where``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DescriptorError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise DescriptorError(f"{where}: not valid YAML: nesting too deep") from None
    finally:
        loader.dispose()


def decode_utf8(data: bytes, where: str) -> str:
    """The text of a YAML file; DescriptorError naming the file and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DescriptorError(
            f"{where}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None


def read_yaml_file(path: str | Path, where: str | None = None) -> Any:
    """Read and parse a user YAML file (study, patch): missing, undecodable or non-plain YAML
    is a DescriptorError naming the file."""
    p = Path(path)
    label = where or str(path)
    if not p.is_file():
        raise DescriptorError(f"{label}: no such YAML file")
    return parse_yaml(decode_utf8(p.read_bytes(), label), label)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


_PARSED: dict[tuple[str, str], dict[str, Any]] = {}


def _read_mapping(loc: Location) -> dict[str, Any]:
    """The file's top-level mapping (a fresh copy; parsed texts are cached by content)."""
    node = loc.open()
    if not node.is_file():
        raise DescriptorError(f"{loc.label()}: no such descriptor file")
    text = decode_utf8(node.read_bytes(), loc.label())
    key = (loc.label(), text)
    if key not in _PARSED:
        data = parse_yaml(text, loc.label())
        if not isinstance(data, dict):
            raise DescriptorError(
                f"{loc.label()}: a descriptor file must be a YAML mapping, got "
                f"{type(data).__name__}"
            )
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[key] = data
    return {k: _copy(v) for k, v in _PARSED[key].items()}


# -- merging with origin tracking ------------------------------------------------------------
@dataclass
class Merged:
    """A merged raw mapping and, per dotted path, the label of the file that supplied it."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def origin(self, path: str) -> str:
        """The file that supplied ``path`` or its closest supplied ancestor."""
        probe = path
        while probe:
            if probe in self.origins:
                return self.origins[probe]
            probe = probe.rpartition(".")[0]
        return self.files[-1] if self.files else "<descriptor>"


def deep_merge(
    dst: dict[str, Any],
    src: Mapping[str, Any],
    origin: str | None = None,
    origins: dict[str, str] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Merge ``src`` into ``dst`` in place (mappings recursively, other values replaced)."""
    for key, value in src.items():
        path = _join(prefix, str(key))
        if origins is not None and origin is not None:
            origins[path] = origin
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            deep_merge(dst[key], value, origin, origins, path)
        else:
            dst[key] = _copy(value)
            if origins is not None and origin is not None and isinstance(value, Mapping):
                _record(value, origin, origins, path)
    return dst


def _record(value: Mapping[str, Any], origin: str, origins: dict[str, str], prefix: str) -> None:
    for key, sub in value.items():
        path = _join(prefix, str(key))
        origins[path] = origin
        if isinstance(sub, Mapping):
            _record(sub, origin, origins, path)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _resolve_ref(loc: Location, ref: Any, what: str) -> Location:
    if not isinstance(ref, str) or not ref:
        raise DescriptorError(f"{loc.label()}: field {what}: must be a file name, got {ref!r}")
    near = loc.sibling(ref)
    if near.open().is_file():
        return near
    shipped = Location(shipped_dir(), posixpath.normpath(ref), shipped=True)
    if shipped.open().is_file():
        return shipped
    raise DescriptorError(
        f"{loc.label()}: field {what}: file {ref!r} not found next to the file nor among the "
        "shipped descriptors"
    )


def _gather(
    loc: Location, merged: Merged, refs: dict[str, Location], chain: tuple[str, ...]
) -> None:
    """Merge ``loc`` (after its base chain) into ``merged``; collect core refs."""
    label = loc.label()
    if label in chain:
        cycle = " -> ".join((*chain, label))
        raise DescriptorError(f"{label}: field base: inheritance cycle {cycle}")
    raw = _read_mapping(loc)
    base = raw.pop("base", None)
    if base is not None:
        _gather(_resolve_ref(loc, base, "base"), merged, refs, (*chain, label))
    core_refs = raw.pop("core_refs", None)
    if core_refs is not None:
        if not isinstance(core_refs, dict):
            raise DescriptorError(
                f"{label}: field core_refs: must map core kind -> file, got {core_refs!r}"
            )
        for kind, ref in core_refs.items():
            refs[str(kind)] = _resolve_ref(loc, ref, f"core_refs.{kind}")
            merged.origins[f"core_refs.{kind}"] = label
    merged.files.append(loc.label())
    deep_merge(merged.data, raw, label, merged.origins)


def resolve_file(loc: Location) -> Merged:
    """The raw merged mapping of a SoC file: base chain merged, core refs expanded."""
    merged = Merged()
    refs: dict[str, Location] = {}
    _gather(loc, merged, refs, ())
    cores = merged.data.get("cores")
    if refs:
        if cores is None:
            cores = merged.data["cores"] = {}
        if not isinstance(cores, dict):
            raise DescriptorError(
                f"{merged.origin('cores')}: field cores: must be a mapping, got {cores!r}"
            )
        for kind, ref in refs.items():
            core_raw = _read_mapping(ref)
            for directive in DIRECTIVES:
                if directive in core_raw:
                    raise DescriptorError(
                        f"{ref.label()}: field {directive}: not allowed in a core file"
                    )
            own = cores.get(kind) or {}
            if not isinstance(own, dict):
                raise DescriptorError(
                    f"{merged.origin(f'cores.{kind}')}: field cores.{kind}: must be a mapping"
                )
            core_origins: dict[str, str] = {}
            base_core = deep_merge({}, core_raw, ref.label(), core_origins, f"cores.{kind}")
            # keys the SoC file set keep their origin; the rest come from the core file
            for path, origin in core_origins.items():
                merged.origins.setdefault(path, origin)
            cores[kind] = deep_merge(base_core, own)
            if ref.label() not in merged.files:
                merged.files.append(ref.label())
    merged.data.setdefault("provenance", list(merged.files))
    return merged


# -- validation --------------------------------------------------------------------------------
def format_validation_error(exc: ValidationError, origin_of: Any) -> str:
    """One line per pydantic error: '<file>: field <dotted.path>: <problem> (got <value>)'."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?); not allowed by the schema"
        elif err["type"] == "missing":
            msg = "required field missing"
        got = err.get("input")
        suffix = "" if err["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{origin_of(path)}: field {path or '<root>'}: {msg}{suffix}")
    return "\n".join(lines)


def validate_mapping(data: Mapping[str, Any], origin_of: Any) -> SocDescriptor:
    """Validate a resolved raw mapping; DescriptorError naming file(s) and field(s)."""
    for directive in DIRECTIVES:
        if directive in data:
            raise DescriptorError(
                f"{origin_of(directive)}: field {directive}: a loader directive cannot appear in "
                "a resolved descriptor"
            )
    try:
        return SocDescriptor.model_validate(dict(data))
    except ValidationError as exc:
        raise DescriptorError(format_validation_error(exc, origin_of)) from None


def load_location(loc: Location) -> SocDescriptor:
    merged = resolve_file(loc)
    return validate_mapping(merged.data, merged.origin)


# -- public entry points -----------------------------------------------------------------------
def _is_soc_file(name: str) -> bool:
    return name.endswith(".yaml") and not name.endswith("_family.yaml")


def list_socs() -> list[str]:
    """Names of the SoCs shipped with npusim, sorted."""
    return sorted(
        entry.name[: -len(".yaml")]
        for entry in shipped_dir().iterdir()
        if entry.is_file() and _is_soc_file(entry.name)
    )


def _locate(name_or_path: str | Path) -> Location:
    text = str(name_or_path)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise DescriptorError(f"{text}: no such descriptor file")
        return location_of(p)
    names = list_socs()
    if text in names:
        return Location(shipped_dir(), f"{text}.yaml", shipped=True)
    by_lower = {n.lower(): n for n in names}
    if text.lower() in by_lower:
        return Location(shipped_dir(), f"{by_lower[text.lower()]}.yaml", shipped=True)
    raise DescriptorError(
        f"name_or_path={text!r}: neither a shipped SoC ({', '.join(names)}) nor a YAML file"
    )


def load_soc(
    name_or_path: str | Path,
    overrides: Sequence[str] = (),
    patch: str | Path | Mapping[str, Any] | None = None,
) -> SocDescriptor:
    """Load a shipped SoC by name or a user descriptor file, then apply what-if changes.

    ``patch`` (a YAML file or a mapping) is deep-merged into the resolved descriptor first, then
    each override ``"dotted.path=value"`` (value parsed as YAML) is applied; the result is
    validated like a file. Raises DescriptorError naming the file, the field and the problem.
    """
    from npusim.hw.overrides import apply_what_if

    if isinstance(overrides, str):
        raise TypeError(f"overrides={overrides!r}: must be a sequence of 'path=value' strings")
    soc = load_location(_locate(name_or_path))
    if patch is None and not overrides:
        return soc
    return apply_what_if(soc, overrides, patch)


def validate_soc_file(path: str | Path) -> SocDescriptor:
    """Load and validate one descriptor file (with its base / core refs); return the model."""
    p = Path(path)
    if not p.is_file():
        raise DescriptorError(f"{path}: no such descriptor file")
    return load_location(location_of(p))
