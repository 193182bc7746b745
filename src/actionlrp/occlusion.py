"""Occlusion: a baseline explanation, what the score loses when a region's motion is removed.

The relevance of a region o (``region_px`` × ``region_px`` pixels × ``region_frames`` frames) is

    R_o = f(x) − f(x with o's motion removed),

f the explained score (f_c, or f_c − f_versus), spread evenly over the region's voxels. Removing
motion means what `benchmarks/bench_faithfulness.py` does: the region's flow becomes its frame's
median flow (the camera's). Σ_o R_o need not be f(x): what is left, ``absorbed``, is what removing
regions one at a time does not see, their interactions.

Exact, and local
----------------
Re-describing and re-encoding the whole clip for each of its thousands of regions would take far
too long. Removing o's motion changes only the descriptors of the cubes whose histograms see o:
those whose box, grown by the reach of MBH's spatial gradient (one cell of the grid the
descriptors are computed on, ``f`` cells of the motion field when ``max_width`` shrinks it ``f``
times, after the ``f`` × ``f`` averaging), overlaps o in space and time; call them aff(o). Regions
far enough apart have disjoint aff sets, so a whole lattice of them is removed in ONE modified
field, described once, and for each region o of the lattice

    S_o = S + Σ_{l ∈ aff(o)} (s(new x_l) − s(x_l)),       Ψ_o = Ψ(S_o),

with S = (Σ_l γ_l, Σ_l γ_l ⊗ [x′_l, x′_l²]) the Fisher layer's sufficient statistics (normalised
by the clip's N, which does not change: the clip keeps its size), computed by the encoder's own
code (`FisherEncoder._compute_chunks`, on the same blocks of rows as `encode`, so that γ is the
very γ a full re-encoding finds). The sums over aff(o) are one batched GEMM per batch of regions
(only the cubes whose descriptor did change take part). Then, since f(Φ_o) = w · Φ_o + b with Φ_o
= sign(Ψ_o)|Ψ_o|^½ / ‖·‖, a compiled kernel takes each region's Ψ_o straight to w · sign(Ψ_o)
|Ψ_o|^½ and Σ|Ψ_o| per feature type (w = the explained score's weights; Φ_o is never stored).
As many lattices as it takes to cover every region (4 × 4 × 3 with the default geometry); the
Python loops run per lattice and per batch of regions only. A region that changes no
descriptor (its motion is the camera's already, or no cube sees it) gets exactly 0.

Since Φ's squared norm is a sum over the feature types' blocks, the same numbers also give, for
free, what removing o's motion from one feature type's descriptors alone costs the score:
``relevance_voxels_by_feature``. Those three maps need not add up to ``relevance_voxels`` (Φ is
normalised over all three blocks together).

Cost: per lattice, one `describe` and the γ of the clip's descriptors, as in classifying it, and
2 · (changed cubes) · K · 2d multiply-adds per feature type; ~25× LRP's time on a 320×240,
90-frame clip with the default model (K = 256, PCA to 48). Memory: γ and [x′, x′²] of every
cube, old and new, ~17 MB per 1000 cubes with those defaults.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from actionlrp._scratch import _in_pieces, _workspace
from actionlrp.descriptors import DescriptorParams, LocalDescriptors, describe, scale_factor
from actionlrp.errors import UnknownClassError
from actionlrp.fisher import CHUNK_ROWS, _n_descriptors, power_l2_normalise
from actionlrp.relevance import OTHER, Explanation, _class_index
from actionlrp.rules import DEFAULT_RULE
from actionlrp.video import MotionField

if TYPE_CHECKING:
    from actionlrp.fisher import FisherEncoder
    from actionlrp.model import ActionModel

#: Entries of the per-region statistics built at once (float64: 8 B each), which sets how many
#: regions' Fisher vectors are updated per batch: small batches stay in the CPU's cache, and
#: ran ~2× faster than batches 8× larger.
BATCH_ENTRIES = 1 << 18


def occlusion(
    model: ActionModel,
    field: MotionField,
    descriptors: LocalDescriptors | None = None,
    class_name: str | None = None,
    versus: str | None = None,
    *,
    video: str | os.PathLike | None = None,
    region_px: int = 16,
    region_frames: int | None = None,
) -> Explanation:
    """Explain ``model``'s score of one clip by occlusion (default class: the predicted one).

    Parameters
    ----------
    model : ActionModel
        A fitted model.
    field : MotionField
        The clip's motion field.
    descriptors : LocalDescriptors, optional
        Its descriptors, if already extracted by `descriptors.describe` with the model's
        parameters (in `describe`'s order).
    class_name : str, optional
    versus : str, optional
        Explain f_c − f_versus; `relevance.OTHER`: a two-class model's other class.
    video : path-like, optional
        The file the field came from, kept in the explanation for its report.
    region_px : int
        Side of a region in pixels, a multiple of the field's cell (16: one descriptor cell).
    region_frames : int, optional
        Frames per region; default the model's ``cell_frames`` (5).

    Returns
    -------
    Explanation
        With ``method="occlusion"``: ``relevance_voxels`` (each region's R_o spread evenly over
        its voxels), ``frame_relevance``; per feature type, ``relevance_voxels_by_feature`` and
        ``feature_relevance`` of removing the motion from that type's descriptors only;
        ``absorbed`` = score − Σ_o R_o and ``absorbed_mass`` = |absorbed| / (|absorbed| +
        Σ_o |R_o|). There is no relevance per Fisher-vector dimension or descriptor
        (``relevance_fv`` is empty, ``relevance_descriptors`` {}); ``rule`` is the unused
        `rules.DEFAULT_RULE`.

    Raises
    ------
    EmptyClipError
        The clip is too short or too small for one cube.
    UnknownClassError
        ``class_name`` or ``versus`` is not one of the model's classes, or they are the same.
    ValueError
        ``region_px`` or ``region_frames`` do not fit the field, or ``descriptors`` are not
        the field's in `describe`'s order, or the model has a space-time pyramid.

    Examples
    --------
    >>> e = occlusion(model, field, region_px=16)
    >>> e.relevance_voxels.shape == field.grid_shape
    True
    >>> bool(abs(e.relevance_total + e.absorbed - e.score) < 1e-9)
    True
    """
    descriptor_layer, encoder, classifier = model.layers_
    if encoder.n_channels_ > 1:
        raise ValueError(
            "occlusion: the model encodes a space-time pyramid, which occlusion does not handle "
            "yet; explain it with LRP"
        )
    params = descriptor_layer.params
    region_frames = params.cell_frames if region_frames is None else int(region_frames)
    if region_px < field.cell or region_px % field.cell:
        raise ValueError(
            f"region_px must be a positive multiple of the field's cell ({field.cell} px), "
            f"got {region_px}"
        )
    if region_frames < 1:
        raise ValueError(f"region_frames must be ≥ 1, got {region_frames}")
    if descriptors is None:
        descriptors = describe(field, params)
    types = encoder.feature_types_
    n = _n_descriptors(descriptors, types, encoder.input_dims_)
    classes = [str(c) for c in model.classes_]

    # The clip itself: γ and x′ of every cube, S, Ψ and the scores, as `encode` finds them.
    old = {f: _assignments(encoder, descriptors, f) for f in types}
    sums = {f: _sums(*old[f]) for f in types}
    psi = np.concatenate([encoder._psi_of_sums(f, s0, s12, n) for f, (s0, s12) in sums.items()])
    scores = classifier.decision_function(power_l2_normalise(psi)[None, :])[0]
    index = _class_index(classes, class_name, scores)
    top = np.zeros(len(classes))  # f = top · the class scores
    top[index] = 1.0
    if versus == OTHER and len(classes) == 2:
        versus = classes[1 - index]
    other = None
    if versus is not None:
        other = _class_index(classes, versus, scores)
        if other == index:
            raise UnknownClassError(f"class {classes[index]!r} is contrasted with itself")
        top[other] = -1.0
    weights = top @ np.asarray(classifier.coef_, np.float64)  # f(Φ) = w · Φ + b
    bias = float(top @ np.asarray(classifier.intercept_, np.float64))
    layer = {f: _FisherBlock.of(encoder, f, n, weights[encoder.blocks_[f]]) for f in types}

    # Per feature type f and region o: w · sign(Ψ_o,f)|Ψ_o,f|^½ and Σ |Ψ_o,f| (Φ's squared
    # norm before normalising). Every region starts with the clip's own values: a region that
    # changes no cube changes nothing.
    own = {f: layer[f].parts(*sums[f]) for f in types}
    grid = _RegionGrid.of(field, params, descriptors.boxes, region_px, region_frames)
    parts = {
        f: (np.full(grid.size, dot), np.full(grid.size, norm)) for f, (dot, norm) in own.items()
    }
    fresh = {f: (np.empty_like(old[f][0]), np.empty_like(old[f][1])) for f in types}
    camera = np.median(field.flow.reshape(field.n_frames, -1, 2), axis=1)[:, None, None, :]
    for lattice in grid.lattices():
        owner = grid.owner_of_cubes(lattice)  # the lattice's region each cube sees, or −1
        if not (owner >= 0).any():
            continue
        flow = np.where(grid.voxel_mask(lattice)[..., None], camera, field.flow)
        new = describe(dataclasses.replace(field, flow=flow), params)
        if not np.array_equal(new.boxes, descriptors.boxes):
            raise ValueError(
                "descriptors: not the field's as `describe` gives them with the model's "
                "parameters, in its order"
            )
        changed = owner >= 0
        changed &= np.any([(new.features[f] != descriptors.features[f]).any(1) for f in types], 0)
        cubes = np.flatnonzero(changed)
        if not cubes.size:
            continue
        cubes = cubes[np.argsort(owner[cubes], kind="stable")]  # grouped by region
        regions, first, counts = np.unique(owner[cubes], return_index=True, return_counts=True)
        for f in types:
            _assignments(encoder, new, f, rows=cubes, out=fresh[f])
            layer[f].update(sums[f], old[f], fresh[f], cubes, regions, first, counts, parts[f])

    def explained(dots: list[np.ndarray], norms: list[np.ndarray]) -> np.ndarray:
        """f = w · Φ + b of each region from its feature types' parts (Φ's norm is √Σ norms)."""
        dot, norm = dots[0], norms[0]
        for more_dot, more_norm in zip(dots[1:], norms[1:], strict=True):
            dot, norm = dot + more_dot, norm + more_norm
        root = np.sqrt(norm)
        return np.divide(dot, root, out=np.zeros_like(dot), where=root > 0) + bias

    base = explained(
        [np.atleast_1d(own[f][0]) for f in types], [np.atleast_1d(own[f][1]) for f in types]
    )[0]
    relevance = base - explained([parts[f][0] for f in types], [parts[f][1] for f in types])
    by_feature = {}
    for f in types:  # only f's descriptors see the region's motion removed
        chosen = [parts[g] if g == f else own[g] for g in types]
        dots = [np.broadcast_to(c[0], (grid.size,)) for c in chosen]
        norms = [np.broadcast_to(c[1], (grid.size,)) for c in chosen]
        by_feature[f] = base - explained(dots, norms)

    r1 = grid.spread(relevance)
    score = float(top @ scores)
    absorbed = score - float(relevance.sum())
    magnitude = abs(absorbed) + float(np.abs(relevance).sum())
    return Explanation(
        class_name=classes[index],
        class_index=index,
        score=score,
        scores={c: float(s) for c, s in zip(classes, scores, strict=True)},
        relevance_fv=np.zeros(0),
        relevance_descriptors={},
        relevance_voxels=r1,
        relevance_voxels_by_feature={f: grid.spread(r) for f, r in by_feature.items()},
        frame_relevance=r1.sum(axis=(1, 2)),
        feature_relevance={f: float(r.sum()) for f, r in by_feature.items()},
        absorbed=absorbed,
        absorbed_mass=abs(absorbed) / magnitude if magnitude > 0 else 0.0,
        rule=DEFAULT_RULE,
        versus=None if other is None else classes[other],
        video=None if video is None else Path(video),
        field=field,
        method="occlusion",
    )


# --------------------------------------------------------------------------------------------
# The Fisher layer and the SVM, region by region


def _assignments(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    f: str,
    rows: np.ndarray | None = None,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """γ (N, K) and [x′, x′∘x′] (N, 2d), float64, of type ``f``'s descriptors.

    By the encoder's own code (`FisherEncoder._compute_chunks`) on its own blocks of
    `CHUNK_ROWS` rows, so that each row's γ is bit for bit the one `encode` finds: γ comes from
    a float32 GEMM, which may round a row differently in a block of another size, and a
    difference there would be ~1e-5 of γ. With ``rows``, only the blocks that hold one of them
    are computed; ``out``'s other rows are left as they are.
    """
    n, k, d = len(desc), encoder.n_components, encoder.dims_[f]
    gamma, stacked = out if out is not None else (np.empty((n, k)), np.empty((n, 2 * d)))
    x = desc.features[f]
    if rows is None:
        starts = range(0, n, CHUNK_ROWS)
    else:
        starts = np.unique(rows // CHUNK_ROWS) * CHUNK_ROWS
    with _workspace() as work:
        for start in starts:
            block = LocalDescriptors({f: x[start : start + CHUNK_ROWS]})
            for g, s in encoder._compute_chunks(block, f, work, keep=False):
                gamma[start : start + len(g)] = g
                stacked[start : start + len(g)] = s
    return gamma, stacked


def _sums(gamma: np.ndarray, stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S0 = Σ_l γ_l (K,) and [S1, S2] = Σ_l γ_l ⊗ [x′_l, x′_l²] (K, 2d), block by block as
    `FisherEncoder.encode` sums them."""
    s0 = np.zeros(gamma.shape[1])
    s12 = np.zeros((gamma.shape[1], stacked.shape[1]))
    for start in range(0, len(gamma), CHUNK_ROWS):
        g = gamma[start : start + CHUNK_ROWS]
        s0 += g.sum(axis=0)
        s12 += g.T @ stacked[start : start + CHUNK_ROWS]
    return s0, s12


@dataclass(frozen=True)
class _FisherBlock:
    """One feature type's block of Ψ and its share of the explained score, from the sums."""

    means: np.ndarray  # (K, d) μ′, as `FisherEncoder` centres them
    to_mean: np.ndarray  # (K, d): Ψ^μ = (S1 − μ′ S0) × this
    to_var: np.ndarray  # (K, d): Ψ^σ = ((S2 − 2μ′ S1 + μ′² S0) / σ² − S0) × this …
    var_scale: np.ndarray  # (K, d): … with the 1/σ² folded in here: (…) × this − S0 × to_var
    w_mean: np.ndarray  # (K, d): the explained score's weights on Ψ^μ
    w_var: np.ndarray  # (K, d): … and on Ψ^σ

    @classmethod
    def of(cls, encoder: FisherEncoder, f: str, n: int, weights: np.ndarray) -> _FisherBlock:
        """The block of type ``f`` (`FisherEncoder._psi_of_sums`' formulas) for a clip of ``n``
        descriptors; ``weights`` (2·K·d,): the explained score's weights on the block."""
        block = encoder._derived[f]
        k, d = block.means.shape
        root_weights = block.sqrt_weights[:, None]
        to_mean = 1.0 / (block.sigmas * (n * root_weights))
        to_var = np.broadcast_to(1.0 / (n * math.sqrt(2.0) * root_weights), (k, d))
        weights = weights.reshape(2, k, d)
        return cls(
            means=block.means,
            to_mean=to_mean,
            to_var=np.ascontiguousarray(to_var),
            var_scale=to_var / block.sigmas**2,
            w_mean=np.ascontiguousarray(weights[0]),
            w_var=np.ascontiguousarray(weights[1]),
        )

    def parts(self, s0: np.ndarray, s12: np.ndarray) -> tuple[float, float]:
        """(w · sign(Ψ)|Ψ|^½, Σ |Ψ|) of the block of the sums S0 (K,), [S1, S2] (K, 2d)."""
        dots, norms = np.zeros(1), np.zeros(1)
        _score_parts(
            s0,
            s12,
            np.zeros((1, *s0.shape)),
            np.zeros((1, *s12.shape)),
            self.means,
            self.to_mean,
            self.to_var,
            self.var_scale,
            self.w_mean,
            self.w_var,
            dots,
            norms,
            0,
            1,
        )
        return float(dots[0]), float(norms[0])

    def update(
        self,
        sums: tuple[np.ndarray, np.ndarray],
        old: tuple[np.ndarray, np.ndarray],
        new: tuple[np.ndarray, np.ndarray],
        cubes: np.ndarray,
        regions: np.ndarray,
        first: np.ndarray,
        counts: np.ndarray,
        parts: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """The parts of each region of a lattice, into ``parts``' rows.

        ``cubes`` are the cubes the lattice changes, grouped by region: region ``regions[i]``
        owns ``cubes[first[i] : first[i] + counts[i]]``. S_o = S + Σ over them of the new
        descriptor's γ ⊗ [x′, x′²] minus the old one's: per batch of regions, one batched GEMM
        on the cubes gathered and padded with γ = 0; then Ψ_o and its parts, region by region
        in compiled code, in threads.
        """
        s0, s12 = sums
        k, two_d = old[0].shape[1], old[1].shape[1]
        batch = max(1, BATCH_ENTRIES // (k * two_d))
        by_size = np.argsort(-counts, kind="stable")  # batches of like sizes: little padding
        for i in range(0, len(regions), batch):
            sel = by_size[i : i + batch]
            width = int(counts[sel].max())
            offsets = np.arange(width)
            absent = offsets >= counts[sel, None]  # (B, m): the padding
            rows = cubes[np.minimum(first[sel, None] + offsets, len(cubes) - 1)]
            d0 = d12 = None
            for gammas, stacks in (new, old):  # S_o − S = Σ new − Σ old
                gamma = gammas[rows]  # (B, m, K)
                gamma[absent] = 0.0
                part0 = gamma.sum(axis=1)
                part12 = np.matmul(gamma.transpose(0, 2, 1), stacks[rows])
                if d0 is None:
                    d0, d12 = part0, part12
                else:
                    d0 -= part0
                    d12 -= part12
            dots, norms = np.empty(len(d0)), np.empty(len(d0))
            _in_pieces(
                len(d0),
                8,
                _score_parts,
                s0,
                s12,
                d0,
                d12,
                self.means,
                self.to_mean,
                self.to_var,
                self.var_scale,
                self.w_mean,
                self.w_var,
                dots,
                norms,
            )
            parts[0][regions[sel]] = dots
            parts[1][regions[sel]] = norms


@njit(cache=True, nogil=True)
def _score_parts(
    s0, s12, d0, d12, means, to_mean, to_var, var_scale, w_mean, w_var, dots, norms, start, stop
):
    """For regions b = start … stop − 1: Ψ of the sums S0 + d0[b] (K,), S12 + d12[b] (K, 2d),
    then ``dots[b]`` = w · sign(Ψ)|Ψ|^½ and ``norms[b]`` = Σ |Ψ| (= ‖sign(Ψ)|Ψ|^½‖²)."""
    k_count, d = means.shape
    acc_dot = np.empty(d)
    acc_norm = np.empty(d)
    for b in range(start, stop):
        acc_dot[:] = 0.0
        acc_norm[:] = 0.0
        for k in range(k_count):
            z = s0[k] + d0[b, k]
            for i in range(d):  # independent lanes: the compiler vectorises this loop
                s1 = s12[k, i] + d12[b, k, i]
                s2 = s12[k, d + i] + d12[b, k, d + i]
                mu = means[k, i]
                psi_mean = (s1 - mu * z) * to_mean[k, i]
                psi_var = (s2 - 2.0 * mu * s1 + mu * mu * z) * var_scale[k, i] - z * to_var[k, i]
                a, v = abs(psi_mean), abs(psi_var)
                acc_dot[i] += w_mean[k, i] * math.copysign(math.sqrt(a), psi_mean)
                acc_dot[i] += w_var[k, i] * math.copysign(math.sqrt(v), psi_var)
                acc_norm[i] += a + v
        dots[b] = acc_dot.sum()
        norms[b] = acc_norm.sum()


# --------------------------------------------------------------------------------------------
# Regions, and which cubes see them


@dataclass(frozen=True)
class _Axis:
    """Regions along one axis (time, rows or columns) against the cubes' extents along it."""

    of_voxel: np.ndarray  # (T,), (gh,) or (gw,): the region index of each frame / row / column
    period: int  # regions p apart see disjoint sets of cubes along this axis
    owners: np.ndarray  # (p, U): the region r ≡ a (mod p) each cube extent u overlaps, or −1
    extent_of_cube: np.ndarray  # (N,): each cube's extent u

    @classmethod
    def of(cls, of_voxel: np.ndarray, reach: np.ndarray, cube_extents: np.ndarray) -> _Axis:
        """``reach`` (R, 2): the half-open span along the axis whose cubes a region changes;
        ``cube_extents`` (N, 2): each cube's span, in the same unit."""
        extents, inverse = np.unique(cube_extents, axis=0, return_inverse=True)
        overlap = (extents[None, :, 0] < reach[:, None, 1]) & (
            extents[None, :, 1] > reach[:, None, 0]
        )
        shared = overlap.astype(np.int64) @ overlap.T.astype(np.int64)
        i, j = np.nonzero(shared)
        gaps = np.unique(np.abs(i - j))
        gaps = gaps[gaps > 0]
        period = next(p for p in range(1, len(reach) + 1) if not np.any(gaps % p == 0))
        owners = np.full((period, len(extents)), -1, np.int64)
        for a in range(period):
            sub = overlap[a::period]
            owners[a] = np.where(sub.any(axis=0), a + period * sub.argmax(axis=0), -1)
        return cls(of_voxel, period, owners, inverse.ravel())


@dataclass(frozen=True)
class _RegionGrid:
    """The clip's regions, numbered ``(rt · ny + ry) · nx + rx`` as in
    `benchmarks/bench_faithfulness.py`'s ``regions``, and the cubes each one changes."""

    axes: tuple[_Axis, _Axis, _Axis]
    counts: tuple[int, int, int]

    @classmethod
    def of(
        cls,
        field: MotionField,
        params: DescriptorParams,
        boxes: np.ndarray,
        region_px: int,
        region_frames: int,
    ) -> _RegionGrid:
        t, gh, gw = field.grid_shape
        per = region_px // field.cell
        # A changed cell of the grid the descriptors are computed on (f × f cells of the field,
        # f the `max_width` factor) changes that cell's histograms and, by MBH's central
        # differences, its neighbours' gradients: cubes up to one such cell away see it.
        f = scale_factor(field.width, params.max_width)
        axes = []
        for size, step, unit, columns in (
            (t, region_frames, 1, (0, 1)),
            (gh, per, field.cell, (2, 3)),
            (gw, per, field.cell, (4, 5)),
        ):
            starts = np.arange(0, size, step)
            stops = np.minimum(starts + step, size)
            if unit == 1:  # time: no reach beyond the region's own frames
                reach = np.stack([starts, stops], axis=1)
            else:
                lo = (starts // f - 1) * f * unit
                hi = (-(-stops // f) + 1) * f * unit
                reach = np.stack([lo, hi], axis=1)
            of_voxel = np.arange(size) // step
            axes.append(_Axis.of(of_voxel, reach, boxes[:, list(columns)]))
        counts = tuple(int(a.of_voxel[-1]) + 1 for a in axes)
        return cls(tuple(axes), counts)

    @property
    def size(self) -> int:
        return math.prod(self.counts)

    def lattices(self) -> Iterator[tuple[int, int, int]]:
        """Residues (a, b, c): the regions with rt ≡ a, ry ≡ b, rx ≡ c modulo the periods
        change disjoint sets of cubes, so they can be removed together."""
        return itertools.product(*(range(a.period) for a in self.axes))

    def owner_of_cubes(self, lattice: tuple[int, int, int]) -> np.ndarray:
        """(N,): the region of the lattice each cube sees, or −1."""
        rt, ry, rx = (
            a.owners[r][a.extent_of_cube] for a, r in zip(self.axes, lattice, strict=True)
        )
        _, ny, nx = self.counts
        return np.where((rt >= 0) & (ry >= 0) & (rx >= 0), (rt * ny + ry) * nx + rx, -1)

    def voxel_mask(self, lattice: tuple[int, int, int]) -> np.ndarray:
        """(T, gh, gw) bool: the voxels of the lattice's regions."""
        t, y, x = ((a.of_voxel % a.period) == r for a, r in zip(self.axes, lattice, strict=True))
        return t[:, None, None] & y[None, :, None] & x[None, None, :]

    def region_of_voxels(self) -> np.ndarray:
        t, y, x = (a.of_voxel for a in self.axes)
        _, ny, nx = self.counts
        return (t[:, None, None] * ny + y[None, :, None]) * nx + x[None, None, :]

    def spread(self, values: np.ndarray) -> np.ndarray:
        """(T, gh, gw): each region's value shared evenly by its voxels."""
        region = self.region_of_voxels()
        voxels = np.bincount(region.ravel(), minlength=self.size)
        per_voxel = np.divide(values, voxels, out=np.zeros(self.size), where=voxels > 0)
        return per_voxel[region]


__all__ = ["occlusion"]
