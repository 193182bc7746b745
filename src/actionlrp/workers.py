"""Extraction's workers: one clip's job, and the local process pool that runs many.

`_extract_in_worker` is the task: a clip's descriptors, ``describe(motion_field(clip),
params)``, its entry written into the store or the cache, and the descriptors handed back
through a file (not the pipe) or left where they lie. It runs in this process, in the local
worker processes of `_run_in_processes`, or on the workers of a Dask cluster
(`actionlrp.cluster.run_on_cluster`). The local pool keeps two jobs in flight per worker; when
a worker dies (a crash in the decoder, the OOM killer) a fresh pool takes over and the clips in
flight are re-run alone, one that kills its process again reported as failed (`worker_died`).
`_process_context` starts the processes of extraction and of encoding (`actionlrp.encoding`).
`actionlrp.extraction` builds the jobs and collects the outcomes.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from actionlrp.descriptors import DescriptorParams, LocalDescriptors
from actionlrp.entries import ExtractionSpec, file_sha256, write_entry
from actionlrp.errors import ActionLRPError
from actionlrp.motion import described_motion_field

__all__ = ["worker_died"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _compute(
    path: str, motion: str, cell: int, params: DescriptorParams, transcode: bool
) -> tuple[LocalDescriptors | None, int, bool, str | None]:
    """``(descriptors, n_frames, transcoded, None)``, or ``(None, 0, False, one-line error)``."""
    try:
        field_, desc = described_motion_field(path, params, motion, cell, transcode=transcode)
    except ActionLRPError as exc:
        message = _one_line(str(exc))
        if not message.startswith(path):
            message = f"{path}: {message}"
        return None, 0, False, message
    except Exception as exc:  # noqa: BLE001 — one bad clip never stops a batch
        return None, 0, False, _one_line(f"{path}: {type(exc).__name__}: {exc}")
    return desc, field_.n_frames, "->" in field_.codec, None


@dataclass(frozen=True)
class _Job:
    """One clip for a worker: where its entry goes and how its descriptors come back.

    ``entry``: the store's or the cache's entry to write (None: no cache). ``key`` and
    ``content``: the entry's key and the clip's sha256 where the caller knows them already.
    ``transfer``: a file to hand the descriptors back through (worker processes). ``strict``:
    a store's entry: the descriptors are not handed back, and an entry that cannot be written
    stops the run instead of being a warning.
    """

    index: int
    path: str
    entry: str | None = None
    key: str | None = None
    content: str | None = None
    transfer: str | None = None
    strict: bool = False


@dataclass(frozen=True)
class _Outcome:
    """What a worker hands back: the descriptors go through a file, not the pipe.

    Pickling ~10 MB of descriptors per clip back through the process pool's pipe made two
    workers twice as slow as one process; writing them to a file the parent reads is not.
    """

    n_frames: int = 0
    error: str | None = None
    problem: str | None = None  # the cache could not be written
    file: str | None = None  # the descriptors: an entry or a transfer file
    inline: LocalDescriptors | None = None  # the descriptors, when no file holds them
    fatal: str | None = None  # a store's entry could not be written: the run stops
    n_cubes: int = 0
    key: str | None = None
    seconds: float = 0.0
    peak_rss_kb: int = 0


def _source(job: _Job, spec: ExtractionSpec) -> dict | None:
    """The clip's key, sha256, size and modification time; None if it cannot be read."""
    try:
        stat = os.stat(job.path)
        content = job.content or file_sha256(job.path)
    except OSError:
        return None  # missing or unreadable: extraction reports it
    return {
        "key": job.key or spec.key(content),
        "content": content,
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
    }


def _extract_in_worker(job: _Job, spec: ExtractionSpec) -> _Outcome:
    """Extract one clip, write its entry, hand back its descriptors or where they are."""
    start = time.perf_counter()
    source = _source(job, spec) if job.entry is not None else None
    desc, n_frames, transcoded, error = _compute(
        job.path, spec.motion, spec.cell, spec.params, spec.transcode
    )
    done = {"n_frames": n_frames, "seconds": time.perf_counter() - start, "peak_rss_kb": _peak()}
    if desc is None:
        return _Outcome(error=error, seconds=done["seconds"], peak_rss_kb=done["peak_rss_kb"])
    done["n_cubes"] = len(desc)
    problem = None
    if source is not None:
        done["key"] = source["key"]
        try:
            strict = job.strict  # a store's entry: deflated and fsynced; the cache's: neither
            write_entry(job.entry, desc, n_frames, transcoded, strict, source, durable=strict)
        except OSError as exc:
            if job.strict:
                return _Outcome(
                    fatal=_one_line(
                        f"{job.entry}: cannot write ({exc.strerror or exc}); no partial entry "
                        "was left: make room and run the same command again to go on"
                    )
                )
            problem = _one_line(
                f"{Path(job.entry).parent}: cannot write the cache ({exc.strerror or exc})"
            )
        else:
            if job.strict or job.transfer is not None:
                return _Outcome(file=job.entry, **done)
    if job.transfer is None:
        return _Outcome(problem=problem, inline=desc, **done)
    try:
        write_entry(job.transfer, desc, n_frames, transcoded, compress=False)
    except OSError:
        return _Outcome(problem=problem, inline=desc, **done)
    return _Outcome(problem=problem, file=job.transfer, **done)


def _peak() -> int:
    """This process's peak resident memory in KiB."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver where available, else spawn: never fork a process that runs PyAV threads."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports extraction and encoding once; each worker is forked from it ready to run.
    context.set_forkserver_preload(["actionlrp.extraction", "actionlrp.encoding"])
    return context


def _run_in_processes(jobs: list[_Job], n_jobs: int, spec: ExtractionSpec, done) -> None:
    """Run `_extract_in_worker` on every job in ``n_jobs`` processes; ``done(job, outcome)``.

    At most 2 × ``n_jobs`` jobs are in flight — one running and one waiting per worker, so a
    worker never idles while this process takes a result and sends the next job — so when a
    worker dies (a crash inside FFmpeg, the OOM killer) the suspects are those few: each is
    re-run alone in a fresh process, the one that kills its process again is reported as
    failed, and the rest of the batch goes on.
    An exception raised by ``done`` stops the run once the jobs in flight have finished.
    """
    context = _process_context()
    queue = deque(jobs)

    def submit(pool: ProcessPoolExecutor, job: _Job) -> Future:
        return pool.submit(_extract_in_worker, job, spec)

    while queue:
        suspects: list[_Job] = []
        with ProcessPoolExecutor(min(n_jobs, len(queue)), mp_context=context) as pool:
            running: dict[Future, _Job] = {}
            broken = False
            while queue or running:
                while queue and len(running) < 2 * n_jobs and not broken:
                    job = queue.popleft()
                    try:
                        running[submit(pool, job)] = job
                    except BrokenProcessPool:  # a worker died since the last wait
                        queue.appendleft(job)  # never started: not a suspect
                        broken = True
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        suspects.append(job)
                        continue
                    done(job, outcome)
                if suspects:
                    suspects.extend(running.values())
                    break
        for job in sorted(suspects, key=lambda j: j.index):
            with ProcessPoolExecutor(1, mp_context=context) as alone:
                try:
                    outcome = submit(alone, job).result()
                except BrokenProcessPool:
                    outcome = _Outcome(error=worker_died(job.path))
            done(job, outcome)


def worker_died(path: str) -> str:
    """The failure of a clip whose worker process died while reading it."""
    return (
        f"{path}: the worker process died while reading this clip (a crash in the decoder?); "
        "check the file with ffprobe or re-encode it"
    )
