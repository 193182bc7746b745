"""Datasets: clip lists, official splits, group-aware folds, and cached dataset-scale extraction.

Layouts
-------
* ``folders``: ``ROOT/<class>/<clip>`` (`folder_dataset`), or ``ROOT/train/<class>/<clip>`` and
  ``ROOT/test/<class>/<clip>`` (`train_test_split_folders`, what ``actionlrp synth`` writes).
* ``hmdb51``: ``ROOT/<class>/<clip>.avi`` with the official ``<class>_test_split{1,2,3}.txt``.
* ``ucf101``: ``ROOT/<class>/<clip>.avi`` with ``trainlist0N.txt`` / ``testlist0N.txt``.

Cross-validation keeps the clips of one source video on one side of every split
(`group_kfold`, groups from a ``clip,label,source_video`` CSV read by `read_groups`).

`extract_descriptors` turns a list of clips into their local descriptors (DESIGN §1–2) in
worker processes, with a content-addressed cache on disk; a clip that cannot be read is reported
in ``failures`` and never stops the batch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
import warnings
import zipfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath, PurePosixPath

import numpy as np
from tqdm import tqdm

from actionlrp import __version__
from actionlrp.descriptors import FEATURE_TYPES, DescriptorParams, LocalDescriptors, describe
from actionlrp.errors import ActionLRPError, DatasetError
from actionlrp.motion import motion_field
from actionlrp.video import MotionField

__all__ = [
    "CACHE_FORMAT",
    "VIDEO_SUFFIXES",
    "Clip",
    "ExtractionResult",
    "Split",
    "default_cache_dir",
    "extract_descriptors",
    "folder_dataset",
    "group_kfold",
    "hmdb51_split",
    "load_split",
    "read_groups",
    "train_test_split_folders",
    "ucf101_split",
]

#: File suffixes taken as video files (compared case-insensitively).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv"}
)
#: Version of the cache entries' content; part of every cache key.
CACHE_FORMAT = 1

_LAYOUT_HINT = "expected ROOT/<class>/<clip>, one folder per class"


# --------------------------------------------------------------------------------------------
# Clips and splits


@dataclass(frozen=True)
class Clip:
    """One labelled video file.

    Attributes
    ----------
    path : Path
        The video file.
    label : str
        Its class name (the class folder's name).
    group : str or None
        What the clip shares with others that must stay on the same side of a split (its source
        video); None when unknown, in which case the clip is a group of its own.
    """

    path: Path
    label: str
    group: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))


@dataclass(frozen=True)
class Split:
    """Training and test clips.

    Attributes
    ----------
    train, test : tuple of Clip
    """

    train: tuple[Clip, ...]
    test: tuple[Clip, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", tuple(self.train))
        object.__setattr__(self, "test", tuple(self.test))

    @property
    def classes(self) -> tuple[str, ...]:
        """Sorted class names of the training and test clips."""
        return tuple(sorted({c.label for c in self.train} | {c.label for c in self.test}))


def _is_video(entry: os.DirEntry) -> bool:
    return (
        not entry.name.startswith(".")
        and os.path.splitext(entry.name)[1].lower() in VIDEO_SUFFIXES
        and entry.is_file()
    )


def _entries(folder: Path) -> list[os.DirEntry]:
    """The visible entries of ``folder``, sorted by name."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    return sorted(entries, key=lambda e: e.name)


def _folder(path: str | os.PathLike, what: str = "dataset folder") -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such {what}")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder; give the {what}")
    return path


def _class_folders(root: Path) -> dict[str, list[str]]:
    """``{class: sorted video file names}`` of every class folder of ``root`` that holds videos."""
    classes = {}
    for entry in _entries(root):
        if entry.is_dir():
            videos = [e.name for e in _entries(Path(entry.path)) if _is_video(e)]
            if videos:
                classes[entry.name] = videos
    return classes


def folder_dataset(root: str | os.PathLike) -> list[Clip]:
    """Every video file of a ``ROOT/<class>/<clip>`` folder, labelled by its class folder.

    Video files are those with a suffix in `VIDEO_SUFFIXES`, one level under a class folder.
    Files at the root (CSV, LICENSE, README), other files, hidden files and folders, and
    deeper folders are ignored.

    Parameters
    ----------
    root : path-like

    Returns
    -------
    list of Clip
        Sorted by class, then by file name (code-point order, independent of the locale).

    Raises
    ------
    DatasetError
        ``root`` is missing, or no class folder holds a video file.
    """
    root = _folder(root)
    clips = [
        Clip(root / label / name, label)
        for label, names in _class_folders(root).items()
        for name in names
    ]
    if not clips:
        loose = sum(1 for e in _entries(root) if _is_video(e))
        if loose:
            raise DatasetError(
                f"{root}: {loose} video files lie directly in the folder, not in class folders; "
                f"{_LAYOUT_HINT}"
            )
        raise DatasetError(f"{root}: no class folder holds a video file; {_LAYOUT_HINT}")
    return clips


def train_test_split_folders(root: str | os.PathLike) -> Split:
    """The split of a ``ROOT/train/<class>/<clip>`` + ``ROOT/test/<class>/<clip>`` folder.

    This is the layout ``actionlrp synth`` writes. Both halves are read with `folder_dataset`.

    Raises
    ------
    DatasetError
        ``ROOT/train`` or ``ROOT/test`` is missing or holds no class folder with videos.
    """
    root = _folder(root)
    halves = []
    for name in ("train", "test"):
        half = root / name
        if not half.is_dir():
            raise DatasetError(
                f"{half}: no such folder; expected ROOT/train/<class>/<clip> and "
                "ROOT/test/<class>/<clip>"
            )
        halves.append(folder_dataset(half))
    return Split(tuple(halves[0]), tuple(halves[1]))


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based numbers, stripped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; is it a split file?") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _check_present(listed: Iterable[tuple[Clip, Path]], remedy: str) -> None:
    """Fail on the first ``(clip, list file)`` whose clip is absent, with the count of all."""
    missing = [(c.path, source) for c, source in listed if not c.path.is_file()]
    if missing:
        path, source = missing[0]
        raise DatasetError(
            f"{path}: listed in {source} but absent ({len(missing)} listed clips are absent); "
            f"{remedy}"
        )


def _disjoint(train: list[Clip], test: list[Clip], source: Path) -> Split:
    both = {c.path for c in train} & {c.path for c in test}
    if both:
        first = min(both)
        raise DatasetError(
            f"{source}: {first} is in both the training and the test list ({len(both)} clips "
            "are); check the split files"
        )
    return Split(tuple(sorted(train, key=_clip_order)), tuple(sorted(test, key=_clip_order)))


def _clip_order(clip: Clip) -> tuple[str, str]:
    return clip.label, clip.path.name


def _hmdb51_source(stem: str, label: str) -> str | None:
    """The source video of an HMDB51 clip: its name before ``_<class>_`` (None if absent)."""
    cut = stem.rfind(f"_{label}_")
    return stem[:cut] if cut > 0 else None


def hmdb51_split(root: str | os.PathLike, splits_dir: str | os.PathLike, split: int) -> Split:
    """One of the three official HMDB51 splits.

    Parameters
    ----------
    root : path-like
        ``ROOT/<class>/<clip>.avi``.
    splits_dir : path-like
        The folder of ``<class>_test_split{1,2,3}.txt``, whose lines are ``<clip>.avi <tag>``
        with 1 = train, 2 = test, 0 = unused.
    split : int
        1, 2 or 3.

    Returns
    -------
    Split
        Sorted by class, then file name. Each clip's ``group`` is its source video, the part of
        its name before ``_<class>_`` (``April_09`` for ``April_09_brush_hair_u_nm_np1_ba_goo_0``).

    Raises
    ------
    DatasetError
        No split file for this split number, a class folder of ``root`` without one, a malformed
        line, or a clip listed for training or testing but absent from ``root`` (fatal: results
        on an incomplete split are not comparable with published ones; the message gives the
        count and the first missing file).
    """
    root = _folder(root)
    splits_dir = _folder(splits_dir, "split folder")
    suffix = f"_test_split{split}.txt"
    files = sorted(splits_dir.glob(f"*{suffix}"))
    if not files:
        raise DatasetError(
            f"{splits_dir}: no HMDB51 split file *{suffix} (official splits are 1, 2, 3); pass "
            "the folder of the official split files (test_train_splits.rar)"
        )
    listed = {f.name[: -len(suffix)]: f for f in files}
    unlisted = sorted(set(_class_folders(root)) - set(listed))
    if unlisted:
        raise DatasetError(
            f"{splits_dir / (unlisted[0] + suffix)}: missing split file for class folder "
            f"{root / unlisted[0]} ({len(unlisted)} class folders have none); add it or move the "
            "folder out of the dataset"
        )
    train, test, sources = [], [], []
    for label, path in listed.items():
        tags: dict[str, str] = {}
        for n, line in _read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(
                    f"{path}:{n}: expected '<clip>.avi <tag>' with tag 0, 1 or 2, got {line!r}"
                )
            name, tag = parts
            if tags.setdefault(name, tag) != tag:
                raise DatasetError(f"{path}:{n}: {name} is listed twice with different tags")
        for name, tag in tags.items():
            if tag != "0":
                clip = Clip(root / label / name, label, _hmdb51_source(Path(name).stem, label))
                (train if tag == "1" else test).append(clip)
                sources.append((clip, path))
    _check_present(sources, "the dataset is incomplete: re-extract the HMDB51 archives")
    return _disjoint(train, test, splits_dir)


_UCF101_GROUP = re.compile(r"_g(\d+)_c\d+$")


def ucf101_split(root: str | os.PathLike, splits_dir: str | os.PathLike, split: int) -> Split:
    """One of the three official UCF101 splits.

    Parameters
    ----------
    root : path-like
        ``ROOT/<class>/v_<Class>_gNN_cNN.avi``.
    splits_dir : path-like
        The folder of ``trainlist0N.txt`` (lines ``Class/v_Class_g08_c01.avi 1``, the number
        optional), ``testlist0N.txt`` (lines ``Class/v_Class_g01_c01.avi``) and, optionally,
        ``classInd.txt`` (lines ``1 Class``), which when present is checked against the lists.
    split : int
        1, 2 or 3.

    Returns
    -------
    Split
        Labels are the class folder names of the list entries; sorted by class, then file name.
        Each clip's ``group`` is ``<class>_gNN`` (UCF101's groups: clips of one group share
        actor and background).

    Raises
    ------
    DatasetError
        A list file is missing or malformed, disagrees with ``classInd.txt``, or lists a clip
        absent from ``root`` (fatal, with the count and the first missing file).
    """
    root = _folder(root)
    splits_dir = _folder(splits_dir, "split folder")
    class_index: dict[str, str] = {}
    ind = splits_dir / "classInd.txt"
    if ind.is_file():
        for n, line in _read_lines(ind):
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise DatasetError(f"{ind}:{n}: expected '<number> <class>', got {line!r}")
            class_index[parts[0]] = parts[1]
    halves: list[list[Clip]] = []
    sources: list[tuple[Clip, Path]] = []
    for kind in ("train", "test"):
        path = splits_dir / f"{kind}list{split:02d}.txt"
        if not path.is_file():
            raise DatasetError(
                f"{path}: no such file (official splits are 1, 2, 3); pass the folder of the "
                "official lists (ucfTrainTestlist)"
            )
        clips = []
        for n, line in _read_lines(path):
            parts = line.split()
            rel = PurePosixPath(parts[0].replace("\\", "/")) if parts else PurePosixPath()
            if len(parts) not in (1, 2) or len(rel.parts) != 2:
                raise DatasetError(f"{path}:{n}: expected '<class>/<clip>.avi [n]', got {line!r}")
            label = rel.parts[0]
            if class_index:
                if label not in class_index.values():
                    raise DatasetError(f"{path}:{n}: class {label!r} is not in {ind}")
                if len(parts) == 2 and class_index.get(parts[1]) != label:
                    raise DatasetError(
                        f"{path}:{n}: class number {parts[1]} is "
                        f"{class_index.get(parts[1])!r} in {ind.name}, not {label!r}"
                    )
            match = _UCF101_GROUP.search(PurePosixPath(rel.name).stem)
            group = f"{label}_g{match.group(1)}" if match else None
            clips.append(Clip(root / label / rel.name, label, group))
            sources.append((clips[-1], path))
        halves.append(clips)
    _check_present(sources, "the dataset is incomplete: re-extract UCF101.rar")
    return _disjoint(halves[0], halves[1], splits_dir)


_SPLIT_FOLDERS = {
    "hmdb51": (("testTrainMulti_7030_splits", "test_train_splits", "splits", "."), "*_test_split"),
    "ucf101": (("ucfTrainTestlist", "splits", "."), "trainlist"),
}


def _find_splits_dir(root: Path, layout: str, split: int) -> Path:
    names, stem = _SPLIT_FOLDERS[layout]
    pattern = f"{stem}{split}.txt" if layout == "hmdb51" else f"{stem}{split:02d}.txt"
    for name in names:
        folder = root / name
        if folder.is_dir() and any(folder.glob(pattern)):
            return folder
    raise DatasetError(
        f"{root}: no {pattern} in {', '.join(names)}; pass the folder of the official split "
        "files as splits_dir"
    )


def load_split(
    root: str | os.PathLike,
    layout: str = "folders",
    splits_dir: str | os.PathLike | None = None,
    split: int = 1,
) -> Split:
    """Training and test clips of a dataset in any supported layout.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    layout : {"folders", "hmdb51", "ucf101"}
        ``"folders"``: ``ROOT/train`` + ``ROOT/test`` when ``ROOT/train`` exists (``ROOT/test``
        optional: an empty test set without it), else the whole ``ROOT/<class>/<clip>`` folder as
        training clips with an empty test set. ``"hmdb51"`` / ``"ucf101"``: the official split.
    splits_dir : path-like, optional
        Folder of the official split files (``hmdb51`` and ``ucf101`` only). By default looked
        for in ``ROOT/testTrainMulti_7030_splits`` (HMDB51), ``ROOT/ucfTrainTestlist``
        (UCF101), ``ROOT/splits`` and ``ROOT``.
    split : int
        Official split number, 1, 2 or 3 (``hmdb51`` and ``ucf101`` only).

    Returns
    -------
    Split

    Raises
    ------
    DatasetError
        See `folder_dataset`, `train_test_split_folders`, `hmdb51_split`, `ucf101_split`; also
        ``splits_dir`` given with the ``"folders"`` layout.
    ValueError
        Unknown ``layout``.
    """
    if layout not in ("folders", "hmdb51", "ucf101"):
        raise ValueError(f"layout must be 'folders', 'hmdb51' or 'ucf101', got {layout!r}")
    root = _folder(root)
    if layout == "folders":
        if splits_dir is not None:
            raise DatasetError(
                f"{splits_dir}: split files apply to the hmdb51 and ucf101 layouts only; choose "
                "one of those or leave splits_dir out"
            )
        if (root / "train").is_dir() and (root / "test").is_dir():
            return train_test_split_folders(root)
        if (root / "train").is_dir():
            return Split(tuple(folder_dataset(root / "train")), ())
        if (root / "test").is_dir():
            raise DatasetError(f"{root / 'test'}: a test folder without {root / 'train'}")
        return Split(tuple(folder_dataset(root)), ())
    if splits_dir is None:
        splits_dir = _find_splits_dir(root, layout, split)
    reader = hmdb51_split if layout == "hmdb51" else ucf101_split
    return reader(root, splits_dir, split)


# --------------------------------------------------------------------------------------------
# Groups and group-aware cross-validation


def _normalise_key(name: str) -> str:
    """A clip entry as a relative POSIX path: ``./a\\b.mp4`` → ``a/b.mp4``."""
    parts = PurePosixPath(name.strip().replace("\\", "/")).parts
    return "/".join(p for p in parts if p not in ("/", "."))


def read_groups(csv_path: str | os.PathLike) -> dict[str, str]:
    """The source video of each clip, from a CSV with the columns ``clip`` and ``source_video``.

    Other columns (``label`` …) are ignored. ``clip`` may be a file name (``fi001.mp4``) or a
    path relative to the dataset folder (``fight/fi001.mp4``); `group_kfold` matches it either
    way. Rows with an empty ``source_video`` are left out (those clips become groups of their
    own).

    Returns
    -------
    dict
        ``{clip: source_video}``, the clip as a relative POSIX path (``./`` and backslashes
        normalised away).

    Raises
    ------
    DatasetError
        Missing or unreadable file, missing column, empty ``clip``, a clip listed twice with
        different source videos, or no row at all.
    """
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; give the CSV of clip,label,source_video")
    groups: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            if "clip" not in header or "source_video" not in header:
                raise DatasetError(
                    f"{path}: the header must name the columns clip and source_video, got "
                    f"{','.join(header) or 'nothing'}"
                )
            reader.fieldnames = header
            for row in reader:
                clip = _normalise_key(row.get("clip") or "")
                group = (row.get("source_video") or "").strip()
                if not clip:
                    raise DatasetError(f"{path}:{reader.line_num}: empty clip")
                if not group:
                    continue
                if groups.setdefault(clip, group) != group:
                    raise DatasetError(
                        f"{path}:{reader.line_num}: {clip} is listed with two source videos, "
                        f"{groups[clip]} and {group}"
                    )
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; is it the groups CSV?") from None
    except (OSError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if not groups:
        raise DatasetError(f"{path}: no clip with a source video")
    return groups


class _GroupLookup:
    """Finds a clip's entry in a `read_groups` mapping by relative path, then by file name.

    The longest trailing part of the clip's path that is an entry wins (``fight/fi001.mp4``
    matches ``/data/fight-dev/fight/fi001.mp4``). Failing that, an entry with the same file name
    matches when all entries of that name agree on the group.
    """

    def __init__(self, groups: Mapping[str, str]) -> None:
        self.by_path = {_normalise_key(k): str(v) for k, v in groups.items()}
        self.by_name: dict[str, set[str]] = {}
        for key, group in self.by_path.items():
            self.by_name.setdefault(PurePosixPath(key).name, set()).add(group)

    def find(self, path: PurePath) -> str | None:
        parts = [p for p in path.parts if p != path.anchor]
        for k in range(len(parts), 0, -1):
            group = self.by_path.get("/".join(parts[-k:]))
            if group is not None:
                return group
        candidates = self.by_name.get(path.name, set())
        if len(candidates) > 1:
            raise DatasetError(
                f"{path}: its file name has entries with {len(candidates)} different source "
                "videos in the groups; give the clips as paths relative to the dataset folder"
            )
        return next(iter(candidates), None)


def group_kfold(
    clips: Sequence[Clip],
    n_folds: int = 5,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
) -> list[Split]:
    """Stratified k-fold cross-validation that keeps each group on one side of every split.

    A clip's group is its entry in ``groups`` (matched by relative path, then by file name; see
    `read_groups`), else its ``Clip.group``, else the clip alone. Folds come from scikit-learn's
    ``StratifiedGroupKFold`` with shuffled groups: class proportions are kept as far as the
    groups allow, and the same arguments give the same folds.

    Parameters
    ----------
    clips : sequence of Clip
    n_folds : int
        Number of folds, ≥ 2.
    groups : mapping, optional
        ``{clip: source_video}`` from `read_groups`.
    seed : int
        Seed of the group shuffle.

    Returns
    -------
    list of Split
        ``n_folds`` splits; every clip is in exactly one test set; clips keep their input order
        within each set.

    Raises
    ------
    DatasetError
        Fewer groups than folds, a fold without test clips, ``groups`` matching none of the
        clips, or a file name that matches entries of different groups.
    ValueError
        ``n_folds`` < 2 or no clips.

    Warns
    -----
    UserWarning
        When ``groups`` is given but some clips have no entry in it.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    clips = list(clips)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer ≥ 2, got {n_folds!r}")
    if not clips:
        raise ValueError("clips is empty: nothing to cross-validate")
    lookup = _GroupLookup(groups) if groups else None
    ids, unmatched = [], []
    for clip in clips:
        group = lookup.find(clip.path) if lookup else None
        if lookup and group is None:
            unmatched.append(clip.path)
        if group is None and clip.group is not None:
            group = clip.group
        ids.append(f"group:{group}" if group is not None else f"clip:{clip.path}")
    if lookup and unmatched:
        if len(unmatched) == len(clips):
            raise DatasetError(
                f"{unmatched[0]}: the groups match none of the {len(clips)} clips; their clip "
                "column must hold file names or paths relative to the dataset folder"
            )
        warnings.warn(
            f"{unmatched[0]}: no entry in the groups ({len(unmatched)} of {len(clips)} clips have "
            "none); each such clip is a group of its own",
            stacklevel=2,
        )
    n_groups = len(set(ids))
    if n_groups < n_folds:
        raise DatasetError(
            f"{clips[0].path.parent}: {n_groups} groups (source videos) among {len(clips)} clips "
            f"cannot fill {n_folds} folds; use n_folds ≤ {n_groups} or add clips"
        )
    labels = np.array([c.label for c in clips])
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "The least populated class in y has only k members": stratified where possible.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = list(cv.split(np.zeros(len(clips)), labels, np.array(ids)))
    splits = []
    for i, (train, test) in enumerate(folds):
        if not len(test):
            raise DatasetError(
                f"{clips[0].path.parent}: fold {i + 1} of {n_folds} has no test clip; lower n_folds"
            )
        splits.append(Split(tuple(clips[j] for j in train), tuple(clips[j] for j in test)))
    return splits


# --------------------------------------------------------------------------------------------
# Dataset-scale extraction


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
