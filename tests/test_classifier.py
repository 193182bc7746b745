"""One-vs-rest linear SVM: scores as plain linear functions, C by cross-validation, evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actionlrp.classifier import LinearClassifier, evaluate_scores

CLASSES = ("jump", "run", "walk")


def separable(n_per_class: int = 12, dim: int = 20, seed: int = 0, classes=CLASSES):
    """Clusters around orthogonal directions, far apart relative to their spread."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i, c in enumerate(classes):
        centre = np.zeros(dim)
        centre[i] = 3.0
        X.append(centre + 0.2 * rng.standard_normal((n_per_class, dim)))
        y += [c] * n_per_class
    order = rng.permutation(len(y))
    return np.concatenate(X)[order].astype(np.float32), np.array(y)[order]


@pytest.fixture(scope="module")
def fitted():
    X, y = separable()
    return LinearClassifier().fit(X, y), X, y


def test_separable_classes_are_learned_exactly(fitted):
    model, X, y = fitted
    X_test, y_test = separable(seed=1)
    assert np.array_equal(model.classes_, np.array(CLASSES))
    assert np.mean(model.predict(X) == y) == 1.0
    assert np.mean(model.predict(X_test) == y_test) == 1.0


def test_decision_function_is_x_times_coef_plus_intercept(fitted):
    model, X, _ = fitted
    scores = model.decision_function(X)
    assert scores.shape == (len(X), 3)
    assert model.coef_.shape == (3, X.shape[1]) and model.intercept_.shape == (3,)
    np.testing.assert_array_equal(scores, X @ model.coef_.T + model.intercept_)
    np.testing.assert_array_equal(model.predict(X), model.classes_[scores.argmax(axis=1)])


def test_binary_case_has_two_score_columns_that_are_negatives():
    X, y = separable(classes=("run", "walk"))
    model = LinearClassifier(C=1.0).fit(X, y)
    assert model.coef_.shape == (2, X.shape[1])
    np.testing.assert_array_equal(model.coef_[0], -model.coef_[1])
    assert model.intercept_[0] == -model.intercept_[1]
    scores = model.decision_function(X)
    np.testing.assert_allclose(scores[:, 0], -scores[:, 1], rtol=0, atol=1e-12)
    assert np.mean(model.predict(X) == y) == 1.0


def test_c_is_chosen_from_cs_by_cross_validation(fitted):
    model, _, _ = fitted
    assert model.C_ in model.Cs
    assert model.cv_scores_.shape == (len(model.Cs),)
    assert np.all((model.cv_scores_ >= 0) & (model.cv_scores_ <= 1))
    assert model.C_ == model.Cs[int(np.argmax(model.cv_scores_))]
    given = LinearClassifier(C=0.5).fit(*separable())
    assert given.C_ == 0.5 and np.all(np.isnan(given.cv_scores_))


def test_small_classes_use_fewer_folds_or_a_fixed_c():
    X, y = separable(n_per_class=2)
    model = LinearClassifier(cv=5).fit(X, y)  # 2 clips per class: 2 folds
    assert model.C_ in model.Cs and not np.any(np.isnan(model.cv_scores_))
    X1, y1 = np.concatenate([X, X[:1] + 5.0]), np.concatenate([y, ["sit"]])
    with pytest.warns(UserWarning, match=r"\['sit'\] have a single training clip"):
        lonely = LinearClassifier().fit(X1, y1)
    assert lonely.C_ == 1.0 and lonely.classes_.size == 4


def test_same_random_state_gives_identical_model(fitted):
    model, X, y = fitted
    again = LinearClassifier().fit(X, y)
    for name, value in model.get_state().items():
        np.testing.assert_array_equal(value, again.get_state()[name])


def test_state_round_trip_through_json_and_npz(fitted, tmp_path):
    model, X, _ = fitted
    params = json.loads(json.dumps(model.get_params()))
    np.savez(tmp_path / "svm.npz", **model.get_state())
    with np.load(tmp_path / "svm.npz", allow_pickle=False) as data:
        state = {name: data[name] for name in data.files}
    rebuilt = LinearClassifier.from_state(params, state)
    np.testing.assert_array_equal(rebuilt.decision_function(X), model.decision_function(X))
    assert rebuilt.C_ == model.C_ and list(rebuilt.classes_) == list(CLASSES)


def test_bad_inputs_name_the_argument(fitted):
    model, X, y = fitted
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearClassifier().fit(X, ["run"] * len(X))
    with pytest.raises(ValueError, match="one label per row of X"):
        LinearClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError, match="X has 3 columns, expected 20"):
        model.decision_function(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        model.decision_function(np.full((1, 20), np.nan))


def test_evaluate_scores_on_a_hand_made_case():
    classes = ["a", "b", "c"]
    y_true = ["a", "a", "b", "b", "c"]
    scores = np.array(
        [
            [0.9, 0.1, 0.0],  # a → a
            [0.2, 0.7, 0.1],  # a → b
            [0.1, 0.8, 0.1],  # b → b
            [0.3, 0.6, 0.1],  # b → b
            [0.1, 0.2, 0.7],  # c → c
        ]
    )
    result = evaluate_scores(y_true, scores, classes)
    assert result["n_clips"] == 5
    assert result["accuracy"] == pytest.approx(4 / 5)
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    # a: ranking 0.9(a) 0.3(b) 0.2(a) → AP = (1/1 + 2/3) / 2; b: 0.8 0.7(a) 0.6 → (1 + 2/3) / 2
    ap = result["per_class_ap"]
    assert ap["a"] == pytest.approx((1 + 2 / 3) / 2)
    assert ap["b"] == pytest.approx((1 + 2 / 3) / 2)
    assert ap["c"] == pytest.approx(1.0)
    assert result["mean_ap"] == pytest.approx((5 / 6 + 5 / 6 + 1) / 3)
    json.dumps(result)  # plain numbers and lists only


def test_evaluate_scores_skips_classes_without_clips_in_mean_ap():
    result = evaluate_scores(["a", "b"], np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), list("abc"))
    assert result["per_class_ap"]["c"] is None
    assert math.isclose(result["mean_ap"], 1.0)
    assert result["confusion_matrix"][2] == [0, 0, 0]
    with pytest.raises(ValueError, match="not in classes"):
        evaluate_scores(["d"], np.zeros((1, 3)), list("abc"))
    with pytest.raises(ValueError, match="scores must have shape"):
        evaluate_scores(["a"], np.zeros((1, 2)), list("abc"))
    with pytest.raises(ValueError, match="not one str"):
        evaluate_scores(["a"], np.zeros((1, 3)), "abc")


@pytest.mark.parametrize("classes", [CLASSES, CLASSES[:2]])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_dual_solution_is_liblinears_linear_svm(classes, class_weight):
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(5)
    X, y = separable(n_per_class=15, dim=300, classes=classes)
    X = X + 1.5 * rng.standard_normal(X.shape).astype(np.float32)  # overlapping: margins bind
    keep = np.r_[0 : len(y) - 7]  # unequal classes, so the weights matter
    X, y = X[keep], y[keep]
    ours = LinearClassifier(C=0.3, class_weight=class_weight).fit(X, y)
    theirs = LinearSVC(C=0.3, class_weight=class_weight, tol=1e-8, max_iter=100_000).fit(X, y)
    coef = ours.coef_[1:] if len(classes) == 2 else ours.coef_
    intercept = ours.intercept_[1:] if len(classes) == 2 else ours.intercept_
    np.testing.assert_allclose(coef, theirs.coef_, atol=1e-5 * np.abs(theirs.coef_).max())
    np.testing.assert_allclose(intercept, theirs.intercept_, atol=1e-5)
