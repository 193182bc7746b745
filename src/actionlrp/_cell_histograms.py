"""HOF, MBHx and MBHy histograms per time cell and grid cell (design §2, "Assembly"): the
first step of `actionlrp.descriptors`, before the cells are summed and gathered into cubes
(`actionlrp._cubes`).

Each flow vector, and each spatial gradient of the x and y flow, is split by magnitude between
its two nearest of 8 orientations (`orientation_bins`, the reference arithmetic); HOF adds a
no-motion bin. Compiled kernels (numba) sum the shares per grid cell over each time cell of
``cell_frames`` frames in one pass over the vectors, a block of frames at a time so that the
scratch arrays stay in the CPU's cache. The relevance step (`actionlrp.descriptors_lrp`) takes
the same spatial gradient (`_spatial_gradient`). `orientation_bins` and `cell_histograms` are
public as `actionlrp.descriptors.orientation_bins` and `actionlrp.descriptors.cell_histograms`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from actionlrp._scratch import _Workspace, _workspace

N_ORIENTATIONS = 8


def orientation_bins(dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
    """Soft assignment of vectors to 8 orientations of 45°, split linearly between two bins.

    Angles are measured from +x towards +y (image coordinates: y points down); bin ``b`` is
    centred on ``45°·b``, so pure rightward motion falls in bin 0 and downward motion in bin 2.

    Parameters
    ----------
    dx, dy : ndarray, shape (...)
        Vector components.

    Returns
    -------
    lower, upper : ndarray of int, shape (n,)
        The two nearest bins of each vector, flattened.
    w_lower, w_upper : ndarray of float32, shape (n,)
        The vector's magnitude shared between them (they add up to the magnitude).
    """
    dx = np.ascontiguousarray(dx, np.float32).ravel()
    dy = np.ascontiguousarray(dy, np.float32).ravel()
    magnitude = dx * dx  # not np.hypot (7× slower) nor cv2.magnitude (rounds by memory layout)
    magnitude += dy * dy
    np.sqrt(magnitude, out=magnitude)
    position = np.arctan2(dy, dx)
    position *= np.float32(N_ORIENTATIONS / (2 * np.pi))  # in [−4, 4]
    position[position < 0] += N_ORIENTATIONS
    base = np.floor(position)
    frac = position - base  # float32 throughout
    lower = base.astype(np.intp)
    lower &= N_ORIENTATIONS - 1  # position may round up to 8.0
    upper = lower + 1
    upper &= N_ORIENTATIONS - 1
    w_upper = magnitude * frac
    return lower, upper, magnitude - w_upper, w_upper


def cell_histograms(
    flow: np.ndarray, cell_frames: int, cell_px: int, still_threshold: float
) -> dict[str, np.ndarray]:
    """HOF, MBHx and MBHy histograms summed over ``cell_frames`` frames per grid cell.

    HOF: 8 orientations weighted by flow magnitude, plus a no-motion bin for vectors under
    ``still_threshold`` px per frame; each still vector adds ``still_threshold`` there, the
    weight of a vector at the threshold, so the nine bins share one unit. MBHx / MBHy: the
    same 8 orientations of the spatial gradient of the x / y flow (px per frame per px),
    weighted by its magnitude. Each magnitude is split between its two nearest orientations
    as in `orientation_bins`; the sums are taken in float64, frame by frame.

    Parameters
    ----------
    flow : ndarray, shape (T, gh, gw, 2), float32
        Forward flow in px per frame; frames after the last whole ``cell_frames`` are ignored.
    cell_frames : int
    cell_px : int
        Grid cell size in pixels.
    still_threshold : float

    Returns
    -------
    dict of ndarray: ``hof`` (T // cell_frames, gh, gw, 9), ``mbhx`` and ``mbhy``
    (T // cell_frames, gh, gw, 8), float32.
    """
    t, gh, gw, _ = flow.shape
    n_tc = t // cell_frames
    out = {name: np.empty((n_tc, gh, gw, bins), np.float32) for name, bins in _BINS.items()}
    with _workspace() as work:
        flow = flow[: n_tc * cell_frames]
        _histograms_into(flow, cell_frames, cell_px, still_threshold, out, work)
    return out


_BINS = {"hof": N_ORIENTATIONS + 1, "mbhx": N_ORIENTATIONS, "mbhy": N_ORIENTATIONS}
_BLOCK_VOXELS = 1 << 16  # voxels handled at once: the scratch arrays stay in the CPU's cache


def _histograms_into(
    flow: np.ndarray,
    cell_frames: int,
    cell_px: int,
    still_threshold: float,
    out: dict[str, np.ndarray],
    work: _Workspace,
) -> None:
    """`cell_histograms` of ``flow`` (n · cell_frames, gh, gw, 2) into ``out`` (n, gh, gw, B)."""
    t, gh, gw, _ = flow.shape
    cells = gh * gw
    n_tc = t // cell_frames
    step = max(1, _BLOCK_VOXELS // (cell_frames * cells))  # time cells per block
    frames = min(step, n_tc) * cell_frames
    planes = work.array("planes", (2, frames, cells))  # the flow components, contiguous
    angle = work.array("angle", (frames, cells))
    for k0 in range(0, n_tc, step):
        k1 = min(n_tc, k0 + step)
        m = (k1 - k0) * cell_frames
        dx, dy, a = planes[0, :m], planes[1, :m], angle[:m]
        block = flow[k0 * cell_frames : k1 * cell_frames].reshape(m, cells, 2)
        dx[...], dy[...] = block[..., 0], block[..., 1]
        hist = {name: h[k0:k1].reshape(k1 - k0, cells, -1) for name, h in out.items()}
        np.arctan2(dy, dx, out=a)
        _orientation_histograms(dx, dy, a, cell_frames, True, still_threshold, hist["hof"])
        gx, gy = work.array("gx", (m, gh, gw)), work.array("gy", (m, gh, gw))
        for component, name in ((dx, "mbhx"), (dy, "mbhy")):
            _spatial_gradient(component.reshape(m, gh, gw), cell_px, gx, gy)
            gx2, gy2 = gx.reshape(m, cells), gy.reshape(m, cells)
            np.arctan2(gy2, gx2, out=a)
            _orientation_histograms(gx2, gy2, a, cell_frames, False, 0.0, hist[name])


@njit(
    "void(float32[:, ::1], float32[:, ::1], float32[:, ::1], int64, boolean, float64, "
    "float32[:, :, ::1])",
    cache=True,
    nogil=True,
)
def _orientation_histograms(dx, dy, angle, cell_frames, hof, still_threshold, out):
    """Per time cell and grid cell, Σ of the magnitudes split between the two nearest bins.

    ``dx, dy, angle`` (n, cells) float32 with ``angle = arctan2(dy, dx)``; ``out`` (n //
    cell_frames, cells, B) float32. With ``hof``, vectors under ``still_threshold`` count in
    bin 8 instead. The arithmetic is that of `orientation_bins`; the lower and the upper
    shares are summed apart, in float64 and in frame order, then added.
    """
    cells = out.shape[1]
    to_bins = np.float32(N_ORIENTATIONS / (2 * np.pi))
    full_turn = np.float32(N_ORIENTATIONS)
    zero = np.float32(0.0)
    threshold = np.float32(still_threshold)
    threshold_sq = threshold * threshold
    sums = np.zeros((cells, N_ORIENTATIONS, 2), np.float64)  # lower share of bin b, upper of b + 1
    n_still = np.zeros(cells, np.int64)
    lower = np.empty(cells, np.int32)
    shares = np.empty((cells, 2), np.float32)
    still = np.empty(cells, np.int64)
    for tc in range(out.shape[0]):
        for f in range(tc * cell_frames, (tc + 1) * cell_frames):
            x, y, a = dx[f], dy[f], angle[f]
            for c in range(cells):  # no branch: the compiler vectorises this loop
                magnitude_sq = x[c] * x[c] + y[c] * y[c]
                is_still = hof and magnitude_sq < threshold_sq
                magnitude = zero if is_still else np.sqrt(magnitude_sq)
                position = a[c] * to_bins
                position = position + full_turn if position < zero else position
                base = np.floor(position)
                lower[c] = np.int32(base) & (N_ORIENTATIONS - 1)  # it may round up to 8.0
                w_upper = magnitude * (position - base)
                shares[c, 0] = magnitude - w_upper
                shares[c, 1] = w_upper
                still[c] = 1 if is_still else 0
            for c in range(cells):
                sums[c, lower[c], 0] += shares[c, 0]
                sums[c, lower[c], 1] += shares[c, 1]
                n_still[c] += still[c]
        for c in range(cells):
            s = sums[c]
            for b in range(N_ORIENTATIONS):
                out[tc, c, b] = s[b, 0] + s[(b - 1) & (N_ORIENTATIONS - 1), 1]
            if hof:
                out[tc, c, N_ORIENTATIONS] = n_still[c] * np.float64(threshold)
            s[:] = 0.0
            n_still[c] = 0


@njit(
    "void(float32[:, :, ::1], int64, float32[:, :, ::1], float32[:, :, ::1])",
    cache=True,
    nogil=True,
)
def _spatial_gradient(component, cell_px, gx, gy):
    """``np.gradient`` of ``component`` (n, gh, gw) along x and y, divided by ``cell_px``.

    Central differences inside, one-sided at the edges, into ``gx`` and ``gy`` (n, gh, gw);
    both zero when the grid is a single row or column.
    """
    n, gh, gw = component.shape
    if gh < 2 or gw < 2:
        gx[:] = 0.0
        gy[:] = 0.0
        return
    two = np.float32(2.0)
    scale = np.float32(cell_px)
    for f in range(n):
        g, x, y = component[f], gx[f], gy[f]
        for r in range(gh):
            x[r, 0] = (g[r, 1] - g[r, 0]) / scale
            for c in range(1, gw - 1):
                x[r, c] = ((g[r, c + 1] - g[r, c - 1]) / two) / scale
            x[r, gw - 1] = (g[r, gw - 1] - g[r, gw - 2]) / scale
        for c in range(gw):
            y[0, c] = (g[1, c] - g[0, c]) / scale
            y[gh - 1, c] = (g[gh - 1, c] - g[gh - 2, c]) / scale
        for r in range(1, gh - 1):
            for c in range(gw):
                y[r, c] = ((g[r + 1, c] - g[r - 1, c]) / two) / scale
