"""Motion vectors from the bitstream: signs, sizes, codecs, containers and bad input."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import shared_clips

from actionlrp import codec, raster, synthetic, video
from actionlrp.codec import FAST_DECODER_OPTIONS, read_motion_field
from actionlrp.errors import NoMotionVectorsError, VideoError
from actionlrp.synthetic import SyntheticObject, ground_truth_on_grid
from actionlrp.video import MotionField

CELL = 8


def interior_mask(boxes: np.ndarray, grid: tuple[int, int, int], margin: int = 8) -> np.ndarray:
    """(T, gh, gw) True on cells wholly inside object 0's box, ``margin`` px in from its edge.

    The margin keeps out the cells of 16-px macroblocks that straddle the edge: one vector
    there serves object and background alike.
    """
    t, gh, gw = grid
    cell = CELL
    rows, cols = np.arange(gh) * cell, np.arange(gw) * cell
    y0, y1, x0, x1 = (boxes[:, 0, i][:, None] for i in range(4))
    y0, y1, x0, x1 = y0 + margin, y1 - margin, x0 + margin, x1 - margin
    inside_y = (rows >= y0) & (rows + cell <= y1)
    inside_x = (cols >= x0) & (cols + cell <= x1)
    return inside_y[:, :, None] & inside_x[:, None, :]


def background_mask(boxes: np.ndarray, grid: tuple[int, int, int], margin: int = 16) -> np.ndarray:
    """(T, gh, gw) True on cells at least ``margin`` px away from object 0's box."""
    t, gh, gw = grid
    rows, cols = np.arange(gh) * CELL, np.arange(gw) * CELL
    y0, y1, x0, x1 = (boxes[:, 0, i][:, None] for i in range(4))
    near_y = (rows + CELL > y0 - margin) & (rows < y1 + margin)
    near_x = (cols + CELL > x0 - margin) & (cols < x1 + margin)
    return ~(near_y[:, :, None] & near_x[:, None, :])


def object_flow(field: MotionField, clip) -> np.ndarray:
    """Mean flow over the square's interior cells, frames 1 … T−2."""
    mask = interior_mask(clip.boxes, field.grid_shape)
    mask[0] = mask[-1] = False
    return field.flow[mask].mean(axis=0)


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_rightward_square_moves_plus_two_px_per_frame(square_clips, name):
    clip = square_clips[name, 0]
    field = read_motion_field(clip.path)
    dx, dy = object_flow(field, clip)
    assert dx == pytest.approx(2.0, abs=0.2)
    assert dy == pytest.approx(0.0, abs=0.2)
    still = background_mask(clip.boxes, field.grid_shape)
    assert np.abs(field.flow[still]).mean() < 0.05


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_sub_pixel_downward_motion_is_positive_dy(clip_dir, name):
    # x264's default of three reference frames: a 1.5 px/frame block is often predicted from
    # two frames back (3 px, whole pixels), which the decoded pixels tell (`references`).
    suffix = ".mp4" if name == "libx264" else ".avi"
    clip = synthetic.moving_square_clip(
        clip_dir / f"down_{name}{suffix}", codec=name, vx=0.0, vy=1.5, n_frames=30
    )
    dx, dy = object_flow(read_motion_field(clip.path), clip)
    assert dy == pytest.approx(1.5, abs=0.2)
    assert abs(dx) < 0.2


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_endpoint_error_against_ground_truth_is_small(square_clips, name):
    clip = square_clips[name, 0]
    field = read_motion_field(clip.path)
    truth = ground_truth_on_grid(clip, CELL)
    assert truth.shape == field.flow.shape
    epe = np.linalg.norm(field.flow - truth, axis=-1)
    # Bounds: 0.15 px per frame on average over every cell and frame, and exact on 90 % of them;
    # only cells straddling the square's edge mix its 2 px/frame with the still background.
    assert epe.mean() < 0.15
    assert np.percentile(epe, 90) < 0.1
    assert np.percentile(epe, 99.5) <= 2.0


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_b_frame_clip_agrees_with_p_only_clip(square_clips, name):
    p_only = read_motion_field(square_clips[name, 0].path)
    with_b = read_motion_field(square_clips[name, 2].path)
    assert "B" in set(with_b.frame_types) and "B" not in set(p_only.frame_types)
    a = object_flow(p_only, square_clips[name, 0])
    b = object_flow(with_b, square_clips[name, 2])
    assert np.abs(a - b).max() < 0.3
    assert b[0] > 1.6


def test_h264_b_pyramid_references_are_found(clip_dir):
    clip = synthetic.moving_square_clip(
        clip_dir / "pyramid.mp4",
        b_frames=3,
        encoder_options={"x264-params": "b-pyramid=normal:ref=1"},
        n_frames=40,
    )
    field = read_motion_field(clip.path)
    mask = interior_mask(clip.boxes, field.grid_shape)
    per_frame = np.array([field.flow[t][mask[t]][:, 0].mean() for t in range(1, 39)])
    # A wrong reference distance would show as 1, 4 or 6 px per frame on whole frames.
    assert np.all(np.abs(per_frame - 2.0) < 0.75), per_frame.round(2)


def test_i_frames_are_filled_from_neighbours(square_clips):
    clip = square_clips["libx264", 0]
    field = read_motion_field(clip.path)
    assert field.frame_types[0] == "I" and not field.has_vectors[0]
    assert field.has_vectors[1:].all()
    mask = interior_mask(clip.boxes, field.grid_shape)[1]
    assert np.allclose(field.flow[0][mask], field.flow[1][mask])


def test_vector_copies_match_pyav_arrays(square_clips):
    fields = ["source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y"]
    with av.open(str(square_clips["libx264", 2].path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        n = 0
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            ours = codec._vector_bytes(frame)
            if side is None:
                assert ours is None
                continue
            expected = side.to_ndarray()
            assert raster._MV_DTYPE.itemsize == expected.dtype.itemsize
            got = np.frombuffer(ours, raster._MV_DTYPE)
            for name in [*fields, "motion_scale"]:
                assert np.array_equal(got[name], expected[name]), name
            n += 1
    assert n > 10


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_field_does_not_depend_on_the_announced_frame_count(square_clips, monkeypatch, name):
    clip = square_clips[name, 2]
    expected = read_motion_field(clip.path)
    builder = codec._FieldBuilder

    def announcing(n: int):
        return lambda *args, **kw: builder(*args, **{**kw, "frames_hint": n})

    for hint in (0, 1, 7, 1000):  # none, far too few (the flow grows), far too many
        monkeypatch.setattr(codec, "_FieldBuilder", announcing(hint))
        field = read_motion_field(clip.path)
        assert field.flow.shape == expected.flow.shape
        assert np.array_equal(field.flow, expected.flow)
        assert field.flow.base is None or field.flow.base.shape[0] == field.n_frames


def _exported_vectors(path, options: dict[str, str]) -> list[list | None]:
    """Each frame's vectors as FFmpeg exports them (the fields, not the padding between)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {**options, "flags2": "+export_mvs"}
        frames = [codec._vector_bytes(frame) for frame in container.decode(stream)]
    names = raster._MV_DTYPE.names
    records = (None if v is None else np.frombuffer(v, raster._MV_DTYPE) for v in frames)
    return [None if r is None else [r[name].tolist() for name in names] for r in records]


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_fast_decoder_options_leave_vectors_unchanged(square_clips, name):
    clip = square_clips[name, 2]
    options = [{}, FAST_DECODER_OPTIONS, {"skip_idct": "all"}, codec._QUICK_DECODER_OPTIONS]
    plain, *others = (_exported_vectors(clip.path, o) for o in options)
    assert sum(v is not None for v in plain) > 30
    for vectors in others:
        assert vectors == plain
    plain, *others = (read_motion_field(clip.path, decoder_options=o).flow for o in options)
    for flow in others:
        if name == "mpeg4":
            assert np.array_equal(flow, plain)
        else:
            # H.264 with 3 reference pictures also reads the pixels (which picture each block
            # predicts from), and the loop filter changes them: a rare ambiguous block may go
            # the other way.
            assert np.mean(np.any(flow != plain, axis=-1)) < 0.002


@pytest.mark.parametrize("damaged", [False, True])
def test_quick_first_pass_leaves_the_field_unchanged(square_clips, tmp_path, damaged):
    # MPEG-4 is first decoded without IDCT at 1/8 size. On a damaged stream that pass would
    # differ (error concealment looks at the pixels), so it must give way to a full decode.
    path = square_clips["mpeg4", 2].path
    if damaged:
        with av.open(str(path)) as c:
            packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(1)
        for pos, size in packets[8:30:5]:
            garbage = rng.integers(0, 256, size - size // 2).astype(np.uint8)
            data[pos + size // 2 : pos + size] = garbage.tobytes()
        path = tmp_path / "damaged.avi"
        path.write_bytes(bytes(data))
    with video.open_video(path) as (container, stream):
        first = codec._decode_vectors(
            path, container, stream, CELL, codec._QUICK_DECODER_OPTIONS, 0, quick=True
        )
    assert (first is None) == damaged
    low = read_motion_field(path)
    full = read_motion_field(path, decoder_options=FAST_DECODER_OPTIONS)
    assert (low.width, low.height) == (full.width, full.height)
    assert np.array_equal(low.flow, full.flow)
    assert np.array_equal(low.frame_types, full.frame_types)
    assert np.array_equal(low.timestamps, full.timestamps)


@pytest.mark.parametrize(
    "suffix,name,size",
    [(".avi", "mpeg4", (150, 106)), (".mkv", "libx264", (150, 106)), (".mp4", "libx264", (96, 64))],
)
def test_containers_and_odd_sizes(clip_dir, suffix, name, size):
    width, height = size
    clip = synthetic.moving_square_clip(
        clip_dir / f"odd_{width}x{height}{suffix}",
        codec=name,
        size=32,
        width=width,
        height=height,
        n_frames=24,
    )
    field = read_motion_field(clip.path)
    assert (field.width, field.height) == (width, height)
    assert field.flow.shape == (24, -(-height // CELL), -(-width // CELL), 2)
    assert object_flow(field, clip)[0] == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("name", ["msmpeg4", "mpeg2video", "h263p"])
def test_other_codecs_with_vectors(clip_dir, name):
    clip = synthetic.moving_square_clip(
        clip_dir / f"square_{name}.avi", codec=name, n_frames=24, width=176, height=144
    )
    field = read_motion_field(clip.path)
    assert field.codec == {"msmpeg4": "msmpeg4", "mpeg2video": "mpeg2video", "h263p": "h263"}[name]
    assert object_flow(field, clip)[0] == pytest.approx(2.0, abs=0.3)


def test_variable_frame_rate_keeps_every_frame(clip_dir):
    path = clip_dir / "vfr.mkv"
    scene = synthetic.render_scene(
        [SyntheticObject("translate", size=32, velocity=(2.0, 0.0))],
        width=96,
        height=64,
        n_frames=20,
        pan=(0.0, 0.0),
        seed=3,
    )
    pts = np.cumsum([0] + [1, 3] * 9 + [2])  # irregular gaps, in 1/30 s
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 30)
        for p, rgb in zip(pts, scene.frames, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = int(p), Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    field = read_motion_field(path)
    assert field.n_frames == 20
    gaps = np.diff(field.timestamps)
    assert np.all(gaps > 0) and gaps.max() > 2 * gaps.min()


def test_clip_with_audio(shared_data):
    path = shared_data / "formats" / "kinetics" / "R6llTwEh07w.mp4"
    with av.open(str(path)) as c:
        assert c.streams.audio, "this clip is expected to carry audio"
    field = read_motion_field(path)
    assert field.n_frames > 100 and field.has_vectors.sum() > 100


def _decoded_frames(path) -> tuple[int, int, int]:
    with av.open(str(path), metadata_errors="ignore") as c:
        stream = c.streams.video[0]
        n = sum(1 for _ in c.decode(stream))
        return n, stream.codec_context.width, stream.codec_context.height


@pytest.mark.parametrize(
    "path",
    shared_clips()
    or [pytest.param(None, marks=pytest.mark.skip(reason="../shared/data not found"))],
    ids=lambda p: p.name if p else "none",
)
def test_every_shared_clip_decodes_to_a_field(path):
    field = read_motion_field(path)
    n, width, height = _decoded_frames(path)
    assert field.n_frames == n > 0
    assert (field.width, field.height) == (width, height)
    assert field.flow.shape[1:3] == (-(-height // CELL), -(-width // CELL))
    anchors = np.isin(field.frame_types, ["P", "S"])
    assert field.has_vectors[anchors].mean() > 0.9
    assert np.isfinite(field.flow).all()
    assert np.abs(field.flow).max() > 0.5


def test_shared_data_is_present_or_skipped(shared_data):
    assert len(shared_clips()) >= 100


# -------------------------------------------------------------------------------------------
# Bad input


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_motion_field(tmp_path / "nope.mp4")


def test_directory(tmp_path):
    with pytest.raises(VideoError, match="is a directory"):
        read_motion_field(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty file"):
        read_motion_field(tmp_path / "empty.mp4")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(VideoError, match="notes.mp4: not a readable video"):
        read_motion_field(path)


def test_truncated_stream_uses_what_decodes(square_clips, tmp_path):
    src = square_clips["libx264", 0].path
    full = read_motion_field(src)
    # An MKV is streamable, so a cut leaves a decodable prefix.
    mkv = tmp_path / "whole.mkv"
    synthetic.moving_square_clip(mkv, n_frames=40)
    data = mkv.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    part = read_motion_field(cut)
    assert 0 < part.n_frames < full.n_frames
    # An MP4 cut before its index: nothing decodes.
    mp4 = tmp_path / "cut.mp4"
    mp4.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(VideoError, match="cut.mp4"):
        read_motion_field(mp4)


def test_corrupt_frame_payloads_are_survived(tmp_path):
    path = tmp_path / "whole.mkv"
    synthetic.moving_square_clip(path, n_frames=40)
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for pos, size in packets[10:30:4]:  # garble the second half of five frames
        data[pos + size // 2 : pos + size] = (
            rng.integers(0, 256, size - size // 2).astype(np.uint8).tobytes()
        )
    bad = tmp_path / "corrupt.mkv"
    bad.write_bytes(bytes(data))
    field = read_motion_field(bad)
    assert field.n_frames >= 35
    assert np.isfinite(field.flow).all()


@pytest.fixture(scope="module")
def mjpeg_clip(clip_dir):
    """A moving square encoded as MJPEG with PyAV (MJPEG has no motion vectors)."""
    clip = synthetic.moving_square_clip(clip_dir / "square_for_mjpeg.mp4", n_frames=20)
    scene = synthetic.render_scene(
        clip.objects, width=clip.width, height=clip.height, n_frames=20, pan=(0.0, 0.0), seed=0
    )
    path = clip_dir / "square_mjpeg.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuvj420p"
        for rgb in scene.frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return dataclasses.replace(clip, path=path)


def test_codec_without_vectors_says_so_and_points_at_transcode(mjpeg_clip):
    with pytest.raises(NoMotionVectorsError, match=r"MJPEG exports no motion vectors.*--transcode"):
        read_motion_field(mjpeg_clip.path)


def test_transcode_extracts_vectors_of_a_codec_without_them(mjpeg_clip):
    field = read_motion_field(mjpeg_clip.path, transcode=True)
    assert field.codec == "mjpeg->mpeg4"
    assert field.n_frames == 20
    assert object_flow(field, mjpeg_clip)[0] == pytest.approx(2.0, abs=0.3)


def test_transcode_leaves_no_temporary_file(mjpeg_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(codec.tempfile, "tempdir", str(tmp_path))
    read_motion_field(mjpeg_clip.path, transcode=True)
    assert list(tmp_path.iterdir()) == []


def test_memory_does_not_grow_beyond_the_field(clip_dir):
    import tracemalloc

    short = synthetic.moving_square_clip(clip_dir / "mem_short.mp4", n_frames=30)
    long = synthetic.moving_square_clip(clip_dir / "mem_long.mp4", n_frames=300)
    peaks = []
    for clip in (short, long):
        tracemalloc.start()
        field = read_motion_field(clip.path)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_frame = (peaks[1] - peaks[0]) / 270
    # The field itself is gh·gw·2 float32 per frame; the working arrays stay within a small
    # multiple of it per frame (no decoded picture is kept).
    assert per_frame < 8 * field.flow[0].nbytes, (per_frame, field.flow[0].nbytes)


def test_workspace_keeps_its_smallest_arrays_up_to_a_total():
    from actionlrp._scratch import _Workspace

    work = _Workspace()
    small = work.array("small", (1000,))
    huge = work.array("huge", (5 << 20,))  # 20 MB: over keep_bytes
    blocks = [work.array(f"block {i}", (4 << 20,)) for i in range(5)]  # 16 MB each
    work.trim()
    assert np.shares_memory(small, work.array("small", (1000,)))
    kept = [np.shares_memory(b, work.array(f"block {i}", (4 << 20,))) for i, b in enumerate(blocks)]
    assert sum(kept) == 3  # 3 × 16 MB + the small one ≤ 64 MB; a fourth would not fit
    assert not np.shares_memory(huge, work.array("huge", (10,)))  # dropped: handed out afresh
