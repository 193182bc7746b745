"""Descriptors of many clips at once, in worker processes, into a cache or a feature store.

`extract_descriptors` turns a list of clips into their local descriptors (design §1–2):
``describe(motion_field(clip), params)`` for each, in worker processes (two by default, both
cores of a small machine; ``n_jobs=1`` stays in this process), returned in input order.
`extract_to_store` writes them into a `actionlrp.store.FeatureStore` instead (``actionlrp
extract``), in local processes or on a Dask cluster, and hands nothing back but a summary.

* Cache: a `FeatureStore` under ``descriptors/`` of `default_cache_dir` (``$ACTIONLRP_CACHE``,
  else ``~/.cache/actionlrp``) whose entries are named by their key: the sha256 of the file's
  content and of everything the descriptors depend on (`ExtractionSpec.key`); a renamed clip
  keeps its entry, an unreadable entry is recomputed.
* A clip that cannot be read is listed in ``failures`` with its one-line message and never
  stops the batch.
* A worker process that dies (a crash in the decoder, the OOM killer) is replaced by a fresh
  pool; the clip that killed it is re-run alone and reported as failed if it kills it again.

The clips' jobs run in `actionlrp.workers` (its process pool, or `actionlrp.cluster`'s Dask
workers); this module checks the arguments, finds what the cache or the store holds already,
and collects the outcomes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actionlrp.datasets import Clip
from actionlrp.descriptors import DescriptorParams, LocalDescriptors, describe
from actionlrp.entries import ENTRY_FORMAT, ExtractionSpec, entry_info, file_sha256, read_entry
from actionlrp.errors import StoreError
from actionlrp.store import FeatureStore, StoredDescriptors
from actionlrp.video import MotionField
from actionlrp.workers import _extract_in_worker, _Job, _Outcome, _run_in_processes
from actionlrp.workers import worker_died as worker_died

__all__ = [
    "CACHE_FORMAT",
    "ExtractionResult",
    "StoreRun",
    "default_cache_dir",
    "extract_descriptors",
    "extract_to_store",
]

#: Version of the cache entries' content; part of every key (the store's entry format).
CACHE_FORMAT = ENTRY_FORMAT


@dataclass(frozen=True)
class ExtractionResult:
    """Descriptors of a list of clips.

    Attributes
    ----------
    descriptors : tuple of LocalDescriptors or None, or StoredDescriptors
        One per input path, in input order; None where the clip failed. Read from a store
        (`FeatureStore.read`), a sequence that reads each clip from disk when asked for it.
    n_frames : tuple of int
        Frames T of each clip's motion field; 0 where it failed.
    failures : tuple of (Path, str)
        Each failed clip (as given) and its one-line error message, in input order.
    seconds : float
        Wall time of the whole extraction.
    paths : tuple of Path
        The input paths, in order.
    from_cache : tuple of bool
        True where the descriptors were read from the cache rather than computed.
    """

    descriptors: tuple[LocalDescriptors | None, ...]
    n_frames: tuple[int, ...]
    failures: tuple[tuple[Path, str], ...]
    seconds: float
    paths: tuple[Path, ...] = ()
    from_cache: tuple[bool, ...] = ()


def default_cache_dir() -> Path:
    """``$ACTIONLRP_CACHE``, else ``~/.cache/actionlrp``."""
    env = os.environ.get("ACTIONLRP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "actionlrp"


def _check_extraction_args(motion: str, cell: int, params: DescriptorParams, n_jobs: int) -> int:
    """Validate the arguments once, before any clip; return the number of processes."""
    if motion not in ("mv", "flow"):
        raise ValueError(f"motion must be 'mv' or 'flow', got {motion!r}")
    if isinstance(cell, bool) or not isinstance(cell, int | np.integer) or cell < 1:
        raise ValueError(f"cell must be a positive number of pixels, got {cell!r}")
    check_params(cell, params)
    if n_jobs is None or n_jobs == -1:
        return os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be ≥ 1 or -1 (all cores), got {n_jobs!r}")
    return int(n_jobs)


def check_params(cell: int, params: DescriptorParams) -> None:
    """The geometry checks `describe` makes, on an empty field of ``cell``-px cells.

    Raises
    ------
    ValueError
        ``params`` is not a `DescriptorParams`, or its cubes or strides do not fit the cell.
    """
    if not isinstance(params, DescriptorParams):
        raise ValueError(f"params must be a DescriptorParams, got {type(params).__name__}")
    empty = MotionField(
        flow=np.zeros((0, 1, 1, 2), np.float32),
        frame_types=np.zeros(0, "U1"),
        has_vectors=np.zeros(0, bool),
        timestamps=np.zeros(0),
        width=cell,
        height=cell,
        fps=25.0,
        cell=cell,
    )
    describe(empty, params)


def extract_descriptors(
    paths: Iterable[str | os.PathLike | Clip],
    *,
    motion: str = "mv",
    cell: int = 8,
    params: DescriptorParams = DescriptorParams(),  # noqa: B008 — frozen, never mutated
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = 2,
    progress: bool = True,
    transcode: bool = False,
    cache: bool = True,
    lazy: bool = False,
) -> ExtractionResult:
    """Local descriptors of many clips, in worker processes, cached on disk.

    Each clip's descriptors are ``describe(motion_field(path, motion, cell,
    transcode=transcode), params)``. Its cache entry is keyed by the sha256 of the file's
    content and of ``motion``, ``cell``, every field of ``params``, `CACHE_FORMAT` and the
    package version: renaming or moving a clip keeps its entry, re-encoding it does not.
    Entries are ``.npz`` files (arrays only, deflated, read with ``allow_pickle=False``) written
    atomically; an unreadable entry is recomputed and replaced. An entry computed with
    ``transcode=True`` from a clip whose codec exports no vectors is not used when
    ``transcode`` is False (the clip fails, as it would without the cache). Failures are not
    cached.

    Parameters
    ----------
    paths : iterable of path-like or Clip
        The clips.
    motion : {"mv", "flow"}
        Motion vectors from the bitstream, or the Farnebäck pixel-domain reference.
    cell : int
        Motion-field grid cell in pixels.
    params : DescriptorParams
    cache_dir : path-like, optional
        Cache folder (entries go to its ``descriptors/`` subfolder); default
        `default_cache_dir`.
    n_jobs : int
        Worker processes (forkserver, else spawn); 1 runs in this process, -1 uses every core.
        A script that calls this with ``n_jobs`` > 1 needs the ``if __name__ == "__main__":``
        guard, as any use of ``multiprocessing`` does.
    progress : bool
        Show a progress bar on stderr when stderr is a terminal (never on stdout).
    transcode : bool
        Re-encode clips whose codec exports no vectors (see `actionlrp.motion.motion_field`).
    cache : bool
        False: neither read nor write the cache.
    lazy : bool
        With the cache: hand back the descriptors as a `StoredDescriptors` over the cache's
        entries, read one clip at a time when used, instead of all of them in memory (a clip
        whose entry could not be written stays in memory).

    Returns
    -------
    ExtractionResult
        In input order whatever ``n_jobs``.

    Raises
    ------
    ValueError
        A bad ``motion``, ``cell``, ``params`` or ``n_jobs`` (checked before any clip is read).
        A clip that cannot be read never raises: it is listed in ``failures`` with its one-line
        message (an `ActionLRPError`'s own, or ``"<path>: <ExceptionType>: <message>"``).

    Warns
    -----
    UserWarning
        Once, when cache entries cannot be written (the result is complete all the same).
    """
    start = time.perf_counter()
    if isinstance(paths, str | os.PathLike):
        raise ValueError(f"paths must be a sequence of clips, not one path ({paths})")
    paths = [Path(p.path) if isinstance(p, Clip) else Path(p) for p in paths]
    n_jobs = _check_extraction_args(motion, cell, params, n_jobs)
    cell = int(cell)
    folder = None
    if cache:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        folder = folder / "descriptors"
    n = len(paths)
    descriptors: list[LocalDescriptors | None] = [None] * n
    n_frames = [0] * n
    sizes = [0] * n  # descriptors of the clips left in the cache (lazy)
    errors: list[str | None] = [None] * n
    from_cache = [False] * n
    problems: list[str] = []
    bar = tqdm(
        total=n,
        desc="descriptors",
        unit="clip",
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    )

    spec = ExtractionSpec(motion, cell, params, transcode)
    cache_store = None if folder is None else FeatureStore(folder, spec, by="key")

    def done(job: _Job, outcome: _Outcome) -> None:
        i = job.index
        if outcome.problem:
            problems.append(outcome.problem)
        if outcome.error is not None:
            errors[i] = outcome.error
        elif lazy and outcome.key is not None and not outcome.problem:  # in the cache
            descriptors[i], n_frames[i], sizes[i] = job.entry, outcome.n_frames, outcome.n_cubes
            if outcome.file not in (None, job.entry):
                Path(outcome.file).unlink(missing_ok=True)
        elif outcome.file is not None:
            entry = read_entry(outcome.file, params, transcode=True)
            if outcome.file != job.entry:
                Path(outcome.file).unlink(missing_ok=True)  # a transfer file, not the cache
            if entry is None:
                errors[i] = f"{job.path}: its descriptors could not be read back ({outcome.file})"
            else:
                descriptors[i], n_frames[i] = entry
        else:
            descriptors[i], n_frames[i] = outcome.inline, outcome.n_frames
        bar.update()

    jobs: list[_Job] = []
    with bar:
        for i, path in enumerate(paths):
            if cache_store is None:
                jobs.append(_Job(i, str(path)))
                continue
            try:
                content = file_sha256(path)
            except OSError:
                jobs.append(_Job(i, str(path)))  # missing or unreadable: extraction reports it
                continue
            key = spec.key(content)
            cache_file = cache_store.entry_file(key)
            info = entry_info(cache_file) if lazy else None
            if info is not None and info.key == key and (transcode or not info.transcoded):
                descriptors[i], n_frames[i], sizes[i] = cache_file, info.n_frames, info.n_cubes
                from_cache[i] = True
                bar.update()
                continue
            entry = None if lazy else read_entry(cache_file, params, transcode, key)
            if entry is not None:
                descriptors[i], n_frames[i] = entry
                from_cache[i] = True
                bar.update()
                continue
            jobs.append(_Job(i, str(path), str(cache_file), key, content))
        if n_jobs == 1 or len(jobs) <= 1:
            for job in jobs:
                done(job, _extract_in_worker(job, spec))
        else:
            with tempfile.TemporaryDirectory(prefix="actionlrp-extract-") as transfer_dir:
                jobs = [replace(j, transfer=f"{transfer_dir}/{j.index}.npz") for j in jobs]
                _run_in_processes(jobs, n_jobs, spec, done)
    if problems:
        warnings.warn(
            f"{problems[0]} ({len(problems)} clips not cached); the descriptors are complete but "
            "will be recomputed next time",
            stacklevel=2,
        )
    if lazy and cache_store is not None:
        sizes = [
            n if isinstance(d, Path | str) else len(d or ())
            for d, n in zip(descriptors, sizes, strict=True)
        ]
        descriptors = StoredDescriptors(descriptors, sizes, params)
    return ExtractionResult(
        descriptors=tuple(descriptors) if isinstance(descriptors, list) else descriptors,
        n_frames=tuple(n_frames),
        failures=tuple((paths[i], e) for i, e in enumerate(errors) if e is not None),
        seconds=time.perf_counter() - start,
        paths=tuple(paths),
        from_cache=tuple(from_cache),
    )


@dataclass(frozen=True)
class StoreRun:
    """What `extract_to_store` did.

    Attributes
    ----------
    store : Path
    n_clips : int
        Clips asked for.
    n_written : int
        Entries written by this run.
    n_skipped : int
        Clips whose entry was already there and current (not extracted again).
    failures : tuple of (Path, str)
        Clips that could not be read and why; also in the store's manifest.
    seconds : float
        Wall time.
    worker_peak_mb : float
        Largest peak resident memory of a worker process, MiB (0 if none ran).
    """

    store: Path
    n_clips: int
    n_written: int
    n_skipped: int
    failures: tuple[tuple[Path, str], ...]
    seconds: float
    worker_peak_mb: float


def extract_to_store(
    clips: Iterable[str | os.PathLike | Clip],
    store: FeatureStore,
    *,
    n_jobs: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
) -> StoreRun:
    """Write the descriptors of ``clips`` into ``store``; resume where a run stopped.

    A clip whose entry is there and holds its current content's descriptors (`FeatureStore.
    done`) is skipped; every other clip is extracted by a worker, which writes its entry
    atomically; each outcome is appended to the manifest as it arrives. Killing the run at
    any moment loses at most the clips in flight, and two runs on one store at once only
    duplicate work. A failed clip is retried by the next run.

    Parameters
    ----------
    clips : iterable of path-like or Clip
        Files under ``store.dataset``.
    store : FeatureStore
        From `FeatureStore.create`.
    n_jobs : int
        Local worker processes (1: this process) when ``scheduler`` is None.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``): the workers of that cluster extract
        instead; they must see the clips and the store at the same paths as this process.
    progress : bool
        Progress bar on stderr when it is a terminal.

    Returns
    -------
    StoreRun

    Raises
    ------
    StoreError
        An entry or the manifest cannot be written (a full disk): the run stops, naming the
        file; no partial entry is left and a rerun goes on from there.
    """
    start = time.perf_counter()
    spec = store.spec
    paths = [Path(c.path) if isinstance(c, Clip) else Path(c) for c in clips]
    n_jobs = _check_extraction_args(spec.motion, spec.cell, spec.params, n_jobs)
    store.clean_temporaries()
    records = store.manifest()
    jobs: list[_Job] = []
    known: list[dict] = []
    state = {"written": 0, "skipped": 0, "peak": 0}
    failures: dict[int, str] = {}
    bar = tqdm(
        total=len(paths),
        desc="extract",
        unit="clip",
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    )

    def done(job: _Job, outcome: _Outcome) -> None:
        if outcome.fatal is not None:
            raise StoreError(outcome.fatal)
        name = store.relative(job.path)
        record = {"clip": name, "seconds": round(outcome.seconds, 4), "time": _now()}
        if outcome.error is not None:
            failures[job.index] = outcome.error
            record.update(status="failed", error=outcome.error)
        else:
            state["written"] += 1
            record.update(
                status="done", key=outcome.key, n_cubes=outcome.n_cubes, n_frames=outcome.n_frames
            )
        state["peak"] = max(state["peak"], outcome.peak_rss_kb)
        store.append([record])
        bar.update()

    with bar:
        for i, path in enumerate(paths):
            name = store.relative(path)
            entry = store.entry_file(name)
            info = store.done(path, entry)
            if info is None:
                jobs.append(_Job(i, str(path), str(entry), strict=True))
                continue
            state["skipped"] += 1
            old = records.get(name, {})
            if old.get("status") != "done" or old.get("key") != info.key:
                known.append(
                    {
                        "clip": name,
                        "status": "done",
                        "key": info.key,
                        "time": _now(),
                        "n_cubes": info.n_cubes,
                        "n_frames": info.n_frames,
                    }
                )
            bar.update()
        store.append(known)  # entries a killed run wrote but could not record
        if scheduler is not None:
            from actionlrp.cluster import connect, run_on_cluster

            run_on_cluster(connect(scheduler), jobs, spec, done)
        elif n_jobs == 1 or len(jobs) <= 1:
            for job in jobs:
                done(job, _extract_in_worker(job, spec))
        else:
            _run_in_processes(jobs, n_jobs, spec, done)
    return StoreRun(
        store=store.root,
        n_clips=len(paths),
        n_written=state["written"],
        n_skipped=state["skipped"],
        failures=tuple((paths[i], failures[i]) for i in sorted(failures)),
        seconds=time.perf_counter() - start,
        worker_peak_mb=state["peak"] / 1024,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
