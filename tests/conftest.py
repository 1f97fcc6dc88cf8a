"""Test configuration: make the helper modules in this folder (``_fake_soc``) importable, and
run the torch_npu-named API at ``reference`` fidelity unless a test says otherwise: the suite's
API calls are the oracle side of comparisons with simulate()'s program outputs (the replay
tests), and tests/test_api_fidelity.py checks the default ``program`` fidelity itself. The
oracles' many small matmuls run on one BLAS thread (as simulate()'s functional runs do,
npusim.numerics.blas_threads): results do not depend on it, the suite's time does.

Hypothesis draws the same examples on every run (profile ``ci``, derandomized), so a CI result
is reproducible: a failure seen once is seen again. ``NPUSIM_HYPOTHESIS=explore`` draws fresh
random examples to look for new failures locally, and ``NPUSIM_HYPOTHESIS_SCALE=N`` multiplies
every test's own ``max_examples`` by N (a profile cannot: a test's ``@settings`` overrides it);
pin what they find with ``@example``."""

import os
import sys
from pathlib import Path

from hypothesis import settings
from threadpoolctl import threadpool_limits

# `python -m pytest` puts the working directory first on sys.path, where the repository's
# top-level `ops/` folder would import as a package that the installed project does not have
# (CI runs `pytest`, which does not): drop it so both runs import the same modules.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != _ROOT]
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("NPUSIM_FIDELITY", "reference")
threadpool_limits(limits=1, user_api="blas")
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("NPUSIM_HYPOTHESIS", "ci"))


def pytest_collection_modifyitems(items):
    """``NPUSIM_HYPOTHESIS_SCALE``: each hypothesis test's max_examples times the factor."""
    factor = float(os.environ.get("NPUSIM_HYPOTHESIS_SCALE", "1"))
    if factor == 1:
        return
    for item in items:
        fn = getattr(item, "obj", None)
        own = getattr(fn, "_hypothesis_internal_use_settings", None)
        if getattr(fn, "hypothesis", None) is not None and own is not None:
            fn._hypothesis_internal_use_settings = settings(
                own, max_examples=max(1, round(own.max_examples * factor)))
