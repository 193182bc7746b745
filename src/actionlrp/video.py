"""The input layer: a clip's motion field, and opening a video file (design §1).

`MotionField` is what `actionlrp.codec` (motion vectors) and `actionlrp.flow` (Farnebäck
reference) both produce, and what heatmaps are drawn on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from actionlrp.errors import VideoError

#: PyAV's picture types (``frame.pict_type``) as letters.
_PICTURE_TYPES = {1: "I", 2: "P", 3: "B", 4: "S", 5: "I", 6: "P", 7: "B"}


@dataclass(frozen=True)
class MotionField:
    """Forward motion of a clip on a regular pixel grid: the input layer of the model.

    Attributes
    ----------
    flow : ndarray, shape (T, gh, gw, 2), float32
        Flow ``(dx, dy)`` in pixels per frame of each grid cell of frame ``t``: the motion from
        frame ``t − 1`` to frame ``t`` of the content seen there in frame ``t`` (a P-frame block at
        ``dst`` predicted from ``src`` in frame ``t − d`` gives ``(dst − src) / d``). Frame 0 has
        no previous frame and takes the motion of its neighbours. ``gh = ceil(height / cell)``,
        ``gw = ceil(width / cell)``.
    frame_types : ndarray, shape (T,), str
        Picture type of each frame in display order: ``"I"``, ``"P"``, ``"B"``, ``"S"``
        (MPEG-4 GMC) or ``"?"``.
    has_vectors : ndarray, shape (T,), bool
        True where the frame carried motion vectors of its own (False for filled frames).
    timestamps : ndarray, shape (T,), float64
        Presentation time of each frame in seconds.
    width, height : int
        Video size in pixels.
    fps : float
        Nominal frame rate in frames per second.
    cell : int
        Grid cell size in pixels.
    codec, container : str
        FFmpeg names of the video codec and the container format.
    method : str
        ``"mv"`` (motion vectors) or ``"flow"`` (pixel-domain Farnebäck reference).
    hog : ndarray, shape (T, gh, gw, 8), float32, or None
        Per frame and grid cell, the histogram of the decoded luma's gradient orientations
        (`actionlrp.hog.luma_cell_histograms`, grey levels per px), aligned with ``flow``; None
        unless asked for (``hog=True`` when reading the clip).
    """

    flow: np.ndarray
    frame_types: np.ndarray
    has_vectors: np.ndarray
    timestamps: np.ndarray
    width: int
    height: int
    fps: float
    cell: int
    codec: str = ""
    container: str = ""
    method: str = "mv"
    hog: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.flow.shape[0])

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(T, gh, gw)``: the shape of the voxel grid that relevance maps live on."""
        return (int(self.flow.shape[0]), int(self.flow.shape[1]), int(self.flow.shape[2]))

    def mean_flow(self) -> tuple[float, float]:
        """Mean ``(dx, dy)`` in pixels per frame over all grid cells and frames."""
        if self.flow.size == 0:
            return (0.0, 0.0)
        m = self.flow.reshape(-1, 2).mean(axis=0, dtype=np.float64)
        return (float(m[0]), float(m[1]))

    def summary(self) -> dict:
        """The numbers ``actionlrp motion`` prints."""
        dx, dy = self.mean_flow()
        return {
            "codec": self.codec,
            "container": self.container,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "frames": self.n_frames,
            "frames_with_vectors": int(self.has_vectors.sum()),
            "mean_flow": [round(dx, 4), round(dy, 4)],
        }


def grid_size(height: int, width: int, cell: int) -> tuple[int, int]:
    """``(gh, gw)``: rows and columns of ``cell``-px cells that cover a ``height × width`` frame."""
    return (-(-height // cell), -(-width // cell))


# --------------------------------------------------------------------------------------------
# Opening a video, with the project's errors


@contextlib.contextmanager
def open_video(
    path: str | os.PathLike,
) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open ``path`` and yield ``(container, video_stream)``; every failure is a `VideoError`."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{p}: not a readable video ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{p}: no video stream")
        yield container, container.streams.video[0]
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())



def _frame_rate(stream: av.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            value = float(rate)
            if 0.0 < value < 1000.0:
                return value
    return 25.0

