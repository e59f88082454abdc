"""Process tuning in one place: how many cores, BLAS threads."""

from __future__ import annotations

import os

# The cores this process may run on (2 on this project's machines).
CORES = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1))

_controller = None


def blas_limit(threads: int | None):
    """Hold every BLAS of the process at ``threads`` until ``.unregister()`` (or the end of
    a ``with`` block); None: no change. The controller that finds the BLAS libraries is
    made once: making it scans every loaded library (milliseconds, each time)."""
    global _controller
    from threadpoolctl import ThreadpoolController
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=threads, user_api="blas")
