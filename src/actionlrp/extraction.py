"""Descriptors of many clips at once, in worker processes, with a cache on disk.

`extract_descriptors` turns a list of clips into their local descriptors (design §1–2):
``describe(motion_field(clip), params)`` for each, in worker processes (two by default, both
cores of a small machine; ``n_jobs=1`` stays in this process), returned in input order.

* Cache: one ``.npz`` entry per clip under ``descriptors/`` of `default_cache_dir`
  (``$ACTIONLRP_CACHE``, else ``~/.cache/actionlrp``), keyed by the sha256 of the file's content
  and of everything the descriptors depend on (`CACHE_FORMAT`, the package version, the
  parameters); a renamed clip keeps its entry, an unreadable entry is recomputed.
* A clip that cannot be read is listed in ``ExtractionResult.failures`` with its one-line
  message and never stops the batch.
* A worker process that dies (a crash in the decoder, the OOM killer) is replaced by a fresh
  pool; the clip that killed it is re-run alone and reported as failed if it kills it again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actionlrp import __version__
from actionlrp.datasets import Clip
from actionlrp.descriptors import FEATURE_TYPES, DescriptorParams, LocalDescriptors, describe
from actionlrp.errors import ActionLRPError
from actionlrp.motion import motion_field
from actionlrp.video import MotionField

__all__ = [
    "CACHE_FORMAT",
    "ExtractionResult",
    "default_cache_dir",
    "extract_descriptors",
]

#: Version of the cache entries' content; part of every cache key.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ExtractionResult:
    """Descriptors of a list of clips.

    Attributes
    ----------
    descriptors : tuple of LocalDescriptors or None
        One per input path, in input order; None where the clip failed.
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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_key(content_sha256: str, motion: str, cell: int, params: DescriptorParams) -> str:
    """sha256 of the clip's content and of everything the descriptors depend on."""
    spec = {
        "format": CACHE_FORMAT,
        "actionlrp": __version__,
        "content": content_sha256,
        "motion": motion,
        "cell": cell,
        "params": asdict(params),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _read_entry(
    path: Path, params: DescriptorParams, transcode: bool
) -> tuple[LocalDescriptors, int] | None:
    """An entry written by `_write_entry`, or None when it is absent, corrupt, of another format,
    or made by re-encoding a clip while ``transcode`` is False."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != CACHE_FORMAT:
                return None
            if bool(data["transcoded"]) and not transcode:
                return None  # recompute, so the clip fails as it would without a cache
            n_frames = int(data["n_frames"])
            boxes = data["boxes"]
            features = {k: data[k] for k in FEATURE_TYPES}
    except Exception:  # noqa: BLE001 — any unreadable entry is a cache miss
        return None
    n = boxes.shape[0] if boxes.ndim == 2 else -1
    dims = params.dims()
    ok = boxes.shape == (n, 6) and boxes.dtype == np.int32 and n_frames >= 0
    ok = ok and all(f.dtype == np.float32 and f.shape == (n, dims[k]) for k, f in features.items())
    return (LocalDescriptors(features, boxes), n_frames) if ok else None


def _write_entry(
    path: Path, desc: LocalDescriptors, n_frames: int, transcoded: bool, compress: bool
) -> None:
    """Write descriptors as an ``.npz`` (arrays only) atomically: temporary file, ``os.replace``.

    ``compress``: deflate at level 1, a third of the size for about the cost of the extraction
    (level 6, ``np.savez_compressed``'s, costs twice that for 5 % less).
    """
    arrays = {
        "format": np.int64(CACHE_FORMAT),
        "n_frames": np.int64(n_frames),
        "transcoded": np.bool_(transcoded),
        "boxes": desc.boxes,
        **desc.features,
    }
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}-", suffix=".tmp", dir=path.parent)
    try:
        with (
            os.fdopen(fd, "wb") as f,
            zipfile.ZipFile(f, "w", method, compresslevel=1 if compress else None) as archive,
        ):
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _compute(
    path: str, motion: str, cell: int, params: DescriptorParams, transcode: bool
) -> tuple[LocalDescriptors | None, int, bool, str | None]:
    """``(descriptors, n_frames, transcoded, None)``, or ``(None, 0, False, one-line error)``."""
    try:
        field_ = motion_field(path, motion, cell, transcode=transcode)
        desc = describe(field_, params)
    except ActionLRPError as exc:
        message = _one_line(str(exc))
        if not message.startswith(path):
            message = f"{path}: {message}"
        return None, 0, False, message
    except Exception as exc:  # noqa: BLE001 — one bad clip never stops a batch
        return None, 0, False, _one_line(f"{path}: {type(exc).__name__}: {exc}")
    return desc, field_.n_frames, "->" in field_.codec, None


def _store(desc: LocalDescriptors, n_frames: int, transcoded: bool, cache_file: str) -> str | None:
    """Write a cache entry; the problem as one line if it cannot be written."""
    try:
        _write_entry(Path(cache_file), desc, n_frames, transcoded, compress=True)
    except OSError as exc:
        return _one_line(f"{Path(cache_file).parent}: cannot write the cache ({exc})")
    return None


@dataclass(frozen=True)
class _Outcome:
    """What a worker hands back: the descriptors go through a file, not the pipe.

    Pickling ~10 MB of descriptors per clip back through the process pool's pipe made two
    workers twice as slow as one process; writing them to a file the parent reads is not.
    """

    n_frames: int = 0
    error: str | None = None
    problem: str | None = None  # the cache could not be written
    file: str | None = None  # the descriptors: a cache entry or a transfer file
    inline: LocalDescriptors | None = None  # the descriptors, when no file could be written


def _extract_in_worker(
    path: str,
    motion: str,
    cell: int,
    params: DescriptorParams,
    transcode: bool,
    cache_file: str | None,
    transfer_file: str,
) -> _Outcome:
    desc, n_frames, transcoded, error = _compute(path, motion, cell, params, transcode)
    if desc is None:
        return _Outcome(error=error)
    problem = None
    if cache_file is not None:
        problem = _store(desc, n_frames, transcoded, cache_file)
        if problem is None:
            return _Outcome(n_frames, file=cache_file)
    try:
        _write_entry(Path(transfer_file), desc, n_frames, transcoded, compress=False)
    except OSError:
        return _Outcome(n_frames, problem=problem, inline=desc)
    return _Outcome(n_frames, problem=problem, file=transfer_file)


def _check_extraction_args(motion: str, cell: int, params: DescriptorParams, n_jobs: int) -> int:
    """Validate the arguments once, before any clip; return the number of processes."""
    if motion not in ("mv", "flow"):
        raise ValueError(f"motion must be 'mv' or 'flow', got {motion!r}")
    if isinstance(cell, bool) or not isinstance(cell, int | np.integer) or cell < 1:
        raise ValueError(f"cell must be a positive number of pixels, got {cell!r}")
    if not isinstance(params, DescriptorParams):
        raise ValueError(f"params must be a DescriptorParams, got {type(params).__name__}")
    # The geometry checks `describe` makes, on an empty field: a bad parameter fails here, once.
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
    if n_jobs is None or n_jobs == -1:
        return os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be ≥ 1 or -1 (all cores), got {n_jobs!r}")
    return int(n_jobs)


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver where available, else spawn: never fork a process that runs PyAV threads."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


_Task = tuple[int, str, str | None]  # (index, clip path, cache file or None)


def _run_in_processes(
    tasks: list[_Task], n_jobs: int, args: tuple, transfer_dir: Path, done
) -> None:
    """Run `_extract_in_worker` on every task in ``n_jobs`` processes; ``done(task, outcome)``.

    At most ``n_jobs`` tasks are in flight, so when a worker dies (a crash inside FFmpeg, the
    OOM killer) the suspects are those few: each is re-run alone in a fresh process, the one
    that kills its process again is reported as failed, and the rest of the batch goes on.
    """
    context = _process_context()
    queue = deque(tasks)

    def submit(pool: ProcessPoolExecutor, task: _Task) -> Future:
        transfer = str(transfer_dir / f"{task[0]}.npz")
        return pool.submit(_extract_in_worker, task[1], *args, task[2], transfer)

    while queue:
        suspects: list[_Task] = []
        with ProcessPoolExecutor(min(n_jobs, len(queue)), mp_context=context) as pool:
            running: dict[Future, _Task] = {}
            broken = False
            while queue or running:
                while queue and len(running) < n_jobs and not broken:
                    task = queue.popleft()
                    try:
                        running[submit(pool, task)] = task
                    except BrokenProcessPool:  # a worker died since the last wait
                        queue.appendleft(task)  # never started: not a suspect
                        broken = True
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        suspects.append(task)
                        continue
                    done(task, outcome)
                if suspects:
                    suspects.extend(running.values())
                    break
        for task in sorted(suspects):
            with ProcessPoolExecutor(1, mp_context=context) as alone:
                try:
                    outcome = submit(alone, task).result()
                except BrokenProcessPool:
                    outcome = _Outcome(
                        error=f"{task[1]}: the worker process died while reading this clip (a "
                        "crash in the decoder?); check the file with ffprobe or re-encode it"
                    )
            done(task, outcome)


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

    def done(task: _Task, outcome: _Outcome) -> None:
        i = task[0]
        if outcome.problem:
            problems.append(outcome.problem)
        if outcome.error is not None:
            errors[i] = outcome.error
        elif outcome.file is not None:
            entry = _read_entry(Path(outcome.file), params, transcode=True)
            if outcome.file != task[2]:
                Path(outcome.file).unlink(missing_ok=True)  # a transfer file, not the cache
            if entry is None:
                errors[i] = f"{task[1]}: its descriptors could not be read back from {outcome.file}"
            else:
                descriptors[i], n_frames[i] = entry
        else:
            descriptors[i], n_frames[i] = outcome.inline, outcome.n_frames
        bar.update()

    tasks: list[_Task] = []
    with bar:
        for i, path in enumerate(paths):
            cache_file = None
            if folder is not None:
                try:
                    key = _cache_key(_file_sha256(path), motion, cell, params)
                except OSError:
                    key = None  # missing or unreadable: extraction reports it
                if key is not None:
                    cache_file = folder / f"{key}.npz"
                    entry = _read_entry(cache_file, params, transcode)
                    if entry is not None:
                        descriptors[i], n_frames[i] = entry
                        from_cache[i] = True
                        bar.update()
                        continue
            tasks.append((i, str(path), None if cache_file is None else str(cache_file)))
        args = (motion, cell, params, transcode)
        if n_jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                desc, frames, transcoded, error = _compute(task[1], *args)
                problem = None
                if desc is not None and task[2] is not None:
                    problem = _store(desc, frames, transcoded, task[2])
                done(task, _Outcome(frames, error, problem, inline=desc))
        else:
            with tempfile.TemporaryDirectory(prefix="actionlrp-extract-") as transfer_dir:
                _run_in_processes(tasks, n_jobs, args, Path(transfer_dir), done)
    if problems:
        warnings.warn(
            f"{problems[0]} ({len(problems)} clips not cached); the descriptors are complete but "
            "will be recomputed next time",
            stacklevel=2,
        )
    return ExtractionResult(
        descriptors=tuple(descriptors),
        n_frames=tuple(n_frames),
        failures=tuple((paths[i], e) for i, e in enumerate(errors) if e is not None),
        seconds=time.perf_counter() - start,
        paths=tuple(paths),
        from_cache=tuple(from_cache),
    )
