"""Process tuning in one place: how many cores, BLAS threads."""

from __future__ import annotations

import os

# The cores this process may run on (2 on this project's machines).
CORES = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1))


def blas_limit(threads: int | None):
    """Hold every BLAS of the process at ``threads`` until ``.unregister()`` (or the end of
    a ``with`` block); None: no change."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=threads, user_api="blas")
