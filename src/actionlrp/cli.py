"""Command line: parse, call the library, print. Exit 0 done, 1 partly done, 2 nothing done."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from actionlrp.errors import ActionLRPError


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def cmd_motion(args: argparse.Namespace) -> int:
    from actionlrp.codec import motion_field

    start = time.perf_counter()
    field = motion_field(args.video, args.motion, args.cell, transcode=args.transcode)
    result = field.summary()
    result["seconds"] = round(time.perf_counter() - start, 4)
    _print(result, args.json)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from actionlrp.codec import motion_field
    from actionlrp.descriptors import DescriptorParams, describe, save_descriptors

    start = time.perf_counter()
    field = motion_field(args.video, args.motion, args.cell, transcode=args.transcode)
    desc = describe(field, DescriptorParams(normalization=args.normalization))
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

    p = sub.add_parser("features", help="HOF / MBHx / MBHy descriptors of a clip")
    _add_motion_options(p)
    p.add_argument("--out", help="write the descriptors to this .npz")
    p.add_argument(
        "--normalization",
        choices=("root", "l2", "none"),
        default="root",
        help="descriptor normalisation (default root: L1 then square root)",
    )
    p.set_defaults(func=cmd_features)
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
    except KeyboardInterrupt:
        print("actionlrp: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
