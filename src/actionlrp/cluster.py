"""Dask glue: extraction and Fisher-vector encoding on an existing dask.distributed cluster.

Start the cluster with Dask's own commands (``dask scheduler``; ``dask worker tcp://HOST:8786``
on each machine, in an environment where actionlrp is installed), then give its address to
``--scheduler``. Workers read the clips and read and write the feature store themselves, so
both must lie at the same paths on every machine (a shared file system); only small outcomes
and Fisher vectors travel through the scheduler. Results come back in input order: the numbers
are those of a single process.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from actionlrp.descriptors import DescriptorParams
from actionlrp.encoding import encode_one
from actionlrp.entries import ExtractionSpec
from actionlrp.errors import ActionLRPError
from actionlrp.fisher import FisherEncoder
from actionlrp.workers import _extract_in_worker, _Job, _Outcome, worker_died

__all__ = ["close_clients", "connect", "encode_on_cluster", "run_on_cluster"]

_CLIENTS: dict[str, object] = {}


def connect(address: str, timeout: float = 30.0):
    """A `distributed.Client` of the scheduler at ``address``, once per process.

    Raises
    ------
    ActionLRPError
        No scheduler answers at ``address``, or it has no worker within ``timeout`` seconds.
    """
    client = _CLIENTS.get(address)
    if client is not None and client.status == "running":
        return client
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ActionLRPError(
            f"{address}: no Dask scheduler answers ({str(exc).splitlines()[0]}); start one with "
            f"`dask scheduler` and workers with `dask worker {address}`"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise ActionLRPError(
            f"{address}: the Dask scheduler has no worker; start some with `dask worker {address}`"
        ) from None
    _CLIENTS[address] = client
    return client


@atexit.register
def close_clients() -> None:
    """Close the clients `connect` opened (before their cluster goes away)."""
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        client.close()


def run_on_cluster(
    client, jobs: Sequence[_Job], spec: ExtractionSpec, done: Callable[[_Job, _Outcome], None]
) -> None:
    """Run extraction jobs on the cluster; ``done(job, outcome)`` as each finishes.

    A clip whose task kills its worker as often as the scheduler allows
    (``distributed.scheduler.allowed-failures``) is reported failed; any other error of a task
    too. An exception raised by ``done`` cancels the tasks not yet finished and propagates.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    if not jobs:
        return
    futures = client.map(_extract_in_worker, list(jobs), spec=spec, pure=False)
    job_of = {f.key: job for f, job in zip(futures, jobs, strict=True)}
    try:
        for future in as_completed(futures, loop=client.loop):
            job = job_of[future.key]
            try:
                outcome = future.result()
            except KilledWorker:
                outcome = _Outcome(error=worker_died(job.path))
            except Exception as exc:  # noqa: BLE001 — one bad clip never stops a batch
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                outcome = _Outcome(error=f"{job.path}: {text}")
            done(job, outcome)
            future.release()
    finally:
        client.cancel([f for f in futures if not f.done()])


def _encode_entry(file: str, encoder: FisherEncoder, params: DescriptorParams) -> np.ndarray:
    """Φ of one stored clip, float32: `encode_one`, the task of local workers too."""
    return encode_one(encoder, file, params)


def encode_on_cluster(
    client,
    encoder: FisherEncoder,
    files: Sequence[Path],
    params: DescriptorParams,
    out=None,
) -> np.ndarray:
    """Φ of each stored clip, computed on the cluster's workers.

    Returns
    -------
    ndarray or DiskMatrix, shape (n_clips, encoder.fv_dim_), float32
        In the order of ``files``; ``out`` (an empty matrix of that shape) if given.
    """
    from distributed import as_completed

    rows = np.zeros((len(files), encoder.fv_dim_), np.float32) if out is None else out
    if not len(files):
        return rows
    remote = client.scatter(encoder, broadcast=True, hash=False)
    futures = client.map(
        _encode_entry, [str(f) for f in files], encoder=remote, params=params, pure=False
    )
    row_of = {f.key: i for i, f in enumerate(futures)}
    try:
        for future, phi in as_completed(futures, loop=client.loop, with_results=True):
            rows[row_of[future.key]] = phi
            future.release()
    finally:
        client.cancel([f for f in futures if not f.done()])
    return rows
