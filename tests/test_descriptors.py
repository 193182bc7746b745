"""HOF / MBHx / MBHy on spatio-temporal cubes: geometry, orientation, camera-motion invariance."""

from __future__ import annotations

import numpy as np
import pytest

from actionlrp.codec import MotionField, read_motion_field
from actionlrp.descriptors import (
    DescriptorParams,
    LocalDescriptors,
    cell_histograms,
    describe,
    iter_describe,
    load_descriptors,
    orientation_bins,
    save_descriptors,
)

RAW = DescriptorParams(normalization="none")


def field_of(flow: np.ndarray, cell: int = 8) -> MotionField:
    t, gh, gw, _ = flow.shape
    return MotionField(
        flow=flow.astype(np.float32),
        frame_types=np.array(["P"] * t),
        has_vectors=np.ones(t, bool),
        timestamps=np.arange(t) / 25.0,
        width=gw * cell,
        height=gh * cell,
        fps=25.0,
        cell=cell,
    )


def cube_count(t: int, height: int, width: int, cube: int = 32, stride: int = 16, cf: int = 5):
    """The stride arithmetic: cubes that fit wholly inside the video."""
    nt = t // cf - 2
    ny = (height // 8 * 8 - cube) // stride + 1
    nx = (width // 8 * 8 - cube) // stride + 1
    return max(nt, 0) * max(ny, 0) * max(nx, 0)


def test_descriptor_dimensions_are_108_96_96(square_clips):
    desc = describe(read_motion_field(square_clips["libx264", 0].path))
    assert {k: v.shape[1] for k, v in desc.features.items()} == {
        "hof": 108,
        "mbhx": 96,
        "mbhy": 96,
    }
    assert all(v.dtype == np.float32 for v in desc.features.values())
    assert desc.boxes.dtype == np.int32 and desc.boxes.shape == (len(desc), 6)


@pytest.mark.parametrize("size", [(160, 120, 40), (150, 106, 24), (96, 64, 17), (40, 40, 14)])
def test_cube_count_matches_stride_arithmetic_and_boxes_lie_inside(size):
    width, height, t = size
    rng = np.random.default_rng(0)
    gh, gw = -(-height // 8), -(-width // 8)
    field = MotionField(
        flow=rng.normal(size=(t, gh, gw, 2)).astype(np.float32),
        frame_types=np.array(["P"] * t),
        has_vectors=np.ones(t, bool),
        timestamps=np.arange(t) / 25.0,
        width=width,
        height=height,
        fps=25.0,
        cell=8,
    )
    desc = describe(field)
    assert len(desc) == cube_count(t, height, width)
    if len(desc):
        t0, t1, y0, y1, x0, x1 = desc.boxes.T
        assert (t0 >= 0).all() and (t1 <= t).all() and (t1 - t0 == 15).all()
        assert (y0 >= 0).all() and (y1 <= height).all() and (y1 - y0 == 32).all()
        assert (x0 >= 0).all() and (x1 <= width).all() and (x1 - x0 == 32).all()
        assert len(np.unique(desc.boxes, axis=0)) == len(desc)


def test_real_clip_cube_count(square_clips):
    field = read_motion_field(square_clips["mpeg4", 0].path)
    assert len(describe(field)) == cube_count(field.n_frames, field.height, field.width)


def test_orientation_bins_split_magnitude_between_two_nearest_bins():
    dx = np.array([1.0, 0.0, 1.0, -2.0, np.cos(np.pi / 8)])
    dy = np.array([0.0, 1.0, 1.0, 0.0, np.sin(np.pi / 8)])
    lower, upper, wl, wu = orientation_bins(dx, dy)
    hist = np.zeros((5, 8))
    np.add.at(hist, (np.arange(5), lower), wl)
    np.add.at(hist, (np.arange(5), upper), wu)
    assert np.allclose(hist.sum(axis=1), np.hypot(dx, dy))
    # 0° → bin 0, 90° (down) → bin 2, 45° → bin 1, 180° → bin 4.
    assert list(hist[:4].argmax(axis=1)) == [0, 2, 1, 4]
    assert np.allclose(hist[:4].max(axis=1), np.hypot(dx, dy)[:4], atol=1e-5)
    # 22.5° lies half-way between bins 0 and 1.
    assert hist[4, 0] == pytest.approx(0.5, abs=1e-5) and hist[4, 1] == pytest.approx(0.5, abs=1e-5)


def test_rightward_motion_peaks_in_zero_degree_bin(pan_clip):
    desc = describe(read_motion_field(pan_clip.path), RAW)
    cells = desc.features["hof"].reshape(len(desc), 12, 9)
    assert (cells.argmax(axis=2) == 0).mean() > 0.95
    assert cells[..., 0].sum() > 10 * cells[..., 1:].sum()


def test_downward_motion_peaks_in_ninety_degree_bin():
    flow = np.zeros((15, 8, 8, 2), np.float32)
    flow[..., 1] = 3.0
    cells = describe(field_of(flow), RAW).features["hof"].reshape(-1, 12, 9)
    assert (cells.argmax(axis=2) == 2).all()


def test_still_video_fills_the_no_motion_bin(still_clip):
    desc = describe(read_motion_field(still_clip.path), RAW)
    cells = desc.features["hof"].reshape(len(desc), 12, 9)
    assert len(desc) > 0
    assert (cells.argmax(axis=2) == 8).all()
    assert cells[..., :8].sum() < 0.01 * cells[..., 8].sum()


def test_mbh_of_a_camera_pan_vanishes_but_an_object_boundary_does_not(pan_clip, pan_object_clip):
    pan = describe(read_motion_field(pan_clip.path), RAW)
    moving = describe(read_motion_field(pan_object_clip.path), RAW)
    pan_hof = pan.features["hof"].sum(axis=1)
    for name in ("mbhx", "mbhy"):
        pan_energy = pan.features[name].sum(axis=1)
        obj_energy = moving.features[name].sum(axis=1)
        # HOF sees the pan everywhere; MBH does not (flow gradients of a uniform pan are 0).
        assert pan_energy.mean() < 0.02 * pan_hof.mean()
        assert obj_energy.max() > 20 * max(pan_energy.max(), 1e-6)
    # The strongest MBHy cubes lie on the object's path.
    top = moving.boxes[np.argsort(moving.features["mbhy"].sum(axis=1))[-5:]]
    box = pan_object_clip.boxes[:, 0]
    for t0, t1, y0, y1, x0, x1 in top:
        ys = box[t0:t1, 0].min(), box[t0:t1, 1].max()
        xs = box[t0:t1, 2].min(), box[t0:t1, 3].max()
        assert y0 < ys[1] and y1 > ys[0] and x0 < xs[1] and x1 > xs[0]


def test_cell_histograms_sum_each_five_frame_slab():
    rng = np.random.default_rng(1)
    flow = rng.normal(scale=3.0, size=(10, 4, 4, 2)).astype(np.float32)
    hist = cell_histograms(flow, 5, 8, 1.0)
    mag = np.hypot(flow[..., 0], flow[..., 1])
    moving = np.where(mag >= 1.0, mag, 0.0).reshape(2, 5, 4, 4).sum(axis=1)
    still = (mag < 1.0).reshape(2, 5, 4, 4).sum(axis=1)
    assert np.allclose(hist["hof"][..., :8].sum(-1), moving, rtol=1e-5)
    assert np.allclose(hist["hof"][..., 8], still)


@pytest.mark.parametrize("normalization", ["root", "l2"])
def test_normalised_descriptors_have_unit_norm(square_clips, normalization):
    desc = describe(
        read_motion_field(square_clips["libx264", 0].path),
        DescriptorParams(normalization=normalization, mbh_floor=0.0),
    )
    for x in desc.features.values():
        norms = np.linalg.norm(x, axis=1)
        nonzero = norms > 0
        assert nonzero.mean() > 0.5
        assert np.allclose(norms[nonzero], 1.0, atol=1e-4)
        assert (x >= 0).all()


def test_mbh_floor_keeps_weak_boundaries_small_and_leaves_strong_ones_whole():
    flow = np.zeros((15, 4, 4, 2))
    flow[:, :, 2:, 0] = 0.2  # a weak step in x flow (noise level) inside one 32-px cube
    # central differences over 16 px: |g| = step / 16 on 2 of the 4 columns, 4 rows, 15 frames
    mass = 2 * 4 * 15 * 0.2 / 16
    weak = describe(field_of(flow), DescriptorParams())
    below = describe(field_of(flow), DescriptorParams(mbh_floor=1 / 32))
    flow[:, :, 2:, 0] = 80.0  # a step whose mass (7.5 × 80) passes the default floor (240)
    strong = describe(field_of(flow), DescriptorParams())
    plain = describe(field_of(flow * 0.0025), DescriptorParams(mbh_floor=0.0))
    # under the floor: the root of the histogram over the floor, ‖x‖² = mass / (floor × voxels)
    voxels = 4 * 4 * 15
    assert np.linalg.norm(weak.features["mbhx"]) ** 2 == pytest.approx(mass / voxels, rel=1e-4)
    assert np.linalg.norm(below.features["mbhx"]) ** 2 == pytest.approx(
        32 * mass / voxels, rel=1e-4
    )
    assert np.linalg.norm(strong.features["mbhx"]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(plain.features["mbhx"]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(weak.features["hof"]) == pytest.approx(1.0, abs=1e-5)  # no floor
    with pytest.raises(ValueError, match="mbh_floor"):
        describe(field_of(flow), DescriptorParams(mbh_floor=-1.0))


def test_chunked_extraction_equals_whole(square_clips):
    field = read_motion_field(square_clips["libx264", 2].path)
    whole = describe(field)
    parts = LocalDescriptors.concatenate(list(iter_describe(field, chunk_frames=10)))
    assert np.array_equal(whole.boxes, parts.boxes)
    for name in whole.features:
        # Equal up to float32 rounding (SIMD kernels may round a chunk's last elements apart).
        assert np.allclose(whole.features[name], parts.features[name], rtol=1e-5, atol=1e-6)


def test_second_scale_adds_48_px_cubes(square_clips):
    field = read_motion_field(square_clips["libx264", 0].path)
    both = describe(field, DescriptorParams(cube_px=(32, 48)))
    sizes = both.boxes[:, 3] - both.boxes[:, 2]
    assert set(np.unique(sizes)) == {32, 48}
    assert (sizes == 48).sum() == cube_count(field.n_frames, field.height, field.width, cube=48)


def test_bad_parameters_are_refused(square_clips):
    field = read_motion_field(square_clips["libx264", 0].path)
    with pytest.raises(ValueError, match="normalization"):
        describe(field, DescriptorParams(normalization="l3"))
    with pytest.raises(ValueError, match="cube_px"):
        describe(field, DescriptorParams(cube_px=(36,)))


def test_descriptor_file_round_trip_without_pickle(square_clips, tmp_path):
    desc = describe(read_motion_field(square_clips["libx264", 0].path))
    path = save_descriptors(desc, tmp_path / "d.npz")
    back = load_descriptors(path)
    assert np.array_equal(back.boxes, desc.boxes)
    assert all(np.array_equal(back.features[k], desc.features[k]) for k in desc.features)
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]


# -------------------------------------------------------------------------------------------
# Relevance step R(2) → R(1)


def _random_field(t=25, gh=9, gw=12, seed=0):
    rng = np.random.default_rng(seed)
    return field_of(rng.normal(scale=2.0, size=(t, gh, gw, 2)))


def test_spread_relevance_conserves_the_total():
    from actionlrp.descriptors import spread_relevance

    field = _random_field()
    desc = describe(field)
    r2 = np.random.default_rng(1).normal(size=len(desc))
    r1 = spread_relevance(desc, r2, field.grid_shape, field.cell)
    assert r1.shape == field.grid_shape
    assert r1.sum() == pytest.approx(r2.sum(), rel=1e-12, abs=1e-12)


def test_spread_relevance_is_uniform_inside_a_single_cube():
    from actionlrp.descriptors import spread_relevance

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
    from actionlrp.descriptors import spread_bin_relevance

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
    from actionlrp.descriptors import spread_bin_relevance

    field = field_of(np.zeros((15, 4, 4, 2)))
    desc = describe(field)
    r = np.zeros((1, 96))
    r[0, (2 * 4 + 3) * 8 + 5] = 2.0  # MBHx is empty everywhere: time cell 2, cell (1, 1)
    r1 = spread_bin_relevance(field, desc, r, "mbhx")
    assert r1.sum() == pytest.approx(2.0)
    assert np.allclose(r1[10:15, 2:4, 2:4], 2.0 / 20)
    assert np.abs(r1).sum() == pytest.approx(2.0)


def test_still_reference_hands_the_still_bin_to_the_vectors_that_moved():
    from actionlrp.descriptors import spread_bin_relevance

    flow = np.zeros((15, 4, 4, 2))
    flow[:, 1, 1, 0] = 5.0  # two voxel columns move inside spatial cell (0, 0)
    flow[:, 0, 1, 1] = 3.0
    field = field_of(flow)
    desc = describe(field)
    r = np.zeros((1, 108))
    r[0, (1 * 4 + 0) * 9 + 8] = -2.0  # the still bin of time cell 1, cell (0, 0)
    # Measured from a motionless field, the stillness lost is that of the two moving voxels.
    r1 = spread_bin_relevance(field, desc, r, "hof", reference="still")
    assert r1.sum() == pytest.approx(-2.0)
    assert np.allclose(r1[5:10, 1, 1], -0.2) and np.allclose(r1[5:10, 0, 1], -0.2)
    assert np.count_nonzero(r1) == 10
    # Without the reference the bin's relevance goes to the two still voxels that filled it.
    r1 = spread_bin_relevance(field, desc, r, "hof")
    assert np.allclose(r1[5:10, 0, 0], -0.2) and np.allclose(r1[5:10, 1, 0], -0.2)
    assert r1[5:10, 1, 1].sum() == 0.0
    with pytest.raises(ValueError, match="reference"):
        spread_bin_relevance(field, desc, r, "hof", reference="zero")


@pytest.mark.parametrize("feature", ["hof", "mbhx", "mbhy"])
@pytest.mark.parametrize("params", [DescriptorParams(), DescriptorParams(cube_px=(32, 48))])
@pytest.mark.parametrize("reference", [None, "still"])
def test_bin_relevance_conserves_on_a_random_field(feature, params, reference):
    from actionlrp.descriptors import spread_bin_relevance

    field = _random_field(t=33, gh=13, gw=15)
    desc = describe(field, params)
    r = np.random.default_rng(2).normal(size=(len(desc), params.dims()[feature]))
    r1 = spread_bin_relevance(field, desc, r, feature, params, reference=reference)
    assert r1.shape == field.grid_shape
    assert r1.sum() == pytest.approx(r.sum(), rel=1e-9)
    # Voxels that no cube covers get nothing (frames past the last whole time cell).
    assert not r1[30:].any()


@pytest.mark.parametrize("feature", ["hof", "mbhx"])
def test_bin_relevance_is_the_same_in_any_number_of_threads(feature, monkeypatch):
    import actionlrp.descriptors as descriptors

    field = _random_field(t=48, gh=13, gw=15)  # 9 time cells: 1, 2 or 3 pieces of ≥ 3
    desc = describe(field)
    r = np.random.default_rng(4).normal(size=(len(desc), DescriptorParams().dims()[feature]))
    results, pieces = [], []
    spread = descriptors._spread_time_cells
    for cpus in (1, 2, 3):
        monkeypatch.setattr(descriptors, "_available_cpus", lambda cpus=cpus: cpus)
        calls: list[int] = []
        monkeypatch.setattr(
            descriptors,
            "_spread_time_cells",
            lambda *a, calls=calls: calls.append(a[-1]) or spread(*a),
        )
        results.append(descriptors.spread_bin_relevance(field, desc, r, feature, reference="still"))
        pieces.append(sorted(calls))
    assert pieces == [[0], [0, 4], [0, 3, 6]]  # the first time cell of each piece
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


# -------------------------------------------------------------------------------------------
# Scale cap for large videos


def test_max_width_describes_a_large_video_at_a_fraction_of_its_size():
    from actionlrp.descriptors import downscale, scale_factor, spread_relevance

    rng = np.random.default_rng(3)
    flow = rng.normal(size=(20, 30, 80, 2)).astype(np.float32)  # a 640 × 240 video
    field = field_of(flow)
    assert scale_factor(640, 320) == 2 and scale_factor(320, 320) == 1
    assert scale_factor(641, 320) == 3 and scale_factor(640, None) == 1
    small = downscale(field, 2)
    assert (small.width, small.height) == (320, 120) and small.flow.shape == (20, 15, 40, 2)
    assert np.allclose(small.flow[:, 0, 0], flow[:, :2, :2].mean(axis=(1, 2)) / 2, atol=1e-6)
    capped = describe(field, DescriptorParams(max_width=320))
    assert np.array_equal(capped.features["hof"], describe(small).features["hof"])
    assert len(capped) == cube_count(20, 120, 320)
    # Boxes are in the video's own pixels: 64-px cubes, inside the frame.
    assert set(np.unique(capped.boxes[:, 3] - capped.boxes[:, 2])) == {64}
    assert capped.boxes[:, 5].max() <= 640 and capped.boxes[:, 3].max() <= 240
    r2 = rng.normal(size=len(capped))
    r1 = spread_relevance(capped, r2, field.grid_shape, field.cell)
    assert r1.shape == field.grid_shape and r1.sum() == pytest.approx(r2.sum())


def test_odd_sized_large_video_downscales_with_partial_edge_blocks():
    from actionlrp.descriptors import downscale

    flow = np.ones((5, 3, 5, 2), np.float32)
    small = downscale(field_of(flow), 2)
    assert small.flow.shape == (5, 2, 3, 2)
    assert np.allclose(small.flow, 0.5)  # edge blocks average the cells they have


@pytest.mark.parametrize("feature", ["hof", "mbhx", "mbhy"])
def test_bin_relevance_uses_the_forward_histograms(feature):
    """Give every bin its own raw value: each voxel then gets its magnitude × the (whole)
    number of cube cells that hold it, which only holds if the weights are the histograms'."""
    from actionlrp.descriptors import spread_bin_relevance

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
    from actionlrp.descriptors import gradient_relevance

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
    from actionlrp.descriptors import gradient_relevance

    field = _random_field(t=6, gh=9, gw=11, seed=5)
    r = np.random.default_rng(6).normal(size=field.grid_shape)
    r1 = gradient_relevance(field, r, feature)
    assert r1.sum() == pytest.approx(r.sum(), rel=1e-9)
    panned = field_of(field.flow + np.float32([3.0, -2.0]))
    assert np.allclose(gradient_relevance(panned, r, feature), r1, atol=1e-6)


def test_gradient_relevance_of_a_motion_boundary_goes_to_the_moving_side():
    from actionlrp.descriptors import gradient_relevance

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
