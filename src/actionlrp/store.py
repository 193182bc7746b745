"""A feature store: each clip's descriptors on disk once, every entry whole or absent.

A store is a folder that any number of runs, on any number of machines, fill and read:

* ``store.json`` — what every entry was extracted with (motion source, grid cell, descriptor
  parameters, transcoding) and the dataset folder the clips came from; written once.
* ``<clip's path relative to the dataset folder>.npz`` — one entry per clip: its descriptors,
  cube boxes and frame count, and its key: the sha256 of the clip's content and of everything
  the descriptors depend on (`ExtractionSpec.key`). Entries are written under a temporary name
  and renamed, so a reader (or a run started after a SIGKILL) sees an entry whole or not at all.
* ``manifest.jsonl`` — what is done and what failed, and why: one JSON line per clip outcome,
  appended in one write each, the last line of a clip winning. A line torn by a kill is skipped.

The per-user cache of `actionlrp.extraction.extract_descriptors` is the same `FeatureStore`
with entries named by their key (``by="key"``) instead of by the clip's path, and no manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from actionlrp import __version__
from actionlrp.atomic import HOST
from actionlrp.datasets import VIDEO_SUFFIXES, Clip, Split, load_split
from actionlrp.descriptors import DescriptorParams, LocalDescriptors
from actionlrp.entries import (
    EntryInfo,
    ExtractionSpec,
    entry_info,
    file_sha256,
    read_entry,
)
from actionlrp.errors import DatasetError, StoreError

if TYPE_CHECKING:
    from actionlrp.extraction import ExtractionResult

__all__ = [
    "FeatureStore",
    "StoredDescriptors",
    "kept_indices",
    "take",
]

STORE_FORMAT = "actionlrp-store"
HEADER = "store.json"
MANIFEST = "manifest.jsonl"


# --------------------------------------------------------------------------------------------
# The store


class FeatureStore:
    """A folder of per-clip descriptor entries (see the module's docstring).

    Parameters
    ----------
    root : path-like
        The store's folder.
    spec : ExtractionSpec
    dataset : path-like, optional
        The dataset folder the clips' relative paths start from (``by="path"``).
    by : {"path", "key"}
        Name entries by the clip's relative path (a store) or by their key (the cache).

    Use `create` to make or reopen a store for extraction and `open` to read one.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        spec: ExtractionSpec,
        dataset: str | os.PathLike | None = None,
        by: str = "path",
    ) -> None:
        if by not in ("path", "key"):
            raise ValueError(f"by must be 'path' or 'key', got {by!r}")
        self.root = Path(root)
        self.spec = spec
        self.dataset = None if dataset is None else Path(dataset)
        self.by = by

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r}, by={self.by!r})"

    @staticmethod
    def is_store(path: str | os.PathLike) -> bool:
        """Whether ``path`` is a store's folder (it has a ``store.json``)."""
        return (Path(path) / HEADER).is_file()

    @classmethod
    def create(
        cls, root: str | os.PathLike, dataset: str | os.PathLike, spec: ExtractionSpec
    ) -> FeatureStore:
        """Make a store for ``dataset``'s clips, or reopen it if it exists with the same spec.

        Raises
        ------
        StoreError
            ``root`` is a store of other parameters, or cannot be written.
        """
        root = Path(root).expanduser()
        header = {
            "format": STORE_FORMAT,
            "dataset": str(Path(dataset).expanduser().resolve()),
            "spec": spec.to_json(),
            "created_by": f"actionlrp {__version__}",
        }
        if not (root / HEADER).is_file():
            if root.is_dir() and any(p for p in root.iterdir() if not p.name.startswith(".")):
                raise StoreError(f"{root}: not empty and not a feature store; give a new folder")
            fd, tmp = -1, None
            try:
                root.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{HEADER}~{HOST}~{os.getpid()}~", suffix=".tmp", dir=root
                )
                os.write(fd, (json.dumps(header, indent=2, sort_keys=True) + "\n").encode())
                os.close(fd)
                fd = -1
                try:  # exclusive: of two runs that start at once, the first header stays
                    os.link(tmp, root / HEADER)
                except FileExistsError:
                    pass
                except OSError:  # no hard links on this file system
                    os.replace(tmp, root / HEADER)
            except OSError as exc:
                reason = exc.strerror or exc
                raise StoreError(f"{root}: cannot write the store ({reason})") from None
            finally:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                if tmp is not None:
                    Path(tmp).unlink(missing_ok=True)
        store = cls.open(root)
        if store.spec != spec:
            raise StoreError(
                f"{root}: a store of other extraction parameters ({_spec_text(store.spec)}, not "
                f"{_spec_text(spec)}); give another --out or the same parameters"
            )
        return store

    @classmethod
    def open(cls, root: str | os.PathLike) -> FeatureStore:
        """Open an existing store.

        Raises
        ------
        StoreError
            No ``store.json`` or an unreadable one.
        """
        root = Path(root).expanduser()
        try:
            header = json.loads((root / HEADER).read_text())
            if header.get("format") != STORE_FORMAT:
                raise ValueError("not a store header")
            spec = ExtractionSpec.from_json(header["spec"])
        except FileNotFoundError:
            raise StoreError(
                f"{root}: not a feature store (no {HEADER}); make one with actionlrp extract"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{root / HEADER}: unreadable store header ({exc})") from None
        return cls(root, spec, header.get("dataset"), by="path")

    # ----------------------------------------------------------------------------------------
    # Names

    def relative(self, clip: str | os.PathLike) -> str:
        """A clip's path relative to the dataset folder, POSIX style (its name in the store)."""
        clip = Path(clip)
        try:
            rel = clip.relative_to(self.dataset)
        except ValueError:
            try:
                rel = clip.resolve().relative_to(self.dataset.resolve())
            except ValueError:
                raise DatasetError(
                    f"{clip}: not under the store's dataset folder {self.dataset}"
                ) from None
        return rel.as_posix()

    def entry_file(self, name: str) -> Path:
        """The entry of a clip: ``name`` is its relative path (``by="path"``) or key."""
        return self.root / (name + ".npz")

    def done(self, clip: str | os.PathLike, entry: Path) -> EntryInfo | None:
        """The entry's header if it holds the descriptors of ``clip``'s current content.

        The clip is hashed only when its size or modification time differ from the ones the
        entry recorded.
        """
        info = entry_info(entry)
        if info is None:
            return None
        try:
            stat = os.stat(clip)
            same = (stat.st_size, stat.st_mtime_ns) == (info.source_size, info.source_mtime_ns)
            content = info.content if same else file_sha256(clip)
        except OSError:
            return None
        return info if self.spec.key(content) == info.key else None

    # ----------------------------------------------------------------------------------------
    # Manifest

    @property
    def manifest_file(self) -> Path:
        return self.root / MANIFEST

    def manifest(self) -> dict[str, dict]:
        """The last record of each clip: ``{relative path: record}``; torn lines skipped.

        A record has ``clip``, ``status`` ("done" or "failed"), and ``key``, ``n_cubes``,
        ``n_frames`` (done) or ``error`` (failed), and ``seconds``, ``worker`` and ``time``.
        """
        records: dict[str, dict] = {}
        try:
            text = self.manifest_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return records
        for line in text.splitlines():
            try:
                record = json.loads(line)
                records[record["clip"]] = record
            except (ValueError, KeyError, TypeError):
                continue
        return records

    def append(self, records: Iterable[dict]) -> None:
        """Append records to the manifest, each in one write (whole lines, even with two runs).

        Raises
        ------
        StoreError
            The manifest cannot be written (a full disk): the message names it.
        """
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
        if not data:
            return
        try:
            fd = os.open(self.manifest_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size and not self._ends_with_newline():
                    data = b"\n" + data  # after a line torn by a kill
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(
                f"{self.manifest_file}: cannot write ({exc.strerror or exc}); entries written so "
                "far are kept, run the same command again to go on"
            ) from None

    def _ends_with_newline(self) -> bool:
        with open(self.manifest_file, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def clean_temporaries(self, max_age: float = 86_400.0) -> int:
        """Remove temporary files left by dead writers: this host's whose process is gone,
        and any older than ``max_age`` seconds. Returns how many were removed."""
        removed, now = 0, time.time()
        for folder, _, files in os.walk(self.root):
            for name in files:
                if not (name.startswith(".") and ".tmp" in name and "~" in name):
                    continue
                path = Path(folder) / name
                _, host, pid, _ = name.rsplit("~", 3)
                try:
                    dead = host == HOST and pid.isdigit() and not _alive(int(pid))
                    if dead or now - path.stat().st_mtime > max_age:
                        path.unlink()
                        removed += 1
                except OSError:
                    continue
        return removed

    # ----------------------------------------------------------------------------------------
    # Reading

    def names(self) -> list[str]:
        """Relative paths of the clips the store knows: entries on disk and manifest records."""
        found = set(self.manifest())
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            base = Path(folder).relative_to(self.root)
            found.update(
                (base / name[:-4]).as_posix()
                for name in files
                if name.endswith(".npz") and not name.startswith(".")
            )
        return sorted(found)

    def split(
        self, layout: str = "folders", splits_dir: str | os.PathLike | None = None, split: int = 1
    ) -> Split:
        """The training and test clips of the store's dataset, as `datasets.load_split`.

        The ``folders`` layout is read from the store itself (the clips need not be on this
        machine); ``hmdb51`` and ``ucf101`` read their split files and clip lists from the
        dataset folder, which must then be present.
        """
        if layout != "folders":
            if self.dataset is None or not self.dataset.is_dir():
                raise DatasetError(
                    f"{self.dataset}: the dataset folder of store {self.root} is absent; the "
                    f"{layout} layout reads its clip list there (the folders layout does not)"
                )
            return load_split(self.dataset, layout, splits_dir, split)
        if splits_dir is not None:
            raise DatasetError(f"{splits_dir}: split files apply to the hmdb51 and ucf101 layouts")
        parts = [
            PurePosixPath(n).parts
            for n in self.names()
            if PurePosixPath(n).suffix.lower() in VIDEO_SUFFIXES
        ]
        halves = ("train", "test")
        if any(len(p) == 3 and p[0] == "train" for p in parts):
            sets = [[p for p in parts if len(p) == 3 and p[0] == half] for half in halves]
        else:
            sets = [[p for p in parts if len(p) == 2], []]
        dataset = self.dataset or Path(".")
        train, test = (
            sorted(
                (Clip(dataset.joinpath(*p), p[-2]) for p in s),
                key=lambda c: (c.label, c.path.name),
            )
            for s in sets
        )
        if not train:
            raise DatasetError(f"{self.root}: the store holds no clip; run actionlrp extract")
        return Split(tuple(train), tuple(test))

    def read(self, clips: Sequence[str | os.PathLike | Clip], client=None) -> ExtractionResult:
        """The descriptors of ``clips`` from the store, read lazily (`StoredDescriptors`).

        A clip without an entry is a failure: the manifest's reason when it failed, else
        "not in the store". ``client``: a `distributed.Client` that encodes them
        (`actionlrp.encoding.transform`).
        """
        from actionlrp.extraction import ExtractionResult

        start = time.perf_counter()
        paths = [Path(c.path) if isinstance(c, Clip) else Path(c) for c in clips]
        records = self.manifest()
        files, sizes, frames, failures = [], [], [], []
        for path in paths:
            try:
                name = self.relative(path)
            except DatasetError as exc:
                name, error = None, str(exc)
            info = None if name is None else entry_info(self.entry_file(name))
            if info is None:
                if name is not None:
                    record = records.get(name, {})
                    error = record.get("error") or (
                        f"{path}: not in the store {self.root}; run actionlrp extract"
                    )
                failures.append((path, error))
                files.append(None)
                sizes.append(0)
                frames.append(0)
                continue
            files.append(self.entry_file(name))
            sizes.append(info.n_cubes)
            frames.append(info.n_frames)
        descriptors = StoredDescriptors(files, sizes, self.spec.params, client)
        return ExtractionResult(
            descriptors=descriptors,
            n_frames=tuple(frames),
            failures=tuple(failures),
            seconds=time.perf_counter() - start,
            paths=tuple(paths),
            from_cache=tuple(f is not None for f in files),
        )


def _spec_text(spec: ExtractionSpec) -> str:
    return f"motion {spec.motion}, cell {spec.cell}, {spec.params}, transcode {spec.transcode}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------
# Descriptors read lazily


class StoredDescriptors(Sequence):
    """Descriptors of many clips kept on disk: item i is read from its entry when asked for.

    Iterating reads one clip at a time, so `FisherEncoder.fit` samples across a whole store
    and `FisherEncoder.transform` encodes it with one clip in memory.

    Parameters
    ----------
    files : sequence of Path, LocalDescriptors or None
        Each clip's entry; None where it has none (the item is then None); or its descriptors,
        kept in memory (a clip whose cache entry could not be written).
    sizes : sequence of int
        Descriptors N of each clip (0 where None).
    params : DescriptorParams
        The store's, to check the entries' dimensions.
    client : distributed.Client, optional
        Where `actionlrp.encoding.transform` encodes them; None: on this machine.
    """

    def __init__(self, files, sizes, params: DescriptorParams, client=None) -> None:
        self.files = tuple(
            f if f is None or isinstance(f, LocalDescriptors) else Path(f) for f in files
        )
        self.sizes = tuple(int(n) for n in sizes)
        self.params = params
        self.client = client

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(range(len(self))[i])
        file = self.files[i]
        if file is None or isinstance(file, LocalDescriptors):
            return file
        return load_entry(file, self.params)

    def __iter__(self) -> Iterator[LocalDescriptors | None]:
        for i in range(len(self)):
            yield self[i]

    def take(self, indices: Iterable[int]) -> StoredDescriptors:
        """The clips at ``indices``, still on disk."""
        indices = list(indices)
        return StoredDescriptors(
            [self.files[i] for i in indices],
            [self.sizes[i] for i in indices],
            self.params,
            self.client,
        )


def load_entry(file: str | os.PathLike, params: DescriptorParams) -> LocalDescriptors:
    """An entry's descriptors; `StoreError` naming the file if it cannot be read."""
    entry = read_entry(file, params, transcode=True)
    if entry is None:
        raise StoreError(f"{file}: unreadable or foreign store entry; run actionlrp extract again")
    return entry[0]


def kept_indices(descriptors: Sequence[LocalDescriptors | None]) -> list[int]:
    """Indices of the clips with at least one descriptor (without reading stored ones)."""
    sizes = getattr(descriptors, "sizes", None)
    if sizes is None:
        sizes = [0 if d is None else len(d) for d in descriptors]
    return [i for i, n in enumerate(sizes) if n > 0]


def take(descriptors: Sequence, indices: Iterable[int]) -> Sequence:
    """``[descriptors[i] for i in indices]``, still on disk for `StoredDescriptors`."""
    if isinstance(descriptors, StoredDescriptors):
        return descriptors.take(indices)
    return [descriptors[i] for i in indices]
