"""The ``npusim socs`` command: list shipped SoCs, show one resolved descriptor, validate a file.

``npusim/cli.py`` wires it in with ``add_socs_parser(subparsers)`` and ``run_socs(args)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO, TypeVar

from npusim.hw.errors import DescriptorError
from npusim.hw.loader import list_socs, load_soc, validate_soc_file
from npusim.hw.schema import SocDescriptor

#: the parser class of the subparsers (the CLI's NpusimParser, or a plain ArgumentParser)
_P = TypeVar("_P", bound=argparse.ArgumentParser)

COLUMNS = ("SoC", "family", "cores", "clock MHz", "fp16 TFLOPS", "int8 TOPS", "HBM GB/s", "L2 MiB")


def add_socs_parser(subparsers: argparse._SubParsersAction[_P]) -> _P:
    """Add ``socs`` (with ``show`` and ``validate``) to the top-level subparsers."""
    p = subparsers.add_parser(
        "socs", help="list, show or validate SoC descriptors",
        description="Without a subcommand: list the shipped SoCs.",
    )
    sub = p.add_subparsers(dest="socs_command")
    show = sub.add_parser("show", help="print one resolved descriptor as YAML")
    show.add_argument("name", help="shipped SoC name or path to a descriptor YAML")
    show.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help="override one field for this run, e.g. memory.hbm.bandwidth_gb_per_s=2800 "
        "(repeatable)",
    )
    show.add_argument("--patch", type=Path, default=None, help="YAML patch deep-merged first")
    val = sub.add_parser("validate", help="check a user descriptor file")
    val.add_argument("file", type=Path, help="descriptor YAML to check")
    return p


def _cores_text(soc: SocDescriptor) -> str:
    counts = soc.core_counts()
    if soc.organisation == "split":
        return f"{counts['aic']} AIC + {counts['aiv']} AIV"
    return f"{counts['aicore']} AIC + {counts['vector_core']} VEC"


def _clock_text(soc: SocDescriptor) -> str:
    clocks = sorted({soc.freq_mhz(k) for k in soc.core_counts()}, reverse=True)
    if clocks == [soc.aicore_freq_mhz]:
        return str(soc.aicore_freq_mhz)
    others = "/".join(str(c) for c in clocks if c != soc.aicore_freq_mhz)
    return f"{soc.aicore_freq_mhz} (vec {others})"


def socs_table(socs: list[SocDescriptor]) -> str:
    """An aligned text table: cores, clock, peak fp16 / int8, HBM bandwidth, L2 size."""
    rows = [
        (
            s.name,
            s.family,
            _cores_text(s),
            _clock_text(s),
            f"{s.peak_tflops('float16'):.1f}",
            f"{s.peak_tflops('int8'):.1f}",
            f"{s.memory.hbm.bandwidth_gb_per_s:.0f}",
            f"{s.memory.l2.capacity_bytes / 2**20:g}",
        )
        for s in socs
    ]
    widths = [max(len(str(r[i])) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    numeric = {3, 4, 5, 6, 7}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    lines = [fmt(COLUMNS), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def run_socs(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Execute ``npusim socs ...``; returns the process exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    command = getattr(args, "socs_command", None)
    try:
        if command is None:
            names = list_socs()
            print(socs_table([load_soc(n) for n in names]), file=out)
            print(f"{len(names)} SoCs; npusim socs show NAME prints one descriptor in full "
                  "(--set PATH=VALUE for a what-if)", file=out)
            return 0
        if command == "show":
            soc = load_soc(args.name, overrides=args.overrides, patch=args.patch)
            out.write(soc.model_dump_yaml())
            changed = len(args.overrides) + (1 if args.patch else 0)
            print(f"# the {soc.name} descriptor as npusim uses it, {changed} change(s) applied; "
                  "save it and pass --soc FILE to run on it", file=out)  # a YAML comment
            return 0
        if command == "validate":
            soc = validate_soc_file(args.file)
            print(f"OK: {args.file} ({soc.name}, {_cores_text(soc)})", file=out)
            return 0
    except DescriptorError as exc:  # the CLI's convention for user errors: one line, exit 2
        print(f"npusim: error: {' '.join(str(exc).split())}", file=err)
        return 2
    raise ValueError(f"socs_command={command!r}: unknown; use show or validate")  # pragma: no cover
