"""The relevance steps of the Fisher and PCA layers (design §5.3, §5.4): R(3) → R(2).

The contribution of descriptor l to dimension d of Ψ is ``z_ld`` (`actionlrp.fisher`), so
``Ψ_d = Σ_l z_ld`` and the ε-rule hands R(3) back to the descriptors as

    R(2)_l = Σ_d z_ld a_d,    a_d = R(3)_d / (Ψ_d + ε sign Ψ_d).

With a_d split into its mean and variance parts, the sum over d is ``x P + (x∘x) Q + C`` per
component (`_relevance_terms`), so R(2) costs three matrix products over blocks of descriptors,
the price of one encoding; no N × D matrix is built. Each term belongs to one input dimension of
the encoded descriptor, which gives R(2) per histogram bin (`bin_relevance`); with PCA the
projection is one more ε-rule layer on the way to the bins (`actionlrp.pca_lrp`). With a still
root every contribution is measured from that of a motionless cube (`actionlrp.still_root`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numba import njit
from sklearn.utils.validation import check_is_fitted

from actionlrp._scratch import _Workspace, _workspace
from actionlrp.descriptors import LocalDescriptors
from actionlrp.descriptors_lrp import row_sums
from actionlrp.fisher import FisherEncoder, SoftAssignments, _n_descriptors, atom_groups
from actionlrp.pca_lrp import _abs_sums, _alpha_beta, _times_deviation
from actionlrp.rules import EpsilonUnit, Rule
from actionlrp.still_root import _roots, _still_root

if TYPE_CHECKING:
    from actionlrp.relevance import Forward


def relevance(
    encoder: FisherEncoder, forward: Forward, r3: np.ndarray, rule: Rule
) -> dict[str, np.ndarray]:
    """The Fisher layer's relevance step for one clip: R(3) per FV dimension → R(2).

    Parameters
    ----------
    encoder : FisherEncoder
        The fitted encoder that encoded ``forward.descriptors``.
    forward : Forward
        The clip's forward pass (descriptors, Fisher vector with its kept soft assignments, the
        dimensions it populates, motion field and descriptor parameters for the still root).
    r3 : ndarray, shape (fv_dim_,)
        Relevance of each FV dimension.
    rule : Rule
        ``rule.per_bin``: R(2) of each histogram bin of each descriptor (through the PCA layer
        where there is one), measured from ``rule.root``; else R(2) of each descriptor by the
        plain ε-rule.

    Returns
    -------
    dict of str to ndarray, float64
        Per feature type, shape (N, input_dims_[f]) with ``rule.per_bin``, else (N,). With
        ``rule.per_bin`` they are ``forward.scratch``'s arrays where it lends one: use them
        before the next clip.
    """
    desc, fisher = forward.descriptors, forward.fisher
    common = dict(
        psi=fisher.psi,
        live=forward.live,
        epsilon_unit=rule.epsilon_unit,
        assignments=fisher.assignments,
    )
    if not rule.per_bin:
        r2, _ = epsilon_relevance(encoder, desc, r3, rule.epsilon, **common)
        return r2
    reference = root = None
    if rule.root == "still":
        reference, root = _still_root(encoder, forward)
    out = None
    if forward.scratch is not None:
        out = {
            f: forward.scratch.array(f"bins {f}", (len(desc), d), np.float64)
            for f, d in encoder.input_dims_.items()
        }
    bins, _ = bin_relevance(
        encoder,
        desc,
        r3,
        rule.epsilon,
        reference=reference,
        reference_index=None if root is None else root[0],
        root=root,
        out=out,
        pca_epsilon=rule.pca_epsilon,
        pca_scale=rule.pca_scale,
        pca_rule=rule.pca_rule,
        **common,
    )
    return bins


def descriptor_relevance(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    a: np.ndarray,
    assignments: SoftAssignments | None = None,
) -> dict[str, np.ndarray]:
    """Per descriptor and feature type, Σ_{d in block f} z_ld · a_d, without an N × D matrix.

    Parameters
    ----------
    encoder : FisherEncoder
        A fitted encoder.
    desc : LocalDescriptors
        The clip that was encoded.
    a : ndarray, shape (fv_dim_,)
        One weight per dimension of Ψ, e.g. ``a_d = R(3)_d / (Ψ_d + ε sign Ψ_d)``.
    assignments : SoftAssignments, optional
        Kept from the encoding of ``desc`` (else computed again).

    Returns
    -------
    dict of str to ndarray, shape (N,), float64
        For each feature type f, ``r_l = Σ_{d in blocks_[f]} z_ld a_d``; hence
        ``Σ_l r_l = Σ_{d in blocks_[f]} Ψ_d a_d`` to float64 round-off.
    """
    check_is_fitted(encoder, "weights_")
    a = np.asarray(a, np.float64)
    if a.shape != (encoder.fv_dim_,):
        raise ValueError(f"a must have shape ({encoder.fv_dim_},) like Ψ, got {a.shape}")
    _n_descriptors(desc, encoder.feature_types_, encoder.input_dims_)
    atoms = encoder.atoms(desc)
    return {
        f: _relevance_block(encoder, desc, f, a[encoder.blocks_[f]], atoms, assignments)
        for f in encoder.blocks_
    }


def _relevance_terms(
    encoder: FisherEncoder, f: str, a: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P, Q, C (K, d) with u a^μ + (u² − 1) a^σ = x P + x² Q + C per component and dimension
    (design §5.3; x centred like the encoder's x′)."""
    block = encoder._derived[f]
    d, k = encoder.dims_[f], encoder.n_components
    mu, sigma = block.means, block.sigmas
    a_mean = a[: k * d].reshape(k, d) / (n * block.sqrt_weights[:, None])
    a_var = a[k * d :].reshape(k, d) / (n * math.sqrt(2.0) * block.sqrt_weights[:, None])
    p = a_mean / sigma - 2.0 * mu * a_var / sigma**2
    q = a_var / sigma**2
    c = -mu * a_mean / sigma + (mu**2 / sigma**2 - 1.0) * a_var
    return p, q, c


def _atom_terms(encoder: FisherEncoder, f: str, a: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """[P Q C] (n_atoms, K, 3d) of each pyramid atom: the sum of `_relevance_terms` over the
    channels that hold it, each with its own a (2·K·d) and N_c (design §5.3)."""
    k, d = encoder.n_components, encoder.dims_[f]
    counts = encoder.channel_counts(atoms)
    terms = np.zeros((encoder.n_channels_, k, 3 * d))
    size = 2 * k * d
    for c in np.flatnonzero(counts):
        a_c = a[c * size : (c + 1) * size]
        terms[c] = np.concatenate(_relevance_terms(encoder, f, a_c, counts[c]), axis=1)
    if encoder.n_channels_ == 1:
        return terms
    return np.tensordot(encoder._membership, terms, axes=1)


def _times_terms(
    gamma: np.ndarray, terms: np.ndarray, atoms: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """Γ [P Q C] of a block of descriptors into ``out`` (n, 3d), each row with its atom's terms."""
    if len(terms) == 1:
        return np.matmul(gamma, terms[0], out=out)
    for atom, rows in atom_groups(atoms, len(terms)):
        out[rows] = gamma[rows] @ terms[atom]
    return out


def _relevance_block(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    f: str,
    a: np.ndarray,
    atoms: np.ndarray,
    assignments: SoftAssignments | None,
) -> np.ndarray:
    d = encoder.dims_[f]
    terms = _atom_terms(encoder, f, a, atoms)
    const = terms[:, :, 2 * d :].sum(axis=2)  # (n_atoms, K)
    pq = np.ascontiguousarray(terms[:, :, : 2 * d].transpose(0, 2, 1))  # (n_atoms, 2d, K)
    out = np.empty(len(atoms))
    start = 0
    with _workspace() as work:
        for gamma, stacked in encoder._chunks(desc, f, work, assignments):
            block = out[start : start + len(gamma)]
            for atom, rows in atom_groups(atoms[start : start + len(gamma)], len(terms)):
                inner = stacked[rows] @ pq[atom]
                inner += const[atom]
                # design §5.3: R(2)_l = Σ_k γ_lk [x_l·P + (x_l∘x_l)·Q + c]_k
                block[rows] = np.einsum("lk,lk->l", gamma[rows], inner)
            start += len(gamma)
    return out


def epsilon_relevance(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    r3: np.ndarray,
    epsilon: float,
    *,
    psi: np.ndarray | None = None,
    live: np.ndarray | None = None,
    epsilon_unit: EpsilonUnit = "relative",
    assignments: SoftAssignments | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """R(2) of each descriptor and feature type by the ε-rule (design §5.3).

    ``R(2)_(l,f) = Σ_{d in block f} z_ld R(3)_d / (Ψ_d + ε_abs · sign(Ψ_d))`` with sign(0) = +1.
    With ``epsilon_unit="relative"``, ``ε_abs = epsilon · mean_d |Ψ_d|`` (the clip's own mean
    absolute FV entry over all D dimensions of Ψ, not Φ); ``"absolute"``: ``ε_abs = epsilon``.
    A dimension whose denominator is exactly 0 (only possible with ``epsilon = 0`` and Ψ_d = 0)
    passes nothing on.

    Parameters
    ----------
    encoder : FisherEncoder
        A fitted encoder.
    desc : LocalDescriptors
        The clip that was encoded.
    r3 : ndarray, shape (fv_dim_,)
        Relevance of each FV dimension, e.g. ``w_cd Φ_d + b_c / D``.
    epsilon : float
        The stabiliser (≥ 0); larger absorbs more relevance.
    psi : ndarray, shape (fv_dim_,), optional
        The clip's Ψ if already encoded (saves a second encoding).
    live : ndarray of bool, shape (fv_dim_,), optional
        Dimensions allowed to pass relevance on; the others keep theirs (absorbed).
    epsilon_unit : {"relative", "absolute"}
    assignments : SoftAssignments, optional
        Kept from the encoding of ``desc``.

    Returns
    -------
    r2 : dict of str to ndarray, shape (N,), float64
        Relevance of each descriptor per feature type; R(2)_l = Σ_f r2[f][l].
    absorbed : float
        Σ_d R(3)_d − Σ_f Σ_l R(2)_(l,f), the relevance the stabiliser kept.
    """
    r3, psi = _relevance_inputs(encoder, desc, r3, epsilon, psi)
    a = _stabilised_weights(r3, epsilon, epsilon_unit, psi, live)
    r2 = descriptor_relevance(encoder, desc, a, assignments)
    absorbed = float(r3.sum() - sum(float(r.sum()) for r in r2.values()))
    return r2, absorbed


def _relevance_inputs(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    r3: np.ndarray,
    epsilon: float,
    psi: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``r3`` as float64 and the clip's Ψ, after checking the arguments of a relevance step."""
    check_is_fitted(encoder, "weights_")
    r3 = np.asarray(r3, np.float64)
    if r3.shape != (encoder.fv_dim_,):
        raise ValueError(f"r3 must have shape ({encoder.fv_dim_},) like Ψ, got {r3.shape}")
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be ≥ 0, got {epsilon!r}")
    return r3, encoder.encode(desc).psi if psi is None else psi


def _stabilised_weights(
    r3: np.ndarray,
    epsilon: float,
    epsilon_unit: EpsilonUnit,
    psi: np.ndarray,
    live: np.ndarray | None,
) -> np.ndarray:
    """a_d = R(3)_d / (Ψ_d + ε_abs sign Ψ_d), 0 where nothing may pass (design §5.3)."""
    if epsilon_unit == "absolute":
        eps_abs = float(epsilon)
    else:
        eps_abs = float(epsilon) * float(np.mean(np.abs(psi)))
    denominator = psi + eps_abs * np.where(psi >= 0, 1.0, -1.0)
    passes = denominator != 0 if live is None else live & (denominator != 0)
    return np.divide(r3, denominator, out=np.zeros_like(r3), where=passes)


def bin_relevance(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    r3: np.ndarray,
    epsilon: float,
    *,
    psi: np.ndarray | None = None,
    live: np.ndarray | None = None,
    reference: LocalDescriptors | None = None,
    reference_index: np.ndarray | None = None,
    out: Mapping[str, np.ndarray] | None = None,
    epsilon_unit: EpsilonUnit = "relative",
    assignments: SoftAssignments | None = None,
    pca_epsilon: float | None = None,
    pca_scale: str = "layer",
    pca_rule: str = "epsilon",
    root: tuple | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """R(2) of every input dimension of every descriptor: the ε-rule, one dimension finer.

    Each term of ``R(2)_l = Σ_k γ_lk Σ_i [u_lki a^μ_ki / (N√π_k) + (u_lki² − 1) a^σ_ki /
    (N√(2π_k))]`` belongs to one dimension i of the encoded descriptor, so
    ``R(2)_li = x_li (Γ P)_li + x_li² (Γ Q)_li + (Γ C)_li`` (design §5.3, three GEMMs) and
    ``Σ_i R(2)_li = R(2)_l``. With PCA, ``x′_i = Σ_j W_ij (x_j − m_j)`` is a linear layer
    and ``R(2)_lj = Σ_i W_ij (x_lj − m_j) R(2)_li / (x′_li + ε′ sign x′_li)`` (design §5.4),
    with ε′ = ``epsilon`` × the clip's mean |x′| (``"relative"``) or ``epsilon``
    (``"absolute"``); what ε′ keeps is added to ``absorbed``.

    Parameters
    ----------
    encoder : FisherEncoder
        A fitted encoder.
    desc : LocalDescriptors
        The clip that was encoded (N descriptors).
    r3, epsilon, psi, live, epsilon_unit, assignments
        As in `epsilon_relevance`.
    reference : LocalDescriptors, optional
        S reference descriptors x⁰ (e.g. those of a motionless cube,
        `descriptors_lrp.still_reference`). Each descriptor then passes on relevance in
        proportion to its deviation from its reference: z_ld is replaced by z_ld − z⁰_ld and
        Ψ_d by Ψ_d − Ψ⁰_d (Ψ⁰: the FV of the clip with every descriptor at its reference),
        so a descriptor equal to its reference gets exactly 0. As ε → 0, Σ R(2) → Σ R(3)
        but for the R(3) of dimensions that no descriptor moves (Ψ_d = Ψ⁰_d), which is
        absorbed. With PCA the linear layer is decomposed around x⁰ too (no bias is left).
    reference_index : ndarray of int, shape (N,), optional
        Which reference row each descriptor deviates from (default: row 0).
    out : dict of str to ndarray, shape (N, input_dims_[f]), float64, optional
        Arrays to write R(2) into (and return), e.g. scratch arrays kept between clips.
    pca_epsilon : float, optional
        ε′ of the PCA layer in the same unit, if not ``epsilon``.
    pca_scale : {"layer", "dimension"}
        With ``"relative"``: ε′ × the clip's mean |x′| over all the layer's dimensions, or per
        dimension i (ε′_i, each PCA dimension on its own scale).
    pca_rule : {"epsilon", "alpha-beta"}
        The PCA layer by the ε-rule above, or by the α1β0 rule about the sign of each x′_li
        (`_alpha_beta`: exactly conservative, no ε).
    root : tuple, optional
        `_roots` of ``reference`` if already derived.

    Returns
    -------
    r2 : dict of str to ndarray, shape (N, input_dims_[f]), float64
        Relevance of each descriptor's input dimensions (histogram bins) per feature type.
    absorbed : float
        Σ_d R(3)_d − Σ R(2), the relevance both stabilisers kept.
    """
    r3, psi = _relevance_inputs(encoder, desc, r3, epsilon, psi)
    n = _n_descriptors(desc, encoder.feature_types_, encoder.input_dims_)
    if out is None:
        out = {f: np.empty((n, encoder.input_dims_[f])) for f in encoder.blocks_}
    atoms = encoder.atoms(desc)
    index, roots = None, dict.fromkeys(encoder.blocks_)
    if reference is None:
        a = _stabilised_weights(r3, epsilon, epsilon_unit, psi, live)
    else:
        index, roots, psi_ref = root or _roots(encoder, reference, reference_index, atoms)
        a = _stabilised_weights(r3, epsilon, epsilon_unit, psi - psi_ref, live)
    r2 = {}
    with _workspace() as work:
        for f in encoder.blocks_:
            r2[f] = _input_block(
                encoder,
                desc,
                f,
                a[encoder.blocks_[f]],
                atoms,
                (
                    epsilon if pca_epsilon is None else pca_epsilon,
                    epsilon_unit,
                    pca_scale,
                    pca_rule,
                ),
                out[f],
                work,
                assignments,
                reference,
                index,
                roots[f],
            )
    return r2, float(r3.sum() - sum(float(row_sums(r).sum()) for r in r2.values()))


def kept_shares(encoder: FisherEncoder, forward: Forward, rule: Rule) -> np.ndarray:
    """The share of each dimension's R(3) that the Fisher layer keeps (does not pass on).

    ``ε s_d / (ΔΨ_d + ε s_d)`` where the dimension passes relevance on, ΔΨ = Ψ (zero root) or
    Ψ − Ψ⁰ (still root); 1 where it passes nothing (a dimension the clip does not populate, or
    ΔΨ_d + ε s_d = 0). Σ_d |R(3)_d| × share / Σ_d |R(3)_d| is the absorbed *mass*, which
    opposite signs cannot cancel as they can in the net absorbed relevance.

    Returns
    -------
    ndarray, shape (D,), float64
        Shares in [0, 1] for ε ≥ 0 (ΔΨ_d and ε s_d have one sign).
    """
    psi = forward.fisher.psi
    if rule.root == "still":
        psi = psi - _still_root(encoder, forward)[1][2]
    ones = np.ones_like(psi)
    passed = _stabilised_weights(ones, rule.epsilon, rule.epsilon_unit, psi, forward.live) * psi
    return np.where(passed != 0, 1.0 - passed, 1.0)


def _input_block(
    encoder: FisherEncoder,
    desc: LocalDescriptors,
    f: str,
    a: np.ndarray,
    atoms: np.ndarray,
    epsilon: tuple[float, EpsilonUnit, str, str],
    out: np.ndarray,
    work: _Workspace,
    assignments: SoftAssignments | None,
    reference: LocalDescriptors | None = None,
    index: np.ndarray | None = None,
    root: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """`bin_relevance` of one feature type into ``out``: the FV layer, then the PCA layer,
    block by block in ``work``'s scratch arrays. ``root``: γ⁰ (S, K) and [x⁰′, x⁰′∘x⁰′]
    (S, 2d) of the ``reference`` rows; ``index``: each descriptor's root, ``atom · S + s``
    (`_roots`). Whatever belongs to a root is laid out per (atom, reference row) the same way."""
    d, n = encoder.dims_[f], len(atoms)
    terms = _atom_terms(encoder, f, a, atoms)  # (n_atoms, K, 3d)
    n_atoms = len(terms)
    pca = f in encoder.pca_components_
    alpha_beta = None  # W and |W| when the PCA layer goes by the α1β0 rule
    if reference is None:
        index = atoms
        ref_value, ref_stacked = np.zeros((n_atoms, d)), np.zeros((1, 2 * d))
        origins = np.tile(encoder.pca_mean_[f], (n_atoms, 1)) if pca else None
    else:
        # R(2) of the reference rows themselves, z⁰ in the same terms, for every atom
        gamma0, ref_stacked = root
        g0 = np.concatenate([gamma0 @ t for t in terms])  # (n_atoms · S, 3d)
        x0 = np.tile(ref_stacked, (n_atoms, 1))
        ref_value = x0[:, :d] * g0[:, :d] + x0[:, d:] * g0[:, d : 2 * d] + g0[:, 2 * d :]
        origins = np.tile(np.asarray(reference.features[f], np.float64), (n_atoms, 1))
    if pca:
        components = encoder.pca_components_[f]
        if reference is None:  # x′ = W (x − m): the centred x′ plus the mixture's centre
            shift = (encoder._derived[f].offset - encoder.pca_mean_[f] @ components.T)[None, :]
        else:  # W (x − x⁰) = centred x′ − centred x⁰′
            shift = -ref_stacked[:, :d]
        shift = np.tile(shift, (n_atoms, 1))
        value, unit, scale, pca_rule = epsilon
        if pca_rule == "alpha-beta":
            alpha_beta = (components, np.abs(components))
        elif unit == "absolute":
            eps_abs = np.full(d, float(value))
        else:
            sums = np.zeros(d)
            start = 0
            # ε′ = ε × the clip's mean |W (x − origin)|, over all dimensions or per dimension;
            # two passes over the blocks, which are kept from the encoding or, for a clip too
            # long to keep, computed again
            for _, stacked in encoder._chunks(desc, f, None, assignments):
                _abs_sums(stacked, shift, index[start : start + len(stacked)], sums)
                start += len(stacked)
            if scale == "dimension":
                eps_abs = float(value) * sums / n
            else:
                eps_abs = np.full(d, float(value) * sums.sum() / (n * d))
    start = 0
    for gamma, stacked in encoder._chunks(desc, f, None, assignments):
        stop = start + len(gamma)
        rows = index[start:stop]
        g = work.array("fv g", (len(gamma), 3 * d), np.float64)
        _times_terms(gamma, terms, atoms[start:stop], g)
        if alpha_beta is not None:
            # design §5.4: R_lj = Σ_i [W_ij δ_lj]_σ R(2)_li / Σ_j′ [W_ij′ δ_lj′]_σ, σ = sign x′_li
            value = work.array("fv ratio", (len(gamma), d), np.float64)
            _dimension_terms(stacked, g, ref_value, rows, False, shift, np.zeros(d), value)
            projected = work.array("ab x′", (len(gamma), d), np.float64)
            np.add(stacked[:, :d], shift[rows], out=projected)  # W (x − origin)
            x = desc.features[f][start:stop]
            _alpha_beta(value, x, origins, rows, projected, alpha_beta, work, out[start:stop])
        elif pca:
            # design §5.4: R_lj = (x_lj − o_j) Σ_i W_ij R(2)_li / (x′_li + ε′ sign x′_li)
            ratio = work.array("fv ratio", (len(gamma), d), np.float64)
            _dimension_terms(stacked, g, ref_value, rows, True, shift, eps_abs, ratio)
            block = np.matmul(ratio, components, out=out[start:stop])
            _times_deviation(block, desc.features[f][start:stop], origins, rows)
        else:
            r = out[start:stop]
            _dimension_terms(stacked, g, ref_value, rows, False, ref_value, np.zeros(d), r)
        start = stop
    return out


@njit(cache=True, nogil=True)
def _dimension_terms(stacked, g, ref_value, index, divide, shift, eps_abs, out):
    """R(2)_li of a block of descriptors into ``out`` (n, d); with ``divide``, over the PCA
    layer's stabilised input instead (0 where that is 0).

    ``stacked`` (n, 2d): [x − c, (x − c)²] in the encoded space (c: the mixture's centre); ``g``
    (n, 3d): Γ [P Q C], so R(2)_li = (x − c)_li (Γ P)_li + (x − c)_li² (Γ Q)_li + (Γ C)_li −
    ``ref_value``[s] (design §5), s = ``index``_l the row of the root; the PCA layer's input is
    (x − c)_li + ``shift``[s, i], stabilised by ε′_i = ``eps_abs``[i] sign(·)."""
    n, d = out.shape
    for row in range(n):
        s = index[row]
        for i in range(d):
            x = stacked[row, i]
            value = x * g[row, i] + stacked[row, d + i] * g[row, d + i] + g[row, 2 * d + i]
            value -= ref_value[s, i]
            if not divide:
                out[row, i] = value
                continue
            denominator = x + shift[s, i]
            denominator += eps_abs[i] if denominator >= 0 else -eps_abs[i]
            out[row, i] = value / denominator if denominator != 0 else 0.0
