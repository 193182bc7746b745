"""Command line: parse, call the library, print. Exit 0 done, 1 partly done, 2 nothing done."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
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
    field = motion_field(
        args.video, args.motion, args.cell, transcode=args.transcode, hog=args.hog
    )
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


def _add_rule_options(p: argparse.ArgumentParser) -> None:
    from actionlrp.rules import DEFAULT_RULE, RULES

    p.add_argument(
        "--rule",
        choices=list(RULES),
        default=DEFAULT_RULE.name,
        help="how relevance is handed down: 'fine' through the histogram bins to the vectors, "
        "measured from no motion; 'paper' evenly over each cube; 'fine-zero' the fine spreading "
        f"with the plain ε-rule (default: {DEFAULT_RULE.name})",
    )
    p.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help="the rule's ε, × the clip's mean |Ψ| (fine: 0.01, paper: 1)",
    )


def _rule(args: argparse.Namespace):
    from actionlrp.rules import get_rule

    try:
        return get_rule(args.rule, args.epsilon)
    except ValueError as exc:
        raise ActionLRPError(f"--epsilon {args.epsilon}: must be ≥ 0") from exc


def _add_descriptor_options(p: argparse.ArgumentParser) -> None:
    """The descriptors' geometry: `_descriptor_params` reads them (model commands, extract)."""
    p.add_argument(
        "--max-width",
        type=int,
        default=None,
        help="describe wider videos at 1/f of their size (e.g. 320; default: native)",
    )
    p.add_argument(
        "--cube-px",
        type=int,
        nargs="+",
        default=[32],
        help="cube side(s) in px, one per scale (default 32; 32 48 adds the second scale)",
    )
    p.add_argument(
        "--stride-px",
        type=int,
        nargs="+",
        default=[16],
        help="cube stride in px, one for all scales or one per scale (default 16)",
    )
    p.add_argument(
        "--slice-normalization",
        action="store_true",
        help="normalise each time slice of a descriptor on its own",
    )
    p.add_argument(
        "--hog",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="describe appearance too: HOG of the decoded frames, a fourth feature type "
        "(default; --no-hog: motion only, and MPEG-4 Part 2 decodes without its pixels)",
    )


def _add_model_options(p: argparse.ArgumentParser, motion: bool = True) -> None:
    if motion:
        p.add_argument("--motion", choices=("mv", "flow"), default="mv", help="motion source")
        p.add_argument("--k", type=int, default=256, help="GMM components per feature type")
        p.add_argument(
            "--pca",
            type=int,
            default=48,
            help="PCA dims per feature type before the GMM (default 48; 0: no PCA)",
        )
        p.add_argument(
            "--pyramid",
            action="store_true",
            help="a Fisher vector per cell of the 24-cell space-time pyramid",
        )
        p.add_argument("--C", type=float, default=None, help="SVM C (default: cross-validated)")
        p.add_argument("--seed", type=int, default=0)
        _add_descriptor_options(p)
        p.add_argument("--transcode", action="store_true", help="re-encode codecs without vectors")
    p.add_argument(
        "--jobs", type=int, default=2, help="extraction and encoding processes (default 2)"
    )
    p.add_argument("--cache", default=None, help="descriptor cache folder")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _add_scheduler_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scheduler",
        default=None,
        help="address of a Dask scheduler (tcp://HOST:8786): its workers extract (extract) or "
        "encode a store's clips (train, evaluate, cv); default local processes",
    )


def _add_layout_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=("folders", "hmdb51", "ucf101"), default="folders")
    p.add_argument("--splits", default=None, help="folder of the official split files")
    p.add_argument("--split", type=int, default=1, help="split number (HMDB51 / UCF101)")


def _add_motion_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file")
    p.add_argument(
        "--motion",
        choices=("mv", "flow"),
        default="mv",
        help="motion vectors from the bitstream (mv, default) or Farnebäck optical flow (flow)",
    )
    p.add_argument("--cell", type=int, default=8, help="grid cell size in px (default 8)")
    p.add_argument(
        "--transcode",
        action="store_true",
        help="re-encode a codec without motion vectors (HEVC, VP9, AV1, MJPEG) to MPEG-4 first",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actionlrp",
        description="Interpretable action recognition on compressed video.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("motion", help="read a clip's motion field and summarise it")
    _add_motion_options(p)
    p.set_defaults(func=cmd_motion)

    p = sub.add_parser("features", help="HOF / MBHx / MBHy (/ HOG) descriptors of a clip")
    _add_motion_options(p)
    p.add_argument("--out", help="write the descriptors to this .npz")
    p.add_argument(
        "--normalization",
        choices=("root", "l2", "none"),
        default="root",
        help="descriptor normalisation (default root: L1 then square root)",
    )
    p.add_argument(
        "--hog",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="HOG, the appearance descriptor, too (default; --no-hog: motion only)",
    )
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("synth", help="write the built-in synthetic action dataset")
    p.add_argument("out", help="output folder (gets train/ and test/)")
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--clips-per-class", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("extract", help="write every clip's descriptors into a feature store")
    p.add_argument("data", help="dataset folder (ROOT/<class>/<clip>, or ROOT/train and ROOT/test)")
    p.add_argument("--out", required=True, help="the store's folder (made, or resumed)")
    p.add_argument("--motion", choices=("mv", "flow"), default="mv", help="motion source")
    p.add_argument("--cell", type=int, default=8, help="grid cell size in px (default 8)")
    _add_descriptor_options(p)
    p.add_argument("--transcode", action="store_true", help="re-encode codecs without vectors")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    _add_scheduler_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", help="train a model on a dataset's training clips")
    p.add_argument("data", help="dataset folder, or a feature store (actionlrp extract)")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    _add_layout_options(p)
    _add_model_options(p)
    _add_scheduler_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, mean AP, per-class AP, confusion matrix")
    p.add_argument("data", help="dataset folder (its test split), or a feature store")
    p.add_argument("--model", required=True)
    _add_layout_options(p)
    _add_model_options(p, motion=False)
    _add_scheduler_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("cv", help="group-aware k-fold cross-validation on a folder dataset")
    p.add_argument("data", help="dataset folder (ROOT/<class>/<clip>), or a feature store")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--groups", default=None, help="CSV clip,label,source_video (or group)")
    p.add_argument(
        "--leave-one-group-out",
        action="store_true",
        help="hold out each group in turn instead of --folds (datasets recorded as sequences)",
    )
    _add_model_options(p)
    _add_scheduler_option(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("predict", help="class and per-class scores of clips")
    p.add_argument("videos", nargs="+")
    p.add_argument("--model", required=True)
    _add_model_options(p, motion=False)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="LRP heatmaps, frame relevance and a report for one clip")
    p.add_argument("video")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="folder for report.html and its parts")
    p.add_argument(
        "--class", dest="cls", default=None, help="class to explain (default: predicted)"
    )
    p.add_argument(
        "--versus",
        default=None,
        help="explain the class's score minus this class's: why the one and not the other "
        "(default for a two-class model: the other class; '' for the class's own score)",
    )
    p.add_argument(
        "--method",
        choices=("lrp", "occlusion"),
        default="lrp",
        help="'lrp' (default), or 'occlusion': the baseline that removes each region's motion "
        "(16 px × 5 frames) and measures what the score loses; it ignores --rule and --epsilon",
    )
    _add_rule_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("explain-dataset", help="explain every test clip; one dataset report")
    p.add_argument(
        "data", help="dataset folder (its test split), or a feature store of it (its clips)"
    )
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="folder for report.html and its parts")
    _add_layout_options(p)
    _add_rule_options(p)
    p.add_argument("--reports", type=int, default=3, help="full clip reports per class")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_explain_dataset)

    p = sub.add_parser("reproduce-hmdb51", help="the paper's protocol on HMDB51 (3 splits)")
    p.add_argument("--root", required=True, help="HMDB51 videos: ROOT/<class>/<clip>.avi")
    p.add_argument("--splits", required=True, help="folder of <class>_test_split<N>.txt files")
    _add_model_options(p)
    p.set_defaults(func=cmd_reproduce_hmdb51)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ActionLRPError as exc:
        print(f"actionlrp: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written: a full disk, no permission
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"actionlrp: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actionlrp: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
