"""One-vs-rest linear SVM on Fisher vectors, its relevance step, and its evaluation (design §4).

The score of class c is exactly ``f_c(x) = w_c · Φ + b_c`` (`LinearClassifier.decision_function`),
the form the relevance step decomposes (`LinearClassifier.relevance`, design §5.2:
``R(3)_d = w_cd Φ_d + b_c / D′``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit
from sklearn.base import BaseEstimator
from sklearn.metrics import average_precision_score, confusion_matrix
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from actionlrp.features import DiskMatrix, column_blocks

if TYPE_CHECKING:
    from actionlrp.relevance import Forward
    from actionlrp.rules import Rule

#: |Ψ_d| at or under this fraction of max |Ψ| counts as unpopulated (exp underflow, round-off).
LIVE_THRESHOLD = 1e-9
#: Clips from which the Gram matrix's products are worth BLAS's threads.
THREADED_ROWS = 2048


class LinearClassifier(BaseEstimator):
    """One-vs-rest linear SVM (L2-regularised, squared hinge) with C chosen by cross-validation.

    The problem is `sklearn.svm.LinearSVC`'s (liblinear's, bias as a constant feature of
    value 1); it is solved in the dual, by liblinear's coordinate descent, on the Gram matrix
    of the clips (design §4): with far fewer clips than Fisher-vector dimensions, each step
    costs O(n_clips) instead of O(D), and every fold and candidate C reuses the one matrix.

    Parameters
    ----------
    C : float, optional
        SVM regularisation constant. None: choose it from ``Cs`` by stratified
        cross-validation (accuracy) on the training set.
    Cs : sequence of float, default (0.01, 0.1, 1.0, 10.0, 100.0)
        Candidates for C; among equally accurate ones the first is taken.
    cv : int, default 3
        Folds, reduced to the size of the smallest class when that is smaller. A class with a
        single training example leaves no fold to test on: then C is the middle value of the
        sorted ``Cs`` (1.0 by default) and a warning says so.
    class_weight : None, "balanced" or dict, default None
        Multiplies C for the clips of each class (of the positive class in one-vs-rest), as
        `LinearSVC` does.
    random_state : int, default 0
        Seed of the fold shuffling.
    max_iter : int, default 10_000
        Most sweeps of the coordinate descent.
    tol : float, default 1e-6
        The descent stops when no dual variable's projected gradient exceeds this.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,), str
        Class names, sorted.
    coef_ : ndarray, shape (n_classes, D), float64
        w_c, one row per class; with two classes the rows are ``−w`` and ``w``.
    intercept_ : ndarray, shape (n_classes,), float64
        b_c; with two classes ``−b`` and ``b``.
    C_ : float
        The C used for the final fit.
    cv_scores_ : ndarray, shape (len(Cs),), float64
        Mean cross-validated accuracy of each candidate; NaN where no cross-validation ran
        (``C`` given, or a class too small).
    """

    def __init__(
        self,
        C: float | None = None,
        Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0),
        cv: int = 3,
        class_weight: str | Mapping[str, float] | None = None,
        random_state: int = 0,
        max_iter: int = 10_000,
        tol: float = 1e-6,
    ):
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.class_weight = class_weight
        self.random_state = random_state
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X: np.ndarray, y: Sequence[str]) -> LinearClassifier:
        """Choose C (if not given) and fit the one-vs-rest SVM.

        Parameters
        ----------
        X : ndarray or DiskMatrix, shape (n_clips, D)
            Normalised Fisher vectors Φ, one row per clip; read a block of columns at a time.
        y : sequence of str, length n_clips
            Class names; at least two distinct ones.

        Returns
        -------
        self
        """
        X = _check_features(X, "X", finite=False)  # checked block by block in `_gram`
        y = np.asarray(y, dtype=str)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must be 1-D with one label per row of X ({X.shape[0]}), got shape {y.shape}"
            )
        classes, label, counts = np.unique(y, return_inverse=True, return_counts=True)
        if classes.size < 2:
            raise ValueError(f"y must contain at least 2 classes, got {classes.tolist()}")
        Cs = [float(c) for c in self.Cs]
        if self.C is None and not Cs:
            raise ValueError("Cs must list at least one candidate when C is None")
        if self.C is not None and not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C!r}")
        if not isinstance(self.cv, int | np.integer) or self.cv < 2:
            raise ValueError(f"cv must be an int ≥ 2, got {self.cv!r}")
        weights = compute_class_weight(
            _class_weight_of(self.class_weight, classes), classes=classes, y=y
        )
        # the bias is liblinear's constant feature of value 1: K_ij = Φ_i·Φ_j + 1
        gram = _gram(X) + 1.0

        self.cv_scores_ = np.full(len(Cs), np.nan)
        if self.C is not None:
            self.C_ = float(self.C)
        elif counts.min() < 2:
            self.C_ = sorted(Cs)[len(Cs) // 2]
            small = classes[counts < 2].tolist()
            warnings.warn(
                f"y: classes {small} have a single training clip, too few to cross-validate; "
                f"using C = {self.C_}",
                stacklevel=2,
            )
        else:
            folds = StratifiedKFold(
                n_splits=int(min(self.cv, counts.min())),
                shuffle=True,
                random_state=self.random_state,
            )
            correct = np.zeros(len(Cs))
            for train, test in folds.split(np.zeros(len(y)), y):
                for i, c in enumerate(Cs):
                    dual = self._dual(gram[np.ix_(train, train)], label[train], weights, c)
                    scores = gram[np.ix_(test, train)] @ dual.T
                    correct[i] += np.mean(_predicted(scores) == label[test])
            self.cv_scores_ = correct / folds.get_n_splits()
            self.C_ = Cs[int(np.argmax(self.cv_scores_))]

        dual = self._dual(gram, label, weights, self.C_)
        # w = Σ_i α_i y_i Φ_i, b = Σ_i α_i y_i; by column blocks, so that a float32 X is never
        # copied whole to float64
        coef = np.empty((dual.shape[0], X.shape[1]))
        with _blas_threads(len(y)):
            for start, part in column_blocks(X):
                np.matmul(dual, part, out=coef[:, start : start + part.shape[1]])
        intercept = dual.sum(axis=1)
        self.classes_ = classes.astype(str)
        if self.classes_.size == 2:  # one score per class: f_0 = −f_1
            coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
        self.coef_ = np.asarray(coef, np.float64)
        self.intercept_ = np.asarray(intercept, np.float64)
        return self

    def _dual(
        self, gram: np.ndarray, label: np.ndarray, weights: np.ndarray, c: float
    ) -> np.ndarray:
        """α_i y_i of each one-vs-rest problem, shape (n_problems, n): one problem for two
        classes (class 1 positive), else one per class."""
        n_classes = weights.size
        positives = [1] if n_classes == 2 else range(n_classes)
        gram = np.ascontiguousarray(gram, np.float64)
        out = np.zeros((len(positives), label.size))
        for row, k in enumerate(positives):
            y = np.where(label == k, 1.0, -1.0)
            if n_classes == 2:
                cost = c * weights[label]
            else:
                cost = np.where(label == k, c * weights[k], c)
            alpha = np.zeros(label.size)
            # design §4: L2-loss SVM dual, D_ii = 1 / (2 C_i), no upper bound
            _dual_coordinate_descent(gram, y, 0.5 / cost, self.tol, self.max_iter, alpha)
            out[row] = alpha * y
        return out

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Scores ``f_c(x) = w_c · Φ + b_c`` (design §4), exactly ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : ndarray, shape (n_clips, D)

        Returns
        -------
        ndarray, shape (n_clips, n_classes), float64
        """
        check_is_fitted(self, "coef_")
        X = _check_features(X, "X")
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} columns, expected {self.coef_.shape[1]} (the FV dimension "
                "the classifier was trained on)"
            )
        return X @ self.coef_.T + self.intercept_

    def relevance(self, forward: Forward, r: np.ndarray, rule: Rule) -> np.ndarray:
        """The relevance step: relevance of the class scores → R(3) per dimension of Φ.

        Parameters
        ----------
        forward : Forward
            The clip's forward pass (``fisher.phi`` and the dimensions it populates, ``live``).
        r : ndarray, shape (n_classes,)
            How much of each class's score is explained: one-hot for one class, +1 / −1 for the
            contrast of two. The score explained is ``r · f(x)``.
        rule : Rule
            ``rule.bias``: how the bias is shared over the dimensions (`relevance_fv`).

        Returns
        -------
        ndarray, shape (D,), float64
            ``R(3)_d = (r W)_d Φ_d + (r · b) β_d``, summing to ``r · f(x)``.
        """
        check_is_fitted(self, "coef_")
        r = np.asarray(r, np.float64)
        if r.shape != self.classes_.shape:
            raise ValueError(f"r must have shape {self.classes_.shape}, got {r.shape}")
        coef, intercept = r @ self.coef_, float(r @ self.intercept_)
        phi = forward.fisher.phi
        if rule.bias == "energy":  # β_d = Φ_d², which sums to ‖Φ‖² = 1
            return np.asarray(coef, np.float64) * phi + intercept * phi**2
        return relevance_fv(phi, coef, intercept, forward.live)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class names of the highest scores, shape (n_clips,)."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def get_state(self) -> dict[str, np.ndarray]:
        """The learned arrays, for an npz file (no pickle: class names are a unicode array).

        Returns
        -------
        dict of str to ndarray
            ``classes`` (n_classes,) str, ``coef`` (n_classes, D), ``intercept`` (n_classes,),
            ``C`` () and ``cv_scores`` (len(Cs),), float64.
        """
        check_is_fitted(self, "coef_")
        return {
            "classes": self.classes_,
            "coef": self.coef_,
            "intercept": self.intercept_,
            "C": np.asarray(self.C_),
            "cv_scores": self.cv_scores_,
        }

    @classmethod
    def from_state(
        cls, params: Mapping[str, Any], state: Mapping[str, np.ndarray]
    ) -> LinearClassifier:
        """Rebuild a fitted classifier from `get_params` and `get_state`.

        Raises
        ------
        ValueError
            A state array is missing or the shapes disagree.
        """
        params = dict(params)
        if isinstance(params.get("Cs"), list):
            params["Cs"] = tuple(params["Cs"])
        model = cls(**params)
        try:
            classes = np.asarray(state["classes"], dtype=str)
            coef = np.asarray(state["coef"], np.float64)
            intercept = np.asarray(state["intercept"], np.float64)
            c = float(state["C"])
            cv_scores = np.asarray(state.get("cv_scores", np.full(len(model.Cs), np.nan)))
        except KeyError as missing:
            raise ValueError(f"state: missing array {missing.args[0]!r}") from None
        if classes.ndim != 1 or coef.ndim != 2 or coef.shape[0] != classes.size:
            raise ValueError(
                f"state: coef has shape {coef.shape}, expected ({classes.size}, D) for "
                f"{classes.size} classes"
            )
        if intercept.shape != (classes.size,):
            raise ValueError(
                f"state: intercept has shape {intercept.shape}, expected ({classes.size},)"
            )
        model.classes_, model.coef_, model.intercept_ = classes, coef, intercept
        model.C_, model.cv_scores_ = c, cv_scores.astype(np.float64)
        return model


def evaluate_scores(
    y_true: Sequence[str], scores: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, average precision per class and its mean, confusion matrix (design §4).

    Parameters
    ----------
    y_true : sequence of str, length n_clips
        True class names; each must be in ``classes``.
    scores : ndarray, shape (n_clips, n_classes)
        Class scores, columns in the order of ``classes`` (e.g. `decision_function`).
    classes : sequence of str
        Class names of the score columns.

    Returns
    -------
    dict
        ``accuracy`` (float: fraction of clips whose highest score is their class),
        ``mean_ap`` (float: mean of the per-class APs that are defined),
        ``per_class_ap`` (dict class → average precision of that column's scores, one class
        against the rest; None for a class with no clip in ``y_true``),
        ``confusion_matrix`` (nested list of int, rows = true, columns = predicted, in
        ``classes`` order), ``n_clips`` (int).
    """
    if isinstance(classes, str) or isinstance(y_true, str):
        raise ValueError("classes and y_true must be sequences of class names, not one str")
    classes = np.asarray(classes, dtype=str)
    y_true = np.asarray(y_true, dtype=str)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (y_true.size, classes.size):
        raise ValueError(
            f"scores must have shape (n_clips, n_classes) = ({y_true.size}, {classes.size}), "
            f"got {scores.shape}"
        )
    if y_true.size == 0:
        raise ValueError("y_true is empty: nothing to evaluate")
    unknown = sorted(set(y_true.tolist()) - set(classes.tolist()))
    if unknown:
        raise ValueError(f"y_true has classes not in classes: {unknown}")
    predicted = classes[np.argmax(scores, axis=1)]
    per_class_ap: dict[str, float | None] = {}
    for j, c in enumerate(classes.tolist()):
        positive = y_true == c
        per_class_ap[c] = (
            float(average_precision_score(positive, scores[:, j])) if positive.any() else None
        )
    defined = [ap for ap in per_class_ap.values() if ap is not None]
    return {
        "accuracy": float(np.mean(predicted == y_true)),
        "mean_ap": float(np.mean(defined)),  # y_true is non-empty: at least one is defined
        "per_class_ap": per_class_ap,
        "confusion_matrix": confusion_matrix(y_true, predicted, labels=classes).tolist(),
        "n_clips": int(y_true.size),
    }


def _check_features(
    X: np.ndarray | DiskMatrix, name: str, finite: bool = True
) -> np.ndarray | DiskMatrix:
    if not isinstance(X, DiskMatrix):
        X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be 2-D (n_clips, D) with at least one row, got {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if finite and not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinity")
    return X


def relevance_fv(
    phi: np.ndarray, coef: np.ndarray, intercept: float, live: np.ndarray | None = None
) -> np.ndarray:
    """R(3)_d = w_cd·Φ_d + b_c / D′, so Σ_d R(3)_d = f_c(x) exactly (design §5.2).

    The bias is shared over the D′ dimensions in ``live`` (default: all D). The relevance step
    passes the dimensions the clip populates (`populated`): a dimension of a Gaussian that no
    descriptor of the clip reaches (Ψ_d = 0) has no descriptor to hand its share on to.

    Parameters
    ----------
    phi : ndarray, shape (D,)
        Normalised Fisher vector.
    coef : ndarray, shape (D,)
        The class's SVM weights w_c.
    intercept : float
        The class's SVM bias b_c.
    live : ndarray of bool, shape (D,), optional
    """
    phi = np.asarray(phi, np.float64)
    r3 = np.asarray(coef, np.float64) * phi
    if live is None or not live.any():
        return r3 + float(intercept) / phi.size
    r3[live] += float(intercept) / int(live.sum())
    return r3


def populated(psi: np.ndarray) -> np.ndarray:
    """The dimensions of Ψ a clip populates: |Ψ_d| > `LIVE_THRESHOLD` × max |Ψ|, bool (D,)."""
    return np.abs(psi) > LIVE_THRESHOLD * np.abs(psi).max(initial=0.0)


def _gram(X: np.ndarray | DiskMatrix) -> np.ndarray:
    """X Xᵀ in float64, summed over column blocks (a float32 X is never copied whole)."""
    gram = np.zeros((X.shape[0], X.shape[0]))
    with _blas_threads(X.shape[0]):
        for _, part in column_blocks(X):
            part = np.asarray(part, np.float64)
            if not np.isfinite(part).all():
                raise ValueError("X contains NaN or infinity")
            gram += part @ part.T
    return gram


def _blas_threads(n: int) -> threadpool_limits:
    """One BLAS thread for the products of a Gram matrix of fewer than `THREADED_ROWS` rows:
    with threads, a 100-row block took 20 × as long on a busy 2-core machine."""
    return threadpool_limits(1 if n < THREADED_ROWS else None, user_api="blas")


def _class_weight_of(
    class_weight: str | Mapping[str, float] | None, classes: np.ndarray
) -> str | dict[str, float] | None:
    if class_weight is None or isinstance(class_weight, str):
        return class_weight
    return {str(c): float(class_weight.get(str(c), 1.0)) for c in classes}


def _predicted(scores: np.ndarray) -> np.ndarray:
    """Class index from the one-vs-rest scores (n, n_problems): one problem means two classes."""
    if scores.shape[1] == 1:
        return (scores[:, 0] > 0).astype(np.int64)
    return np.argmax(scores, axis=1)


@njit(
    "int64(float64[:, ::1], float64[::1], float64[::1], float64, int64, float64[::1])",
    cache=True,
    nogil=True,
)
def _dual_coordinate_descent(gram, y, diag, tol, max_sweeps, alpha):
    """Minimise ½ αᵀ(Q + diag)α − Σα over α ≥ 0, Q_ij = y_i y_j K_ij (Hsieh et al. 2008).

    ``alpha`` (n,) is updated in place from its given value; returns the sweeps made.
    """
    n = y.size
    s = np.zeros(n)  # s_j = Σ_i α_i y_i K_ij, so that (Qα)_i = y_i s_i
    for i in range(n):
        if alpha[i] != 0.0:
            for j in range(n):
                s[j] += alpha[i] * y[i] * gram[i, j]
    np.random.seed(0)  # noqa: NPY002 — numba's own generator, the same order on every call
    for sweep in range(max_sweeps):
        worst = 0.0
        for i in np.random.permutation(n):  # noqa: NPY002
            g = y[i] * s[i] - 1.0 + diag[i] * alpha[i]
            pg = g if alpha[i] > 0.0 else min(g, 0.0)
            if abs(pg) > worst:
                worst = abs(pg)
            if pg != 0.0:
                new = max(alpha[i] - g / (gram[i, i] + diag[i]), 0.0)
                step = (new - alpha[i]) * y[i]
                alpha[i] = new
                for j in range(n):
                    s[j] += step * gram[i, j]
        if worst <= tol:
            return sweep + 1
    return max_sweeps
