"""Fitting time and accuracy: actionlrp's EM and dual SVM against the scikit-learn path it replaced.

On the group folds of the real sets (``ut-interaction-set1``: leave one sequence out, 10 folds;
``fight-dev``: group 5-fold), with the descriptors extracted once (``out/folds/cache``), each
fold is fitted twice, side by side:

* **reference** — what training ran before: `sklearn.mixture.GaussianMixture` (k-means start,
  EM in float32, tol 1e-3) per feature type, and `sklearn.svm.LinearSVC` with C chosen by
  `cross_val_score` over the same candidates and folds;
* **actionlrp** — `actionlrp.gmm.DiagonalGMM` and `LinearClassifier` (dual coordinate descent
  on the Gram matrix), at the defaults.

Both share the sampling, PCA and encoding code (`actionlrp.encoding.transform`, in worker
processes as training runs it). Prints per set: accuracy (mean ± std over folds), the seconds
of each stage summed over folds (GMM: sampling + PCA + EM; encode: the training clips' Fisher
vectors; SVM: choosing C and fitting), and the ratio of the fit times.

    python benchmarks/bench_fit.py [--sets ut-interaction-set1 fight-dev]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from real_folds import FOLDS, splits_with_descriptors
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

from actionlrp import fisher_fit
from actionlrp.classifier import LinearClassifier
from actionlrp.encoding import transform
from actionlrp.fisher import FisherEncoder
from actionlrp.gmm import DiagonalGMM
from actionlrp.model import ActionModel


class SklearnGMM:
    """The EM training used before: scikit-learn's, k-means start, float32 data."""

    def __init__(self, n_components, reg_covar, max_iter, tol, random_state):
        self.gmm = GaussianMixture(
            n_components,
            covariance_type="diag",
            reg_covar=reg_covar,
            max_iter=max_iter,
            random_state=random_state,
        )

    fits = 0  # how many GMMs this path fitted: the benchmark checks the swap took

    def fit(self, x):
        SklearnGMM.fits += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gmm.fit(np.asarray(x, np.float32))
        self.converged_ = self.gmm.converged_
        self.weights_, self.means_ = self.gmm.weights_, self.gmm.means_
        self.covariances_ = self.gmm.covariances_
        return self


def reference_svm(X: np.ndarray, y: np.ndarray, seed: int = 0) -> LinearSVC:
    """C by cross_val_score over LinearClassifier's candidates and folds, then LinearSVC."""
    defaults = LinearClassifier()
    counts = np.unique(y, return_counts=True)[1]
    folds = StratifiedKFold(int(min(defaults.cv, counts.min())), shuffle=True, random_state=seed)
    scores = [
        cross_val_score(LinearSVC(C=c, random_state=seed, max_iter=10_000), X, y, cv=folds).mean()
        for c in defaults.Cs
    ]
    best = defaults.Cs[int(np.argmax(scores))]
    return LinearSVC(C=best, random_state=seed, max_iter=10_000).fit(X, y)


def run_set(name: str, path: str) -> dict:
    splits, descriptors, _ = splits_with_descriptors(name)
    model = ActionModel()
    fisher_fit.DiagonalGMM = SklearnGMM if path == "reference" else DiagonalGMM
    SklearnGMM.fits = 0
    seconds = {"gmm": 0.0, "encode": 0.0, "svm": 0.0}
    accuracy = []
    for split in splits:
        train = [descriptors[c.path] for c in split.train]
        labels = np.array([c.label for c in split.train])
        start = time.perf_counter()
        encoder = FisherEncoder(
            n_components=model.n_components,
            pca_dims=model.pca_dims,
            max_samples=model.max_samples,
        ).fit(train)
        fitted = time.perf_counter()
        X = transform(encoder, train, model.n_jobs)  # as training runs it: in worker processes
        encoded = time.perf_counter()
        if path == "reference":
            svm = reference_svm(X, labels)
        else:
            svm = LinearClassifier().fit(X, labels)
        seconds["svm"] += time.perf_counter() - encoded
        seconds["gmm"] += fitted - start
        seconds["encode"] += encoded - fitted
        predicted = svm.predict(encoder.transform([descriptors[c.path] for c in split.test]))
        accuracy.append(float(np.mean(predicted == np.array([c.label for c in split.test]))))
    if (SklearnGMM.fits > 0) != (path == "reference"):
        raise RuntimeError(f"the {path} path fitted {SklearnGMM.fits} scikit-learn GMMs")
    return {
        "accuracy": round(float(np.mean(accuracy)), 3),
        "accuracy_std": round(float(np.std(accuracy)), 3),
        "folds": len(splits),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "fit_seconds": round(sum(seconds.values()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(FOLDS))
    args = parser.parse_args()
    report = {}
    for name in args.sets:
        report[name] = {path: run_set(name, path) for path in ("reference", "actionlrp")}
        ref, new = report[name]["reference"], report[name]["actionlrp"]
        report[name]["speed_up"] = round(ref["fit_seconds"] / new["fit_seconds"], 2)
        for path, r in (("reference", ref), ("actionlrp", new)):
            print(
                f"{name:<20} {path:<10} accuracy {r['accuracy']:.3f} ± {r['accuracy_std']:.3f}"
                f"  fit {r['fit_seconds']:7.1f} s over {r['folds']} folds  {r['seconds']}",
                flush=True,
            )
        print(f"{name:<20} fitting {report[name]['speed_up']}× faster", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
