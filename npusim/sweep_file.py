"""The results CSV of a sweep: tidy columns, whole-line appends, resume with torn-tail repair.

Columns: the fixed ``RESULT_COLUMNS`` (``case`` / ``tiling`` as sorted JSON, what the report
reads; several studies may append to one file). Beside it, ``<name>.tidy.csv`` is rewritten after
every run from the whole file: the same rows with one column per case field (``case.<field>``,
sorted) and per tiling field (``tiling.<field>``, in first-seen order), so it loads into a data
frame without parsing JSON; it is derived, written to a temporary file and renamed into place.

Writing: each row is formatted in memory and appended by one ``os.write`` of whole lines; the
header goes out with the first row, so a sweep that fails before its first point leaves no file.
A sweep killed inside a write can still leave a last line without its newline (a torn tail):
resume detects it, cuts the file back to the last complete line and computes that point again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_COLUMNS = ["key", "op", "soc", "variant", "overrides", "case", "tiling", "rank",
                  "default", "bound_us", "status", "kernel", "cycles", "us", "error", "summary"]
STATUSES = ("ok", "error")


def tidy_columns(cases: Iterable[Mapping[str, Any]],
                 tilings: Iterable[Mapping[str, Any]]) -> list[str]:
    """``case.<f>`` for every case field (sorted), then ``tiling.<f>`` in first-seen order."""
    case_fields = sorted({str(k) for c in cases for k in c})
    tiling_fields: dict[str, None] = {}
    for t in tilings:
        for k in t:
            tiling_fields.setdefault(str(k), None)
    return [f"case.{f}" for f in case_fields] + [f"tiling.{f}" for f in tiling_fields]


def tidy_cells(case: Mapping[str, Any], tiling: Mapping[str, Any]) -> dict[str, str]:
    """The tidy cells of one row: strings as they are, other values as JSON (true, 16, null)."""
    cells = {f"case.{k}": v for k, v in case.items()}
    cells.update({f"tiling.{k}": v for k, v in tiling.items()})
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in cells.items()}


@dataclass
class Existing:
    """What a results file already holds: completed keys, and where a torn tail starts."""

    keys: set[str]
    rows: int
    keep_bytes: int  # the file's complete lines; bytes after this are a torn tail
    size: int

    @property
    def torn(self) -> bool:
        return self.keep_bytes < self.size


def read_existing(path: Path, columns: Sequence[str]) -> Existing:
    """Check an existing results file against ``columns``; every complete row must be whole
    (a corrupt row in the middle is an error naming its line, never skipped silently)."""
    if not path.exists():
        return Existing(set(), 0, 0, 0)
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # 0 when not even the header is complete
    try:
        text = data[:keep].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a results CSV (not UTF-8 at byte {exc.start}); write to "
                         "a new --out file") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return Existing(set(), 0, 0, len(data))
    if header != list(columns):
        raise ValueError(f"{path}: its columns {header} differ from this study's {list(columns)} "
                         "(another study or npusim version); write to a new --out file")
    keys: set[str] = set()
    n = 0
    for n, row in enumerate(reader, start=1):
        if len(row) != len(columns) or row[columns.index("status")] not in STATUSES:
            raise ValueError(f"{path}: line {n + 1} is not a complete result row "
                             f"({len(row)} fields, {len(columns)} expected); fix or remove it")
        keys.add(row[0])
    return Existing(keys, n, keep, len(data))


class Appender:
    """Appends whole CSV lines to ``path``; the header (for a new file) and the cut of a torn
    tail happen with the first row, so nothing is touched until there is a row to write."""

    def __init__(self, path: Path, columns: Sequence[str], existing: Existing) -> None:
        self.path, self.columns, self.existing = path, list(columns), existing
        self.fd: int | None = None

    def _line(self, values: Sequence[Any]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        return buf.getvalue().encode("utf-8")

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.ftruncate(fd, self.existing.keep_bytes)  # drops a torn tail (or nothing)
        os.lseek(fd, 0, os.SEEK_END)
        if self.existing.keep_bytes == 0:
            _write_all(fd, self._line(self.columns))
        return fd

    def write(self, row: Mapping[str, Any]) -> None:
        if self.fd is None:
            self.fd = self._open()
        _write_all(self.fd, self._line([row.get(c, "") for c in self.columns]))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results file (complete lines only)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def tidy_path(path: Path) -> Path:
    return path.with_name(path.stem + ".tidy.csv")


def write_tidy(path: Path) -> Path | None:
    """Rewrite ``<name>.tidy.csv`` from the results file (None when there is no results file)."""
    if not path.exists():
        return None
    rows = read_rows(path)
    cases = [json.loads(r["case"]) for r in rows]
    tilings = [json.loads(r["tiling"]) for r in rows]
    fixed = [c for c in RESULT_COLUMNS if c not in ("case", "tiling")]
    columns = fixed + tidy_columns(cases, tilings)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r, c, t in zip(rows, cases, tilings, strict=True):
        cells = {**r, **tidy_cells(c, t)}
        w.writerow([cells.get(col, "") for col in columns])
    out = tidy_path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, out)
    return out
