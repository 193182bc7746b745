"""Local motion descriptors HOF, MBHx, MBHy (and optionally HOG, the appearance) on
overlapping spatio-temporal cubes (design §2): the forward step of the descriptor layer; its
relevance step is `actionlrp.descriptors_lrp`.

A cube is ``cube_px × cube_px`` pixels × 3 time cells of ``cell_frames`` frames, cut into
2 × 2 spatial × 3 temporal cells. Cubes start every ``stride_px`` pixels and every
``cell_frames`` frames, so they overlap. Every cube lies wholly inside the video.

Histograms are accumulated per time cell and grid cell, summed into spatial cells by shifted
adds and gathered into cubes, by compiled kernels (numba) that make one pass over the vectors
and one over the output, with no per-cube or per-vector Python loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from actionlrp._scratch import _in_pieces, _Workspace, _workspace
from actionlrp.hog import HOG_BINS, time_cell_sums
from actionlrp.video import MotionField

FEATURE_TYPES = ("hof", "mbhx", "mbhy")  # the motion features, always described
ALL_FEATURE_TYPES = (*FEATURE_TYPES, "hog")  # and HOG, the appearance, with `DescriptorParams.hog`
N_ORIENTATIONS = 8
_SPATIAL_CELLS = 2
_TIME_CELLS = 3


@dataclass(frozen=True)
class DescriptorParams:
    """Geometry and normalisation of the descriptors.

    Attributes
    ----------
    cube_px : tuple of int
        Cube side(s) in pixels; ``(32,)`` by default, ``(32, 48)`` adds the second scale.
        Half of each must be a multiple of the motion field's cell.
    cell_frames : int
        Frames per time cell (5); a cube spans ``3 * cell_frames`` frames.
    stride_px : int or tuple of int
        Spatial stride of cubes in pixels (16), one for every scale or one per entry of
        ``cube_px`` (Kantorov & Laptev: ``(16, 24)`` for ``(32, 48)``); multiples of the
        field's cell.
    still_threshold : float
        Flow magnitude in px per frame under which a vector counts in HOF's no-motion bin (1.0).
    normalization : str
        ``"root"`` (L1 then square root, RootSIFT), ``"l2"``, or ``"none"``.
    max_width : int or None
        Videos wider than this are described at 1/f of their size (f the smallest whole factor
        that brings them to at most ``max_width`` px): the motion field is averaged over f × f
        cells and its flow divided by f, so cubes cover the same share of the scene at every
        resolution. Boxes stay in the video's own pixels. None: native size (the paper).
    mbh_floor : float
        With ``"root"``: MBH histograms are divided by at least ``mbh_floor`` × the cube's
        voxels, in px per frame per px. The default 1 (the flow changing by 1 px per frame at
        every pixel of the cube) is more than any real cube holds, so MBH is the square root of
        the raw histogram at one fixed scale: a cube's MBH says how strong its motion boundaries
        are, and the gradients of motion-vector noise stay small instead of being blown up to
        unit mass like a real boundary. 0: plain RootSIFT. HOF needs no floor: each voxel adds
        at least ``still_threshold``.
    slice_normalization : bool
        Normalise each of a cube's 3 time slices on its own (Kantorov & Laptev) instead of the
        whole cube at once; the MBH floor is then a third per slice.
    hog : bool
        Describe each cube's appearance too: HOG, 2 × 2 × 3 cells × 8 orientations of the
        decoded luma's gradient (96 dims; the clip's field must carry `MotionField.hog`). For
        MPEG-4 Part 2 this costs a pixel decode.
    hog_floor : float
        With ``"root"``: HOG histograms are divided by at least ``hog_floor`` × the cube's
        voxels, in grey levels per px, as `mbh_floor` does for MBH: a flat, textureless cube
        keeps a small HOG instead of its noise being scaled to unit mass. 0: plain RootSIFT.
    """

    cube_px: tuple[int, ...] = (32,)
    cell_frames: int = 5
    stride_px: int | tuple[int, ...] = 16
    still_threshold: float = 1.0
    normalization: str = "root"
    max_width: int | None = None
    mbh_floor: float = 1.0
    slice_normalization: bool = False
    hog: bool = False
    hog_floor: float = 1.0

    def strides(self) -> tuple[int, ...]:
        """The stride of each cube size, in pixels."""
        if isinstance(self.stride_px, int | np.integer):
            return (int(self.stride_px),) * len(self.cube_px)
        return tuple(int(s) for s in self.stride_px)

    def dims(self) -> dict[str, int]:
        """Dimensions per feature type: 108, 96, 96 with the defaults, and 96 for ``"hog"``
        with ``hog``. Its keys are the feature types the descriptors have."""
        cells = _SPATIAL_CELLS * _SPATIAL_CELLS * _TIME_CELLS
        dims = {
            "hof": cells * (N_ORIENTATIONS + 1),
            "mbhx": cells * N_ORIENTATIONS,
            "mbhy": cells * N_ORIENTATIONS,
        }
        if self.hog:
            dims["hog"] = cells * HOG_BINS
        return dims


@dataclass(frozen=True)
class LocalDescriptors:
    """Descriptors of one clip.

    Attributes
    ----------
    features : dict[str, ndarray]
        ``{"hof": (N, 108), "mbhx": (N, 96), "mbhy": (N, 96)}``, and ``"hog": (N, 96)`` with
        `DescriptorParams.hog`; float32.
    boxes : ndarray, shape (N, 6), int32
        ``t0, t1, y0, y1, x0, x1`` of each cube, in frames and pixels, half-open.
    """

    features: dict[str, np.ndarray] = field(default_factory=dict)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.int32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def concatenate(parts: list[LocalDescriptors]) -> LocalDescriptors:
        """Join the descriptors of several chunks or scales, in order."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return LocalDescriptors(
                {k: np.zeros((0, d), np.float32) for k, d in DescriptorParams().dims().items()}
            )
        return LocalDescriptors(
            {k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
            np.concatenate([p.boxes for p in parts]),
        )


def _check(field_: MotionField, params: DescriptorParams) -> None:
    if params.normalization not in ("root", "l2", "none"):
        raise ValueError(
            f"normalization must be 'root', 'l2' or 'none', got {params.normalization!r}"
        )
    if not params.mbh_floor >= 0:
        raise ValueError(f"mbh_floor must be ≥ 0, got {params.mbh_floor}")
    if not params.hog_floor >= 0:
        raise ValueError(f"hog_floor must be ≥ 0, got {params.hog_floor}")
    if params.hog and field_.n_frames and (
        field_.hog is None or field_.hog.shape != (*field_.flow.shape[:3], HOG_BINS)
    ):
        raise ValueError(
            "params.hog needs the field's luma gradient histograms, MotionField.hog of shape "
            f"{(*field_.flow.shape[:3], HOG_BINS)}: read the clip with hog=True"
        )
    if params.cell_frames < 1:
        raise ValueError(f"cell_frames must be ≥ 1, got {params.cell_frames}")
    for size in params.cube_px:
        if size % (2 * field_.cell):
            raise ValueError(
                f"cube_px {size} must be a multiple of twice the field's cell ({field_.cell} px)"
            )
    strides = params.strides()
    if len(strides) != len(params.cube_px):
        raise ValueError(
            f"stride_px {params.stride_px} must give one stride or one per cube size "
            f"{params.cube_px}"
        )
    for stride in strides:
        if stride < field_.cell or stride % field_.cell:
            raise ValueError(
                f"stride_px {stride} must be a positive multiple of the field's cell "
                f"({field_.cell} px)"
            )


# --------------------------------------------------------------------------------------------
# Histograms per time cell and grid cell


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


# --------------------------------------------------------------------------------------------
# Forward step: MotionField → LocalDescriptors

_NORMALIZATIONS = {"none": 0, "root": 1, "l2": 2}
_MIN_PIECE = 8  # cube start times per thread in `describe`: fewer are not worth a thread


def describe(field_: MotionField, params: DescriptorParams | None = None) -> LocalDescriptors:
    """HOF (108), MBHx (96) and MBHy (96) descriptors of every cube of a clip.

    A long clip is cut in time into one piece per available CPU; the pieces are described in
    threads (the numeric kernels release the GIL), each straight into its rows of the output.

    Parameters
    ----------
    field_ : MotionField
        Flow of shape (T, gh, gw, 2).
    params : DescriptorParams, optional

    Returns
    -------
    LocalDescriptors
        N cubes ordered by scale, then time, then row, then column. N is, per scale,
        ``(T // cf − 2) · ((H // c·c) − s) // stride + 1) · (((W // c·c) − s) // stride + 1)``
        with ``cf`` = cell_frames, ``s`` = cube_px (0 where the clip is too small).

    Examples
    --------
    >>> from actionlrp.codec import read_motion_field
    >>> desc = describe(read_motion_field(clip))
    >>> {f: x.shape[1] for f, x in desc.features.items()}
    {'hof': 108, 'mbhx': 96, 'mbhy': 96}
    >>> desc.boxes.shape == (len(desc), 6)
    True
    """
    params = params or DescriptorParams()
    _check(field_, params)
    factor = scale_factor(field_.width, params.max_width)
    if factor > 1:
        return _upscale_boxes(describe(downscale(field_, factor), params), factor)
    nt = max(field_.n_frames // params.cell_frames - _TIME_CELLS + 1, 0)  # cube start times
    grids = [_cube_grid(field_, params, cube_px) for cube_px in params.cube_px]
    sizes = [nt * grid.ny * grid.nx for grid in grids]
    features = _feature_arrays(sum(sizes), params.dims())
    if not sum(sizes):
        return LocalDescriptors(features, np.zeros((0, 6), np.int32))
    per_grid = []  # each grid's rows of the output
    for offset, size in zip(itertools.accumulate([0, *sizes]), sizes, strict=False):
        per_grid.append({k: v[offset : offset + size] for k, v in features.items()})

    def describe_piece(start: int, stop: int) -> None:
        with _workspace() as work:
            _describe_into(field_, params, grids, start, stop, per_grid, work)

    _in_pieces(nt, _MIN_PIECE, describe_piece)
    boxes = [
        _cube_boxes(grid, params, cube_px, nt, 0)
        for grid, cube_px in zip(grids, params.cube_px, strict=True)
    ]
    return LocalDescriptors(features, np.concatenate(boxes))


def iter_describe(
    field_: MotionField, params: DescriptorParams | None = None, chunk_frames: int = 600
) -> Iterator[LocalDescriptors]:
    """`describe` in pieces of about ``chunk_frames`` frames, so memory stays bounded.

    Concatenating the pieces gives exactly what `describe` returns, cube for cube, except that
    the order is chunk-major when there are several scales.
    """
    params = params or DescriptorParams()
    _check(field_, params)
    factor = scale_factor(field_.width, params.max_width)
    if factor > 1:
        for chunk in iter_describe(downscale(field_, factor), params, chunk_frames):
            yield _upscale_boxes(chunk, factor)
        return
    cf = params.cell_frames
    nt = field_.n_frames // cf - _TIME_CELLS + 1
    step = max(1, chunk_frames // cf)  # cube start times per chunk
    grids = [_cube_grid(field_, params, cube_px) for cube_px in params.cube_px]
    dims = params.dims()
    with _workspace() as work:
        for start in range(0, max(nt, 0), step):
            stop = min(nt, start + step)
            sizes = [(stop - start) * grid.ny * grid.nx for grid in grids]
            out = [_feature_arrays(n, dims) for n in sizes]
            _describe_into(field_, params, grids, start, stop, out, work, first=start)
            for grid, cube_px, features in zip(grids, params.cube_px, out, strict=True):
                boxes = _cube_boxes(grid, params, cube_px, stop - start, start * cf)
                yield LocalDescriptors(features, boxes)


def _describe_into(
    field_: MotionField,
    params: DescriptorParams,
    grids: list[_CubeGrid],
    start: int,
    stop: int,
    out: list[dict[str, np.ndarray]],
    work: _Workspace,
    first: int = 0,
) -> None:
    """Descriptors of the cubes starting at time cells ``start … stop − 1`` into their rows of
    ``out`` (one dict per grid, whose row 0 is the cube starting at time cell ``first``).

    A block of cube start times at a time: its time cells' histograms (the last two carried
    over to the next block, which starts with them), then its cubes.
    """
    cf, gh, gw = params.cell_frames, field_.flow.shape[1], field_.flow.shape[2]
    step = max(1, _BLOCK_VOXELS // (cf * gh * gw))  # cube start times per block
    span = step + _TIME_CELLS - 1  # time cells per block
    bins = {**_BINS, "hog": HOG_BINS} if params.hog else _BINS
    hist = {name: work.array(f"hist_{name}", (span, gh, gw, b)) for name, b in bins.items()}
    carried = 0
    for r0 in range(start, stop, step):
        r1 = min(stop, r0 + step)
        n_tc = r1 - r0 + _TIME_CELLS - 1
        if carried:
            for h in hist.values():
                h[:carried] = h[step : step + carried]
        flow = field_.flow[(r0 + carried) * cf : (r0 + n_tc) * cf]
        part = {name: h[carried:n_tc] for name, h in hist.items()}
        hog = part.pop("hog", None)
        _histograms_into(flow, cf, field_.cell, params.still_threshold, part, work)
        if hog is not None:
            hog[...] = time_cell_sums(field_.hog[(r0 + carried) * cf : (r0 + n_tc) * cf], cf)
        carried = _TIME_CELLS - 1
        for grid, rows in zip(grids, out, strict=True):
            if grid.ny and grid.nx:
                per_time = grid.ny * grid.nx
                block = slice((r0 - first) * per_time, (r1 - first) * per_time)
                for name, h in hist.items():
                    floor = _mass_floor(params, grid.cs, name)
                    _cubes_into(
                        h[:n_tc],
                        grid,
                        params.normalization,
                        rows[name][block],
                        work,
                        floor,
                        _TIME_CELLS if params.slice_normalization else 1,
                    )


def _mass_floor(params: DescriptorParams, cs: int, feature: str) -> float:
    """The least L1 mass a cube's histogram is divided by (`DescriptorParams.mbh_floor`,
    `DescriptorParams.hog_floor`)."""
    if feature == "hof" or params.normalization != "root":
        return 0.0
    floor = params.hog_floor if feature == "hog" else params.mbh_floor
    return floor * (_SPATIAL_CELLS * cs) ** 2 * _TIME_CELLS * params.cell_frames


def _feature_arrays(n: int, dims: dict[str, int]) -> dict[str, np.ndarray]:
    """Uninitialised (n, d) float32 arrays, one per feature type, cut from one allocation: one
    large block is cheaper to map in, and to reuse from call to call, than several."""
    block = np.empty(n * sum(dims.values()), np.float32)
    out, offset = {}, 0
    for name, d in dims.items():
        out[name] = block[offset : offset + n * d].reshape(n, d)
        offset += n * d
    return out


def scale_factor(width: int, max_width: int | None) -> int:
    """The smallest whole factor f with ``width / f ≤ max_width`` (1 when ``max_width`` is None)."""
    if not max_width or width <= max_width:
        return 1
    return -(-width // max_width)


def downscale(field_: MotionField, factor: int) -> MotionField:
    """The field of the video shrunk ``factor`` times: flow averaged over factor × factor cells
    (edge blocks over the cells they have) and divided by ``factor`` (px per frame shrink too);
    HOG cell histograms averaged alike (grey levels per px of the video's own pixels)."""
    flow = (_block_means(field_.flow, factor) / factor).astype(np.float32)
    hog = None if field_.hog is None else _block_means(field_.hog, factor).astype(np.float32)
    return dataclasses.replace(
        field_, flow=flow, hog=hog, width=field_.width // factor, height=field_.height // factor
    )


def _block_means(values: np.ndarray, factor: int) -> np.ndarray:
    """Means of (t, gh, gw, c) over factor × factor cells (edge blocks: the cells they have)."""
    t, gh, gw, channels = values.shape
    ph, pw = -(-gh // factor) * factor, -(-gw // factor) * factor
    padded = np.zeros((t, ph, pw, channels), np.float64)
    padded[:, :gh, :gw] = values
    count = np.zeros((ph, pw))
    count[:gh, :gw] = 1.0
    blocks = (t, ph // factor, factor, pw // factor, factor, channels)
    sums = padded.reshape(blocks).sum(axis=(2, 4))
    counts = count.reshape(ph // factor, factor, pw // factor, factor).sum(axis=(1, 3))
    return sums / counts[None, :, :, None]


def _upscale_boxes(desc: LocalDescriptors, factor: int) -> LocalDescriptors:
    boxes = desc.boxes.copy()
    boxes[:, 2:] *= factor
    return LocalDescriptors(desc.features, boxes)


class _CubeGrid(NamedTuple):
    """Where the cubes of one size lie, in grid cells of the motion field."""

    cs: int  # side of a spatial cell
    ss: int  # stride
    ny: int  # cubes per column
    nx: int  # cubes per row
    cell: int  # px per grid cell


def _cube_grid(field_: MotionField, params: DescriptorParams, cube_px: int) -> _CubeGrid:
    c = field_.cell
    cs = cube_px // _SPATIAL_CELLS // c
    ss = params.strides()[params.cube_px.index(cube_px)] // c
    rows, cols = field_.height // c, field_.width // c  # grid cells wholly inside the frame
    ny = (rows - _SPATIAL_CELLS * cs) // ss + 1 if rows >= _SPATIAL_CELLS * cs else 0
    nx = (cols - _SPATIAL_CELLS * cs) // ss + 1 if cols >= _SPATIAL_CELLS * cs else 0
    return _CubeGrid(cs, ss, ny, nx, c)


def _cube_boxes(
    grid: _CubeGrid, params: DescriptorParams, cube_px: int, nt: int, t_offset: int
) -> np.ndarray:
    """(nt · ny · nx, 6) int32 boxes of the cubes starting at ``t_offset`` + 0, cf, 2·cf …"""
    cf, step = params.cell_frames, grid.ss * grid.cell
    t0 = (t_offset + np.arange(nt) * cf)[:, None, None]
    y0 = (np.arange(grid.ny) * step)[None, :, None]
    x0 = (np.arange(grid.nx) * step)[None, None, :]
    boxes = np.empty((nt, grid.ny, grid.nx, 6), np.int32)
    for k, value in enumerate((t0, t0 + _TIME_CELLS * cf, y0, y0 + cube_px, x0, x0 + cube_px)):
        boxes[..., k] = value
    return boxes.reshape(-1, 6)


def _cubes_into(
    hist: np.ndarray,
    grid: _CubeGrid,
    normalization: str,
    out: np.ndarray,
    work: _Workspace,
    floor: float = 0.0,
    parts: int = 1,
) -> None:
    """The normalised descriptors of every cube whose time cells ``hist`` (n, gh, gw, B) holds,
    into the rows of ``out`` ((n − 2) · ny · nx, 12 · B), by time, then row, then column; each
    of a row's ``parts`` equal segments (1: the whole cube, 3: each time slice) on its own.

    design §2: every cube from spatial cell sums, gathered in one pass.
    """
    n, gh, gw, n_bins = hist.shape
    cells = work.array(f"cells_{n_bins}", (n, gh - grid.cs + 1, gw - grid.cs + 1, n_bins))
    _spatial_sums_into(hist, grid.cs, cells, work)
    nt = n - _TIME_CELLS + 1
    code = _NORMALIZATIONS[normalization]
    _gather_cubes(
        cells, nt, grid.ny, grid.nx, grid.cs, grid.ss, code, np.float32(floor / parts), parts, out
    )


def _spatial_sums_into(h: np.ndarray, cs: int, out: np.ndarray, work: _Workspace) -> None:
    """Sums of ``h`` (n, gh, gw, B) over ``cs × cs`` grid cells at every position, into ``out``
    (n, gh − cs + 1, gw − cs + 1, B): rows first, then columns."""
    n, gh, gw, n_bins = h.shape
    if cs == 1:
        out[...] = h
        return
    rows = work.array(f"rows_{n_bins}", (n, gh - cs + 1, gw, n_bins))
    np.add(h[:, : gh - cs + 1], h[:, 1 : gh - cs + 2], out=rows)
    for dy in range(2, cs):
        np.add(rows, h[:, dy : gh - cs + 1 + dy], out=rows)
    np.add(rows[:, :, : gw - cs + 1], rows[:, :, 1 : gw - cs + 2], out=out)
    for dx in range(2, cs):
        np.add(out, rows[:, :, dx : gw - cs + 1 + dx], out=out)


@njit(inline="always")
def _numpy_sum(x, n, squares):
    """Σ x (or Σ x²) in float32 in numpy's order for a contiguous row of n ≤ 128 (eight partial
    sums, then the rest), so that the kernel normalises exactly as ``x.sum(axis=1)`` would."""
    total = np.float32(0.0)
    if n < 8:
        for i in range(n):
            total += x[i] * x[i] if squares else x[i]
        return np.float32(0.0) + total
    if squares:
        r0, r1, r2, r3 = x[0] * x[0], x[1] * x[1], x[2] * x[2], x[3] * x[3]
        r4, r5, r6, r7 = x[4] * x[4], x[5] * x[5], x[6] * x[6], x[7] * x[7]
    else:
        r0, r1, r2, r3, r4, r5, r6, r7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
    i = 8
    while i < n - n % 8:
        if squares:
            r0 += x[i] * x[i]
            r1 += x[i + 1] * x[i + 1]
            r2 += x[i + 2] * x[i + 2]
            r3 += x[i + 3] * x[i + 3]
            r4 += x[i + 4] * x[i + 4]
            r5 += x[i + 5] * x[i + 5]
            r6 += x[i + 6] * x[i + 6]
            r7 += x[i + 7] * x[i + 7]
        else:
            r0 += x[i]
            r1 += x[i + 1]
            r2 += x[i + 2]
            r3 += x[i + 3]
            r4 += x[i + 4]
            r5 += x[i + 5]
            r6 += x[i + 6]
            r7 += x[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += x[i] * x[i] if squares else x[i]
        i += 1
    return np.float32(0.0) + total


@njit(inline="always")
def _gather_cubes_of(cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, n_bins):
    size = out.shape[1] // parts
    tiny = np.float32(1e-12)
    least = max(floor, tiny)
    n = 0
    for t in range(nt):
        for y in range(ny):
            for x in range(nx):
                row = out[n]
                o = 0
                for k in range(_TIME_CELLS):
                    for i in range(_SPATIAL_CELLS):
                        for j in range(_SPATIAL_CELLS):
                            src = cells[t + k, y * ss + i * cs, x * ss + j * cs]
                            for b in range(n_bins):
                                row[o + b] = src[b]
                            o += n_bins
                for p in range(parts if normalization else 0):
                    part = row[p * size : (p + 1) * size]
                    if normalization == 1:  # RootSIFT: L1 (histograms are ≥ 0: the sum), then √
                        total = _numpy_sum(part, size, False)
                        if total < least:
                            total = least
                        for q in range(size):
                            part[q] = np.sqrt(part[q] / total)
                    else:
                        norm = np.sqrt(_numpy_sum(part, size, True))
                        if norm < tiny:
                            norm = tiny
                        for q in range(size):
                            part[q] = part[q] / norm
                n += 1


@njit(
    "void(float32[:, :, :, ::1], int64, int64, int64, int64, int64, int64, float32, int64, "
    "float32[:, ::1])",
    cache=True,
    nogil=True,
)
def _gather_cubes(cells, nt, ny, nx, cs, ss, normalization, floor, parts, out):
    """Rows of ``out`` (nt · ny · nx, 12 · B): the (time, row, column) cells of each cube,
    normalised (0 none, 1 root with L1 mass at least ``floor``, 2 l2), each of ``parts`` equal
    segments on its own. ``cells`` (nt + 2, gh′, gw′, B): spatial cell sums."""
    n_bins = cells.shape[3]
    # A constant bin count lets the compiler unroll the copies.
    if n_bins == N_ORIENTATIONS + 1:
        _gather_cubes_of(
            cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, N_ORIENTATIONS + 1
        )
    elif n_bins == N_ORIENTATIONS:
        _gather_cubes_of(
            cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, N_ORIENTATIONS
        )
    else:
        _gather_cubes_of(cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, n_bins)


def save_descriptors(desc: LocalDescriptors, path: str | os.PathLike) -> Path:
    """Write descriptors to an ``.npz`` (arrays only), atomically: no partial file on failure."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent, prefix=f".{path.stem}-")
    os.close(fd)
    try:
        np.savez(tmp, boxes=desc.boxes, **desc.features)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_descriptors(path: str | os.PathLike) -> LocalDescriptors:
    """Read descriptors written by `save_descriptors` (never unpickles)."""
    with np.load(path, allow_pickle=False) as data:
        types = [k for k in ALL_FEATURE_TYPES if k in data.files]
        return LocalDescriptors({k: data[k] for k in types}, data["boxes"])
