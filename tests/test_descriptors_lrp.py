"""The descriptor layers' relevance steps: R(2) → R(1), evenly over cubes or through the bins."""

from __future__ import annotations

import numpy as np
import pytest
from test_descriptors import RAW, field_of

from actionlrp.descriptors import DescriptorParams, describe

# -------------------------------------------------------------------------------------------
# Relevance step R(2) → R(1)


def _random_field(t=25, gh=9, gw=12, seed=0):
    rng = np.random.default_rng(seed)
    return field_of(rng.normal(scale=2.0, size=(t, gh, gw, 2)))


def test_spread_relevance_conserves_the_total():
    from actionlrp.descriptors_lrp import spread_relevance

    field = _random_field()
    desc = describe(field)
    r2 = np.random.default_rng(1).normal(size=len(desc))
    r1 = spread_relevance(desc, r2, field.grid_shape, field.cell)
    assert r1.shape == field.grid_shape
    assert r1.sum() == pytest.approx(r2.sum(), rel=1e-12, abs=1e-12)


def test_spread_relevance_is_uniform_inside_a_single_cube():
    from actionlrp.descriptors_lrp import spread_relevance

    field = _random_field()
    desc = describe(field)
    r2 = np.zeros(len(desc))
    r2[7] = 6.0
    r1 = spread_relevance(desc, r2, field.grid_shape, field.cell)
    t0, t1, y0, y1, x0, x1 = desc.boxes[7]
    inside = r1[t0:t1, y0 // 8 : y1 // 8, x0 // 8 : x1 // 8]
    assert np.allclose(inside, 6.0 / inside.size)
    assert np.isclose(np.abs(r1).sum(), 6.0)


def test_bin_relevance_goes_to_the_vectors_that_filled_the_bin():
    from actionlrp.descriptors_lrp import spread_bin_relevance

    flow = np.zeros((15, 4, 4, 2))
    flow[:, 1, 1, 0] = 5.0  # one voxel column moving right inside a single 32-px cube
    flow[:, 2, 2, 1] = 3.0  # and one moving down in another cell
    field = field_of(flow)
    desc = describe(field)
    assert len(desc) == 1
    r = np.zeros((1, 108))
    # HOF bin 0 (rightward) of time cell 1, spatial cell (0, 0): holds voxel (1, 1) only.
    r[0, (1 * 4 + 0) * 9 + 0] = 3.0
    r1 = spread_bin_relevance(field, desc, r, "hof")
    assert r1.sum() == pytest.approx(3.0)
    assert r1[5:10, 1, 1] == pytest.approx(np.full(5, 0.6))
    assert np.count_nonzero(r1) == 5
    # The no-motion bin of the same cell: its 3 still voxels × 5 frames share it evenly.
    r[:] = 0.0
    r[0, (1 * 4 + 0) * 9 + 8] = 1.5
    r1 = spread_bin_relevance(field, desc, r, "hof")
    assert r1.sum() == pytest.approx(1.5)
    assert r1[5:10, 1, 1].sum() == 0.0
    assert r1[5:10, 0:2, 0:2].sum() == pytest.approx(1.5)
    assert np.allclose(r1[5:10, 0, 0], 0.1)


def test_relevance_of_an_empty_bin_is_spread_over_its_cell():
    from actionlrp.descriptors_lrp import spread_bin_relevance

    field = field_of(np.zeros((15, 4, 4, 2)))
    desc = describe(field)
    r = np.zeros((1, 96))
    r[0, (2 * 4 + 3) * 8 + 5] = 2.0  # MBHx is empty everywhere: time cell 2, cell (1, 1)
    r1 = spread_bin_relevance(field, desc, r, "mbhx")
    assert r1.sum() == pytest.approx(2.0)
    assert np.allclose(r1[10:15, 2:4, 2:4], 2.0 / 20)
    assert np.abs(r1).sum() == pytest.approx(2.0)


def test_still_reference_hands_the_still_bin_to_the_vectors_that_moved():
    from actionlrp.descriptors_lrp import spread_bin_relevance

    flow = np.zeros((15, 4, 4, 2))
    flow[:, 1, 1, 0] = 5.0  # two voxel columns move inside spatial cell (0, 0)
    flow[:, 0, 1, 1] = 3.0
    field = field_of(flow)
    desc = describe(field)
    r = np.zeros((1, 108))
    r[0, (1 * 4 + 0) * 9 + 8] = -2.0  # the still bin of time cell 1, cell (0, 0)
    # Measured from a motionless field, the stillness lost is that of the two moving voxels.
    r1 = spread_bin_relevance(field, desc, r, "hof", root="still")
    assert r1.sum() == pytest.approx(-2.0)
    assert np.allclose(r1[5:10, 1, 1], -0.2) and np.allclose(r1[5:10, 0, 1], -0.2)
    assert np.count_nonzero(r1) == 10
    # Without the reference the bin's relevance goes to the two still voxels that filled it.
    r1 = spread_bin_relevance(field, desc, r, "hof")
    assert np.allclose(r1[5:10, 0, 0], -0.2) and np.allclose(r1[5:10, 1, 0], -0.2)
    assert r1[5:10, 1, 1].sum() == 0.0
    with pytest.raises(ValueError, match="root"):
        spread_bin_relevance(field, desc, r, "hof", root="none")


@pytest.mark.parametrize("feature", ["hof", "mbhx", "mbhy"])
@pytest.mark.parametrize(
    "params", [DescriptorParams(hog=False), DescriptorParams(hog=False, cube_px=(32, 48))]
)
@pytest.mark.parametrize("root", ["zero", "still"])
def test_bin_relevance_conserves_on_a_random_field(feature, params, root):
    from actionlrp.descriptors_lrp import spread_bin_relevance

    field = _random_field(t=33, gh=13, gw=15)
    desc = describe(field, params)
    r = np.random.default_rng(2).normal(size=(len(desc), params.dims()[feature]))
    r1 = spread_bin_relevance(field, desc, r, feature, params, root=root)
    assert r1.shape == field.grid_shape
    assert r1.sum() == pytest.approx(r.sum(), rel=1e-9)
    # Voxels that no cube covers get nothing (frames past the last whole time cell).
    assert not r1[30:].any()


@pytest.mark.parametrize("feature", ["hof", "mbhx"])
def test_bin_relevance_is_the_same_in_any_number_of_threads(feature, monkeypatch):
    import actionlrp._scratch as scratch
    import actionlrp.descriptors_lrp as descriptors_lrp

    field = _random_field(t=48, gh=13, gw=15)  # 9 time cells: 1, 2 or 3 pieces of ≥ 3
    desc = describe(field)
    r = np.random.default_rng(4).normal(
        size=(len(desc), DescriptorParams(hog=False).dims()[feature])
    )
    results, pieces = [], []
    spread = descriptors_lrp._spread_time_cells
    for cpus in (1, 2, 3):
        monkeypatch.setattr(scratch, "_available_cpus", lambda cpus=cpus: cpus)
        calls: list[int] = []
        monkeypatch.setattr(
            descriptors_lrp,
            "_spread_time_cells",
            lambda *a, calls=calls: calls.append(a[-1]) or spread(*a),
        )
        results.append(descriptors_lrp.spread_bin_relevance(field, desc, r, feature, root="still"))
        pieces.append(sorted(calls))
    assert pieces == [[0], [0, 4], [0, 3, 6]]  # the first time cell of each piece
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("feature", ["hof", "mbhx", "mbhy"])
def test_bin_relevance_uses_the_forward_histograms(feature):
    """Give every bin its own raw value: each voxel then gets its magnitude × the (whole)
    number of cube cells that hold it, which only holds if the weights are the histograms'."""
    from actionlrp.descriptors_lrp import spread_bin_relevance

    field = _random_field(t=30, gh=10, gw=12, seed=4)
    desc = describe(field, RAW)
    raw = desc.features[feature].astype(np.float64)
    r1 = spread_bin_relevance(field, desc, raw, feature, RAW, vectors=False)
    u, v = field.flow[..., 0], field.flow[..., 1]
    if feature == "hof":
        magnitude = np.maximum(np.hypot(u, v), 1.0 * (np.hypot(u, v) < 1.0))
    else:
        gy, gx = np.gradient(u if feature == "mbhx" else v, axis=(1, 2))
        magnitude = np.hypot(gx, gy) / field.cell
    covered = r1 != 0
    count = r1[covered] / magnitude[covered]
    assert covered.sum() > 0.5 * r1.size
    assert np.allclose(count, np.round(count), atol=1e-3)
    assert set(np.round(count).astype(int)) <= set(range(1, 13))


def test_gradient_relevance_is_the_z_rule_of_np_gradient_around_the_frame_median():
    """R_i = (c_i − c̃) Σ_v (∂g_v/∂c_i · g_v) R_v / |g_v|², with ∂g/∂c from np.gradient itself."""
    from actionlrp.descriptors_lrp import gradient_relevance

    field = _random_field(t=3, gh=5, gw=7, seed=7)
    r = np.random.default_rng(8).normal(size=field.grid_shape)
    c = field.flow[..., 1].astype(np.float64)
    _, gh, gw = field.grid_shape
    basis = np.eye(gh * gw).reshape(gh * gw, gh, gw)
    dy, dx = (np.stack([np.gradient(b, axis=a) for b in basis]) for a in (0, 1))  # (i, gh, gw)
    expected = np.empty_like(r)
    for f in range(3):
        gy, gx = np.gradient(c[f], axis=(0, 1))
        a = r[f] / (gx * gx + gy * gy)
        adjoint = (dx * (a * gx)).sum(axis=(1, 2)) + (dy * (a * gy)).sum(axis=(1, 2))
        expected[f] = (c[f] - np.median(c[f])) * adjoint.reshape(gh, gw)
    assert np.allclose(gradient_relevance(field, r, "mbhy"), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("feature", ["mbhx", "mbhy"])
def test_gradient_relevance_conserves_and_ignores_the_camera(feature):
    from actionlrp.descriptors_lrp import gradient_relevance

    field = _random_field(t=6, gh=9, gw=11, seed=5)
    r = np.random.default_rng(6).normal(size=field.grid_shape)
    r1 = gradient_relevance(field, r, feature)
    assert r1.sum() == pytest.approx(r.sum(), rel=1e-9)
    panned = field_of(field.flow + np.float32([3.0, -2.0]))
    assert np.allclose(gradient_relevance(panned, r, feature), r1, atol=1e-6)


def test_gradient_relevance_of_a_motion_boundary_goes_to_the_moving_side():
    from actionlrp.descriptors_lrp import gradient_relevance

    flow = np.zeros((5, 8, 8, 2), np.float32)
    flow[:, 2:5, 3:6, 0] = 4.0  # a block moving right on a still background
    field = field_of(flow)
    gy, gx = np.gradient(flow[..., 0], axis=(1, 2))
    r = np.hypot(gx, gy)  # each gradient voxel's relevance: its magnitude, outside the block too
    assert r[:, 2:5, 3:6].sum() < 0.5 * r.sum()
    r1 = gradient_relevance(field, r, "mbhx")
    assert r1.sum() == pytest.approx(r.sum())
    assert r1[:, 2:5, 3:6].sum() == pytest.approx(r.sum())
    assert not r1[:, :2].any() and not r1[:, :, 6:].any()
