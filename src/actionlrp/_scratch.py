"""Scratch memory kept between calls, and the threads the compiled kernels run in."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class _Workspace:
    """Scratch arrays kept from one call to the next.

    Fresh memory costs a page fault per page on first use, which for a short clip takes longer
    than the arithmetic done in it. `_workspace` lends one to a thread for a while.
    """

    #: Arrays larger than this are not kept once the workspace is handed back, nor more than
    #: ``keep_total`` bytes of them (the smallest are kept).
    keep_bytes = 16 << 20
    keep_total = 64 << 20

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """An array of ``shape`` (contents undefined), valid until the next call for ``name``."""
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)

    def trim(self) -> None:
        """Drop the large arrays, and the largest ones beyond ``keep_total`` bytes in all."""
        kept, total = {}, 0
        for name, buffer in sorted(self._buffers.items(), key=lambda item: item[1].nbytes):
            if buffer.nbytes > self.keep_bytes or total + buffer.nbytes > self.keep_total:
                break
            kept[name] = buffer
            total += buffer.nbytes
        self._buffers = kept


_IDLE_WORKSPACES: list[_Workspace] = []


@contextlib.contextmanager
def _workspace() -> Iterator[_Workspace]:
    """A `_Workspace` that no other thread uses meanwhile (list.pop and append are atomic)."""
    try:
        work = _IDLE_WORKSPACES.pop()
    except IndexError:
        work = _Workspace()
    try:
        yield work
    finally:
        work.trim()
        _IDLE_WORKSPACES.append(work)


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_THREADS: dict[str, object] = {"pid": None, "size": 0, "pool": None}


def _threads(n: int) -> ThreadPoolExecutor:
    """A pool of at least ``n`` threads, kept for the process (a new one after a fork, which
    leaves the parent's threads behind)."""
    if _THREADS["pid"] != os.getpid() or _THREADS["size"] < n:
        pool = ThreadPoolExecutor(n, thread_name_prefix="actionlrp-describe")
        _THREADS.update(pid=os.getpid(), size=n, pool=pool)
    return _THREADS["pool"]


def _in_pieces(n: int, least: int, kernel: Callable[..., None], *arguments) -> None:
    """``kernel(*arguments, start, stop)`` over ``0 … n`` cut into one piece per available CPU
    of at least ``least``, the first in this thread, the others in `_threads` (the kernels
    release the GIL)."""
    n_pieces = max(1, min(_available_cpus(), n // least))
    bounds = [n * i // n_pieces for i in range(n_pieces + 1)]
    pieces = list(itertools.pairwise(bounds))
    others = [_threads(n_pieces - 1).submit(kernel, *arguments, a, b) for a, b in pieces[1:]]
    try:
        kernel(*arguments, *pieces[0])
    finally:
        for done in others:
            done.result()
