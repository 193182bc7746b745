"""The descriptor options of Kantorov & Laptev on real footage: accuracy on the group folds.

``ut-interaction-set1``: leave one sequence out (10 folds of 6 clips); ``fight-dev``: group
5-fold by source video. Each clip is scored by a model that did not train on it, fitted at the
defaults but for the option. Prints accuracy mean ± std over folds and the seconds spent per
stage (GMM: sampling + PCA + EM; encode: Fisher vectors of the training and test clips; SVM).

    python benchmarks/bench_options.py [--only NAME ...] [--sets SET ...] [--seeds N]

With ``--seeds N`` each option is run N times (seed s: the encoder's sampling, PCA and GMM
seed, and fight-dev's draw of its group folds) and the accuracy is the mean over the runs, its
± the mean of the runs' fold stds; ``runs`` lists each run's accuracy.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from real_folds import FOLDS, splits_with_descriptors

from actionlrp.classifier import LinearClassifier
from actionlrp.descriptors import DescriptorParams
from actionlrp.fisher import FisherEncoder
from actionlrp.model import ActionModel
from actionlrp.pyramid import KL_GRIDS

OPTIONS = {
    "defaults": DescriptorParams(),  # HOF, MBHx, MBHy and HOG
    "motion only (no HOG)": DescriptorParams(hog=False),
    "slice normalisation": DescriptorParams(slice_normalization=True),
    "two scales": DescriptorParams(cube_px=(32, 48), stride_px=(16, 24)),
    "space-time pyramid": DescriptorParams(),
    "hog, plain RootSIFT": DescriptorParams(hog_floor=0.0),
    "motion only + space-time pyramid": DescriptorParams(hog=False),
}
#: Options of the Fisher encoder rather than of the descriptors.
ENCODER_OPTIONS = {
    "space-time pyramid": {"pyramid": KL_GRIDS},
    "motion only + space-time pyramid": {"pyramid": KL_GRIDS},
}


def run(
    name: str, params: DescriptorParams, encoder_options: dict | None = None, seed: int = 0
) -> dict:
    splits, descriptors, extraction_seconds = splits_with_descriptors(name, params, seed=seed)
    defaults = ActionModel()
    seconds = {"gmm": 0.0, "encode": 0.0, "svm": 0.0}
    accuracy = []
    for split in splits:
        start = time.perf_counter()
        encoder = FisherEncoder(
            n_components=defaults.n_components,
            pca_dims=defaults.pca_dims,
            max_samples=defaults.max_samples,
            random_state=seed,
            **(encoder_options or {}),
            feature_types=tuple(params.dims()),
        ).fit(descriptors[c.path] for c in split.train)
        fitted = time.perf_counter()
        X = encoder.transform([descriptors[c.path] for c in split.train])
        X_test = encoder.transform([descriptors[c.path] for c in split.test])
        encoded = time.perf_counter()
        svm = LinearClassifier().fit(X, [c.label for c in split.train])
        seconds["svm"] += time.perf_counter() - encoded
        seconds["gmm"] += fitted - start
        seconds["encode"] += encoded - fitted
        truth = np.array([c.label for c in split.test])
        accuracy.append(float(np.mean(svm.predict(X_test) == truth)))
    return {
        "accuracy": round(float(np.mean(accuracy)), 3),
        "accuracy_std": round(float(np.std(accuracy)), 3),
        "extraction_seconds": round(extraction_seconds, 1),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    parser.add_argument("--sets", nargs="+", default=list(FOLDS))
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    report = {}
    for option in args.only:
        for name in args.sets:
            runs = [
                run(name, OPTIONS[option], ENCODER_OPTIONS.get(option), seed)
                for seed in range(args.seeds)
            ]
            r = report.setdefault(option, {})[name] = {
                "accuracy": round(float(np.mean([x["accuracy"] for x in runs])), 3),
                "accuracy_std": round(float(np.mean([x["accuracy_std"] for x in runs])), 3),
                "runs": [x["accuracy"] for x in runs],
                "extraction_seconds": runs[0]["extraction_seconds"],
                "seconds": {
                    k: round(sum(x["seconds"][k] for x in runs), 1) for k in runs[0]["seconds"]
                },
            }
            print(
                f"{option:<34} {name:<20} {r['accuracy']:.3f} ± {r['accuracy_std']:.3f}  "
                f"runs {r['runs']}  extraction {r['extraction_seconds']} s  {r['seconds']}",
                flush=True,
            )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
