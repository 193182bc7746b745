"""The diagonal GMM's EM against scikit-learn's, on mixtures with known components."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from actionlrp.gmm import DiagonalGMM

K, D = 6, 5


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(3)
    means = 6.0 * rng.standard_normal((K, D))
    sigmas = rng.uniform(0.3, 1.2, (K, D))
    weights = rng.dirichlet(np.full(K, 5.0))
    labels = rng.choice(K, 20_000, p=weights)
    x = means[labels] + sigmas[labels] * rng.standard_normal((labels.size, D))
    return x.astype(np.float32), means, sigmas, weights


def _matched(found: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Index of the found component nearest each true one."""
    return np.argmin(((true[:, None, :] - found[None, :, :]) ** 2).sum(-1), axis=1)


def test_recovers_the_components_of_a_known_mixture(mixture):
    x, means, sigmas, weights = mixture
    gmm = DiagonalGMM(K, random_state=0).fit(x)
    match = _matched(gmm.means_, means)
    assert sorted(match) == list(range(K))
    np.testing.assert_allclose(gmm.means_[match], means, atol=0.05)
    np.testing.assert_allclose(np.sqrt(gmm.covariances_[match]), sigmas, rtol=0.05)
    np.testing.assert_allclose(gmm.weights_[match], weights, atol=0.01)
    assert gmm.converged_ and gmm.weights_.sum() == pytest.approx(1.0)


def test_likelihood_equals_scikit_learns_fit(mixture):
    x = mixture[0]
    ours = DiagonalGMM(K, random_state=0).fit(x)
    theirs = GaussianMixture(K, covariance_type="diag", reg_covar=1e-4, random_state=0).fit(x)
    assert ours.lower_bound_ == pytest.approx(theirs.score(x), abs=2e-3)


def test_data_far_from_the_origin_fit_as_well_as_centred_data(mixture):
    x = mixture[0]
    centred = DiagonalGMM(K, random_state=0).fit(x)
    shifted = DiagonalGMM(K, random_state=0).fit(x + np.float32(1000.0))
    np.testing.assert_allclose(shifted.means_, centred.means_ + 1000.0, atol=0.02)
    np.testing.assert_allclose(shifted.covariances_, centred.covariances_, rtol=0.02)


def test_same_seed_same_numbers_and_max_iter_is_recorded(mixture):
    x = mixture[0]
    a = DiagonalGMM(K, random_state=1).fit(x)
    b = DiagonalGMM(K, random_state=1).fit(x)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    once = DiagonalGMM(K, max_iter=1, tol=0.0).fit(x)
    assert once.n_iter_ == 1 and not once.converged_


def test_fewer_rows_than_components_is_refused():
    with pytest.raises(ValueError, match="at least n_components"):
        DiagonalGMM(8).fit(np.zeros((5, 2), np.float32))
