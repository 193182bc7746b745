"""Fisher-vector encoding of many clips: here, in local worker processes, or on a Dask cluster.

One task, `encode_one` (a clip's descriptors, or its store entry's path, → its Φ in float32),
runs wherever the clips are encoded, and every row lands at its clip's index: the numbers and
their order are those of one process (`FisherEncoder.transform`), bit for bit.

* **Local processes** (``n_jobs`` > 1, no cluster): started as extraction's are (forkserver,
  preloaded: `actionlrp.workers._process_context`), each given the fitted encoder once. A
  stored clip travels to its worker as its entry's path and is read there; a clip in memory as
  its descriptors. A worker holds one batch of clips at a time, so its memory does not grow with
  the dataset. Each worker's BLAS runs one thread (threadpoolctl), so ``n_jobs`` workers keep
  ``n_jobs`` cores busy instead of ``n_jobs`` × cores threads fighting over them. Encoding in
  this process runs one BLAS thread too: its GEMMs (2048 descriptors × 48 × 256) gain nothing
  from a second, and on a busy machine OpenBLAS's threads made it 3 × slower (docs/results.md).
  The numbers do not depend on it.
* **Dask** (a store read with a client, ``--scheduler``): `actionlrp.cluster.encode_on_cluster`
  maps the same task over the cluster's workers (Dask's nanny starts them with one BLAS thread).
* A batch too small to pay for starting processes (under `MIN_PARALLEL_WORK`) stays here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from actionlrp.descriptors import DescriptorParams, LocalDescriptors
from actionlrp.errors import ActionLRPError, EmptyClipError
from actionlrp.features import DiskMatrix
from actionlrp.fisher import FisherEncoder
from actionlrp.store import StoredDescriptors, load_entry

__all__ = ["MIN_PARALLEL_WORK", "encode_one", "transform"]

#: Descriptors × Fisher-vector dimensions under which a batch is encoded in this process: about
#: a second of encoding here (58 µs a descriptor at D = 73 728), what starting workers costs.
MIN_PARALLEL_WORK = 1 << 30

#: Descriptors per task: small clips go to a worker several at a time (fewer round trips).
BATCH_DESCRIPTORS = 4096


def encode_one(
    encoder: FisherEncoder,
    clip: LocalDescriptors | str | os.PathLike,
    params: DescriptorParams | None = None,
    index: int | None = None,
) -> np.ndarray:
    """Φ of one clip, as `FisherEncoder.transform` computes its row.

    Parameters
    ----------
    encoder : FisherEncoder
        Fitted.
    clip : LocalDescriptors or path-like
        The clip's descriptors, or its store entry (read with ``params``). Anything else is
        refused by `FisherEncoder.encode` (TypeError).
    params : DescriptorParams, optional
        The store's, for an entry.
    index : int, optional
        The clip's position, named in the error of an in-memory clip.

    Returns
    -------
    ndarray, shape (encoder.fv_dim_,), float32

    Raises
    ------
    EmptyClipError
        The clip has no descriptor; the message names its entry or ``descriptors[index]``.
    """
    if isinstance(clip, str | os.PathLike):
        desc, name = load_entry(clip, params), str(clip)
    else:
        desc, name = clip, f"descriptors[{index}]"
    try:
        return encoder.encode(desc).phi.astype(np.float32)
    except EmptyClipError as exc:
        raise EmptyClipError(f"{name}: {exc}") from None


def transform(
    encoder: FisherEncoder,
    descriptors: Sequence[LocalDescriptors],
    n_jobs: int = 1,
    min_work: int | None = None,
    out: np.ndarray | DiskMatrix | None = None,
) -> np.ndarray | DiskMatrix:
    """``encoder.transform(descriptors)`` in ``n_jobs`` local processes, or on the store's
    cluster when ``descriptors`` are stored ones read with a client.

    The rows are written into one array as they come: memory is the result's plus one clip
    (a batch per worker), never a second copy of the result.

    Parameters
    ----------
    encoder : FisherEncoder
        Fitted.
    descriptors : sequence of LocalDescriptors, or StoredDescriptors
        The clips, each with at least one descriptor.
    n_jobs : int
        Local worker processes; 1 (or a batch under ``min_work``) encodes in this process,
        -1 uses every core.
    min_work : int, optional
        Descriptors × ``encoder.fv_dim_`` from which the local processes are worth starting;
        default `MIN_PARALLEL_WORK`.
    out : ndarray or DiskMatrix, shape (n_clips, encoder.fv_dim_), float32, optional
        Where to write the rows (e.g. `features.feature_matrix`'s); default a new array.

    Returns
    -------
    ndarray or DiskMatrix, shape (n_clips, encoder.fv_dim_), float32
        ``out`` if given. In input order, the same numbers wherever they were computed.

    Raises
    ------
    EmptyClipError
        A clip has no descriptor: the message names its entry (stored) or its index.
    """
    if n_jobs is None or n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be ≥ 1 or -1 (all cores), got {n_jobs!r}")
    params = None
    if isinstance(descriptors, StoredDescriptors):
        if 0 in descriptors.sizes:
            first = descriptors.files[descriptors.sizes.index(0)]
            raise EmptyClipError(
                f"{first}: clip has no local descriptors (N = 0): too short or "
                "too small for one cube, so it has no Fisher vector"
            )
        if descriptors.client is not None:
            from actionlrp.cluster import encode_on_cluster

            return encode_on_cluster(
                descriptors.client, encoder, descriptors.files, descriptors.params, out
            )
        clips = [f if isinstance(f, LocalDescriptors) else str(f) for f in descriptors.files]
        sizes, params = descriptors.sizes, descriptors.params
    else:
        clips = list(descriptors)
        sizes = [len(d) if isinstance(d, LocalDescriptors) else 0 for d in clips]
    check_is_fitted(encoder, "weights_")
    min_work = MIN_PARALLEL_WORK if min_work is None else min_work
    if n_jobs == 1 or len(clips) < 2 or 0 in sizes or sum(sizes) * encoder.fv_dim_ < min_work:
        # into one array (no list of rows to stack: half the memory), one BLAS thread as in a
        # worker (faster, the same numbers)
        rows = np.empty((len(clips), encoder.fv_dim_), np.float32) if out is None else out
        with threadpool_limits(1, user_api="blas"):
            for i, clip in enumerate(clips):
                rows[i] = encode_one(encoder, clip, params, i)
        return rows
    return _encode_in_processes(encoder, clips, sizes, params, int(n_jobs), out)


def _batches(sizes: Sequence[int], n_jobs: int) -> list[tuple[int, int]]:
    """``(start, stop)`` runs of consecutive clips of about `BATCH_DESCRIPTORS` descriptors,
    at least four per worker so that none waits long for the last."""
    target = min(BATCH_DESCRIPTORS, max(1, sum(sizes) // (4 * n_jobs)))
    bounds, start, total = [], 0, 0
    for i, n in enumerate(sizes):
        total += n
        if total >= target:
            bounds.append((start, i + 1))
            start, total = i + 1, 0
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


def _encode_in_processes(
    encoder: FisherEncoder,
    clips: list,
    sizes: Sequence[int],
    params: DescriptorParams | None,
    n_jobs: int,
    out: np.ndarray | DiskMatrix | None = None,
) -> np.ndarray | DiskMatrix:
    """Rows of ``clips`` (descriptors or entry paths) from ``n_jobs`` worker processes."""
    from actionlrp.workers import _process_context

    rows = np.empty((len(clips), encoder.fv_dim_), np.float32) if out is None else out
    batches = _batches(sizes, n_jobs)
    with ProcessPoolExecutor(
        min(n_jobs, len(batches)),
        mp_context=_process_context(),
        initializer=_start_worker,
        initargs=(encoder, params),
    ) as pool:
        queue = list(reversed(batches))
        running = {}
        try:
            while queue or running:
                # a few batches in flight per worker: descriptors in memory are pickled only
                # as they are sent, and finished rows are copied out at once
                while queue and len(running) < 2 * n_jobs:
                    start, stop = queue.pop()
                    future = pool.submit(_encode_batch, start, clips[start:stop])
                    running[future] = start
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    start = running.pop(future)
                    try:
                        block = future.result()
                    except BrokenProcessPool:
                        raise ActionLRPError(
                            "a Fisher-vector encoding worker process died (out of memory?); "
                            "run again with --jobs 1 to encode in this process"
                        ) from None
                    rows[start : start + len(block)] = block
        finally:
            for future in running:
                future.cancel()
    return rows


_WORKER: dict[str, object] = {}


def _start_worker(encoder: FisherEncoder, params: DescriptorParams | None) -> None:
    """A worker's set-up: the encoder, received once, and one BLAS thread."""
    threadpool_limits(1, user_api="blas")
    _WORKER.update(encoder=encoder, params=params)


def _encode_batch(start: int, clips: list) -> np.ndarray:
    """Rows of consecutive clips, the first at index ``start``; shape (len(clips), D), float32."""
    encoder, params = _WORKER["encoder"], _WORKER["params"]
    return np.stack([encode_one(encoder, c, params, start + j) for j, c in enumerate(clips)])
