"""Pixel-domain reference: dense optical flow on the decoded frames (design §1).

The same `MotionField` as `actionlrp.codec.read_motion_field`, but computed from the pixels with
OpenCV's Farnebäck flow and averaged into the same grid, so that the speed and the accuracy of
the motion vectors can be compared with it in one tool.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import av
import cv2
import numpy as np

from actionlrp.errors import VideoError
from actionlrp.hog import frame_cell_histograms
from actionlrp.video import (
    _PICTURE_TYPES,
    MotionField,
    _frame_rate,
    _reason,
    grid_size,
    open_video,
)


def average_on_grid(dense: np.ndarray, cell: int) -> np.ndarray:
    """Mean of a dense per-pixel array in each ``cell`` × ``cell`` grid cell.

    Parameters
    ----------
    dense : ndarray, shape (..., H, W, C)
        Per-pixel values (e.g. flow in pixels per frame, C = 2).
    cell : int
        Cell size in pixels. The grid is ``grid_size(H, W, cell)``; the partial cells at the
        bottom and right edges average only the pixels they contain.

    Returns
    -------
    ndarray, shape (..., gh, gw, C), float32
    """
    if cell <= 0:
        raise ValueError(f"cell must be a positive number of pixels, got {cell}")
    *lead, height, width, channels = dense.shape
    gh, gw = grid_size(height, width, cell)
    pad = [(0, 0)] * len(lead) + [(0, gh * cell - height), (0, gw * cell - width), (0, 0)]
    padded = np.pad(dense.astype(np.float32, copy=False), pad)
    blocks = padded.reshape(*lead, gh, cell, gw, cell, channels)
    sums = blocks.sum(axis=(-4, -2), dtype=np.float64)
    rows = np.minimum(cell, height - cell * np.arange(gh))
    cols = np.minimum(cell, width - cell * np.arange(gw))
    counts = (rows[:, None] * cols[None, :]).astype(np.float64)
    return (sums / counts[..., None]).astype(np.float32)


def farneback_motion_field(
    path: str | os.PathLike,
    cell: int = 8,
    *,
    pyr_scale: float = 0.5,
    levels: int = 3,
    winsize: int = 15,
    iterations: int = 3,
    poly_n: int = 5,
    poly_sigma: float = 1.2,
    flags: int = 0,
    hog: bool = False,
) -> MotionField:
    """Dense Farnebäck optical flow of a clip, averaged into a `MotionField`, streaming.

    Frames are decoded with PyAV and converted to 8-bit gray; the flow of frame ``t ≥ 1`` is
    ``−cv2.calcOpticalFlowFarneback(frame t, frame t − 1)``: the motion from frame ``t − 1`` to
    frame ``t`` in pixels per frame, at the pixels of frame ``t`` (the convention of
    `MotionField`). Frame 0 has no previous frame and repeats frame 1's flow (a clip of one frame
    has zero flow). Only the previous gray frame is kept, so memory is the field itself.
    Frames are taken in the decoder's output order, which is display order, never re-sorted by
    presentation time. Timestamps are the frames' presentation times when these strictly
    increase, else ``arange(T) / fps`` (AVI with B-frames carries them out of order).

    Parameters
    ----------
    path : path-like
        A video file of any codec FFmpeg decodes.
    cell : int, default 8
        Grid cell size in pixels; partial edge cells average the pixels they contain.
    pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags
        Farnebäck parameters, passed to OpenCV unchanged. Defaults: ``pyr_scale=0.5`` (each
        pyramid level half the size), ``levels=3``, ``winsize=15`` px averaging window,
        ``iterations=3`` per level, ``poly_n=5`` px neighbourhood of the polynomial expansion
        with ``poly_sigma=1.2``, ``flags=0`` (box window, no initial flow). OpenCV builds no
        pyramid level smaller than 32 px, so small frames get fewer levels than asked for
        (160 × 120: one below full size), which bounds the motion it can follow.
    hog : bool, default False
        Also give each frame's luma gradient histograms per grid cell (`MotionField.hog`,
        `actionlrp.hog.frame_cell_histograms`).

    Returns
    -------
    MotionField
        ``flow`` of shape (T, ceil(H / cell), ceil(W / cell), 2) in pixels per frame,
        ``method="flow"``, ``has_vectors`` all True, frame types as the decoder reports them.

    Raises
    ------
    VideoError
        Missing file, not a video, no video stream, or no frame decodes. A clip that breaks off
        part-way gives the field of the frames that decoded.
    """
    if cell <= 0:
        raise ValueError(f"cell must be a positive number of pixels, got {cell}")
    path = Path(path)
    params = {
        "pyr_scale": pyr_scale,
        "levels": levels,
        "winsize": winsize,
        "iterations": iterations,
        "poly_n": poly_n,
        "poly_sigma": poly_sigma,
        "flags": flags,
    }
    with open_video(path) as (container, stream):
        ctx = stream.codec_context
        frame_size: tuple[int, int] | None = None
        previous: np.ndarray | None = None
        cells: list[np.ndarray] = []
        hog_cells: list[np.ndarray] = []
        types: list[str] = []
        times: list[float] = []
        last_error = ""

        def take(frame: av.VideoFrame) -> None:
            nonlocal frame_size, previous
            gray = frame.to_ndarray(format="gray")
            if frame_size is None:
                frame_size = (gray.shape[1], gray.shape[0])
            elif (gray.shape[1], gray.shape[0]) != frame_size:
                gray = cv2.resize(gray, frame_size, interpolation=cv2.INTER_AREA)
            if previous is not None:
                back = cv2.calcOpticalFlowFarneback(gray, previous, None, **params)
                cells.append(average_on_grid(-back, cell))
            previous = gray
            if hog:
                hog_cells.append(frame_cell_histograms(frame, cell, *gray.shape))
            types.append(_PICTURE_TYPES.get(int(frame.pict_type), "?"))
            times.append(float(frame.time) if frame.time is not None else np.nan)

        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                last_error = _reason(exc)
                break
            try:
                for frame in packet.decode():
                    take(frame)
            except av.error.FFmpegError as exc:
                last_error = _reason(exc)
        with contextlib.suppress(av.error.FFmpegError):
            for frame in ctx.decode(None):
                take(frame)

        if frame_size is None:
            reason = f" ({last_error})" if last_error else ""
            raise VideoError(f"{path}: no frame decodes{reason}")
        fps = _frame_rate(stream)
        codec = ctx.name
        container_name = container.format.name

    width, height = frame_size
    if cells:
        flow = np.stack([cells[0], *cells])
    else:
        flow = np.zeros((1, *grid_size(height, width, cell), 2), dtype=np.float32)
    timestamps = np.asarray(times, dtype=np.float64)
    if np.isnan(timestamps).any() or np.any(np.diff(timestamps) <= 0):
        timestamps = np.arange(len(times), dtype=np.float64) / fps
    return MotionField(
        flow=flow,
        frame_types=np.asarray(types),
        has_vectors=np.ones(len(types), dtype=bool),
        timestamps=timestamps,
        width=int(width),
        height=int(height),
        fps=fps,
        cell=cell,
        codec=codec,
        container=container_name,
        method="flow",
        hog=np.stack(hog_cells) if hog else None,
    )
