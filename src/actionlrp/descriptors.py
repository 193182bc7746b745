"""Local motion descriptors HOF, MBHx, MBHy on overlapping spatio-temporal cubes (DESIGN §2).

A cube is ``cube_px × cube_px`` pixels × 3 time cells of ``cell_frames`` frames, cut into
2 × 2 spatial × 3 temporal cells. Cubes start every ``stride_px`` pixels and every
``cell_frames`` frames, so they overlap. Every cube lies wholly inside the video.

Every histogram is accumulated per time cell and grid cell with one ``bincount``, summed into
spatial cells by shifted adds and gathered into cubes by indexing: there is no loop per cube or
per vector.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actionlrp.codec import MotionField

FEATURE_TYPES = ("hof", "mbhx", "mbhy")
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
    stride_px : int
        Spatial stride of cubes in pixels (16); a multiple of the field's cell.
    still_threshold : float
        Flow magnitude in px per frame under which a vector counts in HOF's no-motion bin (1.0).
    normalization : str
        ``"root"`` (L1 then square root, RootSIFT), ``"l2"``, or ``"none"``.
    max_width : int or None
        Videos wider than this are described at 1/f of their size (f the smallest whole factor
        that brings them to at most ``max_width`` px): the motion field is averaged over f × f
        cells and its flow divided by f, so cubes cover the same share of the scene at every
        resolution. Boxes stay in the video's own pixels. None: native size (the paper).
    """

    cube_px: tuple[int, ...] = (32,)
    cell_frames: int = 5
    stride_px: int = 16
    still_threshold: float = 1.0
    normalization: str = "root"
    max_width: int | None = None

    def dims(self) -> dict[str, int]:
        """Dimensions per feature type: 108, 96, 96 with the defaults."""
        cells = _SPATIAL_CELLS * _SPATIAL_CELLS * _TIME_CELLS
        return {
            "hof": cells * (N_ORIENTATIONS + 1),
            "mbhx": cells * N_ORIENTATIONS,
            "mbhy": cells * N_ORIENTATIONS,
        }


@dataclass(frozen=True)
class LocalDescriptors:
    """Descriptors of one clip.

    Attributes
    ----------
    features : dict[str, ndarray]
        ``{"hof": (N, 108), "mbhx": (N, 96), "mbhy": (N, 96)}``, float32.
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
    if params.cell_frames < 1:
        raise ValueError(f"cell_frames must be ≥ 1, got {params.cell_frames}")
    for size in params.cube_px:
        if size % (2 * field_.cell):
            raise ValueError(
                f"cube_px {size} must be a multiple of twice the field's cell ({field_.cell} px)"
            )
    if params.stride_px % field_.cell:
        raise ValueError(
            f"stride_px {params.stride_px} must be a multiple of the field's cell "
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
    weighted by its magnitude.

    Parameters
    ----------
    flow : ndarray, shape (T, gh, gw, 2)
        Forward flow in px per frame; T a multiple of ``cell_frames``.
    cell_frames : int
    cell_px : int
        Grid cell size in pixels.
    still_threshold : float

    Returns
    -------
    dict of ndarray: ``hof`` (T / cell_frames, gh, gw, 9), ``mbhx`` and ``mbhy``
    (T / cell_frames, gh, gw, 8), float32.
    """
    t, gh, gw, _ = flow.shape
    n_tc = t // cell_frames
    u, v = flow[: n_tc * cell_frames, ..., 0], flow[: n_tc * cell_frames, ..., 1]
    target = (np.arange(n_tc * cell_frames) // cell_frames)[:, None, None] * (gh * gw)
    target = (target + np.arange(gh * gw).reshape(gh, gw)).ravel()  # (time cell, row, col)

    def histogram(dx: np.ndarray, dy: np.ndarray, n_bins: int, still=None) -> np.ndarray:
        lower, upper, w_lower, w_upper = orientation_bins(dx, dy)
        if still is not None:
            still = still.ravel()
            lower = np.where(still, N_ORIENTATIONS, lower)
            w_lower = np.where(still, np.float32(still_threshold), w_lower)
            w_upper = np.where(still, np.float32(0), w_upper)
        size = n_tc * gh * gw * n_bins
        index = target * n_bins
        hist = np.bincount(index + lower, w_lower, size)
        hist += np.bincount(index + upper, w_upper, size)
        return hist.astype(np.float32).reshape(n_tc, gh, gw, n_bins)

    still = u * u + v * v < np.float32(still_threshold) ** 2
    out = {"hof": histogram(u, v, N_ORIENTATIONS + 1, still)}
    for name, component in (("mbhx", u), ("mbhy", v)):
        if gh > 1 and gw > 1:
            gy, gx = np.gradient(component, axis=(1, 2))
        else:
            gy = gx = np.zeros_like(component)
        out[name] = histogram(gx / cell_px, gy / cell_px, N_ORIENTATIONS)
    return out


# --------------------------------------------------------------------------------------------
# Forward step: MotionField → LocalDescriptors


def describe(field_: MotionField, params: DescriptorParams | None = None) -> LocalDescriptors:
    """HOF (108), MBHx (96) and MBHy (96) descriptors of every cube of a clip.

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
    """
    return LocalDescriptors.concatenate(list(iter_describe(field_, params)))


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
    span = _TIME_CELLS * cf
    step = max(cf, (chunk_frames // cf) * cf)
    t_total = field_.n_frames
    n_time_cells = t_total // cf
    start = 0
    while start + span <= n_time_cells * cf:
        stop = min(start + step + span - cf, n_time_cells * cf)
        hist = cell_histograms(field_.flow[start:stop], cf, field_.cell, params.still_threshold)
        for cube_px in params.cube_px:
            yield _cubes(hist, field_, params, cube_px, start)
        start += step


def scale_factor(width: int, max_width: int | None) -> int:
    """The smallest whole factor f with ``width / f ≤ max_width`` (1 when ``max_width`` is None)."""
    if not max_width or width <= max_width:
        return 1
    return -(-width // max_width)


def downscale(field_: MotionField, factor: int) -> MotionField:
    """The field of the video shrunk ``factor`` times: flow averaged over factor × factor cells
    (edge blocks over the cells they have) and divided by ``factor`` (px per frame shrink too)."""
    t, gh, gw, _ = field_.flow.shape
    ph, pw = -(-gh // factor) * factor, -(-gw // factor) * factor
    padded = np.zeros((t, ph, pw, 2), np.float64)
    padded[:, :gh, :gw] = field_.flow
    count = np.zeros((ph, pw))
    count[:gh, :gw] = 1.0
    blocks = (t, ph // factor, factor, pw // factor, factor, 2)
    sums = padded.reshape(blocks).sum(axis=(2, 4))
    counts = count.reshape(ph // factor, factor, pw // factor, factor).sum(axis=(1, 3))
    flow = (sums / counts[None, :, :, None] / factor).astype(np.float32)
    return dataclasses.replace(
        field_, flow=flow, width=field_.width // factor, height=field_.height // factor
    )


def _upscale_boxes(desc: LocalDescriptors, factor: int) -> LocalDescriptors:
    boxes = desc.boxes.copy()
    boxes[:, 2:] *= factor
    return LocalDescriptors(desc.features, boxes)


def _cubes(
    hist: dict[str, np.ndarray],
    field_: MotionField,
    params: DescriptorParams,
    cube_px: int,
    t_offset: int,
) -> LocalDescriptors:
    cf, c = params.cell_frames, field_.cell
    cs = cube_px // _SPATIAL_CELLS // c  # spatial cell side in grid cells
    ss = params.stride_px // c  # stride in grid cells
    rows, cols = field_.height // c, field_.width // c  # grid cells wholly inside the frame
    n_tc = hist["hof"].shape[0]
    nt = n_tc - _TIME_CELLS + 1
    ny = (rows - _SPATIAL_CELLS * cs) // ss + 1 if rows >= _SPATIAL_CELLS * cs else 0
    nx = (cols - _SPATIAL_CELLS * cs) // ss + 1 if cols >= _SPATIAL_CELLS * cs else 0
    dims = params.dims()
    if min(nt, ny, nx) <= 0:
        return LocalDescriptors(
            {k: np.zeros((0, d), np.float32) for k, d in dims.items()}, np.zeros((0, 6), np.int32)
        )
    # Cube origins in (time cell, grid row, grid col).
    tc, yc, xc = np.meshgrid(np.arange(nt), np.arange(ny) * ss, np.arange(nx) * ss, indexing="ij")
    tc, yc, xc = tc.ravel(), yc.ravel(), xc.ravel()
    features = {}
    for name, h in hist.items():
        cells = _spatial_sums(h, cs)  # (n_tc, gh − cs + 1, gw − cs + 1, B)
        n_bins = cells.shape[-1]
        shape = (nt, ny, nx, _TIME_CELLS, _SPATIAL_CELLS, _SPATIAL_CELLS, n_bins)
        out = np.empty(shape, np.float32)
        for k in range(_TIME_CELLS):  # 12 strided copies: cell (k, i, j) of every cube at once
            for i in range(_SPATIAL_CELLS):
                for j in range(_SPATIAL_CELLS):
                    y, x = i * cs, j * cs
                    out[:, :, :, k, i, j] = cells[
                        k : k + nt, y : y + (ny - 1) * ss + 1 : ss, x : x + (nx - 1) * ss + 1 : ss
                    ]
        features[name] = _normalise(out.reshape(nt * ny * nx, -1), params.normalization)
    t0 = t_offset + tc * cf
    y0, x0 = yc * c, xc * c
    boxes = np.stack(
        [t0, t0 + _TIME_CELLS * cf, y0, y0 + cube_px, x0, x0 + cube_px], axis=1
    ).astype(np.int32)
    return LocalDescriptors(features, boxes)


def _spatial_sums(h: np.ndarray, cs: int) -> np.ndarray:
    """Sums over ``cs × cs`` grid cells at every position.

    (n, gh, gw, B) → (n, gh − cs + 1, gw − cs + 1, B).
    """
    out = h[:, : h.shape[1] - cs + 1]
    for dy in range(1, cs):
        out = out + h[:, dy : h.shape[1] - cs + 1 + dy]
    rows = out
    out = rows[:, :, : h.shape[2] - cs + 1]
    for dx in range(1, cs):
        out = out + rows[:, :, dx : h.shape[2] - cs + 1 + dx]
    return out


def _normalise(x: np.ndarray, how: str) -> np.ndarray:
    """Normalise each row of ``x`` in place (float32)."""
    if how == "none":
        return x
    if how == "root":
        total = x.sum(axis=1, keepdims=True)  # histograms are non-negative: L1 = sum
        x /= np.maximum(total, np.float32(1e-12))
        return np.sqrt(x, out=x)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
    return x


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
        return LocalDescriptors({k: data[k] for k in FEATURE_TYPES}, data["boxes"])


# --------------------------------------------------------------------------------------------
# Relevance step: R(2) per descriptor → R(1) per voxel of the motion field (DESIGN §5)


def spread_relevance(
    desc: LocalDescriptors,
    relevance: np.ndarray,
    grid: tuple[int, int, int],
    cell: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Hand each descriptor's relevance to the voxels of its cube; overlapping cubes add.

    DESIGN §5, voxels: with ``weights=None`` each cube's relevance is spread evenly over its
    voxels (the paper). With ``weights`` (T, gh, gw) ≥ 0 — each voxel's contribution to the
    cube's histogram bins — a voxel gets ``R_l · w_v / Σ_{v' ∈ l} w_v'`` (uniform where a cube's
    weights sum to 0). Either way Σ R(1) = Σ R(2) to float precision.

    Parameters
    ----------
    desc : LocalDescriptors
        N cubes with their boxes (frames, pixels).
    relevance : ndarray, shape (N,)
        R(2) of each descriptor.
    grid : tuple (T, gh, gw)
        Shape of the motion field's voxel grid.
    cell : int
        Grid cell size in pixels.
    weights : ndarray, shape (T, gh, gw), optional

    Returns
    -------
    ndarray, shape (T, gh, gw), float64
        R(1) per voxel.
    """
    relevance = np.asarray(relevance, np.float64)
    if relevance.shape != (len(desc),):
        raise ValueError(f"relevance must have shape ({len(desc)},), got {relevance.shape}")
    t0, t1 = desc.boxes[:, 0], desc.boxes[:, 1]
    y0, y1 = desc.boxes[:, 2] // cell, -(-desc.boxes[:, 3] // cell)
    x0, x1 = desc.boxes[:, 4] // cell, -(-desc.boxes[:, 5] // cell)
    volume = ((t1 - t0) * (y1 - y0) * (x1 - x0)).astype(np.float64)
    if weights is None:
        return _box_add(grid, (t0, t1, y0, y1, x0, x1), relevance / volume)
    weights = np.asarray(weights, np.float64)
    mass = _box_sums(weights, (t0, t1, y0, y1, x0, x1))
    # A cube whose weights are round-off (not motion) is spread evenly: dividing by ~0 would
    # blow its share up beyond what the cumulative sums can carry exactly.
    flat = mass <= 1e-6 * max(float(mass.max(initial=0.0)), np.finfo(np.float64).tiny)
    share = np.where(flat, 0.0, relevance / np.where(flat, 1.0, mass))
    out = _box_add(grid, (t0, t1, y0, y1, x0, x1), share) * weights
    if flat.any():
        out += _box_add(
            grid, tuple(b[flat] for b in (t0, t1, y0, y1, x0, x1)), relevance[flat] / volume[flat]
        )
    return out


def _box_add(grid: tuple[int, int, int], boxes: tuple[np.ndarray, ...], values: np.ndarray):
    """Σ over boxes of ``value`` on every voxel inside: corner updates, then 3 cumulative sums."""
    t, gh, gw = grid
    diff = np.zeros((t + 1) * (gh + 1) * (gw + 1), np.float64)
    t0, t1, y0, y1, x0, x1 = boxes
    for tt, ts in ((t0, 1), (t1, -1)):
        for yy, ys in ((y0, 1), (y1, -1)):
            for xx, xs in ((x0, 1), (x1, -1)):
                index = (tt * (gh + 1) + yy) * (gw + 1) + xx
                diff += np.bincount(index, values * (ts * ys * xs), diff.size)
    diff = diff.reshape(t + 1, gh + 1, gw + 1)
    return diff.cumsum(0).cumsum(1).cumsum(2)[:t, :gh, :gw]


def _box_sums(values: np.ndarray, boxes: tuple[np.ndarray, ...]) -> np.ndarray:
    """Σ of ``values`` (T, gh, gw) inside each box, by a 3-D integral image."""
    t, gh, gw = values.shape
    integral = np.zeros((t + 1, gh + 1, gw + 1), np.float64)
    integral[1:, 1:, 1:] = values.cumsum(0).cumsum(1).cumsum(2)
    t0, t1, y0, y1, x0, x1 = boxes
    return (
        integral[t1, y1, x1]
        - integral[t0, y1, x1]
        - integral[t1, y0, x1]
        - integral[t1, y1, x0]
        + integral[t0, y0, x1]
        + integral[t0, y1, x0]
        + integral[t1, y0, x0]
        - integral[t0, y0, x0]
    )


def voxel_weights(field_: MotionField, params: DescriptorParams | None = None) -> dict:
    """Each voxel's contribution to the histogram bins of each feature type, (T, gh, gw).

    HOF: the flow magnitude (``still_threshold`` for a still vector, as in its no-motion bin);
    MBHx / MBHy: the magnitude of the flow gradient. Used by `spread_relevance` to carry
    relevance through the histogram layer to the individual vectors.
    """
    params = params or DescriptorParams()
    u, v = field_.flow[..., 0].astype(np.float64), field_.flow[..., 1].astype(np.float64)
    magnitude = np.hypot(u, v)
    out = {"hof": np.where(magnitude < params.still_threshold, params.still_threshold, magnitude)}
    for name, component in (("mbhx", u), ("mbhy", v)):
        if component.shape[1] > 1 and component.shape[2] > 1:
            gy, gx = np.gradient(component, axis=(1, 2))
            out[name] = np.hypot(gx, gy) / field_.cell
        else:
            out[name] = np.zeros_like(component)
    return out
