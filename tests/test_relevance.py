"""LRP from the SVM score down to frames: conservation at every layer (DESIGN §5)."""

from __future__ import annotations

import numpy as np
import pytest

from actionlrp import synthetic
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import LocalDescriptors, describe
from actionlrp.model import ActionModel
from actionlrp.relevance import explain, relevance_fv
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
    model = ActionModel(n_components=4, max_samples=5000, n_jobs=1, progress=False)
    model.fit_descriptors(descs, labels)
    return model, fields, descs, labels


def test_fv_relevance_sums_to_the_score_for_every_class(setup):
    model, fields, descs, _ = setup
    phi = model.encoder_.encode(descs[0]).phi
    scores = model.classifier_.decision_function(phi[None])[0]
    for c in range(len(model.classes_)):
        r3 = relevance_fv(phi, model.classifier_.coef_[c], model.classifier_.intercept_[c])
        assert r3.sum() == pytest.approx(scores[c], abs=1e-9)


@pytest.mark.parametrize("fine", [False, True])
def test_voxel_relevance_conserves_descriptor_relevance(setup, fine):
    model, fields, descs, _ = setup
    for cls in model.classes_:
        e = explain(model, fields[1], descs[1], class_name=cls, fine=fine)
        r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
        assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9, abs=1e-12)
        assert e.frame_relevance.sum() == pytest.approx(r2_total, rel=1e-9, abs=1e-12)
        assert e.relevance_fv.sum() == pytest.approx(e.score, abs=1e-9)
        assert e.absorbed == pytest.approx(e.score - r2_total, abs=1e-9)
        assert sum(e.feature_relevance.values()) == pytest.approx(r2_total)


def test_epsilon_to_zero_conserves_fv_relevance(setup):
    model, fields, descs, _ = setup
    runs = [explain(model, fields[0], descs[0], epsilon=eps) for eps in (1.0, 0.1, 1e-3, 1e-9)]
    absorbed = [abs(e.absorbed) for e in runs]
    assert absorbed == sorted(absorbed, reverse=True)
    scale = np.abs(runs[0].relevance_fv).sum()
    assert absorbed[0] > 1e-3 * scale  # a large ε does absorb
    assert absorbed[-1] < 1e-6 * scale  # Σ R(2) → Σ R(3) as ε → 0


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
    e = explain(model, fields[0], descs[0], fine=True)  # "right"
    r1 = np.clip(e.relevance_voxels, 0, None)
    column_share = r1.sum(axis=(0, 1))
    # The square starts near x = 30–70 px and moves 2 px/frame right over 30 frames.
    assert column_share[3:13].sum() > 0.6 * column_share.sum()


def test_unknown_class_is_refused(setup):
    model, fields, descs, _ = setup
    with pytest.raises(ValueError, match="not one of the model's"):
        explain(model, fields[0], descs[0], class_name="swim")
