"""Improved Fisher vectors of local descriptors (design §3): the forward step of the Fisher layer.

For each feature type f, the clip's descriptors are projected (optional PCA), softly assigned
to the K components of a diagonal GMM, and summarised by the gradient statistics

    Ψ^μ_ki = Σ_l γ_lk u_lki / (N √π_k),    Ψ^σ_ki = Σ_l γ_lk (u_lki² − 1) / (N √(2π_k)),

with ``u_lki = (x_li − μ_ki) / σ_ki``. Ψ = [Ψ_HOF, Ψ_MBHx, Ψ_MBHy (, Ψ_HOG)]; each type's block
is ``[Ψ^μ (K·d, k-major), Ψ^σ (K·d, k-major)]``, once per channel of a space-time pyramid
(`actionlrp.pyramid`; channel c sums over its N_c cubes only, with N_c for N). Φ = sign(Ψ)|Ψ|^½ /
‖sign(Ψ)|Ψ|^½‖₂. The summand of Ψ_d is descriptor l's contribution ``z_ld``, which the relevance
step (`FisherEncoder.relevance`, maths in `actionlrp.fisher_lrp`) hands R(3) back by. The PCA and
the GMM are fitted on a sample of training descriptors by `FisherEncoder.fit` (in
`actionlrp.fisher_fit`, which also rebuilds a saved encoder).

Everything is a matrix product over blocks of descriptors; no N × D matrix is ever built and
there is no loop over descriptors or components.

Precision
---------
The log-likelihoods behind γ are float32 GEMMs on data centred on the mixture's mean (which keeps
the expanded quadratic form from cancelling much): γ is float32-accurate, on real descriptors to
~1e-4 relative where γ > 1e-3, and Ψ then agrees with an all-float64 computation to ~1e-5 of its
largest entry — far below what the classifier can see. Everything downstream of γ — the
projection and centring, the statistics Γᵀ X and Γᵀ (X∘X), Ψ, and the relevance products — is
float64, because Ψ^σ = (S2 − 2μ S1 + μ² S0)/σ² − S0 cancels heavily. So, for the γ the encoder
uses (`FisherEncoder.soft_assignments`), Ψ_d = Σ_l z_ld and Σ_l R(2)_l = Σ_d Ψ_d a_d hold to
float64 round-off, which is what the ε-rule's conservation needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from actionlrp._scratch import _Workspace, _workspace
from actionlrp.descriptors import LocalDescriptors
from actionlrp.errors import EmptyClipError

if TYPE_CHECKING:
    from actionlrp.relevance import Forward
    from actionlrp.rules import Rule

#: Descriptors per block of the matrix products. Memory stays at a few MB whatever the clip's
#: length, and a block's γ (2048 × 256 float64: 4 MB) stays in cache: 2048 encoded ~20 % faster
#: than 4096–16384 in benchmarks/bench_fisher.py. Blocks' statistics are summed in float64.
CHUNK_ROWS = 2048
#: Most numbers per feature type that ``encode(..., keep_assignments=True)`` keeps (float64: 8 B);
#: a longer clip's blocks are computed again when the relevance step needs them.
KEPT_ENTRIES = 1 << 23


@dataclass(frozen=True)
class FisherVector:
    """The Fisher vector of one clip.

    Attributes
    ----------
    psi : ndarray, shape (D,), float64
        Unnormalised Ψ (design §3), the concatenation of the feature types' blocks.
    phi : ndarray, shape (D,), float64
        Normalised Φ = sign(Ψ)|Ψ|^½ / ‖sign(Ψ)|Ψ|^½‖₂ (all zeros if Ψ is all zeros).
    n_descriptors : int
        N, the number of local descriptors encoded.
    assignments : SoftAssignments or None
        The clip's soft assignments and centred descriptors, kept for the relevance step
        (``encode(..., keep_assignments=True)``); None where they were not kept.
    """

    psi: np.ndarray
    phi: np.ndarray
    n_descriptors: int
    assignments: SoftAssignments | None = None


@dataclass(frozen=True)
class SoftAssignments:
    """The forward state of the Fisher layer for one clip, for its relevance step.

    Attributes
    ----------
    descriptors : LocalDescriptors
        The clip they belong to.
    blocks : dict of str to list of (ndarray, ndarray)
        Per feature type, per block of at most `CHUNK_ROWS` descriptors: γ (n, K) and
        [x′, x′∘x′] (n, 2d), float64, x′ the descriptor after PCA minus the mixture's mean.
    """

    descriptors: LocalDescriptors
    blocks: dict[str, list[tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class _Block:
    """Derived float32 / float64 matrices of one feature type, built once from the state."""

    projection: np.ndarray | None  # (d_in, d) float64: PCA components transposed, or None
    offset: np.ndarray  # (d,) float64: subtracted after projection (PCA mean and centre)
    # (2d + 1, K) float32: rows μ'/σ², −½/σ², and log π − Σ log σ − ½ Σ μ'²/σ²
    loglik_weights: np.ndarray
    means: np.ndarray  # (K, d) float64: μ' = μ − centre
    sigmas: np.ndarray  # (K, d) float64
    sqrt_weights: np.ndarray  # (K,) float64: √π


def power_l2_normalise(psi: np.ndarray) -> np.ndarray:
    """Φ = sign(Ψ)|Ψ|^½ / ‖sign(Ψ)|Ψ|^½‖₂ (design §3); all zeros when Ψ is all zeros.

    Parameters
    ----------
    psi : ndarray, shape (..., D)

    Returns
    -------
    ndarray, shape (..., D), float64
    """
    root = np.sign(psi) * np.sqrt(np.abs(psi, dtype=np.float64))
    norm = np.linalg.norm(root, axis=-1, keepdims=True)
    return np.divide(root, norm, out=np.zeros_like(root), where=norm > 0)


class FisherEncoder(BaseEstimator):
    """Improved Fisher vector encoder: per feature type, optional PCA and a diagonal GMM.

    Parameters
    ----------
    n_components : int, default 256
        K, Gaussian components per feature type.
    pca_dims : None, int or dict of str to int or None, default None
        Dimensions kept by PCA (no whitening): None keeps the descriptors as they are, an int
        applies to every feature type, a dict gives it per type (missing types: no PCA).
    max_samples : int, default 100_000
        Descriptors sampled uniformly over all training clips to fit PCA and GMM.
    feature_types : tuple of str or None, default None
        Feature types encoded, in the order of their blocks in Ψ. None: every type the first
        training clip's descriptors have, in the order hof, mbhx, mbhy, hog.
    reg_covar : float, default 1e-4
        Added to the GMM's variances, in squared descriptor units.
    max_iter : int, default 100
        Most EM iterations of the GMM on the whole sample (`actionlrp.gmm.DiagonalGMM`).
    tol : float, default 3e-2
        EM stops when the mean log-likelihood per descriptor gains less than this.
    pyramid : None or sequence of (int, int, int), default None
        Space-time grids ``(nx, ny, nt)`` (`actionlrp.pyramid`): each cell of each grid is a
        channel of Ψ, encoded from the cubes whose centre lies in it (Kantorov & Laptev:
        `pyramid.KL_GRIDS`, 24 channels). None: one channel, the whole clip.
    random_state : int, default 0
        Seed of the sampling, PCA and GMM: the same seed and data give the same encoder.

    Attributes
    ----------
    feature_types_ : tuple of str
        The feature types encoded (``feature_types``, or those the descriptors had).
    input_dims_ : dict of str to int
        Descriptor dimensions per feature type (108, 96, 96, 96).
    dims_ : dict of str to int
        d per feature type after PCA.
    pca_mean_, pca_components_ : dict of str to ndarray
        For the types with PCA only: mean (d_in,) and components (d, d_in), float64.
    weights_ : dict of str to ndarray, shape (K,)
        Mixture weights π_k, float64.
    means_ : dict of str to ndarray, shape (K, d)
        Component means μ_k, float64, in the PCA space.
    sigmas_ : dict of str to ndarray, shape (K, d)
        Component standard deviations σ_k, float64.
    blocks_ : dict of str to slice
        Where each feature type's block lies in Ψ: C channels one after the other (C = 1 without
        a pyramid), each 2·K·d long: its first K·d entries Ψ^μ, the next K·d Ψ^σ, both k-major
        (index ``k·d + i``).
    n_channels_ : int
        C, the pyramid's channels (1 without a pyramid).
    fv_dim_ : int
        D, the length of Ψ: Σ_f C·2·K·d_f.
    n_training_samples_ : int
        Descriptors actually sampled to fit (set by `fit` only; not part of the state).
    converged_ : dict of str to bool
        Whether each type's EM met its tolerance before ``max_iter`` (set by `fit` only). The
        Fisher vector needs the mixture only roughly in place, so stopping at ``max_iter`` is
        harmless; `unconverged_note` says so in one line.
    """

    def __init__(
        self,
        n_components: int = 256,
        pca_dims: int | Mapping[str, int | None] | None = None,
        max_samples: int = 100_000,
        feature_types: Sequence[str] | None = None,
        reg_covar: float = 1e-4,
        max_iter: int = 100,
        tol: float = 3e-2,
        pyramid: Sequence[Sequence[int]] | None = None,
        random_state: int = 0,
    ):
        self.n_components = n_components
        self.pca_dims = pca_dims
        self.max_samples = max_samples
        self.feature_types = feature_types
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.pyramid = pyramid
        self.random_state = random_state

    # ----------------------------------------------------------------------------------------
    # Fitting and state

    def fit(self, descriptors: Iterable[LocalDescriptors]) -> FisherEncoder:
        """Fit PCA (optional) and a diagonal GMM per feature type on sampled descriptors.

        Parameters
        ----------
        descriptors : sequence (or any iterable) of LocalDescriptors
            The training clips; read once, in order. At most ``max_samples`` descriptors (the
            same cubes for every feature type) are kept, a uniform sample over all clips.

        Returns
        -------
        self
        """
        from actionlrp import fisher_fit

        return fisher_fit.fit(self, descriptors)

    def get_state(self) -> dict[str, np.ndarray]:
        """The learned arrays under flat names, for an npz file (no pickle).

        Returns
        -------
        dict of str to ndarray
            ``"<type>/weights"`` (K,), ``"<type>/means"`` (K, d), ``"<type>/sigmas"`` (K, d)
            and, for types with PCA, ``"<type>/pca_mean"`` (d_in,) and
            ``"<type>/pca_components"`` (d, d_in); float64. With `get_params` this is
            everything `from_state` needs.
        """
        check_is_fitted(self, "weights_")
        state = {}
        for f in self.feature_types_:
            state[f"{f}/weights"] = self.weights_[f]
            state[f"{f}/means"] = self.means_[f]
            state[f"{f}/sigmas"] = self.sigmas_[f]
            if f in self.pca_mean_:
                state[f"{f}/pca_mean"] = self.pca_mean_[f]
                state[f"{f}/pca_components"] = self.pca_components_[f]
        return state

    @classmethod
    def from_state(
        cls, params: Mapping[str, Any], state: Mapping[str, np.ndarray]
    ) -> FisherEncoder:
        """Rebuild a fitted encoder from `get_params` and `get_state` (e.g. read from JSON + npz).

        ``input_dims_`` is taken from the PCA components, or equals d without PCA; a list for
        ``feature_types`` (JSON has no tuples) is accepted.

        Raises
        ------
        ValueError
            A state array is missing, or shapes disagree with each other or with ``params``
            (``n_components``, ``pca_dims``).
        """
        from actionlrp import fisher_fit

        return fisher_fit.from_state(cls, params, state)

    # ----------------------------------------------------------------------------------------
    # Forward step: LocalDescriptors → Ψ, Φ

    def _chunks(
        self,
        desc: LocalDescriptors,
        f: str,
        work: _Workspace | None = None,
        assignments: SoftAssignments | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The blocks of γ and x′ of ``desc`` (`_compute_chunks`): the kept ones if
        ``assignments`` holds them, else computed now, in ``work``'s arrays if given (each block
        then overwrites the last: use it before taking the next)."""
        if assignments is not None and assignments.descriptors is desc and f in assignments.blocks:
            yield from assignments.blocks[f]
        else:
            yield from self._compute_chunks(desc, f, work, keep=False)

    def _compute_chunks(
        self,
        desc: LocalDescriptors,
        f: str,
        work: _Workspace | None = None,
        keep: bool = True,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per block of descriptors: γ (n, K), float64, and [x', x'∘x'] (n, 2d), float64.

        x' is the descriptor after PCA minus the mixture's mean, computed in float64 from the
        float32 descriptors; the centring is exact in the maths and keeps the float32 quadratic
        form of the log-likelihoods accurate. exp(log-likelihood − row max) is float32, its
        normalisation to γ float64. Everything is computed in ``work``'s arrays (fresh memory
        costs a page fault per 4 kB): each block in arrays of its own if ``keep``, else in the
        same arrays as the last block. Without ``work``, in fresh arrays.
        """
        if work is None:  # a workspace of this call's own: every block in fresh arrays
            work, keep = _Workspace(), True
        block = self._derived[f]
        x_all = desc.features[f]
        d, k = self.dims_[f], self.n_components
        for start in range(0, x_all.shape[0], CHUNK_ROWS):
            rows = x_all[start : start + CHUNK_ROWS]
            n = rows.shape[0]
            x = work.array(f"{f} x", rows.shape, np.float64)
            x[...] = rows
            name = f"{f} {start}" if keep else f
            stacked = work.array(f"{name} x′", (n, 2 * d), np.float64)
            gamma = work.array(f"{name} γ", (n, k), np.float64)
            inputs = work.array(f"{f} inputs", (n, 2 * d + 1), np.float32)
            loglik = work.array(f"{f} loglik", (n, k), np.float32)
            centred = stacked[:, :d]
            if block.projection is not None:
                projected = work.array(f"{f} xW", (n, d), np.float64)
                np.matmul(x, block.projection, out=projected)
                np.subtract(projected, block.offset, out=centred)
            else:
                np.subtract(x, block.offset, out=centred)
            np.multiply(centred, centred, out=stacked[:, d:])
            inputs[:, : 2 * d] = stacked
            inputs[:, 2 * d] = 1.0  # picks up the constant row of the weights
            # design §3: soft assignments γ_lk by log-sum-exp over the GEMM's log-likelihoods
            np.matmul(inputs, block.loglik_weights, out=loglik)
            loglik -= loglik.max(axis=1, keepdims=True)
            np.exp(loglik, out=loglik)
            gamma[...] = loglik
            gamma /= gamma.sum(axis=1, keepdims=True)
            yield gamma, stacked

    def atoms(self, desc: LocalDescriptors) -> np.ndarray:
        """The pyramid atom of each descriptor (`Pyramid.atoms`); all 0 without a pyramid.

        Returns
        -------
        ndarray of intp, shape (N,)
        """
        check_is_fitted(self, "weights_")
        if self._pyramid is None:
            return np.zeros(len(desc), np.intp)
        return self._pyramid.atoms(desc.boxes)

    def channel_counts(self, atoms: np.ndarray) -> np.ndarray:
        """N_c, the descriptors in each channel, from the descriptors' `atoms`; shape (C,)."""
        if self._membership is None:
            return np.array([float(len(atoms))])
        return np.bincount(atoms, minlength=self._n_atoms) @ self._membership

    def channel_sums(self, per_atom: np.ndarray) -> np.ndarray:
        """Statistics of each channel from those of each atom: (n_atoms, ...) → (C, ...)."""
        if self._membership is None:
            return per_atom
        return np.tensordot(self._membership.T, per_atom, axes=1)

    def channel_totals(self, values: np.ndarray) -> dict[str, float]:
        """Σ of ``values`` (D,) over each pyramid channel's dimensions, all feature types
        together, by channel name (`Pyramid.channel_names`); empty without a pyramid."""
        check_is_fitted(self, "weights_")
        if self._pyramid is None:
            return {}
        totals = sum(
            np.asarray(values[block], np.float64).reshape(self.n_channels_, -1).sum(axis=1)
            for block in self.blocks_.values()
        )
        return dict(zip(self._pyramid.channel_names(), map(float, totals), strict=True))

    def _psi_block(
        self,
        desc: LocalDescriptors,
        f: str,
        atoms: np.ndarray,
        assignments: SoftAssignments | None,
    ) -> np.ndarray:
        """Ψ of one feature type, shape (C·2·K·d,), float64."""
        d, k = self.dims_[f], self.n_components
        s0 = np.zeros((self._n_atoms, k))
        s12 = np.zeros((self._n_atoms, k, 2 * d))
        start = 0
        with _workspace() as work:
            for gamma, stacked in self._chunks(desc, f, work, assignments):
                for atom, rows in atom_groups(atoms[start : start + len(gamma)], self._n_atoms):
                    g = gamma[rows]
                    s0[atom] += g.sum(axis=0)
                    # design §3: Σ_l γ_lk x_l = Γᵀ X and Σ_l γ_lk x_l² = Γᵀ (X∘X), in float64
                    s12[atom] += g.T @ stacked[rows]
                start += len(gamma)
        s0, s12 = self.channel_sums(s0), self.channel_sums(s12)
        counts = self.channel_counts(atoms)
        return np.concatenate(
            [
                self._psi_of_sums(f, s0[c], s12[c], counts[c])
                if counts[c] > 0
                else np.zeros(2 * k * d)
                for c in range(self.n_channels_)
            ]
        )

    def _psi_of_sums(self, f: str, s0: np.ndarray, s12: np.ndarray, n: float) -> np.ndarray:
        """Ψ of one feature type from S0 = Σ_l γ_l (K,) and [S1, S2] (K, 2d) (design §3)."""
        block = self._derived[f]
        d = self.dims_[f]
        s1, s2 = s12[:, :d], s12[:, d:]
        mu, sigma = block.means, block.sigmas
        s0c = s0[:, None]
        # Σ_l γ u = (S1 − μ S0)/σ;  Σ_l γ (u² − 1) = (S2 − 2μ S1 + μ² S0)/σ² − S0
        psi_mean = (s1 - mu * s0c) / sigma / (n * block.sqrt_weights[:, None])
        psi_var = ((s2 - 2.0 * mu * s1 + mu**2 * s0c) / sigma**2 - s0c) / (
            n * math.sqrt(2.0) * block.sqrt_weights[:, None]
        )
        return np.concatenate([psi_mean.ravel(), psi_var.ravel()])

    def encode(
        self,
        desc: LocalDescriptors,
        keep_assignments: bool = False,
        work: _Workspace | None = None,
    ) -> FisherVector:
        """Ψ and Φ of one clip (design §3).

        Parameters
        ----------
        desc : LocalDescriptors
            N ≥ 1 descriptors with every type of ``feature_types_``.
        keep_assignments : bool
            Also return the soft assignments and centred descriptors, for the relevance step
            (where they take at most `KEPT_ENTRIES` numbers per feature type).
        work : _Workspace, optional
            Scratch arrays to keep them in (they stay valid while ``work`` is held); default
            fresh arrays.

        Returns
        -------
        FisherVector
            ``psi`` and ``phi`` of shape (``fv_dim_``,), float64; ``assignments`` if kept.

        Raises
        ------
        EmptyClipError
            N = 0: the clip is too short or too small for one cube.
        ValueError
            A feature type is missing or has the wrong dimension, or the descriptors are not
            finite.
        """
        check_is_fitted(self, "weights_")
        n = _n_descriptors(desc, self.feature_types_, self.input_dims_)
        assignments = None
        if keep_assignments and n * (self.n_components + 2 * max(self.dims_.values())) <= (
            KEPT_ENTRIES
        ):
            work = _Workspace() if work is None else work
            kept = {f: list(self._compute_chunks(desc, f, work)) for f in self.feature_types_}
            assignments = SoftAssignments(desc, kept)
        atoms = self.atoms(desc)
        psi = np.concatenate(
            [self._psi_block(desc, f, atoms, assignments) for f in self.feature_types_]
        )
        if not np.all(np.isfinite(psi)):
            raise ValueError("desc: descriptors are not finite (NaN or infinity in features)")
        return FisherVector(psi, self.normalise(psi), n, assignments)

    def normalise(self, psi: np.ndarray) -> np.ndarray:
        """Φ of Ψ (design §3): power and ℓ2 normalisation, over all of Ψ (shape (..., D))."""
        return power_l2_normalise(psi)

    def transform(self, descriptors: Iterable[LocalDescriptors]) -> np.ndarray:
        """Φ of each clip, one row per clip.

        Parameters
        ----------
        descriptors : sequence of LocalDescriptors

        Returns
        -------
        ndarray, shape (n_clips, fv_dim_), float32

        Raises
        ------
        EmptyClipError
            A clip has N = 0 (the message gives its index).
        """
        check_is_fitted(self, "weights_")
        rows = []
        for i, desc in enumerate(descriptors):
            try:
                rows.append(self.encode(desc).phi.astype(np.float32))
            except EmptyClipError as exc:
                raise EmptyClipError(f"descriptors[{i}]: {exc}") from None
        if not rows:
            return np.zeros((0, self.fv_dim_), np.float32)
        return np.stack(rows)

    def relevance(self, forward: Forward, r3: np.ndarray, rule: Rule) -> dict[str, np.ndarray]:
        """The relevance step: R(3) per dimension of Ψ → R(2) per descriptor or histogram bin.

        See `actionlrp.fisher_lrp.relevance` (design §5.3, §5.4).
        """
        from actionlrp import fisher_lrp

        return fisher_lrp.relevance(self, forward, r3, rule)

    def soft_assignments(self, desc: LocalDescriptors, feature: str) -> np.ndarray:
        """γ_lk, the posterior of component k for descriptor l (after PCA), as `encode` uses it.

        Returns
        -------
        ndarray, shape (N, K), float64
            Rows sum to 1; exactly the γ `encode` and the relevance step use.
        """
        check_is_fitted(self, "weights_")
        self._check_feature(feature)
        _n_descriptors(desc, self.feature_types_, self.input_dims_)
        return np.concatenate([gamma for gamma, _ in self._chunks(desc, feature)])

    def project(self, desc: LocalDescriptors, feature: str) -> np.ndarray:
        """The descriptors of one type after PCA (identity without PCA), float64, shape (N, d)."""
        check_is_fitted(self, "weights_")
        self._check_feature(feature)
        x = np.asarray(desc.features[feature], np.float64)
        if feature in self.pca_components_:
            return (x - self.pca_mean_[feature]) @ self.pca_components_[feature].T
        return x

    def _check_feature(self, feature: str) -> None:
        if feature not in self.blocks_:
            raise ValueError(f"feature must be one of {self.feature_types_}, got {feature!r}")


def atom_groups(atoms: np.ndarray, n_atoms: int) -> Iterator[tuple[int, np.ndarray | slice]]:
    """``(atom, rows)`` for each atom among ``atoms`` (a block's descriptors), ``rows`` indexing
    them; one ``(0, slice(None))`` when there is a single atom, so that nothing is copied."""
    if n_atoms == 1:
        yield 0, slice(None)
        return
    order = np.argsort(atoms, kind="stable")
    sorted_atoms = atoms[order]
    bounds = np.flatnonzero(np.diff(sorted_atoms)) + 1
    for rows in np.split(order, bounds):
        if rows.size:
            yield int(atoms[rows[0]]), rows


def _n_descriptors(
    desc: LocalDescriptors,
    types: tuple[str, ...],
    input_dims: Mapping[str, int] | None,
    allow_empty: bool = False,
) -> int:
    """N, after checking every feature type is present, 2-D, of one length and dimension."""
    if not isinstance(desc, LocalDescriptors):
        raise TypeError(f"desc must be LocalDescriptors, got {type(desc).__name__}")
    n = None
    for f in types:
        if f not in desc.features:
            raise ValueError(
                f"desc.features has no {f!r} (has {sorted(desc.features)}); "
                "compute it with actionlrp.descriptors.describe"
            )
        x = desc.features[f]
        if x.ndim != 2:
            raise ValueError(f"desc.features[{f!r}] must be 2-D (N, d), got shape {x.shape}")
        if input_dims is not None and x.shape[1] != input_dims[f]:
            raise ValueError(
                f"desc.features[{f!r}] has {x.shape[1]} dims, expected {input_dims[f]} "
                "(as in the encoder's training descriptors)"
            )
        if n is not None and x.shape[0] != n:
            raise ValueError(f"desc.features: feature types have different N ({n}, {x.shape[0]})")
        n = x.shape[0]
    if n == 0 and not allow_empty:
        raise EmptyClipError(
            "clip has no local descriptors (N = 0): too short or too small for one cube "
            "(15 frames, 32×32 px by default), so it has no Fisher vector"
        )
    return int(n)


def unconverged_note(types: Iterable[str], max_iter: int) -> str | None:
    """One plain line on GMMs whose EM stopped at ``max_iter``, or None when there are none."""
    names = sorted(set(types))
    if not names:
        return None
    return (
        f"note: the GMM of {', '.join(names)} stopped at max_iter = {max_iter} EM iterations "
        "before its log-likelihood settled; Fisher vectors need the mixture only roughly in "
        "place, so this is harmless"
    )
