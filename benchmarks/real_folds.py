"""Models of the real datasets' group folds, each with the clips it did not train on.

``fight-dev``: group 5-fold by source video; ``ut-interaction-set1``: leave one sequence out
(10 folds). Each fold's model is trained at the defaults on the rest and kept in
``out/folds/<set>_fold<k>.npz`` (the descriptors in ``out/folds/cache``), so the benchmarks that
explain held-out clips train each model once. Run it alone to train them all:
``python benchmarks/real_folds.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import actionlrp  # noqa: F401 — sets OpenBLAS's thread timeout before numpy loads
from actionlrp.datasets import (
    Clip,
    Split,
    folder_dataset,
    group_kfold,
    leave_one_group_out,
    read_groups,
)
from actionlrp.descriptors import DescriptorParams, LocalDescriptors
from actionlrp.extraction import extract_descriptors
from actionlrp.model import ActionModel

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ACTIONLRP_SHARED_DATA", ROOT.parent / "shared" / "data"))
FOLDS = {"fight-dev": 5, "ut-interaction-set1": 10}
OUT = ROOT / "out" / "folds"


def folds(name: str, only: int | None = None) -> Iterator[tuple[int, ActionModel, list[Clip]]]:
    """``(k, model, held-out clips)`` of each fold of dataset ``name`` (every fold, or ``only``)."""
    root = SHARED / name
    if not root.is_dir():
        sys.exit(f"{root}: not found (set ACTIONLRP_SHARED_DATA)")
    clips = folder_dataset(root)
    splits = group_kfold(clips, FOLDS[name], read_groups(root / "groups.csv"), seed=0)
    OUT.mkdir(parents=True, exist_ok=True)
    for k, split in enumerate(splits, 1):
        if only is not None and k != only:
            continue
        path = OUT / f"{name}_fold{k}.npz"
        if path.is_file():
            model = ActionModel.load(path)
        else:
            start = time.perf_counter()
            model = ActionModel(progress=False, cache_dir=OUT / "cache")
            model.fit([c.path for c in split.train], [c.label for c in split.train])
            model.save(path)
            print(f"trained {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        yield k, model, list(split.test)


def splits_with_descriptors(
    name: str, params: DescriptorParams | None = None, seed: int = 0
) -> tuple[list[Split], dict[Path, LocalDescriptors], float]:
    """Dataset ``name``'s group folds (ut-interaction-set1: leave one sequence out; fight-dev:
    group 5-fold drawn with ``seed``), every clip's descriptors at ``params`` (cached in
    ``out/folds/cache``) and the extraction's seconds."""
    root = SHARED / name
    clips = folder_dataset(root)
    groups = read_groups(root / "groups.csv")
    if name == "ut-interaction-set1":
        splits = leave_one_group_out(clips, groups)
    else:
        splits = group_kfold(clips, FOLDS[name], groups, seed=seed)
    result = extract_descriptors(
        [c.path for c in clips],
        motion="mv",
        cell=ActionModel().cell,
        params=params or DescriptorParams(),
        cache_dir=OUT / "cache",
        n_jobs=2,
        progress=False,
    )
    descriptors = dict(zip((c.path for c in clips), result.descriptors, strict=True))
    return splits, descriptors, result.seconds


if __name__ == "__main__":
    for dataset in FOLDS:
        for _ in folds(dataset):
            pass
