"""Datasets: clip lists and official splits.

Layouts
-------
* ``folders``: ``ROOT/<class>/<clip>`` (`folder_dataset`), or ``ROOT/train/<class>/<clip>`` and
  ``ROOT/test/<class>/<clip>`` (`train_test_split_folders`, what ``actionlrp synth`` writes).
* ``hmdb51``: ``ROOT/<class>/<clip>.avi`` with the official ``<class>_test_split{1,2,3}.txt``.
* ``ucf101``: ``ROOT/<class>/<clip>.avi`` with ``trainlist0N.txt`` / ``testlist0N.txt``.

Cross-validation keeps the clips of one source video on one side of every split
(`group_kfold`, groups from a ``clip,label,source_video`` CSV read by `read_groups`): those live
in `actionlrp.folds` and are re-exported here.

Extracting the descriptors of a list of clips, with the on-disk cache, is
`actionlrp.extraction.extract_descriptors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from actionlrp.errors import DatasetError
from actionlrp.folds import group_kfold as group_kfold
from actionlrp.folds import leave_one_group_out as leave_one_group_out
from actionlrp.folds import read_groups as read_groups

__all__ = [
    "VIDEO_SUFFIXES",
    "Clip",
    "Split",
    "folder_dataset",
    "group_kfold",
    "hmdb51_split",
    "leave_one_group_out",
    "load_split",
    "read_groups",
    "train_test_split_folders",
    "ucf101_split",
]

#: File suffixes taken as video files (compared case-insensitively).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv"}
)

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
    test_group : str or None
        The group the test clips are, where one group is held out (`leave_one_group_out`).
    """

    train: tuple[Clip, ...]
    test: tuple[Clip, ...]
    test_group: str | None = None

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
