"""The space-time pyramid: its cells, a Fisher-vector channel per cell, and relevance per cell."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import motion_model

from actionlrp.descriptors import LocalDescriptors, describe
from actionlrp.fisher import FisherEncoder
from actionlrp.fisher_lrp import bin_relevance, descriptor_relevance
from actionlrp.model import ActionModel
from actionlrp.pyramid import KL_GRIDS, Pyramid
from actionlrp.relevance import explain
from actionlrp.still_root import _roots

DIMS = {"hof": 7, "mbhx": 5}


def test_kantorov_laptev_pyramid_has_24_cells_over_16_atoms():
    pyramid = Pyramid()
    assert pyramid.grids == KL_GRIDS
    membership = pyramid.membership()
    assert membership.shape == (16, 24)
    assert (membership.sum(axis=1) == len(KL_GRIDS)).all()  # an atom lies in one cell per grid
    sizes = membership.sum(axis=0)
    assert sizes[0] == 16  # the whole clip
    assert list(sizes[1:5]) == [4, 4, 4, 4]  # the 2×2×1 cells: 4 atoms each
    assert len(pyramid.channel_names()) == 24
    assert pyramid.channel_names()[:2] == ["1x1x1 (0,0,0)", "2x2x1 (0,0,0)"]


def test_a_cube_lands_in_the_cells_that_hold_its_centre():
    pyramid = Pyramid()
    boxes = np.array(
        [
            [0, 15, 0, 32, 0, 32],  # first frames, top left
            [85, 100, 208, 240, 288, 320],  # last frames, bottom right
            [40, 55, 90, 122, 10, 42],  # middle rows (between 1/3 and 1/2), early, left
        ],
        np.int32,
    )
    atoms = pyramid.atoms(boxes)
    names = pyramid.channel_names()
    cells = [{names[c] for c in np.flatnonzero(pyramid.membership()[a])} for a in atoms]
    assert cells[0] == {
        "1x1x1 (0,0,0)",
        "2x2x1 (0,0,0)",
        "1x3x1 (0,0,0)",
        "1x1x2 (0,0,0)",
        "2x2x2 (0,0,0)",
        "1x3x2 (0,0,0)",
    }
    assert cells[1] == {
        "1x1x1 (0,0,0)",
        "2x2x1 (1,1,0)",
        "1x3x1 (0,2,0)",
        "1x1x2 (0,0,1)",
        "2x2x2 (1,1,1)",
        "1x3x2 (0,2,1)",
    }
    assert "1x3x1 (0,1,0)" in cells[2] and "2x2x1 (0,0,0)" in cells[2]
    assert "1x1x2 (0,0,0)" in cells[2]


@pytest.mark.parametrize("grids", [(), ((0, 1, 1),), ((1, 2),)])
def test_malformed_grids_are_refused(grids):
    with pytest.raises(ValueError, match="pyramid grids"):
        Pyramid(grids)


def _clip(rng: np.random.Generator, n: int) -> LocalDescriptors:
    features = {f: rng.standard_normal((n, d)).astype(np.float32) for f, d in DIMS.items()}
    t0, y0, x0 = rng.integers(0, 100, n), rng.integers(0, 200, n), rng.integers(0, 300, n)
    boxes = np.stack([t0, t0 + 15, y0, y0 + 32, x0, x0 + 32], axis=1).astype(np.int32)
    return LocalDescriptors(features, boxes)


@pytest.fixture(scope="module")
def encoders():
    """A pyramid encoder (PCA on HOF only) and the same state without the pyramid, with clips."""
    rng = np.random.default_rng(3)
    clips = [_clip(rng, n) for n in (300, 220, 260)]
    pyramid = FisherEncoder(
        n_components=3, feature_types=tuple(DIMS), pca_dims={"hof": 4}, pyramid=KL_GRIDS
    ).fit(clips)
    plain = FisherEncoder.from_state({**pyramid.get_params(), "pyramid": None}, pyramid.get_state())
    return pyramid, plain, clips


def _channel_rows(encoder: FisherEncoder, desc: LocalDescriptors) -> list[np.ndarray]:
    membership = Pyramid().membership()
    atoms = encoder.atoms(desc)
    return [np.flatnonzero(membership[atoms, c]) for c in range(membership.shape[1])]


def _take(desc: LocalDescriptors, rows: np.ndarray) -> LocalDescriptors:
    return LocalDescriptors({f: v[rows] for f, v in desc.features.items()}, desc.boxes[rows])


def test_each_channel_is_the_fisher_vector_of_the_cubes_in_its_cell(encoders):
    pyramid, plain, clips = encoders
    desc = clips[0]
    psi = pyramid.encode(desc).psi
    assert pyramid.fv_dim_ == 24 * plain.fv_dim_
    for f in DIMS:
        channels = psi[pyramid.blocks_[f]].reshape(24, -1)
        for c, rows in enumerate(_channel_rows(pyramid, desc)):
            expected = plain.encode(_take(desc, rows)).psi[plain.blocks_[f]] if rows.size else 0
            np.testing.assert_allclose(channels[c], expected, rtol=1e-9, atol=1e-12)


def test_an_empty_cell_has_a_zero_channel(encoders):
    pyramid, _, clips = encoders
    desc = clips[1]
    x, y = (desc.boxes[:, 4] + desc.boxes[:, 5]) / 2, (desc.boxes[:, 2] + desc.boxes[:, 3]) / 2
    corners = np.flatnonzero(((x < 100) & (y < 60)) | ((x > 250) & (y > 170)))
    psi = pyramid.encode(_take(desc, corners)).psi
    assert np.isfinite(psi).all()
    names = Pyramid().channel_names()
    mass = dict.fromkeys(names, 0.0)
    for f in DIMS:
        for name, block in zip(names, psi[pyramid.blocks_[f]].reshape(24, -1), strict=True):
            mass[name] += np.abs(block).sum()
    assert mass["2x2x1 (1,0,0)"] == 0 and mass["2x2x1 (0,1,0)"] == 0  # top right, bottom left
    assert mass["2x2x1 (0,0,0)"] > 0 and mass["2x2x1 (1,1,0)"] > 0


def test_descriptor_relevance_sums_the_channels_it_feeds(encoders):
    pyramid, plain, clips = encoders
    desc = clips[2]
    a = np.random.default_rng(0).standard_normal(pyramid.fv_dim_)
    r = descriptor_relevance(pyramid, desc, a)
    psi = pyramid.encode(desc).psi
    for f in DIMS:
        assert r[f].sum() == pytest.approx((psi * a)[pyramid.blocks_[f]].sum(), rel=1e-9)
        expected = np.zeros(len(desc))
        size = plain.blocks_[f].stop - plain.blocks_[f].start
        for c, rows in enumerate(_channel_rows(pyramid, desc)):
            a_c = np.zeros(plain.fv_dim_)
            a_c[plain.blocks_[f]] = a[pyramid.blocks_[f]][c * size : (c + 1) * size]
            expected[rows] += descriptor_relevance(plain, _take(desc, rows), a_c)[f]
        np.testing.assert_allclose(r[f], expected, rtol=1e-8, atol=1e-13)


@pytest.mark.parametrize("pca_rule", ["epsilon", "alpha-beta"])
def test_bin_relevance_from_a_root_sums_the_channels_it_feeds(encoders, pca_rule):
    pyramid, plain, clips = encoders
    desc = clips[0]
    reference = _take(desc, np.arange(3))
    index = np.random.default_rng(1).integers(0, 3, len(desc))
    psi = pyramid.encode(desc).psi
    r3 = np.random.default_rng(2).standard_normal(pyramid.fv_dim_) * (psi != 0)
    options = dict(epsilon_unit="absolute", reference=reference, pca_rule=pca_rule)
    bins, _ = bin_relevance(pyramid, desc, r3, 1e-3, reference_index=index, **options)
    expected = {f: np.zeros((len(desc), d)) for f, d in DIMS.items()}
    for c, rows in enumerate(_channel_rows(pyramid, desc)):
        r3_c = np.concatenate(
            [r3[pyramid.blocks_[f]].reshape(24, -1)[c] for f in plain.feature_types_]
        )
        part, _ = bin_relevance(
            plain, _take(desc, rows), r3_c, 1e-3, reference_index=index[rows], **options
        )
        for f in DIMS:
            expected[f][rows] += part[f]
    for f in DIMS:
        np.testing.assert_allclose(bins[f], expected[f], rtol=1e-7, atol=1e-12)


def test_the_root_fisher_vector_is_that_of_the_clip_at_its_references(encoders):
    pyramid, _, clips = encoders
    desc = clips[1]
    reference = _take(desc, np.arange(4))
    index = np.random.default_rng(4).integers(0, 4, len(desc))
    _, _, psi_ref = _roots(pyramid, reference, index, pyramid.atoms(desc))
    still = LocalDescriptors({f: v[index] for f, v in reference.features.items()}, desc.boxes)
    np.testing.assert_allclose(psi_ref, pyramid.encode(still).psi, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def pyramid_model(right_down_fields):
    fields, labels = right_down_fields
    model = motion_model(2, pyramid=True)
    return model.fit_descriptors([describe(f) for f in fields], labels), fields


@pytest.mark.parametrize("rule", ["fine", "paper"])
def test_a_pyramid_model_explains_with_conservation_and_a_share_per_cell(pyramid_model, rule):
    from actionlrp.pages import summary

    model, fields = pyramid_model
    assert model.encoder_.n_channels_ == 24
    e = explain(model, fields[0], rule=rule)
    assert e.relevance_fv.sum() == pytest.approx(e.score, rel=1e-9)
    assert len(e.channel_relevance) == 24
    assert sum(e.channel_relevance.values()) == pytest.approx(e.score, rel=1e-9)
    r2_total = sum(r.sum() for r in e.relevance_descriptors.values())
    assert e.relevance_voxels.sum() == pytest.approx(r2_total, rel=1e-9)
    assert e.score - r2_total == pytest.approx(e.absorbed, abs=1e-9)
    whole = e.channel_relevance["1x1x1 (0,0,0)"]
    halves = e.channel_relevance["1x1x2 (0,0,0)"] + e.channel_relevance["1x1x2 (0,0,1)"]
    assert whole != halves  # channels are separate dimensions, not a partition of one
    assert json.loads(json.dumps(summary(e)))["pyramid_relevance"] == e.channel_relevance


def test_a_pyramid_model_round_trips_and_a_model_saved_before_it_loads(pyramid_model, tmp_path):
    model, fields = pyramid_model
    desc = [describe(f) for f in fields]
    path = model.save(tmp_path / "pyramid.npz")
    loaded = ActionModel.load(path)
    assert loaded.pyramid and loaded.encoder_.n_channels_ == 24
    np.testing.assert_array_equal(
        loaded.decision_function_descriptors(desc), model.decision_function_descriptors(desc)
    )
    plain = motion_model(2)
    plain.fit_descriptors(desc, ["right", "down"] * 3)
    old = plain.save(tmp_path / "old.npz")
    with np.load(old, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    del meta["params"]["pyramid"], meta["encoder_params"]["pyramid"]
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(old, **arrays)
    again = ActionModel.load(old)
    assert not again.pyramid and again.encoder_.n_channels_ == 1
    np.testing.assert_array_equal(
        again.decision_function_descriptors(desc), plain.decision_function_descriptors(desc)
    )


def test_occlusion_refuses_a_pyramid_model_plainly(pyramid_model):
    from actionlrp.occlusion import occlusion

    model, fields = pyramid_model
    with pytest.raises(ValueError, match="space-time pyramid"):
        occlusion(model, fields[0])
