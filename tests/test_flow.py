"""Farnebäck reference field: right motion on known clips, right grid, right errors."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from actionlrp.errors import VideoError
from actionlrp.flow import average_on_grid, farneback_motion_field
from actionlrp.synthetic import (
    SyntheticObject,
    ground_truth_on_grid,
    make_clip,
    moving_square_clip,
    render_scene,
)
from actionlrp.video import grid_size

CELL = 8


def interior_cells(box: np.ndarray, cell: int = CELL) -> tuple[slice, slice]:
    """Grid rows and columns of the cells at least one cell inside a (y0, y1, x0, x1) box."""
    y0, y1, x0, x1 = (int(v) for v in box)
    return slice(-(-y0 // cell) + 1, y1 // cell - 1), slice(-(-x0 // cell) + 1, x1 // cell - 1)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("flow")


@pytest.fixture(scope="session")
def square(clip_dir):
    clip = moving_square_clip(clip_dir / "square.mp4", vx=2.0, n_frames=30)
    return clip, farneback_motion_field(clip.path)


@pytest.fixture(scope="session")
def odd_square(clip_dir):
    clip = moving_square_clip(clip_dir / "odd.mkv", size=24, width=90, height=70, n_frames=20)
    return clip, farneback_motion_field(clip.path)


def test_square_moving_right_gives_plus_two_px_on_interior_cells(square):
    clip, field = square
    means = []
    for t in range(1, clip.n_frames):
        rows, cols = interior_cells(clip.boxes[t, 0])
        means.append(field.flow[t, rows, cols].reshape(-1, 2).mean(axis=0))
    dx, dy = np.mean(means, axis=0)
    assert dx == pytest.approx(2.0, abs=0.3)
    assert dy == pytest.approx(0.0, abs=0.3)
    assert np.all(np.abs(np.asarray(means)[:, 0] - 2.0) < 0.5)


def test_still_background_has_near_zero_flow(square):
    clip, field = square
    gh, gw = field.flow.shape[1:3]
    background = np.ones((gh, gw), dtype=bool)
    y0, x0 = clip.boxes[:, 0, [0, 2]].min(axis=0) // CELL
    y1, x1 = -(-clip.boxes[:, 0, [1, 3]].max(axis=0) // CELL)
    background[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
    assert background.sum() >= 40
    speed = np.linalg.norm(field.flow[:, background], axis=-1)
    assert speed.mean() < 0.05
    assert speed.max() < 0.3


def test_endpoint_error_against_ground_truth_is_below_bounds(square, odd_square):
    for clip, field in (square, odd_square):
        truth = ground_truth_on_grid(clip, CELL)[1:]
        error = np.linalg.norm(field.flow[1:] - truth, axis=-1)
        on_square = np.linalg.norm(truth, axis=-1) >= 1.99
        assert on_square.sum() >= 20
        assert error.mean() < 0.15
        assert error[on_square].mean() < 0.4


def test_camera_pan_gives_the_pan_everywhere(clip_dir):
    pan = (-1.5, 0.5)
    objects = [SyntheticObject("still", 24)]
    clip = make_clip(clip_dir / "pan.mp4", objects, width=96, height=72, n_frames=20, pan=pan)
    field = farneback_motion_field(clip.path)
    inner = field.flow[1:, 2:-2, 2:-2].reshape(-1, 2)
    assert np.allclose(inner.mean(axis=0), pan, atol=0.1)
    assert np.abs(inner - pan).max() < 0.5


def test_field_shape_matches_grid_size_for_sizes_not_multiple_of_the_cell(odd_square, clip_dir):
    clip, field = odd_square
    assert field.flow.shape == (20, *grid_size(70, 90, CELL), 2) == (20, 9, 12, 2)
    assert field.flow.dtype == np.float32
    coarse = farneback_motion_field(clip.path, cell=16)
    assert coarse.flow.shape == (20, 5, 6, 2)
    assert coarse.cell == 16


def test_field_metadata_describes_the_clip(square):
    clip, field = square
    assert field.method == "flow"
    assert (field.width, field.height) == (clip.width, clip.height)
    assert field.fps == pytest.approx(clip.fps)
    assert field.codec == "h264"
    assert "mp4" in field.container
    assert field.has_vectors.dtype == bool and field.has_vectors.all()
    assert field.has_vectors.shape == (clip.n_frames,)
    assert np.allclose(field.timestamps, np.arange(clip.n_frames) / clip.fps)
    assert field.frame_types[0] == "I"
    assert set(field.frame_types[1:]) == {"P"}


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_b_frame_clip_in_avi_gives_picture_types_increasing_times_and_motion(clip_dir, codec):
    clip = moving_square_clip(
        clip_dir / f"bframes_{codec}.avi",
        codec=codec,
        b_frames=2,
        width=96,
        height=72,
        n_frames=20,
        size=32,
    )
    field = farneback_motion_field(clip.path)
    assert "".join(field.frame_types[:7]) == "IBBPBBP"
    assert np.allclose(np.diff(field.timestamps), 1.0 / clip.fps)
    if codec == "libx264":  # AVI carries H.264 B-frame times out of order: frame counts instead
        assert np.allclose(field.timestamps, np.arange(clip.n_frames) / clip.fps)
    for t in range(1, clip.n_frames):
        rows, cols = interior_cells(clip.boxes[t, 0])
        if rows.start < rows.stop and cols.start < cols.stop:
            mean = field.flow[t, rows, cols].reshape(-1, 2).mean(axis=0)
            assert np.allclose(mean, (2, 0), atol=0.3), t


def test_timestamps_are_the_presentation_times_when_they_increase(clip_dir):
    scene = render_scene([SyntheticObject("translate", 24)], width=96, height=72, n_frames=8)
    millis = [0, 40, 80, 160, 200, 280, 320, 400]
    path = clip_dir / "variable_rate.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"bf": "0", "threads": "1"}
        for pts, rgb in zip(millis, scene.frames, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    field = farneback_motion_field(path)
    assert np.allclose(field.timestamps, np.array(millis) / 1000.0)


def test_first_frame_repeats_the_flow_of_frame_one(square):
    _, field = square
    assert np.array_equal(field.flow[0], field.flow[1])
    assert np.abs(field.flow[0]).max() > 1.0
    assert not np.array_equal(field.flow[-1], field.flow[-2])


def test_motion_between_two_frames_lands_on_the_later_frame(clip_dir):
    jump = SyntheticObject(
        "translate", 40, centre=(54.0, 48.0), velocity=(6.0, 0.0), start=5, stop=6
    )
    clip = make_clip(clip_dir / "jump.mp4", [jump], width=160, height=96, n_frames=10)
    field = farneback_motion_field(clip.path)
    rows, cols = interior_cells(clip.boxes[6, 0])
    assert np.allclose(field.flow[6, rows, cols].reshape(-1, 2).mean(axis=0), (6, 0), atol=0.3)
    speed = np.linalg.norm(field.flow, axis=-1).max(axis=(1, 2))
    assert np.all(np.delete(speed, 6) < 0.1)


def test_farneback_parameters_reach_opencv(clip_dir):
    clip = moving_square_clip(
        clip_dir / "fast.mp4", vx=6.0, size=40, width=160, height=96, n_frames=12
    )
    default = farneback_motion_field(clip.path)
    no_pyramid = farneback_motion_field(clip.path, levels=0)
    for field, low, high in ((default, 5.5, 6.5), (no_pyramid, -3.0, 3.0)):
        dx = [
            field.flow[t, rows, cols, 0].mean()
            for t in range(1, clip.n_frames)
            for rows, cols in [interior_cells(clip.boxes[t, 0])]
        ]
        assert low < np.mean(dx) < high


def test_truncated_clip_gives_the_field_of_the_frames_that_decode(odd_square, clip_dir):
    clip, _ = odd_square
    data = clip.path.read_bytes()
    cut = clip_dir / "cut.mkv"
    cut.write_bytes(data[: 3 * len(data) // 4])
    field = farneback_motion_field(cut)
    assert 1 < field.n_frames < clip.n_frames
    assert field.flow.shape == (field.n_frames, 9, 12, 2)
    assert field.frame_types.shape == field.timestamps.shape == (field.n_frames,)


def test_missing_file_raises_video_error(clip_dir):
    with pytest.raises(VideoError, match="no such file"):
        farneback_motion_field(clip_dir / "absent.mp4")


def test_file_that_is_not_a_video_raises_video_error(clip_dir):
    text = clip_dir / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VideoError, match="notes.mp4"):
        farneback_motion_field(text)


def test_non_positive_cell_raises_value_error(square):
    clip, _ = square
    with pytest.raises(ValueError, match="cell"):
        farneback_motion_field(clip.path, cell=0)


def test_average_on_grid_means_full_and_partial_cells():
    dense = np.arange(2 * 5 * 7 * 2, dtype=np.float32).reshape(2, 5, 7, 2)
    grid = average_on_grid(dense, 4)
    assert grid.shape == (2, 2, 2, 2)
    assert np.allclose(grid[1, 0, 0], dense[1, :4, :4].reshape(-1, 2).mean(axis=0))
    assert np.allclose(grid[0, 1, 1], dense[0, 4:, 4:].reshape(-1, 2).mean(axis=0))
    assert np.allclose(grid[0, 0, 1], dense[0, :4, 4:].reshape(-1, 2).mean(axis=0))
