"""Recognition accuracy and cost, measured in one run (results go to the README).

1. The built-in synthetic dataset: train on its train split, accuracy on its test split.
2. ../shared/data/fight-dev (real CCTV fight / no-fight, 100 clips): group 5-fold CV accuracy and
   mean AP with ``--motion mv`` and ``--motion flow`` side by side, with their total times.

What was tried to choose the defaults (K, PCA, normalisation, FV parts, C, max_width) and the
end-to-end training time are in benchmarks/bench_fight_dev.py.

    python benchmarks/bench_recognition.py [--data ../shared/data] [--k 256] [--skip-builtin]
        [--size 160x120]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from actionlrp.builtin import make_dataset
from actionlrp.datasets import folder_dataset, load_split, read_groups
from actionlrp.model import ActionModel, cross_validate, evaluate_clips

ROOT = Path(__file__).resolve().parents[1]


def builtin(k: int, pca: int | None, cache: str, size: tuple[int, int] = (160, 120)) -> dict:
    with tempfile.TemporaryDirectory(prefix="actionlrp-builtin-") as tmp:
        start = time.perf_counter()
        make_dataset(tmp, seed=0, width=size[0], height=size[1])
        made = time.perf_counter() - start
        split = load_split(tmp)
        start = time.perf_counter()
        model = ActionModel(n_components=k, pca_dims=pca, cache_dir=cache, progress=False).fit(
            [c.path for c in split.train], [c.label for c in split.train]
        )
        trained = time.perf_counter() - start
        report = evaluate_clips(model, split.test)
        model.save(Path(tmp) / "model.npz")
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh process, as predict
            encode_ms, faults = pool.apply(
                encode_in_turn, (str(Path(tmp) / "model.npz"), [c.path for c in split.test], cache)
            )
    return {
        "encode_ms_per_clip": round(encode_ms, 2),
        "page_faults_per_clip": round(faults, 1),
        "train_clips": len(split.train),
        "test_clips": len(split.test),
        "accuracy": report["accuracy"],
        "mean_ap": report["mean_ap"],
        "generate_seconds": round(made, 1),
        "train_seconds": round(trained, 1),
    }


def encode_in_turn(
    model_path: str, paths: list, cache: str, repeat: int = 7
) -> tuple[float, float]:
    """Load the model, then encode and score the clips' descriptors one after another, as
    `predict` does after extraction: median ms per clip, and minor page faults per clip."""
    model = ActionModel.load(model_path)
    model.cache_dir, model.progress = cache, False
    descriptors = model.extract(paths).descriptors
    model.decision_function_descriptors(descriptors)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.decision_function_descriptors(descriptors)
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    n = len(descriptors)
    return float(np.median(times)) / n * 1e3, faults / (repeat * n)


def fight_dev(data: Path, motion: str, k: int, pca: int | None, cache: str, **extra) -> dict:
    folder = data / "fight-dev"
    clips = folder_dataset(folder)
    groups = read_groups(folder / "groups.csv")
    start = time.perf_counter()
    report = cross_validate(
        clips,
        n_folds=5,
        groups=groups,
        motion=motion,
        n_components=k,
        pca_dims=pca,
        cache_dir=cache,
        progress=False,
        **extra,
    )
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument(
        "--pca", type=int, default=ActionModel().pca_dims, help="PCA dims (0: none)"
    )
    parser.add_argument("--skip-builtin", action="store_true")
    parser.add_argument("--size", default="160x120", help="built-in clips' WIDTHxHEIGHT")
    parser.add_argument("--skip-flow", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.pca = args.pca or None
    results = {}
    with tempfile.TemporaryDirectory(prefix="actionlrp-cache-") as cache:
        if not args.skip_builtin:
            size = tuple(int(v) for v in args.size.split("x"))
            results["builtin"] = builtin(args.k, args.pca, cache, size)
        data = Path(args.data)
        if (data / "fight-dev").is_dir():
            results["fight_mv"] = fight_dev(data, "mv", args.k, args.pca, cache)
            if not args.skip_flow:
                results["fight_flow"] = fight_dev(data, "flow", args.k, args.pca, cache)
    if args.json:
        print(json.dumps(results))
        return 0
    if "builtin" in results:
        b = results["builtin"]
        print(
            f"built-in dataset: {b['train_clips']} train / {b['test_clips']} test clips, "
            f"accuracy {b['accuracy']:.3f}, mean AP {b['mean_ap']:.3f} "
            f"(generate {b['generate_seconds']} s, train {b['train_seconds']} s); encoding and "
            f"scoring its test clips one after another: {b['encode_ms_per_clip']} ms and "
            f"{b['page_faults_per_clip']} page faults per clip"
        )
    rows = [(name, r) for name, r in results.items() if name.startswith("fight")]
    if rows:
        print("\nfight-dev, group 5-fold CV (100 clips)")
        print(f"{'motion':<8} {'accuracy':>9} {'mean AP':>8} {'seconds':>8}")
        for name, r in rows:
            print(f"{name[6:]:<8} {r['accuracy']:>9.3f} {r['mean_ap']:>8.3f} {r['seconds']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
