"""Groups and group-aware cross-validation: which clips must stay on one side of every split.

A clip's group is what it shares with other clips (its source video, or the recorded sequence
of a dataset recorded as sequences): from a ``clip,label,source_video`` CSV (`read_groups`),
else its `actionlrp.datasets.Clip.group` (HMDB51's and UCF101's official names give it), else
the clip alone. `group_kfold` makes stratified k folds over those groups, and
`leave_one_group_out` holds each group out in turn. Both return `actionlrp.datasets.Split`
values, and `actionlrp.datasets` re-exports all three.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from actionlrp.errors import DatasetError

if TYPE_CHECKING:
    from actionlrp.datasets import Clip, Split

__all__ = ["group_kfold", "leave_one_group_out", "read_groups"]


def _normalise_key(name: str) -> str:
    """A clip entry as a relative POSIX path: ``./a\\b.mp4`` → ``a/b.mp4``."""
    parts = PurePosixPath(name.strip().replace("\\", "/")).parts
    return "/".join(p for p in parts if p not in ("/", "."))


def read_groups(csv_path: str | os.PathLike) -> dict[str, str]:
    """The group of each clip, from a CSV with the columns ``clip`` and ``source_video`` (or
    ``group``: the name of the group, e.g. a recorded sequence).

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
            column = "source_video" if "source_video" in header else "group"
            if "clip" not in header or column not in header:
                raise DatasetError(
                    f"{path}: the header must name the columns clip and source_video (or group), "
                    f"got {','.join(header) or 'nothing'}"
                )
            reader.fieldnames = header
            for row in reader:
                clip = _normalise_key(row.get("clip") or "")
                group = (row.get(column) or "").strip()
                if not clip:
                    raise DatasetError(f"{path}:{reader.line_num}: empty clip")
                if not group:
                    continue
                if groups.setdefault(clip, group) != group:
                    raise DatasetError(
                        f"{path}:{reader.line_num}: {clip} is listed with two groups, "
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

    from actionlrp.datasets import Split  # here: actionlrp.datasets imports this module

    clips = list(clips)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer ≥ 2, got {n_folds!r}")
    ids = _group_ids(clips, groups)
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


def leave_one_group_out(
    clips: Sequence[Clip], groups: Mapping[str, str] | None = None
) -> list[Split]:
    """Each group held out in turn: the protocol of datasets recorded as sequences.

    A clip's group is found as in `group_kfold`. UT-Interaction, for one, has 10 sequences per
    set, each the test set of one fold.

    Parameters
    ----------
    clips : sequence of Clip
    groups : mapping, optional
        ``{clip: group}`` from `read_groups`.

    Returns
    -------
    list of Split
        One split per group, in the order of the group names; clips keep their input order.

    Raises
    ------
    DatasetError
        Fewer than 2 groups, or ``groups`` matching none of the clips.
    ValueError
        No clips.
    """
    from actionlrp.datasets import Split  # here: actionlrp.datasets imports this module

    clips = list(clips)
    ids = _group_ids(clips, groups)
    names = sorted(set(ids))
    if len(names) < 2:
        raise DatasetError(
            f"{clips[0].path.parent}: {len(names)} group among {len(clips)} clips; leaving one "
            "out needs at least 2"
        )
    return [
        Split(
            tuple(c for c, i in zip(clips, ids, strict=True) if i != name),
            tuple(c for c, i in zip(clips, ids, strict=True) if i == name),
            name.split(":", 1)[1],
        )
        for name in names
    ]


def _group_ids(clips: list[Clip], groups: Mapping[str, str] | None) -> list[str]:
    """Each clip's group: its entry in ``groups``, else ``Clip.group``, else the clip alone."""
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
            stacklevel=3,
        )
    return ids
