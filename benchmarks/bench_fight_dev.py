"""What was tried on fight-dev to choose the recogniser's defaults, measured in one run.

../shared/data/fight-dev: 100 real CCTV clips (fight / noFight, 320×240 to 1920×1080) from 38
source videos. Protocol = `actionlrp cv --folds 5 --groups groups.csv`: the same group-aware
stratified folds (`group_kfold`, seed 0), per fold a FisherEncoder fitted on the training clips
only, every clip encoded, a `LinearClassifier` trained on the training clips' Φ.

Per *encoder* configuration (motion, descriptor normalisation, ``max_width``, K, PCA) the
descriptors are extracted once (timed, into a fresh cache unless ``--cache`` is given) and the
encoder is fitted and the clips encoded once per fold (timed). The *head* variants then reuse
those Ψ: which FV parts go into Φ (all, mean part only, MBH only) and the SVM's C (chosen by
3-fold CV on the training clips, or fixed). Each row prints accuracy mean ± std over the 5 folds,
mean AP, and the total seconds of that protocol (extraction + 5 × (fit + encode + SVM)); head
variants add only their SVM time to their encoder's row.

With ``--train`` it also times training at the model's defaults on all 100 clips end to end
(`ActionModel().fit`, extraction into an empty cache + PCA/GMM fit + encoding + SVM).

    python benchmarks/bench_fight_dev.py [--data ../shared/data] [--only NAME ...] [--train]
        [--out results.json] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actionlrp.classifier import LinearClassifier, evaluate_scores
from actionlrp.datasets import folder_dataset, group_kfold, read_groups
from actionlrp.descriptors import DescriptorParams
from actionlrp.extraction import extract_descriptors
from actionlrp.fisher import FisherEncoder, power_l2_normalise
from actionlrp.model import ActionModel

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = ActionModel()


@dataclass(frozen=True)
class Encoder:
    """One encoder configuration: what the descriptors and the Fisher vector are."""

    name: str
    motion: str = DEFAULTS.motion
    normalization: str = DEFAULTS.params_.normalization
    max_width: int | None = DEFAULTS.params_.max_width
    mbh_floor: float = DEFAULTS.params_.mbh_floor
    k: int = DEFAULTS.n_components
    pca: int | None = DEFAULTS.pca_dims
    max_samples: int = DEFAULTS.max_samples
    heads: tuple[str, ...] = ("C=cv",)

    @property
    def params(self) -> DescriptorParams:
        return DescriptorParams(
            normalization=self.normalization, max_width=self.max_width, mbh_floor=self.mbh_floor
        )


#: Head variants on the same Ψ: (FV parts, C). C None = chosen by cross-validation.
HEADS = {
    "C=cv": ("all", None),
    "C=1": ("all", 1.0),
    "C=100": ("all", 100.0),
    "mean part only": ("mean", None),
    "MBH only": ("mbh", None),
}

# The order is the order they were tried in: first what K and PCA cost and give at small K,
# descriptor normalisation and max_width there, then K up to 256 and the flow reference.
CONFIGS = [
    Encoder("K64 no PCA", k=64, pca=None),
    Encoder("K64 PCA48", k=64, pca=48),
    Encoder("K64 PCA48 L2-norm", k=64, pca=48, normalization="l2"),
    Encoder("K64 PCA48 no norm", k=64, pca=48, normalization="none"),
    Encoder("K64 PCA48 max_width 640", k=64, pca=48, max_width=640),
    Encoder("K128 PCA48", k=128, pca=48),
    Encoder("defaults", heads=tuple(HEADS)),
    Encoder("defaults, flow", motion="flow"),
    # MBH's floor (the default is 1: "defaults")
    Encoder("mbh_floor 1/32", mbh_floor=1 / 32),
    Encoder("mbh_floor 1/4", mbh_floor=1 / 4),
    Encoder("mbh_floor 1/2", mbh_floor=1 / 2),
    Encoder("mbh_floor 8", mbh_floor=8.0),
]


EXTRACTION_SECONDS: dict[tuple, float] = {}


@dataclass
class Timing:
    extraction: float = 0.0
    fit: list[float] = field(default_factory=list)
    encode: list[float] = field(default_factory=list)


def columns(encoder: FisherEncoder, parts: str) -> np.ndarray:
    """Indices of Ψ kept for Φ: all, the mean parts (Ψ^μ of each type) or MBHx + MBHy."""
    keep = []
    for f, block in encoder.blocks_.items():
        index = np.arange(block.start, block.stop)
        if parts == "mean":
            index = index[: index.size // 2]
        elif parts == "mbh" and f == "hof":
            continue
        keep.append(index)
    return np.concatenate(keep)


def run_encoder(config: Encoder, clips, groups, cache: str) -> list[dict]:
    timing = Timing()
    result = extract_descriptors(
        [c.path for c in clips],
        motion=config.motion,
        params=config.params,
        cache_dir=cache,
        n_jobs=2,
        progress=False,
    )
    # a later configuration with the same descriptors reads them from the cache: charge it the
    # extraction time measured the first time
    key = (config.motion, config.params)
    timing.extraction = EXTRACTION_SECONDS.setdefault(key, result.seconds)
    if result.failures:
        raise SystemExit(f"{config.name}: clips failed: {result.failures}")
    index = {c.path: i for i, c in enumerate(clips)}
    descriptors = result.descriptors
    n_descriptors = int(sum(len(d) for d in descriptors))
    folds = group_kfold(clips, n_folds=5, groups=groups, seed=0)
    per_head = {h: {"accuracy": [], "mean_ap": [], "svm": 0.0, "C": []} for h in config.heads}
    for split in folds:
        train = [index[c.path] for c in split.train]
        test = [index[c.path] for c in split.test]
        start = time.perf_counter()
        encoder = FisherEncoder(
            n_components=config.k,
            pca_dims=config.pca,
            max_samples=config.max_samples,
            random_state=0,
        ).fit([descriptors[i] for i in train])
        timing.fit.append(time.perf_counter() - start)
        start = time.perf_counter()
        psi = np.stack([encoder.encode(d).psi for d in descriptors])
        timing.encode.append(time.perf_counter() - start)
        y = np.asarray([c.label for c in clips])
        for head in config.heads:
            parts, c = HEADS[head]
            start = time.perf_counter()
            phi = power_l2_normalise(psi[:, columns(encoder, parts)]).astype(np.float32)
            svm = LinearClassifier(C=c, random_state=0).fit(phi[train], y[train])
            report = evaluate_scores(y[test], svm.decision_function(phi[test]), svm.classes_)
            per_head[head]["svm"] += time.perf_counter() - start
            per_head[head]["accuracy"].append(report["accuracy"])
            per_head[head]["mean_ap"].append(report["mean_ap"])
            per_head[head]["C"].append(svm.C_)
    base = timing.extraction + sum(timing.fit) + sum(timing.encode)
    rows = []
    for head, r in per_head.items():
        acc, ap = np.asarray(r["accuracy"]), np.asarray(r["mean_ap"])
        rows.append(
            {
                "encoder": config.name,
                "head": head,
                "motion": config.motion,
                "normalization": config.normalization,
                "max_width": config.max_width,
                "mbh_floor": config.mbh_floor,
                "k": config.k,
                "pca": config.pca,
                "max_samples": config.max_samples,
                "accuracy": float(acc.mean()),
                "accuracy_std": float(acc.std()),
                "mean_ap": float(ap.mean()),
                "mean_ap_std": float(ap.std()),
                "fold_accuracy": acc.round(3).tolist(),
                "C_chosen": r["C"],
                "n_descriptors": n_descriptors,
                "extraction_seconds": round(timing.extraction, 1),
                "fit_seconds": round(sum(timing.fit), 1),
                "encode_seconds": round(sum(timing.encode), 1),
                "total_seconds": round(base + r["svm"], 1),
            }
        )
    return rows


def train_time(data: Path, cache: str | None) -> dict:
    clips = folder_dataset(data / "fight-dev")
    with tempfile.TemporaryDirectory(prefix="actionlrp-train-") as fresh:
        model = ActionModel(cache_dir=cache or fresh, progress=False)
        start = time.perf_counter()
        model.fit([c.path for c in clips], [c.label for c in clips])
        seconds = time.perf_counter() - start
    return {
        "n_clips": len(clips),
        "params": {k: v for k, v in model.get_params().items() if k != "descriptor_params"},
        "seconds": round(seconds, 1),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'encoder':<26} {'head':<15} {'motion':<6} {'K':>4} {'PCA':>4} {'accuracy':>13} "
        f"{'mean AP':>7} {'extract s':>9} {'fit s':>6} {'encode s':>8} {'total s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['encoder']:<26} {r['head']:<15} {r['motion']:<6} {r['k']:>4} "
            f"{r['pca'] or '–':>4} {r['accuracy']:>6.3f} ± {r['accuracy_std']:.3f} "
            f"{r['mean_ap']:>7.3f} {r['extraction_seconds']:>9.1f} {r['fit_seconds']:>6.1f} "
            f"{r['encode_seconds']:>8.1f} {r['total_seconds']:>8.1f}"
        )
    print("accuracy = mean ± std over the 5 group folds (20 test clips each: 1 clip = 0.05)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--only", nargs="*", default=None, help="encoder configurations to run")
    parser.add_argument("--train", action="store_true", help="also time training at defaults")
    parser.add_argument("--cache", default=None, help="descriptor cache (default: a fresh one)")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    data = Path(args.data)
    folder = data / "fight-dev"
    if not folder.is_dir():
        print(f"{folder}: not found; nothing to measure")
        return 2
    clips = folder_dataset(folder)
    groups = read_groups(folder / "groups.csv")
    configs = [c for c in CONFIGS if args.only is None or c.name in args.only]
    rows: list[dict] = []
    results: dict = {"rows": rows}
    with tempfile.TemporaryDirectory(prefix="actionlrp-cache-") as fresh:
        cache = args.cache or fresh
        for config in configs:
            rows.extend(run_encoder(config, clips, groups, cache))
            print_table(rows[-len(config.heads) :])
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=1))
        if args.train:
            results["train"] = train_time(data, None)
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=1))
    print("\nfight-dev, group 5-fold CV, all configurations")
    print_table(rows)
    if "train" in results:
        t = results["train"]
        print(
            f"\ntraining at the defaults on all {t['n_clips']} clips, end to end (extraction into "
            f"an empty cache, PCA + GMM fit, encoding, SVM): {t['seconds']} s  {t['params']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
