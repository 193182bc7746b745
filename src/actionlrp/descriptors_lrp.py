"""The relevance steps of the descriptor layers (design §5.5, §5.6): R(2) → R(1).

A descriptor's relevance reaches the motion field either evenly over its cube's voxels
(`spread_relevance`, the paper's rule) or through its histogram bins to the vectors that filled
them (`spread_bins`), and for MBH through the flow gradient to the vectors it differences
(`gradient_relevance`, in `actionlrp.gradient_lrp`). `still_reference` gives the motionless
cubes a rule's still root is measured from (in `actionlrp.still_root`). Both are re-exported
here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from actionlrp._bins import _bin_shares
from actionlrp._cell_histograms import _spatial_gradient
from actionlrp._cubes import _SPATIAL_CELLS, _TIME_CELLS
from actionlrp._scratch import _in_pieces, _workspace
from actionlrp.descriptors import (
    ALL_FEATURE_TYPES,
    N_ORIENTATIONS,
    DescriptorParams,
    LocalDescriptors,
    describe,
    downscale,
    scale_factor,
)
from actionlrp.gradient_lrp import _frame_gradient_relevance
from actionlrp.gradient_lrp import gradient_relevance as gradient_relevance
from actionlrp.hog import HOG_BINS, _spread_hog_time_cells
from actionlrp.still_root import still_reference as still_reference
from actionlrp.video import MotionField

if TYPE_CHECKING:
    from actionlrp.relevance import Forward
    from actionlrp.rules import Rule

_MIN_SPREAD_PIECE = 3  # time cells per thread in `spread_bins`


@dataclass(frozen=True)
class HistogramLayer:
    """The descriptor layer: a motion field's HOF / MBHx / MBHy (/ HOG) histograms on cubes.

    Forward: `describe` (design §2). Relevance: R(2) → R(1) on the motion field's voxels, by
    the rule's ``histogram`` spreading (design §5.5, §5.6).

    Parameters
    ----------
    params : DescriptorParams
    """

    params: DescriptorParams = field(default_factory=DescriptorParams)

    def forward(self, field_: MotionField) -> LocalDescriptors:
        """The clip's descriptors, `describe` with ``params``."""
        return describe(field_, self.params)

    def relevance(
        self, forward: Forward, r2: Mapping[str, np.ndarray], rule: Rule
    ) -> dict[str, np.ndarray]:
        """R(2) → R(1): per feature type, the relevance of each voxel of the motion field.

        Parameters
        ----------
        forward : Forward
            The clip's forward pass (its motion field and descriptors).
        r2 : dict of str to ndarray
            Per feature type, R(2) of each descriptor (N,) or of each of its histogram bins
            (N, dims[f]).
        rule : Rule
            ``"bins"``: each bin's relevance to the vectors that filled it (`spread_bins`, from
            ``rule.root``); ``"flat"``: each descriptor's evenly over its cube
            (`spread_relevance`).

        Returns
        -------
        dict of str to ndarray, shape (T, gh, gw), float64
        """
        field_, desc = forward.field, forward.descriptors
        if rule.histogram == "bins":
            return spread_bins(field_, desc, r2, self.params, root=rule.root)
        return {
            f: spread_relevance(desc, per_descriptor(r), field_.grid_shape, field_.cell)
            for f, r in r2.items()
        }


def per_descriptor(r2: np.ndarray) -> np.ndarray:
    """R(2) of each descriptor, shape (N,), from R(2) per descriptor (N,) or per bin (N, d)."""
    return row_sums(r2) if r2.ndim == 2 else r2


def row_sums(r: np.ndarray) -> np.ndarray:
    """Σ_i r_li of an (N, d) float64 array, shape (N,): R(2) per descriptor from R(2) per
    input dimension. A BLAS GEMV, a third of the time of ``r.sum(axis=1)``."""
    return r @ np.ones(r.shape[1])


def spread_relevance(
    desc: LocalDescriptors,
    relevance: np.ndarray,
    grid: tuple[int, int, int],
    cell: int,
) -> np.ndarray:
    """Spread each descriptor's relevance evenly over the voxels of its cube; overlaps add.

    design §5, voxels (the paper's rule); `spread_bin_relevance` is the finer one. Σ R(1) = Σ R(2)
    to float precision.

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
    return _box_add(grid, (t0, t1, y0, y1, x0, x1), relevance / volume)


def _box_add(grid: tuple[int, int, int], boxes: tuple[np.ndarray, ...], values: np.ndarray):
    """Σ over boxes of ``value`` on every voxel inside: corner updates, then 3 cumulative sums."""
    t, gh, gw = grid
    t0, t1, y0, y1, x0, x1 = (np.asarray(b, np.int64) for b in boxes)
    if len(values) and (
        min(t0.min(), y0.min(), x0.min()) < 0 or t1.max() > t or y1.max() > gh or x1.max() > gw
    ):
        raise ValueError(f"boxes reach outside the grid {grid}")
    out = np.zeros((t + 1, gh + 1, gw + 1))
    _box_corners(t0, t1, y0, y1, x0, x1, np.asarray(values, np.float64), out)
    return out[:t, :gh, :gw]


@njit(cache=True, nogil=True)
def _box_corners(t0, t1, y0, y1, x0, x1, values, out):
    """+value at the 8 corners of each box (signs alternating), then prefix sums along each
    axis of ``out`` (t + 1, gh + 1, gw + 1), in place."""
    for n in range(values.shape[0]):
        v = values[n]
        for tt, ts in ((t0[n], v), (t1[n], -v)):
            for yy, ys in ((y0[n], ts), (y1[n], -ts)):
                out[tt, yy, x0[n]] += ys
                out[tt, yy, x1[n]] -= ys
    nt, ny, nx = out.shape
    for a in range(1, nt):
        for b in range(ny):
            for c in range(nx):
                out[a, b, c] += out[a - 1, b, c]
    for a in range(nt):
        for b in range(1, ny):
            for c in range(nx):
                out[a, b, c] += out[a, b - 1, c]
        for b in range(ny):
            for c in range(1, nx):
                out[a, b, c] += out[a, b, c - 1]


def spread_bin_relevance(
    field_: MotionField,
    desc: LocalDescriptors,
    relevance: np.ndarray,
    feature: str,
    params: DescriptorParams | None = None,
    vectors: bool = True,
    root: str = "zero",
) -> np.ndarray:
    """Hand the relevance of each histogram bin of each descriptor to the vectors that filled it.

    The relevance step of the histogram layer (finer than design §5's even spreading). A
    descriptor's normalisation is monotone per bin up to one scale, so bin j of its normalised
    histogram passes its relevance to raw bin j unchanged (as the FV normalisation does in
    design §5). Overlapping cubes share cells: the relevance ``A_ob`` of bin b of cell o (a
    ``cs × cs`` block of grid cells × ``cell_frames`` frames) sums over the cubes that hold o.
    It goes to the voxels in proportion to their contribution to the bin:
    ``R(1)_v = Σ_{o ∋ v} Σ_b A_ob · w_vb / H_ob`` with ``H_ob = Σ_{v ∈ o} w_vb`` (HOF: the vector's
    magnitude split between its two nearest orientations, or the still weight; MBH: the same of
    the flow gradient; HOG: the voxel's own histogram of luma gradients, the sum of its pixels'
    contributions). A bin that is empty (H_ob = 0, relevance of an *absent* motion) is spread
    evenly over its cell. For MBH the voxels hold flow gradients; `gradient_relevance` then hands
    each one's relevance on to the vectors it differences (unless ``vectors`` is False). Σ R(1) =
    Σ relevance to float64 round-off.

    One compiled pass per time cell (`_spread_time_cells`): bins, sums, spreading and the
    gradient layer, with scratch arrays of one time cell only. The time cells are cut into one
    piece per CPU, spread in threads (`spread_bins` does several feature types at once).

    Parameters
    ----------
    field_ : MotionField
        The clip's field, (T, gh, gw, 2).
    desc : LocalDescriptors
        Its N descriptors, as `describe` gave them with ``params``.
    relevance : ndarray, shape (N, dims[feature])
        Relevance of each descriptor's bins, e.g. from `fisher_lrp.bin_relevance`.
    feature : str
        ``"hof"``, ``"mbhx"``, ``"mbhy"``, or ``"hog"`` (with ``params.hog``).
    params : DescriptorParams, optional
        Those ``desc`` was described with; default: the defaults, with HOG if ``desc`` has it.
    vectors : bool
        MBH only: carry the relevance through the gradient layer to the flow vectors (True) or
        leave it on the gradient voxels that filled the bins (False).
    root : {"zero", "still"}
        ``"still"``: the bins' relevance was measured from a motionless field
        (`fisher_lrp.bin_relevance` with `still_reference`), so each voxel's
        contribution is too: ``w_vb − w⁰_vb``, with ``w⁰`` what it gives when it does not move.
        Only HOF's still bin changes: a still voxel gives it nothing, a moving one −threshold
        (the stillness it took away), so a change of stillness goes to the vectors that moved.
        MBH and HOG are unchanged (the root has no flow gradient and a flat picture).

    Returns
    -------
    ndarray, shape (T, gh, gw), float64
        R(1) per voxel of the field.
    """
    if feature not in ALL_FEATURE_TYPES:
        raise ValueError(f"feature must be one of {ALL_FEATURE_TYPES}, got {feature!r}")
    return spread_bins(field_, desc, {feature: relevance}, params, vectors, root)[feature]


def spread_bins(
    field_: MotionField,
    desc: LocalDescriptors,
    relevance: Mapping[str, np.ndarray],
    params: DescriptorParams | None = None,
    vectors: bool = True,
    root: str = "zero",
) -> dict[str, np.ndarray]:
    """`spread_bin_relevance` of several feature types in one pass over the clip's time cells,
    cut into one piece per CPU (threads).

    Parameters
    ----------
    field_, desc, params, vectors, root
        As in `spread_bin_relevance`.
    relevance : dict of str to ndarray, shape (N, dims[feature])
        Relevance of each descriptor's bins, per feature type.

    Returns
    -------
    dict of str to ndarray, shape (T, gh, gw), float64
        R(1) per voxel of the field, per feature type of ``relevance``.
    """
    params = params or DescriptorParams(hog="hog" in desc.features)
    if root not in ("zero", "still"):
        raise ValueError(f"root must be 'zero' or 'still', got {root!r}")
    dims = params.dims()
    for feature in relevance:
        if feature not in dims:
            raise ValueError(f"feature must be one of {tuple(dims)}, got {feature!r}")
    if "hog" in relevance and (
        field_.hog is None or field_.hog.shape != (*field_.grid_shape, HOG_BINS)
    ):
        raise ValueError("HOG relevance needs the field's MotionField.hog: read it with hog=True")
    relevance = {f: np.ascontiguousarray(r, np.float64) for f, r in relevance.items()}
    for feature, r in relevance.items():
        if r.shape != (len(desc), dims[feature]):
            raise ValueError(
                f"relevance of {feature} must have shape ({len(desc)}, {dims[feature]}), "
                f"got {r.shape}"
            )
    factor = scale_factor(field_.width, params.max_width)
    if factor > 1:
        coarse = spread_bins(
            downscale(field_, factor),
            LocalDescriptors(desc.features, _downscale_boxes(desc.boxes, factor)),
            relevance,
            dataclasses.replace(params, max_width=None),
            vectors,
            root,
        )
        return {f: _upsample(r, factor, field_.grid_shape) for f, r in coarse.items()}
    t, gh, gw = field_.grid_shape
    cf, c = params.cell_frames, field_.cell
    out = {f: np.zeros((t, gh, gw)) for f in relevance}
    if t // cf == 0 or len(desc) == 0:
        return out
    sides = (desc.boxes[:, 3] - desc.boxes[:, 2]) // (_SPATIAL_CELLS * c)
    sizes = []  # per cube size: its cubes by start time cell, as `_spread_time_cells` takes them
    for cs in np.unique(sides):
        chosen = np.flatnonzero(sides == cs)
        box = desc.boxes[chosen]
        tc0 = (box[:, 0] // cf).astype(np.int64)
        order = np.argsort(tc0, kind="stable")
        sizes.append(
            (
                chosen[order],
                np.searchsorted(tc0[order], np.arange(t // cf + 1)),
                (box[order, 2] // c).astype(np.int64),
                (box[order, 4] // c).astype(np.int64),
                int(cs),
            )
        )
    threshold = float(params.still_threshold)
    root_still = threshold if root == "still" else 0.0
    to_vectors = vectors and gh >= 2 and gw >= 2

    def spread_piece(start: int, stop: int) -> None:  # time cells start … stop − 1
        frames = slice(start * cf, stop * cf)
        n = (stop - start) * cf
        with _workspace() as work:
            planes = work.array("spread planes", (2, n, gh, gw))
            planes[0], planes[1] = field_.flow[frames, ..., 0], field_.flow[frames, ..., 1]
            gx, gy = work.array("spread gx", (n, gh, gw)), work.array("spread gy", (n, gh, gw))
            angle = work.array("spread angle", (n, gh, gw))
            for feature, r in relevance.items():
                if feature == "hog":  # each voxel's own histogram filled the bins
                    hog = np.ascontiguousarray(field_.hog[frames], np.float32)
                    for rows, first, y0, x0, cs in sizes:
                        _spread_hog_time_cells(
                            hog, r, rows, first, y0, x0, cs, cf, out[feature][frames], start
                        )
                    continue
                hof = feature == "hof"
                component = planes[1 if feature == "mbhy" else 0]
                dx, dy = (planes[0], planes[1]) if hof else (gx, gy)
                if not hof:
                    _spatial_gradient(component, c, dx, dy)
                np.arctan2(dy, dx, out=angle)  # as `describe` takes it: the same bins to the bit
                for rows, first, y0, x0, cs in sizes:
                    _spread_time_cells(
                        dx,
                        dy,
                        angle,
                        component,
                        hof,
                        r,
                        rows,
                        first,
                        y0,
                        x0,
                        cs,
                        cf,
                        threshold,
                        root_still,
                        to_vectors and not hof,
                        out[feature][frames],
                        start,
                    )

    _in_pieces(t // cf, _MIN_SPREAD_PIECE, spread_piece)
    return out


@njit(cache=True, nogil=True)
def _spread_time_cells(
    dx,
    dy,
    angle,
    component,
    hof,
    relevance,
    rows,
    first,
    y0,
    x0,
    cs,
    cf,
    threshold,
    root_still,
    vectors,
    out,
    tc_start,
):
    """`spread_bin_relevance` of the time cells ``tc_start …`` for the cubes of one size
    (``cs`` grid cells per spatial cell), added into ``out`` (n, gh, gw), their n frames.

    ``dx, dy, angle`` (n, gh, gw) float32, those frames' vectors that fill the bins (HOF: the
    flow; MBH: the gradient of ``component``) and ``arctan2(dy, dx)``. The cubes are
    ``relevance[rows]``, sorted by start time cell; those starting in time cell s are
    ``first[s]:first[s + 1]``, at grid cell (``y0``, ``x0``). Per time cell: each voxel's two
    bins and weights (the arithmetic of `orientation_bins`), H_ob (the cs × cs sums), A_ob (the
    relevance of the cubes that hold the cell), then every voxel of a non-empty bin gets
    A_ob · w_vb / H_ob from each cell o that holds it, and an empty bin's A_ob goes evenly over
    its cs·cs·cf voxels. With ``vectors`` each frame then goes through the gradient layer
    (`_frame_gradient_relevance`).
    """
    n_frames, gh, gw = dx.shape
    nb = relevance.shape[1] // (_TIME_CELLS * _SPATIAL_CELLS * _SPATIAL_CELLS)
    lower = np.empty((cf, gh, gw), np.int64)
    w_lower = np.empty((cf, gh, gw))
    w_upper = np.empty((cf, gh, gw))
    w_extra = np.empty((cf, gh, gw))
    hist = np.empty((gh, gw, nb))
    acc = np.empty((gh, gw, nb))
    even = np.empty((gh, gw))
    used = np.empty((gh, gw), np.bool_)  # cells that some cube holds: the others get nothing
    h = np.empty(nb)
    gathered = np.empty((gh, gw, nb))
    gathered_even = np.empty((gh, gw))
    voxels = np.empty((gh, gw))
    adjoint = np.empty((gh, gw))
    to_bins = np.float32(N_ORIENTATIONS / (2 * np.pi))
    full_turn = np.float32(N_ORIENTATIONS)
    still = np.float32(threshold)
    for tc in range(tc_start, tc_start + n_frames // cf):
        hist[:] = 0.0
        for k in range(cf):
            t = (tc - tc_start) * cf + k
            for y in range(gh):
                for x in range(gw):
                    u, v = dx[t, y, x], dy[t, y, x]
                    magnitude_sq = u * u + v * v
                    position = angle[t, y, x] * to_bins
                    position = position + full_turn if position < 0 else position
                    base = np.floor(position)
                    lo = np.int64(base) & (N_ORIENTATIONS - 1)  # it may round up to 8.0
                    extra = 0.0  # a moving voxel's share of the still bin, from the root
                    if hof and magnitude_sq < still * still:
                        lo, wl, wu = N_ORIENTATIONS, np.float64(still) - root_still, 0.0
                    else:
                        magnitude = np.sqrt(magnitude_sq)
                        wu = magnitude * (position - base)
                        wl = magnitude - wu
                        extra = -root_still
                    lower[k, y, x], w_lower[k, y, x], w_upper[k, y, x] = lo, wl, wu
                    w_extra[k, y, x] = extra
                    hist[y, x, lo] += wl
                    if lo < N_ORIENTATIONS:
                        hist[y, x, (lo + 1) & (N_ORIENTATIONS - 1)] += wu
                        if hof:
                            hist[y, x, N_ORIENTATIONS] += extra
        # A_ob / H_ob of the cells o, gathered onto the grid cells (`_bin_shares`)
        _bin_shares(
            hist,
            relevance,
            rows,
            first,
            y0,
            x0,
            cs,
            cf,
            tc,
            acc,
            even,
            used,
            h,
            gathered,
            gathered_even,
        )
        for k in range(cf):
            for y in range(gh):
                for x in range(gw):
                    lo = lower[k, y, x]
                    up = (lo + 1) & (N_ORIENTATIONS - 1) if lo < N_ORIENTATIONS else lo
                    voxels[y, x] = (
                        gathered[y, x, lo] * w_lower[k, y, x]
                        + gathered[y, x, up] * w_upper[k, y, x]
                        + gathered_even[y, x]
                    )
                    if hof:
                        voxels[y, x] += gathered[y, x, N_ORIENTATIONS] * w_extra[k, y, x]
            t = (tc - tc_start) * cf + k
            if vectors:
                _frame_gradient_relevance(component[t], voxels, adjoint, out[t])
            else:
                out[t] += voxels


def _downscale_boxes(boxes: np.ndarray, factor: int) -> np.ndarray:
    out = boxes.copy()
    out[:, 2:] //= factor
    return out


def _upsample(values: np.ndarray, factor: int, grid: tuple[int, int, int]) -> np.ndarray:
    """Spread each coarse cell's value evenly over the fine cells it covers, (T, gh, gw)."""
    _, gh, gw = grid
    counts = np.zeros((values.shape[1] * factor, values.shape[2] * factor))
    counts[:gh, :gw] = 1.0
    per = counts.reshape(values.shape[1], factor, values.shape[2], factor).sum(axis=(1, 3))
    share = np.divide(values, per, out=np.zeros_like(values), where=per > 0)
    return np.repeat(np.repeat(share, factor, axis=1), factor, axis=2)[:, :gh, :gw]
