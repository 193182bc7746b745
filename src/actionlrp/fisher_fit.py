"""Fitting the Fisher layer (design §3): the state of an `actionlrp.fisher.FisherEncoder`,
learned from training descriptors or rebuilt from saved arrays, and the encoding matrices
derived from it.

`fit` draws a uniform sample of at most ``max_samples`` descriptors over all training clips in
one pass (every descriptor gets a random key and the smallest keys are kept, so memory stays
near twice the sample), then fits per feature type an optional PCA (no whitening) and a
diagonal GMM (`actionlrp.gmm.DiagonalGMM`). `from_state` rebuilds the same state from
`FisherEncoder.get_params` and `FisherEncoder.get_state`, checking every array's shape. Both end
by deriving what the forward step (`actionlrp.fisher`) multiplies by: the Fisher vector's
layout (``dims_``, ``blocks_``, ``fv_dim_``, the pyramid's channels) and, per type, the
projection and the log-likelihood weights of one GEMM (`actionlrp.fisher._Block`).
`FisherEncoder.fit` and `FisherEncoder.from_state` call these functions.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from actionlrp.descriptors import ALL_FEATURE_TYPES, LocalDescriptors
from actionlrp.fisher import FisherEncoder, _Block, _n_descriptors
from actionlrp.gmm import DiagonalGMM
from actionlrp.pyramid import Pyramid


def fit(encoder: FisherEncoder, descriptors: Iterable[LocalDescriptors]) -> FisherEncoder:
    """`FisherEncoder.fit`: PCA (optional) and a diagonal GMM per feature type, fitted on a
    uniform sample of the descriptors; ``encoder`` fitted in place and returned."""
    descriptors = iter(descriptors)
    first = next(descriptors, None)
    if first is None:
        raise ValueError("descriptors: no clips given to fit the Fisher encoder")
    types = _check_params(encoder, first.features)
    descriptors = itertools.chain([first], descriptors)
    samples = _sample(encoder, descriptors, types)
    encoder.input_dims_ = {f: samples[f].shape[1] for f in types}
    encoder.pca_mean_, encoder.pca_components_ = {}, {}
    encoder.weights_, encoder.means_, encoder.sigmas_ = {}, {}, {}
    encoder.converged_ = {}
    for f in types:
        x = samples[f].astype(np.float64)
        dims = _pca_dims_of(encoder, f)
        if dims is not None:
            if not isinstance(dims, int | np.integer) or not 1 <= dims <= min(x.shape):
                raise ValueError(
                    f"pca_dims for {f!r} must be between 1 and min(n_samples, "
                    f"{x.shape[1]}) = {min(x.shape)}, got {dims}"
                )
            pca = PCA(n_components=dims, whiten=False, random_state=encoder.random_state)
            x = pca.fit_transform(x)
            encoder.pca_mean_[f] = pca.mean_.astype(np.float64)
            encoder.pca_components_[f] = pca.components_.astype(np.float64)
        gmm = DiagonalGMM(
            n_components=encoder.n_components,
            reg_covar=encoder.reg_covar,
            max_iter=encoder.max_iter,
            tol=encoder.tol,
            random_state=encoder.random_state,
        ).fit(x)
        encoder.converged_[f] = bool(gmm.converged_)
        weights = gmm.weights_.astype(np.float64)
        encoder.weights_[f] = weights / weights.sum()
        encoder.means_[f] = gmm.means_.astype(np.float64)
        encoder.sigmas_[f] = np.sqrt(gmm.covariances_.astype(np.float64))
    _finish_state(encoder, types)
    return encoder


def from_state(
    cls: type[FisherEncoder], params: Mapping[str, Any], state: Mapping[str, np.ndarray]
) -> FisherEncoder:
    """`FisherEncoder.from_state`: a fitted ``cls`` from `get_params` and `get_state`."""
    params = dict(params)
    if isinstance(params.get("feature_types"), list):
        params["feature_types"] = tuple(params["feature_types"])
    if params.get("pyramid") is not None:
        params["pyramid"] = tuple(tuple(g) for g in params["pyramid"])
    encoder = cls(**params)
    types = _check_params(encoder, [f for f in ALL_FEATURE_TYPES if f"{f}/weights" in state])
    encoder.pca_mean_, encoder.pca_components_ = {}, {}
    encoder.weights_, encoder.means_, encoder.sigmas_ = {}, {}, {}
    encoder.input_dims_ = {}
    for f in types:
        try:
            weights = np.asarray(state[f"{f}/weights"], np.float64)
            means = np.asarray(state[f"{f}/means"], np.float64)
            sigmas = np.asarray(state[f"{f}/sigmas"], np.float64)
        except KeyError as missing:
            raise ValueError(f"state: missing array {missing.args[0]!r}") from None
        k = encoder.n_components
        if weights.shape != (k,) or means.ndim != 2 or means.shape[0] != k:
            raise ValueError(
                f"state: {f!r} weights / means have shapes {weights.shape} / {means.shape}, "
                f"expected ({k},) / ({k}, d) for n_components={k}"
            )
        if sigmas.shape != means.shape or not np.all(sigmas > 0):
            raise ValueError(
                f"state: {f!r} sigmas must be positive with the means' shape {means.shape}"
            )
        d = means.shape[1]
        pca_dims = _pca_dims_of(encoder, f)
        if pca_dims is not None:
            try:
                components = np.asarray(state[f"{f}/pca_components"], np.float64)
                mean = np.asarray(state[f"{f}/pca_mean"], np.float64)
            except KeyError as missing:
                raise ValueError(
                    f"state: missing array {missing.args[0]!r} (pca_dims={pca_dims} for {f!r})"
                ) from None
            if (
                d != pca_dims
                or components.shape[:1] != (d,)
                or components.ndim != 2
                or mean.shape != (components.shape[1],)
            ):
                raise ValueError(
                    f"state: {f!r} PCA components {components.shape}, mean {mean.shape} and "
                    f"means {means.shape} do not agree with pca_dims={pca_dims}"
                )
            encoder.pca_mean_[f], encoder.pca_components_[f] = mean, components
            encoder.input_dims_[f] = components.shape[1]
        elif f"{f}/pca_components" in state:
            raise ValueError(f"state: {f!r} has PCA arrays but pca_dims gives it no PCA")
        else:
            encoder.input_dims_[f] = d
        encoder.weights_[f], encoder.means_[f], encoder.sigmas_[f] = weights, means, sigmas
    _finish_state(encoder, types)
    return encoder


def _check_params(encoder: FisherEncoder, present: Collection[str]) -> tuple[str, ...]:
    """Check ``encoder``'s parameters and set ``feature_types_``: ``feature_types``, or the
    types ``present`` has (those of the first training clip, or of a saved state)."""
    if encoder.feature_types is not None:
        types = tuple(encoder.feature_types)
    else:
        types = tuple(f for f in ALL_FEATURE_TYPES if f in present)
    encoder.feature_types_ = types
    if not types or len(set(types)) != len(types):
        raise ValueError(f"feature_types must be distinct and non-empty, got {types!r}")
    if not isinstance(encoder.n_components, int | np.integer) or encoder.n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {encoder.n_components!r}")
    if not isinstance(encoder.max_samples, int | np.integer) or encoder.max_samples < 1:
        raise ValueError(f"max_samples must be a positive int, got {encoder.max_samples!r}")
    if isinstance(encoder.pca_dims, Mapping):
        unknown = set(encoder.pca_dims) - set(types)
        if unknown:
            raise ValueError(
                f"pca_dims names feature types not in feature_types: {sorted(unknown)}"
            )
    elif encoder.pca_dims is not None and not isinstance(encoder.pca_dims, int | np.integer):
        raise ValueError(
            f"pca_dims must be None, an int or a dict per feature type, got {encoder.pca_dims!r}"
        )
    if not encoder.reg_covar >= 0:
        raise ValueError(f"reg_covar must be ≥ 0, got {encoder.reg_covar!r}")
    Pyramid.of(encoder.pyramid)
    return types


def _pca_dims_of(encoder: FisherEncoder, feature: str) -> int | None:
    if isinstance(encoder.pca_dims, Mapping):
        return encoder.pca_dims.get(feature)
    return encoder.pca_dims


def _sample(
    encoder: FisherEncoder, descriptors: Iterable[LocalDescriptors], types: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Uniform sample without replacement of at most ``max_samples`` cubes, in one pass.

    Every descriptor gets a random key; the sample is the ``max_samples`` smallest keys.
    Rows whose key exceeds the current ``max_samples``-th smallest are never kept, so memory
    stays near 2 × ``max_samples`` rows.
    """
    rng = np.random.default_rng(encoder.random_state)
    limit = int(encoder.max_samples)
    keys: list[np.ndarray] = []
    rows: dict[str, list[np.ndarray]] = {f: [] for f in types}
    threshold, buffered, n_clips, n_total = np.inf, 0, 0, 0
    dims: dict[str, int] | None = None
    for desc in descriptors:
        n = _n_descriptors(desc, types, dims, allow_empty=True)
        if dims is None and n > 0:
            dims = {f: desc.features[f].shape[1] for f in types}
        n_clips += 1
        n_total += n
        key = rng.random(n)
        chosen = np.flatnonzero(key < threshold)
        if chosen.size == 0:
            continue
        keys.append(key[chosen])
        for f in types:
            rows[f].append(np.asarray(desc.features[f], np.float32)[chosen])
        buffered += chosen.size
        if buffered >= 2 * limit:
            keys, rows, threshold = _smallest_keys(keys, rows, limit)
            buffered = limit
    if n_clips == 0:
        raise ValueError("descriptors: no clips given to fit the Fisher encoder")
    if n_total < encoder.n_components:
        raise ValueError(
            f"descriptors: {n_total} descriptors in {n_clips} clips, fewer than "
            f"n_components={encoder.n_components}; give more clips or lower n_components"
        )
    keys, rows, _ = _smallest_keys(keys, rows, limit)
    encoder.n_training_samples_ = int(keys[0].size)
    return {f: rows[f][0] for f in types}


def _finish_state(encoder: FisherEncoder, types: tuple[str, ...]) -> None:
    """Derive ``dims_``, ``blocks_``, ``fv_dim_`` and the encoding matrices from the state."""
    encoder.dims_ = {f: encoder.means_[f].shape[1] for f in types}
    encoder._pyramid = Pyramid.of(encoder.pyramid)
    encoder.n_channels_ = 1 if encoder._pyramid is None else encoder._pyramid.n_channels
    # (n_atoms, C) float64: which atoms make up each channel; None for the whole clip
    encoder._membership = (
        None if encoder._pyramid is None else encoder._pyramid.membership().astype(np.float64)
    )
    encoder._n_atoms = 1 if encoder._membership is None else len(encoder._membership)
    encoder.blocks_, start = {}, 0
    for f in types:
        size = encoder.n_channels_ * 2 * encoder.n_components * encoder.dims_[f]
        encoder.blocks_[f] = slice(start, start + size)
        start += size
    encoder.fv_dim_ = start
    encoder._derived = {f: _derive(encoder, f) for f in types}


def _derive(encoder: FisherEncoder, f: str) -> _Block:
    weights, sigmas = encoder.weights_[f], encoder.sigmas_[f]
    centre = weights @ encoder.means_[f] / weights.sum()  # the mixture's mean
    means = encoder.means_[f] - centre
    inv_var = 1.0 / sigmas**2
    if f in encoder.pca_components_:
        components = encoder.pca_components_[f]
        projection = np.ascontiguousarray(components.T)
        offset = encoder.pca_mean_[f] @ components.T + centre
    else:
        projection, offset = None, centre
    # design §3: log N(x|μ,σ) + log π = x·(μ/σ²) − ½ (x∘x)·(1/σ²) + const, as one GEMM
    constant = np.log(weights) - np.log(sigmas).sum(axis=1) - 0.5 * (means**2 * inv_var).sum(axis=1)
    loglik_weights = np.concatenate([means * inv_var, -0.5 * inv_var, constant[:, None]], 1).T
    return _Block(
        projection=projection,
        offset=offset,
        loglik_weights=np.ascontiguousarray(loglik_weights, np.float32),
        means=means,
        sigmas=sigmas,
        sqrt_weights=np.sqrt(weights),
    )


def _smallest_keys(
    keys: list[np.ndarray], rows: dict[str, list[np.ndarray]], size: int
) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]], float]:
    """Keep the ``size`` rows with the smallest keys, sorted by key; and the largest kept key."""
    all_keys = np.concatenate(keys)
    keep = np.argsort(all_keys, kind="stable")[:size]
    kept = {f: [np.concatenate(parts)[keep]] for f, parts in rows.items()}
    return [all_keys[keep]], kept, float(all_keys[keep[-1]])
