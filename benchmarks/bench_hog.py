"""What HOG costs, stage by stage, in CPU time: the motion field with and without the luma's
gradient histograms, and the descriptors with and without HOG.

CPU seconds of the whole process (every thread: the decoding thread computes the histograms),
best of ``--repeat``, per frame; so the figures hold on a busy machine where wall time would
not. Clips: two generated 320×240 clips of 150 frames (MPEG-4 Part 2, H.264 with 2 B-frames,
as in ``bench_end_to_end.py``) and, where ../shared/data is, a real clip of each codec.

    python benchmarks/bench_hog.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from actionlrp import synthetic
from actionlrp.descriptors import DescriptorParams, describe
from actionlrp.motion import motion_field
from actionlrp.synthetic import SyntheticObject

SHARED = Path(os.environ.get("ACTIONLRP_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
REAL = {
    "UT set 1 (MPEG-4 Part 2, 436×288)": "ut-interaction-set1/hugging/set1_10_2_1.avi",
    "fight-dev (H.264, 640×360)": "fight-dev/fight/fi001.mp4",
}


def cpu_seconds(work, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for codec, suffix, b in (("mpeg4", ".avi", 0), ("libx264", ".mp4", 2)):
            objects = [
                SyntheticObject("translate", size=48, centre=(60.0, 150.0), velocity=(2.5, 0.0)),
                SyntheticObject("oscillate", size=40, amplitude=20.0, period=30.0, axis="x"),
            ]
            clip = synthetic.make_clip(
                Path(tmp) / f"clip{suffix}", objects, width=320, height=240, n_frames=150,
                codec=codec, b_frames=b, seed=0,
            )
            clips[f"generated {codec} 320×240"] = clip.path
        for name, rel in REAL.items():
            if (SHARED / rel).is_file():
                clips[name] = SHARED / rel
        report = {}
        print(f"{'clip':<36} {'field':>7} {'+HOG':>7} {'desc':>7} {'+HOG':>7}  ms CPU / frame")
        for name, path in clips.items():
            off, on = motion_field(path), motion_field(path, hog=True)
            frames = off.n_frames
            row = {
                "field": cpu_seconds(lambda p=path: motion_field(p), args.repeat),
                "field_hog": cpu_seconds(lambda p=path: motion_field(p, hog=True), args.repeat),
                "describe": cpu_seconds(lambda f=off: describe(f), args.repeat),
                "describe_hog": cpu_seconds(
                    lambda f=on: describe(f, DescriptorParams(hog=True)), args.repeat
                ),
            }
            row = {k: round(1e3 * v / frames, 3) for k, v in row.items()}
            report[name] = row
            print(
                f"{name:<36} {row['field']:7.3f} {row['field_hog']:7.3f} "
                f"{row['describe']:7.3f} {row['describe_hog']:7.3f}",
                flush=True,
            )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
