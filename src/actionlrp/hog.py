"""HOG, the appearance feature type (design §2, §5.5): histograms of the decoded luma's gradient
orientations, per frame and grid cell, and the relevance step that hands a HOG bin's relevance
back to the voxels whose pixels filled it.

Forward: `frame_cell_histograms` turns one decoded frame's luma into (gh, gw, 8) cell histograms
as the frame comes (`actionlrp.codec`: the decoding thread copies the luma, `frame_luma`, and
the consuming one computes them, `luma_histograms_into`; `actionlrp.flow`; only the histograms
are kept), carried as `MotionField.hog`; `actionlrp.descriptors.describe` sums
them over time cells and gathers them into cubes like MBH. Relevance: `_spread_hog_time_cells`,
the histogram layer's "bins" rule with each voxel's histogram as its contribution.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.plane import VideoPlane
from numba import njit

from actionlrp._bins import _bin_shares
from actionlrp.references import _EIGHT_BIT_LUMA
from actionlrp.video import grid_size

HOG_BINS = 8  # orientations of 45°, as HOF and MBH
_SIGNATURES = {
    "_luma_histograms": "void(uint8[::1], int64, int64, int64, int64, float32[:, :, ::1])",
}


def luma_cell_histograms(luma: np.ndarray, cell: int) -> np.ndarray:
    """Histograms of gradient orientation of one frame's luma, per ``cell × cell``-px grid cell.

    The gradient g = (∂I/∂x, ∂I/∂y) of the luma I (central differences, one-sided at the
    picture's edges) in grey levels per px; its magnitude is split between the two nearest of 8
    orientations as in `actionlrp.descriptors.orientation_bins` and averaged over the cell's
    pixels (partial edge cells over the pixels they have).

    Parameters
    ----------
    luma : ndarray, shape (H, W), uint8
    cell : int
        Grid cell size in pixels.

    Returns
    -------
    ndarray, shape (ceil(H / cell), ceil(W / cell), 8), float32
        Mean gradient magnitude per pixel of each cell in each orientation, grey levels per px.
    """
    luma = np.asarray(luma, np.uint8)
    if luma.ndim != 2:
        raise ValueError(f"luma must be a 2-d array, got shape {luma.shape}")
    height, width = luma.shape
    out = np.empty((*grid_size(height, width, cell), HOG_BINS), np.float32)
    if luma.size:
        plane = np.ascontiguousarray(luma).ravel()
        _luma_histograms(plane, width, height, width, cell, out)
    else:
        out[:] = 0.0
    return out


def frame_cell_histograms(frame: av.VideoFrame, cell: int, height: int, width: int) -> np.ndarray:
    """`luma_cell_histograms` of a decoded frame's luma plane (its Y as coded: no range
    expansion), read where it is 8-bit at the stream's ``height × width``, else from the frame
    converted to 8-bit YUV 4:2:0 at that size (zeros if the plane is too short)."""
    out = np.empty((*grid_size(height, width, cell), HOG_BINS), np.float32)
    luma_histograms_into(frame_luma(frame, height, width), cell, out)
    return out


def frame_luma(frame: av.VideoFrame, height: int, width: int) -> np.ndarray | None:
    """A copy of the ``height × width`` 8-bit luma `frame_cell_histograms` reads, (H, W) uint8;
    None if the decoded plane is too short. The decoding thread keeps only this (a cheap copy)
    and hands the histograms to the thread that consumes the frames."""
    if frame.format.name not in _EIGHT_BIT_LUMA or (frame.height, frame.width) != (height, width):
        frame = frame.reformat(width=width, height=height, format="yuv420p")
    plane = VideoPlane(frame, 0)  # not ``frame.planes[0]``, which wraps every plane
    line = plane.line_size
    data = np.frombuffer(plane, np.uint8)
    if line < width or data.shape[0] < (height - 1) * line + width:
        return None
    return np.lib.stride_tricks.as_strided(data, (height, width), (line, 1)).copy()


def luma_histograms_into(luma: np.ndarray | None, cell: int, out: np.ndarray) -> None:
    """`luma_cell_histograms` of ``luma`` (H, W) uint8, C-contiguous (`frame_luma`), into
    ``out`` (gh, gw, 8) float32; zeros where ``luma`` is None."""
    if luma is None or not luma.size:
        out[...] = 0.0
        return
    height, width = luma.shape
    _luma_histograms(luma.reshape(-1), width, height, width, cell, out)


@njit(inline="always")
def _atan2(y, x):
    """atan2(y, x) in float32 within 1e-5 rad, from a polynomial of atan on [0, 1] and the
    octant: no branch and no call, so a loop over pixels vectorises (libm's does not)."""
    ax, ay = abs(x), abs(y)
    big, small = max(ax, ay), min(ax, ay)
    t = small / max(big, np.float32(1e-30))
    t2 = t * t
    a = np.float32(-0.01172120)
    a = a * t2 + np.float32(0.05265332)
    a = a * t2 - np.float32(0.11643287)
    a = a * t2 + np.float32(0.19354346)
    a = a * t2 - np.float32(0.33262347)
    a = a * t2 + np.float32(0.99997726)
    a = a * t
    a = np.float32(np.pi / 2) - a if ay > ax else a
    a = np.float32(np.pi) - a if x < np.float32(0.0) else a
    return -a if y < np.float32(0.0) else a


@njit(inline="always")
def _row(plane, start, width, out):
    """Row of ``width`` bytes of ``plane`` from ``start``, as float32 into ``out``."""
    first = np.uint64(start)
    for x in range(np.uint64(width)):
        out[x] = np.float32(plane[first + x])


@njit(_SIGNATURES["_luma_histograms"], cache=True, nogil=True)
def _luma_histograms(plane, line, height, width, cell, out):
    """`luma_cell_histograms` of the ``height × width`` luma in ``plane`` (rows of ``line``
    bytes) into ``out`` (gh, gw, 8). A row at a time, every loop over its pixels vectorised:
    the gradient, its magnitude and orientation p in [0, 8), then bin b's share
    magnitude · max(0, 1 − d(p, b)) with d the distance around the circle of 8 bins (the split
    of `orientation_bins`), added up per pixel column; each cell row then sums its columns."""
    gw = out.shape[1]
    to_bins = np.float32(HOG_BINS / (2 * np.pi))
    full_turn = np.float32(HOG_BINS)
    half, zero, one = np.float32(0.5), np.float32(0.0), np.float32(1.0)
    current = np.empty(width, np.float32)
    above = np.empty(width, np.float32)
    below = np.empty(width, np.float32)
    gx = np.empty(width, np.float32)
    gy = np.empty(width, np.float32)
    magnitude = np.empty(width, np.float32)
    position = np.empty(width, np.float32)
    columns = np.zeros((HOG_BINS, width), np.float32)  # Σ over the cell row's rows so far
    for y in range(height):
        up, down = max(y - 1, 0), min(y + 1, height - 1)
        scale_y = half if down - up == 2 else (one if down > up else zero)
        _row(plane, y * line, width, current)
        _row(plane, up * line, width, above)
        _row(plane, down * line, width, below)
        for x in range(width):
            gy[x] = (below[x] - above[x]) * scale_y
        for x in range(1, width - 1):
            gx[x] = (current[x + 1] - current[x - 1]) * half
        gx[0] = current[1] - current[0] if width > 1 else zero
        gx[width - 1] = current[width - 1] - current[width - 2] if width > 1 else zero
        for x in range(width):
            u, v = gx[x], gy[x]
            magnitude[x] = np.sqrt(u * u + v * v)
            p = _atan2(v, u) * to_bins
            position[x] = p + full_turn if p < zero else p
        for b in range(HOG_BINS):
            acc, centre = columns[b], np.float32(b)
            for x in range(width):
                d = abs(position[x] - centre)
                d = min(d, full_turn - d)
                acc[x] += magnitude[x] * max(zero, one - d)
        if (y + 1) % cell == 0 or y == height - 1:
            r = y // cell
            rows = y - r * cell + 1
            for c in range(gw):
                x0, x1 = c * cell, min((c + 1) * cell, width)
                pixels = np.float32(rows * (x1 - x0))
                for b in range(HOG_BINS):
                    total = np.float32(0.0)
                    for x in range(x0, x1):
                        total += columns[b, x]
                    out[r, c, b] = total / pixels
            columns[:] = 0.0


def time_cell_sums(hog: np.ndarray, cell_frames: int) -> np.ndarray:
    """Σ of per-frame cell histograms (n · cell_frames, gh, gw, 8) over each time cell, float32
    (n, gh, gw, 8); summed in float64, frame by frame."""
    t, gh, gw, b = hog.shape
    n = t // cell_frames
    blocks = hog[: n * cell_frames].reshape(n, cell_frames, gh, gw, b)
    return blocks.sum(axis=1, dtype=np.float64).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Relevance step: HOG bins → voxels (design §5.5)


@njit(cache=True, nogil=True)
def _spread_hog_time_cells(hog, relevance, rows, first, y0, x0, cs, cf, out, tc_start):
    """The "bins" rule for HOG for the time cells ``tc_start …`` and the cubes of one size
    (``cs`` grid cells per spatial cell), added into ``out`` (n, gh, gw), their n frames.

    ``hog`` (n, gh, gw, 8) float32: those frames' cell histograms, each voxel's contribution
    w_vb to bin b of every cell o that holds it. As `descriptors_lrp._spread_time_cells`:
    H_ob = Σ_{v ∈ o} w_vb, A_ob the relevance of bin b of o summed over the cubes holding o,
    R_v = Σ_{o ∋ v} Σ_b A_ob w_vb / H_ob, and an empty bin's A_ob evenly over its cs·cs·cf
    voxels. The cubes are ``relevance[rows]`` sorted by start time cell, those starting in time
    cell s ``first[s]:first[s + 1]``, at grid cell (``y0``, ``x0``).
    """
    n_frames, gh, gw, nb = hog.shape
    hist = np.empty((gh, gw, nb))
    acc = np.empty((gh, gw, nb))
    even = np.empty((gh, gw))
    used = np.empty((gh, gw), np.bool_)
    h = np.empty(nb)
    gathered = np.empty((gh, gw, nb))
    gathered_even = np.empty((gh, gw))
    for tc in range(tc_start, tc_start + n_frames // cf):
        f0 = (tc - tc_start) * cf
        hist[:] = 0.0
        for k in range(cf):
            for y in range(gh):
                for x in range(gw):
                    for b in range(nb):
                        hist[y, x, b] += hog[f0 + k, y, x, b]
        _bin_shares(
            hist, relevance, rows, first, y0, x0, cs, cf, tc, acc, even, used, h, gathered,
            gathered_even,
        )
        for k in range(cf):
            t = f0 + k
            for y in range(gh):
                for x in range(gw):
                    total = gathered_even[y, x]
                    for b in range(nb):
                        total += gathered[y, x, b] * hog[t, y, x, b]
                    out[t, y, x] += total
