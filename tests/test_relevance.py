"""LRP from the SVM score down to frames: the layer walk, rules, conservation (design §5)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import motion_model

from actionlrp import synthetic
from actionlrp.classifier import relevance_fv
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import DescriptorParams, LocalDescriptors, describe
from actionlrp.errors import UnknownClassError
from actionlrp.fisher_lrp import bin_relevance, epsilon_relevance
from actionlrp.model import ActionModel
from actionlrp.relevance import explain
from actionlrp.rules import FINE_ZERO, PAPER, Rule, get_rule
from actionlrp.synthetic import SyntheticObject


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 3-class model (right / down / still) and one clip of each, with fields."""
    folder = tmp_path_factory.mktemp("lrp")
    motions = {"right": (2.0, 0.0), "down": (0.0, 2.0), "still": (0.0, 0.0)}
    fields, descs, labels = [], [], []
    for i in range(9):
        label = list(motions)[i % 3]
        obj = SyntheticObject(
            "translate", size=40, velocity=motions[label], centre=(50.0 + 3 * i, 40.0)
        )
        clip = synthetic.make_clip(
            folder / f"{label}_{i}.mp4", [obj], width=128, height=96, n_frames=30, seed=i
        )
        field = read_motion_field(clip.path)
        fields.append(field)
        descs.append(describe(field))
        labels.append(label)
    model = motion_model(4)
    model.fit_descriptors(descs, labels)
    return model, fields, descs, labels


def test_fv_relevance_sums_to_the_score_for_every_class(setup):
    model, fields, descs, _ = setup
    phi = model.encoder_.encode(descs[0]).phi
    scores = model.classifier_.decision_function(phi[None])[0]
    for c in range(len(model.classes_)):
        r3 = relevance_fv(phi, model.classifier_.coef_[c], model.classifier_.intercept_[c])
        assert r3.sum() == pytest.approx(scores[c], abs=1e-9)


@pytest.mark.parametrize("rule", ["paper", "fine", "fine-zero", Rule(histogram="flat")])
def test_voxel_relevance_conserves_descriptor_relevance(setup, rule):
    model, fields, descs, _ = setup
    for cls in model.classes_:
        e = explain(model, fields[1], descs[1], class_name=cls, rule=rule)
        r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
        assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9, abs=1e-12)
        assert e.frame_relevance.sum() == pytest.approx(r2_total, rel=1e-9, abs=1e-12)
        assert e.relevance_fv.sum() == pytest.approx(e.score, abs=1e-9)
        assert e.absorbed == pytest.approx(e.score - r2_total, abs=1e-9)
        assert sum(e.feature_relevance.values()) == pytest.approx(r2_total)


def test_epsilon_to_zero_conserves_fv_relevance(setup):
    model, fields, descs, _ = setup
    runs = [
        explain(model, fields[0], descs[0], rule=get_rule(PAPER, eps))
        for eps in (1.0, 0.1, 1e-3, 1e-9)
    ]
    absorbed = [abs(e.absorbed) for e in runs]
    assert absorbed[2] > absorbed[3]  # ε → 0: |absorbed| need not shrink monotonically before
    scale = np.abs(runs[0].relevance_fv).sum()
    assert absorbed[0] > 1e-3 * scale  # a large ε does absorb
    assert absorbed[-1] < 1e-4 * scale  # Σ R(2) → Σ R(3) as ε → 0


def test_predicted_class_is_explained_by_default(setup):
    model, fields, descs, labels = setup
    for i in range(3):
        e = explain(model, fields[i], descs[i])
        assert e.class_name == labels[i]
        assert e.score == pytest.approx(model.decision_function_descriptors([descs[i]])[0].max())


def test_reordering_descriptors_leaves_the_relevance_unchanged(setup):
    model, fields, descs, _ = setup
    d = descs[0]
    order = np.random.default_rng(0).permutation(len(d))
    shuffled = LocalDescriptors({k: v[order] for k, v in d.features.items()}, d.boxes[order])
    a = explain(model, fields[0], d)
    b = explain(model, fields[0], shuffled)
    assert np.allclose(a.relevance_voxels, b.relevance_voxels, atol=1e-9)
    for f in a.relevance_descriptors:
        assert np.allclose(a.relevance_descriptors[f][order], b.relevance_descriptors[f])


def test_relevance_of_a_moving_square_sits_on_the_square(setup):
    model, fields, descs, labels = setup
    e = explain(model, fields[0], descs[0], rule=FINE_ZERO)  # "right"
    r1 = np.clip(e.relevance_voxels, 0, None)
    column_share = r1.sum(axis=(0, 1))
    # The square starts near x = 30–70 px and moves 2 px/frame right over 30 frames.
    assert column_share[3:13].sum() > 0.6 * column_share.sum()


def test_unknown_class_is_refused(setup):
    model, fields, descs, _ = setup
    with pytest.raises(UnknownClassError, match="not one of the model's: down, right, still"):
        explain(model, fields[0], descs[0], class_name="swim")


# -------------------------------------------------------------------------------------------
# Finer than the paper: R(2) per histogram bin, then to the vectors that filled each bin


def _direct_bin_relevance(
    encoder, desc, r3, epsilon, live, reference=None, index=None, pca_rule="epsilon"
):
    """R(2)_li from the z_ld of design §3, descriptor by descriptor; with PCA, R(2) on the PCA
    dimensions, then the ε-rule (or the α1β0 rule about the sign of each x′_li) of the linear
    layer written out per descriptor and input bin.
    With ``reference`` (rows x⁰, ``index`` the row of each descriptor) every layer is taken
    from x⁰: z_ld − z⁰_ld over Ψ_d − Ψ⁰_d, and the PCA layer around x⁰."""
    n = len(desc)
    psi = encoder.encode(desc).psi
    if reference is not None:
        roots = LocalDescriptors(
            {f: x[index] for f, x in reference.features.items()}, reference.boxes[index]
        )
        psi = psi - encoder.encode(roots).psi  # Ψ⁰: the clip with every descriptor at its root
    eps_abs = epsilon * np.mean(np.abs(psi))
    a = np.where(live, r3 / (psi + eps_abs * np.where(psi >= 0, 1.0, -1.0)), 0.0)
    pca = bool(encoder.pca_components_)
    out = {}
    for f in encoder.blocks_:
        w = encoder.pca_components_[f] if pca else None
        x = desc.features[f].astype(np.float64)
        origin = (
            roots.features[f].astype(np.float64)
            if reference is not None
            else np.broadcast_to(encoder.pca_mean_[f] if pca else 0.0, x.shape)
        )
        r = _fv_terms(encoder, f, desc, x, a, n, w)
        if reference is not None:
            r = r - _fv_terms(encoder, f, roots, roots.features[f].astype(np.float64), a, n, w)
        if not pca:
            out[f] = r
            continue
        xp = (x - origin) @ w.T
        eps_pca = epsilon * np.mean(np.abs(xp))
        out[f] = np.zeros_like(x)
        for lo in range(n):
            for i in range(w.shape[0]):
                z = (x[lo] - origin[lo]) * w[i]
                if pca_rule == "alpha-beta":
                    agree = z * (1.0 if z.sum() >= 0 else -1.0) > 0
                    if agree.any():
                        out[f][lo] += np.where(agree, z, 0.0) / z[agree].sum() * r[lo, i]
                    continue
                share = r[lo, i] / (xp[lo, i] + eps_pca * (1.0 if xp[lo, i] >= 0 else -1.0))
                out[f][lo] += z * share
    return out


def _fv_terms(encoder, f, desc, x, a, n, w):
    """Σ_k of the z_lkd a_kd terms of each encoded dimension, per descriptor (design §3, §5)."""
    if w is not None:
        x = (x - encoder.pca_mean_[f]) @ w.T
    mu, sigma, pi = encoder.means_[f], encoder.sigmas_[f], encoder.weights_[f]
    k, d = mu.shape
    gamma = encoder.soft_assignments(desc, f)
    block = a[encoder.blocks_[f]]
    am, av = block[: k * d].reshape(k, d), block[k * d :].reshape(k, d)
    r = np.zeros((len(x), d))
    for lo in range(len(x)):
        u = (x[lo] - mu) / sigma  # (K, d)
        z_mean = gamma[lo][:, None] * u / (n * np.sqrt(pi)[:, None])
        z_var = gamma[lo][:, None] * (u**2 - 1) / (n * np.sqrt(2 * pi)[:, None])
        r[lo] = (z_mean * am + z_var * av).sum(axis=0)
    return r


def test_bin_relevance_equals_a_direct_per_descriptor_computation(setup):
    model, fields, descs, _ = setup
    encoder, clf = model.encoder_, model.classifier_
    desc = LocalDescriptors({f: v[:40] for f, v in descs[2].features.items()}, descs[2].boxes[:40])
    fv = encoder.encode(desc)
    live = np.abs(fv.psi) > 0
    r3 = relevance_fv(fv.phi, clf.coef_[0], clf.intercept_[0], live)
    bins, absorbed = bin_relevance(encoder, desc, r3, 0.1, psi=fv.psi, live=live)
    direct = _direct_bin_relevance(encoder, desc, r3, 0.1, live)
    per_descriptor, absorbed_2 = epsilon_relevance(encoder, desc, r3, 0.1, psi=fv.psi, live=live)
    for f in bins:
        assert np.allclose(bins[f], direct[f], rtol=1e-7, atol=1e-12)
        assert np.allclose(bins[f].sum(axis=1), per_descriptor[f], rtol=1e-9, atol=1e-14)
    assert absorbed == pytest.approx(absorbed_2, abs=1e-12)


@pytest.fixture(scope="module")
def pca_model(setup):
    """The setup's clips, encoded with a 12-dimensional PCA before the GMM."""
    _, _, descs, labels = setup
    return motion_model(4, 12).fit_descriptors(descs, labels)


def test_bin_relevance_through_pca_equals_a_direct_computation(setup, pca_model):
    descs = setup[2]
    encoder, clf = pca_model.encoder_, pca_model.classifier_
    desc = LocalDescriptors({f: v[:30] for f, v in descs[1].features.items()}, descs[1].boxes[:30])
    fv = encoder.encode(desc)
    live = np.abs(fv.psi) > 0
    r3 = relevance_fv(fv.phi, clf.coef_[1], clf.intercept_[1], live)
    direct = _direct_bin_relevance(encoder, desc, r3, 0.5, live)
    out = {f: np.full((len(desc), d), np.nan) for f, d in encoder.input_dims_.items()}
    kept = encoder.encode(desc, keep_assignments=True).assignments  # γ and x′ of the encoding
    assert kept is not None
    bins, absorbed = bin_relevance(
        encoder, desc, r3, 0.5, psi=fv.psi, live=live, out=out, assignments=kept
    )
    for f in bins:
        assert bins[f] is out[f]
        assert np.allclose(bins[f], direct[f], rtol=1e-6, atol=1e-12)
    assert absorbed == pytest.approx(r3.sum() - sum(d.sum() for d in direct.values()), abs=1e-9)


def test_bin_relevance_from_the_still_reference_equals_a_direct_computation(setup, pca_model):
    from actionlrp.descriptors_lrp import still_reference

    model, fields, descs, _ = setup
    for m in (model, pca_model):
        encoder, clf = m.encoder_, m.classifier_
        rows = np.r_[0:15, len(descs[0]) - 15 : len(descs[0])]  # moving and still cubes
        features = {f: v[rows] for f, v in descs[0].features.items()}
        desc = LocalDescriptors(features, descs[0].boxes[rows])
        reference, index = still_reference(fields[0], desc, m.params_)
        fv = encoder.encode(desc)
        live = np.abs(fv.psi) > 0
        r3 = relevance_fv(fv.phi, clf.coef_[0], clf.intercept_[0], live)
        bins, absorbed = bin_relevance(
            encoder,
            desc,
            r3,
            0.5,
            psi=fv.psi,
            live=live,
            reference=reference,
            reference_index=index,
        )
        direct = _direct_bin_relevance(encoder, desc, r3, 0.5, live, reference, index)
        for f in bins:
            assert np.allclose(bins[f], direct[f], rtol=1e-6, atol=1e-12)
        assert absorbed == pytest.approx(r3.sum() - sum(d.sum() for d in direct.values()), abs=1e-9)


def test_bin_relevance_through_pca_conserves_as_epsilon_goes_to_zero(setup, pca_model):
    _, fields, descs, _ = setup
    fine = [
        explain(pca_model, fields[0], descs[0], rule=get_rule(FINE_ZERO, eps))
        for eps in (0.1, 1e-9)
    ]
    for e in fine:
        r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
        assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9)
        assert e.absorbed == pytest.approx(e.score - r2_total, abs=1e-9)
    # Both ε-rules (FV and PCA) absorb less as ε → 0; x′ near 0 keeps a little at ε = 1e-9.
    assert abs(fine[1].absorbed) < 1e-4 * np.abs(fine[1].relevance_fv).sum()
    assert abs(fine[0].absorbed) > abs(fine[1].absorbed)


def _small_model(params, fields, labels) -> ActionModel:
    """A K = 2 model of the setup's clips described with ``params``."""
    model = ActionModel(
        n_components=2,
        pca_dims=None,
        descriptor_params=params,
        max_samples=5000,
        n_jobs=1,
        progress=False,
    )
    return model.fit_descriptors([describe(f, params) for f in fields], labels)


def test_fine_relevance_of_a_large_video_lands_on_its_own_grid(setup, tmp_path):

    obj = SyntheticObject("translate", size=48, velocity=(3.0, 0.0), centre=(80.0, 72.0))
    clip = synthetic.make_clip(tmp_path / "wide.mp4", [obj], width=336, height=144, n_frames=30)
    field = read_motion_field(clip.path)
    params = DescriptorParams(hog=False, max_width=160)
    _, fields, _, labels = setup
    model = _small_model(params, fields, labels)
    e = explain(model, field, describe(field, params), rule=FINE_ZERO)
    assert e.relevance_voxels.shape == field.grid_shape
    r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
    assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9)


def test_still_reference_gives_motionless_cubes_no_relevance(setup):
    from actionlrp.descriptors_lrp import still_reference
    from actionlrp.video import MotionField

    model = setup[0]
    flow = np.zeros((30, 12, 16, 2), np.float32)
    flow[:, 2:6, 3:7, 0] = 2.0  # a block moving right; everything else still
    field = MotionField(
        flow=flow,
        frame_types=np.array(["P"] * 30),
        has_vectors=np.ones(30, bool),
        timestamps=np.arange(30) / 25.0,
        width=128,
        height=96,
        fps=25.0,
        cell=8,
    )
    desc = describe(field, model.params_)
    reference, index = still_reference(field, desc, model.params_)
    assert len(reference) == 1 and (index == 0).all()
    still = np.all(
        [np.isclose(desc.features[f], reference.features[f][0]).all(axis=1) for f in desc.features],
        axis=0,
    )
    assert 0 < still.sum() < len(desc)
    for histogram in ("flat", "bins"):
        e = explain(model, field, desc, rule=Rule(epsilon=0.1, histogram=histogram, root="still"))
        r2 = sum(e.relevance_descriptors.values())
        assert np.abs(r2[still]).max() < 1e-12
        assert np.abs(r2[~still]).max() > 1e-6
        assert e.relevance_voxels.sum() == pytest.approx(r2.sum(), rel=1e-9)
    # ε → 0: all is passed on but the R(3) of dimensions no descriptor moves from the reference.
    e = explain(model, field, desc, rule=Rule(epsilon=1e-9, histogram="flat", root="still"))
    copies = LocalDescriptors(
        {f: np.repeat(x, len(desc), axis=0) for f, x in reference.features.items()},
        np.repeat(reference.boxes, len(desc), axis=0),
    )
    delta = model.encoder_.encode(desc).psi - model.encoder_.encode(copies).psi
    unmoved = np.abs(delta) <= 1e-12 * np.abs(delta).max()
    assert unmoved.any()
    assert e.absorbed == pytest.approx(e.relevance_fv[unmoved].sum(), rel=1e-2)


def test_unknown_rules_and_roots_are_refused(setup):
    model, fields, descs, _ = setup
    with pytest.raises(
        ValueError, match="unknown rule 'lrp'; the rules are: fine, paper, fine-zero"
    ):
        explain(model, fields[0], descs[0], rule="lrp")
    with pytest.raises(ValueError, match="root must be one of"):
        Rule(root="none")
    with pytest.raises(ValueError, match="epsilon"):
        Rule(epsilon=-1.0)


@pytest.mark.parametrize("rule", ["fine", "paper"])
def test_keeping_the_soft_assignments_changes_no_number(setup, monkeypatch, rule):
    import actionlrp.fisher

    model, fields, descs, _ = setup
    kept = explain(model, fields[1], descs[1], rule=rule)
    monkeypatch.setattr(actionlrp.fisher, "KEPT_ENTRIES", 0)  # computed again in each layer
    assert model.encoder_.encode(descs[1], keep_assignments=True).assignments is None
    fresh = explain(model, fields[1], descs[1], rule=rule)
    assert np.array_equal(kept.relevance_voxels, fresh.relevance_voxels)
    assert kept.absorbed == fresh.absorbed
    assert not hasattr(model.encoder_, "_memo")  # the forward state is returned, not kept


def test_the_walk_visits_every_layer_backwards_with_one_rule(setup, monkeypatch):
    model, fields, descs, _ = setup
    visited = []
    for layer in model.layers_:
        step = type(layer).relevance

        def spy(self, forward, r, rule, step=step):
            visited.append((type(self).__name__, rule.name))
            return step(self, forward, r, rule)

        monkeypatch.setattr(type(layer), "relevance", spy)
    explain(model, fields[0], descs[0], rule="paper")
    assert visited == [
        ("LinearClassifier", "paper"),
        ("FisherEncoder", "paper"),
        ("HistogramLayer", "paper"),
    ]


def test_the_svm_layer_explains_any_combination_of_class_scores(setup):
    from actionlrp.relevance import forward

    model, fields, descs, _ = setup
    state = forward(model, fields[0], descs[0])
    contrast = np.array([1.0, -1.0, 0.0])  # f_down − f_right
    r3 = model.classifier_.relevance(state, contrast, PAPER)
    assert r3.sum() == pytest.approx(state.scores[0] - state.scores[1], abs=1e-9)


def test_versus_explains_the_difference_of_two_scores(setup):
    model, fields, descs, _ = setup
    e = explain(model, fields[0], descs[0], class_name="right", versus="down")
    assert e.versus == "down"
    assert e.score == pytest.approx(e.scores["right"] - e.scores["down"], abs=1e-12)
    assert e.relevance_fv.sum() == pytest.approx(e.score, abs=1e-9)
    r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
    assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9)
    # the contrast is the difference of the two classes' explanations at the SVM layer
    right = explain(model, fields[0], descs[0], class_name="right", rule="paper")
    down = explain(model, fields[0], descs[0], class_name="down", rule="paper")
    both = explain(model, fields[0], descs[0], class_name="right", versus="down", rule="paper")
    np.testing.assert_allclose(
        both.relevance_fv, right.relevance_fv - down.relevance_fv, rtol=1e-9, atol=1e-12
    )
    with pytest.raises(UnknownClassError, match="not one of the model's: down, right, still"):
        explain(model, fields[0], descs[0], versus="swim")
    with pytest.raises(UnknownClassError, match="contrasted with itself"):
        explain(model, fields[0], descs[0], class_name="down", versus="down")


@pytest.mark.parametrize("rule", ["paper", "fine-zero", "fine"])
def test_absorbed_mass_bounds_the_net_absorbed_relevance(setup, rule):
    model, fields, descs, _ = setup
    masses = []
    for eps in (1e6, 1.0, 1e-9):
        e = explain(model, fields[0], descs[0], rule=get_rule(rule, eps))
        magnitude = np.abs(e.relevance_fv).sum()
        assert 0.0 <= e.absorbed_mass <= 1.0
        if rule == "paper":  # one ε-rule layer: |net| ≤ mass
            # up to round-off, amplified where a tiny Ψ_d passes a large a_d = R(3)_d / Ψ_d
            assert abs(e.absorbed) <= e.absorbed_mass * magnitude * (1 + 1e-9) + 1e-10
        masses.append(e.absorbed_mass)
    assert masses[0] > 0.99  # a huge ε keeps nearly everything
    assert masses[0] > masses[1] > masses[2]
    if rule != "fine":  # from the zero root all passes as ε → 0 but the unpopulated dimensions
        assert masses[2] < 1e-3


@pytest.mark.parametrize("root", ["zero", "still"])
def test_pca_layer_by_alpha_beta_equals_a_direct_computation_and_conserves(setup, pca_model, root):
    from actionlrp.descriptors_lrp import still_reference

    _, fields, descs, _ = setup
    encoder, clf = pca_model.encoder_, pca_model.classifier_
    rows = np.r_[0:12, len(descs[0]) - 12 : len(descs[0])]  # moving and still cubes
    features = {f: v[rows] for f, v in descs[0].features.items()}
    desc = LocalDescriptors(features, descs[0].boxes[rows])
    reference, index = (
        still_reference(fields[0], desc, pca_model.params_) if root == "still" else (None, None)
    )
    fv = encoder.encode(desc)
    live = np.abs(fv.psi) > 0
    r3 = relevance_fv(fv.phi, clf.coef_[0], clf.intercept_[0], live)
    bins, absorbed = bin_relevance(
        encoder,
        desc,
        r3,
        0.0,  # no ε at all: the FV layer passes everything on, and so must the PCA layer
        psi=fv.psi,
        live=live,
        reference=reference,
        reference_index=index,
        pca_rule="alpha-beta",
    )
    direct = _direct_bin_relevance(
        encoder, desc, r3, 0.0, live, reference, index, pca_rule="alpha-beta"
    )
    for f in bins:
        assert np.allclose(bins[f], direct[f], rtol=1e-6, atol=1e-12)
    assert absorbed == pytest.approx(r3.sum() - sum(d.sum() for d in direct.values()), abs=1e-9)
    if root == "zero":
        assert abs(absorbed) < 1e-9 * np.abs(r3).sum()


def test_two_scales_with_slice_normalisation_explain_and_share_by_scale(setup):
    from actionlrp.pages import summary

    params = DescriptorParams(
        hog=False, cube_px=(32, 48), stride_px=(16, 24), slice_normalization=True
    )
    _, fields, _, labels = setup
    model = _small_model(params, fields, labels)
    e = explain(model, fields[0], describe(fields[0], params))
    assert sorted(e.scale_relevance) == [32, 48]
    r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
    assert sum(e.scale_relevance.values()) == pytest.approx(r2_total, rel=1e-9)
    assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9)
    assert e.score - r2_total == pytest.approx(e.absorbed, abs=1e-9)
    assert set(summary(e)["scale_relevance"]) == {"32 px", "48 px"}


@pytest.fixture(scope="module")
def hog_model(setup):
    """A K = 2 model with HOG (PCA to 8 dims) on the setup's fields, given random luma
    histograms (a flat top-left corner: empty bins)."""
    import dataclasses

    params = DescriptorParams(hog=True)
    _, fields, _, labels = setup
    rng = np.random.default_rng(0)
    hog_fields = []
    for f in fields:
        hog = rng.gamma(1.0, 2.0, size=(*f.grid_shape, 8)).astype(np.float32)
        hog[:, :3, :4] = 0.0
        hog_fields.append(dataclasses.replace(f, hog=hog))
    model = ActionModel(
        n_components=2,
        pca_dims=8,
        descriptor_params=params,
        max_samples=5000,
        n_jobs=1,
        progress=False,
    )
    return model.fit_descriptors([describe(f, params) for f in hog_fields], labels), hog_fields


@pytest.mark.parametrize("rule", ["paper", "fine", "fine-zero"])
def test_hog_relevance_conserves_and_has_its_own_feature_share(hog_model, rule):
    from actionlrp.pages import summary

    model, fields = hog_model
    assert model.encoder_.feature_types == ("hof", "mbhx", "mbhy", "hog")
    e = explain(model, fields[0], describe(fields[0], model.params_), rule=rule)
    r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
    assert list(e.feature_relevance) == ["hof", "mbhx", "mbhy", "hog"]
    assert e.feature_relevance["hog"] != 0.0
    assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9)
    assert e.score - r2_total == pytest.approx(e.absorbed, abs=1e-9)
    by_feature = e.relevance_voxels_by_feature
    assert by_feature["hog"].sum() == pytest.approx(e.feature_relevance["hog"], rel=1e-9)
    assert set(summary(e)["feature_relevance"]) == {"hof", "mbhx", "mbhy", "hog"}
