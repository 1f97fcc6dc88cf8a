"""Execute the notebooks in place, so the repository keeps them with their outputs and figures.

    python notebooks/execute.py                 # every notebooks/*.ipynb
    python notebooks/execute.py b_tiling_study.ipynb

Each runs in a fresh kernel of this Python (ipykernel) inside a temporary folder (the figure
files the cells write land there, not in the repository); matplotlib uses the kernel's inline
backend, so every figure is stored in the notebook as an image/png output. Needs the ``test``
extra (nbformat, nbclient, ipykernel, matplotlib). Stops at the first failing cell.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 600


def execute(path: Path, workdir: Path) -> object:
    """The executed notebook (nbformat node) of ``path``, run with ``workdir`` as its cwd."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def image_count(nb) -> int:
    """image/png outputs in the notebook's code cells."""
    return sum("image/png" in out.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for out in cell.get("outputs", []))


def main(argv: list[str]) -> int:
    import nbformat

    paths = [HERE / a for a in argv] if argv else sorted(HERE.glob("*.ipynb"))
    for path in paths:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute(path, Path(tmp))
        for cell in nb.cells:  # execution counts and timings only add diff noise
            cell.get("metadata", {}).pop("execution", None)
        nbformat.write(nb, path)
        print(f"{path.name}: executed in {time.perf_counter() - t0:.1f} s, "
              f"{image_count(nb)} figure(s) stored")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
