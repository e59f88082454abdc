"""Process tuning, in one place: how many threads BLAS may use and how the C heap (glibc's
malloc) hands freed memory back, for the app's server, the training worker and the
benchmarks.

The app reads one 28x28 digit at a time on a small shared server, and trains in a worker
process beside it. Both lose badly to the defaults: OpenBLAS wakes its thread pool even
for a 1x784 product, and glibc keeps freed buffers per thread for reuse. Each setting's
comment says what it was measured to cost or save. This module never imports streamlit or
TensorFlow; ``threadpoolctl`` is imported only when a function needs it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping

# The cores this process may run on (2 on this project's machines): the threads a big
# batch's prediction is spread over, and ONNX Runtime's intra-op threads.
CORES = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1))

# ---------------------------------------------------------------------------------------
# BLAS threads
# ---------------------------------------------------------------------------------------

# The app predicts one 28x28 image at a time: a 1x784 @ 784x800 product is ~0.2 ms on one
# core, but OpenBLAS hands it to its thread pool, and on a busy 2-core server waking those
# threads took ~20 ms a drawing (measured while models trained beside the app). In the
# training worker OpenBLAS's threads spin waiting for a busy core: Train live's default
# NumPy MLP run (10,000 images, 3 epochs) took 9.4-11.6 s with two BLAS threads while two
# other processes kept both cores busy, 0.6 s with one. (The NumPy training loop also pins
# it in-process: training.train.EngineConfig.blas_threads.)
BLAS_THREADS = 1

# The same limit for a process about to start (the worker), by environment: read by
# OpenBLAS, OpenMP and MKL when they load.
BLAS_THREAD_ENV: Mapping[str, str] = {
    "OPENBLAS_NUM_THREADS": str(BLAS_THREADS), "OMP_NUM_THREADS": str(BLAS_THREADS),
    "MKL_NUM_THREADS": str(BLAS_THREADS)}


def limit_blas_threads(n: int = BLAS_THREADS) -> bool:
    """Cap every BLAS loaded in this process at ``n`` threads, for good; True if a BLAS
    was found. (The server calls it once its models are loaded.)"""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=n, user_api="blas")
    return bool(limiter.get_original_num_threads().get("blas"))


_controller = None


def blas_threads(n: int | None = BLAS_THREADS):
    """Hold every BLAS of this process at ``n`` threads (None: as it is) inside a ``with``
    block, or until ``.unregister()``. The controller that finds the BLAS libraries is made
    once: making it scans every loaded library, milliseconds each time."""
    global _controller
    from threadpoolctl import ThreadpoolController

    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def blas_thread_count() -> int:
    """The most threads any BLAS loaded in this process would use (0: none loaded)."""
    from threadpoolctl import threadpool_info

    return max((int(i.get("num_threads") or 0) for i in threadpool_info()
                if i.get("user_api") == "blas"), default=0)


# ---------------------------------------------------------------------------------------
# The C heap (glibc's malloc; other C libraries ignore all of this)
# ---------------------------------------------------------------------------------------

# The server: freed buffers this large or larger go back to the system at once, and free
# space over twice that at a heap's top (see return_big_buffers).
SERVER_MMAP_THRESHOLD = 1 << 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameter numbers

# The training worker, by environment: glibc's malloc keeps freed memory for reuse instead
# of handing arrays of up to 32 MB (its largest threshold) back to the system and faulting
# fresh zeroed pages in for the next batch: a NumPy training step allocates the same tens
# of MB every batch. Live CNN, 128 images a step: 220,000 page faults in 25 steps and
# 133 ms of CPU a step by default, 16,000 and 102 ms with these. One arena: the validation
# split's prediction runs on other threads, which otherwise could not reuse what the
# training step freed (a 1,000-image CNN run: peak 189 MB by default, 225 MB with two
# arenas, 197 MB with one).
WORKER_MALLOC_ENV: Mapping[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
    "MALLOC_ARENA_MAX": "1"}


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def return_big_buffers(threshold: int = SERVER_MMAP_THRESHOLD) -> bool:
    """Have the C heap hand every freed buffer of ``threshold`` bytes or more back to the
    system, and free space over twice that at a heap's top; True if set (glibc), False
    elsewhere (macOS, musl: nothing changes).

    Streamlit runs each session's script in a thread of its own; glibc gives threads their
    own heap arenas, keeps the buffers freed there for reuse, and raises both thresholds
    (from 128 kB, up to 32 MB and 64 MB) after any large buffer is freed. After photos
    uploaded five at a time a process kept ~84 MB over idle for good; with these fixed
    thresholds ~5 MB, for a few ms more per 12-megapixel photo (benchmarks/PHONE_PHOTOS.md).
    Set before the models load, so what loading frees goes back too.
    """
    try:
        libc = _libc()
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)
                    and libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold))
    except (OSError, AttributeError):
        return False


def trim_malloc() -> bool:
    """Hand the memory malloc keeps for reuse (:data:`WORKER_MALLOC_ENV`) back to the
    system now: True if done (glibc), False elsewhere. The worker calls it before scoring,
    which allocates other sizes than training did and would otherwise add to the kept
    buffers (a 1,000-image CNN run peaked 36 MB higher)."""
    try:
        _libc().malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def worker_env() -> dict[str, str]:
    """The environment settings a training or scoring worker process starts with: its
    malloc (:data:`WORKER_MALLOC_ENV`) and its BLAS threads (:data:`BLAS_THREAD_ENV`)."""
    return {**WORKER_MALLOC_ENV, **BLAS_THREAD_ENV}
