"""The reference picture of each H.264 block, found in the decoded pixels (design §1)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from test_codec import CELL, interior_mask

from actionlrp import codec, h264, references, synthetic
from actionlrp.codec import read_motion_field
from actionlrp.synthetic import SyntheticObject, ground_truth_on_grid
from actionlrp.video import _PICTURE_TYPES

SPEED = 3.0  # px per frame


def band_clip(
    path, ref: int, pyramid: str, b_frames: int, n_frames: int = 40
) -> synthetic.SyntheticClip:
    """A textured band across the picture, a third of its height, moving right at `SPEED`."""
    band = SyntheticObject("translate", size=(40, 480), centre=(80.0, 60.0), velocity=(SPEED, 0))
    params = f"ref={ref}:b-pyramid={pyramid}"
    return synthetic.make_clip(
        path, [band], n_frames=n_frames, b_frames=b_frames, encoder_options={"x264-params": params}
    )


def band_epe(flow: np.ndarray, clip) -> float:
    """Mean end-point error over the band's interior cells, frames 1 … T − 2, in px/frame."""
    truth = ground_truth_on_grid(clip, CELL)
    inside = interior_mask(clip.boxes, flow.shape[:3])
    inside[0] = inside[-1] = False
    return float(np.linalg.norm(flow - truth, axis=-1)[inside].mean())


@pytest.mark.parametrize(
    ("ref", "pyramid", "b_frames"),
    [
        (1, "none", 0),
        (3, "none", 0),
        (5, "none", 0),
        (1, "none", 3),
        (3, "none", 3),
        (5, "none", 3),
        (1, "normal", 3),
        (3, "normal", 3),
        (5, "normal", 3),
    ],
)
def test_band_speed_is_right_whatever_the_reference_frames(clip_dir, ref, pyramid, b_frames):
    # x264 predicts some blocks from 2 … ref frames back; read as one frame back they would
    # show 2 … 5 times the speed (EPE 0.11 … 1.7 px/frame before the references were matched).
    clip = band_clip(clip_dir / f"band_r{ref}_{pyramid}_b{b_frames}.mp4", ref, pyramid, b_frames)
    field = read_motion_field(clip.path)
    assert band_epe(field.flow, clip) <= 0.1
    # The band covers a third of the picture: the mean flow is a third of its speed.
    assert field.mean_flow()[0] == pytest.approx(SPEED / 3, abs=0.1)


def test_blocks_from_several_frames_back_are_found(clip_dir):
    clip = band_clip(clip_dir / "band_counts.mp4", 5, "none", 0)
    distances = _matched_distances(clip.path)
    # x264 used references beyond the previous frame, and they were found.
    assert np.count_nonzero(distances > 1) > 20
    assert set(np.unique(distances)) <= {1, 2, 3, 4, 5}


def _matched_distances(path) -> np.ndarray:
    """The distance in frames each moving vector of a clip was given (its scale over 4)."""
    seen: list[np.ndarray] = []
    original = references._match_frames

    def spy(*args):
        original(*args)
        lo, hi, first, starts = args[8], args[9], args[11], args[12]
        motion_x, scale = args[18], args[20]
        part = slice(starts[lo - first], starts[hi - first])
        seen.append((scale[part] // 4)[motion_x[part] != 0])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(references, "_match_frames", spy)
        read_motion_field(path)
    return np.concatenate(seen)


def test_same_clip_same_field(clip_dir, monkeypatch):
    clip = band_clip(clip_dir / "band_twice.mp4", 3, "normal", 3)
    first = read_motion_field(clip.path).flow
    assert np.array_equal(read_motion_field(clip.path).flow, first)
    # A small ring makes the decoding thread wait for the match more often: still the same.
    monkeypatch.setattr(references, "_RING_BYTES", 0)
    assert references._ReferenceMatcher(120, 160, 4, references._Workspace()).n_slots == 16
    assert np.array_equal(read_motion_field(clip.path).flow, first)


def test_unusable_pixels_keep_the_structural_distance(clip_dir, monkeypatch):
    # 10-bit luma is not read: every frame keeps the distance from the picture structure.
    band = SyntheticObject("translate", size=(40, 480), centre=(80.0, 60.0), velocity=(SPEED, 0))
    scene = synthetic.render_scene([band], width=160, height=120, n_frames=20)
    path = clip_dir / "band_10bit.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p10le"
        stream.options = {"x264-params": "ref=3", "bf": "0", "threads": "1"}
        for rgb in scene.frames:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            out.mux(stream.encode(frame.reformat(format="yuv420p10le")))
        out.mux(stream.encode(None))
    matched = read_motion_field(path)
    monkeypatch.setattr(codec, "reference_candidates", lambda extradata: 1)
    structural = read_motion_field(path)
    assert matched.has_vectors.sum() > 10
    assert np.array_equal(matched.flow, structural.flow)


def test_sps_gives_the_number_of_reference_frames(clip_dir):
    for ref in (1, 3, 5):
        clip = band_clip(clip_dir / f"band_sps{ref}.mp4", ref, "none", 0, n_frames=4)
        with av.open(str(clip.path)) as container:
            extradata = container.streams.video[0].codec_context.extradata
        assert h264.max_reference_frames(extradata) == ref
        size = int.from_bytes(extradata[6:8], "big")
        annex_b = b"\x00\x00\x00\x01" + extradata[8 : 8 + size]
        assert h264.max_reference_frames(annex_b) == ref
    assert h264.max_reference_frames(None) is None
    assert h264.max_reference_frames(b"\x01\x64\x00") is None
    assert references.reference_candidates(b"not an avcC record") == references._DEFAULT_REFS


def test_packets_say_which_pictures_are_references(clip_dir):
    clip = band_clip(clip_dir / "band_nal.mp4", 3, "normal", 3)
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        length = h264.nal_length_size(stream.codec_context.extradata)
        flags = {p.pts: h264.packet_reference(p, length) for p in container.demux(stream)}
    with av.open(str(clip.path)) as container:
        kinds = {f.pts: _PICTURE_TYPES[int(f.pict_type)] for f in container.decode(video=0)}
    assert length == 4
    assert all(flags[pts] == 1 for pts, kind in kinds.items() if kind in ("I", "P"))
    b_flags = [flags[pts] for pts, kind in kinds.items() if kind == "B"]
    # A B-pyramid: the middle B-frame of each group is a reference picture, the others not.
    assert b_flags.count(1) >= 5 and b_flags.count(0) >= 10
