"""The reference traces in ``traces/`` are what the code produces today: each file is
regenerated into a temporary folder and compared byte for byte, so a change in scheduling,
cycles or instruction names must come with regenerated traces (``python traces/regenerate.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TRACES = Path(__file__).resolve().parent.parent / "traces"


def _regenerate(out: Path) -> None:
    spec = importlib.util.spec_from_file_location("npusim_traces_regenerate",
                                                  TRACES / "regenerate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(out)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traces")
    _regenerate(out)
    return out


def test_every_committed_trace_is_regenerated(regenerated: Path) -> None:
    """The script writes exactly the committed set of trace files (none stale, none missing)."""
    assert sorted(p.name for p in regenerated.glob("*.json")) == sorted(
        p.name for p in TRACES.glob("*.json"))


@pytest.mark.parametrize("name", sorted(p.name for p in TRACES.glob("*.json")))
def test_committed_trace_is_current(regenerated: Path, name: str) -> None:
    """A committed trace equals, byte for byte, the one the code produces now."""
    assert (regenerated / name).read_bytes() == (TRACES / name).read_bytes(), (
        f"traces/{name} is stale: run python traces/regenerate.py and commit the result")
