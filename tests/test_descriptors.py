"""HOF / MBHx / MBHy on spatio-temporal cubes: geometry, orientation, camera-motion invariance."""

from __future__ import annotations

import numpy as np
import pytest

from actionlrp.codec import read_motion_field
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
from actionlrp.video import MotionField

RAW = DescriptorParams(hog=False, normalization="none")


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
        DescriptorParams(hog=False, normalization=normalization, mbh_floor=0.0),
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
    weak = describe(field_of(flow), DescriptorParams(hog=False))
    below = describe(field_of(flow), DescriptorParams(hog=False, mbh_floor=1 / 32))
    flow[:, :, 2:, 0] = 80.0  # a step whose mass (7.5 × 80) passes the default floor (240)
    strong = describe(field_of(flow), DescriptorParams(hog=False))
    plain = describe(field_of(flow * 0.0025), DescriptorParams(hog=False, mbh_floor=0.0))
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
        describe(field_of(flow), DescriptorParams(hog=False, mbh_floor=-1.0))


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
    both = describe(field, DescriptorParams(hog=False, cube_px=(32, 48)))
    sizes = both.boxes[:, 3] - both.boxes[:, 2]
    assert set(np.unique(sizes)) == {32, 48}
    assert (sizes == 48).sum() == cube_count(field.n_frames, field.height, field.width, cube=48)


@pytest.mark.parametrize("normalization", ["root", "l2"])
def test_slice_normalisation_gives_each_time_slice_unit_norm(square_clips, normalization):
    field = read_motion_field(square_clips["libx264", 0].path)
    whole = describe(field, DescriptorParams(hog=False, normalization=normalization, mbh_floor=0.0))
    sliced = describe(
        field,
        DescriptorParams(
            hog=False, normalization=normalization, mbh_floor=0.0, slice_normalization=True
        ),
    )
    raw = describe(field, RAW)
    for name, x in sliced.features.items():
        slices = x.reshape(len(x), 3, -1)
        norms = np.linalg.norm(slices, axis=2)
        nonzero = norms > 0
        assert nonzero.mean() > 0.5
        assert np.allclose(norms[nonzero], 1.0, atol=1e-4)
        # each slice is its raw histogram rescaled (rooted): the same bins stay empty
        shape = raw.features[name].reshape(len(x), 3, -1)
        assert np.array_equal(slices > 0, shape > 0)
        assert not np.allclose(x, whole.features[name])


def test_second_scale_takes_a_stride_of_its_own(square_clips):
    field = read_motion_field(square_clips["libx264", 0].path)
    both = describe(field, DescriptorParams(hog=False, cube_px=(32, 48), stride_px=(16, 24)))
    large = both.boxes[both.boxes[:, 3] - both.boxes[:, 2] == 48]
    assert set(np.diff(np.unique(large[:, 4]))) == {24}
    assert len(large) == cube_count(field.n_frames, field.height, field.width, cube=48, stride=24)
    with pytest.raises(ValueError, match="stride_px"):
        describe(field, DescriptorParams(hog=False, cube_px=(32, 48), stride_px=(16, 24, 8)))


def test_bad_parameters_are_refused(square_clips):
    field = read_motion_field(square_clips["libx264", 0].path)
    with pytest.raises(ValueError, match="normalization"):
        describe(field, DescriptorParams(hog=False, normalization="l3"))
    with pytest.raises(ValueError, match="cube_px"):
        describe(field, DescriptorParams(hog=False, cube_px=(36,)))


def test_descriptor_file_round_trip_without_pickle(square_clips, tmp_path):
    desc = describe(read_motion_field(square_clips["libx264", 0].path))
    path = save_descriptors(desc, tmp_path / "d.npz")
    back = load_descriptors(path)
    assert np.array_equal(back.boxes, desc.boxes)
    assert all(np.array_equal(back.features[k], desc.features[k]) for k in desc.features)
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]


# -------------------------------------------------------------------------------------------
# Scale cap for large videos


def test_max_width_describes_a_large_video_at_a_fraction_of_its_size():
    from actionlrp.descriptors import downscale, scale_factor
    from actionlrp.descriptors_lrp import spread_relevance

    rng = np.random.default_rng(3)
    flow = rng.normal(size=(20, 30, 80, 2)).astype(np.float32)  # a 640 × 240 video
    field = field_of(flow)
    assert scale_factor(640, 320) == 2 and scale_factor(320, 320) == 1
    assert scale_factor(641, 320) == 3 and scale_factor(640, None) == 1
    small = downscale(field, 2)
    assert (small.width, small.height) == (320, 120) and small.flow.shape == (20, 15, 40, 2)
    assert np.allclose(small.flow[:, 0, 0], flow[:, :2, :2].mean(axis=(1, 2)) / 2, atol=1e-6)
    capped = describe(field, DescriptorParams(hog=False, max_width=320))
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


# --------------------------------------------------------------------------------------------
# Described while the clip decodes


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    """120-frame clips: H.264 with B-frames and x264's 3 references, MPEG-4 Part 2 with one."""
    from actionlrp import synthetic

    folder = tmp_path_factory.mktemp("streamed")
    objects = [
        synthetic.SyntheticObject("translate", size=32, centre=(30.0, 40.0), velocity=(1.5, 0.3)),
        synthetic.SyntheticObject("oscillate", size=24, amplitude=12.0, period=30.0, axis="y"),
    ]
    clips = {}
    for codec, suffix, b in (("libx264", ".mp4", 2), ("mpeg4", ".avi", 1)):
        clip = synthetic.make_clip(
            folder / f"long_{codec}{suffix}",
            objects,
            width=128,
            height=96,
            n_frames=120,
            codec=codec,
            b_frames=b,
            seed=3,
        )
        clips[codec] = clip.path
    return clips


def assert_same_descriptors(a: LocalDescriptors, b: LocalDescriptors) -> None:
    assert set(a.features) == set(b.features)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    for k in b.features:
        np.testing.assert_array_equal(a.features[k], b.features[k])


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
@pytest.mark.parametrize(
    "params",
    [
        DescriptorParams(),
        DescriptorParams(hog=False),
        DescriptorParams(cube_px=(32, 48), stride_px=(16, 24), slice_normalization=True),
        DescriptorParams(max_width=64),
    ],
    ids=["defaults", "motion only", "two scales", "downscaled"],
)
def test_described_while_decoding_equals_describe_after(long_clips, codec, params):
    from actionlrp.descriptors import StreamingDescriber

    describer = StreamingDescriber(params)
    field = read_motion_field(long_clips[codec], hog=params.hog, describer=describer)
    during = describer.done  # cube start times described before the decoder finished
    streamed = describer.finish(field)
    assert len(streamed) > 0
    assert_same_descriptors(streamed, describe(field, params))
    if params.max_width is None:
        assert during >= 8  # the work really ran beside the decoder
    else:
        assert during == 0  # a downscaled clip waits for its whole field


@pytest.mark.parametrize(
    "clip", ["fight-dev/fight/fi001.mp4", "ut-interaction-set1/hugging/set1_10_2_1.avi"]
)
def test_described_motion_field_of_a_real_clip(shared_data, clip):
    from actionlrp.motion import described_motion_field, motion_field

    path = shared_data / clip
    field, desc = described_motion_field(path, DescriptorParams())
    assert_same_descriptors(desc, describe(motion_field(path, hog=True)))
    assert field.hog is not None and len(desc) > 0


def test_a_second_decoding_pass_starts_the_description_again(long_clips, tmp_path):
    # A damaged MPEG-4 stream: the quick pass (no IDCT, 1/8 size) gives up part-way, after
    # the describer has been fed; the full decode must not reuse what it described.
    import av

    from actionlrp.descriptors import StreamingDescriber

    path = long_clips["mpeg4"]
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for pos, size in packets[104:118:4]:
        data[pos + size // 2 : pos + size] = rng.bytes(size - size // 2)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    params = DescriptorParams(hog=False)
    restarts = []

    class Counting(StreamingDescriber):
        def restart(self, *args, **kwargs):
            restarts.append(getattr(self, "done", 0))
            super().restart(*args, **kwargs)

    describer = Counting(params)
    field = read_motion_field(damaged, describer=describer)
    assert len(restarts) == 3 and restarts[2] >= 8  # init, quick pass, full pass after work
    assert_same_descriptors(describer.finish(field), describe(field, params))
