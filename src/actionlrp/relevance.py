"""Layer-wise Relevance Propagation of an SVM score back to where and when it came from (DESIGN §5).

    f_c(x) ─▶ R(3) per FV dimension ─▶ R(2) per descriptor (ε-rule, per feature type)
           ─▶ R(1) per voxel of the motion field ─▶ r_t per frame

Each layer's relevance step lives beside its forward step: R(3) in `actionlrp.classifier`
terms (``w_c·Φ + b_c / D``), R(2) in `actionlrp.fisher` (`FisherEncoder.relevance_epsilon`),
R(1) in `actionlrp.descriptors` (`spread_relevance`). This module chains them for one clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actionlrp.codec import MotionField, _workspace
from actionlrp.descriptors import (
    LocalDescriptors,
    spread_bins,
    spread_relevance,
    still_reference,
)
from actionlrp.fisher import row_sums

#: Default ε, relative to the clip's mean |Ψ_d| (see `FisherEncoder.relevance_epsilon`). On the
#: built-in data (`benchmarks/bench_faithfulness.py`) 1 localises and orders regions better than
#: 0.1, and absorbs far less of the score than 10.
DEFAULT_EPSILON = 1.0


@dataclass(frozen=True)
class Explanation:
    """Relevance of one clip for one class, at every layer.

    Attributes
    ----------
    class_name : str
    class_index : int
    score : float
        f_c(x), the SVM score that is explained.
    relevance_fv : ndarray, shape (D,)
        R(3): relevance of each Fisher-vector dimension; sums to ``score``.
    relevance_descriptors : dict[str, ndarray]
        R(2) per feature type, each (N,): relevance of each descriptor's HOF / MBHx / MBHy part.
    relevance_voxels : ndarray, shape (T, gh, gw)
        R(1): relevance of each voxel of the motion field; sums to Σ R(2).
    relevance_voxels_by_feature : dict[str, ndarray]
        R(1) of each feature type, each (T, gh, gw).
    frame_relevance : ndarray, shape (T,)
        r_t = Σ over the voxels of frame t.
    feature_relevance : dict[str, float]
        Σ_l R(2)_(l,f) of each feature type.
    absorbed : float
        Σ R(3) − Σ R(2): what the ε stabiliser kept.
    epsilon : float
        ε relative to the clip's mean |Ψ_d|.
    fine : bool
        True where relevance went through the histogram bins to the vectors that filled them.
    reference : str or None
        ``"still"`` where each descriptor's share was measured from a motionless cube.
    """

    class_name: str
    class_index: int
    score: float
    relevance_fv: np.ndarray
    relevance_descriptors: dict[str, np.ndarray]
    relevance_voxels: np.ndarray
    relevance_voxels_by_feature: dict[str, np.ndarray]
    frame_relevance: np.ndarray
    feature_relevance: dict[str, float]
    absorbed: float
    epsilon: float
    fine: bool
    reference: str | None = None

    @property
    def relevance_total(self) -> float:
        """Σ R(1) (= Σ R(2))."""
        return float(self.relevance_voxels.sum())

    def top_frames(self, k: int = 5) -> np.ndarray:
        """Indices of the k most relevant frames, most relevant first."""
        k = min(k, len(self.frame_relevance))
        order = np.argsort(-self.frame_relevance, kind="stable")
        return order[:k]


def relevance_fv(
    phi: np.ndarray, coef: np.ndarray, intercept: float, live: np.ndarray | None = None
) -> np.ndarray:
    """R(3)_d = w_cd·Φ_d + b_c / D′, so Σ_d R(3)_d = f_c(x) exactly (DESIGN §5).

    The bias is shared over the D′ dimensions in ``live`` (default: all D, as in DESIGN §5).
    `explain` passes the dimensions the clip populates: a dimension of a Gaussian that no
    descriptor of the clip reaches (Ψ_d = 0) has no descriptor to hand its share on to.

    Parameters
    ----------
    phi : ndarray, shape (D,)
        Normalised Fisher vector.
    coef : ndarray, shape (D,)
        The class's SVM weights w_c.
    intercept : float
        The class's SVM bias b_c.
    live : ndarray of bool, shape (D,), optional
    """
    phi = np.asarray(phi, np.float64)
    r3 = np.asarray(coef, np.float64) * phi
    if live is None or not live.any():
        return r3 + float(intercept) / phi.size
    r3[live] += float(intercept) / int(live.sum())
    return r3


#: |Ψ_d| at or under this fraction of max |Ψ| counts as unpopulated (exp underflow, round-off).
LIVE_THRESHOLD = 1e-9


def explain(
    model,
    field: MotionField,
    descriptors: LocalDescriptors,
    class_name: str | None = None,
    epsilon: float = DEFAULT_EPSILON,
    fine: bool = False,
    reference: str | None = None,
) -> Explanation:
    """Explain ``model``'s score of one clip for one class (default: the predicted one).

    Parameters
    ----------
    model : ActionModel
        A fitted model (``encoder_``, ``classifier_``).
    field : MotionField
        The clip's motion field (the input layer).
    descriptors : LocalDescriptors
        The clip's descriptors, extracted from ``field`` with the model's parameters.
    class_name : str, optional
    epsilon : float
        ε of the ε-rule, relative to the clip's mean |Ψ_d|.
    fine : bool
        Carry relevance through the histogram layer to the individual vectors: R(2) per
        histogram bin of each descriptor (`FisherEncoder.dimension_relevance`), each bin's share
        handed to the vectors in proportion to their contribution to it
        (`descriptors.spread_bin_relevance`; for MBH through the flow gradient to the vectors it
        differences, `descriptors.gradient_relevance`), instead of spreading each cube's
        relevance evenly over its voxels (the paper).
    reference : {None, "still"}
        None: the paper's ε-rule, each descriptor's share in proportion to its contribution
        z_ld. ``"still"``: in proportion to how far its contribution is from that of a
        motionless cube (`FisherEncoder.dimension_relevance` with `still_reference`), so cubes
        where nothing moves get no relevance; as ε → 0 everything is passed on but the R(3) of
        dimensions that no cube moves from the reference. With ``fine`` the histogram layer is
        taken from the same root (`spread_bin_relevance`): a change of HOF's still bin goes to
        the vectors that moved.
    """
    if reference not in (None, "still"):
        raise ValueError(f"reference must be None or 'still', got {reference!r}")
    with model.encoder_.reusing_assignments(descriptors):
        return _explain(model, field, descriptors, class_name, epsilon, fine, reference)


def _explain(model, field, descriptors, class_name, epsilon, fine, reference) -> Explanation:
    encoder, classifier, params = model.encoder_, model.classifier_, model.params_
    classes = [str(c) for c in classifier.classes_]
    fisher = encoder.encode(descriptors)
    phi, psi = fisher.phi, fisher.psi
    live = np.abs(psi) > LIVE_THRESHOLD * np.abs(psi).max(initial=0.0)
    scores = classifier.decision_function(phi[None, :])[0]
    if class_name is None:
        index = int(np.argmax(scores))
    elif str(class_name) in classes:
        index = classes.index(str(class_name))
    else:
        raise ValueError(f"class {class_name!r} is not one of the model's: {', '.join(classes)}")
    r3 = relevance_fv(phi, classifier.coef_[index], classifier.intercept_[index], live)
    if fine or reference is not None:
        ref, ref_index = still_reference(field, descriptors, params) if reference else (None, None)
        with _workspace() as work:  # R(2) per bin is only passed on: scratch arrays will do
            scratch = {
                f: work.array(f"bins {f}", (len(descriptors), d), np.float64)
                for f, d in encoder.input_dims_.items()
            }
            bins, absorbed = encoder.dimension_relevance(
                descriptors,
                r3,
                epsilon,
                psi=psi,
                live=live,
                reference=ref,
                reference_index=ref_index,
                out=scratch,
            )
            r2 = {f: row_sums(r) for f, r in bins.items()}
            if fine:
                by_feature = spread_bins(field, descriptors, bins, params, reference=reference)
    else:
        r2, absorbed = encoder.relevance_epsilon(descriptors, r3, epsilon, psi=psi, live=live)
    if not fine:
        by_feature = {
            f: spread_relevance(descriptors, r, field.grid_shape, field.cell) for f, r in r2.items()
        }
    parts = iter(by_feature.values())
    r1 = next(parts).copy()
    for part in parts:
        r1 += part
    return Explanation(
        class_name=classes[index],
        class_index=index,
        score=float(scores[index]),
        relevance_fv=r3,
        relevance_descriptors=r2,
        relevance_voxels=r1,
        relevance_voxels_by_feature=by_feature,
        frame_relevance=r1.sum(axis=(1, 2)),
        feature_relevance={f: float(r.sum()) for f, r in r2.items()},
        absorbed=absorbed,
        epsilon=float(epsilon),
        fine=fine,
        reference=reference,
    )
