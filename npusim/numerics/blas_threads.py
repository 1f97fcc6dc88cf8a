"""One BLAS thread while the numerics run: the cube models multiply many small tiles (e.g.
128 x 64 x 256), where a multi-threaded OpenBLAS spends its time synchronising its threads - on
the project's 2-core machine under load a 128 x 64 x 256 float32 product took 16-34 ms on two
threads and 0.5-0.6 ms on one. Scoped (threadpoolctl's context manager, about 1 ms to enter),
so a caller's own BLAS setting is restored afterwards; the results do not depend on it (every
cube model is exact or certified independently of the BLAS library and thread count)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def single_thread_blas() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield
