"""Shared fixtures: small clips encoded once per session, and the real clips of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import av
import pytest

from actionlrp import synthetic
from actionlrp.synthetic import SyntheticObject

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ACTIONLRP_SHARED_DATA", ROOT.parent / "shared" / "data"))
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov"}


def motion_model(n_components: int, pca_dims: int | None = None, **options):
    """A small `ActionModel` of motion alone (HOF, MBHx, MBHy), in this process, for fields
    read without HOG."""
    from actionlrp.descriptors import DescriptorParams
    from actionlrp.model import ActionModel

    return ActionModel(
        n_components=n_components,
        pca_dims=pca_dims,
        descriptor_params=DescriptorParams(hog=False),
        max_samples=5000,
        n_jobs=1,
        progress=False,
        **options,
    )


def shared_clips() -> list[Path]:
    """Every video file under ../shared/data (empty where the folder is absent)."""
    if not SHARED_DATA.is_dir():
        return []
    return sorted(p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real clips not found at {SHARED_DATA} (set ACTIONLRP_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def right_down_fields(clip_dir):
    """Six 128×96 H.264 clips of 40 frames, a square moving right or down by turns: their
    motion fields and labels."""
    from actionlrp.codec import read_motion_field

    fields, labels = [], []
    for i in range(6):
        label = ("right", "down")[i % 2]
        velocity = (2.0, 0.0) if label == "right" else (0.0, 2.0)
        obj = SyntheticObject("translate", size=40, velocity=velocity, centre=(50.0 + 4 * i, 40.0))
        clip = synthetic.make_clip(
            clip_dir / f"{label}_{i}.mp4", [obj], width=128, height=96, n_frames=40, seed=i
        )
        fields.append(read_motion_field(clip.path))
        labels.append(label)
    return fields, labels


@pytest.fixture(scope="session")
def square_clips(clip_dir):
    """A textured square moving +2 px/frame in x: {(codec, b_frames): SyntheticClip}."""
    clips = {}
    for codec, suffix in (("libx264", ".mp4"), ("mpeg4", ".avi")):
        for b in (0, 2):
            path = clip_dir / f"square_{codec}_b{b}{suffix}"
            clips[codec, b] = synthetic.moving_square_clip(
                path, codec=codec, vx=2.0, vy=0.0, size=48, b_frames=b, n_frames=40
            )
    return clips


@pytest.fixture(scope="session")
def pan_clip(clip_dir):
    """The whole scene moves +2 px/frame right (camera pan), no object."""
    return synthetic.make_clip(
        clip_dir / "pan.mp4", [], pan=(2.0, 0.0), n_frames=30, width=128, height=96
    )


@pytest.fixture(scope="session")
def pan_object_clip(clip_dir):
    """The same pan, plus a square moving down at 3 px/frame in the scene."""
    obj = SyntheticObject("translate", size=40, centre=(64.0, 30.0), velocity=(0.0, 3.0))
    return synthetic.make_clip(
        clip_dir / "pan_object.mp4", [obj], pan=(2.0, 0.0), n_frames=30, width=128, height=96
    )


@pytest.fixture(scope="session")
def still_clip(clip_dir):
    obj = SyntheticObject("still", size=40)
    return synthetic.make_clip(clip_dir / "still.mp4", [obj], n_frames=30, width=128, height=96)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny real clips (96×72, 20 frames), a text file named .mp4 and an MJPEG clip."""
    folder = tmp_path_factory.mktemp("dataset_clips")
    clips = {}
    for name, codec, suffix, vx in (
        ("right_h264", "libx264", ".mp4", 2.0),
        ("left_h264", "libx264", ".mp4", -2.0),
        ("right_mpeg4", "mpeg4", ".avi", 2.0),
        ("left_mpeg4", "mpeg4", ".avi", -2.0),
    ):
        clip = synthetic.moving_square_clip(
            folder / f"{name}{suffix}", codec=codec, n_frames=20, width=96, height=72, vx=vx
        )
        clips[name] = clip.path
    text = folder / "not_a_video.mp4"
    text.write_text("this is text, not a video\n")
    clips["text"] = text
    scene = synthetic.render_scene(
        clip.objects, width=96, height=72, n_frames=20, pan=(0.0, 0.0), seed=0
    )
    mjpeg = folder / "square_mjpeg.avi"
    with av.open(str(mjpeg), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuvj420p"
        for rgb in scene.frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    clips["mjpeg"] = mjpeg
    return clips
