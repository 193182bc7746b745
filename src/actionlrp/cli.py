"""Command line: parse, call the library, print. Exit 0 done, 1 partly done, 2 nothing done.

This module builds the parser and runs a command; the commands' bodies, which call the library
and print, are in `actionlrp.cli_commands`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from actionlrp.cli_commands import (
    cmd_cv,
    cmd_evaluate,
    cmd_explain,
    cmd_explain_dataset,
    cmd_extract,
    cmd_features,
    cmd_motion,
    cmd_predict,
    cmd_reproduce_hmdb51,
    cmd_synth,
    cmd_train,
)
from actionlrp.errors import ActionLRPError


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


def _add_descriptor_options(p: argparse.ArgumentParser) -> None:
    """The descriptors' geometry: `cli_commands._descriptor_params` reads them (model commands,
    extract)."""
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
