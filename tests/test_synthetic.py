"""Synthetic clips: the ground truth is what the frames show, and the files decode as promised."""

from __future__ import annotations

import math

import av
import cv2
import numpy as np
import pytest

from actionlrp.synthetic import (
    SyntheticObject,
    _object_affine,
    ground_truth_on_grid,
    make_clip,
    moving_square_clip,
    render_scene,
)
from actionlrp.video import grid_size

SMALL = {"width": 96, "height": 72, "n_frames": 24}


def decode_rgb(path) -> tuple[np.ndarray, list[int], str]:
    """Decoded frames (T, H, W, 3) uint8, their picture types and the decoder's codec name."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, types = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            types.append(int(frame.pict_type))
        return np.stack(frames), types, stream.codec_context.name


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="session")
def composite_scene():
    objects = [
        SyntheticObject("translate", 28, centre=(30.0, 30.0), velocity=(1.5, 0.75)),
        SyntheticObject("rotate", 36, centre=(100.0, 40.0), degrees_per_frame=4.0),
        SyntheticObject("grow", 20, centre=(60.0, 90.0), scale_per_frame=1.03),
        SyntheticObject("oscillate", (16, 24), centre=(130.0, 95.0), amplitude=6.0, period=12.0),
    ]
    return render_scene(objects, width=160, height=120, n_frames=20, pan=(-0.6, 0.4), seed=3)


# --------------------------------------------------------------------------------------------
# Ground truth


def test_translating_square_gt_flow_is_velocity_on_square_and_zero_elsewhere():
    square = SyntheticObject("translate", 24, centre=(30.0, 36.0), velocity=(1.5, -0.5))
    scene = render_scene([square], **SMALL)
    for t in range(scene.flow.shape[0]):
        y0, y1, x0, x1 = scene.boxes[t, 0]
        inner = scene.flow[t, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
        assert np.allclose(inner, (1.5, -0.5), atol=1e-5)
        outside = np.ones(scene.flow.shape[1:3], dtype=bool)
        outside[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = False
        assert np.abs(scene.flow[t][outside]).max() == 0.0


def test_gt_flow_sits_on_the_box_of_frame_t_not_of_frame_t_minus_one():
    square = SyntheticObject("translate", 20, centre=(30.5, 36.5), velocity=(6.0, 0.0))
    scene = render_scene([square], **SMALL)
    for t in range(1, 6):
        y0, y1, x0, x1 = scene.boxes[t, 0]
        previous_x0, previous_x1 = scene.boxes[t - 1, 0, 2:]
        assert (previous_x0, previous_x1) == (x0 - 6, x1 - 6)
        assert np.allclose(scene.flow[t, y0:y1, previous_x1:x1], (6.0, 0.0), atol=1e-5)
        assert np.all(scene.flow[t, y0:y1, previous_x0:x0] == 0.0)


def test_boxes_move_by_velocity_each_frame_and_keep_the_square_size():
    square = SyntheticObject("translate", 20, centre=(20.5, 30.5), velocity=(2.0, 1.0))
    scene = render_scene([square], **SMALL)
    t = np.arange(scene.boxes.shape[0])
    shift = scene.boxes[:, 0] - scene.boxes[0, 0]
    expected = np.stack([t, t, 2 * t, 2 * t], axis=1)
    in_view = scene.boxes[:, 0, 3] < SMALL["width"]
    assert in_view.sum() > 10
    assert np.array_equal(shift[in_view], expected[in_view])
    assert np.array_equal(scene.boxes[0, 0], [21, 41, 11, 31])


def test_object_flow_is_non_zero_on_frames_start_plus_one_to_stop():
    square = SyntheticObject("translate", 20, velocity=(2.0, 0.0), start=5, stop=12)
    scene = render_scene([square], **SMALL)
    boxes = scene.boxes[:, 0]
    centre_flow = scene.flow[:, 36, :, 0]
    x_mid = (boxes[:, 2] + boxes[:, 3]) // 2
    own = centre_flow[np.arange(len(x_mid)), x_mid]
    assert np.all(own[:6] == 0.0)
    assert np.allclose(own[6:13], 2.0)
    assert np.all(own[13:] == 0.0)
    assert np.all(boxes[:6] == boxes[0])
    assert np.all(boxes[12:] == boxes[12])
    assert boxes[12, 2] - boxes[5, 2] == 14


def test_camera_pan_moves_background_and_adds_to_object_motion():
    still = SyntheticObject("still", 20, centre=(30.0, 30.0))
    moving = SyntheticObject("translate", 20, centre=(60.0, 40.0), velocity=(2.0, 0.0))
    scene = render_scene([still, moving], pan=(1.0, -0.5), **SMALL)
    assert np.allclose(scene.flow[:, 2, 2], (1.0, -0.5))
    y0, y1, x0, x1 = scene.boxes[4, 0]
    assert np.allclose(scene.flow[4, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2], (1.0, -0.5))
    y0, y1, x0, x1 = scene.boxes[4, 1]
    assert np.allclose(scene.flow[4, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2], (3.0, -0.5))
    assert scene.boxes[10, 0, 2] - scene.boxes[0, 0, 2] == 10


def test_rotation_gt_flow_is_the_clockwise_turn_that_led_to_each_pixel():
    degrees = 5.0
    wheel = SyntheticObject("rotate", 41, centre=(48.0, 36.0), degrees_per_frame=degrees)
    scene = render_scene([wheel], **SMALL)
    flow = scene.flow[3]
    assert np.allclose(flow[36, 48], 0.0, atol=1e-4)
    radius = 15
    chord = 2.0 * radius * math.sin(math.radians(degrees) / 2.0)
    for y, x in ((36, 48 + radius), (36 - radius, 48), (36, 48 - radius), (36 + radius, 48)):
        dx, dy = flow[y, x]
        assert math.hypot(dx, dy) == pytest.approx(chord, rel=1e-4)
    # the pixel right of the centre in frame t came from above-right of it in frame t - 1
    theta = math.radians(degrees)
    arrived = (radius * (1.0 - math.cos(theta)), radius * math.sin(theta))
    assert np.allclose(flow[36, 48 + radius], arrived, atol=1e-4)


def test_growing_object_box_scales_by_the_factor_per_frame():
    balloon = SyntheticObject("grow", 10, scale_per_frame=1.05)
    scene = render_scene([balloon], **SMALL)
    widths = scene.boxes[:, 0, 3] - scene.boxes[:, 0, 2]
    expected = 10 * 1.05 ** np.arange(len(widths))
    visible = expected < SMALL["height"] - 2
    assert np.all(np.abs(widths[visible] - expected[visible]) <= 1.0)
    assert widths[visible][-1] >= 2 * widths[0]


def test_oscillating_object_returns_after_one_period_and_reaches_the_amplitude():
    swing = SyntheticObject("oscillate", 16, amplitude=10.0, period=12.0, axis="y")
    scene = render_scene([swing], **SMALL)
    rows = scene.boxes[:, 0, 0].astype(int)
    assert rows[12] == rows[0]
    assert rows[3] - rows[0] == 10
    assert rows[9] - rows[0] == -10
    assert np.all(scene.boxes[:, 0, 2] == scene.boxes[0, 0, 2])


def test_gt_flow_fetches_each_rendered_frame_from_the_previous_one(composite_scene):
    scene = composite_scene
    frames = scene.frames.astype(np.float32)
    height, width = frames.shape[1:3]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    n_frames, n_objects = scene.boxes.shape[:2]
    errors = np.zeros((n_frames - 1, n_objects))
    baselines = np.zeros((n_frames - 1, n_objects))
    for t in range(1, n_frames):
        flow = scene.flow[t]
        warped = cv2.remap(
            frames[t - 1],
            xs - flow[..., 0],
            ys - flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(-1.0, -1.0, -1.0),
        )
        for k, (y0, y1, x0, x1) in enumerate(scene.boxes[t]):
            interior = np.zeros((height, width), dtype=bool)
            interior[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3] = True
            interior &= warped[..., 0] >= 0
            errors[t - 1, k] = np.abs(warped - frames[t])[interior].mean()
            baselines[t - 1, k] = np.abs(frames[t - 1] - frames[t])[interior].mean()
    assert errors.mean() < 3.0
    assert np.all(errors.mean(axis=0) < 0.25 * baselines.mean(axis=0))


def test_first_frame_flow_continues_the_motion_backwards():
    square = SyntheticObject("translate", 16, centre=(30.0, 30.0), velocity=(1.0, 0.5))
    swing = SyntheticObject("oscillate", 12, centre=(70.0, 40.0), amplitude=4.0, period=10.0)
    scene = render_scene([square, swing], **SMALL)
    y0, y1, x0, x1 = scene.boxes[0, 0]
    assert np.allclose(scene.flow[0, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1], (1.0, 0.5))
    y0, y1, x0, x1 = scene.boxes[0, 1]
    step = 4.0 * math.sin(2.0 * math.pi / 10.0)
    assert np.allclose(scene.flow[0, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1], (step, 0.0), atol=1e-4)


def test_first_frame_flow_is_zero_for_an_object_that_starts_later():
    square = SyntheticObject("translate", 16, centre=(30.0, 30.0), velocity=(1.0, 0.5), start=1)
    scene = render_scene([square], **SMALL)
    assert np.all(scene.flow[:2] == 0.0)
    y0, y1, x0, x1 = scene.boxes[2, 0]
    assert np.allclose(scene.flow[2, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1], (1.0, 0.5))


def test_ground_truth_on_grid_averages_partial_edge_cells(composite_scene):
    scene = composite_scene
    cell = 14
    grid = ground_truth_on_grid(scene, cell)
    t, h, w = scene.flow.shape[:3]
    assert grid.shape == (t, *grid_size(h, w, cell), 2)
    assert h % cell and w % cell
    edge = scene.flow[5, (h // cell) * cell :, (w // cell) * cell :].reshape(-1, 2).mean(axis=0)
    assert np.allclose(grid[5, -1, -1], edge, atol=1e-5)
    inner = scene.flow[5, 14:28, 42:56].reshape(-1, 2).mean(axis=0)
    assert np.allclose(grid[5, 1, 3], inner, atol=1e-5)


def test_unknown_motion_raises_value_error():
    with pytest.raises(ValueError, match="motion"):
        SyntheticObject("jump")


# --------------------------------------------------------------------------------------------
# The motion kinds the built-in actions use (actionlrp.builtin)


def test_bounce_is_a_ballistic_hop_that_lands_after_each_period():
    hop = SyntheticObject("bounce", 10, centre=(50.0, 80.0), amplitude=20.0, period=10.0)
    ys = [hop.pose(t, (0.0, 0.0))[1] for t in range(21)]
    assert ys[0] == ys[10] == pytest.approx(ys[20]) == pytest.approx(80.0)
    assert ys[5] == pytest.approx(60.0)  # the top: amplitude px higher
    steps = np.diff(ys[:6])
    assert np.all(steps < 0) and np.all(np.diff(np.abs(steps)) < 0)  # rises, slowing down


@pytest.mark.parametrize(
    "obj",
    [
        SyntheticObject("swing", (20, 60), amplitude=12.0, period=16.0, pivot=(0.0, 1.0)),
        SyntheticObject("grow", (30, 20), scale_per_frame=1.05, pivot=(0.5, -0.25)),
        SyntheticObject("rotate", (30, 20), degrees_per_frame=7.0, pivot=(1.0, 0.0)),
    ],
    ids=["swing", "grow", "rotate"],
)
def test_the_pivot_stays_in_place(obj):
    h, w = obj.shape
    pivot = np.array([obj.pivot[0] * w - 0.5, obj.pivot[1] * h - 0.5, 1.0])  # texture pixels
    where = [_object_affine(obj, t, (80.0, 60.0), 0.0, 0.0) @ pivot for t in range(12)]
    assert np.allclose(where, where[0], atol=1e-9)
    moved = _object_affine(obj, 5, (80.0, 60.0), 0.0, 0.0)
    assert not np.allclose(moved, _object_affine(obj, 0, (80.0, 60.0), 0.0, 0.0))


def test_default_pivot_keeps_the_existing_motions_unchanged():
    rotate = SyntheticObject("rotate", 30, centre=(40.0, 50.0), degrees_per_frame=5.0)
    grow = SyntheticObject("grow", 30, centre=(40.0, 50.0), scale_per_frame=1.1)
    assert rotate.pose(7, (0.0, 0.0)) == (40.0, 50.0, 35.0, 1.0)
    assert grow.pose(3, (0.0, 0.0)) == (40.0, 50.0, 0.0, pytest.approx(1.1**3))


# --------------------------------------------------------------------------------------------
# Encoding


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
@pytest.mark.parametrize("codec,decoder", [("libx264", "h264"), ("mpeg4", "mpeg4")])
def test_encoded_clip_decodes_to_n_frames_of_the_right_size(clip_dir, codec, decoder, suffix):
    clip = moving_square_clip(clip_dir / f"square_{codec}{suffix}", codec=codec, size=32, **SMALL)
    frames, _, name = decode_rgb(clip.path)
    assert frames.shape == (SMALL["n_frames"], SMALL["height"], SMALL["width"], 3)
    assert name == decoder
    assert clip.flow.shape == (SMALL["n_frames"], SMALL["height"], SMALL["width"], 2)
    assert clip.boxes.shape == (SMALL["n_frames"], 1, 4)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_decoded_frames_match_the_rendered_scene(clip_dir, codec):
    square = SyntheticObject("translate", 24, velocity=(1.5, 0.5))
    clip = make_clip(clip_dir / f"render_{codec}.mkv", [square], codec=codec, seed=4, **SMALL)
    decoded, _, _ = decode_rgb(clip.path)
    rendered = render_scene([square], seed=4, **SMALL).frames
    other_seed = render_scene([square], seed=5, **SMALL).frames
    mse = np.mean((decoded.astype(np.float64) - rendered) ** 2)
    assert 10.0 * np.log10(255.0**2 / mse) > 30.0
    assert np.mean((decoded.astype(np.float64) - other_seed) ** 2) > 10.0 * mse


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_b_frames_option_gives_b_frames_in_a_fixed_pattern(clip_dir, codec):
    clip = moving_square_clip(clip_dir / f"bframes_{codec}.mp4", codec=codec, b_frames=2, **SMALL)
    _, types, _ = decode_rgb(clip.path)
    b = int(av.video.frame.PictureType.B)
    assert types[0] == int(av.video.frame.PictureType.I)
    assert types[1:3] == [b, b]
    assert types.count(b) >= len(types) // 2


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_no_b_frames_by_default(clip_dir, codec):
    clip = moving_square_clip(clip_dir / f"nob_{codec}.mp4", codec=codec, **SMALL)
    _, types, _ = decode_rgb(clip.path)
    assert int(av.video.frame.PictureType.B) not in types


def test_same_seed_gives_identical_file_and_pixels_and_another_seed_does_not(clip_dir):
    # mbtree=0: x264's macroblock-tree rate control is not repeatable (module docstring).
    kw = dict(codec="libx264", b_frames=2, encoder_options={"mbtree": "0"}, **SMALL)
    first = moving_square_clip(clip_dir / "seed0a.mkv", seed=0, **kw)
    second = moving_square_clip(clip_dir / "seed0b.mkv", seed=0, **kw)
    other = moving_square_clip(clip_dir / "seed1.mkv", seed=1, **kw)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert np.array_equal(decode_rgb(first.path)[0], decode_rgb(second.path)[0])
    assert not np.array_equal(decode_rgb(first.path)[0], decode_rgb(other.path)[0])


def test_sizes_not_multiple_of_16_encode_and_decode(clip_dir):
    clip = moving_square_clip(clip_dir / "odd.mp4", size=24, width=90, height=70, n_frames=20)
    frames, _, _ = decode_rgb(clip.path)
    assert frames.shape == (20, 70, 90, 3)
    assert ground_truth_on_grid(clip).shape == (20, 9, 12, 2)


def test_frame_rate_is_stored_in_the_clip_and_the_stream(clip_dir):
    clip = moving_square_clip(clip_dir / "rate.mp4", fps=30, **SMALL)
    with av.open(str(clip.path)) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(30.0)
    assert clip.fps == 30.0


@pytest.mark.parametrize("width,height", [(95, 72), (96, 71)])
def test_odd_width_or_height_raises_value_error(clip_dir, width, height):
    with pytest.raises(ValueError, match="even"):
        moving_square_clip(clip_dir / "bad.mp4", width=width, height=height, n_frames=4)


def test_unknown_container_suffix_raises_value_error(clip_dir):
    with pytest.raises(ValueError, match="suffix"):
        moving_square_clip(clip_dir / "clip.xyz", n_frames=4)
