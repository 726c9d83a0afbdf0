"""One single-threaded torch worker for the small, latency-bound work of a search.

Embedding a query and scoring it against the chunk matrix are small operations. Spread over
an OpenMP team they spend more time in barriers than they save, and when other processes
hold the cores a descheduled team member stalls every barrier: on a loaded 2-core machine a
15 ms query embedding took 250-600 ms with two threads, and the 100k-row matrix product
27 ms instead of 9 ms. This worker runs such calls on one thread with no barriers; the rest
of the process (the engine, bulk embedding) keeps its own torch thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _single_threaded() -> None:
    """Make the calling thread run torch ops on one thread, leaving other threads alone.

    torch keeps the intra-op thread count per thread (OpenMP's ``nthreads-var``) plus a
    process-wide default that threads pick up on their first parallel op. Setting 1 here
    changes both, so the default is put back at once from a throwaway thread.
    """
    import torch

    default = torch.get_num_threads()
    torch.zeros(8).add_(1)  # initialise this thread's pool with the process default first
    torch.set_num_threads(1)
    restore = threading.Thread(target=torch.set_num_threads, args=(default,))
    restore.start()
    restore.join()


def solo(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` on the process's single-threaded torch worker and return its result."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmeco-solo")
                pool.submit(_single_threaded).result()
                _pool = pool
    return _pool.submit(fn, *args).result()
