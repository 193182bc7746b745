"""Layer-wise Relevance Propagation of an SVM score back to where and when it came from (design §5).

    forward:   MotionField ─▶ LocalDescriptors ─▶ Ψ, Φ ─▶ f(x)
    relevance:  R(1) voxels ◀─ R(2) descriptors ◀─ R(3) FV dims ◀─ f_c(x)

The forward pass (`forward`) keeps every layer's output for one clip in a `Forward`. The way back
walks the model's layers in reverse (`ActionModel.layers_`), each handing the relevance of its
output to its input by its own ``relevance(forward, r, rule)``, beside its forward step:

* the SVM layer, `LinearClassifier.relevance` (design §5.2);
* the Fisher layer and its PCA, `FisherEncoder.relevance` (`actionlrp.fisher_lrp`, §5.3–5.4);
* the histogram layer and, for MBH, the gradient layer, `HistogramLayer.relevance`
  (`actionlrp.descriptors_lrp`, §5.5–5.6).

How each layer hands relevance down is a `Rule` (`actionlrp.rules`), one value for the walk.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actionlrp._scratch import _Workspace, _workspace
from actionlrp.classifier import populated
from actionlrp.descriptors import DescriptorParams, LocalDescriptors
from actionlrp.descriptors_lrp import per_descriptor
from actionlrp.errors import UnknownClassError
from actionlrp.fisher import FisherVector
from actionlrp.fisher_lrp import kept_shares
from actionlrp.rules import DEFAULT_RULE, Rule, get_rule
from actionlrp.video import MotionField

if TYPE_CHECKING:
    from actionlrp.model import ActionModel

#: ``versus=OTHER``: contrast a two-class model's class with the other one.
OTHER = "<other>"


@dataclass(frozen=True)
class Forward:
    """Every layer's output for one clip, kept for the way back.

    Attributes
    ----------
    field : MotionField
        The input layer, (T, gh, gw, 2) px per frame.
    params : DescriptorParams
        The descriptor layer's parameters.
    descriptors : LocalDescriptors
        The descriptor layer's output, N cubes.
    fisher : FisherVector
        The Fisher layer's output Ψ, Φ (D,), with its soft assignments where they were kept.
    live : ndarray of bool, shape (D,)
        The dimensions of Ψ the clip populates (`classifier.populated`).
    scores : ndarray, shape (n_classes,)
        The SVM layer's output f(x).
    video : Path or None
        The file the clip came from.
    work : _Workspace or None
        Scratch arrays lent to the forward state (the soft assignments kept for the way back).
    scratch : _Workspace or None
        Scratch arrays lent to the walk: the layers' intermediate relevance lives there (apart
        from ``work``, so that each stays within what a workspace keeps between clips).
    memo : dict
        What more than one step derives from the forward pass, derived once (the still root).
    """

    field: MotionField
    params: DescriptorParams
    descriptors: LocalDescriptors
    fisher: FisherVector
    live: np.ndarray
    scores: np.ndarray
    video: Path | None = None
    work: _Workspace | None = None
    scratch: _Workspace | None = None
    memo: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Explanation:
    """Relevance of one clip for one class, at every layer.

    Attributes
    ----------
    class_name : str
    class_index : int
    score : float
        The score that is explained: f_c(x), or f_c(x) − f_v(x) against ``versus``.
    scores : dict of str to float
        Every class's score f(x).
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
        Σ R(3) − Σ R(2): what the ε stabiliser kept (and, with the still root, the relevance of
        dimensions no cube moves from it).
    absorbed_mass : float
        Σ_d |R(3)_d| × the share of R(3)_d the Fisher layer keeps, over Σ_d |R(3)_d|
        (`fisher_lrp.kept_shares`): how much was held back, whatever its sign.
    rule : Rule
        How relevance was handed down.
    versus : str or None
        The class the explained class is contrasted with (``score`` = f_c − f_versus), or None.
    video : Path or None
        The clip's file, where the explanation came from one (`ActionModel.explain`).
    field : MotionField or None
        The clip's motion field, the input layer the heatmaps are drawn on.
    scale_relevance : dict of int to float
        Σ R(2) of the descriptors of each cube size in px (one entry per scale; empty for
        occlusion).
    channel_relevance : dict of str to float
        With a space-time pyramid: Σ R(3) over each cell's channel of the Fisher vector, by
        cell name (e.g. ``"2x2x1 (1,0,0)"``: grid, then column, row, slice); else empty.
    method : str
        How the relevance was found: ``"lrp"`` (`explain`), or ``"occlusion"``
        (`actionlrp.occlusion.occlusion`: no R(3) nor R(2), and ``rule`` is unused).
    """

    class_name: str
    class_index: int
    score: float
    scores: dict[str, float]
    relevance_fv: np.ndarray
    relevance_descriptors: dict[str, np.ndarray]
    relevance_voxels: np.ndarray
    relevance_voxels_by_feature: dict[str, np.ndarray]
    frame_relevance: np.ndarray
    feature_relevance: dict[str, float]
    absorbed: float
    absorbed_mass: float
    rule: Rule
    versus: str | None = None
    video: Path | None = None
    field: MotionField | None = None
    method: str = "lrp"
    scale_relevance: dict[int, float] = dataclasses.field(default_factory=dict)
    channel_relevance: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def relevance_total(self) -> float:
        """Σ R(1) (= Σ R(2))."""
        return float(self.relevance_voxels.sum())

    def top_frames(self, k: int = 5) -> np.ndarray:
        """Indices of the k most relevant frames, most relevant first."""
        k = min(k, len(self.frame_relevance))
        order = np.argsort(-self.frame_relevance, kind="stable")
        return order[:k]


def forward(
    model: ActionModel,
    field: MotionField,
    descriptors: LocalDescriptors | None = None,
    video: str | os.PathLike | None = None,
    work: _Workspace | None = None,
    scratch: _Workspace | None = None,
) -> Forward:
    """The forward pass of one clip through a fitted model, every layer's output kept.

    Parameters
    ----------
    model : ActionModel
        A fitted model.
    field : MotionField
        The clip's motion field.
    descriptors : LocalDescriptors, optional
        Its descriptors, if already extracted with the model's parameters.
    video : path-like, optional
        The file the field came from.
    work : _Workspace, optional
        Scratch arrays to keep the soft assignments in, for the relevance step; without one the
        relevance step computes them again.
    scratch : _Workspace, optional
        Scratch arrays for the relevance steps' intermediate results.
    """
    descriptor_layer, encoder, classifier = model.layers_
    if descriptors is None:
        descriptors = descriptor_layer.forward(field)
    fisher = encoder.encode(descriptors, keep_assignments=work is not None, work=work)
    return Forward(
        field=field,
        params=descriptor_layer.params,
        descriptors=descriptors,
        fisher=fisher,
        live=populated(fisher.psi),
        scores=classifier.decision_function(fisher.phi[None, :])[0],
        video=None if video is None else Path(video),
        work=work,
        scratch=scratch,
    )


def explain(
    model: ActionModel,
    field: MotionField,
    descriptors: LocalDescriptors | None = None,
    class_name: str | None = None,
    rule: Rule | str | None = None,
    *,
    versus: str | None = None,
    video: str | os.PathLike | None = None,
) -> Explanation:
    """Explain ``model``'s score of one clip for one class (default: the predicted one).

    Parameters
    ----------
    model : ActionModel
        A fitted model.
    field : MotionField
        The clip's motion field (the input layer).
    descriptors : LocalDescriptors, optional
        The clip's descriptors, if already extracted from ``field`` with the model's parameters.
    class_name : str, optional
    rule : Rule or str, optional
        How relevance is handed down: a `Rule` or a preset's name (`rules.RULES`); default
        `rules.DEFAULT_RULE`, the fine rule from no motion.
    versus : str, optional
        Explain f_c − f_versus, why ``class_name`` and not ``versus``: exact for linear scores
        (the SVM layer's weights w_c − w_versus and bias b_c − b_versus). `OTHER`: a
        two-class model's other class.
    video : path-like, optional
        The file the field came from, kept in the explanation for its report.

    Raises
    ------
    UnknownClassError
        ``class_name`` or ``versus`` is not one of the model's classes (the message lists
        them), or they are the same class.
    ValueError
        ``rule`` names no preset.
    """
    rule = get_rule(rule)
    classes = [str(c) for c in model.classes_]
    with _workspace() as work, _workspace() as scratch:
        state = forward(model, field, descriptors, video, work, scratch)
        index = _class_index(classes, class_name, state.scores)
        top = np.zeros(len(classes))  # the relevance of each class's score: what is explained
        top[index] = 1.0
        if versus == OTHER and len(classes) == 2:
            versus = classes[1 - index]
        if versus is not None:
            other = _class_index(classes, versus, state.scores)
            if other == index:
                raise UnknownClassError(f"class {classes[index]!r} is contrasted with itself")
            top[other] = -1.0
        relevance = top
        trail = []
        for layer in reversed(model.layers_):
            relevance = layer.relevance(state, relevance, rule)
            trail.append(relevance)
        r3, r2, by_feature = trail
        r2 = {f: per_descriptor(r) for f, r in r2.items()}
        magnitude = np.abs(r3)
        kept = kept_shares(model.encoder_, state, rule)
        mass = float(magnitude @ kept / magnitude.sum()) if magnitude.any() else 0.0
    parts = iter(by_feature.values())
    r1 = next(parts).copy()
    for part in parts:
        r1 += part
    return Explanation(
        class_name=classes[index],
        class_index=index,
        score=float(top @ state.scores),
        scores={c: float(s) for c, s in zip(classes, state.scores, strict=True)},
        relevance_fv=r3,
        relevance_descriptors=r2,
        relevance_voxels=r1,
        relevance_voxels_by_feature=by_feature,
        frame_relevance=r1.sum(axis=(1, 2)),
        feature_relevance={f: float(r.sum()) for f, r in r2.items()},
        absorbed=float(r3.sum() - sum(float(r.sum()) for r in r2.values())),
        absorbed_mass=mass,
        rule=rule,
        versus=None if versus is None else classes[other],
        video=state.video,
        field=field,
        scale_relevance=_per_scale(state.descriptors.boxes, r2),
        channel_relevance=model.encoder_.channel_totals(r3),
    )


def _per_scale(boxes: np.ndarray, r2: dict[str, np.ndarray]) -> dict[int, float]:
    """Σ R(2) over feature types and the descriptors of each cube size (px)."""
    total = sum(r2.values())
    sizes = boxes[:, 3] - boxes[:, 2]
    return {int(s): float(total[sizes == s].sum()) for s in np.unique(sizes)}


def _class_index(classes: list[str], class_name: str | None, scores: np.ndarray) -> int:
    if class_name is None:
        return int(np.argmax(scores))
    if str(class_name) in classes:
        return classes.index(str(class_name))
    raise UnknownClassError(
        f"class {class_name!r} is not one of the model's: {', '.join(classes)}"
    )


__all__ = ["DEFAULT_RULE", "OTHER", "Explanation", "Forward", "explain", "forward"]
