"""The still root (design §5.3–5.5, "Still root"): what relevance is measured from with
``rule.root == "still"``, a motionless cube.

`still_reference` describes a motionless cube at each scale — an all-zero motion field, and with
HOG a flat picture — and says which of them each descriptor of a clip deviates from (x⁰_s(l)).
`_roots` carries those references through the Fisher layer: their soft assignments γ⁰ and
encoded [x⁰′, x⁰′∘x⁰′] per feature type, and Ψ⁰, the Fisher vector of the clip with every
descriptor at its root (summed per pyramid atom); `_still_root` derives both once per forward
pass. `actionlrp.fisher_lrp` measures the Fisher and PCA layers' relevance from them; the
histogram layer's root (`actionlrp.descriptors_lrp.spread_bins`) needs only the still threshold.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import numpy as np

from actionlrp._cubes import _TIME_CELLS
from actionlrp.descriptors import DescriptorParams, LocalDescriptors, describe, scale_factor
from actionlrp.hog import HOG_BINS
from actionlrp.video import MotionField

if TYPE_CHECKING:
    from actionlrp.fisher import FisherEncoder
    from actionlrp.relevance import Forward


def still_reference(
    field_: MotionField, desc: LocalDescriptors, params: DescriptorParams | None = None
) -> tuple[LocalDescriptors, np.ndarray]:
    """The descriptor of a motionless cube at each scale, and which one each of ``desc`` is.

    A reference point for the relevance step (`fisher_lrp.bin_relevance`): "no motion
    here". Made by describing an all-zero motion field, so it is exactly what a still cube gives;
    with HOG, of a flat picture too (no luma gradient: a HOG of zeros).

    Returns
    -------
    reference : LocalDescriptors
        One row per cube size of ``params``.
    index : ndarray of int, shape (N,)
        The row of ``reference`` of each descriptor's scale (by its box size).
    """
    params = params or DescriptorParams(hog="hog" in desc.features)
    factor = scale_factor(field_.width, params.max_width)
    reference = _still_descriptors(dataclasses.replace(params, max_width=None), field_.cell)
    sides = np.asarray(reference.boxes[:, 3] - reference.boxes[:, 2])
    order = np.argsort(sides, kind="stable")
    place = np.searchsorted(sides[order], (desc.boxes[:, 3] - desc.boxes[:, 2]) // factor)
    return reference, order[np.minimum(place, len(sides) - 1)].astype(np.intp)


@functools.lru_cache(maxsize=16)
def _still_descriptors(params: DescriptorParams, cell: int) -> LocalDescriptors:
    """One motionless cube per size of ``params``, described (read-only arrays, shared)."""
    rows = []
    for size, stride in zip(params.cube_px, params.strides(), strict=True):
        grid = (_TIME_CELLS * params.cell_frames, size // cell, size // cell)
        still = MotionField(
            flow=np.zeros((*grid, 2), "f4"),
            frame_types=np.array(["P"] * (_TIME_CELLS * params.cell_frames)),
            has_vectors=np.ones(_TIME_CELLS * params.cell_frames, bool),
            timestamps=np.zeros(_TIME_CELLS * params.cell_frames),
            width=size,
            height=size,
            fps=25.0,
            cell=cell,
            hog=np.zeros((*grid, HOG_BINS), "f4") if params.hog else None,  # a flat picture
        )
        rows.append(describe(still, dataclasses.replace(params, cube_px=(size,), stride_px=stride)))
    reference = LocalDescriptors.concatenate(rows)
    for array in (*reference.features.values(), reference.boxes):
        array.flags.writeable = False
    return reference


def _roots(
    encoder: FisherEncoder,
    reference: LocalDescriptors,
    reference_index: np.ndarray | None,
    atoms: np.ndarray,
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The still root of a clip whose descriptors lie in pyramid ``atoms`` (N,): each
    descriptor's root, ``atom · S + s`` with s its reference row; γ⁰ and [x⁰′, x⁰′∘x⁰′] of the S
    reference rows per feature type; and Ψ⁰ (D,)."""
    n, s_rows = len(atoms), len(reference)
    index = np.zeros(n, np.intp) if reference_index is None else reference_index
    index = atoms * s_rows + np.asarray(index, np.intp)
    uses = np.bincount(index, minlength=encoder._n_atoms * s_rows)
    uses = uses.reshape(encoder._n_atoms, s_rows)
    uses = uses.astype(np.float64)
    counts = encoder.channel_counts(atoms)
    # Ψ⁰_c = Σ_{l in c} z⁰_l: the statistics of reference row s, as often as descriptors of the
    # channel deviate from it
    roots = {f: next(encoder._compute_chunks(reference, f)) for f in encoder.blocks_}
    psi_ref = []
    for f, (g0, x0) in roots.items():
        s0 = encoder.channel_sums(uses @ g0)
        s12 = encoder.channel_sums(np.einsum("as,sk,sj->akj", uses, g0, x0))
        k, d = encoder.n_components, encoder.dims_[f]
        for c in range(encoder.n_channels_):
            if counts[c] > 0:
                psi_ref.append(encoder._psi_of_sums(f, s0[c], s12[c], counts[c]))
            else:
                psi_ref.append(np.zeros(2 * k * d))
    return index, roots, np.concatenate(psi_ref)


def _still_root(encoder: FisherEncoder, forward: Forward) -> tuple[LocalDescriptors, tuple]:
    """The motionless cubes of a clip (`still_reference`) and their `_roots`, derived once per
    forward pass."""
    if "still root" not in forward.memo:
        desc = forward.descriptors
        reference, index = still_reference(forward.field, desc, forward.params)
        atoms = encoder.atoms(desc)
        forward.memo["still root"] = (reference, _roots(encoder, reference, index, atoms))
    return forward.memo["still root"]
