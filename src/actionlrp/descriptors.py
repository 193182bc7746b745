"""Local motion descriptors HOF, MBHx, MBHy (and optionally HOG, the appearance) on
overlapping spatio-temporal cubes (design §2): the forward step of the descriptor layer; its
relevance step is `actionlrp.descriptors_lrp`.

A cube is ``cube_px × cube_px`` pixels × 3 time cells of ``cell_frames`` frames, cut into
2 × 2 spatial × 3 temporal cells. Cubes start every ``stride_px`` pixels and every
``cell_frames`` frames, so they overlap. Every cube lies wholly inside the video.

Histograms are accumulated per time cell and grid cell (`actionlrp._cell_histograms`), summed
into spatial cells by shifted adds and gathered into cubes (`actionlrp._cubes`), by compiled
kernels (numba) that make one pass over the vectors and one over the output, with no per-cube
or per-vector Python loop. This module holds the stage's parameters and output, and runs those
steps over a clip, in pieces.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actionlrp._cell_histograms import _BINS, _BLOCK_VOXELS, N_ORIENTATIONS, _histograms_into
from actionlrp._cell_histograms import cell_histograms as cell_histograms
from actionlrp._cell_histograms import orientation_bins as orientation_bins
from actionlrp._cubes import (
    _SPATIAL_CELLS,
    _TIME_CELLS,
    _cube_boxes,
    _cube_grid,
    _CubeGrid,
    _cubes_into,
)
from actionlrp._scratch import _in_pieces, _Workspace, _workspace
from actionlrp.hog import HOG_BINS, time_cell_sums
from actionlrp.video import MotionField

FEATURE_TYPES = ("hof", "mbhx", "mbhy")  # the motion features, always described
ALL_FEATURE_TYPES = (*FEATURE_TYPES, "hog")  # and HOG, the appearance, with `DescriptorParams.hog`


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
        Describe each cube's appearance too (the default): HOG, 2 × 2 × 3 cells × 8
        orientations of the decoded luma's gradient (96 dims; the clip's field must carry
        `MotionField.hog`, read with ``hog=True``). For MPEG-4 Part 2 this costs a pixel decode.
        Chosen on real footage: it gains on both real sets' group folds (design §2).
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
    hog: bool = True
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


def _field_defaults(field_: MotionField) -> DescriptorParams:
    """The default parameters, with HOG only where ``field_`` carries the luma's histograms."""
    return DescriptorParams(hog=field_.hog is not None)


def _check(field_: MotionField, params: DescriptorParams) -> None:
    if (
        params.hog
        and field_.n_frames
        and (field_.hog is None or field_.hog.shape != (*field_.flow.shape[:3], HOG_BINS))
    ):
        raise ValueError(
            "params.hog needs the field's luma gradient histograms, MotionField.hog of shape "
            f"{(*field_.flow.shape[:3], HOG_BINS)}: read the clip with hog=True"
        )
    _check_params(params, field_.cell)


def _check_params(params: DescriptorParams, cell: int) -> None:
    """What ``params`` must satisfy on a field of ``cell``-px grid cells."""
    if params.normalization not in ("root", "l2", "none"):
        raise ValueError(
            f"normalization must be 'root', 'l2' or 'none', got {params.normalization!r}"
        )
    if not params.mbh_floor >= 0:
        raise ValueError(f"mbh_floor must be ≥ 0, got {params.mbh_floor}")
    if not params.hog_floor >= 0:
        raise ValueError(f"hog_floor must be ≥ 0, got {params.hog_floor}")
    if params.cell_frames < 1:
        raise ValueError(f"cell_frames must be ≥ 1, got {params.cell_frames}")
    for size in params.cube_px:
        if size % (2 * cell):
            raise ValueError(
                f"cube_px {size} must be a multiple of twice the field's cell ({cell} px)"
            )
    strides = params.strides()
    if len(strides) != len(params.cube_px):
        raise ValueError(
            f"stride_px {params.stride_px} must give one stride or one per cube size "
            f"{params.cube_px}"
        )
    for stride in strides:
        if stride < cell or stride % cell:
            raise ValueError(
                f"stride_px {stride} must be a positive multiple of the field's cell ({cell} px)"
            )


# --------------------------------------------------------------------------------------------
# Forward step: MotionField → LocalDescriptors

_MIN_PIECE = 8  # cube start times per thread in `describe`: fewer are not worth a thread
_STREAM_STEP = 4  # cube start times `StreamingDescriber` waits for, and its least piece at the end


def describe(field_: MotionField, params: DescriptorParams | None = None) -> LocalDescriptors:
    """HOF (108), MBHx (96) and MBHy (96) descriptors of every cube of a clip.

    A long clip is cut in time into one piece per available CPU; the pieces are described in
    threads (the numeric kernels release the GIL), each straight into its rows of the output.

    Parameters
    ----------
    field_ : MotionField
        Flow of shape (T, gh, gw, 2).
    params : DescriptorParams, optional
        Default: the defaults, with HOG if the field carries `MotionField.hog` (read with
        ``hog=True``) and without otherwise.

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
    params = params or _field_defaults(field_)
    _check(field_, params)
    factor = scale_factor(field_.width, params.max_width)
    if factor > 1:
        return _upscale_boxes(describe(downscale(field_, factor), params), factor)
    nt = max(field_.n_frames // params.cell_frames - _TIME_CELLS + 1, 0)  # cube start times
    grids = _cube_grids(field_.height, field_.width, field_.cell, params)
    sizes = [nt * grid.ny * grid.nx for grid in grids]
    features = _feature_arrays(sum(sizes), params.dims())
    if not sum(sizes):
        return LocalDescriptors(features, np.zeros((0, 6), np.int32))
    per_grid = []  # each grid's rows of the output
    for offset, size in zip(itertools.accumulate([0, *sizes]), sizes, strict=False):
        per_grid.append({k: v[offset : offset + size] for k, v in features.items()})

    def describe_piece(start: int, stop: int) -> None:
        with _workspace() as work:
            _describe_into(
                field_.flow, field_.hog, field_.cell, params, grids, start, stop, per_grid, work
            )

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
    params = params or _field_defaults(field_)
    _check(field_, params)
    factor = scale_factor(field_.width, params.max_width)
    if factor > 1:
        for chunk in iter_describe(downscale(field_, factor), params, chunk_frames):
            yield _upscale_boxes(chunk, factor)
        return
    cf = params.cell_frames
    nt = field_.n_frames // cf - _TIME_CELLS + 1
    step = max(1, chunk_frames // cf)  # cube start times per chunk
    grids = _cube_grids(field_.height, field_.width, field_.cell, params)
    dims = params.dims()
    with _workspace() as work:
        for start in range(0, max(nt, 0), step):
            stop = min(nt, start + step)
            sizes = [(stop - start) * grid.ny * grid.nx for grid in grids]
            out = [_feature_arrays(n, dims) for n in sizes]
            _describe_into(
                field_.flow, field_.hog, field_.cell, params, grids, start, stop, out, work, start
            )
            for grid, cube_px, features in zip(grids, params.cube_px, out, strict=True):
                boxes = _cube_boxes(grid, params, cube_px, stop - start, start * cf)
                yield LocalDescriptors(features, boxes)


def _cube_grids(height: int, width: int, cell: int, params: DescriptorParams) -> list[_CubeGrid]:
    return [_cube_grid(height, width, cell, params, cube_px) for cube_px in params.cube_px]


class StreamingDescriber:
    """`describe` while a clip decodes: the cubes whose frames have settled are described as
    the decoder goes, in the consuming thread, beside the decoding one; the rest at the end.

    `actionlrp.codec.read_motion_field` feeds it (``describer=``): `restart` when a decoding
    pass starts, `advance` whenever more frames have settled. `finish` then describes what is
    left and returns exactly what ``describe(field, params)`` would.

    Parameters
    ----------
    params : DescriptorParams
        As for `describe`. With ``max_width`` smaller than the clip, all of the work waits for
        `finish`.

    Attributes
    ----------
    done : int
        Cube start times (every ``cell_frames`` frames) described so far in this pass.

    Examples
    --------
    >>> from actionlrp.codec import read_motion_field
    >>> describer = StreamingDescriber(DescriptorParams())
    >>> field = read_motion_field(clip, hog=True, describer=describer)
    >>> desc = describer.finish(field)
    >>> len(desc) == len(describe(field))
    True
    """

    def __init__(self, params: DescriptorParams) -> None:
        self.params = params
        self.restart(0, 0, 1)

    def restart(self, height: int, width: int, cell: int, frames_hint: int = 0) -> None:
        """A decoding pass begins: forget what was described (the frames may come again)."""
        self.height, self.width, self.cell = height, width, cell
        self.done = 0  # cube start times described
        self._out: list[dict[str, np.ndarray]] = []
        self._capacity = 0
        if height and width:
            _check_params(self.params, cell)
        self._streaming = bool(height and width) and scale_factor(width, self.params.max_width) == 1
        if self._streaming:
            self._grids = _cube_grids(height, width, cell, self.params)
            self._grow(frames_hint // self.params.cell_frames - _TIME_CELLS + 1)

    def advance(self, flow: np.ndarray, hog_cells: np.ndarray | None, n_final: int) -> None:
        """Frames ``0 … n_final − 1`` of ``flow`` (≥ n_final, gh, gw, 2) and ``hog_cells`` are
        final: describe the cubes that lie in them, a few start times at a time."""
        ready = n_final // self.params.cell_frames - _TIME_CELLS + 1
        if self._streaming and ready - self.done >= _STREAM_STEP:
            self._grow(ready)
            with _workspace() as work:
                self._describe(flow, hog_cells, self.done, ready, work)
            self.done = ready

    def finish(self, field_: MotionField) -> LocalDescriptors:
        """The descriptors of every cube of ``field_``, the clip that was decoded."""
        params = self.params
        _check(field_, params)
        if not self._streaming or (field_.height, field_.width) != (self.height, self.width):
            return describe(field_, params)
        nt = max(field_.n_frames // params.cell_frames - _TIME_CELLS + 1, 0)
        self._grow(nt)

        def describe_piece(start: int, stop: int) -> None:
            with _workspace() as work:
                self._describe(field_.flow, field_.hog, self.done + start, self.done + stop, work)

        if nt > self.done:
            _in_pieces(nt - self.done, _STREAM_STEP, describe_piece)
        parts = []
        for grid, cube_px, out in zip(self._grids, params.cube_px, self._out, strict=True):
            n = nt * grid.ny * grid.nx
            boxes = _cube_boxes(grid, params, cube_px, nt, 0)
            parts.append(LocalDescriptors({k: v[:n] for k, v in out.items()}, boxes))
        self._out = []
        return LocalDescriptors.concatenate(parts)

    def _describe(self, flow, hog_cells, start: int, stop: int, work: _Workspace) -> None:
        _describe_into(
            flow, hog_cells, self.cell, self.params, self._grids, start, stop, self._out, work
        )

    def _grow(self, n_times: int) -> None:
        """Room for the cubes of ``n_times`` start times, those described so far kept."""
        if n_times <= self._capacity:
            return
        capacity = max(n_times, self._capacity * 3 // 2, _MIN_PIECE)
        dims = self.params.dims()
        grown = [_feature_arrays(capacity * g.ny * g.nx, dims) for g in self._grids]
        for grid, old, new in zip(self._grids, self._out, grown, strict=False):
            rows = self.done * grid.ny * grid.nx
            for name in dims:
                new[name][:rows] = old[name][:rows]
        self._out, self._capacity = grown, capacity


def _describe_into(
    flow: np.ndarray,
    hog_cells: np.ndarray | None,
    cell: int,
    params: DescriptorParams,
    grids: list[_CubeGrid],
    start: int,
    stop: int,
    out: list[dict[str, np.ndarray]],
    work: _Workspace,
    first: int = 0,
) -> None:
    """Descriptors of the cubes starting at time cells ``start … stop − 1`` of ``flow`` (T, gh,
    gw, 2) and ``hog_cells`` (T, gh, gw, 8; with `DescriptorParams.hog`) into their rows of
    ``out`` (one dict per grid, whose row 0 is the cube starting at time cell ``first``).

    A block of cube start times at a time: its time cells' histograms (the last two carried
    over to the next block, which starts with them), then its cubes.
    """
    cf, gh, gw = params.cell_frames, flow.shape[1], flow.shape[2]
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
        frames = slice((r0 + carried) * cf, (r0 + n_tc) * cf)
        part = {name: h[carried:n_tc] for name, h in hist.items()}
        hog = part.pop("hog", None)
        _histograms_into(flow[frames], cf, cell, params.still_threshold, part, work)
        if hog is not None:
            hog[...] = time_cell_sums(hog_cells[frames], cf)
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
