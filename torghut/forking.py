"""Helper processes of a replay (its workers, the input split, the merge): forked when that is safe.

A forked process starts at once with everything the parent imported, where a new interpreter spends about
a third of a second starting and importing. But a fork copies only the calling thread, and a lock another
thread held at that moment stays held forever in the child, so a process that runs other threads (a
progress bar, a metrics server, a test fixture's server) starts new interpreters instead.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext


def can_fork() -> bool:
    """Whether this process may fork helpers: it runs one thread (Linux ``/proc/self/task``)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def process_context() -> BaseContext:
    """``fork`` when :func:`can_fork`, else ``spawn`` (a new interpreter per process)."""
    return multiprocessing.get_context("fork" if can_fork() else "spawn")


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` helper processes in the :func:`process_context` of this moment."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=process_context())
