"""Fisher vectors: matrix-product Ψ against per-descriptor sums, normalisation, relevance step."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actionlrp import fisher
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import FEATURE_TYPES, LocalDescriptors, describe
from actionlrp.errors import ActionLRPError, EmptyClipError
from actionlrp.fisher import FisherEncoder, FisherVector, power_l2_normalise
from actionlrp.fisher_lrp import descriptor_relevance, epsilon_relevance
from actionlrp.synthetic import moving_square_clip

DIMS = {"hof": 7, "mbhx": 5, "mbhy": 6}
K = 4


def mixture_clip(rng: np.random.Generator, n: int, centres: dict) -> LocalDescriptors:
    """n descriptors per type drawn from a 4-component Gaussian mixture, float32."""
    features = {}
    for f, d in DIMS.items():
        labels = rng.integers(0, K, n)
        mu, sigma = centres[f]
        features[f] = (mu[labels] + sigma[labels] * rng.standard_normal((n, d))).astype(np.float32)
    boxes = np.zeros((n, 6), np.int32)
    return LocalDescriptors(features, boxes)


@pytest.fixture(scope="module")
def clips() -> list[LocalDescriptors]:
    rng = np.random.default_rng(7)
    centres = {
        f: (3.0 * rng.standard_normal((K, d)), rng.uniform(0.3, 1.5, (K, d)))
        for f, d in DIMS.items()
    }
    return [mixture_clip(rng, n, centres) for n in (60, 90, 45, 120, 75)]


@pytest.fixture(scope="module")
def encoder(clips) -> FisherEncoder:
    return FisherEncoder(n_components=K, max_iter=50).fit(clips)


@pytest.fixture(scope="module")
def pca_encoder(clips) -> FisherEncoder:
    return FisherEncoder(n_components=K, pca_dims=3, max_iter=50).fit(clips)


def brute_force_z(enc: FisherEncoder, desc: LocalDescriptors, gamma=None) -> np.ndarray:
    """z_ld, descriptor by descriptor and component by component (design §3), shape (N, D)."""
    n = len(desc)
    blocks = []
    for f in enc.feature_types_:
        x = enc.project(desc, f)
        g = enc.soft_assignments(desc, f) if gamma is None else gamma[f]
        mu, sigma, pi = enc.means_[f], enc.sigmas_[f], enc.weights_[f]
        k, d = mu.shape
        z_mean, z_var = np.empty((n, k, d)), np.empty((n, k, d))
        for ell in range(n):
            for c in range(k):
                u = (x[ell] - mu[c]) / sigma[c]
                z_mean[ell, c] = g[ell, c] * u / (n * math.sqrt(pi[c]))
                z_var[ell, c] = g[ell, c] * (u**2 - 1.0) / (n * math.sqrt(2.0 * pi[c]))
        blocks += [z_mean.reshape(n, -1), z_var.reshape(n, -1)]
    return np.concatenate(blocks, axis=1)


def direct_posteriors(enc: FisherEncoder, desc: LocalDescriptors, f: str) -> np.ndarray:
    """γ in float64 straight from the Gaussian densities, without the GEMM expansion."""
    x = enc.project(desc, f)
    mu, sigma, pi = enc.means_[f], enc.sigmas_[f], enc.weights_[f]
    u = (x[:, None, :] - mu[None]) / sigma[None]
    log_p = np.log(pi) - np.log(sigma).sum(axis=1) - 0.5 * (u**2).sum(axis=2)
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    return p / p.sum(axis=1, keepdims=True)


def permuted(desc: LocalDescriptors, order: np.ndarray) -> LocalDescriptors:
    return LocalDescriptors({f: x[order] for f, x in desc.features.items()}, desc.boxes[order])


def mixture_like(enc: FisherEncoder) -> LocalDescriptors:
    rng = np.random.default_rng(0)
    return LocalDescriptors(
        {f: enc.means_[f][rng.integers(0, K, 10)].astype(np.float32) for f in enc.feature_types_}
    )


def empty_clip() -> LocalDescriptors:
    return LocalDescriptors({f: np.zeros((0, d), np.float32) for f, d in DIMS.items()})


# --------------------------------------------------------------------------------------------
# Forward: Ψ and Φ


def test_fitted_state_has_documented_shapes(encoder):
    assert encoder.dims_ == DIMS
    assert encoder.fv_dim_ == sum(2 * K * d for d in DIMS.values())
    start = 0
    for f in FEATURE_TYPES:
        assert encoder.weights_[f].shape == (K,)
        assert encoder.means_[f].shape == encoder.sigmas_[f].shape == (K, DIMS[f])
        assert np.all(encoder.sigmas_[f] > 0)
        assert encoder.blocks_[f] == slice(start, start + 2 * K * DIMS[f])
        start += 2 * K * DIMS[f]
    assert math.isclose(encoder.weights_["hof"].sum(), 1.0)
    assert encoder.pca_mean_ == {} and encoder.pca_components_ == {}


def test_psi_from_matrix_products_equals_sum_of_per_descriptor_contributions(encoder, clips):
    desc = clips[0]
    fv = encoder.encode(desc)
    assert isinstance(fv, FisherVector) and fv.n_descriptors == len(desc)
    assert fv.psi.shape == fv.phi.shape == (encoder.fv_dim_,)
    assert fv.psi.dtype == np.float64
    z = brute_force_z(encoder, desc)
    np.testing.assert_allclose(fv.psi, z.sum(axis=0), rtol=1e-10, atol=1e-13)


def test_soft_assignments_match_float64_posteriors_to_float32_precision(encoder, clips):
    desc = clips[1]
    gamma = {f: direct_posteriors(encoder, desc, f) for f in FEATURE_TYPES}
    for f in FEATURE_TYPES:
        g = encoder.soft_assignments(desc, f)
        assert g.shape == (len(desc), K)
        np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(g, gamma[f], atol=1e-5)
    psi = encoder.encode(desc).psi
    reference = brute_force_z(encoder, desc, gamma).sum(axis=0)
    np.testing.assert_allclose(psi, reference, atol=1e-5 * np.abs(reference).max())


def test_chunked_products_equal_one_block(encoder, clips, monkeypatch):
    desc = clips[3]
    a = np.random.default_rng(1).standard_normal(encoder.fv_dim_)
    whole = encoder.encode(desc).psi
    relevance = descriptor_relevance(encoder, desc, a)
    monkeypatch.setattr(fisher, "CHUNK_ROWS", 7)
    np.testing.assert_allclose(encoder.encode(desc).psi, whole, rtol=1e-10, atol=1e-14)
    for f, r in descriptor_relevance(encoder, desc, a).items():
        np.testing.assert_allclose(r, relevance[f], rtol=1e-10, atol=1e-14)


def test_phi_has_unit_norm_and_the_sign_pattern_of_psi(encoder, clips):
    fv = encoder.encode(clips[2])
    assert math.isclose(np.linalg.norm(fv.phi), 1.0, rel_tol=1e-12)
    np.testing.assert_array_equal(np.sign(fv.phi), np.sign(fv.psi))
    root = np.sign(fv.psi) * np.sqrt(np.abs(fv.psi))
    np.testing.assert_allclose(fv.phi, root / np.linalg.norm(root), rtol=1e-12)


def test_normalising_a_zero_psi_leaves_zeros():
    np.testing.assert_array_equal(power_l2_normalise(np.zeros(5)), np.zeros(5))


def test_transform_stacks_phi_rows_as_float32(encoder, clips):
    phi = encoder.transform(clips[:3])
    assert phi.shape == (3, encoder.fv_dim_) and phi.dtype == np.float32
    for row, desc in zip(phi, clips[:3], strict=True):
        np.testing.assert_allclose(row, encoder.encode(desc).phi, rtol=1e-6, atol=1e-7)


def test_reordering_descriptors_leaves_psi_and_relevance_unchanged(encoder, clips):
    desc = clips[3]
    order = np.random.default_rng(3).permutation(len(desc))
    shuffled = permuted(desc, order)
    fv, fv_shuffled = encoder.encode(desc), encoder.encode(shuffled)
    np.testing.assert_allclose(fv_shuffled.psi, fv.psi, rtol=1e-10, atol=1e-14)
    a = np.random.default_rng(4).standard_normal(encoder.fv_dim_)
    r, r_shuffled = (
        descriptor_relevance(encoder, desc, a),
        descriptor_relevance(encoder, shuffled, a),
    )
    for f in FEATURE_TYPES:
        np.testing.assert_allclose(r_shuffled[f], r[f][order], rtol=1e-10, atol=1e-14)


def test_empty_clip_raises_empty_clip_error(encoder):
    empty = empty_clip()
    assert issubclass(EmptyClipError, ActionLRPError)
    with pytest.raises(EmptyClipError, match="N = 0"):
        encoder.encode(empty)
    with pytest.raises(EmptyClipError, match=r"descriptors\[1\]"):
        encoder.transform([mixture_like(encoder), empty])
    with pytest.raises(EmptyClipError):
        encoder.soft_assignments(empty, "hof")
    with pytest.raises(EmptyClipError):
        epsilon_relevance(encoder, empty, np.ones(encoder.fv_dim_), 0.1)


def test_bad_inputs_name_the_argument(encoder, clips):
    desc = clips[0]
    with pytest.raises(ValueError, match="has no 'mbhy'"):
        encoder.encode(LocalDescriptors({f: desc.features[f] for f in ("hof", "mbhx")}))
    wrong = dict(desc.features, hof=np.zeros((len(desc), 3), np.float32))
    with pytest.raises(ValueError, match=r"features\['hof'\] has 3 dims, expected 7"):
        encoder.encode(LocalDescriptors(wrong))
    with pytest.raises(ValueError, match="a must have shape"):
        descriptor_relevance(encoder, desc, np.ones(5))
    with pytest.raises(ValueError, match="feature must be one of"):
        encoder.soft_assignments(desc, "hog")
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_relevance(encoder, desc, np.ones(encoder.fv_dim_), -1.0)
    with pytest.raises(ValueError, match="fewer than n_components=500"):
        FisherEncoder(n_components=500).fit(clips[:1])
    with pytest.raises(ValueError, match="pca_dims names feature types"):
        FisherEncoder(n_components=K, pca_dims={"hog": 3}).fit(clips)
    with pytest.raises(ValueError, match="pca_dims for 'mbhx'"):
        FisherEncoder(n_components=K, pca_dims=6).fit(clips)
    with pytest.raises(ValueError, match="no clips"):
        FisherEncoder(n_components=K).fit([])


# --------------------------------------------------------------------------------------------
# Backward: relevance of descriptors


def test_descriptor_relevance_sums_to_psi_times_a_per_block(encoder, clips):
    desc = clips[4]
    a = np.random.default_rng(5).standard_normal(encoder.fv_dim_)
    psi = encoder.encode(desc).psi
    relevance = descriptor_relevance(encoder, desc, a)
    for f, r in relevance.items():
        assert r.shape == (len(desc),)
        block = encoder.blocks_[f]
        expected = float(psi[block] @ a[block])
        assert math.isclose(r.sum(), expected, rel_tol=1e-10, abs_tol=1e-14)


def test_descriptor_relevance_equals_brute_force_per_descriptor(encoder, clips):
    desc = clips[0]
    a = np.random.default_rng(6).standard_normal(encoder.fv_dim_)
    z = brute_force_z(encoder, desc)
    relevance = descriptor_relevance(encoder, desc, a)
    for f, r in relevance.items():
        block = encoder.blocks_[f]
        np.testing.assert_allclose(r, z[:, block] @ a[block], rtol=1e-9, atol=1e-14)


def test_epsilon_rule_uses_mean_absolute_psi_as_the_scale(encoder, clips):
    desc = clips[1]
    r3 = np.random.default_rng(8).standard_normal(encoder.fv_dim_)
    psi = encoder.encode(desc).psi
    epsilon = 0.5
    eps_abs = epsilon * np.abs(psi).mean()
    a = r3 / (psi + eps_abs * np.where(psi >= 0, 1.0, -1.0))
    r2, absorbed = epsilon_relevance(encoder, desc, r3, epsilon)
    expected = descriptor_relevance(encoder, desc, a)
    for f in FEATURE_TYPES:
        np.testing.assert_allclose(r2[f], expected[f], rtol=1e-12, atol=1e-15)
    total = sum(r.sum() for r in r2.values())
    assert math.isclose(absorbed, r3.sum() - total, rel_tol=1e-12, abs_tol=1e-12)


def test_epsilon_to_zero_conserves_relevance(encoder, clips):
    desc = clips[2]
    r3 = np.random.default_rng(9).standard_normal(encoder.fv_dim_)
    scale = np.abs(r3).sum()
    absorbed = [abs(epsilon_relevance(encoder, desc, r3, e)[1]) for e in (1.0, 1e-2, 1e-4, 1e-6)]
    assert absorbed[0] > absorbed[-1]
    assert absorbed[-1] < 1e-4 * scale
    _, exact = epsilon_relevance(encoder, desc, r3, 0.0)
    assert abs(exact) < 1e-8 * scale


def test_positive_fv_relevance_stays_positive_at_large_epsilon(encoder, clips):
    """R(3) proportional to Ψ gives z_ld-weighted shares; a huge ε absorbs almost all of it."""
    desc = clips[2]
    psi = encoder.encode(desc).psi
    r2, absorbed = epsilon_relevance(encoder, desc, psi, 1e6)
    assert abs(absorbed - psi.sum()) < 1e-5 * np.abs(psi).sum()


# --------------------------------------------------------------------------------------------
# Fitting, determinism, state, PCA


def test_same_random_state_gives_identical_encoder_and_fisher_vector(clips, encoder):
    again = FisherEncoder(n_components=K, max_iter=50).fit(clips)
    state, state_again = encoder.get_state(), again.get_state()
    assert state.keys() == state_again.keys()
    for name in state:
        np.testing.assert_array_equal(state[name], state_again[name])
    np.testing.assert_array_equal(encoder.encode(clips[0]).psi, again.encode(clips[0]).psi)


def test_gmm_parameters_are_float64_and_those_of_the_mixture_fit(clips):
    from actionlrp.gmm import DiagonalGMM

    enc = FisherEncoder(n_components=K, max_iter=20, feature_types=("mbhx",)).fit(clips)
    x = np.concatenate([c.features["mbhx"] for c in clips]).astype(np.float32)
    x = x[np.argsort(np.random.default_rng(0).random(len(x)), kind="stable")]
    reference = DiagonalGMM(K, reg_covar=enc.reg_covar, max_iter=20).fit(x)
    assert enc.weights_["mbhx"].dtype == np.float64
    assert enc.weights_["mbhx"].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(enc.means_["mbhx"], reference.means_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(enc.sigmas_["mbhx"], np.sqrt(reference.covariances_), rtol=1e-6)


def test_sampling_does_not_depend_on_how_descriptors_split_into_clips(clips):
    whole = LocalDescriptors.concatenate(list(clips))
    for max_samples in (100, 10_000):  # 100 < total / 2: the one-pass pruning runs
        split = FisherEncoder(n_components=K, max_samples=max_samples, max_iter=20).fit(clips)
        joined = FisherEncoder(n_components=K, max_samples=max_samples, max_iter=20).fit([whole])
        assert (
            split.n_training_samples_ == joined.n_training_samples_ == min(max_samples, len(whole))
        )
        for name, value in split.get_state().items():
            np.testing.assert_array_equal(value, joined.get_state()[name])


def test_state_round_trip_through_json_and_npz_gives_identical_fisher_vectors(
    pca_encoder, clips, tmp_path
):
    params = json.loads(json.dumps(pca_encoder.get_params()))
    np.savez(tmp_path / "fisher.npz", **pca_encoder.get_state())
    with np.load(tmp_path / "fisher.npz", allow_pickle=False) as data:
        state = {name: data[name] for name in data.files}
    rebuilt = FisherEncoder.from_state(params, state)
    assert rebuilt.feature_types_ == pca_encoder.feature_types_
    assert rebuilt.blocks_ == pca_encoder.blocks_
    for desc in clips[:2]:
        np.testing.assert_array_equal(rebuilt.encode(desc).psi, pca_encoder.encode(desc).psi)
    with pytest.raises(ValueError, match="do not agree with pca_dims=4"):
        FisherEncoder.from_state(dict(params, pca_dims=4), state)
    state.pop("mbhx/sigmas")
    with pytest.raises(ValueError, match="missing array 'mbhx/sigmas'"):
        FisherEncoder.from_state(params, state)


def test_pca_option_projects_to_the_requested_dimensions(pca_encoder, clips):
    assert pca_encoder.dims_ == {f: 3 for f in FEATURE_TYPES}
    assert pca_encoder.fv_dim_ == 3 * 2 * K * 3
    for f in FEATURE_TYPES:
        components = pca_encoder.pca_components_[f]
        assert components.shape == (3, DIMS[f])
        np.testing.assert_allclose(components @ components.T, np.eye(3), atol=1e-10)
    desc = clips[0]
    z = brute_force_z(pca_encoder, desc)
    np.testing.assert_allclose(pca_encoder.encode(desc).psi, z.sum(axis=0), rtol=1e-10, atol=1e-13)
    per_type = FisherEncoder(n_components=K, pca_dims={"hof": 4}, max_iter=20).fit(clips)
    assert per_type.dims_ == {"hof": 4, "mbhx": 5, "mbhy": 6}
    assert set(per_type.pca_components_) == {"hof"}


# --------------------------------------------------------------------------------------------
# A real clip, end to end


def test_real_clip_encodes_and_conserves_relevance(clip_dir):
    clip = moving_square_clip(clip_dir / "fisher_square.mp4", n_frames=40)
    desc = describe(read_motion_field(clip.path))
    assert len(desc) > 100
    enc = FisherEncoder(n_components=8, pca_dims=16, max_iter=30).fit([desc])
    fv = enc.encode(desc)
    assert fv.psi.shape == (3 * 2 * 8 * 16,) and np.all(np.isfinite(fv.psi))
    assert math.isclose(np.linalg.norm(fv.phi), 1.0, rel_tol=1e-12)
    w = np.random.default_rng(0).standard_normal(enc.fv_dim_)
    r3 = w * fv.phi + 0.3 / enc.fv_dim_  # design §5: R(3)_d = w_d Φ_d + b / D
    psi, sign = fv.psi, np.where(fv.psi >= 0, 1.0, -1.0)
    for epsilon in (1e-1, 1e-3, 1e-6):
        r2, absorbed = epsilon_relevance(enc, desc, r3, epsilon)
        assert {f: r.shape for f, r in r2.items()} == {f: (len(desc),) for f in FEATURE_TYPES}
        total = sum(r.sum() for r in r2.values())
        assert math.isclose(absorbed, r3.sum() - total, rel_tol=1e-9, abs_tol=1e-12)
        # Σ_l z_ld = Ψ_d, so what the stabiliser keeps is Σ_d R(3)_d ε s_d / (Ψ_d + ε s_d)
        eps_abs = epsilon * np.abs(psi).mean()
        kept = float(np.sum(r3 * eps_abs * sign / (psi + eps_abs * sign)))
        assert math.isclose(absorbed, kept, rel_tol=1e-6, abs_tol=1e-9 * np.abs(r3).sum())


def test_em_stopping_at_max_iter_is_recorded_not_warned_raw(clips):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from actionlrp.fisher import unconverged_note

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder = FisherEncoder(n_components=4, max_iter=1, max_samples=2000).fit(clips)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert set(encoder.converged_) == set(FEATURE_TYPES)
    assert not any(encoder.converged_.values())  # one EM step cannot settle
    note = unconverged_note([f for f, ok in encoder.converged_.items() if not ok], 1)
    assert note.startswith("note: the GMM of hof, mbhx, mbhy stopped at max_iter = 1")
    assert unconverged_note([], 100) is None


def test_the_encoder_encodes_every_type_the_descriptors_have_unless_told(clips, tmp_path):
    rng = np.random.default_rng(7)
    extra = [
        LocalDescriptors({**c.features, "hog": rng.random((len(c), 3)).astype(np.float32)}, c.boxes)
        for c in clips
    ]
    assert tuple(DIMS) == FEATURE_TYPES
    every = FisherEncoder(n_components=K, max_iter=5).fit(extra)
    assert every.feature_types is None and every.feature_types_ == (*FEATURE_TYPES, "hog")
    assert every.fv_dim_ == 2 * K * (sum(DIMS.values()) + 3)
    chosen = FisherEncoder(n_components=K, max_iter=5, feature_types=FEATURE_TYPES).fit(extra)
    assert chosen.feature_types_ == FEATURE_TYPES
    assert chosen.fv_dim_ == 2 * K * sum(DIMS.values())
    rebuilt = FisherEncoder.from_state(every.get_params(), every.get_state())
    assert rebuilt.feature_types_ == every.feature_types_
    np.testing.assert_array_equal(rebuilt.transform(extra[:2]), every.transform(extra[:2]))
