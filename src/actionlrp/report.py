"""Explain clips and write their reports: one clip (``actionlrp explain``) or a whole dataset
(``actionlrp explain-dataset``). The explaining is `ActionModel.explain` (or `occlusion`), the
figures `actionlrp.render`, the pages `actionlrp.pages`; where a clip of the built-in dataset has
its ground truth beside it, the reports add how well the explanation finds the actor
(`builtin.localisation_scores`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from actionlrp.atomic import write_text_atomic
from actionlrp.datasets import Clip
from actionlrp.errors import ActionLRPError, EmptyClipError
from actionlrp.model import ActionModel
from actionlrp.pages import write_dataset_page, write_report
from actionlrp.relevance import OTHER, Explanation
from actionlrp.render import colour_limit, plot_best_frames, plot_class_shares
from actionlrp.rules import Rule, get_rule

#: How `explain_video` explains: LRP, or the occlusion baseline.
METHODS = ("lrp", "occlusion")


def explain_video(
    video: str | os.PathLike,
    model: ActionModel,
    out_dir: str | os.PathLike,
    class_name: str | None = None,
    rule: Rule | str | None = None,
    versus: str | None = None,
    method: str = "lrp",
) -> tuple[Explanation, Path]:
    """Explain one clip with a fitted model and write its report; what `actionlrp explain` does.

    Returns the explanation and ``out_dir/report.html``. A two-class model's score is explained
    as the contrast of the two classes unless ``versus`` says otherwise (``versus=""``: the
    class's own score). Where the built-in dataset's ground truth lies beside the clip, the
    frame curve marks its action interval. ``method``: ``"lrp"`` (`ActionModel.explain`), or
    ``"occlusion"``, the baseline of `actionlrp.occlusion.occlusion` (``rule`` is then unused).
    """
    if method == "lrp":
        explanation = model.explain(video, class_name, rule, _versus(model, versus))
    elif method == "occlusion":
        explanation = _occlusion(video, model, class_name, _versus(model, versus))
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    truth = _ground_truth(Path(video))
    interval = truth.interval if truth is not None else None
    return explanation, write_report(explanation, out_dir, interval)


def explain_dataset(
    model: ActionModel,
    clips: Iterable[Clip],
    out_dir: str | os.PathLike,
    rule: Rule | str | None = None,
    reports: int = 3,
    progress: bool = False,
    versus: str | None = None,
) -> Path:
    """Explain every clip of a dataset; write ``out_dir/report.html`` and ``summary.json``.

    Per class: the HOF / MBHx / MBHy shares summed over its true positives (the paper's Fig. 5),
    its highest-relevance frames across clips, and — where the built-in ground truth lies beside
    the clips — the localisation scores of `builtin.localisation_scores`. The first ``reports``
    clips of each class also get a full single-clip report under ``out_dir/clips/``. A clip that
    cannot be explained is listed under ``failed`` and the others go on.

    Parameters
    ----------
    model : ActionModel
        A fitted model.
    clips : iterable of Clip
    out_dir : path-like
    rule : Rule or str, optional
        Default `rules.DEFAULT_RULE`, as for one clip.
    reports : int
        Full reports per class.
    progress : bool
        A progress bar on stderr.
    versus : str, optional
        As for one clip (`explain_video`): a two-class model's scores are explained as the
        contrast of the two classes by default.
    """
    from actionlrp.builtin import LOCALISATION_KEYS, localisation_scores

    rule = get_rule(rule)
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    classes = [str(c) for c in model.classes_]
    shares = {c: {f: 0.0 for f in model.params_.dims()} for c in classes}
    best_frames: dict[str, list] = {c: [] for c in classes}
    rows, failed = [], []
    done_reports: dict[str, int] = {}
    iterator = clips
    if progress:
        from tqdm import tqdm

        iterator = tqdm(clips, desc="explaining", unit="clip", file=sys.stderr)
    for clip in iterator:
        try:
            e = model.explain(clip.path, rule=rule, versus=_versus(model, versus))
        except ActionLRPError as exc:
            failed.append(str(exc))
            continue
        row = {
            "clip": str(clip.path),
            "true": clip.label,
            "predicted": e.class_name,
            "score": e.score,
            "absorbed": e.absorbed,
            "absorbed_mass": e.absorbed_mass,
        }
        truth = _ground_truth(clip.path)
        if truth is not None:
            row.update(localisation_scores(e, truth, e.field.cell))
        if e.class_name == clip.label:
            for f, v in e.feature_relevance.items():
                shares[clip.label][f] += v
            limit = colour_limit(e.relevance_voxels)
            for t in e.top_frames(3):
                heat = e.relevance_voxels[t].copy()
                best_frames[clip.label].append(
                    (float(e.frame_relevance[t]), clip.path, int(t), heat, limit, e.field.cell)
                )
        if done_reports.get(clip.label, 0) < reports:
            interval = truth.interval if truth is not None else None
            folder = out / "clips" / clip.path.stem
            write_report(e, folder, interval)
            row["report"] = str(folder.relative_to(out) / "report.html")
            done_reports[clip.label] = done_reports.get(clip.label, 0) + 1
        rows.append(row)
    figures = {"shares": plot_class_shares(shares, out / "feature_shares_by_class.png")}
    frame_figures = {}
    for c in classes:
        best = sorted(best_frames[c], key=lambda x: -x[0])[:3]
        if best:
            frame_figures[c] = plot_best_frames(best, out / f"top_frames_{c}.png")
    summary = {
        "classes": classes,
        "n_clips": len(rows),
        "n_failed": len(failed),
        "failed": failed,
        "accuracy": float(np.mean([r["true"] == r["predicted"] for r in rows])) if rows else 0.0,
        "rule": rule.summary(),
        "feature_shares": shares,
        "clips": rows,
    }
    for key in LOCALISATION_KEYS:
        correct = [r[key] for r in rows if key in r and r["true"] == r["predicted"]]
        if correct:
            summary[key] = float(np.mean(correct))
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return write_dataset_page(out, summary, figures, frame_figures, LOCALISATION_KEYS)


def _occlusion(
    video: str | os.PathLike, model: ActionModel, class_name: str | None, versus: str | None
) -> Explanation:
    """`occlusion.occlusion` of a clip's file, its errors worded as `ActionModel.explain`'s."""
    from actionlrp.motion import motion_field
    from actionlrp.occlusion import occlusion

    model._check_fitted()
    field = motion_field(
        video, model.motion, model.cell, transcode=model.transcode, hog=model.params_.hog
    )
    try:
        return occlusion(model, field, None, class_name, versus, video=video)
    except EmptyClipError as exc:
        raise EmptyClipError(f"{video}: {exc}") from None


def _versus(model: ActionModel, versus: str | None) -> str | None:
    """The class to contrast with: as given (``""``: none), or a two-class model's other one."""
    if versus is not None:
        return versus or None
    return OTHER if len(model.classes_) == 2 else None


def _ground_truth(path: Path):
    """The built-in dataset's ground truth of a clip, or None where it has none."""
    if not Path(path).with_suffix(".json").is_file():
        return None
    from actionlrp.builtin import load_ground_truth

    try:
        return load_ground_truth(path)
    except ActionLRPError:
        return None
