"""The command line's commands: each reads its parsed arguments, calls the library, prints.

``cmd_<name>(args) -> int`` is the body of ``actionlrp <name>``; `actionlrp.cli` builds the
parser that hands them their arguments and runs them. Each command imports the parts of the
library it calls when it runs. Exit 0 done, 1 partly done, 2 nothing done.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from actionlrp.errors import ActionLRPError


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def cmd_motion(args: argparse.Namespace) -> int:
    from actionlrp.motion import motion_field

    start = time.perf_counter()
    field = motion_field(args.video, args.motion, args.cell, transcode=args.transcode)
    result = field.summary()
    result["seconds"] = round(time.perf_counter() - start, 4)
    _print(result, args.json)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from actionlrp.descriptors import DescriptorParams, describe, save_descriptors
    from actionlrp.motion import motion_field

    start = time.perf_counter()
    field = motion_field(args.video, args.motion, args.cell, transcode=args.transcode, hog=args.hog)
    desc = describe(field, DescriptorParams(normalization=args.normalization, hog=args.hog))
    result = {
        "cubes": len(desc),
        "dims": {k: int(v.shape[1]) for k, v in desc.features.items()},
        "frames": field.n_frames,
    }
    if args.out:
        result["out"] = str(save_descriptors(desc, args.out))
    result["seconds"] = round(time.perf_counter() - start, 4)
    _print(result, args.json)
    return 0


def _descriptor_params(args: argparse.Namespace):
    """The `DescriptorParams` of `_add_descriptor_options`, checked against the grid cell."""
    from actionlrp.descriptors import DescriptorParams
    from actionlrp.extraction import check_params

    params = DescriptorParams(
        cube_px=tuple(args.cube_px),
        stride_px=args.stride_px[0] if len(args.stride_px) == 1 else tuple(args.stride_px),
        slice_normalization=args.slice_normalization,
        max_width=args.max_width,
        hog=args.hog,
    )
    try:
        check_params(getattr(args, "cell", 8), params)
    except ValueError as exc:
        raise ActionLRPError(f"--cube-px / --stride-px: {exc}") from None
    return params


def _model_params(args: argparse.Namespace) -> dict:
    return {
        "descriptor_params": _descriptor_params(args),
        "motion": args.motion,
        "n_components": args.k,
        "pca_dims": args.pca or None,
        "pyramid": args.pyramid,
        "C": args.C,
        "random_state": args.seed,
        "n_jobs": args.jobs,
        "cache_dir": args.cache,
        "progress": not args.json,
        "transcode": args.transcode,
    }


def _exit_code(n_failed: int, n_total: int) -> int:
    return 0 if n_failed == 0 else (1 if n_failed < n_total else 2)


def _report_failures(failed: Sequence[str]) -> None:
    for message in failed:
        print(f"actionlrp: skipped {message}", file=sys.stderr)


def _say_unconverged(types: Sequence[str], max_iter: int) -> None:
    from actionlrp.fisher import unconverged_note

    note = unconverged_note(types, max_iter)
    if note:
        print(f"actionlrp: {note}", file=sys.stderr)


def cmd_synth(args: argparse.Namespace) -> int:
    from actionlrp.builtin import make_dataset

    start = time.perf_counter()
    info = make_dataset(
        args.out,
        classes=args.classes,
        clips_per_class=args.clips_per_class,
        seed=args.seed,
        progress=not args.json,
    )
    result = {
        "out": str(args.out),
        "classes": list(info.classes),
        "train": len(info.train),
        "test": len(info.test),
        "seconds": round(time.perf_counter() - start, 3),
    }
    _print(result, args.json)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from actionlrp.datasets import load_split
    from actionlrp.extraction import extract_to_store
    from actionlrp.store import ExtractionSpec, FeatureStore

    start = time.perf_counter()
    split = load_split(args.data)
    clips = split.train + split.test
    spec = ExtractionSpec(args.motion, args.cell, _descriptor_params(args), args.transcode)
    store = FeatureStore.create(args.out, args.data, spec)
    run = extract_to_store(
        clips, store, n_jobs=args.workers, scheduler=args.scheduler, progress=not args.json
    )
    _report_failures([message for _, message in run.failures])
    result = {
        "store": str(run.store),
        "n_clips": run.n_clips,
        "n_written": run.n_written,
        "n_skipped": run.n_skipped,
        "n_failed": len(run.failures),
        "worker_peak_mb": round(run.worker_peak_mb, 1),
        "seconds": round(time.perf_counter() - start, 3),
    }
    _print(result, args.json)
    return _exit_code(len(run.failures), len(clips))


def _store(args: argparse.Namespace):
    """The feature store DATA names, or None when DATA is a dataset folder."""
    from actionlrp.store import FeatureStore

    if not FeatureStore.is_store(args.data):
        if getattr(args, "scheduler", None):
            raise ActionLRPError(
                f"{args.data}: --scheduler needs a feature store; make one with actionlrp "
                f"extract {args.data} --out STORE --scheduler {args.scheduler}"
            )
        return None
    return FeatureStore.open(args.data)


def _split(args: argparse.Namespace, store):
    from actionlrp.datasets import load_split

    if store is not None:
        return store.split(args.layout, args.splits, args.split)
    return load_split(args.data, layout=args.layout, splits_dir=args.splits, split=args.split)


def _store_params(args: argparse.Namespace, store) -> dict:
    """`_model_params`, with a store's extraction parameters and the store itself."""
    params = _model_params(args)
    if store is not None:
        spec = store.spec
        params.update(
            motion=spec.motion,
            cell=spec.cell,
            descriptor_params=spec.params,
            transcode=spec.transcode,
            store=store,
            scheduler=args.scheduler,
        )
    return params


def cmd_train(args: argparse.Namespace) -> int:
    from actionlrp.model import ActionModel

    start = time.perf_counter()
    store = _store(args)
    split = _split(args, store)
    model = ActionModel(**_store_params(args, store)).fit(
        [c.path for c in split.train], [c.label for c in split.train]
    )
    out = model.save(args.out)
    failed = [message for _, message in model.failures_]
    _report_failures(failed)
    encoder = model.encoder_
    _say_unconverged([f for f, ok in encoder.converged_.items() if not ok], encoder.max_iter)
    result = {
        "model": str(out),
        "classes": [str(c) for c in model.classes_],
        "n_clips": len(split.train),
        "n_failed": len(failed),
        "C": float(model.classifier_.C_),
        "seconds": round(time.perf_counter() - start, 3),
    }
    _print(result, args.json)
    return _exit_code(len(failed), len(split.train))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from actionlrp.model import ActionModel, evaluate_clips

    start = time.perf_counter()
    model = ActionModel.load(args.model)
    model.n_jobs, model.cache_dir, model.progress = args.jobs, args.cache, not args.json
    store = _store(args)
    model.store, model.scheduler = store, args.scheduler
    split = _split(args, store)
    clips = split.test or split.train
    report = evaluate_clips(model, clips)
    _report_failures(report.pop("failed"))
    report["seconds"] = round(time.perf_counter() - start, 3)
    if not args.json:
        report["confusion_matrix"] = "\n" + _matrix(report["confusion_matrix"], report["classes"])
    _print(report, args.json)
    return _exit_code(report["n_failed"], len(clips))


def _matrix(rows: list[list[int]], classes: list[str]) -> str:
    width = max(6, *(len(c) for c in classes))
    lines = [" " * width + " " + " ".join(f"{c[:width]:>{width}}" for c in classes)]
    for name, row in zip(classes, rows, strict=True):
        lines.append(f"{name:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def cmd_cv(args: argparse.Namespace) -> int:
    from actionlrp.datasets import folder_dataset, read_groups
    from actionlrp.fisher import FisherEncoder
    from actionlrp.model import cross_validate

    start = time.perf_counter()
    store = _store(args)
    if store is not None:
        split = store.split()
        clips = list(split.train + split.test)
    else:
        clips = folder_dataset(args.data)
    if args.leave_one_group_out and not args.groups:
        raise ActionLRPError("--leave-one-group-out needs --groups CSV (clip and its group)")
    groups = read_groups(args.groups) if args.groups else None
    report = cross_validate(
        clips,
        n_folds=args.folds,
        groups=groups,
        leave_one_group_out=args.leave_one_group_out,
        **_store_params(args, store),
    )
    _report_failures(report.pop("failed"))
    _say_unconverged(report["gmm_unconverged"], FisherEncoder().max_iter)
    report["seconds"] = round(time.perf_counter() - start, 3)
    _print(report, args.json)
    if not args.json:
        names = {
            "extraction": "extraction",
            "gmm": "GMM",
            "encode": "encoding",
            "svm": "SVM",
            "test": "testing",
        }
        spent = report["stage_seconds"]
        print("time spent: " + ", ".join(f"{names[k]} {v:.1f} s" for k, v in spent.items()))
    return _exit_code(report["n_failed"], report["n_clips"])


def cmd_predict(args: argparse.Namespace) -> int:
    from actionlrp.model import EMPTY_CLIP, ActionModel

    model = ActionModel.load(args.model)
    model.n_jobs, model.cache_dir, model.progress = args.jobs, args.cache, not args.json
    result = model.extract(args.videos)
    failed = dict((str(p), m) for p, m in result.failures)
    for video, desc in zip(args.videos, result.descriptors, strict=True):
        if desc is not None and not len(desc):
            failed[str(Path(video))] = f"{video}: {EMPTY_CLIP}"
    kept = [d for d in result.descriptors if d is not None and len(d)]
    scores = model.decision_function_descriptors(kept) if kept else np.zeros((0, 0))
    clips, row = [], 0
    for video, desc in zip(args.videos, result.descriptors, strict=True):
        if desc is None or not len(desc):
            clips.append({"video": video, "error": failed.get(str(Path(video)), "failed")})
            continue
        per_class = {
            str(c): round(float(v), 6) for c, v in zip(model.classes_, scores[row], strict=True)
        }
        clips.append(
            {
                "video": video,
                "class": str(model.classes_[scores[row].argmax()]),
                "scores": per_class,
            }
        )
        row += 1
    _report_failures(list(failed.values()))
    if args.json:
        print(json.dumps({"clips": clips, "n_failed": len(failed)}))
    else:
        for clip in clips:
            if "error" in clip:
                continue
            top = sorted(clip["scores"].items(), key=lambda kv: -kv[1])[:3]
            ranked = ", ".join(f"{c} {v:+.3f}" for c, v in top)
            print(f"{clip['video']}: {clip['class']}  ({ranked})")
    return _exit_code(len(failed), len(args.videos))


def cmd_reproduce_hmdb51(args: argparse.Namespace) -> int:
    from actionlrp.model import reproduce_hmdb51

    start = time.perf_counter()
    report = reproduce_hmdb51(args.root, args.splits, **_model_params(args))
    report["seconds"] = round(time.perf_counter() - start, 3)
    if not args.json:
        for s in report["splits"]:
            print(f"split {s['split']}: accuracy {s['accuracy']:.4f}  mean AP {s['mean_ap']:.4f}")
        print(
            f"mean: accuracy {report['accuracy']:.4f} ± {report['accuracy_std']:.4f}  "
            f"mean AP {report['mean_ap']:.4f} ± {report['mean_ap_std']:.4f}"
        )
        return 0
    _print(report, True)
    return 0


def _rule(args: argparse.Namespace):
    from actionlrp.rules import get_rule

    try:
        return get_rule(args.rule, args.epsilon)
    except ValueError as exc:
        raise ActionLRPError(f"--epsilon {args.epsilon}: must be ≥ 0") from exc


def cmd_explain(args: argparse.Namespace) -> int:
    from actionlrp.model import ActionModel
    from actionlrp.pages import summary
    from actionlrp.report import explain_video

    start = time.perf_counter()
    rule = _rule(args)
    model = ActionModel.load(args.model)
    e, report = explain_video(
        args.video, model, args.out, args.cls, rule, args.versus, method=args.method
    )
    result = summary(e)
    result.pop("frame_relevance")
    result["method"] = e.method
    result["report"] = str(report)
    result["seconds"] = round(time.perf_counter() - start, 3)
    _print(result, args.json)
    return 0


def cmd_explain_dataset(args: argparse.Namespace) -> int:
    from actionlrp.model import ActionModel
    from actionlrp.report import explain_dataset

    start = time.perf_counter()
    rule = _rule(args)
    model = ActionModel.load(args.model)
    split = _split(args, _store(args))
    clips = split.test or split.train
    report = explain_dataset(
        model,
        clips,
        args.out,
        rule,
        reports=args.reports,
        progress=not args.json and sys.stderr.isatty(),
    )
    data = json.loads((Path(args.out) / "summary.json").read_text())
    _report_failures(data["failed"])
    result = {
        k: data[k]
        for k in (
            "n_clips",
            "n_failed",
            "accuracy",
            "mass_on_actor",
            "mass_near_actor",
            "pointing_game",
            "top_frames_in_interval",
            "feature_shares",
        )
        if k in data
    }
    result["report"] = str(report)
    result["seconds"] = round(time.perf_counter() - start, 3)
    _print(result, args.json)
    return _exit_code(data["n_failed"], len(clips))
